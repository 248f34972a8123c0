//! Time to live: a table's TTL setting, and when an item expires.
//!
//! The setting is kept in the descriptor's `meta` under `TimeToLive` (the
//! API writes it on UpdateTimeToLive; the expiry sweep reads it and marks a
//! change taken up). This module is the one place that format is known.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::catalog::TableDescriptor;
use crate::value::{Item, Value};

/// The key in `TableDescriptor::meta`.
const META_KEY: &str = "TimeToLive";

/// DynamoDB leaves alone items whose expiry is more than five years in the
/// past (a timestamp in milliseconds or microseconds read as seconds is far
/// in the future, not the past; one in the distant past is most likely not
/// meant as an expiry at all).
pub const MAX_EXPIRED_AGE_SECS: u64 = 5 * 365 * 86_400;

/// A table's TTL setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSetting {
    pub enabled: bool,
    pub attribute_name: String,
    /// When it was last changed (ms since the epoch; 0 when unknown).
    #[serde(default)]
    pub changed_ms: u64,
    /// Whether the expiry sweep has taken the last change up: until it
    /// has, DescribeTimeToLive says ENABLING or DISABLING. Settings stored
    /// before it existed count as taken up.
    #[serde(default = "yes")]
    pub settled: bool,
}

fn yes() -> bool {
    true
}

impl TtlSetting {
    /// The table's setting, if TTL was ever set on it.
    pub fn of(desc: &TableDescriptor) -> Option<TtlSetting> {
        Self::in_meta(&desc.meta)
    }

    pub fn in_meta(meta: &Json) -> Option<TtlSetting> {
        serde_json::from_value(meta.get(META_KEY)?.clone()).ok()
    }

    /// Stores the setting in a descriptor's `meta` (an object).
    pub fn store(&self, meta: &mut serde_json::Map<String, Json>) {
        if let Ok(v) = serde_json::to_value(self) {
            meta.insert(META_KEY.into(), v);
        }
    }

    /// DescribeTimeToLive's status.
    pub fn status(&self) -> &'static str {
        match (self.enabled, self.settled) {
            (true, true) => "ENABLED",
            (true, false) => "ENABLING",
            (false, false) => "DISABLING",
            (false, true) => "DISABLED",
        }
    }
}

/// The attribute whose value expires items of this table, when TTL is on.
pub fn attribute(desc: &TableDescriptor) -> Option<String> {
    TtlSetting::of(desc)
        .filter(|s| s.enabled)
        .map(|s| s.attribute_name)
}

/// When `item` expires (epoch seconds), by its attribute `attr`: only a
/// Number that is a non-negative epoch time counts (a fraction is cut
/// off); anything else never expires.
pub fn expires_at(item: &Item, attr: &str) -> Option<u64> {
    let Some(Value::N(n)) = item.get(attr) else {
        return None;
    };
    if n.is_negative() {
        return None;
    }
    let secs = n.to_scaled_i128(0).or_else(|| {
        // A fraction: round towards zero through its scaled form.
        let scale = n.scale();
        n.to_scaled_i128(scale)
            .map(|v| v / 10i128.pow(scale.min(38)))
    })?;
    u64::try_from(secs).ok()
}

/// Whether an item expiring at `at` (epoch seconds) is due for deletion at
/// `now` (epoch seconds): in the past, but not more than five years.
pub fn is_due(at: u64, now: u64) -> bool {
    at < now && now - at <= MAX_EXPIRED_AGE_SECS
}

/// Whether `item` has expired at `now` by attribute `attr`.
pub fn has_expired(item: &Item, attr: &str, now: u64) -> bool {
    expires_at(item, attr).is_some_and(|at| is_due(at, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;

    fn item(v: Value) -> Item {
        Item::from([("exp".to_string(), v)])
    }

    fn n(s: &str) -> Value {
        Value::N(Number::parse(s).unwrap())
    }

    #[test]
    fn only_numbers_of_the_recent_past_expire() {
        let now = 1_800_000_000;
        assert!(has_expired(&item(n("1799999999")), "exp", now));
        assert!(has_expired(&item(n("1799999999.9")), "exp", now));
        assert!(
            !has_expired(&item(n("1800000000")), "exp", now),
            "not before the second is past"
        );
        assert!(!has_expired(&item(n("1800000001")), "exp", now));
        assert!(!has_expired(&item(n("-5")), "exp", now));
        assert!(
            !has_expired(&item(n("1")), "exp", now),
            "more than five years ago"
        );
        assert!(!has_expired(&item(Value::S("1".into())), "exp", now));
        assert!(!has_expired(&item(n("1799999999")), "other", now));
        assert!(!has_expired(&item(n("1e40")), "exp", now));
    }

    #[test]
    fn statuses_follow_the_sweep() {
        let mut s = TtlSetting {
            enabled: true,
            attribute_name: "exp".into(),
            changed_ms: 1,
            settled: false,
        };
        assert_eq!(s.status(), "ENABLING");
        s.settled = true;
        assert_eq!(s.status(), "ENABLED");
        s.enabled = false;
        assert_eq!(s.status(), "DISABLED");
        s.settled = false;
        assert_eq!(s.status(), "DISABLING");
        let old = serde_json::json!({"TimeToLive": {"Enabled": true, "AttributeName": "a"}});
        assert_eq!(TtlSetting::in_meta(&old).unwrap().status(), "ENABLED");
    }
}

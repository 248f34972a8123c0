//! Memory for parsing requests, as a budget.
//!
//! A request body becomes a `serde_json::Value` tree and then items, and a
//! tree costs far more than its text: `{"L":[]}` is 8 bytes of JSON and a few
//! hundred bytes of maps and vectors, so a 16 MB body of empty lists would
//! take gigabytes before any of DynamoDB's limits could refuse it. So before
//! a body is parsed, one streaming pass over it (nothing kept, strings
//! borrowed) counts what the tree will hold and estimates its memory
//! ([`parse_cost`]); the request then takes that much from a budget shared
//! by the requests in flight ([`ParseBudget`]), waits briefly when the
//! budget is taken, and is refused when it could never fit. The weights are
//! upper bounds measured with a counting allocator that counts what malloc
//! hands out (`tests/parse_memory.rs`), for the tree and the items built
//! from it, on shapes chosen to be expensive (vectors and maps just past a
//! doubling).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{ApiError, ApiResult, ErrorCode};

/// Bytes charged per JSON value (its slot in a vector or map, and the
/// engine value it may become).
const PER_VALUE: u64 = 300;
/// Bytes charged per non-empty object (its map's tables, and the attribute
/// map it may become).
const PER_OBJECT: u64 = 300;
/// Bytes charged per member of an object (its slot in the map's entries
/// and index tables, which grow by doubling).
const PER_ENTRY: u64 = 150;
/// Bytes charged per byte of string, key or number text.
const PER_TEXT_BYTE: u64 = 3;

/// What parsing a body will hold: the counts [`parse_cost`] weighs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub values: u64,
    pub objects: u64,
    pub entries: u64,
    pub text_bytes: u64,
}

impl Shape {
    /// The estimated peak bytes of the parse and of the items built from it.
    pub fn bytes(&self) -> u64 {
        self.values * PER_VALUE
            + self.objects * PER_OBJECT
            + self.entries * PER_ENTRY
            + self.text_bytes * PER_TEXT_BYTE
    }
}

/// Counts a body's values without building them. A body that is not JSON
/// fails here with the error the parse would give, having allocated nothing
/// that grows with the body.
pub fn parse_cost(body: &[u8]) -> Result<Shape, serde_json::Error> {
    let mut shape = Shape::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    Count(&mut shape).deserialize(&mut de)?;
    de.end()?;
    Ok(shape)
}

struct Count<'s>(&'s mut Shape);

impl<'de> DeserializeSeed<'de> for Count<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Count<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.values += 1;
        Ok(())
    }

    fn visit_str<E>(self, s: &str) -> Result<(), E> {
        self.0.values += 1;
        self.0.text_bytes += s.len() as u64;
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.values += 1;
        while seq.next_element_seed(Count(self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.values += 1;
        let mut entries = 0u64;
        while let Some(len) = map.next_key_seed(KeyLen)? {
            self.0.text_bytes += len;
            map.next_value_seed(Count(self.0))?;
            entries += 1;
        }
        if entries > 0 {
            self.0.objects += 1;
            self.0.entries += entries;
        }
        Ok(())
    }
}

/// A map key's length (keys are strings in JSON).
struct KeyLen;

impl<'de> DeserializeSeed<'de> for KeyLen {
    type Value = u64;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyLen {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E>(self, s: &str) -> Result<u64, E> {
        Ok(s.len() as u64)
    }
}

/// The memory the requests in flight may hold in parsed bodies, in KiB
/// permits. A request holds its share while it is handled.
#[derive(Clone)]
pub struct ParseBudget {
    permits: Arc<Semaphore>,
    total_kib: u32,
}

/// How long a request waits for its share before it is throttled.
const WAIT: Duration = Duration::from_secs(5);
/// How often a waiting request tries again.
const RETRY: Duration = Duration::from_millis(5);

impl ParseBudget {
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from((bytes / 1024).max(1)).unwrap_or(u32::MAX);
        Self {
            permits: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// The budget's size in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.total_kib) * 1024
    }

    /// Takes `shape`'s share: at once when it is free, after waiting a
    /// little when others hold it (ThrottlingException after that), never
    /// when the request alone is more than the whole budget.
    pub async fn take(&self, shape: Shape) -> ApiResult<OwnedSemaphorePermit> {
        let kib = shape.bytes().div_ceil(1024).max(1);
        let kib = match u32::try_from(kib) {
            Ok(k) if k <= self.total_kib => k,
            _ => {
                return Err(ApiError::validation(format!(
                    "Request is too complex: parsing its {} values would take about {} MB, more \
                     than the server's request memory ({} MB)",
                    shape.values,
                    shape.bytes() >> 20,
                    self.bytes() >> 20
                )))
            }
        };
        // Tried again every few milliseconds rather than queued: a queued
        // request holds the permits it has gathered, so one large body
        // waiting would make every small request wait behind it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match Arc::clone(&self.permits).try_acquire_many_owned(kib) {
                Ok(permit) => return Ok(permit),
                Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY).await;
                }
                Err(_) => {
                    return Err(ApiError::new(
                        ErrorCode::Throttling,
                        "Too much request data in flight: try again in a moment.",
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_values_objects_and_text() {
        let s = parse_cost(br#"{"Item": {"a": {"L": [{"S": "xy"}, {"NULL": true}]}}, "n": 1}"#)
            .unwrap();
        assert_eq!(s.values, 9);
        assert_eq!(s.objects, 5);
        assert_eq!(s.entries, 6);
        assert_eq!(s.text_bytes, "ItemaLSxyNULLn".len() as u64);
        // Empty objects allocate nothing and count as values only.
        assert_eq!(parse_cost(b"[{}, {}]").unwrap().objects, 0);
    }

    #[test]
    fn bad_json_fails_as_the_parse_would() {
        let cost = parse_cost(b"{\"a\": [1, 2,").unwrap_err().to_string();
        let parse = serde_json::from_slice::<serde_json::Value>(b"{\"a\": [1, 2,")
            .unwrap_err()
            .to_string();
        assert_eq!(cost, parse);
        assert!(parse_cost(b"{} x").is_err());
        // serde_json's recursion limit holds here too.
        assert!(parse_cost(&[b'['; 10_000]).is_err());
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_is_refused_and_others_wait_their_turn() {
        let budget = ParseBudget::new(1 << 20);
        let huge = Shape {
            values: 1 << 20,
            ..Shape::default()
        };
        let e = budget.take(huge).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Validation);
        let half = Shape {
            text_bytes: (1 << 19) / PER_TEXT_BYTE,
            ..Shape::default()
        };
        let a = budget.take(half).await.unwrap();
        let _b = budget.take(half).await.unwrap();
        tokio::time::pause();
        let e = budget.take(half).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::Throttling);
        drop(a);
        let _c = budget.take(half).await.unwrap();
        // A large request waiting does not hold back small ones.
        let small = Shape {
            values: 1,
            ..Shape::default()
        };
        let all = Shape {
            text_bytes: (1 << 20) / PER_TEXT_BYTE,
            ..Shape::default()
        };
        let big = tokio::spawn({
            let budget = budget.clone();
            async move { budget.take(all).await.map(drop) }
        });
        tokio::task::yield_now().await;
        drop(_c);
        let _s = budget.take(small).await.unwrap();
        drop(_b);
        drop(_s);
        big.await.unwrap().unwrap();
    }
}

//! The expiry sweep (time to live): deletes a table's expired items, as
//! conditional deletes stamped as the service's own.
//!
//! Run by `strata serve`'s maintenance loop and the compactor's schedule.
//! A sweep reads only what can hold an item due now: the log tails, and
//! the SSTs whose recorded first expiry has passed (`RunInfo::expiry`);
//! after reading an SST it remembers when that SST's next item falls due
//! and leaves it alone until then. Each candidate is deleted by a write
//! whose condition is "still expired", evaluated against the item's newest
//! version at commit: an item updated to a later expiry meanwhile is kept,
//! and one deleted or expired by someone else is not deleted twice.
//! Deletes of a partition are sent together, so group commit puts them in
//! a few log segments (one PUT each).

use super::*;
use crate::ops::WriteOp;
use crate::partition::{Expired, Source};
use crate::ttl::{self, TtlSetting};

/// What one sweep of one table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// SSTs read, and those passed over because nothing in them was due.
    pub ssts_read: u64,
    pub ssts_skipped: u64,
    /// Items found expired, and those deleted (the rest were changed or
    /// deleted since they were read).
    pub expired: u64,
    pub deleted: u64,
}

/// Per table: for each SST read (by partition and id), when its next item
/// falls due (None: never, by the attribute it was read under).
#[derive(Debug, Default)]
pub(crate) struct ExpiryMemo {
    attr: String,
    next_due: HashMap<(u32, String), Option<u64>>,
}

/// Deletes in flight at once: they share group commits.
const DELETES_IN_FLIGHT: usize = 512;

impl Engine {
    /// Deletes `table`'s items expired by now, when its TTL is on; takes a
    /// TTL change up (DescribeTimeToLive's ENABLING/DISABLING end here).
    pub async fn expire(&self, table: &str) -> Result<ExpiryReport> {
        let now = self.ctx.config.clock.now_ms() / 1000;
        self.expire_at(table, now).await
    }

    /// [`Engine::expire`] as if the time were `now` (epoch seconds).
    pub async fn expire_at(&self, table: &str, now: u64) -> Result<ExpiryReport> {
        let t = self.table(table).await?;
        let setting = TtlSetting::of(&t.desc);
        let mut report = ExpiryReport::default();
        if let Some(attr) = ttl::attribute(&t.desc) {
            // Taken out, and put back renewed when the sweep ends (a sweep
            // that fails forgets it: the next reads what it must again).
            let memo = self
                .expiry_memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(table)
                .filter(|m| m.attr == attr)
                .unwrap_or_default();
            let mut next = ExpiryMemo {
                attr: attr.clone(),
                next_due: HashMap::new(),
            };
            for p in t.leaves() {
                for source in p.expiry_sources(&attr, now).await? {
                    let id = match &source {
                        Source::Tail => None,
                        Source::Sst(sst) => Some((p.part, sst.id.clone())),
                    };
                    if let Some(due) = id.as_ref().and_then(|id| memo.next_due.get(id)) {
                        if due.is_none_or(|d| d >= now) {
                            report.ssts_skipped += 1;
                            next.next_due.extend(id.map(|id| (id, *due)));
                            continue;
                        }
                    }
                    let Expired { keys, next: due } = p.expired_in(&source, &attr, now).await?;
                    report.expired += keys.len() as u64;
                    report.deleted += self.delete_expired(table, keys, &attr, now).await?;
                    if let Some(id) = id {
                        report.ssts_read += 1;
                        next.next_due.insert(id, due);
                    }
                }
            }
            self.expiry_memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(table.to_string(), next);
        } else {
            self.expiry_memo
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(table);
        }
        if let Some(s) = setting.filter(|s| !s.settled) {
            self.settle_ttl(table, &s).await?;
        }
        Ok(report)
    }

    /// Deletes the items of `keys` that are still expired at `now` by
    /// `attr`; returns how many it deleted.
    async fn delete_expired(
        &self,
        table: &str,
        keys: Vec<ItemKey>,
        attr: &str,
        now: u64,
    ) -> Result<u64> {
        let mut deleted = 0;
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let writes = keys.by_ref().take(DELETES_IN_FLIGHT).map(|key| {
                let attr = attr.to_string();
                let still_expired: crate::ops::Condition =
                    Arc::new(move |item| Ok(item.is_some_and(|i| ttl::has_expired(i, &attr, now))));
                let op = WriteOp::expire(key).with_condition(still_expired);
                self.write(table, WriteRequest::single(op))
            });
            for result in futures::future::join_all(writes).await {
                match result {
                    Ok(c) if !c.replayed => deleted += 1,
                    Ok(_) | Err(Error::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// Marks the TTL change `s` taken up, unless it changed again since.
    async fn settle_ttl(&self, table: &str, s: &TtlSetting) -> Result<()> {
        self.update_table(table, |d| {
            let Some(mut current) = TtlSetting::of(d) else {
                return Ok(());
            };
            if current.changed_ms == s.changed_ms && current.enabled == s.enabled {
                current.settled = true;
                if let Some(meta) = d.meta.as_object_mut() {
                    current.store(meta);
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }
}

//! Finding a partition's expired items (time to live) for the engine's
//! expiry sweep (`Engine::expire`), which deletes them conditionally.
//!
//! Where expired items can be: the log tail in memory, and SSTs. Each SST
//! records the earliest expiry of its live items (`RunInfo::expiry`), so
//! an SST with nothing due is never read; one that is due is read in
//! order, a block at a time, and the sweep learns when its next item falls
//! due, so it is not read again before then.

use super::*;

/// The log tail's or one SST's expired items, and when the next of its
/// items falls due.
pub(crate) struct Expired {
    /// Keys whose version here has expired: candidates only (a newer
    /// version elsewhere may not have); the delete's condition decides.
    pub keys: Vec<crate::value::ItemKey>,
    /// The earliest expiry after the sweep's `now` among its live items.
    pub next: Option<u64>,
}

/// Where a partition's items may be: its tail, or one SST.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Tail,
    Sst(RunInfo),
}

impl Partition {
    /// Where items expired at `now` (epoch seconds) by attribute `attr`
    /// may be, by the newest manifest: the tail and every SST whose
    /// recorded first expiry is due or unknown (written under another
    /// attribute, or before SSTs recorded it).
    pub(crate) async fn expiry_sources(&self, attr: &str, now: u64) -> Result<Vec<Source>> {
        self.ensure_fresh(false).await?;
        let manifest = Arc::clone(&self.read_view().manifest);
        let mut out = vec![Source::Tail];
        for sst in manifest.levels.iter().flat_map(|r| &r.ssts) {
            let due = match &sst.expiry {
                Some(e) if e.attr == attr => e.first.is_some_and(|f| f < now),
                _ => true,
            };
            if due {
                out.push(Source::Sst(sst.clone()));
            }
        }
        Ok(out)
    }

    /// The items of `source` expired at `now` by `attr`, and when its next
    /// item falls due. Memory: the keys found and one block of the SST.
    pub(crate) async fn expired_in(
        &self,
        source: &Source,
        attr: &str,
        now: u64,
    ) -> Result<Expired> {
        let mut found = Expired {
            keys: Vec::new(),
            next: None,
        };
        let schema = &self.table.key_schema;
        // Whether the version is due (its key is then a candidate).
        let mut see = |v: &Version| {
            if v.deleted {
                return false;
            }
            match crate::ttl::expires_at(&v.item, attr) {
                Some(at) if crate::ttl::is_due(at, now) => {
                    if let Ok(key) = schema.key_of(&v.item) {
                        found.keys.push(key);
                        return true;
                    }
                }
                Some(at) if at >= now => found.next = Some(found.next.map_or(at, |n| n.min(at))),
                _ => {}
            }
            false
        };
        match source {
            Source::Tail => {
                let v = self.read_view();
                for version in v.mem.values() {
                    see(version);
                }
            }
            Source::Sst(sst) => {
                let span = Span::all();
                let fetch = Fetch::ReadAhead(self.ctx.config.read_ahead_bytes);
                let mut cursor = merge::SstCursor::open(self, sst, &span, fetch).await?;
                let mut cached = None;
                while let Some((_, version)) = cursor.peek(self, &span, fetch).await? {
                    // The delete's condition reads the key's block again:
                    // it is read already, so it is cached, once.
                    if see(&version) && cached != cursor.block_index() {
                        cached = cursor.cache_block(self);
                    }
                    cursor.advance(true);
                }
            }
        }
        Ok(found)
    }
}

//! Ingest: a partition filled from a stream of versions in key order (a
//! restore) without a commit per item, SST by SST, in bounded memory.

use super::levels::bottom_level_for;
use super::publish::{Derived, PublishOutcome, SstSink};
use super::*;

/// Versions being added as a partition's oldest data (see
/// [`Partition::ingest`]).
pub(crate) struct Ingest<'a> {
    part: &'a Partition,
    sink: SstSink<'a>,
    last: Option<Vec<u8>>,
}

impl Partition {
    /// Starts adding versions, pushed in strictly increasing key order, as
    /// one sorted run below every other: whatever the log or newer runs
    /// hold for a key still wins. Holds one SST at a time; published by
    /// [`Ingest::finish`] as one manifest.
    pub(crate) fn ingest(&self) -> Ingest<'_> {
        Ingest {
            part: self,
            sink: SstSink::new(self),
            last: None,
        }
    }
}

impl Ingest<'_> {
    pub(crate) async fn push(&mut self, key: &[u8], v: &Version) -> Result<()> {
        if self.last.as_deref().is_some_and(|l| key <= l) {
            return Err(Error::Validation(
                "ingested keys must be in strictly increasing order".into(),
            ));
        }
        self.last = Some(key.to_vec());
        self.sink.push(key, v).await
    }

    pub(crate) async fn finish(self) -> Result<()> {
        let part = self.part;
        let (outputs, first_sent) = self.sink.finish().await?;
        if outputs.is_empty() {
            return Ok(());
        }
        let bytes: u64 = outputs.iter().map(|o| o.size).sum();
        let now_ms = part.clock().now_ms();
        let config = &part.ctx.config;
        let derive = |current: &Manifest| {
            let deepest = current.levels.iter().map(|r| r.level).max().unwrap_or(0);
            let mut levels = current.levels.clone();
            levels.push(SortedRun {
                level: bottom_level_for(config, bytes, deepest),
                ssts: outputs.clone(),
            });
            Derived::Next(current.next_with(levels, now_ms))
        };
        match part.publish(&outputs, first_sent, derive).await? {
            PublishOutcome::Published(_) | PublishOutcome::AlreadyIn(_) => Ok(()),
            PublishOutcome::Stale => Err(Error::store_msg(
                &part.paths.manifest_dir(),
                "ingest could not publish its SSTs",
            )),
        }
    }
}

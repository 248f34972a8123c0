//! Ingest: a partition filled from a stream of versions in key order (a
//! restore, an import) without a commit per item, SST by SST, in bounded
//! memory; or given SSTs copied into it whole (`adopt`: a restore by copy).

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

impl Partition {
    /// Publishes `levels`, whose SSTs were just put under this partition's
    /// `runs/` (copied from a backup at `since`), as all the partition
    /// holds: only over an empty manifest (a table being restored into);
    /// anything else is an error.
    pub(crate) async fn adopt(&self, levels: Vec<SortedRun>, since: Tick) -> Result<()> {
        let outputs: Vec<RunInfo> = levels.iter().flat_map(|r| r.ssts.clone()).collect();
        if outputs.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock().now_ms();
        let derive = |current: &Manifest| {
            if current.has_data() {
                return Derived::Stale;
            }
            Derived::Next(current.next_with(levels.clone(), now_ms))
        };
        match self.publish(&outputs, Some(since), derive).await? {
            PublishOutcome::Published(_) | PublishOutcome::AlreadyIn(_) => Ok(()),
            PublishOutcome::Stale => Err(Error::store_msg(
                &self.paths.manifest_dir(),
                "the partition took data while it was being restored into",
            )),
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

    /// Publishes the run below everything the partition holds (a restore:
    /// writes made meanwhile stay newer).
    pub(crate) async fn finish(self) -> Result<()> {
        self.publish(false).await
    }

    /// Publishes the run as the partition's newest level-0 run (an import
    /// batch: a later batch's item for a key replaces an earlier one's, and
    /// compaction merges the batches as it merges flushes).
    pub(crate) async fn finish_on_top(self) -> Result<()> {
        self.publish(true).await
    }

    async fn publish(self, on_top: bool) -> Result<()> {
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
            if on_top {
                levels.insert(
                    0,
                    SortedRun {
                        level: 0,
                        ssts: outputs.clone(),
                    },
                );
            } else {
                levels.push(SortedRun {
                    level: bottom_level_for(config, bytes, deepest),
                    ssts: outputs.clone(),
                });
            }
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

//! What an engine can tell about itself and its tables: the counters of
//! compaction, group commit and the caches, and per table its partitions'
//! runs, tails, views and estimated items (DescribeTable's ItemCount and
//! TableSizeBytes).

use super::*;
use crate::run::LiveItems;

impl Engine {
    /// What compaction has cost this process so far: flushes and merges,
    /// their seconds, bytes and requests.
    pub fn compaction_stats(&self) -> CompactionStats {
        self.ctx.compaction.snapshot()
    }

    /// Log PUTs this engine sent, the segments its group commits appended,
    /// and the items they wrote.
    pub fn commit_stats(&self) -> CommitStats {
        self.ctx.commits.snapshot()
    }

    /// Hits, misses, evictions and bytes of each cache (blocks, items, pages).
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        self.ctx.cache.stats()
    }

    /// Per partition: its sorted runs (level, SSTs with sizes and key
    /// ranges), newest first, as the newest manifest lists them.
    pub async fn partition_levels(&self, table: &str) -> Result<Vec<Vec<SortedRun>>> {
        let t = self.table(table).await?;
        let mut out = Vec::new();
        for p in t.leaves() {
            out.push(p.levels().await?);
        }
        Ok(out)
    }

    /// Per partition: the memory its log tail holds in this engine (items
    /// at `value::item_footprint`; what the write stall bounds).
    pub async fn tail_bytes(&self, table: &str) -> Result<Vec<usize>> {
        let t = self.table(table).await?;
        Ok(t.leaves().map(|p| p.tail_bytes()).collect())
    }

    /// An estimate of a stored table's items and their DynamoDB size (what
    /// ItemCount and TableSizeBytes report): the live items of the SSTs its
    /// live partitions' manifests list. Writes still in a log tail count
    /// once a flush folds them (within a minute in `strata serve`, within
    /// the compaction schedule in AWS); until compaction merges the runs,
    /// an item rewritten since its SST was written counts once per run it
    /// is in, and a delete is taken to hide one item (a delete of a missing
    /// item too); an SST a split's child inherited counts half in each
    /// child (see `Partition::live_items`). An estimate, as DynamoDB's
    /// (refreshed about every six hours) is.
    pub async fn table_stats(&self, table: &str) -> Result<LiveItems> {
        let t = self.table(table).await?;
        let mut total = LiveItems::default();
        for p in t.leaves() {
            p.ensure_fresh(false).await?;
            total += p.live_items();
        }
        Ok(total)
    }

    /// What a table's storage looks like to this engine: per live
    /// partition its log, levels and last compaction (as the newest
    /// manifest it knows says), and the splits the table has had. For the
    /// console's storage page; no request beyond a refresh of each view.
    pub async fn storage(&self, table: &str) -> Result<TableStorage> {
        let t = self.table(table).await?;
        let mut partitions = Vec::new();
        for id in t.desc.map().leaves() {
            if let Some(p) = t.partitions.get(&id) {
                p.ensure_fresh(false).await?;
                partitions.push(p.storage(id));
            }
        }
        Ok(TableStorage {
            partitions,
            splits: t.desc.splits.clone(),
        })
    }

    /// Per live partition: (log tail seq, compacted_through, manifest
    /// version) as this engine's views see them.
    pub async fn partition_stats(&self, table: &str) -> Result<Vec<(u64, u64, u64)>> {
        let t = self.table(table).await?;
        Ok(t.leaves().map(|p| p.stats()).collect())
    }
}

/// A table's storage as one engine sees it ([`Engine::storage`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableStorage {
    pub partitions: Vec<PartitionStorage>,
    /// Every split the table has had, oldest first.
    pub splits: Vec<crate::partition_map::SplitRecord>,
}

/// One live partition's log and sorted runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionStorage {
    pub partition: u32,
    /// The newest log segment this engine has applied, and the newest one
    /// folded into SSTs: the log holds the segments between.
    pub log_tail: u64,
    pub compacted_through: u64,
    /// Memory the log tail holds in this engine.
    pub tail_bytes: usize,
    pub manifest_version: u64,
    /// When the newest manifest (the last flush or merge) was written, ms
    /// since the epoch.
    pub last_compaction_ms: u64,
    /// Sorted runs, newest first.
    pub runs: Vec<RunStorage>,
}

/// One sorted run: its level, SSTs and bytes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunStorage {
    pub level: u32,
    pub ssts: usize,
    pub bytes: u64,
}

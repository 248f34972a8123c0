//! One partition of one table: its view of the log, the commit protocol,
//! reads, compaction and GC.
//!
//! # The view
//! An instance holds, per partition, the newest manifest it knows, the log
//! tail `t` it has applied, and the items of segments after the manifest's
//! `compacted_through` in memory (`mem`). Two instants make the view safe to
//! use (see ARCHITECTURE.md for the argument):
//!
//! - `tail_checked` (R): every log segment with seq > `t` was created after R.
//!   A probe of `log/<t+1>` that finds nothing, or a create of `log/<t+1>`
//!   sent at R, establishes it.
//! - `manifest_checked` (F): at F, no manifest newer than ours existed.
//!
//! GC deletes a compacted segment, a superseded manifest or an unreferenced
//! run only `gc_grace` (+ clock skew) after the manifest that made it
//! garbage. A view whose R and F are younger than `gc_grace / 2` therefore
//! cannot be fooled by a deletion: a `log/<t+1>` that is absent was never
//! created, so creating it cannot be swallowed by compaction, and a manifest's
//! runs still exist. Older views are refreshed before use.
//!
//! # Files
//! One concern each: `view` (what an instance holds), `refresh` (bringing
//! it up to date), `read` and `merge` (point and range reads), `evaluate`
//! (conditions and updates), `commit` (group commit), `append` (the one
//! conditional-append loop every log write goes through), `replicated`
//! (last-writer-wins applies), `history` (point-in-time plans and chunked
//! reads), `log` (stream reads), `compaction`, `gc`.

mod append;
mod commit;
mod compaction;
mod evaluate;
mod expiry;
mod gc;
mod history;
mod ingest;
mod levels;
mod locks;
mod log;
mod merge;
mod publish;
mod read;
mod refresh;
mod replicated;
mod seal;
mod stats;
mod view;

use append::{IfUnresolved, Proposal, Refresh};
use commit::{Evaluated, Pending};
pub use compaction::CompactionOutcome;
pub(crate) use evaluate::check_limits;
pub(crate) use expiry::{Expired, Source};
pub use gc::GcReport;
pub use history::PointInTimePlan;
pub(crate) use locks::{Attempt, Prepared, Refusal, TxnAction, ALL_KEYS};
pub use log::LogRead;
pub(crate) use merge::{above_lo, below_hi};
use merge::{is_empty_range, Fetch, Merger, Span};
pub(crate) use read::key_attributes;
use read::Fill;
pub use replicated::ReplicatedChange;
pub use stats::{CommitCounters, CommitStats, CompactionCounters, CompactionStats};
use view::{first_after, segment_bytes, View};

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::sync::oneshot;

use crate::cache::{Caches, PageKey};
use crate::catalog::TableDescriptor;
use crate::clock::{Clock, Tick};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::io::{self, Created};
use crate::keys::encode_key;
use crate::manifest::{FoldedToken, Manifest, SealMark, SortedRun};
use crate::ops::{Change, Committed, Page, WriteOutcome, WriteRequest};
use crate::partition_map::{self as map, Owner};
use crate::paths::{self, PartitionPaths};
use crate::run::{Block, RunInfo, RunMeta, Version};
use crate::segment::{LogSegment, Mutation, Stamp};
use crate::txn::{Intent, Release, TxnId};
use crate::value::{item_footprint, item_size, nesting_depth, Item, MAX_ITEM_SIZE, MAX_NESTING};

/// Races lost in a row before a commit gives up with `Contention`.
const MAX_COMMIT_ATTEMPTS: usize = 256;
/// Segments a partition remembers after applying them (see `recent`), and
/// the most item bytes they may hold.
const RECENT_SEGMENTS: usize = 128;
const RECENT_BYTES: usize = 1 << 20;
/// Consecutive segments found by probing before switching to a LIST.
const PROBES_BEFORE_LIST: usize = 4;

/// What every partition shares: the store, the settings, the block cache.
pub(crate) struct Ctx {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub config: EngineConfig,
    pub cache: Caches,
    /// Memory every partition's log tail holds (`entry_bytes`; what the
    /// engine-wide write stall bounds, see `wait_for_room`).
    pub tail_bytes: AtomicUsize,
    /// Permits for merges (`max_concurrent_merges`): what bounds the memory
    /// of many partitions compacting at once.
    pub merge_slots: tokio::sync::Semaphore,
    /// Permits for flushes (`max_concurrent_flushes`): each holds the SST
    /// it writes, so many partitions flushing at once must take turns.
    pub flush_slots: tokio::sync::Semaphore,
    /// What compaction has cost this process.
    pub compaction: CompactionCounters,
    /// Transactions' decisions met lately (immutable, so cached).
    pub decisions: crate::txn::Decisions,
    /// Log PUTs this process sent, the segments its group commits
    /// appended, and the items they wrote.
    pub commits: CommitCounters,
}

/// A write lock on a partition's view that keeps the engine's total of
/// tail bytes up to date when it is released.
struct ViewWrite<'a> {
    guard: std::sync::RwLockWriteGuard<'a, View>,
    total: &'a AtomicUsize,
    before: usize,
}

impl std::ops::Deref for ViewWrite<'_> {
    type Target = View;
    fn deref(&self) -> &View {
        &self.guard
    }
}

impl std::ops::DerefMut for ViewWrite<'_> {
    fn deref_mut(&mut self) -> &mut View {
        &mut self.guard
    }
}

impl Drop for ViewWrite<'_> {
    fn drop(&mut self) {
        let after = self.guard.mem_bytes;
        if after > self.before {
            self.total.fetch_add(after - self.before, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(self.before - after, Ordering::Relaxed);
        }
    }
}

pub(crate) struct Partition {
    ctx: Arc<Ctx>,
    pub table: Arc<TableDescriptor>,
    pub part: u32,
    paths: PartitionPaths,
    /// The keys this partition owns (what it filters inherited SSTs by).
    owner: Owner,
    /// Split from another partition: its `manifest/1` was made at the
    /// split, so a partition without one has lost it.
    child: bool,
    /// This partition's name in the caches (its prefix, which includes the
    /// table incarnation: a re-created table never meets old entries).
    cache_id: Arc<str>,
    view: RwLock<View>,
    /// Serializes everything that advances the view through the store.
    sync: tokio::sync::Mutex<()>,
    pending: std::sync::Mutex<Vec<Pending>>,
    /// A flush of the log tail is running in this process.
    flushing: AtomicBool,
    /// Merges are running in this process (beside which flushes go on, so
    /// the tail in memory stays bounded while a long merge runs).
    merging: AtomicBool,
    /// Told after each flush, when the tail in memory may have shrunk
    /// (what stalled writers wait for).
    flushed: tokio::sync::Notify,
    /// Where the commit-rate window began: when, at which tail.
    rate_window: std::sync::Mutex<Option<(Tick, u64)>>,
    /// When the compaction hook was last called for this partition.
    hooked: std::sync::Mutex<Option<Tick>>,
    /// No log segment before this one exists any more (a lower bound).
    first_retained: std::sync::atomic::AtomicU64,
    /// The last segments this instance applied, so a stream reader or a
    /// replicator on it does not fetch them a second time.
    recent: std::sync::Mutex<std::collections::VecDeque<Arc<LogSegment>>>,
    /// When this instance last lost an append race on this partition (see
    /// `append_loop`: while contended, a round looks at the log's tail
    /// before it proposes).
    lost_race: std::sync::Mutex<Option<Tick>>,
}

impl Partition {
    pub fn new(ctx: Arc<Ctx>, table: Arc<TableDescriptor>, part: u32) -> Self {
        let paths = PartitionPaths::new(&table.name, &table.incarnation, part);
        let cache_id: Arc<str> = Arc::from(paths.root());
        let owner = Owner {
            node: map::node_of(table.partitions, part),
            hash_type: table.key_schema.hash.key_type,
        };
        let child = map::parent(table.partitions, part).is_some();
        Self {
            ctx,
            table,
            part,
            paths,
            owner,
            child,
            cache_id,
            view: RwLock::new(View::default()),
            sync: tokio::sync::Mutex::new(()),
            pending: std::sync::Mutex::new(Vec::new()),
            flushing: AtomicBool::new(false),
            merging: AtomicBool::new(false),
            flushed: tokio::sync::Notify::new(),
            rate_window: std::sync::Mutex::new(None),
            hooked: std::sync::Mutex::new(None),
            first_retained: std::sync::atomic::AtomicU64::new(1),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
            lost_race: std::sync::Mutex::new(None),
        }
    }

    fn store(&self) -> &dyn object_store::ObjectStore {
        self.ctx.store.as_ref()
    }

    /// Where an SST this partition lists is stored: under its own prefix,
    /// or under the ancestor's it was inherited from.
    fn sst_path(&self, sst: &RunInfo) -> Path {
        match sst.inherited_from(self.part) {
            Some(home) => {
                PartitionPaths::new(&self.table.name, &self.table.incarnation, home).run(&sst.id)
            }
            None => self.paths.run(&sst.id),
        }
    }

    /// Bytes of items this partition holds, as its manifest and tail
    /// tell: an inherited SST counts for the share of its keys this
    /// partition owns (what splits are decided by).
    pub fn owned_bytes(&self) -> u64 {
        let v = self.read_view();
        let ssts: f64 = v
            .manifest
            .ssts()
            .map(|s| match s.inherited_from(self.part) {
                Some(home) => {
                    let ancestor = map::node_of(self.table.partitions, home);
                    s.size as f64 * self.owner.share_of(ancestor)
                }
                None => s.size as f64,
            })
            .sum();
        ssts as u64 + v.mem_bytes as u64
    }

    /// The seal that ended this partition's log, if the view has met one.
    pub fn sealed(&self) -> Option<SealMark> {
        self.read_view().sealed
    }

    /// Writes, and reads that route by key, are refused by a sealed
    /// partition (its children may hold newer writes); the engine routes
    /// them again.
    fn check_not_sealed(&self) -> Result<()> {
        match self.read_view().sealed {
            Some(_) => Err(Error::Sealed {
                table: self.table.name.clone(),
                partition: self.part,
            }),
            None => Ok(()),
        }
    }

    fn clock(&self) -> &Clock {
        &self.ctx.config.clock
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_view(&self) -> ViewWrite<'_> {
        let guard = self.view.write().unwrap_or_else(|p| p.into_inner());
        let before = guard.mem_bytes;
        ViewWrite {
            guard,
            total: &self.ctx.tail_bytes,
            before,
        }
    }

    /// Log tail length and manifest version, for tests and metrics.
    pub fn stats(&self) -> (u64, u64, u64) {
        let v = self.read_view();
        (v.tail, v.manifest.compacted_through, v.manifest.version)
    }

    /// The partition as the console's storage page shows it.
    pub fn storage(&self, id: u32) -> crate::engine::PartitionStorage {
        let v = self.read_view();
        crate::engine::PartitionStorage {
            partition: id,
            log_tail: v.tail,
            compacted_through: v.manifest.compacted_through,
            tail_bytes: v.mem_bytes,
            manifest_version: v.manifest.version,
            last_compaction_ms: v.manifest.created_at_ms,
            runs: v
                .manifest
                .levels
                .iter()
                .map(|r| crate::engine::RunStorage {
                    level: r.level,
                    ssts: r.ssts.len(),
                    bytes: r.bytes(),
                })
                .collect(),
        }
    }

    /// Bytes the partition's newest known runs and tail hold (runs
    /// inherited from a parent count whole: an upper bound).
    pub fn size_bound(&self) -> u64 {
        let v = self.read_view();
        v.manifest.levels.iter().map(|r| r.bytes()).sum::<u64>() + v.mem_bytes as u64
    }

    /// An estimate of the partition's items from the SSTs the view's
    /// manifest lists (see `Engine::table_stats`): their live items, less
    /// one for each tombstone above the bottom run (a delete most likely
    /// hides an item below it, at the average item size). An SST inherited
    /// at a split counts half, each child holding about half its keys.
    pub fn live_items(&self) -> crate::run::LiveItems {
        manifest_live_items(&self.read_view().manifest, self.part)
    }

    /// Memory the view's tail holds (see `entry_bytes`).
    pub fn tail_bytes(&self) -> usize {
        self.read_view().mem_bytes
    }

    /// The sorted runs of the newest manifest, after a strong refresh.
    pub async fn levels(&self) -> Result<Vec<SortedRun>> {
        self.ensure_fresh(true).await?;
        Ok(self.read_view().manifest.levels.clone())
    }
}

impl Drop for Partition {
    /// A partition dropped (a table reinstalled or forgotten) no longer
    /// holds its tail.
    fn drop(&mut self) {
        let held = self
            .view
            .get_mut()
            .map_or_else(|p| p.into_inner().mem_bytes, |v| v.mem_bytes);
        self.ctx.tail_bytes.fetch_sub(held, Ordering::Relaxed);
    }
}

/// Partition `part`'s live items as manifest `m` lists them (see
/// `Partition::live_items`).
pub(crate) fn manifest_live_items(m: &Manifest, part: u32) -> crate::run::LiveItems {
    let runs = &m.levels;
    let (mut items, mut bytes, mut hiding) = (0u64, 0u64, 0u64);
    for (i, run) in runs.iter().enumerate() {
        for sst in &run.ssts {
            let share = if sst.inherited_from(part).is_some() {
                2
            } else {
                1
            };
            let live = sst.live_items();
            items += live.items / share;
            bytes += live.bytes / share;
            if i + 1 < runs.len() {
                hiding += sst.entries.saturating_sub(live.items) / share;
            }
        }
    }
    let average = bytes.checked_div(items).unwrap_or(0);
    crate::run::LiveItems {
        items: items.saturating_sub(hiding),
        bytes: bytes.saturating_sub(hiding * average),
    }
}

//! Engine settings. The defaults are for production; tests shorten the
//! time-based ones.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;

/// Called with (table, partition) when a partition's log tail passes its
/// compaction threshold, instead of compacting in this process. In Lambda,
/// where an instance is frozen between invocations, the API function uses
/// it to invoke the compactor function asynchronously.
#[derive(Clone)]
pub struct CompactionHook(pub Arc<CompactionFn>);

/// The hook's function: (table, partition).
pub type CompactionFn = dyn Fn(&str, u32) + Send + Sync;

impl std::fmt::Debug for CompactionHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CompactionHook")
    }
}

/// How compaction shapes a partition's sorted runs. Both keep memory
/// bounded; they trade write amplification against read and space
/// amplification (the `levels` bench measures all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionPolicy {
    /// One sorted run per level, each `level_ratio` times the one above;
    /// an oversized level pushes one SST at a time into the next. Point
    /// reads touch one SST per level; little space beyond the data.
    Leveled,
    /// Runs of similar size are merged `max_runs` at a time into one run
    /// of the next tier. Writes less, keeps more runs (reads and space).
    Tiered,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The region stamped on every commit as its origin.
    pub region: String,
    /// Partitions of a new table when CreateTable does not say.
    pub default_partitions: u32,
    /// How long a compacted log segment, a superseded manifest or an
    /// unreferenced run survives before GC may delete it. Writers and readers
    /// re-check their view at least every half of this, which is what makes
    /// it safe (see ARCHITECTURE.md, "no invisible acknowledged write").
    pub gc_grace: Duration,
    /// Largest clock difference between instances that GC tolerates.
    pub clock_skew: Duration,
    /// How long compacted log segments are kept in any case (the change
    /// history that streams and point-in-time restore read).
    pub log_retention: Duration,
    /// An eventually consistent read may be served from a view this old.
    pub eventual_staleness: Duration,
    /// How long a cached table descriptor is trusted before it is re-checked.
    pub catalog_staleness: Duration,
    /// Compact a partition once its log tail holds this many segments...
    pub compact_after_segments: u64,
    /// ...or holds this much memory of items (`value::item_footprint`, about
    /// twice their DynamoDB size).
    pub compact_after_bytes: usize,
    /// Past this much memory in a partition's tail, writes wait for
    /// the flush this process runs (the write stall; not with a
    /// compaction hook, where another process flushes).
    pub max_tail_bytes: usize,
    /// The same for every partition's tail together: past it, a write to a
    /// partition whose tail is past `compact_after_bytes` waits for that
    /// partition's flush, so memory stays bounded however many
    /// partitions this process writes to.
    pub max_total_tail_bytes: usize,
    /// Start compactions in the background when a threshold is passed.
    pub auto_compact: bool,
    /// When set, a passed threshold calls this (at most every
    /// `compaction_hook_interval` per partition) instead of compacting here.
    pub compaction_hook: Option<CompactionHook>,
    pub compaction_hook_interval: Duration,
    /// Level-0 sorted runs (flushes of the log) that trigger a merge into
    /// level 1; under the tiered policy, how many runs of a size are merged.
    pub max_runs: usize,
    /// Target size of an SST's data blocks.
    pub block_size: usize,
    /// Target size of an SST: compactions cut their output here and hold
    /// at most one SST being written.
    pub sst_bytes: usize,
    /// Target size of level 1; each deeper level is `level_ratio` times
    /// the one above.
    pub level_base_bytes: u64,
    pub level_ratio: u64,
    /// Bytes a compaction reads ahead per input sorted run, in one ranged GET.
    pub read_ahead_bytes: usize,
    /// How sorted runs are merged (see `CompactionPolicy`).
    pub compaction_policy: CompactionPolicy,
    /// Merges this process runs at once, across all its partitions (each
    /// holds up to `compaction_memory`); others wait their turn.
    pub max_concurrent_merges: usize,
    /// Flushes this process runs at once, across all its partitions (each
    /// holds the SST it writes, up to `sst_bytes`); writers past the tail
    /// bounds wait for them.
    pub max_concurrent_flushes: usize,
    /// A partition holding more than this many bytes is split in two by
    /// its compaction (DynamoDB's 10 GB per partition).
    pub split_bytes: u64,
    /// Largest item collection (a partition-key value's items) of a table
    /// with local indexes: writes that add to a bigger one are refused
    /// (DynamoDB's 10 GB).
    pub max_item_collection_bytes: u64,
    /// A partition whose log grows by more than this many segments a second
    /// for `split_window` is split too (S3 serves some 3,500 PUTs a second
    /// per prefix; one partition's log is one sequence). 0: never.
    pub split_commits_per_sec: u64,
    pub split_window: Duration,
    /// Bytes the caches may hold in all (blocks, items, pages). Defaults to
    /// 40% of a Lambda function's memory, else 10% of the machine's.
    pub cache_bytes: u64,
    /// How long a client request token is remembered for idempotent retries.
    pub token_window: Duration,
    /// Tombstones older than this are dropped when runs are fully merged.
    pub tombstone_retention: Duration,
    /// Wall-clock and elapsed time (tests skew or jump it).
    pub clock: Clock,
    /// How long a partition's group commit waits for more writes before it
    /// appends (0: not at all). Each commit is one conditional PUT: waiting
    /// W ms turns the writes that arrive meanwhile into one PUT, trading
    /// up to W ms of latency for fewer requests (the cost of a busy table
    /// on S3). `--commit-window-ms`, `STRATA_COMMIT_WINDOW_MS`.
    pub commit_window: Duration,
    /// DynamoDB takes one UpdateTimeToLive per table per hour; this is
    /// that interval (0, the default: no limit). A change sooner is a
    /// ValidationException. `STRATA_TTL_CHANGE_INTERVAL_SECS`.
    pub ttl_change_interval: Duration,
    /// How long a transaction may take from its first prepare to its
    /// decision; past it, whoever meets one of its locks with no decision
    /// aborts it.
    pub txn_timeout: Duration,
}

/// Longest commit window accepted: a write waits at most this long for
/// company.
pub const MAX_COMMIT_WINDOW_MS: u64 = 1_000;

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            region: "local".to_string(),
            default_partitions: 8,
            gc_grace: Duration::from_secs(600),
            clock_skew: Duration::from_secs(30),
            log_retention: Duration::from_secs(24 * 3600),
            eventual_staleness: Duration::from_secs(1),
            catalog_staleness: Duration::from_secs(1),
            compact_after_segments: 512,
            compact_after_bytes: 32 << 20,
            max_tail_bytes: 64 << 20,
            max_total_tail_bytes: 128 << 20,
            auto_compact: true,
            compaction_hook: None,
            compaction_hook_interval: Duration::from_secs(30),
            max_runs: 4,
            block_size: 32 << 10,
            sst_bytes: 16 << 20,
            level_base_bytes: 64 << 20,
            level_ratio: 10,
            read_ahead_bytes: 1 << 20,
            compaction_policy: CompactionPolicy::Leveled,
            max_concurrent_merges: 2,
            max_concurrent_flushes: 2,
            split_bytes: 10 << 30,
            max_item_collection_bytes: 10 << 30,
            split_commits_per_sec: 1_000,
            split_window: Duration::from_secs(60),
            cache_bytes: crate::cache::default_cache_bytes(),
            token_window: Duration::from_secs(600),
            // Log retention plus a margin (see `set_log_retention`).
            tombstone_retention: Duration::from_secs(25 * 3600),
            clock: Clock::system(),
            commit_window: Duration::ZERO,
            ttl_change_interval: Duration::ZERO,
            txn_timeout: Duration::from_secs(10),
        }
    }
}

/// How much longer than the log a tombstone lives: a replicator treats
/// segments older than the log retention as gone, so no version that old
/// is ever sent, and a delete outlives every version it could meet.
const TOMBSTONE_MARGIN: Duration = Duration::from_secs(3600);

impl EngineConfig {
    /// Defaults, overridden by the environment where set: `STRATA_REGION`
    /// (else `AWS_REGION`), `STRATA_PARTITIONS`, `STRATA_STALENESS_MS`,
    /// `STRATA_CACHE_MB`, `STRATA_COMPACT_AFTER_SEGMENTS`,
    /// `STRATA_LOG_RETENTION_HOURS` (stream retention; default 24).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
        let mut c = EngineConfig::default();
        if let Some(r) = var("STRATA_REGION").or_else(|| var("AWS_REGION")) {
            c.region = r;
        }
        if let Some(p) = num("STRATA_PARTITIONS") {
            c.default_partitions = p.clamp(1, 1024) as u32;
        }
        if let Some(ms) = num("STRATA_STALENESS_MS") {
            c.eventual_staleness = Duration::from_millis(ms);
        }
        if let Some(mb) = num("STRATA_CACHE_MB") {
            c.cache_bytes = mb << 20;
        }
        if let Some(n) = num("STRATA_COMPACT_AFTER_SEGMENTS") {
            c.compact_after_segments = n.max(1);
        }
        if let Some(h) = num("STRATA_LOG_RETENTION_HOURS") {
            c.set_log_retention(Duration::from_secs(h * 3600));
        }
        if let Some(secs) = num("STRATA_TTL_CHANGE_INTERVAL_SECS") {
            c.ttl_change_interval = Duration::from_secs(secs);
        }
        if let Some(ms) = num("STRATA_COMMIT_WINDOW_MS") {
            c.commit_window = Duration::from_millis(ms.min(MAX_COMMIT_WINDOW_MS));
        }
        c
    }

    /// How long GC keeps log segments (what streams can still read, and how
    /// long a replicator may be cut off and still resume from its cursor);
    /// tombstones are kept as long, so a delete outlives any older version
    /// still on its way from another region.
    pub fn set_log_retention(&mut self, d: Duration) {
        self.log_retention = d;
        self.tombstone_retention = d + TOMBSTONE_MARGIN;
    }

    /// A view (manifest and log tail) older than this must be re-checked
    /// before it is used to write or to serve a strong read.
    pub fn max_view_age(&self) -> Duration {
        self.gc_grace / 2
    }

    /// The buffer of an SST being written: cut past `sst_bytes`, the block
    /// that took it past, its meta block and its filter's input.
    pub fn sst_buffer_bytes(&self) -> usize {
        self.sst_bytes + self.sst_bytes / 8 + 2 * self.block_size
    }

    /// The most memory one compaction step holds beyond the log tail it
    /// flushes, whatever the partition's size: the SST being written (and
    /// its 8-byte-a-key bloom input), and per input sorted run its read-ahead
    /// buffer, one decoded block and the open SST's block index and filter.
    pub fn compaction_memory(&self, inputs: usize) -> usize {
        let writer = self.sst_buffer_bytes();
        let per_input = self.read_ahead_bytes + 4 * self.block_size + self.sst_bytes / 16;
        writer + inputs * per_input
    }
}

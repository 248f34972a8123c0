//! What compaction has cost this process: steps, seconds, bytes and
//! requests, so a bench can report the cost of compacting a GB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Running totals, kept by the flush and merge steps (see `Engine::
/// compaction_stats`).
#[derive(Debug, Default)]
pub struct CompactionCounters {
    flushes: AtomicU64,
    flush_micros: AtomicU64,
    flushed_bytes: AtomicU64,
    merges: AtomicU64,
    merge_micros: AtomicU64,
    merged_in_bytes: AtomicU64,
    merged_out_bytes: AtomicU64,
    merge_gets: AtomicU64,
    sst_puts: AtomicU64,
    gc_passes: AtomicU64,
    gc_deleted: AtomicU64,
}

/// A snapshot of [`CompactionCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CompactionStats {
    pub flushes: u64,
    /// Time spent in flushes (from the tail's copy to the manifest).
    pub flush_secs: f64,
    /// Bytes of the SSTs flushes wrote.
    pub flushed_bytes: u64,
    pub merges: u64,
    /// Time spent in merges (from the first read to the manifest).
    pub merge_secs: f64,
    /// Bytes of the input SSTs merges read, and of the SSTs they wrote.
    pub merged_in_bytes: u64,
    pub merged_out_bytes: u64,
    /// Ranged GETs merges made (SST meta blocks and read-ahead).
    pub merge_gets: u64,
    /// SSTs uploaded, by flushes and merges (one PUT each).
    pub sst_puts: u64,
    /// Table GC passes, and the objects they deleted (segments, manifests, SSTs).
    pub gc_passes: u64,
    pub gc_deleted: u64,
}

impl CompactionCounters {
    pub(super) fn flushed(&self, took: Duration, bytes: u64) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.flushed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(super) fn merged(&self, took: Duration, in_bytes: u64, out_bytes: u64) {
        self.merges.fetch_add(1, Ordering::Relaxed);
        self.merge_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.merged_in_bytes.fetch_add(in_bytes, Ordering::Relaxed);
        self.merged_out_bytes
            .fetch_add(out_bytes, Ordering::Relaxed);
    }

    pub(super) fn merge_get(&self) {
        self.merge_gets.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn sst_put(&self) {
        self.sst_puts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn collected(&self, deleted: u64) {
        self.gc_passes.fetch_add(1, Ordering::Relaxed);
        self.gc_deleted.fetch_add(deleted, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CompactionStats {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CompactionStats {
            flushes: n(&self.flushes),
            flush_secs: n(&self.flush_micros) as f64 / 1e6,
            flushed_bytes: n(&self.flushed_bytes),
            merges: n(&self.merges),
            merge_secs: n(&self.merge_micros) as f64 / 1e6,
            merged_in_bytes: n(&self.merged_in_bytes),
            merged_out_bytes: n(&self.merged_out_bytes),
            merge_gets: n(&self.merge_gets),
            sst_puts: n(&self.sst_puts),
            gc_passes: n(&self.gc_passes),
            gc_deleted: n(&self.gc_deleted),
        }
    }
}

/// The log's running totals (see `Engine::commit_stats`): creates of log
/// segments sent (each a billed PUT, lost races, seals and replicated
/// applies included), segments group commits appended, and the items they
/// wrote. Writes per PUT is what the commit window buys.
#[derive(Debug, Default)]
pub struct CommitCounters {
    puts: AtomicU64,
    segments: AtomicU64,
    writes: AtomicU64,
}

/// A snapshot of [`CommitCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommitStats {
    pub puts: u64,
    pub segments: u64,
    pub writes: u64,
}

impl CommitStats {
    /// Items written per log PUT sent; 0 before the first.
    pub fn writes_per_put(&self) -> f64 {
        if self.puts == 0 {
            0.0
        } else {
            self.writes as f64 / self.puts as f64
        }
    }
}

impl std::ops::Sub for CommitStats {
    type Output = CommitStats;
    fn sub(self, earlier: CommitStats) -> CommitStats {
        CommitStats {
            puts: self.puts.saturating_sub(earlier.puts),
            segments: self.segments.saturating_sub(earlier.segments),
            writes: self.writes.saturating_sub(earlier.writes),
        }
    }
}

impl CommitCounters {
    pub(super) fn put_sent(&self) {
        self.puts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn appended(&self, writes: u64) {
        self.segments.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> CommitStats {
        CommitStats {
            puts: self.puts.load(Ordering::Relaxed),
            segments: self.segments.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
        }
    }
}

//! Compaction: the log tail flushed into a level-0 sorted run, then the
//! merges the policy asks for (see `levels`), each a streaming k-way merge
//! that cuts and uploads SSTs as they fill and publishes one manifest.
//! Memory per step is bounded by `EngineConfig::compaction_memory`,
//! whatever the partition's size.

use super::levels::{next_merge, MergePlan};
use super::publish::{Derived, PublishOutcome, SstSink};
use super::*;

/// Merges one `compact` call may run after its flush (the next call goes on).
const MAX_MERGES_PER_CALL: usize = 64;
/// The longest a write waits for room in the tail (see `wait_for_room`).
const MAX_STALL: Duration = Duration::from_secs(10);

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// Nothing after `compacted_through`, and every level within its target.
    NothingToDo,
    /// Another compaction of this partition is running in this process.
    Busy,
    /// Published manifest `version` (folding the log through
    /// `compacted_through`), which lists `runs` SSTs.
    Compacted {
        version: u64,
        compacted_through: u64,
        runs: usize,
    },
    /// Another compactor published first; what this one wrote was discarded.
    LostRace,
}

impl CompactionOutcome {
    fn of(m: &Manifest) -> Self {
        CompactionOutcome::Compacted {
            version: m.version,
            compacted_through: m.compacted_through,
            runs: m.ssts().count(),
        }
    }
}

impl Partition {
    pub(super) fn over_threshold(&self) -> bool {
        let v = self.read_view();
        let c = &self.ctx.config;
        v.tail.saturating_sub(v.manifest.compacted_through) >= c.compact_after_segments
            || v.mem_bytes >= c.compact_after_bytes
    }

    /// The write stall: while the log tail held in memory is past
    /// `max_tail_bytes`, or every partition's together past
    /// `max_total_tail_bytes` and this one's past a sixteenth of its flush
    /// threshold, and this process flushes it, a write waits for a flush
    /// (as a DynamoDB partition throttles a write burst), so writers faster
    /// than compaction cannot grow memory without bound: tails stay within
    /// `max_total_tail_bytes` plus that sixteenth for each partition being
    /// written. A flush that keeps failing (the store down) stalls a write
    /// for at most `MAX_STALL`; it then goes ahead.
    pub(super) async fn wait_for_room(self: &Arc<Self>) {
        let c = &self.ctx.config;
        if !c.auto_compact || c.compaction_hook.is_some() {
            return;
        }
        let start = self.clock().tick();
        let floor = (c.compact_after_bytes / 16).max(1);
        loop {
            let flushed = self.flushed.notified();
            let mine = self.read_view().mem_bytes;
            let over_total = self.ctx.tail_bytes.load(Ordering::Relaxed) > c.max_total_tail_bytes;
            let room = mine <= c.max_tail_bytes && (!over_total || mine < floor);
            if room || self.clock().since(start) >= MAX_STALL {
                return;
            }
            self.start_compaction(true);
            let _ = tokio::time::timeout(Duration::from_millis(50), flushed).await;
        }
    }

    pub(super) fn maybe_compact(self: &Arc<Self>) {
        self.start_compaction(false)
    }

    /// Starts a compaction in the background (or calls the hook) when a
    /// threshold is passed, or at once when `now` (the write stall).
    fn start_compaction(self: &Arc<Self>, now: bool) {
        let config = &self.ctx.config;
        if !config.auto_compact || !(now || self.over_threshold()) {
            return;
        }
        if let Some(hook) = &config.compaction_hook {
            let mut last = self.hooked.lock().unwrap_or_else(|p| p.into_inner());
            let clock = self.clock();
            if last.is_none_or(|t| clock.since(t) >= config.compaction_hook_interval) {
                *last = Some(clock.tick());
                (hook.0)(&self.table.name, self.part);
            }
            return;
        }
        if !self.flushing.load(Ordering::SeqCst) {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = me.compact().await {
                    tracing::warn!(table = %me.table.name, partition = me.part, error = %e, "background compaction failed");
                    return;
                }
                if me.split_due() {
                    if let Err(e) = me.split().await {
                        tracing::warn!(table = %me.table.name, partition = me.part, error = %e, "background split failed; the next compaction tries again");
                    }
                }
            });
        }
    }

    /// Flushes the log tail into a level-0 run, then runs the merges the
    /// policy asks for. Safe to run in any number of processes at once; in
    /// one process, flushes and merges run beside each other (a merge
    /// publishes over the flushes made meanwhile), one of each at a time.
    pub async fn compact(&self) -> Result<CompactionOutcome> {
        let mut outcome = CompactionOutcome::Busy;
        if !self.flushing.swap(true, Ordering::SeqCst) {
            let flushed = self.flush().await;
            self.flushing.store(false, Ordering::SeqCst);
            self.flushed.notify_waiters();
            outcome = flushed?;
            if outcome == CompactionOutcome::LostRace {
                return Ok(outcome);
            }
        }
        // Locks the flush carried are settled where their transactions are
        // decided or past their deadline (a coordinator that died leaves
        // them); the next flush folds the releases.
        self.settle_locks(ALL_KEYS).await?;
        // A sealed partition's last flush folds its seal; its SSTs are its
        // children's to rewrite now.
        if self.read_view().sealed.is_some() {
            return Ok(outcome);
        }
        if self.merging.swap(true, Ordering::SeqCst) {
            // Merges are running here: the partition is not settled yet.
            return Ok(match outcome {
                CompactionOutcome::NothingToDo => CompactionOutcome::Busy,
                done => done,
            });
        }
        let merged = self.merges(outcome).await;
        self.merging.store(false, Ordering::SeqCst);
        merged
    }

    /// The newest manifest once it folds every write committed before the
    /// call (what a backup pins): the log tail is flushed first. A sealed
    /// partition's keys are its children's: `Error::Sealed`.
    pub async fn flushed_manifest(&self) -> Result<Arc<Manifest>> {
        self.ensure_fresh(true).await?;
        // Transactions acknowledged and not yet settled are settled first,
        // so the flush holds them.
        self.settle_locks(ALL_KEYS).await?;
        let tail = self.read_view().tail;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let m = self.newest_manifest().await?;
            if m.sealed.is_some() {
                return Err(Error::Sealed {
                    table: self.table.name.clone(),
                    partition: self.part,
                });
            }
            if m.compacted_through >= tail {
                return Ok(m);
            }
            // A flush only (merges can wait). If one of this process is
            // running, it folds the tail: wait for it (bounded, and looked
            // at again).
            if !self.flushing.swap(true, Ordering::SeqCst) {
                let flushed = self.flush().await;
                self.flushing.store(false, Ordering::SeqCst);
                self.flushed.notify_waiters();
                flushed?;
            } else {
                let _ = tokio::time::timeout(Duration::from_secs(1), self.flushed.notified()).await;
            }
        }
        Err(Error::store_msg(
            &self.paths.manifest_dir(),
            "the log tail could not be flushed for a backup",
        ))
    }

    async fn merges(&self, mut outcome: CompactionOutcome) -> Result<CompactionOutcome> {
        for _ in 0..MAX_MERGES_PER_CALL {
            // One merge step at a time per permit (the semaphore is never
            // closed), taken afresh each step so partitions take turns.
            let _slot = self.ctx.merge_slots.acquire().await.ok();
            let base = self.newest_manifest().await?;
            if base.sealed.is_some() {
                break;
            }
            let Some(plan) = next_merge(&base.levels, &self.ctx.config, self.part) else {
                break;
            };
            match self.merge(&base, &plan).await? {
                Some(m) => outcome = CompactionOutcome::of(&m),
                None => return Ok(CompactionOutcome::LostRace),
            }
        }
        Ok(outcome)
    }

    /// Writes the log tail (the view's versions after `compacted_through`)
    /// as a new level-0 run and publishes the manifest folding it.
    async fn flush(&self) -> Result<CompactionOutcome> {
        // Taken before the tail is copied, and never while waiting for
        // anything but the store (the semaphore is never closed).
        let _slot = self.ctx.flush_slots.acquire().await.ok();
        let started = std::time::Instant::now();
        let (base, tail, mem, tail_tokens, folded_ts, images_gen, sealed) = {
            let _g = self.sync.lock().await;
            self.write_view().manifest_checked = None; // always look for a newer manifest
            self.refresh_locked(self.clock().tick()).await?;
            let v = self.read_view();
            let mem: Vec<(Vec<u8>, Version)> =
                v.mem.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let tokens: Vec<FoldedToken> = v
                .tokens
                .iter()
                .map(|(t, (seq, ts))| FoldedToken {
                    token: t.clone(),
                    seq: *seq,
                    ts_micros: *ts,
                })
                .collect();
            let folded = v.last_ts.max(v.manifest.folded_ts_micros);
            // Unreleased intents are carried by the manifest, not folded.
            let locks: Vec<crate::txn::CarriedLock> = v
                .locks
                .values()
                .map(|l| crate::txn::CarriedLock::new(l.seq, &l.intent))
                .collect();
            (
                Arc::clone(&v.manifest),
                v.tail,
                mem,
                (tokens, locks),
                folded,
                v.images_gen,
                v.sealed,
            )
        };
        let (tail_tokens, locks) = tail_tokens;
        if tail <= base.compacted_through {
            return Ok(CompactionOutcome::NothingToDo);
        }
        let mut sink = SstSink::new(self);
        for (k, v) in &mem {
            sink.push(k, v).await?;
        }
        drop(mem);
        let (outputs, first_sent) = sink.finish().await?;
        let token_horizon = self
            .clock()
            .now_micros()
            .saturating_sub(self.ctx.config.token_window.as_micros() as u64);
        let now_ms = self.clock().now_ms();
        let run = SortedRun {
            level: 0,
            ssts: outputs.clone(),
        };
        // Applies to any manifest that has folded no more of the log than
        // the base (another compactor's merges meanwhile are fine).
        let derive = |current: &Manifest| {
            if current.compacted_through != base.compacted_through {
                return Derived::Stale;
            }
            let mut levels = current.levels.clone();
            if !run.ssts.is_empty() {
                levels.insert(0, run.clone());
            }
            Derived::Next(Manifest {
                compacted_through: tail,
                folded_ts_micros: folded_ts,
                images_gen,
                sealed: sealed.or(current.sealed),
                locks: locks.clone(),
                tokens: current
                    .tokens
                    .iter()
                    .cloned()
                    .chain(tail_tokens.iter().filter(|t| t.seq <= tail).cloned())
                    .filter(|t| t.ts_micros >= token_horizon)
                    .collect(),
                ..current.next_with(levels, now_ms)
            })
        };
        let published = self.publish(&outputs, first_sent, derive).await?;
        let bytes = outputs.iter().map(|s| s.size).sum();
        self.ctx.compaction.flushed(started.elapsed(), bytes);
        Ok(match published {
            PublishOutcome::Published(m) | PublishOutcome::AlreadyIn(m) => {
                CompactionOutcome::of(&m)
            }
            PublishOutcome::Stale => CompactionOutcome::LostRace,
        })
    }

    /// Runs one merge of `plan` over `base`'s levels and publishes it. None
    /// when another compactor changed what it replaces first.
    async fn merge(&self, base: &Arc<Manifest>, plan: &MergePlan) -> Result<Option<Arc<Manifest>>> {
        let c = &self.ctx.config;
        let started = std::time::Instant::now();
        let inputs = plan.inputs(&base.levels);
        let horizon = self
            .clock()
            .now_micros()
            .saturating_sub(c.tombstone_retention.as_micros() as u64);
        let mut merge = Merger::new(
            self,
            Vec::new(),
            &inputs,
            Span::all(),
            Fetch::ReadAhead(c.read_ahead_bytes),
        );
        let mut sink = SstSink::new(self);
        while let Some((k, v)) = merge.next().await? {
            // A tombstone can go once nothing older is left for it to hide
            // and no replica can still send an older version.
            if plan.bottom && v.deleted && v.ts_micros < horizon {
                continue;
            }
            sink.push(&k, &v).await?;
        }
        drop(merge);
        let (outputs, first_sent) = sink.finish().await?;
        let now_ms = self.clock().now_ms();
        // Applies to the base, or to a manifest that only added newer
        // level-0 runs in front of it (flushes meanwhile).
        let derive = |current: &Manifest| {
            let Some(newer) = current.levels.len().checked_sub(base.levels.len()) else {
                return Derived::Stale;
            };
            if current.levels[newer..] != base.levels[..] {
                return Derived::Stale;
            }
            let mut levels = current.levels[..newer].to_vec();
            levels.extend(plan.apply(&base.levels, outputs.clone()));
            Derived::Next(current.next_with(levels, now_ms))
        };
        let published = self.publish(&outputs, first_sent, derive).await?;
        let in_bytes = inputs.iter().flat_map(|r| &r.ssts).map(|s| s.size).sum();
        let out_bytes = outputs.iter().map(|s| s.size).sum();
        self.ctx
            .compaction
            .merged(started.elapsed(), in_bytes, out_bytes);
        Ok(match published {
            PublishOutcome::Published(m) | PublishOutcome::AlreadyIn(m) => Some(m),
            PublishOutcome::Stale => None,
        })
    }
}

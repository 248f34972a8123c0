use super::*;

/// Who published a manifest version we tried to create.
pub(super) enum Published {
    Ours,
    Theirs,
    /// Not there yet after a refused create: possibly ours, still in flight.
    Unknown,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// Nothing after `compacted_through`.
    NothingToDo,
    /// Another compaction of this partition is running in this process.
    Busy,
    /// Published manifest `version`, folding the log through `compacted_through`.
    Compacted {
        version: u64,
        compacted_through: u64,
        runs: usize,
    },
    /// Another compactor published the next manifest first; our run was discarded.
    LostRace,
}

impl Partition {
    /// Adds a run of `entries` (sorted by key, one version each) as the
    /// partition's oldest data, by publishing the next manifest: how a
    /// restore fills a new table without a commit per item. Whatever the
    /// log or newer runs hold for a key still wins.
    pub async fn ingest(&self, entries: &[(Vec<u8>, Version)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let config = &self.ctx.config;
        let (info, bytes) = build_run(paths::random_id(), entries, config.block_size);
        let run_path = self.paths.run(&info.id);
        let run_sent = self.clock().tick();
        self.put_run(&run_path, bytes).await?;
        // Set once a publish may still land: the run must then never be
        // deleted here (GC deletes it if no manifest ends up naming it).
        let mut maybe_named = false;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let current = {
                let _g = self.sync.lock().await;
                self.write_view().manifest_checked = None;
                self.refresh_locked(self.clock().tick()).await?;
                Arc::clone(&self.read_view().manifest)
            };
            if current.runs.iter().any(|r| r.id == info.id) {
                return Ok(()); // an earlier create whose answer was lost landed
            }
            self.run_still_young(run_sent, &run_path, maybe_named)
                .await?;
            let mut runs = current.runs.clone();
            runs.push(info.clone());
            let next = Manifest {
                version: current.version + 1,
                compacted_through: current.compacted_through,
                runs,
                created_at_ms: self.clock().now_ms(),
                folded_ts_micros: current.folded_ts_micros,
                tokens: current.tokens.clone(),
                images_gen: current.images_gen,
            };
            match self.publish_manifest(&next).await? {
                Published::Ours => {
                    self.write_view().install(Arc::new(next));
                    return Ok(());
                }
                // Someone else's, or not known yet: the next round looks.
                Published::Theirs => {}
                Published::Unknown => maybe_named = true,
            }
        }
        Err(Error::Contention {
            table: self.table.name.clone(),
            partition: self.part,
        })
    }

    pub(super) fn over_threshold(&self) -> bool {
        let v = self.read_view();
        let c = &self.ctx.config;
        v.tail.saturating_sub(v.manifest.compacted_through) >= c.compact_after_segments
            || v.mem_bytes >= c.compact_after_bytes
    }

    pub(super) fn maybe_compact(self: &Arc<Self>) {
        let config = &self.ctx.config;
        if !config.auto_compact || !self.over_threshold() {
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
        if !self.compacting.load(Ordering::SeqCst) {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = me.compact().await {
                    tracing::warn!(table = %me.table.name, partition = me.part, error = %e, "background compaction failed");
                }
            });
        }
    }

    /// Folds the log tail into a new run and publishes the next manifest.
    /// Safe to run in any number of processes at once.
    pub async fn compact(&self) -> Result<CompactionOutcome> {
        if self.compacting.swap(true, Ordering::SeqCst) {
            return Ok(CompactionOutcome::Busy);
        }
        let out = self.compact_inner().await;
        self.compacting.store(false, Ordering::SeqCst);
        out
    }

    pub(super) async fn compact_inner(&self) -> Result<CompactionOutcome> {
        let (manifest, tail, mem, tail_tokens, folded_ts, images_gen) = {
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
            (
                Arc::clone(&v.manifest),
                v.tail,
                mem,
                tokens,
                folded,
                v.images_gen,
            )
        };
        if tail <= manifest.compacted_through {
            return Ok(CompactionOutcome::NothingToDo);
        }
        let config = &self.ctx.config;
        let merge_all = manifest.runs.len() + 1 > config.max_runs;
        let entries = if merge_all {
            let mut merge = self
                .merger(mem, &manifest, Bound::Unbounded, Bound::Unbounded, true)
                .await?;
            let horizon = self
                .clock()
                .now_micros()
                .saturating_sub(config.tombstone_retention.as_micros() as u64);
            let mut all = Vec::new();
            while let Some((k, v)) = merge.next().await? {
                if !(v.deleted && v.ts_micros < horizon) {
                    all.push((k, v));
                }
            }
            all
        } else {
            mem
        };
        let (info, bytes) = build_run(paths::random_id(), &entries, config.block_size);
        let run_path = self.paths.run(&info.id);
        let run_sent = self.clock().tick();
        self.put_run(&run_path, bytes).await?;
        let token_horizon = self
            .clock()
            .now_micros()
            .saturating_sub(config.token_window.as_micros() as u64);
        let mut runs: Vec<RunInfo> = vec![info];
        if !merge_all {
            runs.extend(manifest.runs.iter().cloned());
        }
        let next = Manifest {
            version: manifest.version + 1,
            compacted_through: tail,
            runs,
            created_at_ms: self.clock().now_ms(),
            folded_ts_micros: folded_ts,
            images_gen,
            tokens: manifest
                .tokens
                .iter()
                .cloned()
                .chain(tail_tokens.into_iter().filter(|t| t.seq <= tail))
                .filter(|t| t.ts_micros >= token_horizon)
                .collect(),
        };
        self.run_still_young(run_sent, &run_path, false).await?;
        match self.publish_manifest(&next).await? {
            Published::Ours => {
                let summary = CompactionOutcome::Compacted {
                    version: next.version,
                    compacted_through: tail,
                    runs: next.runs.len(),
                };
                self.write_view().install(Arc::new(next));
                Ok(summary)
            }
            Published::Theirs => {
                // Nothing names our run: it can go now.
                let _ = io::delete(self.store(), &run_path).await;
                Ok(CompactionOutcome::LostRace)
            }
            // Our manifest may still land naming the run: leave the run to
            // GC, which deletes it only if no manifest names it.
            Published::Unknown => Ok(CompactionOutcome::LostRace),
        }
    }

    /// A run may be named by a new manifest only while GC cannot have taken
    /// it for garbage: GC deletes unreferenced runs older than the grace
    /// period, so a compaction (or ingest) whose run was sent more than
    /// half of it ago (a paused process) gives up and deletes the run,
    /// which nothing names (unless `maybe_named`: an earlier publish may
    /// still land, and GC decides).
    pub(super) async fn run_still_young(
        &self,
        run_sent: Tick,
        run_path: &Path,
        maybe_named: bool,
    ) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        if max_age.is_zero() || self.clock().since(run_sent) < max_age {
            return Ok(());
        }
        if !maybe_named {
            let _ = io::delete(self.store(), run_path).await;
        }
        Err(Error::store_msg(
            run_path,
            "compaction took longer than half the GC grace period between writing \
             its run and publishing it; abandoned (the next one starts afresh)",
        ))
    }

    /// Writes a run (a fresh random name: a refused create can only be our
    /// own earlier attempt). After S3's 409 the run is looked for until it
    /// shows; a run that never shows is an error, and no manifest names it.
    pub(super) async fn put_run(&self, run_path: &Path, bytes: Vec<u8>) -> Result<()> {
        match io::create(self.store(), run_path, bytes).await {
            Ok(Created::Created) | Ok(Created::Exists) => return Ok(()),
            Ok(Created::Conflict) => {}
            Err(e) => return Err(Error::store(run_path, e)),
        }
        let shown = io::read_refused(Created::Conflict, || async {
            Ok(io::exists(self.store(), run_path).await?.then_some(()))
        })
        .await?;
        shown.ok_or_else(|| {
            Error::store_msg(
                run_path,
                "a run's create was refused while in flight and never showed",
            )
        })
    }

    /// Creates `manifest/<next.version>`, telling a refused create that was
    /// our own (a retry after a failure that hid its success) from someone
    /// else's, and either from one still in flight (S3's 409), which is
    /// read again until it shows.
    pub(super) async fn publish_manifest(&self, next: &Manifest) -> Result<Published> {
        let path = self.paths.manifest(next.version);
        let refused = match io::create(self.store(), &path, next.encode()).await {
            Ok(Created::Created) => return Ok(Published::Ours),
            Ok(refused) => refused,
            Err(e) => return Err(Error::store(&path, e)),
        };
        Ok(
            match io::read_refused(refused, || self.read_manifest(next.version)).await? {
                Some(m) if m == *next => Published::Ours,
                Some(_) => Published::Theirs,
                // Existed (412) and gone: someone else's, since collected.
                None if refused == Created::Exists => Published::Theirs,
                None => Published::Unknown,
            },
        )
    }
}

use super::*;

/// A partition as it was at one moment: a manifest and the log after it.
#[derive(Debug, Clone)]
pub struct PointInTimePlan {
    manifest: Arc<Manifest>,
    mem: Arc<BTreeMap<Vec<u8>, Version>>,
    /// The last log segment the moment includes.
    pub through: u64,
}

impl PointInTimePlan {
    /// The moment a manifest holds by itself (a backup's: it folds every
    /// write acknowledged before the backup was taken).
    pub(crate) fn of_manifest(manifest: Manifest) -> Self {
        let through = manifest.compacted_through;
        Self {
            manifest: Arc::new(manifest),
            mem: Arc::default(),
            through,
        }
    }
}

impl Partition {
    /// Up to `limit` keys' newest versions, tombstones included, in key
    /// order after `after` (from the start with None), read from a view
    /// refreshed now: what a replica is backfilled from, chunk by chunk.
    pub async fn versions_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        self.ensure_fresh(true).await?;
        let (mem, manifest) = {
            let v = self.read_view();
            (first_after(&v.mem, after, limit), Arc::clone(&v.manifest))
        };
        self.merged_after(mem, &manifest, after, limit).await
    }

    /// Up to `limit` of the newest versions after `after`, merging `mem`
    /// (the log's versions, newer than any run) with `manifest`'s runs.
    /// A bulk read (backfills, exports, restores): the runs are read ahead
    /// past the block cache, a GET per `read_ahead_bytes` rather than per
    /// block, and without evicting what point reads keep warm.
    pub(super) async fn merged_after(
        &self,
        mem: Vec<(Vec<u8>, Version)>,
        manifest: &Manifest,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        let lo = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_vec()));
        let span = Span {
            lo,
            hi: Bound::Unbounded,
            forward: true,
        };
        let fetch = Fetch::ReadAhead(self.ctx.config.read_ahead_bytes);
        let mut merge = Merger::new(self, mem, &manifest.levels, span, fetch);
        let mut out = Vec::with_capacity(limit.min(4096));
        while out.len() < limit {
            match merge.next().await? {
                Some(entry) => out.push(entry),
                None => break,
            }
        }
        Ok(out)
    }

    /// What the partition held at `t_micros`: the newest manifest whose
    /// runs hold nothing committed after T, and the log segments after it
    /// committed by T (commit times increase along the log, so that is a
    /// prefix). The prefix is final once a segment committed after T is
    /// seen; when the log has none yet, an empty segment is committed to
    /// seal it (any later commit is stamped after it), so a slow writer
    /// cannot add to a moment already read. Errors when the store no
    /// longer holds the moment.
    pub async fn plan_at(&self, t_micros: u64) -> Result<PointInTimePlan> {
        if t_micros > self.clock().now_micros() + 1_000_000 {
            return Err(Error::Validation(format!(
                "the moment {t_micros} µs is in the future"
            )));
        }
        let skew = self.ctx.config.clock_skew;
        let mut versions: Vec<u64> = io::list(self.store(), &self.paths.manifest_dir())
            .await?
            .iter()
            .filter_map(|m| paths::parse_seq(&m.location))
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        let lowest = versions.last().copied();
        let mut manifest = None;
        for v in versions {
            if let Some(m) = self.read_manifest(v).await? {
                if m.folded_at(skew) <= t_micros {
                    manifest = Some(m);
                    break;
                }
            }
        }
        let too_old = || {
            Error::Validation(format!(
                "table {} no longer holds the moment {t_micros} µs (outside its point-in-time window)",
                self.table.name
            ))
        };
        // The empty start is the truth only if no manifest was collected.
        let manifest = match (manifest, lowest) {
            (Some(m), _) => Arc::new(m),
            // (A partition made by a split starts from its manifest/1.)
            (None, None) | (None, Some(1)) if !self.child => Arc::new(Manifest::default()),
            (None, _) => return Err(too_old()),
        };
        let mut mem: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
        let mut through = manifest.compacted_through;
        let mut seq = manifest.compacted_through + 1;
        let mut sealed = false;
        loop {
            self.ensure_fresh(true).await?;
            let (tail, last_ts) = {
                let v = self.read_view();
                (v.tail, v.last_ts)
            };
            if seq > tail {
                // Everything up to the tail is in; it is final once the log
                // has a commit after T (a writer's next commit is stamped
                // after the newest it has seen).
                if sealed || last_ts > t_micros {
                    break;
                }
                self.close_moment(t_micros).await?;
                sealed = true;
                continue;
            }
            let seg = match self.recent_segment(seq) {
                Some(seg) => seg,
                None => Arc::new(self.read_segment(seq).await?.ok_or_else(too_old)?),
            };
            if seg.commit_ts_micros > t_micros {
                break;
            }
            for m in &seg.mutations {
                let stamp = seg.stamp_of(m);
                mem.insert(
                    m.key.clone(),
                    Version {
                        seq,
                        ts_micros: stamp.ts_micros,
                        origin: stamp.region,
                        deleted: m.deleted,
                        item: Arc::clone(&m.image),
                    },
                );
            }
            through = seq;
            seq += 1;
        }
        Ok(PointInTimePlan {
            manifest,
            mem: Arc::new(mem),
            through,
        })
    }

    /// Makes sure the log holds a segment committed after `t_micros`,
    /// committing an empty one if needed.
    pub(super) async fn close_moment(&self, t_micros: u64) -> Result<()> {
        // Transactions acknowledged and not yet settled are settled first
        // (a transaction dates from its settlement in each partition).
        self.ensure_fresh(true).await?;
        self.settle_locks(ALL_KEYS).await?;
        self.commit_empty(|v| v.last_ts > t_micros, t_micros + 1)
            .await
    }

    /// Makes sure the log holds a segment of the descriptor's old-image
    /// generation, committing an empty one if needed: where a stream enabled
    /// by this descriptor starts (every later segment inherits it), so it
    /// holds every write acknowledged after the descriptor was published.
    pub async fn mark_images_gen(&self) -> Result<()> {
        let gen = self.table.images_gen();
        self.commit_empty(|v| v.images_gen >= gen, 0).await
    }

    /// Commits an empty segment (committed no earlier than `min_commit_ts`)
    /// unless the refreshed view already satisfies `done` or the log is
    /// sealed (final: nothing can commit after the seal).
    pub(super) async fn commit_empty(
        &self,
        done: impl Fn(&View) -> bool + Sync,
        min_commit_ts: u64,
    ) -> Result<()> {
        let _g = self.sync.lock().await;
        let done = &done;
        self.append_loop(Refresh::Now, IfUnresolved::Reevaluate, || {
            Box::pin(async move {
                if done(&self.read_view()) {
                    return Ok(Proposal::Done(()));
                }
                let mut seg =
                    self.next_segment(rand::random(), 0, self.next_images_gen(), Vec::new());
                seg.commit_ts_micros = seg.commit_ts_micros.max(min_commit_ts);
                seg.lww_ts_micros = seg.commit_ts_micros;
                Ok(Proposal::Append(seg, ()))
            })
        })
        .await
        .map(|_| ())
        .or_else(|e| match e {
            Error::Sealed { .. } => Ok(()),
            e => Err(e),
        })
    }

    /// Up to `limit` versions (tombstones included) of a point-in-time plan
    /// with keys after `after`, in key order.
    pub async fn chunk_of(
        &self,
        plan: &PointInTimePlan,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        let mem = first_after(&plan.mem, after, limit);
        self.merged_after(mem, &plan.manifest, after, limit).await
    }
}

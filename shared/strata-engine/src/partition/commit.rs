use super::*;

pub(super) struct Pending {
    pub(super) req: WriteRequest,
    pub(super) tx: oneshot::Sender<Result<Committed>>,
}

/// Each request's result in one evaluation (`true`: it adds mutations).
pub(super) type Evaluated = Vec<Result<(Committed, bool)>>;

impl Partition {
    /// Commits one request, group-committed with whatever else is queued for
    /// this partition in this process.
    pub async fn commit(self: &Arc<Self>, req: WriteRequest) -> Result<Committed> {
        match self.commit_once(req.clone()).await {
            Err(Error::TransactionConflict { table }) => {
                // A lock whose transaction is decided (or past its deadline)
                // is settled, and the write tried once more.
                let keys: Vec<Vec<u8>> = req.ops.iter().map(|op| encode_key(&op.key)).collect();
                let settled = self.settle_keys(keys).await?;
                if settled == 0 {
                    return Err(Error::TransactionConflict { table });
                }
                self.commit_once(req).await
            }
            done => done,
        }
    }

    async fn commit_once(self: &Arc<Self>, req: WriteRequest) -> Result<Committed> {
        self.wait_for_room().await;
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending { req, tx });
        // The group commit runs in its own task: a caller that goes away (a
        // client disconnecting) must not cancel a commit others are part of.
        // Its store requests count for the operation that started it.
        let me = Arc::clone(self);
        tokio::spawn(strata_store::attribution::inherit(async move {
            {
                let _g = me.sync.lock().await;
                // The commit window: writes arriving meanwhile join this
                // group, so they share its one PUT.
                let window = me.commit_window();
                if !window.is_zero() {
                    tokio::time::sleep(window).await;
                }
                let group =
                    std::mem::take(&mut *me.pending.lock().unwrap_or_else(|p| p.into_inner()));
                if group.is_empty() {
                    return; // an earlier task committed ours with its group
                }
                me.commit_group(group).await;
            }
            me.maybe_compact();
        }));
        rx.await.unwrap_or_else(|_| {
            Err(self.unknown_outcome("its group commit ended without an answer"))
        })
    }

    /// How long a group commit waits for company: the table's window if it
    /// sets one, else the engine's.
    fn commit_window(&self) -> Duration {
        self.table
            .commit_window_ms
            .map_or(self.ctx.config.commit_window, |ms| {
                Duration::from_millis(u64::from(ms).min(crate::config::MAX_COMMIT_WINDOW_MS))
            })
    }

    pub(super) async fn commit_group(&self, group: Vec<Pending>) {
        let (reqs, txs): (Vec<WriteRequest>, Vec<_>) =
            group.into_iter().map(|p| (p.req, p.tx)).unzip();
        let results = match self.commit_requests(&reqs).await {
            Ok(results) => results,
            // The whole batch failed the same way: every request hears why.
            Err(e) => (0..reqs.len()).map(|_| Err(e.duplicate())).collect(),
        };
        for (tx, res) in txs.into_iter().zip(results) {
            let _ = tx.send(res);
        }
    }

    /// Evaluates the group against the view and appends its mutations as
    /// the next segment; on a lost race the loop applies the winner and
    /// evaluates again. Every evaluation gets its own commit id, and an
    /// attempt whose outcome is unknown is remembered until the view learns
    /// who holds its seq: if it was ours, its results are the answer, and
    /// the requests are never evaluated again on top of their own effects.
    pub(super) async fn commit_requests(
        &self,
        reqs: &[WriteRequest],
    ) -> Result<Vec<Result<Committed>>> {
        let (results, seq) = self
            .append_loop(Refresh::IfStale, IfUnresolved::Remember, || {
                Box::pin(async move {
                    let (mutations, results, newest_seen, images_gen) = self.evaluate(reqs).await?;
                    if mutations.is_empty() {
                        // A refusal is an observation of the items: made on
                        // a current view, or not at all.
                        return Ok(if results.iter().any(Result::is_err) {
                            Proposal::DoneIfCurrent(results)
                        } else {
                            Proposal::Done(results)
                        });
                    }
                    // Newer than every version it replaces, even one replicated
                    // from a region whose clock runs ahead: last-writer-wins then
                    // agrees with the order this region applied them in.
                    let seg =
                        self.next_segment(rand::random(), newest_seen + 1, images_gen, mutations);
                    Ok(Proposal::Append(seg, results))
                })
            })
            .await?;
        let written: usize = results
            .iter()
            .zip(reqs)
            .filter(|(r, _)| matches!(r, Ok((_, true))))
            .map(|(_, req)| req.ops.len())
            .sum();
        if written > 0 {
            self.ctx.commits.appended(written as u64);
        }
        Ok(finish(results, seq))
    }

    /// The segment that would follow the view's tail: its commit time after
    /// every commit the view has seen, its last-writer-wins time no earlier
    /// than that nor than `min_lww` (the hybrid clock every commit path
    /// shares), its old-image generation no lower than the tail's.
    pub(super) fn next_segment(
        &self,
        commit_id: u128,
        min_lww: u64,
        images_gen: u64,
        mutations: Vec<Mutation>,
    ) -> LogSegment {
        let v = self.read_view();
        let commit_ts = self.clock().now_micros().max(v.last_ts + 1);
        LogSegment {
            seq: v.tail + 1,
            commit_id,
            commit_ts_micros: commit_ts,
            lww_ts_micros: commit_ts.max(min_lww),
            origin_region: self.ctx.config.region.clone(),
            images_gen: Some(images_gen),
            mutations,
            seal: false,
            intents: Vec::new(),
            releases: Vec::new(),
        }
    }

    /// The old-image generation the next segment is written under: the
    /// descriptor's, or the tail's if that is newer (a stale descriptor).
    pub(super) fn next_images_gen(&self) -> u64 {
        self.table.images_gen().max(self.read_view().images_gen)
    }

    pub(super) async fn refresh_if_stale(&self) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        let clock = self.clock();
        let stale = {
            let v = self.read_view();
            !v.loaded
                || !clock.fresh(v.tail_checked, max_age)
                || !clock.fresh(v.manifest_checked, max_age)
        };
        if stale {
            self.refresh_locked(clock.tick()).await?;
        }
        Ok(())
    }
}

/// Each request's result, the fresh ones committed at `seq`.
pub(super) fn finish(results: Evaluated, seq: u64) -> Vec<Result<Committed>> {
    results
        .into_iter()
        .map(|r| {
            r.map(|(mut c, fresh)| {
                if fresh {
                    c.seq = seq;
                }
                c
            })
        })
        .collect()
}

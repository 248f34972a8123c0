use futures::future::BoxFuture;

use super::*;

/// What a create of the next log segment came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Appended {
    /// The segment is committed (by this create or an earlier attempt of it).
    Committed,
    /// Another writer holds that seq; the view has applied its segment.
    Lost,
    /// Not known yet; the view is marked for a full refresh.
    Unresolved,
    /// Not sent: the view had grown too old to write from.
    NotSent,
}

/// What one round of [`Partition::append_loop`] proposes.
pub(super) enum Proposal<T> {
    /// Nothing to write: the loop's answer.
    Done(T),
    /// Nothing to write, and the answer says something of the items' state
    /// (a condition found false, an update refused for the item's value):
    /// the loop's answer once it was reached on a view brought up to date
    /// after the request began, as a strongly consistent read is. A view
    /// only "fresh enough" for writes may miss a write another instance
    /// acknowledged a moment ago, and nothing written here would find out.
    DoneIfCurrent(T),
    /// Append this segment; the answer if it commits.
    Append(LogSegment, T),
}

/// How fresh the view must be at the start of each round.
pub(super) enum Refresh {
    /// Younger than `gc_grace / 2` (what a write needs).
    IfStale,
    /// Brought up to date now.
    Now,
    /// Younger than `gc_grace / 2`, and after a lost race caught up with
    /// the whole log by one LIST and parallel reads (what a seal needs: a
    /// proposer that learns of winners one read at a time never catches up
    /// with a log that grows faster than that, and busy writers starved
    /// seals that way on LocalStack).
    CatchUp,
}

/// What becomes of an attempt whose outcome is not known yet (S3 answered
/// 409 while a create of that name was in flight, possibly this one).
pub(super) enum IfUnresolved {
    /// Kept until the view learns who holds its seq: if it was ours, its
    /// answer is the loop's (for writes that must not apply twice).
    Remember,
    /// Forgotten: the next round evaluates again (for writes that are
    /// harmless to apply twice).
    Reevaluate,
}

/// How long after a lost append race a partition counts as contended.
const CONTENDED_FOR: std::time::Duration = std::time::Duration::from_secs(30);

/// An attempt kept under [`IfUnresolved::Remember`].
struct Attempt<T> {
    seq: u64,
    commit_id: u128,
    answer: T,
}

impl Partition {
    /// The conditional-append loop every log write goes through (commits,
    /// replicated applies, empty segments that close a moment, split
    /// seals): refresh the view, let `propose` build the next segment from
    /// it, create `log/<t+1>`; on a lost race
    /// the view has applied the winner and the next round proposes again.
    /// Returns the answer and the seq it committed at (0 when nothing was
    /// written). Call with `sync` held.
    pub(super) async fn append_loop<'a, T>(
        &'a self,
        refresh: Refresh,
        if_unresolved: IfUnresolved,
        mut propose: impl FnMut() -> BoxFuture<'a, Result<Proposal<T>>>,
    ) -> Result<(T, u64)> {
        let mut unresolved: Vec<Attempt<T>> = Vec::new();
        let mut lost = false;
        let mut current = false;
        // Once an attempt may have landed, no failure may be reported as if
        // nothing had been written: it is an unknown outcome.
        macro_rules! tried {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e)
                        if unresolved.is_empty() || matches!(e, Error::OutcomeUnknown { .. }) =>
                    {
                        return Err(e)
                    }
                    Err(e) => return Err(self.store_failed(&root_cause(&e))),
                }
            };
        }
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            match refresh {
                // Another instance appends here too: a failed create costs a
                // PUT (and then a read of the winner), a look at the tail one
                // GET, so while contended each round looks first.
                Refresh::IfStale if self.contended() => {
                    tried!(self.refresh_locked(self.clock().tick()).await)
                }
                Refresh::IfStale => tried!(self.refresh_if_stale().await),
                Refresh::Now => tried!(self.refresh_locked(self.clock().tick()).await),
                Refresh::CatchUp => {
                    tried!(self.refresh_if_stale().await);
                    if lost {
                        tried!(self.catch_up_by_list().await);
                        // What landed while the LIST ran, by probes.
                        tried!(self.refresh_locked(self.clock().tick()).await);
                    }
                }
            }
            if let Some(landed) = tried!(self.resolve(&mut unresolved)) {
                return Ok((landed.answer, landed.seq));
            }
            // Nothing commits after a seal: the keys are the children's.
            tried!(self.check_not_sealed());
            let (seg, answer) = match tried!(propose().await) {
                Proposal::Done(answer) => return Ok((answer, 0)),
                Proposal::DoneIfCurrent(answer) if current => return Ok((answer, 0)),
                Proposal::DoneIfCurrent(_) => {
                    // Look at the log's tail now (one GET when nothing
                    // landed) and evaluate again on what it shows.
                    tried!(self.refresh_locked(self.clock().tick()).await);
                    current = true;
                    continue;
                }
                Proposal::Append(seg, answer) => (seg, answer),
            };
            match tried!(self.try_append(&seg).await) {
                Appended::Committed => return Ok((answer, seg.seq)),
                Appended::Unresolved if matches!(if_unresolved, IfUnresolved::Remember) => {
                    unresolved.push(Attempt {
                        seq: seg.seq,
                        commit_id: seg.commit_id,
                        answer,
                    })
                }
                Appended::Lost => {
                    lost = true;
                    *self.lost_race.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(self.clock().tick());
                }
                Appended::Unresolved | Appended::NotSent => lost = true,
            }
        }
        if !unresolved.is_empty() {
            return Err(self.outcome_unknown());
        }
        Err(Error::Contention {
            table: self.table.name.clone(),
            partition: self.part,
        })
    }

    /// This instance lost an append race here within `CONTENDED_FOR`.
    fn contended(&self) -> bool {
        let last = *self.lost_race.lock().unwrap_or_else(|p| p.into_inner());
        self.clock().fresh(last, CONTENDED_FOR)
    }

    /// Settles unresolved attempts against the view: the one whose segment
    /// the view holds has landed; one whose seq another segment holds has
    /// not; one whose seq was folded into a manifest before this instance
    /// saw the segment cannot be told apart, so the outcome is unknown.
    fn resolve<T>(&self, unresolved: &mut Vec<Attempt<T>>) -> Result<Option<Attempt<T>>> {
        let v = self.read_view();
        let mut i = 0;
        while i < unresolved.len() {
            let a = &unresolved[i];
            if a.seq > v.tail {
                i += 1;
                continue;
            }
            match v.commits.get(&a.seq) {
                Some(id) if *id == a.commit_id => return Ok(Some(unresolved.swap_remove(i))),
                Some(_) => {
                    unresolved.swap_remove(i);
                }
                None => {
                    return Err(self.unknown_outcome("its seq was folded before it was settled"))
                }
            }
        }
        Ok(None)
    }

    /// Creates `log/<seg.seq>` (see [`Appended`]). The view the segment was
    /// evaluated on must still be younger than `gc_grace / 2` right before
    /// each send, and every path that reports the segment committed first
    /// confirms it is visible.
    pub(super) async fn try_append(&self, seg: &LogSegment) -> Result<Appended> {
        let path = self.paths.log(seg.seq);
        let bytes = seg.encode();
        let checked = self.read_view().tail_checked;
        let max_age = self.ctx.config.max_view_age();
        // If the segment turns out to be ours, it may have been created by
        // any attempt: only the first attempt's send time bounds the tail.
        let first_sent = self.clock().tick();
        let mut ambiguous = 0;
        let mut last_error = String::new();
        loop {
            // (A zero grace period, for tests that collect at once, has no
            // age rule to keep.)
            if !max_age.is_zero() && !self.clock().fresh(checked, max_age) {
                if ambiguous == 0 {
                    return Ok(Appended::NotSent);
                }
                // An earlier send may have landed, and this view may no
                // longer be good enough to find out.
                return Err(self.store_failed(&last_error));
            }
            let sent = self.clock().tick();
            self.ctx.commits.put_sent();
            match io::create(self.store(), &path, bytes.clone()).await {
                Ok(Created::Created) => {
                    // Ours landed: a failure from here on is no refusal.
                    self.confirm_visible(seg.seq, checked)
                        .await
                        .map_err(|e| self.landed_but(e))?;
                    {
                        let mut v = self.write_view();
                        v.apply(seg);
                        v.tail_checked = Some(sent);
                    }
                    self.remember(seg.clone());
                    return Ok(Appended::Committed);
                }
                Ok(refused) => return self.settle(seg, first_sent, checked, refused).await,
                Err(e) => {
                    // The create may or may not have happened: look.
                    ambiguous += 1;
                    tracing::warn!(path = %path, error = %e, "ambiguous create; checking");
                    last_error = root_cause(&e);
                    match self.read_segment(seg.seq).await {
                        Ok(Some(found)) => {
                            return self.adopt_found(seg, found, first_sent, checked).await
                        }
                        Ok(None) if ambiguous < 5 => continue,
                        _ => return Err(self.store_failed(&last_error)),
                    }
                }
            }
        }
    }

    /// An ambiguous create that could not be settled: the view is due for
    /// a full refresh, and the outcome is unknown.
    pub(super) fn outcome_unknown(&self) -> Error {
        self.write_view().tail_checked = None;
        self.unknown_outcome("its create failed ambiguously and could not be settled")
    }

    /// [`Partition::outcome_unknown`], saying how the store failed (a full
    /// disk, a throttling store), so that the client's error says why.
    /// An error after our create landed: whether the write is visible is
    /// what is unknown, never whether it was made.
    fn landed_but(&self, e: Error) -> Error {
        match e {
            Error::OutcomeUnknown { .. } => e,
            e => self.store_failed(&root_cause(&e)),
        }
    }

    pub(super) fn store_failed(&self, error: &str) -> Error {
        self.write_view().tail_checked = None;
        self.unknown_outcome(&format!("the store failed: {error}"))
    }

    /// Every `OutcomeUnknown` a commit returns comes from here, logged
    /// with `why`.
    pub(super) fn unknown_outcome(&self, why: &str) -> Error {
        tracing::warn!(table = %self.table.name, partition = self.part,
            "a commit's outcome is unknown: {why}");
        Error::OutcomeUnknown {
            table: self.table.name.clone(),
            cause: why.to_string(),
        }
    }

    /// After a create was refused: reads who holds the seq. Absent after a
    /// 409 means a create still in flight, perhaps ours:
    /// unresolved. Absent after a 412 means it existed and is gone, so it
    /// was someone else's, created and garbage-collected (the view was older
    /// than it knew): lost. Either way the view is due for a full refresh.
    pub(super) async fn settle(
        &self,
        ours: &LogSegment,
        first_sent: Tick,
        checked: Option<Tick>,
        refused: Created,
    ) -> Result<Appended> {
        // Refused: the segment there may be ours all the same (a create
        // that took effect and was reported as failed, then retried), so a
        // failure to read it leaves the outcome unknown.
        let found = match io::read_refused(refused, || self.read_segment(ours.seq)).await {
            Ok(found) => found,
            Err(e) => return Err(self.store_failed(&root_cause(&e))),
        };
        if let Some(found) = found {
            return self.adopt_found(ours, found, first_sent, checked).await;
        }
        let mut v = self.write_view();
        v.manifest_checked = None;
        v.tail_checked = None;
        Ok(if refused == Created::Conflict {
            Appended::Unresolved
        } else {
            Appended::Lost
        })
    }

    pub(super) async fn adopt_found(
        &self,
        ours: &LogSegment,
        found: LogSegment,
        first_sent: Tick,
        checked: Option<Tick>,
    ) -> Result<Appended> {
        let mine = found.commit_id == ours.commit_id;
        if mine {
            self.confirm_visible(ours.seq, checked)
                .await
                .map_err(|e| self.landed_but(e))?;
        }
        {
            let mut v = self.write_view();
            v.apply(&found);
            if mine {
                v.tail_checked = Some(first_sent);
            }
        }
        self.remember(found);
        Ok(if mine {
            Appended::Committed
        } else {
            Appended::Lost
        })
    }

    /// A create that succeeded is visible unless GC had deleted an older
    /// object of that name, which needs the view to have been older than
    /// `gc_grace` when the create landed. The view was checked younger than
    /// `gc_grace / 2` before sending; only a create that took longer than the
    /// rest of the grace period needs a look at the manifest.
    pub(super) async fn confirm_visible(&self, seq: u64, checked: Option<Tick>) -> Result<()> {
        let limit = self
            .ctx
            .config
            .gc_grace
            .saturating_sub(self.ctx.config.clock_skew);
        if self.clock().fresh(checked, limit) {
            return Ok(());
        }
        self.refresh_manifest(false).await?;
        if self.read_view().manifest.compacted_through >= seq {
            return Err(
                self.unknown_outcome("its create took past the grace period and its seq is folded")
            );
        }
        Ok(())
    }
}

/// The innermost cause of a store error ("No space left on device (os error
/// 28)", S3's SlowDown), which a client may be told without the store's
/// paths or addresses in the outer messages.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

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

impl Partition {
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
        loop {
            // (A zero grace period, for tests that collect at once, has no
            // age rule to keep.)
            if !max_age.is_zero() && !self.clock().fresh(checked, max_age) {
                if ambiguous == 0 {
                    return Ok(Appended::NotSent);
                }
                // An earlier send may have landed, and this view may no
                // longer be good enough to find out.
                return Err(self.outcome_unknown());
            }
            let sent = self.clock().tick();
            match io::create(self.store(), &path, bytes.clone()).await {
                Ok(Created::Created) => {
                    self.confirm_visible(seg.seq, checked).await?;
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
                    tracing::debug!(path = %path, error = %e, "ambiguous create; checking");
                    match self.read_segment(seg.seq).await {
                        Ok(Some(found)) => {
                            return self.adopt_found(seg, found, first_sent, checked).await
                        }
                        Ok(None) if ambiguous < 5 => continue,
                        _ => return Err(self.outcome_unknown()),
                    }
                }
            }
        }
    }

    pub(super) fn outcome_unknown(&self) -> Error {
        self.write_view().tail_checked = None;
        Error::OutcomeUnknown {
            table: self.table.name.clone(),
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
        let found = io::read_refused(refused, || self.read_segment(ours.seq)).await?;
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
            self.confirm_visible(ours.seq, checked).await?;
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
            return Err(Error::OutcomeUnknown {
                table: self.table.name.clone(),
            });
        }
        Ok(())
    }
}

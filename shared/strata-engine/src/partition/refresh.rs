use super::*;

impl Partition {
    /// Brings the view up to date as of a moment after `since`. Call with
    /// `sync` held.
    pub(super) async fn refresh_locked(&self, since: Tick) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        let (loaded, f, r) = {
            let v = self.read_view();
            (v.loaded, v.manifest_checked, v.tail_checked)
        };
        let clock = self.clock();
        if !loaded || !clock.fresh(f, max_age) {
            self.refresh_manifest(loaded && clock.fresh(f, self.ctx.config.gc_grace))
                .await?;
        }
        let tail_current = r.is_some_and(|r| r >= since) && clock.fresh(r, max_age);
        if !tail_current || !loaded {
            self.refresh_tail(!loaded).await?;
        }
        self.write_view().loaded = true;
        Ok(())
    }

    /// Finds the newest manifest: by probing `manifest/<v+1>`… when the last
    /// check is recent enough for that to be reliable, else by LIST.
    pub(super) async fn refresh_manifest(&self, probe_ok: bool) -> Result<()> {
        let sent = self.clock().tick();
        let mut newest = Arc::clone(&self.read_view().manifest);
        if !probe_ok {
            let listed = io::list(self.store(), &self.paths.manifest_dir()).await?;
            let latest = listed
                .iter()
                .filter_map(|m| paths::parse_seq(&m.location))
                .max();
            if let Some(v) = latest.filter(|v| *v > newest.version) {
                if let Some(m) = self.read_manifest(v).await? {
                    newest = Arc::new(m);
                }
            }
        }
        while let Some(m) = self.read_manifest(newest.version + 1).await? {
            newest = Arc::new(m);
        }
        if self.child && newest.version == 0 {
            // A child is created with its manifest/1 (see `seal`), and GC
            // never deletes a partition's newest manifest.
            return Err(Error::corrupt(
                &self.paths.manifest(1),
                "no manifest of a partition made by a split: deleted (by hand?)",
            ));
        }
        let mut v = self.write_view();
        v.install(newest);
        v.manifest_checked = Some(sent);
        Ok(())
    }

    pub(super) async fn read_manifest(&self, version: u64) -> Result<Option<Manifest>> {
        let path = self.paths.manifest(version);
        match io::get_opt(self.store(), &path).await? {
            Some(b) => Manifest::decode(&b)
                .map(Some)
                .map_err(|e| Error::corrupt(&path, e)),
            None => Ok(None),
        }
    }

    /// `log/<seq>`, or None when absent. A segment object that fails its
    /// frame check on two reads (empty, or torn by a crash of a store that
    /// did not sync it) is a commit of nothing: reported, never served, and
    /// never in the way of later commits. Each of its reads returns the
    /// same bytes, so every instance agrees on it.
    pub(super) async fn read_segment(&self, seq: u64) -> Result<Option<LogSegment>> {
        let path = self.paths.log(seq);
        let Some(b) = io::get_opt(self.store(), &path).await? else {
            return Ok(None);
        };
        let seg = match LogSegment::decode(&b) {
            Ok(seg) => seg,
            // A whole frame that does not decode (a newer format, a bug) is
            // not torn: refuse it rather than skip a real commit.
            Err(e) if LogSegment::frame_ok(&b) => return Err(Error::corrupt(&path, e)),
            Err(e) => {
                // A read garbled in transit is not a torn object: look again.
                let again = io::get_opt(self.store(), &path).await?;
                if again.as_ref() != Some(&b) {
                    return Err(Error::corrupt(&path, e));
                }
                tracing::error!(path = %path, bytes = b.len(), error = %e,
                    "unreadable log segment: counted as an empty commit");
                LogSegment::void(seq)
            }
        };
        if seg.seq != seq {
            return Err(Error::corrupt(&path, format!("holds seq {}", seg.seq)));
        }
        Ok(Some(seg))
    }

    pub(super) fn remember(&self, seg: LogSegment) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.back().map(|s| s.seq) {
            Some(last) if last >= seg.seq => return,
            Some(last) if last + 1 != seg.seq => recent.clear(), // keep it contiguous
            _ => {}
        }
        let size = segment_bytes(&seg);
        if size > RECENT_BYTES {
            recent.clear();
            return;
        }
        let mut total: usize = recent.iter().map(|s| segment_bytes(s)).sum::<usize>() + size;
        while recent.len() >= RECENT_SEGMENTS || total > RECENT_BYTES {
            match recent.pop_front() {
                Some(s) => total -= segment_bytes(&s),
                None => break,
            }
        }
        recent.push_back(Arc::new(seg));
    }

    pub(super) fn recent_segment(&self, seq: u64) -> Option<Arc<LogSegment>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let first = recent.front()?.seq;
        let s = recent.get(seq.checked_sub(first)? as usize)?;
        (s.seq == seq).then(|| Arc::clone(s))
    }

    /// Applies every segment after the tail: probes `log/<t+1>` one by one,
    /// switching to a LIST when far behind (or `list_first`, on first load).
    pub(super) async fn refresh_tail(&self, list_first: bool) -> Result<()> {
        let mut found_in_a_row = if list_first { PROBES_BEFORE_LIST } else { 0 };
        loop {
            if found_in_a_row >= PROBES_BEFORE_LIST {
                self.catch_up_by_list().await?;
                found_in_a_row = 0;
            }
            let next = self.read_view().tail + 1;
            let sent = self.clock().tick();
            match self.read_segment(next).await? {
                Some(seg) => {
                    self.write_view().apply(&seg);
                    self.remember(seg);
                    found_in_a_row += 1;
                }
                None => {
                    self.write_view().tail_checked = Some(sent);
                    return Ok(());
                }
            }
        }
    }

    pub(super) async fn catch_up_by_list(&self) -> Result<()> {
        let tail = self.read_view().tail;
        let listed =
            io::list_after(self.store(), &self.paths.log_dir(), &self.paths.log(tail)).await?;
        let mut seqs: Vec<u64> = listed
            .iter()
            .filter_map(|m| paths::parse_seq(&m.location))
            .filter(|s| *s > tail)
            .collect();
        seqs.sort_unstable();
        let last_listed = seqs.last().copied();
        // Fetch in parallel, apply in order, stop at the first gap.
        let mut fetched =
            futures::stream::iter(seqs.into_iter().map(|s| self.read_segment(s))).buffered(16);
        let mut expect = tail + 1;
        while let Some(seg) = fetched.try_next().await? {
            match seg {
                Some(seg) if seg.seq == expect => {
                    self.write_view().apply(&seg);
                    self.remember(seg);
                    expect += 1;
                }
                _ => break,
            }
        }
        drop(fetched);
        match last_listed {
            Some(last) if last >= expect => self.gap_before(expect, last).await,
            _ => Ok(()),
        }
    }

    /// Segment `missing` was not listed while `later` was. A listing is no
    /// snapshot: a segment created while it ran may be left out while a
    /// later one is not (readdir on a local directory, a LIST passing the
    /// name before the create), so look for it first. Segments are created
    /// in order and GC deletes only a prefix folded into a manifest, so if
    /// it is absent either a manifest newer than the view's folds the gap
    /// (adopted here), or the object was deleted by hand: an error naming
    /// it, never a partition served without its writes.
    async fn gap_before(&self, missing: u64, later: u64) -> Result<()> {
        if let Some(seg) = self.read_segment(missing).await? {
            // Created while the LIST ran: applied now (it follows the
            // tail), and the probes go on after it.
            if seg.seq == self.read_view().tail + 1 {
                self.write_view().apply(&seg);
                self.remember(seg);
            }
            return Ok(());
        }
        self.refresh_manifest(false).await?;
        if self.read_view().tail >= missing {
            return Ok(());
        }
        Err(Error::corrupt(
            &self.paths.log(missing),
            format!(
                "missing while {} exists: a committed segment was deleted (by hand?)",
                self.paths.log(later)
            ),
        ))
    }

    /// The newest manifest, looked for now (by LIST, whatever the view's
    /// age), with the tail brought up to date: what a compaction step
    /// starts from.
    pub(super) async fn newest_manifest(&self) -> Result<Arc<Manifest>> {
        let _g = self.sync.lock().await;
        self.write_view().manifest_checked = None;
        self.refresh_locked(self.clock().tick()).await?;
        Ok(Arc::clone(&self.read_view().manifest))
    }

    /// Makes the view good for a read of the given consistency.
    pub async fn ensure_fresh(&self, strong: bool) -> Result<()> {
        let clock = self.clock();
        let arrival = clock.tick();
        {
            let v = self.read_view();
            let max_age = self.ctx.config.max_view_age();
            let usable = v.loaded && clock.fresh(v.manifest_checked, max_age);
            if usable && !strong && clock.fresh(v.tail_checked, self.ctx.config.eventual_staleness)
            {
                return Ok(());
            }
        }
        let _g = self.sync.lock().await;
        // While we waited, a refresh or commit may have done our work.
        let bound = if strong {
            arrival
        } else {
            arrival.minus(self.ctx.config.eventual_staleness)
        };
        self.refresh_locked(bound).await
    }
}

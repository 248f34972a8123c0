//! Writing SSTs and publishing the manifests that name them: the one path
//! every compaction step and every ingest takes.
//!
//! SSTs are written first, under fresh random names, then a manifest naming
//! them is published by a conditional create of the next version. A manifest
//! may name an SST only while GC cannot have taken it for garbage (GC deletes
//! unreferenced SSTs older than the grace period), so a publish more than half
//! of it after the first SST was sent gives up.

use crate::run::SstWriter;

use super::*;

/// Who published a manifest version we tried to create.
pub(super) enum Published {
    Ours,
    Theirs,
    /// Not there yet after a refused create: possibly ours, still in flight.
    Unknown,
}

/// What [`Partition::publish`] asks of the manifest it finds.
pub(super) enum Derived {
    /// Publish this as the next version.
    Next(Manifest),
    /// The edit no longer applies (another compactor changed what it
    /// replaces): give up and discard the SSTs.
    Stale,
}

/// How a publish ended.
pub(super) enum PublishOutcome {
    /// This manifest, naming the SSTs, is the partition's newest.
    Published(Arc<Manifest>),
    /// An earlier attempt of ours, whose answer was lost, published them.
    AlreadyIn(Arc<Manifest>),
    /// The edit was stale; the SSTs were discarded (or left to GC when a
    /// publish of ours may still land).
    Stale,
}

/// Writes a stream of entries (strictly increasing keys) as SSTs of
/// `sst_bytes`, uploading each as it fills: what it holds is one SST.
pub(super) struct SstSink<'a> {
    part: &'a Partition,
    writer: Option<SstWriter>,
    done: Vec<RunInfo>,
    first_sent: Option<Tick>,
}

impl<'a> SstSink<'a> {
    pub(super) fn new(part: &'a Partition) -> Self {
        Self {
            part,
            writer: None,
            done: Vec::new(),
            first_sent: None,
        }
    }

    pub(super) async fn push(&mut self, key: &[u8], v: &Version) -> Result<()> {
        let c = &self.part.ctx.config;
        let w = self.writer.get_or_insert_with(|| {
            SstWriter::new(paths::random_id(), c.block_size)
                .with_capacity_limit(c.sst_buffer_bytes())
                .with_ttl(crate::ttl::attribute(&self.part.table))
        });
        w.push(key, v);
        if w.size() >= c.sst_bytes {
            self.cut().await?;
        }
        Ok(())
    }

    async fn cut(&mut self) -> Result<()> {
        let Some(w) = self.writer.take() else {
            return Ok(());
        };
        if w.is_empty() {
            return Ok(());
        }
        let (info, bytes) = w.finish();
        self.first_sent
            .get_or_insert_with(|| self.part.clock().tick());
        let path = self.part.paths.run(&info.id);
        if let Err(e) = self.part.put_run(&path, bytes).await {
            self.part.discard(&self.done).await;
            return Err(e);
        }
        self.done.push(info);
        Ok(())
    }

    /// The SSTs written, in key order, and when the first was sent.
    pub(super) async fn finish(mut self) -> Result<(Vec<RunInfo>, Option<Tick>)> {
        self.cut().await?;
        Ok((self.done, self.first_sent))
    }
}

impl Partition {
    /// Deletes SSTs no manifest names (best effort: GC takes what is left).
    pub(super) async fn discard(&self, ssts: &[RunInfo]) {
        for s in ssts {
            let _ = io::delete(self.store(), &self.paths.run(&s.id)).await;
        }
    }

    /// Publishes the manifest `derive` makes of the newest one, naming
    /// `outputs` (written from `first_sent` on): the one manifest-publish
    /// loop. A lost race derives again from the winner's manifest.
    pub(super) async fn publish(
        &self,
        outputs: &[RunInfo],
        first_sent: Option<Tick>,
        derive: impl Fn(&Manifest) -> Derived,
    ) -> Result<PublishOutcome> {
        // Set once a publish may still land: the SSTs must then never be
        // deleted here (GC deletes them if no manifest ends up naming them).
        let mut maybe_named = false;
        for round in 0..MAX_COMMIT_ATTEMPTS {
            // The first round publishes over the manifest the view knows (a
            // step refreshes it before it starts): a newer one refuses the
            // create, and the next rounds look for the newest first. So the
            // time between the SSTs and their manifest is one create.
            let current = if round == 0 {
                Arc::clone(&self.read_view().manifest)
            } else {
                self.newest_manifest().await?
            };
            let ours = |id: &str| outputs.iter().any(|o| o.id == id);
            if !outputs.is_empty() && current.ssts().any(|s| ours(&s.id)) {
                return Ok(PublishOutcome::AlreadyIn(current));
            }
            // A sealed partition's last manifest is what its children were
            // made from: nothing is published over it, whatever the step
            // (the flush that folds the seal publishes over an unsealed
            // one; a later flush finds nothing to fold).
            let derived = match current.sealed {
                Some(_) => Derived::Stale,
                None => derive(&current),
            };
            let next = match derived {
                Derived::Next(next) => next,
                Derived::Stale => {
                    if !maybe_named {
                        self.discard(outputs).await;
                    }
                    return Ok(PublishOutcome::Stale);
                }
            };
            self.outputs_still_young(outputs, first_sent, maybe_named)
                .await?;
            match self.publish_manifest(&next).await? {
                Published::Ours => {
                    let next = Arc::new(next);
                    self.write_view().install(Arc::clone(&next));
                    return Ok(PublishOutcome::Published(next));
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

    /// SSTs may be named by a new manifest only while GC cannot have taken
    /// them for garbage: a publish whose first SST was sent more than half
    /// the grace period ago (a paused process) gives up and deletes them,
    /// which nothing names (unless `maybe_named`: an earlier publish may
    /// still land, and GC decides).
    async fn outputs_still_young(
        &self,
        outputs: &[RunInfo],
        first_sent: Option<Tick>,
        maybe_named: bool,
    ) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        let Some(sent) = first_sent else {
            return Ok(());
        };
        if max_age.is_zero() || self.clock().since(sent) < max_age {
            return Ok(());
        }
        if !maybe_named {
            self.discard(outputs).await;
        }
        let path = outputs
            .first()
            .map(|o| self.paths.run(&o.id))
            .unwrap_or_else(|| self.paths.runs_dir());
        Err(Error::store_msg(
            &path,
            "compaction took longer than half the GC grace period between writing \
             its SSTs and publishing them; abandoned (the next one starts afresh)",
        ))
    }

    /// Writes an SST (a fresh random name: a refused create can only be our
    /// own earlier attempt). After S3's 409 it is looked for until it shows;
    /// one that never shows is an error, and no manifest names it.
    pub(super) async fn put_run(&self, run_path: &Path, bytes: Vec<u8>) -> Result<()> {
        self.ctx.compaction.sst_put();
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
                "an SST's create was refused while in flight and never showed",
            )
        })
    }

    /// Creates `manifest/<next.version>`, telling a refused create that was
    /// our own (a retry after a failure that hid its success) from someone
    /// else's, and either from one still in flight (S3's 409), which is
    /// read again until it shows.
    async fn publish_manifest(&self, next: &Manifest) -> Result<Published> {
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

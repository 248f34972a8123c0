//! Splits: a partition's log ended by a seal, the seal folded into its last
//! manifest, the two children made from that manifest, and the descriptor
//! version that routes keys to them. Every step can be done again by
//! anyone: a writer, reader or compactor that meets a seal finishes the
//! split (see ARCHITECTURE.md, "Splits").

use crate::catalog;
use crate::manifest::SealMark;

use super::*;

/// Rounds of flushing before the seal is folded (each folds what it sees).
const FOLD_ATTEMPTS: usize = 64;
/// Append loops a seal runs through before a split gives up on contention
/// (the next compaction tries again).
const SEAL_ROUNDS: usize = 8;

/// The manifest a child starts from: the parent's last one (which folds
/// the seal), naming the parent's SSTs where they are. Its log goes on at
/// the seq after the seal, so sequence numbers keep growing along a key's
/// history.
pub(crate) fn child_manifest(parent: &Manifest, parent_id: u32, seal: SealMark) -> Manifest {
    let levels = parent
        .levels
        .iter()
        .map(|run| SortedRun {
            level: run.level,
            ssts: run
                .ssts
                .iter()
                .map(|s| RunInfo {
                    home: Some(s.home.unwrap_or(parent_id)),
                    ..s.clone()
                })
                .collect(),
        })
        .collect();
    Manifest {
        version: 1,
        compacted_through: parent.compacted_through,
        levels,
        runs: Vec::new(),
        created_at_ms: seal.ts_micros / 1000,
        folded_ts_micros: parent.folded_ts_micros,
        tokens: parent.tokens.clone(),
        images_gen: parent.images_gen,
        sealed: None,
        // A seal lands only on a partition holding no lock.
        locks: Vec::new(),
    }
}

impl Partition {
    /// Whether this partition should split now: past `split_bytes`, or its
    /// log growing faster than `split_commits_per_sec` over `split_window`.
    pub fn split_due(&self) -> bool {
        let c = &self.ctx.config;
        if self.sealed().is_some()
            || map::depth(self.table.partitions, self.part) >= map::MAX_SPLIT_DEPTH
        {
            return false;
        }
        if self.owned_bytes() > c.split_bytes {
            return true;
        }
        if c.split_commits_per_sec == 0 {
            return false;
        }
        let tail = self.read_view().tail;
        let clock = self.clock();
        let mut window = self.rate_window.lock().unwrap_or_else(|p| p.into_inner());
        let Some((start, from)) = *window else {
            *window = Some((clock.tick(), tail));
            return false;
        };
        let age = clock.since(start);
        if age < c.split_window {
            return false;
        }
        *window = Some((clock.tick(), tail));
        let rate = tail.saturating_sub(from) as f64 / age.as_secs_f64().max(1e-3);
        rate > c.split_commits_per_sec as f64
    }

    /// Splits this partition in two, or finishes the split under way:
    /// seal, fold, children, descriptor. Returns the descriptor that
    /// routes to the children.
    pub async fn split(&self) -> Result<TableDescriptor> {
        if map::depth(self.table.partitions, self.part) >= map::MAX_SPLIT_DEPTH {
            return Err(Error::Validation(format!(
                "partition {} of table {} is as small as partitions get",
                self.part, self.table.name
            )));
        }
        let seal = self.seal().await?;
        let last = self.fold_seal(seal).await?;
        for child in map::children(self.table.partitions, self.part) {
            self.make_child(child, &child_manifest(&last, self.part, seal))
                .await?;
        }
        let record = map::SplitRecord {
            partition: self.part,
            seal_seq: seal.seq,
            sealed_at_micros: seal.ts_micros,
        };
        catalog::record_split(self.store(), &self.table, record).await
    }

    /// Ends the log with a seal at the next seq through the ordinary append
    /// loop (so it races writers like any commit), or finds the seal
    /// already there. After a lost race it catches up with the whole log
    /// (one LIST, parallel reads) before proposing again, so it proposes at
    /// the true tail however fast writers append, and it goes on through
    /// `SEAL_ROUNDS` rounds of contention before giving up.
    async fn seal(&self) -> Result<SealMark> {
        // Transactions in flight here are settled first where decided; a
        // lock still held puts the split off (the next compaction tries again).
        self.settle_locks(ALL_KEYS).await?;
        let mut appended = Ok(((), 0));
        for _ in 0..SEAL_ROUNDS {
            let _g = self.sync.lock().await;
            appended = self
                .append_loop(Refresh::CatchUp, IfUnresolved::Reevaluate, || {
                    Box::pin(async move {
                        if !self.read_view().locks.is_empty() {
                            // A seal lands only on a partition holding no
                            // lock: the children start from settled items.
                            return Err(Error::TransactionConflict {
                                table: self.table.name.clone(),
                            });
                        }
                        let mut seal_seg = self.next_segment(
                            rand::random(),
                            0,
                            self.next_images_gen(),
                            Vec::new(),
                        );
                        seal_seg.seal = true;
                        Ok(Proposal::Append(seal_seg, ()))
                    })
                })
                .await;
            if !matches!(appended, Err(Error::Contention { .. })) {
                break;
            }
        }
        match appended {
            Ok(_) | Err(Error::Sealed { .. }) => {}
            Err(e) => return Err(e),
        }
        self.sealed()
            .ok_or_else(|| Error::store_msg(&self.paths.log_dir(), "the seal is not in the log"))
    }

    /// Flushes until the newest manifest folds the seal: the state the
    /// children start from.
    async fn fold_seal(&self, seal: SealMark) -> Result<Arc<Manifest>> {
        for _ in 0..FOLD_ATTEMPTS {
            let newest = self.newest_manifest().await?;
            if newest.compacted_through >= seal.seq {
                return Ok(newest);
            }
            if self.compact().await? == CompactionOutcome::Busy {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Err(Error::store_msg(
            &self.paths.manifest_dir(),
            "could not fold the seal of a split",
        ))
    }

    /// Creates a child's `manifest/1` unless it exists. Racing finishers
    /// may derive it from different manifests of the parent (a merge the
    /// parent published meanwhile); whichever lands first is the child's,
    /// and either holds exactly the parent's state at the seal.
    async fn make_child(&self, child: u32, manifest: &Manifest) -> Result<()> {
        let path =
            PartitionPaths::new(&self.table.name, &self.table.incarnation, child).manifest(1);
        let created = io::create(self.store(), &path, manifest.encode())
            .await
            .map_err(|e| Error::store(&path, e))?;
        if created == Created::Created {
            return Ok(());
        }
        let found =
            io::read_refused(created, || async { io::get_opt(self.store(), &path).await }).await?;
        match found {
            Some(bytes) => Manifest::decode(&bytes)
                .map(|_| ())
                .map_err(|e| Error::corrupt(&path, e)),
            None => Err(Error::store_msg(
                &path,
                "a conflicting create of a child's manifest is still in flight",
            )),
        }
    }
}

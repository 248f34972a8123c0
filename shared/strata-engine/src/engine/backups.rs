//! On-demand backups: a table's state pinned, not copied.
//!
//! A backup is one object, `backups/<id>.json`: the table's descriptor and,
//! for each live partition, its manifest once the log tail is flushed into
//! it (so it holds every write acknowledged before the backup was asked
//! for). The SSTs those manifests name stay where they are: GC, the purge
//! of a deleted table and the sweep of dead incarnations keep every SST a
//! backup names (`pinned`), so a backup costs one PUT and takes seconds at
//! any size, and outlives its table. A restore of a table that never split
//! copies the pinned SSTs into the new table by the store (S3 CopyObject, a
//! hard link locally), seconds at any size; one of a split table reads the
//! pinned manifests in key order and ingests their items into the new
//! table SST by SST (bounded memory, no commit per item).
//!
//! Races, and why they are safe:
//! - GC deletes an SST only once every manifest naming it was superseded
//!   more than the grace period ago; a backup's manifests were the newest
//!   when read, and its record is written well within the grace period of
//!   that (checked), so GC that lists backups before the record exists
//!   still keeps the SSTs for the record to pin.
//! - DeleteTable publishes its tombstone, then purges, keeping pinned SSTs.
//!   A backup writes its record, then checks the table is still that
//!   incarnation: either it sees the tombstone (and withdraws the record),
//!   or the purge, listing after the tombstone, sees the record.

use std::collections::HashSet;

use futures::{StreamExt, TryStreamExt};
use object_store::PutPayload;
use serde::{Deserialize, Serialize};

use super::*;
use crate::manifest::Manifest;
use crate::partition::PointInTimePlan;
use crate::run::LiveItems;
use point_in_time::PointInTime;

/// A backup as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    /// The table as it was (its name, incarnation, key schema, indexes,
    /// meta, partition map).
    pub table: TableDescriptor,
    /// Each live partition's manifest, folding every write acknowledged
    /// before the backup.
    pub partitions: Vec<(u32, Manifest)>,
    /// Estimated from the manifests, as DescribeTable's statistics are.
    pub items: u64,
    pub bytes: u64,
}

impl BackupRecord {
    /// The objects this backup keeps: every SST its manifests name.
    pub fn pinned(&self) -> impl Iterator<Item = String> + '_ {
        self.partitions.iter().flat_map(move |(part, m)| {
            m.ssts().map(move |s| {
                let home = s.inherited_from(*part).unwrap_or(*part);
                paths::PartitionPaths::new(&self.table.name, &self.table.incarnation, home)
                    .run(&s.id)
                    .to_string()
            })
        })
    }
}

/// A mark older than this whose restore is not running any more (or a
/// deletion mark this old) was left by a process that died.
const STALE_MARK: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Attempts at a consistent set of partitions (a split moves them).
const BACKUP_ATTEMPTS: u32 = 4;

impl Engine {
    /// Takes a backup of `table` named `name` with id `id` (the API's; it
    /// names the object): flushes every live partition, pins their
    /// manifests. Seconds at any size: no data is copied.
    pub async fn create_backup(&self, table: &str, id: &str, name: &str) -> Result<BackupRecord> {
        let mut attempt = 0;
        let (desc, partitions, started) = loop {
            attempt += 1;
            let t = self.table(table).await?;
            let started = self.ctx.config.clock.tick();
            let mut partitions = Vec::new();
            let mut moved = None;
            // The partitions flush side by side (a few at a time).
            // (Owned partitions: futures over borrowed ones would not be
            // Send for every lifetime, which a spawned task needs.)
            let leaves: Vec<Arc<Partition>> = t.leaves().cloned().collect();
            let flushes = futures::stream::iter(leaves.into_iter().map(|p| async move {
                p.flushed_manifest().await.map(|m| (p.part, (*m).clone()))
            }))
            .buffered(FLUSHES_IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
            for flushed in flushes {
                match flushed {
                    Ok(pm) => partitions.push(pm),
                    Err(e @ Error::Sealed { .. }) => moved = Some(e),
                    Err(e) => return Err(e),
                }
            }
            match moved {
                None => break (Arc::clone(&t.desc), partitions, started),
                Some(e) if attempt >= BACKUP_ATTEMPTS => return Err(e),
                // A split: finish it, and take the children instead.
                Some(_) => {
                    for p in t.leaves() {
                        if p.sealed().is_some() {
                            self.install_if_newer(p.split().await?);
                        }
                    }
                }
            }
        };
        let mut live = LiveItems::default();
        for (part, m) in &partitions {
            live += crate::partition::manifest_live_items(m, *part);
        }
        let record = BackupRecord {
            id: id.to_string(),
            name: name.to_string(),
            created_ms: self.ctx.config.clock.now_ms(),
            table: (*desc).clone(),
            partitions,
            items: live.items,
            bytes: live.bytes,
        };
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| Error::Validation(format!("backup record: {e}")))?;
        let path = paths::backup(id);
        self.ctx
            .store
            .put(&path, PutPayload::from(bytes))
            .await
            .map_err(|e| Error::store(&path, e))?;
        // Written too long after its manifests were read, GC may have
        // collected what they name meanwhile (see the module's notes).
        let fresh = self
            .ctx
            .config
            .clock
            .fresh(Some(started), self.ctx.config.gc_grace / 2);
        let still = catalog::latest(self.ctx.store.as_ref(), table).await?;
        let live_table = still.is_some_and(|d| !d.deleted && d.incarnation == desc.incarnation);
        if !fresh || !live_table {
            let _ = io::delete(self.ctx.store.as_ref(), &path).await;
            return Err(if live_table {
                Error::store_msg(&path, "the backup took longer than GC allows; try again")
            } else {
                Error::TableNotFound(table.to_string())
            });
        }
        Ok(record)
    }

    /// The backup with id `id`, if it exists.
    pub async fn backup(&self, id: &str) -> Result<Option<BackupRecord>> {
        read_record(self.ctx.store.as_ref(), id).await
    }

    /// Every backup, oldest first (their ids start with their time).
    pub async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        records(self.ctx.store.as_ref()).await
    }

    /// Deletes a backup: what it pinned is collected by the next GC (or
    /// sweep, for a deleted table). Refused (`Error::Validation`) while a
    /// restore reads it. With [`Engine::begin_backup_use`], a Dekker-style
    /// pair of marks: each side marks, then looks for the other's mark, so
    /// at most one of a racing restore and deletion goes on.
    pub async fn delete_backup(&self, id: &str) -> Result<Option<BackupRecord>> {
        let store = self.ctx.store.as_ref();
        let Some(record) = read_record(store, id).await? else {
            return Ok(None);
        };
        let deleting = paths::backup_use(id, None, "");
        self.put_mark(&deleting).await?;
        let mut in_use = None;
        for (path, target, age) in self.backup_marks(id).await? {
            let Some(target) = target else { continue };
            // A mark its restore left behind (the process died): its table
            // is gone or no longer being filled, and the mark is old.
            let restoring = match self.describe_stored_table(&target).await {
                Ok(d) => d.meta.get("RestoreInProgress") == Some(&serde_json::Value::Bool(true)),
                Err(Error::TableNotFound(_)) => false,
                Err(e) => return Err(e),
            };
            if !restoring && age > STALE_MARK {
                io::delete(store, &path).await?;
            } else {
                in_use = Some(target);
            }
        }
        if let Some(target) = in_use {
            io::delete(store, &deleting).await?;
            return Err(Error::Validation(format!(
                "backup {id} is being restored into {target}"
            )));
        }
        io::delete(store, &paths::backup(id)).await?;
        io::delete(store, &deleting).await?;
        Ok(Some(record))
    }

    /// Starts a restore from backup `id` into `target`: marks it, then
    /// reads the backup unless a deletion of it is under way. Returns the
    /// backup and the mark (for [`Engine::end_backup_use`]); None when the
    /// backup is gone or going.
    pub async fn begin_backup_use(
        &self,
        id: &str,
        target: &str,
    ) -> Result<Option<(BackupRecord, String)>> {
        let nonce = paths::random_id();
        let mark = paths::backup_use(id, Some(target), &nonce);
        self.put_mark(&mark).await?;
        let deleting = self
            .backup_marks(id)
            .await?
            .into_iter()
            .any(|(_, target, age)| target.is_none() && age <= STALE_MARK);
        let record = match deleting {
            true => None,
            false => read_record(self.ctx.store.as_ref(), id).await?,
        };
        match record {
            Some(r) => Ok(Some((r, mark.to_string()))),
            None => {
                io::delete(self.ctx.store.as_ref(), &mark).await?;
                Ok(None)
            }
        }
    }

    /// Ends a restore's use of a backup (its mark from `begin_backup_use`).
    pub async fn end_backup_use(&self, mark: &str) -> Result<()> {
        io::delete(
            self.ctx.store.as_ref(),
            &object_store::path::Path::from(mark),
        )
        .await
    }

    async fn put_mark(&self, path: &object_store::path::Path) -> Result<()> {
        self.ctx
            .store
            .put(path, PutPayload::default())
            .await
            .map(|_| ())
            .map_err(|e| Error::store(path, e))
    }

    /// The marks on backup `id`: (path, the restore's target or None for a
    /// deletion, age).
    async fn backup_marks(
        &self,
        id: &str,
    ) -> Result<
        Vec<(
            object_store::path::Path,
            Option<String>,
            std::time::Duration,
        )>,
    > {
        let now = self.ctx.config.clock.now_ms();
        Ok(io::list(self.ctx.store.as_ref(), &paths::backup_uses(id))
            .await?
            .into_iter()
            .filter_map(|m| {
                let target = paths::parse_backup_use(&m.location)?;
                let at = m.last_modified.timestamp_millis().max(0) as u64;
                let age = std::time::Duration::from_millis(now.saturating_sub(at));
                Some((m.location, target, age))
            })
            .collect())
    }

    /// Fills `target` (created with the backup's key schema) with the
    /// backup's items: each pinned partition read in key order and its
    /// items ingested into the target partitions they route to, SST by SST.
    /// Returns the number of items.
    pub async fn restore_backup(&self, id: &str, target: &str) -> Result<u64> {
        let Some(record) = self.backup(id).await? else {
            return Err(Error::Validation(format!("backup {id} not found")));
        };
        let t = self.table(target).await?;
        if t.desc.key_schema != record.table.key_schema {
            return Err(Error::Validation(format!(
                "cannot restore backup {id} into {target}: their keys differ"
            )));
        }
        // The same partitions, never split: each SST can be copied into the
        // partition of the same number, whole, by the store.
        if record.table.splits.is_empty()
            && t.desc.splits.is_empty()
            && t.desc.partitions == record.table.partitions
        {
            return self.restore_by_copy(&record, &t).await;
        }
        let desc = Arc::new(record.table.clone());
        let mut items = 0;
        for (part, manifest) in record.partitions {
            // Read through a partition of the backed-up incarnation (which
            // may be deleted since): only its SSTs are touched.
            let p = Arc::new(Partition::new(
                Arc::clone(&self.ctx),
                Arc::clone(&desc),
                part,
            ));
            let plan = PointInTimePlan::of_manifest(manifest);
            let moment = PointInTime::of_plan(Arc::clone(&desc), p, plan);
            items += self.restore_moment(moment, &t, target).await?;
        }
        Ok(items)
    }
}

impl Engine {
    /// Restores a backup of a table that never split into a table of as
    /// many partitions: every SST is copied by the store (S3 CopyObject, a
    /// hard link on a local directory: no data through this process), and
    /// each partition's manifest then names the copies. Seconds at any
    /// size. Returns the number of items (the manifests' estimate).
    async fn restore_by_copy(&self, record: &BackupRecord, t: &TableHandle) -> Result<u64> {
        let store = &self.ctx.store;
        let mut items = 0;
        for (part, manifest) in &record.partitions {
            // Per partition: its copies must be named by a manifest within
            // GC's grace of the first (`publish`), however long the others took.
            let since = self.ctx.config.clock.tick();
            let from =
                paths::PartitionPaths::new(&record.table.name, &record.table.incarnation, *part);
            let to = paths::PartitionPaths::new(&t.desc.name, &t.desc.incarnation, *part);
            // Owned pairs: a closure over borrowed SSTs makes the future
            // unusable in a spawned task (its lifetimes are not general).
            let pairs: Vec<_> = manifest
                .ssts()
                .map(|s| (from.run(&s.id), to.run(&s.id)))
                .collect();
            let copies = pairs.into_iter().map(|(src, dst)| async move {
                store
                    .copy(&src, &dst)
                    .await
                    .map_err(|e| Error::store(&src, e))
            });
            futures::stream::iter(copies)
                .buffer_unordered(COPIES_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await?;
            self.partition_by_id(t, *part)?
                .adopt(manifest.levels.clone(), since)
                .await?;
            items += crate::partition::manifest_live_items(manifest, *part).items;
        }
        Ok(items)
    }
}

/// Partitions a backup flushes at once.
const FLUSHES_IN_FLIGHT: usize = 8;

/// Copies a restore has in flight.
const COPIES_IN_FLIGHT: usize = 16;

async fn read_record(store: &dyn ObjectStore, id: &str) -> Result<Option<BackupRecord>> {
    let path = paths::backup(id);
    let Some(bytes) = io::get_opt(store, &path).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::corrupt(&path, e))
}

async fn records(store: &dyn ObjectStore) -> Result<Vec<BackupRecord>> {
    let mut out = Vec::new();
    for meta in io::list(store, &paths::backups_dir()).await? {
        let Some(id) = paths::parse_record_id(&meta.location) else {
            continue;
        };
        // Deleted since the listing: gone.
        if let Some(r) = read_record(store, &id).await? {
            out.push(r);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// What a backup pins, by backup id: its table's name and the SSTs' object
/// names (records never change, so this is read once per id).
pub(crate) type PinCache = Mutex<HashMap<String, (String, Arc<Vec<String>>)>>;

impl Engine {
    /// The SSTs (object names) the backups of table `name` keep, whichever
    /// incarnation they are of: what GC, purges and sweeps must not delete.
    /// One LIST a call; each backup's record is read once (records never
    /// change). Index tables are never backed up.
    pub(crate) async fn pinned(&self, name: &str) -> Result<HashSet<String>> {
        if is_index_table(name) {
            return Ok(HashSet::new());
        }
        let store = self.ctx.store.as_ref();
        let mut listed = HashSet::new();
        let mut out = HashSet::new();
        for meta in io::list(store, &paths::backups_dir()).await? {
            let Some(id) = paths::parse_record_id(&meta.location) else {
                continue;
            };
            let cached = self
                .backup_pins
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            let (table, ssts) = match cached {
                Some(c) => c,
                None => {
                    let Some(r) = read_record(store, &id).await? else {
                        continue; // deleted since the listing
                    };
                    let c = (
                        r.table.name.clone(),
                        Arc::new(r.pinned().collect::<Vec<_>>()),
                    );
                    self.backup_pins
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone(), c.clone());
                    c
                }
            };
            if table == name {
                out.extend(ssts.iter().cloned());
            }
            listed.insert(id);
        }
        // Deleted backups leave the cache.
        self.backup_pins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| listed.contains(id));
        Ok(out)
    }
}

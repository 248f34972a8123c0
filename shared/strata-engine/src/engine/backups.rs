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
            for p in t.leaves() {
                match p.flushed_manifest().await {
                    Ok(m) => partitions.push((p.part, (*m).clone())),
                    Err(e @ Error::Sealed { .. }) => {
                        moved = Some(e);
                        break;
                    }
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
    /// sweep, for a deleted table). Refused while a restore reads it.
    pub async fn delete_backup(&self, id: &str) -> Result<Option<BackupRecord>> {
        let store = self.ctx.store.as_ref();
        let Some(record) = read_record(store, id).await? else {
            return Ok(None);
        };
        if !io::list(store, &paths::backup_uses(id)).await?.is_empty() {
            return Err(Error::Validation(format!(
                "backup {id} is being restored from"
            )));
        }
        io::delete(store, &paths::backup(id)).await?;
        Ok(Some(record))
    }

    /// Marks (or unmarks) a restore from backup `id` into `target` in
    /// progress.
    pub async fn mark_backup_use(&self, id: &str, target: &str, on: bool) -> Result<()> {
        let path = paths::backup_use(id, target);
        if on {
            self.ctx
                .store
                .put(&path, PutPayload::default())
                .await
                .map_err(|e| Error::store(&path, e))?;
        } else {
            io::delete(self.ctx.store.as_ref(), &path).await?;
        }
        Ok(())
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
        let since = self.ctx.config.clock.tick();
        let mut items = 0;
        for (part, manifest) in &record.partitions {
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
        let Some(id) = paths::parse_backup_id(&meta.location) else {
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

/// The SSTs (object names) the backups of table `name` keep, whichever
/// incarnation they are of: what GC, purges and sweeps must not delete.
pub(crate) async fn pinned(store: &dyn ObjectStore, name: &str) -> Result<HashSet<String>> {
    Ok(records(store)
        .await?
        .iter()
        .filter(|r| r.table.name == name)
        .flat_map(|r| r.pinned().collect::<Vec<_>>())
        .collect())
}

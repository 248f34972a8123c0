//! Global tables: active-active replication between regions, each with its
//! own store, last writer wins.
//!
//! Every version of an item carries a [`Stamp`] (commit time, region). A
//! local write is stamped newer than the version it replaces, and a
//! replicated version is applied only if its stamp is newer than what the
//! replica holds for the key (tombstones included). So each region ends up
//! holding, for every key, the version with the greatest stamp it has been
//! sent, whatever the order of arrival: once every region has been sent
//! every version, all regions hold the same items.
//!
//! The [`Replicator`] of region A tails each partition log of each global
//! table in A and sends to every other region of the table the versions A
//! is responsible for: those that originated in A, and those whose origin
//! is no longer a member (nobody else would ever send them). Versions A
//! received from a current member are that member's to send.
//! A cursor remembers every member it has seen; once one of them has left,
//! the partition is backfilled again. A backfill sends every version the
//! source holds, whatever its origin (the stamp check makes the extra sends
//! no-ops), so versions of a departed region that reached only some members
//! reach all of them, and a region that rejoins gets its old versions back.
//! Its position per (table, target region, partition) is a cursor object in
//! the *target* store (`replication/<table>/<from-region>/p<part>`), written
//! after the versions it covers are committed there: a replicator that dies
//! mid-batch resends part of a batch, which last-writer-wins makes a no-op.
//! A cursor for another table incarnation, or one pointing into log that GC
//! has already deleted, starts a backfill: the partition's current versions
//! (tombstones included) are sent, then tailing resumes from the tail they
//! were read at.
//!
//! Splits: a partition's log ends at its seal and each child's goes on from
//! the seq after it, so a family is replicated parents first. A child
//! without a cursor starts at its parent's seal once the parent's log has
//! all been sent. A sealed partition is never backfilled (its state lives
//! on in its children): when its log cannot be sent whole (trimmed, or no
//! valid cursor), its cursor is ended at the seal marked `backfill_children`
//! and each child is backfilled instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};
use object_store::{path::Path, PutPayload};
use serde::{Deserialize, Serialize};

use crate::catalog::{TableDescriptor, TableSpec};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::io;
use crate::partition_map;
use crate::segment::Stamp;
use crate::value::Item;

/// Log segments read per step of a partition's replication.
const SEGMENTS_PER_STEP: usize = 64;
/// Keys per chunk (and per replicated commit) of a backfill.
const BACKFILL_CHUNK: usize = 1000;
/// Partitions replicated at once.
const PARALLEL_PARTITIONS: usize = 8;

/// Where a replicator of `from` has got to in one partition of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    source_incarnation: String,
    target_incarnation: String,
    /// Every mutation of the source log up to this sequence number has
    /// been applied to the target (once `backfill_after` is done).
    seq: u64,
    /// A backfill in progress: every key up to this one (encoded; empty:
    /// none yet) has been sent. Chunks are read from views no older than
    /// `seq`, so once the backfill is done, tailing from `seq` misses nothing.
    #[serde(default)]
    backfill_after: Option<Vec<u8>>,
    /// Every member of the table while this cursor was in use (empty:
    /// written before cursors recorded them, which counts as invalid).
    #[serde(default)]
    members: Vec<String>,
    /// A sealed partition whose log was not all sent: its children are
    /// backfilled rather than tailed from its seal.
    #[serde(default)]
    backfill_children: bool,
}

/// `seen` and `now`, sorted, without duplicates.
fn union(seen: &[String], now: &[String]) -> Vec<String> {
    let all: BTreeSet<&String> = seen.iter().chain(now).collect();
    all.into_iter().cloned().collect()
}

/// Whether the region that holds a version with this origin must send it:
/// its own versions, and orphans (from a region no longer a member). An
/// empty origin is a version from before stamps carried one: local.
fn sends(origin: &str, here: &str, members: &[String]) -> bool {
    origin.is_empty() || origin == here || !members.iter().any(|m| m == origin)
}

/// What one replication pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationReport {
    /// Source log segments read.
    pub segments: usize,
    /// Versions sent to replicas.
    pub sent: usize,
    /// Versions that changed a replica (the rest were already there or older).
    pub applied: usize,
    /// Partitions that had to be backfilled from a snapshot.
    pub backfills: usize,
    /// Commit time (µs) of the oldest segment the pass found unsent.
    pub oldest_unsent_micros: Option<u64>,
}

impl ReplicationReport {
    /// Adds another pass's counts.
    pub fn add(&mut self, o: &ReplicationReport) {
        self.segments += o.segments;
        self.sent += o.sent;
        self.applied += o.applied;
        self.backfills += o.backfills;
        self.oldest_unsent_micros = match (self.oldest_unsent_micros, o.oldest_unsent_micros) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// How far behind one region's replica of a table was when the last pass
/// over it started (what the console and `/metrics` show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lag {
    /// Log segments the pass found unsent, over the table's partitions.
    pub backlog_segments: u64,
    /// Age of the oldest write the pass found unsent (0: it was caught up).
    pub behind_ms: u64,
    /// When the last pass over the table ended (ms since the epoch).
    pub checked_ms: u64,
}

/// Engines for the other regions, by region name.
pub type Regions = BTreeMap<String, Arc<Engine>>;

/// Replicates one region's writes to the other regions of its global tables.
pub struct Replicator {
    source: Arc<Engine>,
    targets: Regions,
    /// Cursors this process wrote or read, so a pass over a quiet
    /// partition costs one probe of the source log and nothing else.
    cursors: Mutex<HashMap<(String, String, u32), Cursor>>,
    /// What the last pass over each (table, region, partition) found.
    lags: Mutex<BTreeMap<(String, String, u32), Lag>>,
}

impl Replicator {
    pub fn new(source: Arc<Engine>, targets: Regions) -> Self {
        Self {
            source,
            targets,
            cursors: Mutex::new(HashMap::new()),
            lags: Mutex::new(BTreeMap::new()),
        }
    }

    fn region(&self) -> &str {
        &self.source.config().region
    }

    /// The regions replicated to.
    pub fn regions(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }

    /// The engine of the region replicated from.
    pub fn source(&self) -> &Arc<Engine> {
        &self.source
    }

    /// Per (table, target region): how far behind the replica was when the
    /// last pass over it started, over the partitions this replicator has
    /// passed over.
    pub fn lag(&self) -> BTreeMap<(String, String), Lag> {
        let mut out: BTreeMap<(String, String), Lag> = BTreeMap::new();
        for ((table, region, _), l) in self.lags.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let e = out.entry((table.clone(), region.clone())).or_default();
            e.backlog_segments += l.backlog_segments;
            e.behind_ms = e.behind_ms.max(l.behind_ms);
            e.checked_ms = e.checked_ms.max(l.checked_ms);
        }
        out
    }

    fn note_lag(&self, table: &str, region: &str, part: u32, r: &ReplicationReport) {
        let now = self.source.config().clock.now_micros();
        let lag = Lag {
            backlog_segments: r.segments as u64,
            behind_ms: r
                .oldest_unsent_micros
                .map_or(0, |ts| now.saturating_sub(ts) / 1000),
            checked_ms: now / 1000,
        };
        self.lags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((table.to_string(), region.to_string(), part), lag);
    }

    /// One pass over every global table of the source region.
    pub async fn run_once(&self) -> Result<ReplicationReport> {
        let mut total = ReplicationReport::default();
        let mut first_error = None;
        for table in self.source.list_tables().await? {
            match self.replicate_table(&table, None).await {
                Ok(r) => total.add(&r),
                Err(Error::TableNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(table = %table, error = %e, "replication failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// One pass over a table: every partition (or only `parts`), to every
    /// other region of the table.
    pub async fn replicate_table(
        &self,
        table: &str,
        parts: Option<&[u32]>,
    ) -> Result<ReplicationReport> {
        let desc = self.source.describe_table(table).await?;
        // A partition's ancestors come with it: its log goes on from theirs.
        let wanted = desc.map().with_ancestors(parts);
        // One job per (region, family), its partitions in number order:
        // parents before children.
        let mut jobs: BTreeMap<(String, u32), (Arc<Engine>, Vec<u32>)> = BTreeMap::new();
        for region in desc.replicas.iter().filter(|r| *r != self.region()) {
            let target = self.targets.get(region).ok_or_else(|| {
                Error::Validation(format!(
                    "table {table} has a replica in region {region}, but no store is configured for that region"
                ))
            })?;
            for &part in &wanted {
                let family = partition_map::family(desc.partitions, part);
                jobs.entry((region.clone(), family))
                    .or_insert_with(|| (Arc::clone(target), Vec::new()))
                    .1
                    .push(part);
            }
        }
        let desc = &desc;
        let results: Vec<Result<ReplicationReport>> = stream::iter(jobs)
            .map(|((region, _), (target, family))| async move {
                let mut report = ReplicationReport::default();
                for part in family {
                    let r = self
                        .replicate_partition(desc, &region, &target, part)
                        .await?;
                    self.note_lag(table, &region, part, &r);
                    report.add(&r);
                }
                Ok(report)
            })
            .buffer_unordered(PARALLEL_PARTITIONS)
            .collect()
            .await;
        let mut total = ReplicationReport::default();
        for r in results {
            total.add(&r?);
        }
        Ok(total)
    }

    async fn replicate_partition(
        &self,
        desc: &TableDescriptor,
        region: &str,
        target: &Engine,
        part: u32,
    ) -> Result<ReplicationReport> {
        let table = desc.name.as_str();
        let tdesc = target.describe_table(table).await?;
        let key = (region.to_string(), table.to_string(), part);
        let path = crate::paths::replication_cursor(table, self.region(), part);
        // A cursor used while a member that has since left was one has not
        // sent that member's versions, which may now be nobody else's to
        // send: start again (so does a cursor that never recorded members).
        let valid = |c: &Cursor| {
            c.source_incarnation == desc.incarnation
                && c.target_incarnation == tdesc.incarnation
                && !c.members.is_empty()
                && c.members.iter().all(|m| desc.replicas.contains(m))
        };
        let mut cursor = self.cursor(target, &key, &path, &valid).await?;
        let mut report = ReplicationReport::default();
        let map = desc.map();
        let seal = map.split_of(part).map(|s| s.seal_seq);
        if cursor.is_none() {
            if let Some(parent) = partition_map::parent(desc.partitions, part) {
                // The log goes on from the parent's seal: start there once
                // the parent's log has all been sent.
                let parent_seal = map.split_of(parent).map_or(0, |s| s.seal_seq);
                let parent_key = (region.to_string(), table.to_string(), parent);
                let parent_path = crate::paths::replication_cursor(table, self.region(), parent);
                match self
                    .cursor(target, &parent_key, &parent_path, &valid)
                    .await?
                {
                    Some(p) if p.backfill_after.is_some() || p.seq < parent_seal => {
                        return Ok(report);
                    }
                    Some(p) if !p.backfill_children => {
                        let c = Cursor {
                            seq: parent_seal,
                            members: union(&p.members, &desc.replicas),
                            ..p
                        };
                        self.save(target, &path, &key, &c).await?;
                        cursor = Some(c);
                    }
                    _ => {}
                }
            }
        }
        if let Some(c) = cursor.as_mut() {
            c.members = union(&c.members, &desc.replicas);
        }
        let mut reloaded = false;
        let retention = self.source.config().log_retention.as_micros() as u64;
        loop {
            if let Some(seal) = seal {
                match &cursor {
                    Some(c) if c.backfill_after.is_none() && c.seq >= seal => return Ok(report),
                    Some(c) if c.backfill_after.is_none() => {}
                    // Never backfilled: its children are.
                    _ => {
                        let c = Cursor {
                            source_incarnation: desc.incarnation.clone(),
                            target_incarnation: tdesc.incarnation.clone(),
                            seq: seal,
                            backfill_after: None,
                            members: desc.replicas.clone(),
                            backfill_children: true,
                        };
                        self.save(target, &path, &key, &c).await?;
                        return Ok(report);
                    }
                }
            }
            let Some(c) = cursor.clone() else {
                // Start a backfill: the partition's versions as they are now,
                // then the log from the tail they are at least as new as.
                report.backfills += 1;
                let c = Cursor {
                    source_incarnation: desc.incarnation.clone(),
                    target_incarnation: tdesc.incarnation.clone(),
                    seq: self.source.log_tail(table, part).await?,
                    backfill_after: Some(Vec::new()),
                    members: desc.replicas.clone(),
                    backfill_children: false,
                };
                self.save(target, &path, &key, &c).await?;
                cursor = Some(c);
                continue;
            };
            if let Some(after) = &c.backfill_after {
                let after = Some(after.as_slice()).filter(|a| !a.is_empty());
                let chunk = self
                    .source
                    .versions_after(table, part, after, BACKFILL_CHUNK)
                    .await?;
                let last = chunk.last().map(|(k, _)| k.clone());
                let full = chunk.len() == BACKFILL_CHUNK;
                let here = self.region();
                // Everything, whatever its origin: a backfill must leave the
                // target holding every version the source holds.
                let mine: Vec<(Arc<Item>, bool, Stamp)> = chunk
                    .into_iter()
                    .map(|(_, v)| {
                        let region = if v.origin.is_empty() {
                            Arc::from(here)
                        } else {
                            Arc::clone(&v.origin)
                        };
                        let stamp = Stamp {
                            ts_micros: v.ts_micros,
                            region,
                        };
                        (v.item, v.deleted, stamp)
                    })
                    .collect();
                report.sent += mine.len();
                if !mine.is_empty() {
                    report.applied += target.apply_replicated(table, mine).await?;
                }
                let next = Cursor {
                    backfill_after: if full { last } else { None },
                    ..c
                };
                self.save(target, &path, &key, &next).await?;
                cursor = Some(next);
                continue;
            }
            let (read_desc, read) = self
                .source
                .read_log(table, part, c.seq + 1, SEGMENTS_PER_STEP)
                .await?;
            if read_desc.incarnation != desc.incarnation {
                return Err(Error::TableNotFound(table.to_string()));
            }
            // Segments past the log retention count as gone even if GC has
            // not deleted them yet: a version that old could meet a replica
            // whose tombstone for it has expired.
            let now = self.source.config().clock.now_micros();
            let expired = read
                .segments
                .iter()
                .find(|s| !s.is_void())
                .is_some_and(|s| s.commit_ts_micros < now.saturating_sub(retention));
            if read.trimmed || expired {
                // Another replicator may have got further: look before
                // starting over from a backfill.
                if !reloaded {
                    reloaded = true;
                    if let Some(stored) = self.load(target, &path).await?.filter(valid) {
                        if stored.seq > c.seq || stored.backfill_after.is_some() {
                            cursor = Some(stored);
                            continue;
                        }
                    }
                }
                cursor = None;
                continue;
            }
            let Some(last) = read.segments.last().map(|s| s.seq) else {
                return Ok(report);
            };
            if let Some(first) = read.segments.iter().find(|s| !s.is_void()) {
                report
                    .oldest_unsent_micros
                    .get_or_insert(first.commit_ts_micros);
            }
            let mut changes = Vec::new();
            let here = self.region();
            for seg in &read.segments {
                report.segments += 1;
                // All of a segment's local mutations share one stamp: send
                // only the last of each key, the one the segment leaves in
                // place (a replicated batch holds one change per key).
                let mut keys = std::collections::HashSet::new();
                let mut last_per_key: Vec<_> = seg
                    .mutations
                    .iter()
                    .rev()
                    .filter(|m| keys.insert(m.key.as_slice()))
                    .map(|m| (Arc::clone(&m.image), m.deleted, seg.stamp_of(m)))
                    .filter(|(_, _, stamp)| sends(&stamp.region, here, &desc.replicas))
                    .collect();
                last_per_key.reverse();
                changes.extend(last_per_key);
            }
            report.sent += changes.len();
            if !changes.is_empty() {
                report.applied += target.apply_replicated(table, changes).await?;
            }
            let next = Cursor {
                seq: last,
                members: union(&c.members, &desc.replicas),
                ..c
            };
            self.save(target, &path, &key, &next).await?;
            cursor = Some(next);
            if read.segments.len() < SEGMENTS_PER_STEP {
                return Ok(report);
            }
        }
    }

    /// The valid cursor for `key`: remembered, else read from the target.
    async fn cursor(
        &self,
        target: &Engine,
        key: &(String, String, u32),
        path: &Path,
        valid: &impl Fn(&Cursor) -> bool,
    ) -> Result<Option<Cursor>> {
        let remembered = self
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        match remembered.filter(valid) {
            Some(c) => Ok(Some(c)),
            None => Ok(self.load(target, path).await?.filter(valid)),
        }
    }

    async fn load(&self, target: &Engine, path: &Path) -> Result<Option<Cursor>> {
        Ok(match io::get_opt(target.store().as_ref(), path).await? {
            Some(bytes) => serde_json::from_slice::<Cursor>(&bytes).ok(),
            None => None,
        })
    }

    async fn save(
        &self,
        target: &Engine,
        path: &Path,
        key: &(String, String, u32),
        cursor: &Cursor,
    ) -> Result<()> {
        let body = serde_json::to_vec(cursor).unwrap_or_default();
        target
            .store()
            .put(path, PutPayload::from(body))
            .await
            .map_err(|e| Error::store(path, e))?;
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), cursor.clone());
        Ok(())
    }
}

// ---------------------------------------------------------- configuration

/// Parses the region map: `region=store-url` entries separated by commas
/// (`STRATA_REGIONS`, or `--replica` flags), e.g.
/// `eu-west-1=s3://strata-eu?region=eu-west-1,ap-south-1=file:///srv/ap`.
pub fn parse_regions(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            entry
                .split_once('=')
                .filter(|(r, u)| !r.is_empty() && !u.is_empty())
                .map(|(r, u)| (r.trim().to_string(), u.trim().to_string()))
                .ok_or_else(|| {
                    Error::Validation(format!(
                        "bad region entry {entry:?}: expected region=store-url"
                    ))
                })
        })
        .collect()
}

/// Engines for the other regions' stores, without touching them (for a
/// Lambda function's init: no network I/O). They write there only to apply
/// replicated versions and to create or delete replica tables; compaction
/// of those stores is their own region's business, so theirs is off.
pub fn open_regions_unchecked(
    entries: &[(String, String)],
    base: &crate::config::EngineConfig,
) -> Result<Regions> {
    let mut out = Regions::new();
    for (region, url) in entries {
        if *region == base.region {
            continue;
        }
        let config = crate::config::EngineConfig {
            region: region.clone(),
            auto_compact: false,
            compaction_hook: None,
            cache_bytes: base.cache_bytes / 4,
            ..base.clone()
        };
        out.insert(
            region.clone(),
            Arc::new(Engine::open_unchecked(url, config)?),
        );
    }
    Ok(out)
}

/// [`open_regions_unchecked`], then each store's atomic-create probe.
pub async fn open_regions(
    entries: &[(String, String)],
    base: &crate::config::EngineConfig,
) -> Result<Regions> {
    let out = open_regions_unchecked(entries, base)?;
    for engine in out.values() {
        engine.check_store().await?;
    }
    Ok(out)
}

// ------------------------------------------------------------ membership

/// Adds a replica of `table` in `region`, as UpdateTable's ReplicaUpdates
/// Create does: creates the table there (same keys, partitions and
/// settings, empty) and records the new region in every member's
/// descriptor. The replicators then fill it. `regions` must name every
/// current member other than `local`'s own region.
pub async fn add_replica(
    local: &Engine,
    regions: &Regions,
    table: &str,
    region: &str,
) -> Result<TableDescriptor> {
    let here = local.config().region.clone();
    let desc = local.describe_table(table).await?;
    if region == here || desc.replicas.iter().any(|r| r == region) {
        return Err(Error::Validation(format!(
            "Failed to create a new replica of table with name: '{table}' because one or more replicas already existed as tables."
        )));
    }
    let target = engine_for(regions, table, region)?;
    // Every member must be reachable before anything is created.
    for r in desc.replicas.iter().filter(|r| **r != here) {
        engine_for(regions, table, r)?;
    }
    let mut members: BTreeSet<String> = desc.replicas.iter().cloned().collect();
    members.insert(here.clone());
    members.insert(region.to_string());
    let members: Vec<String> = members.into_iter().collect();
    match target
        .create_table(TableSpec {
            name: table.to_string(),
            key_schema: desc.key_schema.clone(),
            partitions: Some(desc.partitions),
            keep_old_images: desc.keep_old_images,
            replicas: members.clone(),
            meta: crate::engine::without_table_key(&desc.meta),
            indexes: desc.indexes.clone(),
            commit_window_ms: desc.commit_window_ms,
        })
        .await
    {
        Ok(_) => {}
        Err(Error::TableExists(_)) => {
            return Err(Error::Validation(format!(
                "Failed to create a new replica of table with name: '{table}' because one or more replicas already existed as tables."
            )))
        }
        Err(e) => return Err(e),
    }
    set_members(local, regions, table, &desc.replicas, &members, region).await
}

/// Removes the replica of `table` in `region` (ReplicaUpdates Delete):
/// deletes the table there and drops the region from every other member.
pub async fn remove_replica(
    local: &Engine,
    regions: &Regions,
    table: &str,
    region: &str,
) -> Result<TableDescriptor> {
    let here = local.config().region.clone();
    let desc = local.describe_table(table).await?;
    if !desc.replicas.iter().any(|r| r == region) || region == here {
        return Err(Error::Validation(format!(
            "Cannot delete replica in region {region}: it is not a replica of table {table} other than this region's"
        )));
    }
    let target = engine_for(regions, table, region)?;
    match target.delete_table(table).await {
        Ok(_) | Err(Error::TableNotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let members = members_without(&desc.replicas, region);
    set_members(local, regions, table, &desc.replicas, &members, region).await
}

/// Before this region's replica of `table` is deleted (DeleteTable on a
/// global table): drops this region from every other member it can reach.
pub async fn leave_group(local: &Engine, regions: &Regions, table: &str) -> Result<()> {
    let here = local.config().region.as_str();
    let desc = local.describe_table(table).await?;
    let members = members_without(&desc.replicas, here);
    for region in desc.replicas.iter().filter(|r| *r != here) {
        let Some(engine) = regions.get(region) else {
            tracing::warn!(table, region = %region, "no store configured for a member region; it keeps listing this one");
            continue;
        };
        let set = |d: &mut TableDescriptor| {
            d.replicas = members.clone();
            Ok(())
        };
        match engine.update_table(table, set).await {
            Ok(_) | Err(Error::TableNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The member list once `region` has left: a table left alone is no
/// longer global (no members at all).
fn members_without(replicas: &[String], region: &str) -> Vec<String> {
    let members: Vec<String> = replicas.iter().filter(|r| *r != region).cloned().collect();
    if members.len() <= 1 {
        Vec::new()
    } else {
        members
    }
}

fn engine_for<'a>(regions: &'a Regions, table: &str, region: &str) -> Result<&'a Arc<Engine>> {
    regions.get(region).ok_or_else(|| {
        Error::Validation(format!(
            "Cannot manage a replica of table {table} in region {region}: no store is configured for that region (set STRATA_REGIONS or --replica)"
        ))
    })
}

/// Writes the new member list into every member's descriptor (old members
/// and new, except `skip`, which was just created or deleted), this
/// region's last.
async fn set_members(
    local: &Engine,
    regions: &Regions,
    table: &str,
    old: &[String],
    members: &[String],
    skip: &str,
) -> Result<TableDescriptor> {
    let here = local.config().region.as_str();
    let set = |d: &mut TableDescriptor| {
        d.replicas = members.to_vec();
        Ok(())
    };
    let others: BTreeSet<&String> = old.iter().chain(members).collect();
    for region in others {
        if region == here || region == skip {
            continue;
        }
        let engine = engine_for(regions, table, region)?;
        match engine.update_table(table, set).await {
            Ok(_) | Err(Error::TableNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    local.update_table(table, set).await
}

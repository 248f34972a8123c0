//! The index follower: keeps every index table equal to its base table.
//!
//! It tails each base partition's log from a cursor and turns every
//! change of an item (its image before the segment -> its image after)
//! into index-table changes: a delete of the old entry when the item
//! leaves the index or moves in it, a put of the new entry. Each change
//! carries the base version's last-writer-wins [`Stamp`] and is applied
//! with [`Engine::apply_replicated`], so an index entry only ever moves
//! forward: replaying a batch (a follower killed before saving its cursor,
//! two followers racing, a lost response) changes nothing, and the cursor
//! is written after the batch it covers.
//!
//! Base segments of a table with indexes carry old images (the descriptor
//! forces `keep_old_images`, and the generation marker makes every later
//! segment keep them). A partition without a cursor is *backfilled*: its
//! current items are put, then its log is followed from the tail they were
//! read at. A gap (a cursor behind the retained log, or a segment without
//! old images) is backfilled the same way and then *swept*: entries of the
//! partition's items that no longer match the item are deleted.
//! Splits are followed as the replicator follows them: a parent to its
//! seal, then each child from there.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::PutPayload;
use serde::{Deserialize, Serialize};

use crate::catalog::TableDescriptor;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::index::{is_index_table, IndexDef, IndexStatus};
use crate::io;
use crate::keys::encode_key;
use crate::ops::Consistency;
use crate::partition_map;
use crate::segment::{LogSegment, Stamp};
use crate::value::Item;

/// Log segments read per step.
const SEGMENTS_PER_STEP: usize = 64;
/// Items per backfill chunk (and per applied batch).
const BACKFILL_CHUNK: usize = 1000;

/// How far an index has followed one base partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    base_incarnation: String,
    /// Every segment up to this one is in the index (once no backfill is
    /// in progress).
    seq: u64,
    /// A backfill in progress: items up to this encoded key were put.
    #[serde(default)]
    backfill_after: Option<Vec<u8>>,
    /// After the backfill, delete entries that no longer match their item.
    #[serde(default)]
    sweep: bool,
    /// A sealed partition whose log was not all followed: its children
    /// are backfilled instead (and swept, with `children_sweep`, when
    /// the parent's entries may be stale: a backfill or sweep was pending).
    #[serde(default)]
    children_backfill: bool,
    #[serde(default)]
    children_sweep: bool,
    /// The partition's seal has been followed (a split the reader's
    /// descriptor may not show yet).
    #[serde(default)]
    sealed: bool,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexReport {
    pub segments: usize,
    /// Index changes sent (puts and deletes).
    pub sent: usize,
    /// Index changes that changed an index table.
    pub applied: usize,
    pub backfills: usize,
    /// Stale entries a sweep deleted.
    pub swept: usize,
    /// A partition the descriptor followed shows as live turned out sealed
    /// by a split it does not list yet (its children hold later writes).
    pub unseen_split: Option<u32>,
}

impl IndexReport {
    pub fn add(&mut self, o: &IndexReport) {
        self.segments += o.segments;
        self.sent += o.sent;
        self.applied += o.applied;
        self.backfills += o.backfills;
        self.swept += o.swept;
        self.unseen_split = self.unseen_split.or(o.unseen_split);
    }
}

/// Work for the follower: base partitions written since it last looked,
/// and how far an in-process follower loop has got, so that an index read
/// in a process running one ([`follow_forever`]: `strata serve`) sees the
/// writes this process acknowledged before it (as DynamoDB Local's
/// synchronous indexes do; DynamoDB promises less).
pub struct IndexSignal {
    dirty: Mutex<BTreeSet<(String, Option<u32>)>>,
    notify: tokio::sync::Notify,
    /// Marks made so far (each after its entry is in `dirty`).
    announced: std::sync::atomic::AtomicU64,
    /// Marks the loop has followed: every mark counted here was taken and
    /// its partitions followed.
    followed: tokio::sync::watch::Sender<u64>,
    /// A loop is running in this process.
    running: std::sync::atomic::AtomicBool,
}

impl Default for IndexSignal {
    fn default() -> Self {
        Self {
            dirty: Mutex::default(),
            notify: tokio::sync::Notify::new(),
            announced: 0.into(),
            followed: tokio::sync::watch::Sender::new(0),
            running: false.into(),
        }
    }
}

impl IndexSignal {
    /// A commit landed in `table` (partition `part`; None: all of it).
    pub fn mark(&self, table: &str, part: Option<u32>) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((table.to_string(), part));
        self.announced
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Waits up to `timeout` for work, then takes what there is, with the
    /// count of marks it covers (pass it to [`IndexSignal::followed`]).
    pub async fn next(&self, timeout: Duration) -> BTreeSet<(String, Option<u32>)> {
        self.take(timeout).await.0
    }

    async fn take(&self, timeout: Duration) -> (BTreeSet<(String, Option<u32>)>, u64) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
        // Read the count first: every mark it counts is already in `dirty`.
        let upto = self.announced.load(std::sync::atomic::Ordering::SeqCst);
        let work = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        (work, upto)
    }

    /// Waits (at most `timeout`) until the process's follower loop, if one
    /// runs, has followed every commit announced so far.
    pub(crate) async fn wait_followed(&self, timeout: Duration) {
        if !self.running.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let target = self.announced.load(std::sync::atomic::Ordering::SeqCst);
        let mut rx = self.followed.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|f| *f >= target)).await;
    }
}

/// Keeps every index of the engine's store up to date until the process
/// ends (what `strata serve` runs): follows the partitions commits
/// announce as soon as they land, and every index of every table every few
/// seconds (what activates a new index, and the backstop for writes made
/// by other processes).
pub async fn follow_forever(engine: Arc<Engine>) {
    const FULL_PASS: Duration = Duration::from_secs(5);
    let signal = engine.index_signal();
    signal
        .running
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut last_full = tokio::time::Instant::now();
    loop {
        let (work, upto) = signal.take(FULL_PASS).await;
        let mut failed = false;
        let mut by_table: std::collections::BTreeMap<String, Option<Vec<u32>>> = Default::default();
        for (table, part) in work {
            let entry = by_table.entry(table).or_insert_with(|| Some(Vec::new()));
            match (entry.as_mut(), part) {
                (Some(parts), Some(p)) => parts.push(p),
                _ => *entry = None,
            }
        }
        for (table, parts) in by_table {
            match engine.follow_table_indexes(&table, parts.as_deref()).await {
                Ok(_) | Err(Error::TableNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(table = %table, error = %e, "index maintenance failed; retrying in a second");
                    failed = true;
                    let engine = Arc::clone(&engine);
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        engine.index_signal().mark(&table, None);
                    });
                }
            }
        }
        if !failed {
            signal.followed.send_if_modified(|f| {
                let moved = upto > *f;
                *f = (*f).max(upto);
                moved
            });
        }
        if last_full.elapsed() >= FULL_PASS {
            last_full = tokio::time::Instant::now();
            if let Err(e) = engine.follow_all_indexes().await {
                tracing::warn!(error = %e, "index maintenance pass failed; retrying");
            }
        }
    }
}

/// Cursors this process wrote or read, by (index table, partition).
pub(crate) type CursorCache = Mutex<HashMap<(String, u32), (String, Cursor)>>;

impl Engine {
    /// One pass over every index of every table.
    pub async fn follow_all_indexes(&self) -> Result<IndexReport> {
        let mut total = IndexReport::default();
        let mut first_error = None;
        for table in self.live_tables(|n| !is_index_table(n)).await? {
            match self.follow_table_indexes(&table, None).await {
                Ok(r) => total.add(&r),
                Err(Error::TableNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(table = %table, error = %e, "index maintenance failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = self.collect_index_tables().await {
            tracing::warn!(error = %e, "collecting the tables of dropped indexes failed");
        }
        first_error.map_or(Ok(total), Err)
    }

    /// Brings every index of `table` up to date with the given partitions
    /// (all: None), and marks indexes whose backfill is done active.
    pub async fn follow_table_indexes(
        &self,
        table: &str,
        parts: Option<&[u32]>,
    ) -> Result<IndexReport> {
        let base = Arc::new(self.describe_table(table).await?);
        let mut total = IndexReport::default();
        let mut first_error = None;
        // The indexes are followed side by side, and one failing does not
        // hold the others back.
        let results = futures::future::join_all(
            base.indexes
                .iter()
                .map(|ix| self.follow_index(&base, ix, parts)),
        )
        .await;
        for (ix, result) in base.indexes.iter().zip(results) {
            match result {
                Ok(r) => total.add(&r),
                // Dropped since this descriptor was read.
                Err(Error::IndexNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(table, index = %ix.name, error = %e, "index maintenance failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(total), Err)
    }

    /// Brings `ix` up to date with the given partitions of `base` (all:
    /// None), ancestors first.
    pub(crate) async fn follow_index(
        &self,
        base: &Arc<TableDescriptor>,
        ix: &IndexDef,
        parts: Option<&[u32]>,
    ) -> Result<IndexReport> {
        let mut report = IndexReport::default();
        for part in base.map().with_ancestors(parts) {
            report.add(&self.follow_index_partition(base, ix, part).await?);
        }
        if ix.status == IndexStatus::Creating && parts.is_none() {
            self.activate_if_filled(base, ix).await?;
        }
        Ok(report)
    }

    /// Marks a `Creating` index active once every live partition's cursor
    /// is past its backfill.
    async fn activate_if_filled(&self, base: &TableDescriptor, ix: &IndexDef) -> Result<()> {
        let itable = self.index_table(base, ix).await?;
        for part in base.map().leaves() {
            let path = crate::paths::index_cursor(&itable.name, &itable.incarnation, part);
            match self.load_cursor(&path).await? {
                Some(c) if c.base_incarnation == base.incarnation && c.backfill_after.is_none() => {
                }
                _ => return Ok(()),
            }
        }
        self.update_table(&base.name, |d| {
            for i in d
                .indexes
                .iter_mut()
                .filter(|i| i.name == ix.name && i.id == ix.id)
            {
                i.status = IndexStatus::Active;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Brings `ix` up to date with one partition of `base`.
    pub(crate) async fn follow_index_partition(
        &self,
        base: &TableDescriptor,
        ix: &IndexDef,
        part: u32,
    ) -> Result<IndexReport> {
        let itable = self.index_table(base, ix).await?;
        let path = |p: u32| crate::paths::index_cursor(&itable.name, &itable.incarnation, p);
        let cache_key = |p: u32| (itable.name.clone(), p);
        let valid = |c: &Cursor| c.base_incarnation == base.incarnation;
        let mut report = IndexReport::default();
        let mut cursor = self
            .cursor(&cache_key(part), &itable.incarnation, &path(part))
            .await?
            .filter(valid);
        let map = base.map();
        let seal = map.split_of(part).map(|s| s.seal_seq);
        let fresh = |seq: u64, backfill: bool, sweep: bool| Cursor {
            base_incarnation: base.incarnation.clone(),
            seq,
            backfill_after: backfill.then(Vec::new),
            sweep,
            children_backfill: false,
            children_sweep: false,
            sealed: false,
        };
        let mut inherited_sweep = false;
        if cursor.is_none() {
            if let Some(parent) = partition_map::parent(base.partitions, part) {
                // The log goes on from the parent's seal.
                let parent_seal = map.split_of(parent).map_or(0, |s| s.seal_seq);
                let pc = self
                    .cursor(&cache_key(parent), &itable.incarnation, &path(parent))
                    .await?
                    .filter(valid);
                match pc {
                    Some(p) if p.backfill_after.is_some() || p.seq < parent_seal => {
                        return Ok(report)
                    }
                    Some(p) if !p.children_backfill => {
                        let c = fresh(parent_seal, false, false);
                        self.save_cursor(&cache_key(part), &itable.incarnation, &path(part), &c)
                            .await?;
                        cursor = Some(c);
                    }
                    Some(p) => inherited_sweep = p.children_sweep,
                    None => {}
                }
            }
        }
        let save = |c: Cursor| {
            let (k, p) = (cache_key(part), path(part));
            let inc = itable.incarnation.clone();
            async move {
                self.save_cursor(&k, &inc, &p, &c).await?;
                Ok::<_, Error>(c)
            }
        };
        loop {
            if let Some(seal) = seal {
                match &cursor {
                    Some(c) if c.backfill_after.is_none() && c.seq >= seal => return Ok(report),
                    Some(c) if c.backfill_after.is_none() => {}
                    // A sealed partition is never backfilled: its children
                    // are, and swept if this one's entries may be stale.
                    _ => {
                        let pending = cursor
                            .as_ref()
                            .is_some_and(|c| c.backfill_after.is_some() || c.sweep);
                        save(Cursor {
                            children_backfill: true,
                            children_sweep: pending,
                            sealed: true,
                            ..fresh(seal, false, false)
                        })
                        .await?;
                        return Ok(report);
                    }
                }
            }
            let Some(c) = cursor.clone() else {
                report.backfills += 1;
                let tail = self.log_tail(&base.name, part).await?;
                cursor = Some(save(fresh(tail, true, inherited_sweep)).await?);
                continue;
            };
            if let Some(after) = &c.backfill_after {
                let after = Some(after.as_slice()).filter(|a| !a.is_empty());
                let chunk = self
                    .versions_after(&base.name, part, after, BACKFILL_CHUNK)
                    .await?;
                let last = chunk.last().map(|(k, _)| k.clone());
                let full = chunk.len() == BACKFILL_CHUNK;
                let here = &self.config().region;
                let changes: Vec<_> = chunk
                    .into_iter()
                    .filter(|(_, v)| !v.deleted)
                    .filter_map(|(_, v)| {
                        let entry = ix.entry(&base.key_schema, &v.item)?;
                        let region = if v.origin.is_empty() {
                            Arc::from(here.as_str())
                        } else {
                            Arc::clone(&v.origin)
                        };
                        Some((
                            Arc::new(entry),
                            false,
                            Stamp {
                                ts_micros: v.ts_micros,
                                region,
                            },
                        ))
                    })
                    .collect();
                report.sent += changes.len();
                if !changes.is_empty() {
                    report.applied += self.apply_replicated(&itable.name, changes).await?;
                }
                let mut next = Cursor {
                    backfill_after: if full { last } else { None },
                    ..c
                };
                if next.backfill_after.is_none() && next.sweep {
                    report.swept += self.sweep(base, ix, &itable, part).await?;
                    next.sweep = false;
                }
                cursor = Some(save(next).await?);
                continue;
            }
            let (read_desc, read) = self
                .read_log(&base.name, part, c.seq + 1, SEGMENTS_PER_STEP)
                .await?;
            if read_desc.incarnation != base.incarnation {
                return Err(Error::TableNotFound(base.name.clone()));
            }
            let without_old = read
                .segments
                .iter()
                .any(|s| !s.mutations.is_empty() && s.keeps_old_images() != Some(true));
            // Segments past the log retention count as gone even if GC has
            // not deleted them yet: the index's tombstones for what they
            // put may have expired, so replaying them could bring an
            // entry back.
            let retention = self.config().log_retention.as_micros() as u64;
            let now = self.config().clock.now_micros();
            let expired = read
                .segments
                .iter()
                .find(|s| !s.is_void())
                .is_some_and(|s| s.commit_ts_micros < now.saturating_sub(retention));
            if read.trimmed || without_old || expired {
                // Another follower may have got further: look first.
                if let Some(stored) = self.load_cursor(&path(part)).await?.filter(valid) {
                    if stored.seq > c.seq || stored.backfill_after.is_some() {
                        cursor = Some(stored);
                        continue;
                    }
                }
                tracing::warn!(table = %base.name, index = %ix.name, partition = part,
                    "the index cannot follow this partition's log from its cursor: backfilling and sweeping it");
                report.backfills += 1;
                let tail = self.log_tail(&base.name, part).await?;
                cursor = Some(save(fresh(tail, true, true)).await?);
                continue;
            }
            let sealed = c.sealed || read.segments.iter().any(|s| s.seal);
            if seal.is_none() && sealed {
                report.unseen_split = Some(part);
            }
            let Some(last) = read.segments.last().map(|s| s.seq) else {
                return Ok(report);
            };
            let mut changes = Vec::new();
            for seg in &read.segments {
                report.segments += 1;
                changes.extend(segment_changes(base, ix, seg));
            }
            report.sent += changes.len();
            if !changes.is_empty() {
                report.applied += self.apply_replicated(&itable.name, changes).await?;
            }
            cursor = Some(
                save(Cursor {
                    seq: last,
                    sealed,
                    ..c
                })
                .await?,
            );
            if read.segments.len() < SEGMENTS_PER_STEP {
                return Ok(report);
            }
        }
    }

    /// Deletes the entries of `part`'s items that do not match the item as
    /// it is now (left by a gap in the log the follower could not read).
    /// Reads the whole index table, a chunk at a time.
    async fn sweep(
        &self,
        base: &TableDescriptor,
        ix: &IndexDef,
        itable: &TableDescriptor,
        part: u32,
    ) -> Result<usize> {
        let ischema = ix.table_schema();
        let mut swept = 0;
        for ipart in itable.map().leaves() {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let chunk = self
                    .versions_after(&itable.name, ipart, after.as_deref(), BACKFILL_CHUNK)
                    .await?;
                let full = chunk.len() == BACKFILL_CHUNK;
                after = chunk.last().map(|(k, _)| k.clone());
                let mut stale = Vec::new();
                for (_, v) in chunk.into_iter().filter(|(_, v)| !v.deleted) {
                    let Ok(key) = base.key_schema.key_of(&v.item) else {
                        continue;
                    };
                    if base.map().route(&key.hash) != part {
                        continue;
                    }
                    let current = self.get(&base.name, &key, Consistency::Strong).await?;
                    let entry_key = ischema.key_of(&v.item).ok();
                    let now = current.and_then(|i| ix.entry_key(&i, &key));
                    if now.is_none() || now != entry_key {
                        let Some(k) = entry_key else { continue };
                        // Newer than the stale entry, older than any later
                        // version of the item (whose stamps are larger
                        // than the current version's, itself newer).
                        stale.push((
                            Arc::new(ix.entry_key_item(&k)),
                            true,
                            Stamp {
                                ts_micros: v.ts_micros + 1,
                                region: Arc::clone(&v.origin),
                            },
                        ));
                    }
                }
                if !stale.is_empty() {
                    swept += self.apply_replicated(&itable.name, stale).await?;
                }
                if !full {
                    break;
                }
            }
        }
        Ok(swept)
    }

    async fn cursor(
        &self,
        key: &(String, u32),
        incarnation: &str,
        path: &object_store::path::Path,
    ) -> Result<Option<Cursor>> {
        let remembered = self
            .index_cursors()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .filter(|(inc, _)| inc == incarnation)
            .map(|(_, c)| c.clone());
        match remembered {
            Some(c) => Ok(Some(c)),
            None => self.load_cursor(path).await,
        }
    }

    async fn load_cursor(&self, path: &object_store::path::Path) -> Result<Option<Cursor>> {
        Ok(match io::get_opt(self.store().as_ref(), path).await? {
            Some(bytes) => serde_json::from_slice::<Cursor>(&bytes).ok(),
            None => None,
        })
    }

    async fn save_cursor(
        &self,
        key: &(String, u32),
        incarnation: &str,
        path: &object_store::path::Path,
        c: &Cursor,
    ) -> Result<()> {
        let body = serde_json::to_vec(c).unwrap_or_default();
        self.store()
            .put(path, PutPayload::from(body))
            .await
            .map_err(|e| Error::store(path, e))?;
        self.index_cursors()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), (incarnation.to_string(), c.clone()));
        Ok(())
    }
}

/// The index changes one base segment makes: per item, from its image
/// before the segment (the first mutation's old image) to its image after
/// (the last mutation's), stamped with the last mutation's stamp.
fn segment_changes(
    base: &TableDescriptor,
    ix: &IndexDef,
    seg: &LogSegment,
) -> Vec<(Arc<Item>, bool, Stamp)> {
    let mut first: HashMap<&[u8], usize> = HashMap::new();
    let mut last: HashMap<&[u8], usize> = HashMap::new();
    for (i, m) in seg.mutations.iter().enumerate() {
        first.entry(m.key.as_slice()).or_insert(i);
        last.insert(m.key.as_slice(), i);
    }
    let mut order: Vec<(&[u8], usize)> = last.into_iter().collect();
    order.sort_by_key(|(_, i)| *i);
    let mut out = Vec::new();
    for (key, i) in order {
        let m = &seg.mutations[i];
        let old = seg.mutations[first[key]].old_image.as_deref();
        let new = (!m.deleted).then_some(m.image.as_ref());
        let Ok(base_key) = base.key_schema.key_of(&m.image) else {
            continue;
        };
        let stamp = seg.stamp_of(m);
        let old_key = old.and_then(|o| ix.entry_key(o, &base_key));
        let new_entry = new.and_then(|n| ix.entry(&base.key_schema, n));
        let new_key = new.and_then(|n| ix.entry_key(n, &base_key));
        if let Some(k) = old_key.filter(|k| Some(k) != new_key.as_ref()) {
            out.push((Arc::new(ix.entry_key_item(&k)), true, stamp.clone()));
        }
        if let Some(e) = new_entry {
            out.push((Arc::new(e), false, stamp));
        }
        debug_assert!(encode_key(&base_key) == m.key);
    }
    out
}

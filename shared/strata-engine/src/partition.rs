//! One partition of one table: its view of the log, the commit protocol,
//! reads, compaction and GC.
//!
//! # The view
//! An instance holds, per partition, the newest manifest it knows, the log
//! tail `t` it has applied, and the items of segments after the manifest's
//! `compacted_through` in memory (`mem`). Two instants make the view safe to
//! use (see ARCHITECTURE.md for the argument):
//!
//! - `tail_checked` (R): every log segment with seq > `t` was created after R.
//!   A probe of `log/<t+1>` that finds nothing, or a create of `log/<t+1>`
//!   sent at R, establishes it.
//! - `manifest_checked` (F): at F, no manifest newer than ours existed.
//!
//! GC deletes a compacted segment, a superseded manifest or an unreferenced
//! run only `gc_grace` (+ clock skew) after the manifest that made it
//! garbage. A view whose R and F are younger than `gc_grace / 2` therefore
//! cannot be fooled by a deletion: a `log/<t+1>` that is absent was never
//! created, so creating it cannot be swallowed by compaction, and a manifest's
//! runs still exist. Older views are refreshed before use.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::sync::oneshot;

use crate::cache::{Caches, PageKey};
use crate::catalog::TableDescriptor;
use crate::clock::{Clock, Tick};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::io::{self, Created};
use crate::keys::encode_key;
use crate::manifest::{FoldedToken, Manifest};
use crate::ops::{Change, Committed, Page, WriteOutcome, WriteRequest};
use crate::paths::{self, PartitionPaths};
use crate::run::{build_run, Block, RunInfo, RunMeta, Version};
use crate::segment::{LogSegment, Mutation, Stamp};
use crate::value::{item_size, nesting_depth, Item, MAX_ITEM_SIZE, MAX_NESTING};

/// Races lost in a row before a commit gives up with `Contention`.
const MAX_COMMIT_ATTEMPTS: usize = 256;
/// Segments a partition remembers after applying them (see `recent`), and
/// the most item bytes they may hold.
const RECENT_SEGMENTS: usize = 128;
const RECENT_BYTES: usize = 1 << 20;
/// Consecutive segments found by probing before switching to a LIST.
const PROBES_BEFORE_LIST: usize = 4;

/// What every partition shares: the store, the settings, the block cache.
pub(crate) struct Ctx {
    pub store: Arc<dyn object_store::ObjectStore>,
    pub config: EngineConfig,
    pub cache: Caches,
}

#[derive(Default)]
struct View {
    loaded: bool,
    manifest: Arc<Manifest>,
    manifest_checked: Option<Tick>,
    tail: u64,
    tail_checked: Option<Tick>,
    /// Commit time of the tail segment (commit times increase along the log).
    last_ts: u64,
    /// Old-image generation of the tail segment (the next one inherits it).
    images_gen: u64,
    /// Commit id of each segment after `manifest.compacted_through`, so a
    /// writer recognises its own segment however it learns of it.
    commits: BTreeMap<u64, u128>,
    /// Newest version of each key written after `manifest.compacted_through`.
    mem: BTreeMap<Vec<u8>, Version>,
    mem_bytes: usize,
    /// Client tokens in `mem`'s segments: token -> (seq, ts).
    tokens: HashMap<String, (u64, u64)>,
}

impl View {
    fn apply(&mut self, seg: &LogSegment) {
        if seg.seq <= self.tail {
            return;
        }
        let origin: Arc<str> = Arc::from(seg.origin_region.as_str());
        for m in &seg.mutations {
            self.mem_bytes += entry_bytes(&m.key, &m.image);
            let (ts_micros, origin) = match &m.replicated {
                Some(s) => (s.ts_micros, Arc::clone(&s.region)),
                None => (seg.lww_ts_micros, Arc::clone(&origin)),
            };
            let replaced = self.mem.insert(
                m.key.clone(),
                Version {
                    seq: seg.seq,
                    ts_micros,
                    origin,
                    deleted: m.deleted,
                    item: Arc::clone(&m.image),
                },
            );
            if let Some(old) = replaced {
                self.mem_bytes = self
                    .mem_bytes
                    .saturating_sub(entry_bytes(&m.key, &old.item));
            }
            if let Some(t) = &m.token {
                self.tokens
                    .insert(t.clone(), (seg.seq, seg.commit_ts_micros));
            }
        }
        self.tail = seg.seq;
        self.last_ts = self.last_ts.max(seg.commit_ts_micros);
        self.images_gen = self.images_gen.max(seg.images_gen.unwrap_or_default());
        self.commits.insert(seg.seq, seg.commit_id);
    }

    /// Adopts a newer manifest: what it folded leaves `mem`.
    fn install(&mut self, m: Arc<Manifest>) {
        if m.version <= self.manifest.version && self.loaded {
            return;
        }
        let ct = m.compacted_through;
        self.mem.retain(|_, v| v.seq > ct);
        self.tokens.retain(|_, (seq, _)| *seq > ct);
        self.commits.retain(|seq, _| *seq > ct);
        self.images_gen = self.images_gen.max(m.images_gen);
        self.mem_bytes = self.mem.iter().map(|(k, v)| entry_bytes(k, &v.item)).sum();
        self.tail = self.tail.max(ct);
        self.last_ts = self.last_ts.max(m.folded_ts_micros);
        self.manifest = m;
    }

    fn token_seq(&self, token: &str) -> Option<u64> {
        self.tokens.get(token).map(|(s, _)| *s).or_else(|| {
            self.manifest
                .tokens
                .iter()
                .find(|t| t.token == token)
                .map(|t| t.seq)
        })
    }
}

/// The first `limit` entries of `mem` with keys after `after` (a merge of
/// `limit` results never needs more of them).
fn first_after(
    mem: &BTreeMap<Vec<u8>, Version>,
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Version)> {
    let lo = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_vec()));
    mem.range((lo, Bound::Unbounded))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Item bytes a segment holds (images and old images).
fn segment_bytes(seg: &LogSegment) -> usize {
    seg.mutations
        .iter()
        .map(|m| entry_bytes(&m.key, &m.image) + m.old_image.as_deref().map_or(0, item_size))
        .sum()
}

/// Memory a tail entry is charged for.
fn entry_bytes(key: &[u8], item: &Item) -> usize {
    key.len() + item_size(item) + 32
}

struct Pending {
    req: WriteRequest,
    tx: oneshot::Sender<Result<Committed>>,
}

/// Each request's result in one evaluation (`true`: it adds mutations).
type Evaluated = Vec<Result<(Committed, bool)>>;

/// A create of `log/<seq>` whose outcome is not known yet (S3 answered 409:
/// a conditional write of that name was still in flight, possibly this
/// one). It is resolved when the view learns who holds `seq`.
struct Attempt {
    seq: u64,
    commit_id: u128,
    results: Evaluated,
}

/// What a create of the next log segment came to.
#[derive(Debug, PartialEq, Eq)]
enum Appended {
    /// The segment is committed (by this create or an earlier attempt of it).
    Committed,
    /// Another writer holds that seq; the view has applied its segment.
    Lost,
    /// Not known yet; the view is marked for a full refresh.
    Unresolved,
    /// Not sent: the view had grown too old to write from.
    NotSent,
}

/// Who published a manifest version we tried to create.
enum Published {
    Ours,
    Theirs,
    /// Not there yet after a refused create: possibly ours, still in flight.
    Unknown,
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionOutcome {
    /// Nothing after `compacted_through`.
    NothingToDo,
    /// Another compaction of this partition is running in this process.
    Busy,
    /// Published manifest `version`, folding the log through `compacted_through`.
    Compacted {
        version: u64,
        compacted_through: u64,
        runs: usize,
    },
    /// Another compactor published the next manifest first; our run was discarded.
    LostRace,
}

/// A version replicated from another region, for
/// [`Partition::apply_replicated`].
#[derive(Debug, Clone)]
pub struct ReplicatedChange {
    /// The encoded key.
    pub key: Vec<u8>,
    /// The item, or for a delete its key attributes.
    pub image: Arc<Item>,
    pub deleted: bool,
    pub stamp: Stamp,
}

/// A partition as it was at one moment: a manifest and the log after it.
#[derive(Debug, Clone)]
pub struct PointInTimePlan {
    manifest: Arc<Manifest>,
    mem: Arc<BTreeMap<Vec<u8>, Version>>,
    /// The last log segment the moment includes.
    pub through: u64,
}

/// Segments read from a partition's log.
#[derive(Debug, Clone)]
pub struct LogRead {
    pub segments: Vec<Arc<LogSegment>>,
    /// The newest committed sequence number when read.
    pub tail: u64,
    /// The requested position is older than the oldest retained segment.
    pub trimmed: bool,
}

/// What a GC pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub segments: usize,
    pub manifests: usize,
    pub runs: usize,
}

pub(crate) struct Partition {
    ctx: Arc<Ctx>,
    pub table: Arc<TableDescriptor>,
    pub part: u32,
    paths: PartitionPaths,
    /// This partition's name in the caches (its prefix, which includes the
    /// table incarnation: a re-created table never meets old entries).
    cache_id: Arc<str>,
    view: RwLock<View>,
    /// Serializes everything that advances the view through the store.
    sync: tokio::sync::Mutex<()>,
    pending: std::sync::Mutex<Vec<Pending>>,
    compacting: AtomicBool,
    /// When the compaction hook was last called for this partition.
    hooked: std::sync::Mutex<Option<Tick>>,
    /// No log segment before this one exists any more (a lower bound).
    first_retained: std::sync::atomic::AtomicU64,
    /// The last segments this instance applied, so a stream reader or a
    /// replicator on it does not fetch them a second time.
    recent: std::sync::Mutex<std::collections::VecDeque<Arc<LogSegment>>>,
}

impl Partition {
    pub fn new(ctx: Arc<Ctx>, table: Arc<TableDescriptor>, part: u32) -> Self {
        let paths = PartitionPaths::new(&table.name, &table.incarnation, part);
        let cache_id: Arc<str> = Arc::from(paths.root());
        Self {
            ctx,
            table,
            part,
            paths,
            cache_id,
            view: RwLock::new(View::default()),
            sync: tokio::sync::Mutex::new(()),
            pending: std::sync::Mutex::new(Vec::new()),
            compacting: AtomicBool::new(false),
            hooked: std::sync::Mutex::new(None),
            first_retained: std::sync::atomic::AtomicU64::new(1),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    fn store(&self) -> &dyn object_store::ObjectStore {
        self.ctx.store.as_ref()
    }

    fn clock(&self) -> &Clock {
        &self.ctx.config.clock
    }

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---------------------------------------------------------------- refresh

    /// Brings the view up to date as of a moment after `since`. Call with
    /// `sync` held.
    async fn refresh_locked(&self, since: Tick) -> Result<()> {
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
    async fn refresh_manifest(&self, probe_ok: bool) -> Result<()> {
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
        let mut v = self.write_view();
        v.install(newest);
        v.manifest_checked = Some(sent);
        Ok(())
    }

    async fn read_manifest(&self, version: u64) -> Result<Option<Manifest>> {
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
    async fn read_segment(&self, seq: u64) -> Result<Option<LogSegment>> {
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

    fn remember(&self, seg: LogSegment) {
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

    fn recent_segment(&self, seq: u64) -> Option<Arc<LogSegment>> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let first = recent.front()?.seq;
        let s = recent.get(seq.checked_sub(first)? as usize)?;
        (s.seq == seq).then(|| Arc::clone(s))
    }

    /// Applies every segment after the tail: probes `log/<t+1>` one by one,
    /// switching to a LIST when far behind (or `list_first`, on first load).
    async fn refresh_tail(&self, list_first: bool) -> Result<()> {
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

    async fn catch_up_by_list(&self) -> Result<()> {
        let tail = self.read_view().tail;
        let listed =
            io::list_after(self.store(), &self.paths.log_dir(), &self.paths.log(tail)).await?;
        let seqs: Vec<u64> = listed
            .iter()
            .filter_map(|m| paths::parse_seq(&m.location))
            .filter(|s| *s > tail)
            .collect();
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
        Ok(())
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

    // ----------------------------------------------------------------- reads

    /// The newest version of `key`, tombstones included: the log tail
    /// first, then the item cache, then the runs newest-first.
    async fn lookup(&self, key: &[u8]) -> Result<Option<Version>> {
        let manifest = {
            let v = self.read_view();
            if let Some(found) = v.mem.get(key) {
                return Ok(Some(found.clone()));
            }
            Arc::clone(&v.manifest)
        };
        if manifest.runs.is_empty() {
            return Ok(None);
        }
        if let Some(cached) = self.ctx.cache.item(&self.cache_id, manifest.version, key) {
            return Ok(cached);
        }
        let found = self.lookup_runs(&manifest, key).await?;
        self.ctx
            .cache
            .put_item(&self.cache_id, manifest.version, key, found.clone());
        Ok(found)
    }

    async fn lookup_runs(&self, manifest: &Manifest, key: &[u8]) -> Result<Option<Version>> {
        for run in &manifest.runs {
            let path = self.paths.run(&run.id);
            let meta = self.ctx.cache.run_meta(self.store(), &path, run).await?;
            if !meta.bloom.may_contain(key) {
                continue;
            }
            let b = meta.block_at_or_after(key);
            let Some(handle) = meta.blocks.get(b) else {
                continue;
            };
            let block = self.ctx.cache.block(self.store(), &path, handle).await?;
            if let Ok(i) = block.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                return Ok(Some(block[i].1.clone()));
            }
        }
        Ok(None)
    }

    pub async fn get(&self, key: &[u8], strong: bool) -> Result<Option<Arc<Item>>> {
        self.ensure_fresh(strong).await?;
        Ok(self
            .lookup(key)
            .await?
            .filter(|v| !v.deleted)
            .map(|v| v.item))
    }

    /// Items with keys in `(lo, hi)`, in key order (or reverse), skipping
    /// tombstones, up to `limit` items or `max_bytes` of item data.
    pub async fn range(
        &self,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        forward: bool,
        limit: usize,
        max_bytes: usize,
        strong: bool,
    ) -> Result<Page> {
        if is_empty_range(&lo, &hi) {
            return Ok(Page::default());
        }
        self.ensure_fresh(strong).await?;
        let cache_key = PageKey {
            partition: Arc::clone(&self.cache_id),
            lo: lo.clone(),
            hi: hi.clone(),
            forward,
            limit,
            max_bytes,
        };
        let stamp_now = {
            let v = self.read_view();
            (v.manifest.version, v.tail)
        };
        if let Some(page) = self.ctx.cache.page(&cache_key, stamp_now) {
            return Ok(page);
        }
        // The snapshot and its stamp are taken under one lock.
        let (mem, manifest, stamp) = {
            let v = self.read_view();
            let mut mem: Vec<(Vec<u8>, Version)> = v
                .mem
                .range((lo.clone(), hi.clone()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !forward {
                mem.reverse();
            }
            (mem, Arc::clone(&v.manifest), (v.manifest.version, v.tail))
        };
        let mut merge = self.merger(mem, &manifest, lo, hi, forward).await?;
        let mut page = Page::default();
        let mut bytes = 0;
        while page.items.len() < limit && bytes < max_bytes {
            let Some((_, version)) = merge.next().await? else {
                self.ctx.cache.put_page(cache_key, stamp, page.clone());
                return Ok(page);
            };
            if !version.deleted {
                bytes += item_size(&version.item);
                page.items.push(version.item);
            }
        }
        // Stopped at a limit: say where to resume.
        page.last_key = page
            .items
            .last()
            .map(|item| key_attributes(&self.table, item));
        self.ctx.cache.put_page(cache_key, stamp, page.clone());
        Ok(page)
    }

    async fn merger(
        &self,
        mem: Vec<(Vec<u8>, Version)>,
        manifest: &Manifest,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        forward: bool,
    ) -> Result<Merger<'_>> {
        let mut runs = Vec::with_capacity(manifest.runs.len());
        for run in &manifest.runs {
            let path = self.paths.run(&run.id);
            let meta = self.ctx.cache.run_meta(self.store(), &path, run).await?;
            runs.push(RunCursor::new(path, meta, lo.clone(), hi.clone(), forward));
        }
        Ok(Merger {
            part: self,
            mem: mem.into_iter().peekable(),
            runs,
            forward,
        })
    }

    // ---------------------------------------------------------------- writes

    /// Commits one request, group-committed with whatever else is queued for
    /// this partition in this process.
    pub async fn commit(self: &Arc<Self>, req: WriteRequest) -> Result<Committed> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Pending { req, tx });
        // The group commit runs in its own task: a caller that goes away (a
        // client disconnecting) must not cancel a commit others are part of.
        let me = Arc::clone(self);
        tokio::spawn(async move {
            {
                let _g = me.sync.lock().await;
                let group =
                    std::mem::take(&mut *me.pending.lock().unwrap_or_else(|p| p.into_inner()));
                if group.is_empty() {
                    return; // an earlier task committed ours with its group
                }
                me.commit_group(group).await;
            }
            me.maybe_compact();
        });
        rx.await.unwrap_or_else(|_| {
            Err(Error::OutcomeUnknown {
                table: self.table.name.clone(),
            })
        })
    }

    async fn commit_group(&self, group: Vec<Pending>) {
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

    /// The protocol: evaluate against the view, create `log/<t+1>`; on a lost
    /// race apply the winner and go again.
    ///
    /// Every evaluation gets its own commit id, and an attempt whose outcome
    /// is unknown (a create S3 refused with 409 while one was in flight) is
    /// kept until the view learns who holds its seq: if it was ours, its
    /// results are the answer, and the requests are never evaluated again
    /// on top of their own effects.
    async fn commit_requests(&self, reqs: &[WriteRequest]) -> Result<Vec<Result<Committed>>> {
        let mut unresolved: Vec<Attempt> = Vec::new();
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            self.refresh_if_stale().await?;
            if let Some(landed) = self.resolve(&mut unresolved)? {
                return Ok(finish(landed.results, landed.seq));
            }
            let (mutations, results, newest_seen, images_gen) = self.evaluate(reqs).await?;
            if mutations.is_empty() {
                return Ok(finish(results, 0));
            }
            // Newer than every version it replaces, even one replicated from a
            // region whose clock runs ahead: last-writer-wins then agrees with
            // the order this region applied them in.
            let seg = self.next_segment(rand::random(), newest_seen + 1, images_gen, mutations);
            match self.try_append(&seg).await? {
                Appended::Committed => return Ok(finish(results, seg.seq)),
                Appended::Unresolved => unresolved.push(Attempt {
                    seq: seg.seq,
                    commit_id: seg.commit_id,
                    results,
                }),
                Appended::Lost | Appended::NotSent => {}
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

    /// Settles unresolved attempts against the view: the one whose segment
    /// the view holds has landed; one whose seq another segment holds has
    /// not; one whose seq was folded into a manifest before this instance
    /// saw the segment cannot be told apart, so the outcome is unknown.
    fn resolve(&self, unresolved: &mut Vec<Attempt>) -> Result<Option<Attempt>> {
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
                    return Err(Error::OutcomeUnknown {
                        table: self.table.name.clone(),
                    })
                }
            }
        }
        Ok(None)
    }

    /// The segment that would follow the view's tail: its commit time after
    /// every commit the view has seen, its last-writer-wins time no earlier
    /// than that nor than `min_lww` (the hybrid clock every commit path
    /// shares), its old-image generation no lower than the tail's.
    fn next_segment(
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
        }
    }

    /// The old-image generation the next segment is written under: the
    /// descriptor's, or the tail's if that is newer (a stale descriptor).
    fn next_images_gen(&self) -> u64 {
        self.table.images_gen().max(self.read_view().images_gen)
    }

    async fn refresh_if_stale(&self) -> Result<()> {
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

    /// Creates `log/<seg.seq>` (see [`Appended`]). The view the segment was
    /// evaluated on must still be younger than `gc_grace / 2` right before
    /// each send, and every path that reports the segment committed first
    /// confirms it is visible.
    async fn try_append(&self, seg: &LogSegment) -> Result<Appended> {
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

    fn outcome_unknown(&self) -> Error {
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
    async fn settle(
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

    async fn adopt_found(
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
    async fn confirm_visible(&self, seq: u64, checked: Option<Tick>) -> Result<()> {
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

    /// Evaluates every request in order against the view plus the effects of
    /// the requests before it. Returns the mutations to commit and each
    /// request's result (`true` when it adds mutations).
    async fn evaluate(
        &self,
        reqs: &[WriteRequest],
    ) -> Result<(Vec<Mutation>, Evaluated, u64, u64)> {
        let images_gen = self.next_images_gen();
        let keep_old = images_gen % 2 == 1;
        let mut newest_seen = 0;
        let mut state: HashMap<Vec<u8>, Option<Arc<Item>>> = HashMap::new();
        let mut tokens_in_batch: HashMap<&str, ()> = HashMap::new();
        let mut mutations = Vec::new();
        let mut results = Vec::with_capacity(reqs.len());
        for req in reqs {
            if let Some(token) = req.token.as_deref() {
                let seen = self.read_view().token_seq(token);
                if seen.is_some() || tokens_in_batch.contains_key(token) {
                    results.push(Ok((
                        Committed {
                            seq: seen.unwrap_or_default(),
                            outcomes: Vec::new(),
                            replayed: true,
                        },
                        false,
                    )));
                    continue;
                }
            }
            let mut local: HashMap<Vec<u8>, Option<Arc<Item>>> = HashMap::new();
            let mut outcomes = Vec::with_capacity(req.ops.len());
            let mut staged = Vec::with_capacity(req.ops.len());
            let mut failure = None;
            for (index, op) in req.ops.iter().enumerate() {
                let key = encode_key(&op.key);
                let current = match local.get(&key).or_else(|| state.get(&key)) {
                    Some(c) => c.clone(),
                    None => {
                        let found = self.lookup(&key).await?;
                        if let Some(v) = &found {
                            newest_seen = newest_seen.max(v.ts_micros);
                        }
                        found.filter(|v| !v.deleted).map(|v| v.item)
                    }
                };
                match self.apply_op(op, current.as_deref(), index) {
                    Ok(new) => {
                        let new = new.map(Arc::new);
                        outcomes.push(WriteOutcome {
                            old: current.as_deref().cloned(),
                            new: new.as_deref().cloned(),
                        });
                        let image = new
                            .clone()
                            .unwrap_or_else(|| Arc::new(self.table.key_schema.key_item(&op.key)));
                        staged.push(Mutation {
                            key: key.clone(),
                            deleted: new.is_none(),
                            image,
                            old_image: if keep_old { current.clone() } else { None },
                            token: req.token.clone(),
                            replicated: None,
                        });
                        local.insert(key, new);
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            match failure {
                Some(e) => results.push(Err(e)),
                None => {
                    state.extend(local);
                    mutations.extend(staged);
                    if let Some(t) = req.token.as_deref() {
                        tokens_in_batch.insert(t, ());
                    }
                    results.push(Ok((
                        Committed {
                            seq: 0,
                            outcomes,
                            replayed: false,
                        },
                        true,
                    )));
                }
            }
        }
        Ok((mutations, results, newest_seen, images_gen))
    }

    /// One operation against the item's current state: the new state
    /// (None for a delete) or why it is refused.
    fn apply_op(
        &self,
        op: &crate::ops::WriteOp,
        current: Option<&Item>,
        index: usize,
    ) -> Result<Option<Item>> {
        if let Some(cond) = &op.condition {
            if !cond(current).map_err(Error::Validation)? {
                return Err(Error::ConditionFailed {
                    index,
                    item: current.cloned(),
                });
            }
        }
        let schema = &self.table.key_schema;
        let new = match &op.change {
            Change::Delete => return Ok(None),
            Change::Put(item) => item.clone(),
            Change::Update(f) => {
                let mut item = f(current).map_err(Error::Validation)?;
                // An update of an absent item creates it, with its key.
                for (k, v) in schema.key_item(&op.key) {
                    item.entry(k).or_insert(v);
                }
                item
            }
        };
        match schema.key_of(&new) {
            Ok(k) if k == op.key => {}
            Ok(_) => {
                let name = if matches!(op.change, Change::Put(_)) {
                    "The provided key element does not match the schema".to_string()
                } else {
                    format!(
                        "One or more parameter values were invalid: Cannot update attribute {}. This attribute is part of the key",
                        schema.hash.name
                    )
                };
                return Err(Error::Validation(name));
            }
            Err(e) => return Err(Error::Validation(e.to_string())),
        }
        if nesting_depth(&new) > MAX_NESTING {
            return Err(Error::Validation(
                "Nesting Levels have exceeded supported limits: Nesting levels of document attributes cannot exceed 32"
                    .into(),
            ));
        }
        if item_size(&new) > MAX_ITEM_SIZE {
            return Err(Error::Validation(
                "Item size has exceeded the maximum allowed size".into(),
            ));
        }
        Ok(Some(new))
    }

    // ----------------------------------------------------------- replication

    /// Applies versions replicated from another region, last writer wins:
    /// a version is written only if its stamp is newer than the stamp of
    /// what the partition holds for its key (tombstones included), so
    /// applying a batch twice changes nothing the second time. Returns how
    /// many were written.
    pub async fn apply_replicated(self: &Arc<Self>, changes: &[ReplicatedChange]) -> Result<usize> {
        let applied = {
            let _g = self.sync.lock().await;
            let mut applied = None;
            for _ in 0..MAX_COMMIT_ATTEMPTS {
                self.refresh_if_stale().await?;
                let images_gen = self.next_images_gen();
                let mutations = self
                    .evaluate_replicated(changes, images_gen % 2 == 1)
                    .await?;
                if mutations.is_empty() {
                    applied = Some(0);
                    break;
                }
                let n = mutations.len();
                // Applying a batch twice is a no-op (last writer wins), so an
                // unresolved attempt needs no bookkeeping: evaluate again.
                let seg = self.next_segment(rand::random(), 0, images_gen, mutations);
                if self.try_append(&seg).await? == Appended::Committed {
                    applied = Some(n);
                    break;
                }
            }
            applied
        };
        self.maybe_compact();
        applied.ok_or_else(|| Error::Contention {
            table: self.table.name.clone(),
            partition: self.part,
        })
    }

    async fn evaluate_replicated(
        &self,
        changes: &[ReplicatedChange],
        keep_old: bool,
    ) -> Result<Vec<Mutation>> {
        // Per key: the newest stamp so far, and the item before the batch
        // (the old image of whichever change of the batch survives).
        let mut seen: HashMap<&[u8], (Stamp, Option<Arc<Item>>)> = HashMap::new();
        let mut out: Vec<Mutation> = Vec::new();
        for c in changes {
            let (stamp, before) = match seen.get(c.key.as_slice()) {
                Some(s) => s.clone(),
                None => match self.lookup(&c.key).await? {
                    Some(v) => (v.stamp(), Some(v.item).filter(|_| !v.deleted)),
                    None => (Stamp::default(), None),
                },
            };
            if c.stamp <= stamp {
                seen.insert(c.key.as_slice(), (stamp, before));
                continue;
            }
            // An earlier change of this batch to the same key is superseded.
            out.retain(|m| m.key != c.key);
            out.push(Mutation {
                key: c.key.clone(),
                image: Arc::clone(&c.image),
                deleted: c.deleted,
                old_image: if keep_old { before.clone() } else { None },
                token: None,
                replicated: Some(c.stamp.clone()),
            });
            seen.insert(c.key.as_slice(), (c.stamp.clone(), before));
        }
        Ok(out)
    }

    /// Up to `limit` keys' newest versions, tombstones included, in key
    /// order after `after` (from the start with None), read from a view
    /// refreshed now: what a replica is backfilled from, chunk by chunk.
    pub async fn versions_after(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        self.ensure_fresh(true).await?;
        let (mem, manifest) = {
            let v = self.read_view();
            (first_after(&v.mem, after, limit), Arc::clone(&v.manifest))
        };
        self.merged_after(mem, &manifest, after, limit).await
    }

    /// Up to `limit` of the newest versions after `after`, merging `mem`
    /// (the log's versions, newer than any run) with `manifest`'s runs.
    async fn merged_after(
        &self,
        mem: Vec<(Vec<u8>, Version)>,
        manifest: &Manifest,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        let lo = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_vec()));
        let mut merge = self
            .merger(mem, manifest, lo, Bound::Unbounded, true)
            .await?;
        let mut out = Vec::with_capacity(limit.min(4096));
        while out.len() < limit {
            match merge.next().await? {
                Some(entry) => out.push(entry),
                None => break,
            }
        }
        Ok(out)
    }

    /// What the partition held at `t_micros`: the newest manifest whose
    /// runs hold nothing committed after T, and the log segments after it
    /// committed by T (commit times increase along the log, so that is a
    /// prefix). The prefix is final once a segment committed after T is
    /// seen; when the log has none yet, an empty segment is committed to
    /// seal it (any later commit is stamped after it), so a slow writer
    /// cannot add to a moment already read. Errors when the store no
    /// longer holds the moment.
    pub async fn plan_at(&self, t_micros: u64) -> Result<PointInTimePlan> {
        if t_micros > self.clock().now_micros() + 1_000_000 {
            return Err(Error::Validation(format!(
                "the moment {t_micros} µs is in the future"
            )));
        }
        let skew = self.ctx.config.clock_skew;
        let mut versions: Vec<u64> = io::list(self.store(), &self.paths.manifest_dir())
            .await?
            .iter()
            .filter_map(|m| paths::parse_seq(&m.location))
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        let lowest = versions.last().copied();
        let mut manifest = None;
        for v in versions {
            if let Some(m) = self.read_manifest(v).await? {
                if m.folded_at(skew) <= t_micros {
                    manifest = Some(m);
                    break;
                }
            }
        }
        let too_old = || {
            Error::Validation(format!(
                "table {} no longer holds the moment {t_micros} µs (outside its point-in-time window)",
                self.table.name
            ))
        };
        // The empty start is the truth only if no manifest was collected.
        let manifest = match (manifest, lowest) {
            (Some(m), _) => Arc::new(m),
            (None, None) | (None, Some(1)) => Arc::new(Manifest::default()),
            (None, Some(_)) => return Err(too_old()),
        };
        let mut mem: BTreeMap<Vec<u8>, Version> = BTreeMap::new();
        let mut through = manifest.compacted_through;
        let mut seq = manifest.compacted_through + 1;
        let mut sealed = false;
        loop {
            self.ensure_fresh(true).await?;
            let (tail, last_ts) = {
                let v = self.read_view();
                (v.tail, v.last_ts)
            };
            if seq > tail {
                // Everything up to the tail is in; it is final once the log
                // has a commit after T (a writer's next commit is stamped
                // after the newest it has seen).
                if sealed || last_ts > t_micros {
                    break;
                }
                self.seal(t_micros).await?;
                sealed = true;
                continue;
            }
            let seg = match self.recent_segment(seq) {
                Some(seg) => seg,
                None => Arc::new(self.read_segment(seq).await?.ok_or_else(too_old)?),
            };
            if seg.commit_ts_micros > t_micros {
                break;
            }
            for m in &seg.mutations {
                let stamp = seg.stamp_of(m);
                mem.insert(
                    m.key.clone(),
                    Version {
                        seq,
                        ts_micros: stamp.ts_micros,
                        origin: stamp.region,
                        deleted: m.deleted,
                        item: Arc::clone(&m.image),
                    },
                );
            }
            through = seq;
            seq += 1;
        }
        Ok(PointInTimePlan {
            manifest,
            mem: Arc::new(mem),
            through,
        })
    }

    /// Makes sure the log holds a segment committed after `t_micros`,
    /// committing an empty one if needed.
    async fn seal(&self, t_micros: u64) -> Result<()> {
        self.commit_empty(|v| v.last_ts > t_micros, t_micros + 1)
            .await
    }

    /// Makes sure the log holds a segment of the descriptor's old-image
    /// generation, committing an empty one if needed: where a stream enabled
    /// by this descriptor starts (every later segment inherits it), so it
    /// holds every write acknowledged after the descriptor was published.
    pub async fn mark_images_gen(&self) -> Result<()> {
        let gen = self.table.images_gen();
        self.commit_empty(|v| v.images_gen >= gen, 0).await
    }

    /// Commits an empty segment (committed no earlier than `min_commit_ts`)
    /// unless the refreshed view already satisfies `done`.
    async fn commit_empty(&self, done: impl Fn(&View) -> bool, min_commit_ts: u64) -> Result<()> {
        let _g = self.sync.lock().await;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            self.refresh_locked(self.clock().tick()).await?;
            if done(&self.read_view()) {
                return Ok(());
            }
            let mut seg = self.next_segment(rand::random(), 0, self.next_images_gen(), Vec::new());
            seg.commit_ts_micros = seg.commit_ts_micros.max(min_commit_ts);
            seg.lww_ts_micros = seg.commit_ts_micros;
            if self.try_append(&seg).await? == Appended::Committed {
                return Ok(());
            }
        }
        Err(Error::Contention {
            table: self.table.name.clone(),
            partition: self.part,
        })
    }

    /// Up to `limit` versions (tombstones included) of a point-in-time plan
    /// with keys after `after`, in key order.
    pub async fn chunk_of(
        &self,
        plan: &PointInTimePlan,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        let mem = first_after(&plan.mem, after, limit);
        self.merged_after(mem, &plan.manifest, after, limit).await
    }

    /// Adds a run of `entries` (sorted by key, one version each) as the
    /// partition's oldest data, by publishing the next manifest: how a
    /// restore fills a new table without a commit per item. Whatever the
    /// log or newer runs hold for a key still wins.
    pub async fn ingest(&self, entries: &[(Vec<u8>, Version)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let config = &self.ctx.config;
        let (info, bytes) = build_run(paths::random_id(), entries, config.block_size);
        let run_path = self.paths.run(&info.id);
        let run_sent = self.clock().tick();
        self.put_run(&run_path, bytes).await?;
        // Set once a publish may still land: the run must then never be
        // deleted here (GC deletes it if no manifest ends up naming it).
        let mut maybe_named = false;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let current = {
                let _g = self.sync.lock().await;
                self.write_view().manifest_checked = None;
                self.refresh_locked(self.clock().tick()).await?;
                Arc::clone(&self.read_view().manifest)
            };
            if current.runs.iter().any(|r| r.id == info.id) {
                return Ok(()); // an earlier create whose answer was lost landed
            }
            self.run_still_young(run_sent, &run_path, maybe_named)
                .await?;
            let mut runs = current.runs.clone();
            runs.push(info.clone());
            let next = Manifest {
                version: current.version + 1,
                compacted_through: current.compacted_through,
                runs,
                created_at_ms: self.clock().now_ms(),
                folded_ts_micros: current.folded_ts_micros,
                tokens: current.tokens.clone(),
                images_gen: current.images_gen,
            };
            match self.publish_manifest(&next).await? {
                Published::Ours => {
                    self.write_view().install(Arc::new(next));
                    return Ok(());
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

    /// The newest committed sequence number, after a strong refresh.
    pub async fn tail(&self) -> Result<u64> {
        self.ensure_fresh(true).await?;
        Ok(self.read_view().tail)
    }

    /// The log as it is now: the first retained segment and the tail (the
    /// newest committed sequence number). GC deletes a prefix of the log, so
    /// the retained segments are `first..=tail`; `first == tail + 1` when
    /// none is. Found by binary search with HEAD requests (LIST order is not
    /// name order on every store), from a remembered lower bound.
    pub async fn log_bounds(&self) -> Result<(u64, u64)> {
        self.ensure_fresh(true).await?;
        let tail = self.read_view().tail;
        let (mut lo, mut hi) = (self.first_retained.load(Ordering::Relaxed).max(1), tail + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if io::exists(self.store(), &self.paths.log(mid)).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.first_retained.fetch_max(lo, Ordering::Relaxed);
        Ok((lo, tail))
    }

    /// Up to `max` committed segments from `from` on, in order (one GET
    /// each, after one probe for the tail), with the tail as of the read.
    /// `trimmed` when `from` is at or before the tail but no longer retained.
    pub async fn read_log(&self, from: u64, max: usize) -> Result<LogRead> {
        self.ensure_fresh(true).await?;
        let (tail, folded) = {
            let v = self.read_view();
            (v.tail, v.manifest.compacted_through)
        };
        let from = from.max(1);
        let mut segments = Vec::new();
        // Only folded segments are ever deleted. Remembered ones may outlive
        // their objects: look at the store, so the trim horizon is the same
        // for every instance.
        if from <= folded.min(tail) && !io::exists(self.store(), &self.paths.log(from)).await? {
            return Ok(LogRead {
                segments,
                tail,
                trimmed: true,
            });
        }
        let mut trimmed = false;
        for seq in from..=tail.min(from.saturating_add(max as u64).saturating_sub(1)) {
            if let Some(seg) = self.recent_segment(seq) {
                segments.push(seg);
                continue;
            }
            match self.read_segment(seq).await? {
                Some(seg) => segments.push(Arc::new(seg)),
                None => {
                    trimmed = segments.is_empty();
                    break;
                }
            }
        }
        Ok(LogRead {
            segments,
            tail,
            trimmed,
        })
    }

    // ------------------------------------------------------------ compaction

    fn over_threshold(&self) -> bool {
        let v = self.read_view();
        let c = &self.ctx.config;
        v.tail.saturating_sub(v.manifest.compacted_through) >= c.compact_after_segments
            || v.mem_bytes >= c.compact_after_bytes
    }

    fn maybe_compact(self: &Arc<Self>) {
        let config = &self.ctx.config;
        if !config.auto_compact || !self.over_threshold() {
            return;
        }
        if let Some(hook) = &config.compaction_hook {
            let mut last = self.hooked.lock().unwrap_or_else(|p| p.into_inner());
            let clock = self.clock();
            if last.is_none_or(|t| clock.since(t) >= config.compaction_hook_interval) {
                *last = Some(clock.tick());
                (hook.0)(&self.table.name, self.part);
            }
            return;
        }
        if !self.compacting.load(Ordering::SeqCst) {
            let me = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = me.compact().await {
                    tracing::warn!(table = %me.table.name, partition = me.part, error = %e, "background compaction failed");
                }
            });
        }
    }

    /// Folds the log tail into a new run and publishes the next manifest.
    /// Safe to run in any number of processes at once.
    pub async fn compact(&self) -> Result<CompactionOutcome> {
        if self.compacting.swap(true, Ordering::SeqCst) {
            return Ok(CompactionOutcome::Busy);
        }
        let out = self.compact_inner().await;
        self.compacting.store(false, Ordering::SeqCst);
        out
    }

    async fn compact_inner(&self) -> Result<CompactionOutcome> {
        let (manifest, tail, mem, tail_tokens, folded_ts, images_gen) = {
            let _g = self.sync.lock().await;
            self.write_view().manifest_checked = None; // always look for a newer manifest
            self.refresh_locked(self.clock().tick()).await?;
            let v = self.read_view();
            let mem: Vec<(Vec<u8>, Version)> =
                v.mem.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let tokens: Vec<FoldedToken> = v
                .tokens
                .iter()
                .map(|(t, (seq, ts))| FoldedToken {
                    token: t.clone(),
                    seq: *seq,
                    ts_micros: *ts,
                })
                .collect();
            let folded = v.last_ts.max(v.manifest.folded_ts_micros);
            (
                Arc::clone(&v.manifest),
                v.tail,
                mem,
                tokens,
                folded,
                v.images_gen,
            )
        };
        if tail <= manifest.compacted_through {
            return Ok(CompactionOutcome::NothingToDo);
        }
        let config = &self.ctx.config;
        let merge_all = manifest.runs.len() + 1 > config.max_runs;
        let entries = if merge_all {
            let mut merge = self
                .merger(mem, &manifest, Bound::Unbounded, Bound::Unbounded, true)
                .await?;
            let horizon = self
                .clock()
                .now_micros()
                .saturating_sub(config.tombstone_retention.as_micros() as u64);
            let mut all = Vec::new();
            while let Some((k, v)) = merge.next().await? {
                if !(v.deleted && v.ts_micros < horizon) {
                    all.push((k, v));
                }
            }
            all
        } else {
            mem
        };
        let (info, bytes) = build_run(paths::random_id(), &entries, config.block_size);
        let run_path = self.paths.run(&info.id);
        let run_sent = self.clock().tick();
        self.put_run(&run_path, bytes).await?;
        let token_horizon = self
            .clock()
            .now_micros()
            .saturating_sub(config.token_window.as_micros() as u64);
        let mut runs: Vec<RunInfo> = vec![info];
        if !merge_all {
            runs.extend(manifest.runs.iter().cloned());
        }
        let next = Manifest {
            version: manifest.version + 1,
            compacted_through: tail,
            runs,
            created_at_ms: self.clock().now_ms(),
            folded_ts_micros: folded_ts,
            images_gen,
            tokens: manifest
                .tokens
                .iter()
                .cloned()
                .chain(tail_tokens.into_iter().filter(|t| t.seq <= tail))
                .filter(|t| t.ts_micros >= token_horizon)
                .collect(),
        };
        self.run_still_young(run_sent, &run_path, false).await?;
        match self.publish_manifest(&next).await? {
            Published::Ours => {
                let summary = CompactionOutcome::Compacted {
                    version: next.version,
                    compacted_through: tail,
                    runs: next.runs.len(),
                };
                self.write_view().install(Arc::new(next));
                Ok(summary)
            }
            Published::Theirs => {
                // Nothing names our run: it can go now.
                let _ = io::delete(self.store(), &run_path).await;
                Ok(CompactionOutcome::LostRace)
            }
            // Our manifest may still land naming the run: leave the run to
            // GC, which deletes it only if no manifest names it.
            Published::Unknown => Ok(CompactionOutcome::LostRace),
        }
    }

    /// A run may be named by a new manifest only while GC cannot have taken
    /// it for garbage: GC deletes unreferenced runs older than the grace
    /// period, so a compaction (or ingest) whose run was sent more than
    /// half of it ago (a paused process) gives up and deletes the run,
    /// which nothing names (unless `maybe_named`: an earlier publish may
    /// still land, and GC decides).
    async fn run_still_young(
        &self,
        run_sent: Tick,
        run_path: &Path,
        maybe_named: bool,
    ) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        if max_age.is_zero() || self.clock().since(run_sent) < max_age {
            return Ok(());
        }
        if !maybe_named {
            let _ = io::delete(self.store(), run_path).await;
        }
        Err(Error::store_msg(
            run_path,
            "compaction took longer than half the GC grace period between writing \
             its run and publishing it; abandoned (the next one starts afresh)",
        ))
    }

    /// Writes a run (a fresh random name: a refused create can only be our
    /// own earlier attempt). After S3's 409 the run is looked for until it
    /// shows; a run that never shows is an error, and no manifest names it.
    async fn put_run(&self, run_path: &Path, bytes: Vec<u8>) -> Result<()> {
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
                "a run's create was refused while in flight and never showed",
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

    /// Deletes what no reader can need any more: log segments folded into a
    /// manifest older than the grace period (and past log retention),
    /// manifests superseded longer ago than that, and runs no such manifest
    /// references.
    pub async fn gc(&self) -> Result<GcReport> {
        let c = &self.ctx.config;
        let now = self.clock().now_ms();
        // With point-in-time recovery on, the manifest in force at the start
        // of the window, and everything after it, must stay.
        let grace = c
            .gc_grace
            .max(Duration::from_secs(self.table.pitr_window_secs));
        let horizon = now.saturating_sub((grace + c.clock_skew).as_millis() as u64);
        // A manifest's age: the later of its writer's clock and the store's
        // (a compactor whose clock lags must not shorten the grace period).
        let mut manifests: Vec<(Manifest, u64)> = Vec::new();
        for meta in io::list(self.store(), &self.paths.manifest_dir()).await? {
            if let Some(v) = paths::parse_seq(&meta.location) {
                if let Some(m) = self.read_manifest(v).await? {
                    let stored_ms = meta.last_modified.timestamp_millis().max(0) as u64;
                    if stored_ms.abs_diff(m.created_at_ms) > c.clock_skew.as_millis() as u64 {
                        tracing::warn!(path = %meta.location, written_ms = m.created_at_ms, stored_ms,
                            "manifest written by an instance whose clock is off by more than the allowed skew");
                    }
                    let created = m.created_at_ms.max(stored_ms);
                    manifests.push((m, created));
                }
            }
        }
        manifests.sort_by_key(|(m, _)| m.version);
        let mut report = GcReport::default();
        // By what the runs hold, as point-in-time reads choose manifests.
        let Some((stable, _)) = manifests
            .iter()
            .rev()
            .find(|(m, created)| *created < horizon && m.folded_at(c.clock_skew) < horizon * 1000)
        else {
            return Ok(report);
        };
        // Log segments.
        let retention = now.saturating_sub(c.log_retention.as_millis() as u64);
        for meta in io::list(self.store(), &self.paths.log_dir()).await? {
            let old = (meta.last_modified.timestamp_millis().max(0) as u64) < retention;
            if paths::parse_seq(&meta.location).is_some_and(|s| s <= stable.compacted_through)
                && old
            {
                io::delete(self.store(), &meta.location).await?;
                report.segments += 1;
            }
        }
        // Manifests superseded before the horizon, and the runs only they use.
        let mut live_runs = std::collections::HashSet::new();
        for (i, (m, _)) in manifests.iter().enumerate() {
            let superseded_at = manifests.get(i + 1).map(|(_, created)| *created);
            if superseded_at.is_some_and(|t| t < horizon) {
                io::delete(self.store(), &self.paths.manifest(m.version)).await?;
                report.manifests += 1;
            } else {
                live_runs.extend(m.runs.iter().map(|r| r.id.clone()));
            }
        }
        for meta in io::list(self.store(), &self.paths.runs_dir()).await? {
            let Some(id) = paths::parse_run_id(&meta.location) else {
                continue;
            };
            let old = (meta.last_modified.timestamp_millis().max(0) as u64) < horizon;
            if !live_runs.contains(&id) && old {
                io::delete(self.store(), &meta.location).await?;
                report.runs += 1;
            }
        }
        Ok(report)
    }

    /// Log tail length and manifest version, for tests and metrics.
    pub fn stats(&self) -> (u64, u64, u64) {
        let v = self.read_view();
        (v.tail, v.manifest.compacted_through, v.manifest.version)
    }
}

/// Each request's result, the fresh ones committed at `seq`.
fn finish(results: Evaluated, seq: u64) -> Vec<Result<Committed>> {
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

fn key_attributes(table: &TableDescriptor, item: &Item) -> Item {
    let s = &table.key_schema;
    std::iter::once(&s.hash)
        .chain(s.range.as_ref())
        .filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
        .collect()
}

/// Reads one run in key order (or reverse) within bounds, a block at a time.
struct RunCursor {
    path: Path,
    meta: Arc<RunMeta>,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    forward: bool,
    block_idx: Option<usize>,
    block: Option<Arc<Block>>,
    pos: usize,
}

/// True when no key can lie between the bounds (a range a BTreeMap would
/// refuse with a panic).
fn is_empty_range(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

pub(crate) fn above_lo(key: &[u8], lo: &Bound<Vec<u8>>) -> bool {
    match lo {
        Bound::Unbounded => true,
        Bound::Included(b) => key >= b.as_slice(),
        Bound::Excluded(b) => key > b.as_slice(),
    }
}

pub(crate) fn below_hi(key: &[u8], hi: &Bound<Vec<u8>>) -> bool {
    match hi {
        Bound::Unbounded => true,
        Bound::Included(b) => key <= b.as_slice(),
        Bound::Excluded(b) => key < b.as_slice(),
    }
}

impl RunCursor {
    fn new(
        path: Path,
        meta: Arc<RunMeta>,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        forward: bool,
    ) -> Self {
        let n = meta.blocks.len();
        let block_idx = if forward {
            let i = match &lo {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_after(k),
            };
            (i < n).then_some(i)
        } else {
            match &hi {
                Bound::Unbounded => n.checked_sub(1),
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_before(k),
            }
        };
        Self {
            path,
            meta,
            lo,
            hi,
            forward,
            block_idx,
            block: None,
            pos: 0,
        }
    }

    async fn peek(&mut self, part: &Partition) -> Result<Option<(Vec<u8>, Version)>> {
        loop {
            let Some(idx) = self.block_idx else {
                return Ok(None);
            };
            if self.block.is_none() {
                let handle = &self.meta.blocks[idx];
                let block = part
                    .ctx
                    .cache
                    .block(part.store(), &self.path, handle)
                    .await?;
                self.pos = if self.forward {
                    block.partition_point(|(k, _)| !above_lo(k, &self.lo))
                } else {
                    block.partition_point(|(k, _)| below_hi(k, &self.hi))
                };
                self.block = Some(block);
            }
            let block = self.block.as_ref().map(Arc::clone).unwrap_or_default();
            let entry = if self.forward {
                block.get(self.pos)
            } else {
                self.pos.checked_sub(1).and_then(|p| block.get(p))
            };
            match entry {
                Some((k, v)) => {
                    let inside = if self.forward {
                        below_hi(k, &self.hi)
                    } else {
                        above_lo(k, &self.lo)
                    };
                    if !inside {
                        self.block_idx = None;
                        return Ok(None);
                    }
                    return Ok(Some((k.clone(), v.clone())));
                }
                None => {
                    self.block = None;
                    self.block_idx = if self.forward {
                        Some(idx + 1).filter(|i| *i < self.meta.blocks.len())
                    } else {
                        idx.checked_sub(1)
                    };
                }
            }
        }
    }

    fn advance(&mut self) {
        if self.forward {
            self.pos += 1;
        } else {
            self.pos = self.pos.saturating_sub(1);
        }
    }
}

/// Merges the in-memory tail with the runs, newest source first on equal
/// keys, yielding each key's newest version once (tombstones included).
struct Merger<'a> {
    part: &'a Partition,
    mem: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Version)>>,
    runs: Vec<RunCursor>,
    forward: bool,
}

impl Merger<'_> {
    async fn next(&mut self) -> Result<Option<(Vec<u8>, Version)>> {
        let mut best: Option<(Vec<u8>, Version)> = self.mem.peek().cloned();
        let mut heads = Vec::with_capacity(self.runs.len());
        for run in self.runs.iter_mut() {
            heads.push(run.peek(self.part).await?);
        }
        // Runs are newest first, so on equal keys the earlier source wins.
        for head in heads.iter().flatten() {
            let better = match &best {
                None => true,
                Some((k, _)) => {
                    if self.forward {
                        head.0 < *k
                    } else {
                        head.0 > *k
                    }
                }
            };
            if better {
                best = Some(head.clone());
            }
        }
        let Some((key, version)) = best else {
            return Ok(None);
        };
        if self.mem.peek().is_some_and(|(k, _)| *k == key) {
            self.mem.next();
        }
        for (run, head) in self.runs.iter_mut().zip(&heads) {
            if head.as_ref().is_some_and(|(k, _)| *k == key) {
                run.advance();
            }
        }
        Ok(Some((key, version)))
    }
}

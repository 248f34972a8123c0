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
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::sync::oneshot;

use crate::cache::{Caches, PageKey};
use crate::catalog::TableDescriptor;
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

pub(crate) use crate::clock::{now_micros, now_ms};

#[derive(Default)]
struct View {
    loaded: bool,
    manifest: Arc<Manifest>,
    manifest_checked: Option<Instant>,
    tail: u64,
    tail_checked: Option<Instant>,
    last_ts: u64,
    /// Newest version of each key written after `manifest.compacted_through`.
    mem: BTreeMap<Vec<u8>, Version>,
    mem_bytes: usize,
    /// Client tokens in `mem`'s segments: token -> (seq, ts).
    tokens: HashMap<String, (u64, u64)>,
}

impl View {
    fn fresh(t: Option<Instant>, max_age: Duration) -> bool {
        t.is_some_and(|t| t.elapsed() < max_age)
    }

    fn apply(&mut self, seg: &LogSegment) {
        if seg.seq <= self.tail {
            return;
        }
        let origin: Arc<str> = Arc::from(seg.origin_region.as_str());
        for m in &seg.mutations {
            self.mem_bytes += entry_bytes(&m.key, &m.image);
            let (ts_micros, origin) = match &m.replicated {
                Some(s) => (s.ts_micros, Arc::clone(&s.region)),
                None => (seg.commit_ts_micros, Arc::clone(&origin)),
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
    }

    /// Adopts a newer manifest: what it folded leaves `mem`.
    fn install(&mut self, m: Arc<Manifest>) {
        if m.version <= self.manifest.version && self.loaded {
            return;
        }
        let ct = m.compacted_through;
        self.mem.retain(|_, v| v.seq > ct);
        self.tokens.retain(|_, (seq, _)| *seq > ct);
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
    hooked: std::sync::Mutex<Option<Instant>>,
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

    fn read_view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_view(&self) -> std::sync::RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    // ---------------------------------------------------------------- refresh

    /// Brings the view up to date as of a moment after `since`. Call with
    /// `sync` held.
    async fn refresh_locked(&self, since: Instant) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        let (loaded, f, r) = {
            let v = self.read_view();
            (v.loaded, v.manifest_checked, v.tail_checked)
        };
        if !loaded || !View::fresh(f, max_age) {
            self.refresh_manifest(loaded && View::fresh(f, self.ctx.config.gc_grace))
                .await?;
        }
        let tail_current = r.is_some_and(|r| r >= since) && View::fresh(r, max_age);
        if !tail_current || !loaded {
            self.refresh_tail(!loaded).await?;
        }
        self.write_view().loaded = true;
        Ok(())
    }

    /// Finds the newest manifest: by probing `manifest/<v+1>`… when the last
    /// check is recent enough for that to be reliable, else by LIST.
    async fn refresh_manifest(&self, probe_ok: bool) -> Result<()> {
        let sent = Instant::now();
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

    async fn read_segment(&self, seq: u64) -> Result<Option<LogSegment>> {
        let path = self.paths.log(seq);
        match io::get_opt(self.store(), &path).await? {
            Some(b) => {
                let seg = LogSegment::decode(&b).map_err(|e| Error::corrupt(&path, e))?;
                if seg.seq != seq {
                    return Err(Error::corrupt(&path, format!("holds seq {}", seg.seq)));
                }
                Ok(Some(seg))
            }
            None => Ok(None),
        }
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
            let sent = Instant::now();
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
        let arrival = Instant::now();
        {
            let v = self.read_view();
            let max_age = self.ctx.config.max_view_age();
            let usable = v.loaded && View::fresh(v.manifest_checked, max_age);
            if usable && !strong && View::fresh(v.tail_checked, self.ctx.config.eventual_staleness)
            {
                return Ok(());
            }
        }
        let _g = self.sync.lock().await;
        // While we waited, a refresh or commit may have done our work.
        let bound = if strong {
            arrival
        } else {
            arrival
                .checked_sub(self.ctx.config.eventual_staleness)
                .unwrap_or(arrival)
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
    async fn commit_requests(&self, reqs: &[WriteRequest]) -> Result<Vec<Result<Committed>>> {
        let commit_id: u128 = rand::random();
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            self.refresh_if_stale().await?;
            let (mutations, mut results, newest_seen) = self.evaluate(reqs).await?;
            if mutations.is_empty() {
                return Ok(results.into_iter().map(|r| r.map(|(c, _)| c)).collect());
            }
            // Newer than every version it replaces, even one replicated from a
            // region whose clock runs ahead: last-writer-wins then agrees with
            // the order this region applied them in.
            let seg = self.next_segment(commit_id, newest_seen + 1, mutations);
            let seq = seg.seq;
            if self.try_append(&seg).await? {
                for (c, fresh) in results.iter_mut().flatten() {
                    if *fresh {
                        c.seq = seq;
                    }
                }
                return Ok(results.into_iter().map(|r| r.map(|(c, _)| c)).collect());
            }
        }
        Err(Error::Contention {
            table: self.table.name.clone(),
            partition: self.part,
        })
    }

    /// The segment that would follow the view's tail, stamped after every
    /// commit the view has seen and no earlier than `min_ts` (the hybrid
    /// clock every commit path shares).
    fn next_segment(&self, commit_id: u128, min_ts: u64, mutations: Vec<Mutation>) -> LogSegment {
        let v = self.read_view();
        LogSegment {
            seq: v.tail + 1,
            commit_id,
            commit_ts_micros: now_micros().max(v.last_ts + 1).max(min_ts),
            origin_region: self.ctx.config.region.clone(),
            mutations,
        }
    }

    async fn refresh_if_stale(&self) -> Result<()> {
        let max_age = self.ctx.config.max_view_age();
        let stale = {
            let v = self.read_view();
            !v.loaded
                || !View::fresh(v.tail_checked, max_age)
                || !View::fresh(v.manifest_checked, max_age)
        };
        if stale {
            self.refresh_locked(Instant::now()).await?;
        }
        Ok(())
    }

    /// Creates `log/<seg.seq>`. True when the segment is now committed (by
    /// us, possibly on an earlier attempt whose response was lost); false
    /// when another writer won that seq (the view has applied it).
    async fn try_append(&self, seg: &LogSegment) -> Result<bool> {
        let path = self.paths.log(seg.seq);
        let bytes = seg.encode();
        // If the segment turns out to be ours, it may have been created by
        // any attempt: only the first attempt's send time bounds the tail.
        let first_sent = Instant::now();
        let mut ambiguous = 0;
        loop {
            let sent = Instant::now();
            let checked = self.read_view().tail_checked;
            match io::create(self.store(), &path, bytes.clone()).await {
                Ok(Created::Created) => {
                    self.confirm_visible(seg.seq, checked).await?;
                    {
                        let mut v = self.write_view();
                        v.apply(seg);
                        v.tail_checked = Some(sent);
                    }
                    self.remember(seg.clone());
                    return Ok(true);
                }
                Ok(Created::Exists) => return self.adopt(seg, first_sent).await,
                Err(e) => {
                    // The create may or may not have happened: look.
                    ambiguous += 1;
                    tracing::debug!(path = %path, error = %e, "ambiguous create; checking");
                    match self.read_segment(seg.seq).await {
                        Ok(Some(found)) => return self.adopt_found(seg, found, first_sent),
                        Ok(None) if ambiguous < 5 => continue,
                        _ => {
                            self.write_view().tail_checked = None;
                            return Err(Error::OutcomeUnknown {
                                table: self.table.name.clone(),
                            });
                        }
                    }
                }
            }
        }
    }

    async fn adopt(&self, ours: &LogSegment, first_sent: Instant) -> Result<bool> {
        match self.read_segment(ours.seq).await? {
            Some(found) => self.adopt_found(ours, found, first_sent),
            None => {
                // Created and already garbage-collected: our view was older
                // than we knew. Start again from a full refresh.
                self.write_view().manifest_checked = None;
                self.refresh_locked(Instant::now()).await?;
                Ok(false)
            }
        }
    }

    fn adopt_found(
        &self,
        ours: &LogSegment,
        found: LogSegment,
        first_sent: Instant,
    ) -> Result<bool> {
        let mine = found.commit_id == ours.commit_id;
        {
            let mut v = self.write_view();
            v.apply(&found);
            if mine {
                v.tail_checked = Some(first_sent);
            }
        }
        self.remember(found);
        Ok(mine)
    }

    /// A create that succeeded is visible unless GC had deleted an older
    /// object of that name, which needs the view to have been older than
    /// `gc_grace` when the create landed. The view was checked younger than
    /// `gc_grace / 2` before sending; only a create that took longer than the
    /// rest of the grace period needs a look at the manifest.
    async fn confirm_visible(&self, seq: u64, checked: Option<Instant>) -> Result<()> {
        let limit = self
            .ctx
            .config
            .gc_grace
            .saturating_sub(self.ctx.config.clock_skew);
        if checked.is_some_and(|c| c.elapsed() < limit) {
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
    ) -> Result<(Vec<Mutation>, Vec<Result<(Committed, bool)>>, u64)> {
        let keep_old = self.table.keep_old_images;
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
        Ok((mutations, results, newest_seen))
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
        let commit_id: u128 = rand::random();
        let applied = {
            let _g = self.sync.lock().await;
            let mut applied = None;
            for _ in 0..MAX_COMMIT_ATTEMPTS {
                self.refresh_if_stale().await?;
                let mutations = self.evaluate_replicated(changes).await?;
                if mutations.is_empty() {
                    applied = Some(0);
                    break;
                }
                let n = mutations.len();
                let seg = self.next_segment(commit_id, 0, mutations);
                if self.try_append(&seg).await? {
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

    async fn evaluate_replicated(&self, changes: &[ReplicatedChange]) -> Result<Vec<Mutation>> {
        let keep_old = self.table.keep_old_images;
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
        if t_micros > now_micros() + 1_000_000 {
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
        let commit_id: u128 = rand::random();
        let _g = self.sync.lock().await;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            self.refresh_locked(Instant::now()).await?;
            if self.read_view().last_ts > t_micros {
                return Ok(());
            }
            let seg = self.next_segment(commit_id, t_micros + 1, Vec::new());
            if self.try_append(&seg).await? {
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
        io::create(self.store(), &run_path, bytes)
            .await
            .map_err(|e| Error::store(&run_path, e))?;
        for _ in 0..MAX_COMMIT_ATTEMPTS {
            let current = {
                let _g = self.sync.lock().await;
                self.write_view().manifest_checked = None;
                self.refresh_locked(Instant::now()).await?;
                Arc::clone(&self.read_view().manifest)
            };
            let mut runs = current.runs.clone();
            runs.push(info.clone());
            let next = Manifest {
                version: current.version + 1,
                compacted_through: current.compacted_through,
                runs,
                created_at_ms: now_ms(),
                folded_ts_micros: current.folded_ts_micros,
                tokens: current.tokens.clone(),
            };
            let path = self.paths.manifest(next.version);
            match io::create(self.store(), &path, next.encode()).await {
                Ok(Created::Created) => {
                    self.write_view().install(Arc::new(next));
                    return Ok(());
                }
                Ok(Created::Exists) => {
                    if self.read_manifest(next.version).await?.as_ref() == Some(&next) {
                        self.write_view().install(Arc::new(next));
                        return Ok(());
                    }
                }
                Err(e) => return Err(Error::store(&path, e)),
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
            if last.is_none_or(|t| t.elapsed() >= config.compaction_hook_interval) {
                *last = Some(Instant::now());
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
        let (manifest, tail, mem, tail_tokens, folded_ts) = {
            let _g = self.sync.lock().await;
            self.write_view().manifest_checked = None; // always look for a newer manifest
            self.refresh_locked(Instant::now()).await?;
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
            (Arc::clone(&v.manifest), v.tail, mem, tokens, folded)
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
            let horizon =
                now_micros().saturating_sub(config.tombstone_retention.as_micros() as u64);
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
        io::create(self.store(), &run_path, bytes)
            .await
            .map_err(|e| Error::store(&run_path, e))?;
        let token_horizon = now_micros().saturating_sub(config.token_window.as_micros() as u64);
        let mut runs: Vec<RunInfo> = vec![info];
        if !merge_all {
            runs.extend(manifest.runs.iter().cloned());
        }
        let next = Manifest {
            version: manifest.version + 1,
            compacted_through: tail,
            runs,
            created_at_ms: now_ms(),
            folded_ts_micros: folded_ts,
            tokens: manifest
                .tokens
                .iter()
                .cloned()
                .chain(tail_tokens.into_iter().filter(|t| t.seq <= tail))
                .filter(|t| t.ts_micros >= token_horizon)
                .collect(),
        };
        let path = self.paths.manifest(next.version);
        match io::create(self.store(), &path, next.encode()).await {
            Ok(Created::Created) => {
                let summary = CompactionOutcome::Compacted {
                    version: next.version,
                    compacted_through: tail,
                    runs: next.runs.len(),
                };
                self.write_view().install(Arc::new(next));
                Ok(summary)
            }
            Ok(Created::Exists) => {
                // "Exists" can also be our own create, retried by the store
                // client after a failure that hid its success: look before
                // deleting a run that a published manifest may need.
                let published = self.read_manifest(next.version).await?;
                if published.as_ref() == Some(&next) {
                    let summary = CompactionOutcome::Compacted {
                        version: next.version,
                        compacted_through: tail,
                        runs: next.runs.len(),
                    };
                    self.write_view().install(Arc::new(next));
                    return Ok(summary);
                }
                let _ = io::delete(self.store(), &run_path).await;
                Ok(CompactionOutcome::LostRace)
            }
            Err(e) => Err(Error::store(&path, e)),
        }
    }

    /// Deletes what no reader can need any more: log segments folded into a
    /// manifest older than the grace period (and past log retention),
    /// manifests superseded longer ago than that, and runs no such manifest
    /// references.
    pub async fn gc(&self) -> Result<GcReport> {
        let c = &self.ctx.config;
        let now = now_ms();
        // With point-in-time recovery on, the manifest in force at the start
        // of the window, and everything after it, must stay.
        let grace = c
            .gc_grace
            .max(Duration::from_secs(self.table.pitr_window_secs));
        let horizon = now.saturating_sub((grace + c.clock_skew).as_millis() as u64);
        let mut manifests = Vec::new();
        for meta in io::list(self.store(), &self.paths.manifest_dir()).await? {
            if let Some(v) = paths::parse_seq(&meta.location) {
                if let Some(m) = self.read_manifest(v).await? {
                    manifests.push(m);
                }
            }
        }
        manifests.sort_by_key(|m| m.version);
        let mut report = GcReport::default();
        // By what the runs hold, as point-in-time reads choose manifests.
        let Some(stable) = manifests
            .iter()
            .rev()
            .find(|m| m.created_at_ms < horizon && m.folded_at(c.clock_skew) < horizon * 1000)
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
        for (i, m) in manifests.iter().enumerate() {
            let superseded_at = manifests.get(i + 1).map(|n| n.created_at_ms);
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

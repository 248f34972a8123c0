//! The per-instance caches: what makes a warm instance (a warm Lambda, or the
//! local server) answer reads without touching the object store.
//!
//! Every entry is correct by construction, so no invalidation protocol is
//! needed between instances:
//!
//! - **blocks**: run meta blocks (index + bloom) and decoded data blocks.
//!   Runs are immutable and never reuse a name.
//! - **items**: the result of looking a key up in the runs of one manifest
//!   version (`(partition, manifest version, key)`). That set of runs never
//!   changes, so neither does the result. Writes newer than the manifest
//!   live in the partition's log tail, which every read consults first.
//! - **pages**: Query and Scan pages, stamped with the partition's
//!   `(manifest version, log tail)` when they were read. A page is served
//!   only while both are unchanged, i.e. while nothing has been written to
//!   the partition, and only through a view that is fresh enough for the
//!   read's consistency.
//!
//! All three are bounded by bytes (moka, weighed by an estimate of memory).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::notification::RemovalCause;
use moka::sync::Cache;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Error, Result};
use crate::io;
use crate::ops::Page;
use crate::run::{decode_block, decode_meta, Block, BlockHandle, RunInfo, RunMeta, Version};
use crate::value::item_footprint;

#[derive(Clone)]
enum Cached {
    Meta(Arc<RunMeta>),
    Block(Arc<Block>),
}

/// Counters of one cache.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

impl Counters {
    fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }
}

/// A point-in-time view of one cache, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub name: &'static str,
    pub hits: u64,
    pub misses: u64,
    /// Entries removed to stay within the byte bound.
    pub evictions: u64,
    /// Estimated bytes held now.
    pub bytes: u64,
    pub capacity: u64,
}

impl CacheStats {
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// Key of an item-cache entry: partition, manifest version, encoded key.
type ItemKey = (Arc<str>, u64, Vec<u8>);

/// Key of a page-cache entry: partition and the read's parameters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PageKey {
    pub partition: Arc<str>,
    pub lo: std::ops::Bound<Vec<u8>>,
    pub hi: std::ops::Bound<Vec<u8>>,
    pub forward: bool,
    pub limit: usize,
    pub max_bytes: usize,
}

/// What a page was read at: (manifest version, log tail).
pub(crate) type Stamp = (u64, u64);

/// What the cache itself holds for an entry besides its key and value
/// (moka's bucket, entry and queue nodes: about 160 bytes in a heap
/// profile of a million cached items).
const ENTRY_OVERHEAD: usize = 160;

fn weight(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn counted_listener<K, V>(
    evictions: Arc<AtomicU64>,
) -> impl Fn(Arc<K>, V, RemovalCause) + Send + Sync + 'static {
    move |_k, _v, cause| {
        if cause.was_evicted() {
            evictions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub struct Caches {
    blocks: Cache<(String, u64), (Cached, u32)>,
    items: Cache<ItemKey, Option<Version>>,
    pages: Cache<PageKey, (Stamp, Page)>,
    block_counters: Counters,
    item_counters: Counters,
    page_counters: Counters,
    capacity: [u64; 3],
}

impl Caches {
    /// Caches holding about `max_bytes` in all: half for blocks, a quarter
    /// each for items and pages.
    pub fn new(max_bytes: u64) -> Self {
        let capacity = [max_bytes / 2, max_bytes / 4, max_bytes / 4];
        let (bc, ic, pc) = (
            Counters::default(),
            Counters::default(),
            Counters::default(),
        );
        Self {
            blocks: Cache::builder()
                .max_capacity(capacity[0])
                .weigher(|_k: &(String, u64), v: &(Cached, u32)| v.1)
                .eviction_listener(counted_listener(Arc::clone(&bc.evictions)))
                .build(),
            items: Cache::builder()
                .max_capacity(capacity[1])
                .weigher(|k: &ItemKey, v: &Option<Version>| {
                    let item = v.as_ref().map_or(0, |v| item_footprint(&v.item));
                    weight(k.2.len() + ENTRY_OVERHEAD + item)
                })
                .eviction_listener(counted_listener(Arc::clone(&ic.evictions)))
                .build(),
            pages: Cache::builder()
                .max_capacity(capacity[2])
                .weigher(|k: &PageKey, v: &((u64, u64), Page)| {
                    let bound = |b: &std::ops::Bound<Vec<u8>>| match b {
                        std::ops::Bound::Included(x) | std::ops::Bound::Excluded(x) => x.len(),
                        std::ops::Bound::Unbounded => 0,
                    };
                    // Page items are shared with the block cache (Arc), but
                    // count them: a page must not pin unbounded memory.
                    let items: usize = v.1.items.iter().map(|i| item_footprint(i)).sum();
                    weight(bound(&k.lo) + bound(&k.hi) + 128 + items)
                })
                .eviction_listener(counted_listener(Arc::clone(&pc.evictions)))
                .build(),
            block_counters: bc,
            item_counters: ic,
            page_counters: pc,
            capacity,
        }
    }

    pub async fn run_meta(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        info: &RunInfo,
    ) -> Result<Arc<RunMeta>> {
        let key = (path.to_string(), u64::MAX);
        if let Some((Cached::Meta(m), _)) = self.blocks.get(&key) {
            self.block_counters.hit();
            return Ok(m);
        }
        self.block_counters.miss();
        let bytes = io::get_range(store, path, info.meta_offset, info.size).await?;
        let meta = Arc::new(decode_meta(&bytes).map_err(|e| Error::corrupt(path, e))?);
        self.blocks.insert(
            key,
            (Cached::Meta(Arc::clone(&meta)), weight(bytes.len() * 2)),
        );
        Ok(meta)
    }

    pub async fn block(
        &self,
        store: &dyn ObjectStore,
        path: &Path,
        handle: &BlockHandle,
    ) -> Result<Arc<Block>> {
        let key = (path.to_string(), handle.offset);
        if let Some((Cached::Block(b), _)) = self.blocks.get(&key) {
            self.block_counters.hit();
            return Ok(b);
        }
        self.block_counters.miss();
        let bytes = io::get_range(store, path, handle.offset, handle.offset + handle.len).await?;
        let block = Arc::new(decode_block(&bytes).map_err(|e| Error::corrupt(path, e))?);
        // Decoded blocks take more memory than their bytes; count them double.
        self.blocks.insert(
            key,
            (Cached::Block(Arc::clone(&block)), weight(bytes.len() * 2)),
        );
        Ok(block)
    }

    /// Caches a block read some other way (a sweep reading ahead), whose
    /// keys are about to be looked up.
    pub(crate) fn put_block(&self, path: &Path, handle: &BlockHandle, block: Arc<Block>) {
        let key = (path.to_string(), handle.offset);
        self.blocks
            .insert(key, (Cached::Block(block), weight(handle.len as usize * 2)));
    }

    /// The cached runs-lookup of `key` under manifest `version`: `Some(None)`
    /// means "known absent from the runs".
    pub fn item(&self, partition: &Arc<str>, version: u64, key: &[u8]) -> Option<Option<Version>> {
        let found = self
            .items
            .get(&(Arc::clone(partition), version, key.to_vec()));
        match &found {
            Some(_) => self.item_counters.hit(),
            None => self.item_counters.miss(),
        }
        found
    }

    pub fn put_item(&self, partition: &Arc<str>, version: u64, key: &[u8], found: Option<Version>) {
        self.items
            .insert((Arc::clone(partition), version, key.to_vec()), found);
    }

    /// A cached page, if it was read at exactly `stamp`.
    pub(crate) fn page(&self, key: &PageKey, stamp: Stamp) -> Option<Page> {
        match self.pages.get(key) {
            Some((s, page)) if s == stamp => {
                self.page_counters.hit();
                Some(page)
            }
            _ => {
                self.page_counters.miss();
                None
            }
        }
    }

    pub(crate) fn put_page(&self, key: PageKey, stamp: Stamp, page: Page) {
        self.pages.insert(key, (stamp, page));
    }

    /// Hits, misses, evictions and bytes of each cache.
    pub fn stats(&self) -> Vec<CacheStats> {
        self.blocks.run_pending_tasks();
        self.items.run_pending_tasks();
        self.pages.run_pending_tasks();
        let one = |name, c: &Counters, bytes, capacity| CacheStats {
            name,
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            evictions: c.evictions.load(Ordering::Relaxed),
            bytes,
            capacity,
        };
        vec![
            one(
                "blocks",
                &self.block_counters,
                self.blocks.weighted_size(),
                self.capacity[0],
            ),
            one(
                "items",
                &self.item_counters,
                self.items.weighted_size(),
                self.capacity[1],
            ),
            one(
                "pages",
                &self.page_counters,
                self.pages.weighted_size(),
                self.capacity[2],
            ),
        ]
    }
}

/// The default cache budget: 40% of a Lambda function's memory
/// (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB), else 10% of the machine's
/// memory, within 64 MiB to 4 GiB.
pub fn default_cache_bytes() -> u64 {
    const MIB: u64 = 1 << 20;
    if let Some(mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return (mb * MIB * 2 / 5).max(16 * MIB);
    }
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(2048 * MIB, |kb| kb * 1024);
    (total / 10).clamp(64 * MIB, 4096 * MIB)
}

//! Levels benchmark: a table loaded through the engine on the local-dir
//! store (which syncs every PUT), under each compaction policy, with a
//! 256 MB cache. Prints load rate by tenth of the load, write amplification
//! (bytes PUT / item bytes written), space amplification after GC (bytes
//! stored / live item bytes), sorted runs and GETs per cold point read
//! (read amplification), GetItem latency, a full scan's rate, the time to
//! settle compaction after the load, what compaction cost per GB loaded
//! (busy seconds of flushes and merges, their GETs and SST PUTs) and per GB
//! merged, and peak RSS.
//!
//!     cargo bench -p strata-engine --bench levels
//!     STRATA_BENCH_ITEMS=10000000 cargo bench -p strata-engine --bench levels   # 10 GB
//!
//! `STRATA_BENCH_POLICIES=leveled` runs one policy only;
//! `STRATA_BENCH_PARTITIONS` sets the table's first partitions (4) and
//! `STRATA_BENCH_SPLIT_MB` the split size (the engine's 10 GB), so a table
//! that starts with one partition grows by splits during the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::counting;

// The allocator `strata serve` runs with (see `strata_engine::allocator`),
// counting the bytes it holds live for `STRATA_BENCH_TRACE`.
#[global_allocator]
static ALLOC: Counted = Counted(strata_engine::allocator::Allocator);

/// A global allocator that keeps a count of the bytes allocated and not yet
/// freed: the heap, against which RSS shows the allocator's own overhead.
struct Counted(strata_engine::allocator::Allocator);

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call is passed to the inner allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for Counted {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { self.0.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { self.0.dealloc(p, l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, std::sync::atomic::Ordering::Relaxed);
        unsafe { self.0.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(
            n as isize - l.size() as isize,
            std::sync::atomic::Ordering::Relaxed,
        );
        unsafe { self.0.realloc(p, l, n) }
    }
}

const ITEM_BYTES: usize = 1000;
const WRITERS: usize = 16;
const BATCH: usize = 25;
/// Writes retried after a retryable error (printed with the table).
static RETRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn key(i: u64) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("user{:08}", i / BATCH as u64)),
        range: Some(KeyValue::N(Number::from_i64(i as i64))),
    }
}

fn item(i: u64) -> Item {
    let k = key(i);
    let KeyValue::S(pk) = k.hash else {
        unreachable!()
    };
    Item::from([
        ("pk".to_string(), Value::S(pk)),
        ("sk".to_string(), Value::N(Number::from_i64(i as i64))),
        ("payload".to_string(), Value::S("x".repeat(ITEM_BYTES - 40))),
    ])
}

fn spec(partitions: u32) -> TableSpec {
    TableSpec {
        name: "levels".into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: Some(KeyAttribute {
                name: "sk".into(),
                key_type: KeyType::N,
            }),
        },
        partitions: Some(partitions),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

/// A memory figure of this process in MB, from `/proc/self/status`
/// (`VmHWM:` the peak RSS, `VmRSS:` the RSS now).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

/// With `STRATA_BENCH_TRACE` set: RSS, the tails and the caches every 10 s
/// (where a process's memory goes).
async fn trace_memory(e: Arc<Engine>) {
    let start = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let tails = e.tail_bytes("levels").await.unwrap_or_default();
        let cache: u64 = e.cache_stats().iter().map(|c| c.bytes).sum();
        eprintln!(
            "{:>5.0} s: rss {:.0} MB, heap {:.0} MB, {} partitions, tails {:.0} MB, caches {:.0} MB",
            start.elapsed().as_secs_f64(),
            status_mb("VmRSS:"),
            LIVE.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1048576.0,
            tails.len(),
            tails.iter().sum::<usize>() as f64 / 1048576.0,
            cache as f64 / 1048576.0,
        );
    }
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn pct(lat: &mut [Duration], p: f64) -> f64 {
    lat.sort();
    let i = ((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1));
    lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

struct Report {
    policy: CompactionPolicy,
    items: u64,
    rates: Vec<f64>,
    write_amp: f64,
    space_amp: f64,
    runs: usize,
    gets_per_read: f64,
    strong: (f64, f64),
    eventual: (f64, f64),
    cold: (f64, f64),
    /// The same reads by another fresh engine (the OS cache warm).
    cold_again: (f64, f64),
    scan_rate: f64,
    compact_s_per_gb: f64,
    /// Compaction's cost up to the settled load.
    compaction: CompactionStats,
    partitions: usize,
    split: (f64, u64),
    rss: f64,
}

async fn run(policy: CompactionPolicy, items: u64, partitions: u32, split_bytes: u64) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", dir.path().display());
    let base = strata_store::open_unchecked(&url).expect("store").store;
    let (counted, counter) = counting(base);
    let store: Arc<dyn ObjectStore> = counted;
    let config = EngineConfig {
        cache_bytes: 256 << 20,
        compaction_policy: policy,
        gc_grace: Duration::from_secs(30),
        // (Not zero: file times are only as fine as the kernel's tick.)
        clock_skew: Duration::from_secs(1),
        log_retention: Duration::ZERO,
        split_bytes,
        ..EngineConfig::default()
    };
    // How long GC must wait before it may collect what compaction replaced.
    let gc_wait = config.gc_grace + config.clock_skew + Duration::from_secs(1);
    let e = Arc::new(
        Engine::with_store(Arc::clone(&store), "bench", config)
            .await
            .expect("engine"),
    );
    e.create_table(spec(partitions)).await.expect("table");
    if std::env::var_os("STRATA_BENCH_TRACE").is_some() {
        tokio::spawn(trace_memory(Arc::clone(&e)));
    }
    // Load, timing each tenth.
    let logical = items * ITEM_BYTES as u64;
    let mut rates = Vec::new();
    let tenth = items.div_ceil(10);
    for t in 0..10u64 {
        let (lo, hi) = (t * tenth, ((t + 1) * tenth).min(items));
        if lo >= hi {
            break;
        }
        let start = Instant::now();
        let tasks: Vec<_> = (0..WRITERS as u64)
            .map(|w| {
                let e = Arc::clone(&e);
                tokio::spawn(async move {
                    let mut i = lo + w * BATCH as u64;
                    while i < hi {
                        let ops: Vec<_> = (i..(i + BATCH as u64).min(hi))
                            .map(|j| WriteOp::put(key(j), item(j)))
                            .collect();
                        // As an SDK client does: a retryable error (a store
                        // error, an unknown outcome) is retried; puts are
                        // idempotent. Each retry is reported.
                        let mut attempt = 0;
                        while let Err(err) = e
                            .write(
                                "levels",
                                WriteRequest {
                                    ops: ops.clone(),
                                    token: None,
                                },
                            )
                            .await
                        {
                            attempt += 1;
                            assert!(err.is_retryable() && attempt < 10, "write: {err}");
                            RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            eprintln!("write retried after: {err}");
                            tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                        }
                        i += (WRITERS * BATCH) as u64;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("writer");
        }
        rates.push((hi - lo) as f64 / start.elapsed().as_secs_f64());
        // As the compactor's schedule would: keeps the disk near the data.
        e.gc("levels").await.expect("gc");
    }
    // Settle: compact until every level is within its target.
    let start = Instant::now();
    loop {
        let out = e.compact("levels").await.expect("compact");
        if out
            .iter()
            .all(|o| matches!(o, CompactionOutcome::NothingToDo))
        {
            break;
        }
        if out.iter().any(|o| matches!(o, CompactionOutcome::Busy)) {
            // Background merges still running.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let settle = start.elapsed().as_secs_f64();
    let compaction = e.compaction_stats();
    let write_amp = counter.put_bytes() as f64 / logical as f64;
    tokio::time::sleep(gc_wait).await;
    e.gc("levels").await.expect("gc");
    let space_amp = dir_bytes(dir.path()) as f64 / logical as f64;
    let levels = e.partition_levels("levels").await.expect("levels");
    let runs = levels.iter().map(|p| p.len()).max().unwrap_or(0);
    // Cold point reads: a fresh engine with no cache (its partitions open),
    // counting GETs. Their latency is what a table far larger than the
    // cache costs. A second fresh engine reads the same keys again: the OS
    // now holds what they read, so the difference is the disk's, not the
    // engine's.
    let probes = 200u64;
    let cold_pass = async || {
        let cold = Engine::with_store(
            Arc::clone(&store),
            "bench",
            EngineConfig {
                cache_bytes: 0,
                ..EngineConfig::default()
            },
        )
        .await
        .expect("engine");
        // Open every partition first (its descriptor, manifest and log
        // tail): a first touch is an instance's cold start, not a read.
        for w in 0..256u64 {
            let _ = cold
                .get(
                    "levels",
                    &key((w * 104_729 + 1) % items),
                    Consistency::Strong,
                )
                .await;
        }
        let before = counter.snapshot();
        let mut lat = Vec::new();
        for p in 0..probes {
            let i = (p * 7919) % items;
            let t = Instant::now();
            cold.get("levels", &key(i), Consistency::Eventual)
                .await
                .expect("get")
                .expect("present");
            lat.push(t.elapsed());
        }
        let gets = (counter.snapshot() - before).get as f64 / probes as f64;
        (gets, (pct(&mut lat, 0.5), pct(&mut lat, 0.99)))
    };
    let (gets_per_read, cold_lat) = cold_pass().await;
    let (_, cold_again) = cold_pass().await;

    // Warm GetItem latency.
    let measure = async |c: Consistency| {
        let mut lat = Vec::new();
        for p in 0..2000u64 {
            let i = (p * 104_729) % items;
            let t = Instant::now();
            e.get("levels", &key(i), c).await.expect("get");
            lat.push(t.elapsed());
        }
        (pct(&mut lat, 0.5), pct(&mut lat, 0.99))
    };
    let _ = measure(Consistency::Eventual).await; // warm the cache
    let eventual = measure(Consistency::Eventual).await;
    let strong = measure(Consistency::Strong).await;
    // Full scan.
    let start = Instant::now();
    let mut scanned = 0u64;
    let schema = spec(partitions).key_schema;
    let mut after: Option<ItemKey> = None;
    loop {
        let page = e
            .scan(
                "levels",
                None,
                after.as_ref(),
                1000,
                1 << 20,
                Consistency::Eventual,
            )
            .await
            .expect("scan");
        scanned += page.items.len() as u64;
        match page.last_key {
            Some(k) => after = Some(schema.key_of(&k).expect("key")),
            None => break,
        }
    }
    let scan_rate = scanned as f64 / start.elapsed().as_secs_f64();
    assert_eq!(scanned, items, "scan saw every item");
    let leaves = e.partitions("levels").await.expect("partitions");
    // One split on demand, of the first partition: seconds and requests.
    let before = counter.snapshot();
    let start = Instant::now();
    e.split_partition("levels", leaves[0]).await.expect("split");
    let split_secs = start.elapsed().as_secs_f64();
    let c = counter.snapshot() - before;
    let split_requests = c.get + c.put + c.list + c.head + c.delete;
    Report {
        policy,
        items,
        rates,
        write_amp,
        space_amp,
        runs,
        gets_per_read,
        strong,
        eventual,
        cold: cold_lat,
        cold_again,
        scan_rate,
        compact_s_per_gb: settle / (logical as f64 / 1e9),
        compaction,
        partitions: leaves.len(),
        split: (split_secs, split_requests),
        rss: peak_rss_mb(),
    }
}

fn main() {
    strata_engine::allocator::tune();
    // `RUST_LOG=strata_engine=warn` shows what the engine warns of.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let items: u64 = std::env::var("STRATA_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let partitions: u32 = std::env::var("STRATA_BENCH_PARTITIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let split_bytes: u64 = std::env::var("STRATA_BENCH_SPLIT_MB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(EngineConfig::default().split_bytes, |mb| mb << 20);
    let which = std::env::var("STRATA_BENCH_POLICIES").unwrap_or_default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut reports = Vec::new();
    for policy in [CompactionPolicy::Leveled, CompactionPolicy::Tiered] {
        if !which.is_empty() && !which.eq_ignore_ascii_case(&format!("{policy:?}")) {
            continue;
        }
        eprintln!("loading {items} items of ~{ITEM_BYTES} B under {policy:?}...");
        reports.push(rt.block_on(run(policy, items, partitions, split_bytes)));
    }
    println!(
        "\n{} items of ~{ITEM_BYTES} B ({:.2} GB), {partitions} first partitions, split at {} MB, local-dir store, 256 MB cache, {WRITERS} writers x {BATCH}-item batches\n",
        items,
        items as f64 * ITEM_BYTES as f64 / 1e9,
        split_bytes >> 20
    );
    println!("| policy | load items/s (first → last tenth) | write amp | space amp after GC | sorted runs | GETs per cold read | strong Get p50/p99 ms | eventual Get p50/p99 ms | uncached Get p50/p99 ms | scan items/s | settle s/GB | compaction per GB loaded: busy s, GETs, PUTs | merge s/GB merged | partitions at end | a split: s, requests | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &reports {
        let (c, gb) = (&r.compaction, r.items as f64 * ITEM_BYTES as f64 / 1e9);
        println!(
            "| {:?} | {:.0} → {:.0} | {:.2} | {:.2} | {} | {:.2} | {:.2}/{:.2} | {:.3}/{:.3} | {:.2}/{:.2} | {:.0} | {:.1} | {:.1}, {:.0}, {:.0} | {:.1} | {} | {:.2}, {} | {:.0} |",
            r.policy,
            r.rates.first().copied().unwrap_or(0.0),
            r.rates.last().copied().unwrap_or(0.0),
            r.write_amp,
            r.space_amp,
            r.runs,
            r.gets_per_read,
            r.strong.0,
            r.strong.1,
            r.eventual.0,
            r.eventual.1,
            r.cold.0,
            r.cold.1,
            r.scan_rate,
            r.compact_s_per_gb,
            (c.flush_secs + c.merge_secs) / gb,
            c.merge_gets as f64 / gb,
            c.sst_puts as f64 / gb,
            c.merge_secs / (c.merged_in_bytes.max(1) as f64 / 1e9),
            r.partitions,
            r.split.0,
            r.split.1,
            r.rss,
        );
    }
    println!(
        "\n(peak RSS is the process's high-water mark so far: a later row includes earlier ones)"
    );
    for r in &reports {
        let tenths: Vec<String> = r.rates.iter().map(|x| format!("{x:.0}")).collect();
        println!(
            "{:?} load items/s, each tenth: {}; uncached Get p50/p99 again (OS cache warm): {:.2}/{:.2} ms",
            r.policy,
            tenths.join(", "),
            r.cold_again.0,
            r.cold_again.1
        );
    }
    let retries = RETRIES.load(std::sync::atomic::Ordering::Relaxed);
    if retries > 0 {
        println!("{retries} batch writes were retried after a retryable error (printed above)");
    }
}

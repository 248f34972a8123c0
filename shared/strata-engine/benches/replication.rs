//! Replication benchmark: lag from a commit in region A to its visibility by
//! a strong read in region B under a steady write load, catch-up throughput,
//! and object-store requests per replicated write on each side. Both regions
//! on local-filesystem stores (separate directories), each side's requests
//! counted by its own instrumented store.
//!
//!     cargo bench -p strata-engine --bench replication
//!
//! The replicator polls every partition's log each interval (as `strata
//! serve` does with `--replicate-interval-ms`); lag is measured by a reader
//! in B (its own engine, as a separate instance) issuing strong reads for
//! the writes not yet seen, every 2 ms.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::replication::{add_replica, Replicator};
use strata_engine::*;
use strata_store::counting::{counting, RequestCounter, RequestCounts};

const PARTITIONS: u32 = 8;
const TABLE: &str = "bench";

fn key(i: usize) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("user{i:06}")),
        range: None,
    }
}

/// An item of about 200 bytes.
fn item(i: usize) -> Item {
    Item::from([
        ("pk".to_string(), Value::S(format!("user{i:06}"))),
        ("payload".to_string(), Value::S("x".repeat(170))),
        ("n".to_string(), Value::N(Number::from_i64(i as i64))),
    ])
}

fn config(region: &str) -> EngineConfig {
    EngineConfig {
        region: region.into(),
        default_partitions: PARTITIONS,
        ..EngineConfig::default()
    }
}

fn file_store() -> Arc<dyn ObjectStore> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
        .keep();
    strata_store::open_unchecked(&format!("file://{}", dir.display()))
        .expect("file store")
        .store
}

fn counted(store: &Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<RequestCounter>) {
    let (s, c) = counting(Arc::clone(store));
    (s, c)
}

struct Setup {
    writer: Arc<Engine>,
    reader_b: Arc<Engine>,
    replicator: Arc<Replicator>,
    source_requests: Arc<RequestCounter>,
    target_requests: Arc<RequestCounter>,
}

/// Regions A and B with a global table; the replicator of A has its own
/// engines on both stores, each counted.
async fn setup() -> Setup {
    let (store_a, store_b) = (file_store(), file_store());
    let a = Arc::new(Engine::with_store_unchecked(
        Arc::clone(&store_a),
        "a",
        config("us-east-1"),
    ));
    let b_admin = Arc::new(Engine::with_store_unchecked(
        Arc::clone(&store_b),
        "b",
        config("eu-west-1"),
    ));
    a.create_table(TableSpec {
        name: TABLE.into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: None,
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    })
    .await
    .expect("create");
    let regions = BTreeMap::from([("eu-west-1".to_string(), Arc::clone(&b_admin))]);
    add_replica(&a, &regions, TABLE, "eu-west-1")
        .await
        .expect("replica");
    let (src, source_requests) = counted(&store_a);
    let (dst, target_requests) = counted(&store_b);
    let rep_source = Arc::new(Engine::with_store_unchecked(src, "a", config("us-east-1")));
    let rep_target = Arc::new(Engine::with_store_unchecked(
        dst,
        "b",
        EngineConfig {
            auto_compact: false,
            ..config("eu-west-1")
        },
    ));
    let replicator = Arc::new(Replicator::new(
        rep_source,
        BTreeMap::from([("eu-west-1".to_string(), rep_target)]),
    ));
    replicator.run_once().await.expect("initial pass");
    let reader_b = Arc::new(Engine::with_store_unchecked(
        store_b,
        "b",
        config("eu-west-1"),
    ));
    Setup {
        writer: a,
        reader_b,
        replicator,
        source_requests,
        target_requests,
    }
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn per(c: RequestCounts, n: usize) -> String {
    let n = n.max(1) as f64;
    format!(
        "{:.2} (GET {:.2}, PUT {:.2}, HEAD {:.2}, LIST {:.2})",
        c.total() as f64 / n,
        c.get as f64 / n,
        c.put as f64 / n,
        c.head as f64 / n,
        c.list as f64 / n
    )
}

/// Steady load: `rate` puts/s for `secs` while the replicator polls every
/// `interval`; returns sorted lags and the request counts of the run.
async fn lag_run(
    interval: Duration,
    rate: usize,
    secs: u64,
) -> (Vec<Duration>, usize, RequestCounts, RequestCounts) {
    let s = setup().await;
    let pending: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let lags: Arc<Mutex<Vec<Duration>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (src0, dst0) = (s.source_requests.snapshot(), s.target_requests.snapshot());
    let rep = {
        let (r, done) = (Arc::clone(&s.replicator), Arc::clone(&done));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                tick.tick().await;
                r.run_once().await.expect("replicate");
            }
        })
    };
    let reader = {
        let (b, pending, lags, done) = (
            Arc::clone(&s.reader_b),
            Arc::clone(&pending),
            Arc::clone(&lags),
            Arc::clone(&done),
        );
        tokio::spawn(async move {
            loop {
                let batch: Vec<(usize, Instant)> = pending.lock().unwrap().clone();
                if batch.is_empty() && done.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                for (i, t0) in batch {
                    if b.get(TABLE, &key(i), Consistency::Strong)
                        .await
                        .expect("get")
                        .is_some()
                    {
                        lags.lock().unwrap().push(t0.elapsed());
                        pending.lock().unwrap().retain(|(j, _)| *j != i);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let total = rate * secs as usize;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        s.writer
            .write(TABLE, WriteRequest::single(WriteOp::put(key(i), item(i))))
            .await
            .expect("put");
        pending.lock().unwrap().push((i, Instant::now()));
    }
    // Let the last writes arrive, then stop.
    while !pending.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    rep.await.unwrap();
    reader.await.unwrap();
    let (src, dst) = (
        s.source_requests.snapshot() - src0,
        s.target_requests.snapshot() - dst0,
    );
    let mut lags = lags.lock().unwrap().clone();
    lags.sort();
    (lags, total, src, dst)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("Replication A -> B, both on local-filesystem stores, {PARTITIONS} partitions, ~200-byte items\n");
    println!("Lag: commit acknowledged in A -> visible to a strong read in B (reader polls every 2 ms)\n");
    println!("| poll interval | writes/s | writes | lag p50 ms | lag p99 ms | lag max ms | source req/write | target req/write |");
    println!("|---|---|---|---|---|---|---|---|");
    for (interval_ms, rate) in [(50u64, 200usize), (100, 200), (200, 200), (100, 1000)] {
        let (lags, n, src, dst) = lag_run(Duration::from_millis(interval_ms), rate, 5).await;
        println!(
            "| {interval_ms} ms | {rate} | {n} | {} | {} | {} | {} | {} |",
            ms(pct(&lags, 0.5)),
            ms(pct(&lags, 0.99)),
            ms(lags.last().copied().unwrap_or_default()),
            per(src, n),
            per(dst, n),
        );
    }

    println!("\nCatch-up: N writes made while the replicator was stopped (16 concurrent writers), then one replicator drains them\n");
    println!("| writes | segments | seconds | records/s | source req/record | target req/record |");
    println!("|---|---|---|---|---|---|");
    for n in [20_000usize, 100_000] {
        let s = setup().await;
        let writers: Vec<_> = (0..16)
            .map(|w| {
                let a = Arc::clone(&s.writer);
                tokio::spawn(async move {
                    for i in (w..n).step_by(16) {
                        a.write(TABLE, WriteRequest::single(WriteOp::put(key(i), item(i))))
                            .await
                            .expect("put");
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        let (src0, dst0) = (s.source_requests.snapshot(), s.target_requests.snapshot());
        let start = Instant::now();
        let mut segments = 0;
        loop {
            let r = s.replicator.run_once().await.expect("replicate");
            segments += r.segments;
            if r.sent == 0 {
                break;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let (src, dst) = (
            s.source_requests.snapshot() - src0,
            s.target_requests.snapshot() - dst0,
        );
        println!(
            "| {n} | {segments} | {secs:.2} | {:.0} | {} | {} |",
            n as f64 / secs,
            per(src, n),
            per(dst, n)
        );
    }
}

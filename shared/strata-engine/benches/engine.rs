//! Engine benchmark: ops/s, latency percentiles and object-store requests per
//! operation, on the local filesystem store, plain and with S3-like latency
//! injected (PUT 20 ms, GET 10 ms, LIST 20 ms).
//!
//!     cargo bench -p strata-engine --bench engine
//!
//! Each configuration loads a table, compacts it (so reads come from runs, as
//! they would in steady state), then measures a *warm* instance: one that has
//! already read each partition once, as a warm Lambda instance has.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::{counting, RequestCounter};
use strata_store::latency::{with_latency, LatencyProfile};

const PARTITIONS: u32 = 8;

struct Row {
    store: &'static str,
    op: String,
    clients: usize,
    ops: usize,
    secs: f64,
    lat: Vec<Duration>,
    per_op: [f64; 4],
}

fn key(pk: usize, sk: usize) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("user{pk:05}")),
        range: Some(KeyValue::N(Number::from_i64(sk as i64))),
    }
}

/// An item of about 200 bytes.
fn item(pk: usize, sk: usize) -> Item {
    Item::from([
        ("pk".to_string(), Value::S(format!("user{pk:05}"))),
        ("sk".to_string(), Value::N(Number::from_i64(sk as i64))),
        ("name".to_string(), Value::S(format!("name-{pk}-{sk}"))),
        ("payload".to_string(), Value::S("x".repeat(150))),
        (
            "count".to_string(),
            Value::N(Number::from_i64((pk * sk) as i64)),
        ),
    ])
}

fn spec() -> TableSpec {
    TableSpec {
        name: "bench".into(),
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
        partitions: Some(PARTITIONS),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

fn config() -> EngineConfig {
    EngineConfig {
        auto_compact: false,
        ..EngineConfig::default()
    }
}

/// Runs `ops` operations split over `clients` concurrent tasks.
async fn measure<F, Fut>(
    store: &'static str,
    op: &str,
    clients: usize,
    ops: usize,
    counter: &RequestCounter,
    f: F,
) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let before = counter.snapshot();
    let start = Instant::now();
    let tasks = (0..clients).map(|c| {
        let f = Arc::clone(&f);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (c..ops).step_by(clients) {
                let t = Instant::now();
                f(i).await;
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let mut lat: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let c = counter.snapshot() - before;
    lat.sort();
    let per = |x: u64| x as f64 / ops as f64;
    Row {
        store,
        op: op.to_string(),
        clients,
        ops,
        secs,
        lat,
        per_op: [per(c.get), per(c.put), per(c.list), per(c.head)],
    }
}

fn pct(lat: &[Duration], p: f64) -> String {
    let d = lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

async fn run(name: &'static str, latency: LatencyProfile, scale: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    // The store `file://` URLs open: LocalFileSystem with inline whole-object reads.
    let url = format!("file://{}", dir.path().display());
    let fs: Arc<dyn ObjectStore> = strata_store::open_unchecked(&url).unwrap().store;
    // Load without latency, then compact, so the measured table lives in runs.
    let loader = Arc::new(
        Engine::with_store(Arc::clone(&fs), "bench", config())
            .await
            .unwrap(),
    );
    loader.create_table(spec()).await.unwrap();
    let users = 50;
    let per_user = 100;
    let loads = (0..64).map(|c| {
        let e = Arc::clone(&loader);
        tokio::spawn(async move {
            for i in (c..users * per_user).step_by(64) {
                let (u, s) = (i / per_user, i % per_user);
                e.write(
                    "bench",
                    WriteRequest::single(WriteOp::put(key(u, s), item(u, s))),
                )
                .await
                .unwrap();
            }
        })
    });
    futures::future::join_all(loads).await;
    loader.compact("bench").await.unwrap();
    drop(loader);

    let (lat_store, _) = with_latency(fs, latency);
    let (counted, counter) = counting(lat_store);
    let e = Arc::new(
        Engine::with_store(counted, "bench", config())
            .await
            .unwrap(),
    );
    // Warm up: every partition's view, and the run indexes and blocks.
    for u in 0..users {
        e.query(
            "bench",
            &key(u, 0).hash,
            &SortKeyCondition::All,
            true,
            1000,
            None,
            usize::MAX,
            Consistency::Strong,
        )
        .await
        .unwrap();
    }
    let mut rows = Vec::new();
    let total = users * per_user;
    let ops = |n: usize| (n / scale).max(20);
    let e1 = Arc::clone(&e);
    rows.push(
        measure(name, "put", 1, ops(2000), &counter, move |i| {
            let e = Arc::clone(&e1);
            async move {
                let (u, s) = (i % users, per_user + i);
                e.write(
                    "bench",
                    WriteRequest::single(WriteOp::put(key(u, s), item(u, s))),
                )
                .await
                .unwrap();
            }
        })
        .await,
    );
    let e1 = Arc::clone(&e);
    rows.push(
        measure(name, "put", 32, ops(8000), &counter, move |i| {
            let e = Arc::clone(&e1);
            async move {
                let (u, s) = (i % users, 100_000 + i);
                e.write(
                    "bench",
                    WriteRequest::single(WriteOp::put(key(u, s), item(u, s))),
                )
                .await
                .unwrap();
            }
        })
        .await,
    );
    for (label, consistency, n) in [
        ("get strong", Consistency::Strong, 4000),
        ("get eventual", Consistency::Eventual, 40000),
    ] {
        let e1 = Arc::clone(&e);
        rows.push(
            measure(name, label, 1, ops(n), &counter, move |i| {
                let e = Arc::clone(&e1);
                async move {
                    let i = (i * 7919) % total;
                    e.get("bench", &key(i / per_user, i % per_user), consistency)
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
            .await,
        );
    }
    let e1 = Arc::clone(&e);
    rows.push(
        measure(
            name,
            "range read 100 (strong)",
            1,
            ops(1000),
            &counter,
            move |i| {
                let e = Arc::clone(&e1);
                async move {
                    let cond = SortKeyCondition::Between(
                        KeyValue::N(Number::from_i64(0)),
                        KeyValue::N(Number::from_i64(99)),
                    );
                    let p = e
                        .query(
                            "bench",
                            &key(i % users, 0).hash,
                            &cond,
                            true,
                            100,
                            None,
                            usize::MAX,
                            Consistency::Strong,
                        )
                        .await
                        .unwrap();
                    assert_eq!(p.items.len(), 100);
                }
            },
        )
        .await,
    );
    let e1 = Arc::clone(&e);
    rows.push(
        measure(name, "full scan (5k+ items)", 1, 5, &counter, move |_| {
            let e = Arc::clone(&e1);
            async move {
                let mut after: Option<ItemKey> = None;
                let mut n = 0;
                loop {
                    let p = e
                        .scan(
                            "bench",
                            None,
                            after.as_ref(),
                            1000,
                            usize::MAX,
                            Consistency::Strong,
                        )
                        .await
                        .unwrap();
                    n += p.items.len();
                    match p.last_key {
                        Some(k) => {
                            after = Some(
                                spec()
                                    .key_schema
                                    .key_from_attributes(&k)
                                    .expect("a resume key is a key"),
                            )
                        }
                        None => break,
                    }
                }
                assert!(n >= total);
            }
        })
        .await,
    );
    rows
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rows = run("local fs", LatencyProfile::default(), 1).await;
    let s3 = LatencyProfile {
        put: Duration::from_millis(20),
        get: Duration::from_millis(10),
        list: Duration::from_millis(20),
        head: Duration::from_millis(10),
        delete: Duration::from_millis(20),
    };
    rows.extend(run("fs + S3 latency", s3, 20).await);
    println!();
    println!("| store | operation | clients | ops | ops/s | p50 | p99 | GET/op | PUT/op | LIST/op | HEAD/op |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            r.store,
            r.op,
            r.clients,
            r.ops,
            r.ops as f64 / r.secs,
            pct(&r.lat, 0.5),
            pct(&r.lat, 0.99),
            r.per_op[0],
            r.per_op[1],
            r.per_op[2],
            r.per_op[3]
        );
    }
    println!();
    println!("S3 latency injected: PUT 20 ms, GET 10 ms, LIST 20 ms, HEAD 10 ms. Items ~200 B, {PARTITIONS} partitions, 2-core machine.");
}

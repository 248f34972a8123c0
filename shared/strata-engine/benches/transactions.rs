//! Transactions benchmark: latency p50/p99 and object-store requests per
//! TransactWriteItems of 2, 10 and 100 actions on one partition and on many,
//! on the local filesystem store and with S3-like latency injected (PUT
//! 20 ms, GET 10 ms), beside one PutItem; the throughput of disjoint
//! transactions from 16 clients; the abort rate of 16 clients contending
//! for one hot item. Prints a table.
//!
//! `cargo bench -p strata-engine --bench transactions`

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::{counting, RequestCounter};
use strata_store::latency::{with_latency, LatencyProfile};

const PARTITIONS: u32 = 16;

fn config() -> EngineConfig {
    EngineConfig {
        default_partitions: PARTITIONS,
        auto_compact: false,
        ..EngineConfig::default()
    }
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
        partitions: None,
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

fn key(pk: &str, sk: usize) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(pk.into()),
        range: Some(KeyValue::N(Number::from_i64(sk as i64))),
    }
}

fn item(pk: &str, sk: usize) -> Item {
    Item::from([
        ("pk".to_string(), Value::S(pk.into())),
        ("sk".to_string(), Value::N(Number::from_i64(sk as i64))),
        ("v".to_string(), Value::S("x".repeat(100))),
    ])
}

/// Partition keys that route to `n` distinct partitions (one each).
fn spread(desc: &TableDescriptor, n: usize, tag: &str) -> Vec<String> {
    let map = desc.map();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < n {
        let pk = format!("{tag}-{i}");
        i += 1;
        if seen.insert(map.route(&KeyValue::S(pk.clone()))) {
            out.push(pk);
        }
        if seen.len() == PARTITIONS as usize {
            seen.clear();
        }
    }
    out
}

/// `actions` puts over `parts` partitions (round robin).
fn txn(desc: &TableDescriptor, actions: usize, parts: usize, round: usize) -> Vec<TxnWrite> {
    let pks = spread(desc, parts, &format!("p{parts}"));
    (0..actions)
        .map(|a| {
            let pk = &pks[a % parts];
            let sk = round * 1000 + a;
            TxnWrite {
                table: "bench".into(),
                op: WriteOp::put(key(pk, sk), item(pk, sk)),
                check: false,
            }
        })
        .collect()
}

struct Row {
    store: &'static str,
    what: String,
    ops: usize,
    secs: f64,
    lat: Vec<Duration>,
    per_op: [f64; 4],
    note: String,
}

fn pct(lat: &[Duration], p: f64) -> String {
    if lat.is_empty() {
        return "-".into();
    }
    let d = lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.1} ms", us / 1000.0)
    }
}

/// Runs `f(i)` for i in 0..ops, one at a time; the requests per op include
/// what the transactions settle after answering (waited for).
async fn sequential<F, Fut>(
    store: &'static str,
    what: String,
    ops: usize,
    counter: &RequestCounter,
    mut f: F,
) -> Row
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = counter.snapshot();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(ops);
    for i in 0..ops {
        let t = Instant::now();
        f(i).await;
        lat.push(t.elapsed());
    }
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await; // the settlements
    let c = counter.snapshot() - before;
    lat.sort();
    let per = |x: u64| x as f64 / ops as f64;
    Row {
        store,
        what,
        ops,
        secs,
        lat,
        per_op: [per(c.get), per(c.put), per(c.list), per(c.head)],
        note: String::new(),
    }
}

async fn run(name: &'static str, latency: LatencyProfile, scale: usize) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let fs: Arc<dyn ObjectStore> = strata_store::open_unchecked(&url).unwrap().store;
    let (lat_store, _) = with_latency(fs, latency);
    let (counted, counter) = counting(lat_store);
    let e = Arc::new(
        Engine::with_store(counted, "bench", config())
            .await
            .unwrap(),
    );
    let desc = e.create_table(spec()).await.unwrap();
    // Warm every partition's view.
    for pk in spread(&desc, PARTITIONS as usize, "warm") {
        e.write(
            "bench",
            WriteRequest::single(WriteOp::put(key(&pk, 0), item(&pk, 0))),
        )
        .await
        .unwrap();
    }
    let mut rows = Vec::new();
    let ops = |n: usize| (n / scale).max(10);
    let e1 = Arc::clone(&e);
    rows.push(
        sequential(name, "PutItem".into(), ops(400), &counter, |i| {
            let e = Arc::clone(&e1);
            async move {
                let pk = format!("single-{}", i % 50);
                e.write(
                    "bench",
                    WriteRequest::single(WriteOp::put(key(&pk, i), item(&pk, i))),
                )
                .await
                .unwrap();
            }
        })
        .await,
    );
    for (actions, parts) in [(2, 1), (2, 2), (10, 1), (10, 10), (100, 1), (100, 16)] {
        let (e, desc) = (Arc::clone(&e), desc.clone());
        let n = ops(if actions == 100 { 60 } else { 300 });
        rows.push(
            sequential(
                name,
                format!("TransactWriteItems {actions} actions, {parts} partition(s)"),
                n,
                &counter,
                |i| {
                    let (e, w) = (Arc::clone(&e), txn(&desc, actions, parts, i));
                    async move {
                        let r = e.transact_write(w, TxnOptions::default()).await.unwrap();
                        assert!(matches!(r, TxnResult::Committed { .. }), "{r:?}");
                    }
                },
            )
            .await,
        );
    }
    // TransactGetItems of 10 items on 10 partitions.
    let gets: Vec<(String, ItemKey)> = spread(&desc, 10, "p10")
        .into_iter()
        .enumerate()
        .map(|(i, pk)| ("bench".to_string(), key(&pk, i)))
        .collect();
    let e1 = Arc::clone(&e);
    rows.push(
        sequential(
            name,
            "TransactGetItems 10 items, 10 partitions".into(),
            ops(300),
            &counter,
            |_| {
                let (e, gets) = (Arc::clone(&e1), gets.clone());
                async move {
                    e.transact_get(&gets).await.unwrap().unwrap();
                }
            },
        )
        .await,
    );
    // Throughput: 16 clients, disjoint transactions (2 actions, 2 partitions).
    let clients = 16;
    let per_client = ops(40).max(4);
    let before = counter.snapshot();
    let start = Instant::now();
    let tasks = (0..clients).map(|c| {
        let e = Arc::clone(&e);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in 0..per_client {
                let w = (0..2)
                    .map(|a| {
                        let pk = format!("client-{c}-{a}");
                        TxnWrite {
                            table: "bench".into(),
                            op: WriteOp::put(key(&pk, i), item(&pk, i)),
                            check: false,
                        }
                    })
                    .collect();
                let t = Instant::now();
                e.transact_write(w, TxnOptions::default()).await.unwrap();
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = counter.snapshot() - before;
    lat.sort();
    let n = clients * per_client;
    let per = |x: u64| x as f64 / n as f64;
    rows.push(Row {
        store: name,
        what: format!("{clients} clients, disjoint 2-action transactions"),
        ops: n,
        secs,
        lat,
        per_op: [per(c.get), per(c.put), per(c.list), per(c.head)],
        note: String::new(),
    });
    // Contention: 16 clients each adding to one hot item and its own.
    let before = counter.snapshot();
    let start = Instant::now();
    let tasks = (0..clients).map(|c| {
        let e = Arc::clone(&e);
        tokio::spawn(async move {
            let (mut ok, mut aborted) = (0, 0);
            for i in 0..per_client {
                let hot = TxnWrite {
                    table: "bench".into(),
                    op: WriteOp::update(
                        key("hot", 0),
                        Arc::new(|cur: Option<&Item>| {
                            let mut it = cur.cloned().unwrap_or_default();
                            let n = match it.get("n") {
                                Some(Value::N(x)) => {
                                    x.add(&Number::from_i64(1)).map_err(|e| e.to_string())?
                                }
                                _ => Number::from_i64(1),
                            };
                            it.insert("n".into(), Value::N(n));
                            Ok(Some(it))
                        }),
                    ),
                    check: false,
                };
                let pk = format!("own-{c}");
                let own = TxnWrite {
                    table: "bench".into(),
                    op: WriteOp::put(key(&pk, i), item(&pk, i)),
                    check: false,
                };
                match e
                    .transact_write(vec![hot, own], TxnOptions::default())
                    .await
                {
                    Ok(TxnResult::Committed { .. }) => ok += 1,
                    _ => aborted += 1,
                }
            }
            (ok, aborted)
        })
    });
    let results: Vec<(usize, usize)> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = counter.snapshot() - before;
    let (ok, aborted) = results.iter().fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
    let per = |x: u64| x as f64 / n as f64;
    rows.push(Row {
        store: name,
        what: format!("{clients} clients, one hot item"),
        ops: n,
        secs,
        lat: Vec::new(),
        per_op: [per(c.get), per(c.put), per(c.list), per(c.head)],
        note: format!(
            "{ok} committed, {aborted} cancelled: abort rate {:.0} %",
            100.0 * aborted as f64 / n as f64
        ),
    });
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
    rows.extend(run("fs + S3 latency", s3, 5).await);
    println!();
    println!(
        "| store | operation | ops | ops/s | p50 | p99 | GET/op | PUT/op | LIST/op | HEAD/op | |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
            r.store,
            r.what,
            r.ops,
            r.ops as f64 / r.secs,
            pct(&r.lat, 0.5),
            pct(&r.lat, 0.99),
            r.per_op[0],
            r.per_op[1],
            r.per_op[2],
            r.per_op[3],
            r.note
        );
    }
    println!();
    println!("S3 latency injected: PUT 20 ms, GET 10 ms, LIST 20 ms, HEAD 10 ms. {PARTITIONS} partitions, items ~130 B, 2-core machine.");
    println!("Requests per transaction include its settlement, which runs after the answer.");
}

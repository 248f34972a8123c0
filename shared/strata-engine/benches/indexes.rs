//! Secondary-index benchmark, on the local filesystem store (`file://`,
//! every PUT synced), as `strata serve` runs it:
//!
//!     cargo bench -p strata-engine --bench indexes
//!
//! 1. Object-store requests per write with 0, 1 and 5 global indexes: the
//!    write itself, and what the follower adds (followed after every write,
//!    as the serve loop does under light load, and once per 100 writes).
//! 2. Propagation lag (write acknowledged -> entry visible in an eventually
//!    consistent index Query) at 200 and 1,000 writes/s, with the serve
//!    loop (`follow_forever`) running.
//! 3. Query through a global index vs through the table: latency and GETs
//!    per page of 100 items, on a fresh instance (nothing cached) and warm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::index::follower::follow_forever;
use strata_engine::*;
use strata_store::counting::{counting, RequestCounter};

fn attr(name: &str, key_type: KeyType) -> KeyAttribute {
    KeyAttribute {
        name: name.into(),
        key_type,
    }
}

fn spec(name: &str, gsis: usize) -> TableSpec {
    TableSpec {
        name: name.into(),
        key_schema: KeySchema {
            hash: attr("pk", KeyType::S),
            range: None,
        },
        partitions: Some(4),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: (0..gsis)
            .map(|i| IndexDef {
                name: format!("gsi{i}"),
                id: String::new(),
                kind: IndexKind::Global,
                key_schema: KeySchema {
                    hash: attr(&format!("a{i}"), KeyType::S),
                    range: Some(attr("n", KeyType::N)),
                },
                projection: Projection::All,
                status: IndexStatus::Active,
                meta: serde_json::Value::Null,
            })
            .collect(),
        commit_window_ms: None,
    }
}

fn item(i: usize, gsis: usize) -> Item {
    let mut it = Item::from([
        ("pk".to_string(), Value::S(format!("k{i:07}"))),
        ("n".to_string(), Value::N(Number::from_i64(i as i64))),
        ("payload".to_string(), Value::S("x".repeat(150))),
    ]);
    for g in 0..gsis.max(1) {
        it.insert(format!("a{g}"), Value::S(format!("v{}", i % 10)));
    }
    it
}

fn put(i: usize, gsis: usize) -> WriteRequest {
    let it = item(i, gsis);
    let key = ItemKey {
        hash: KeyValue::S(format!("k{i:07}")),
        range: None,
    };
    WriteRequest::single(WriteOp::put(key, it))
}

fn config() -> EngineConfig {
    EngineConfig {
        auto_compact: false,
        ..EngineConfig::default()
    }
}

fn file_store(dir: &tempfile::TempDir) -> Arc<dyn ObjectStore> {
    let url = format!("file://{}", dir.path().display());
    strata_store::open_unchecked(&url).unwrap().store
}

fn file_store_at(dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    let url = format!("file://{}", dir.display());
    strata_store::open_unchecked(&url).unwrap().store
}

fn pct(v: &[Duration], p: f64) -> f64 {
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1e3
}

async fn requests_per_write() {
    println!("\n## Requests per write (local store, 4 partitions, items in every index)\n");
    println!("| GSIs | write PUTs | write GETs | follower per write, followed each write (GET / PUT / other) | followed per 100 writes (GET / PUT / other) |");
    println!("|---:|---:|---:|---|---|");
    for gsis in [0usize, 1, 5] {
        let dir = tempfile::tempdir().unwrap();
        let (store, counter): (_, Arc<RequestCounter>) = counting(file_store(&dir));
        let e = Engine::with_store(store, "bench", config()).await.unwrap();
        e.create_table(spec("tab", gsis)).await.unwrap();
        e.follow_all_indexes().await.unwrap();
        let n = 200;
        // Warm: every partition's view.
        for i in 0..8 {
            e.write("tab", put(1_000_000 + i, gsis)).await.unwrap();
        }
        e.follow_all_indexes().await.unwrap();
        let (mut write, mut follow) = (Default::default(), Default::default());
        let add = |a: &mut (u64, u64, u64), c: strata_store::counting::RequestCounts| {
            a.0 += c.get;
            a.1 += c.put;
            a.2 += c.list + c.head + c.delete;
        };
        let mut w: (u64, u64, u64) = write;
        let mut f: (u64, u64, u64) = follow;
        for i in 0..n {
            let before = counter.snapshot();
            e.write("tab", put(i, gsis)).await.unwrap();
            add(&mut w, counter.snapshot() - before);
            // As the serve loop does: the partitions the commit announced.
            let before = counter.snapshot();
            let parts: Vec<u32> = e
                .index_signal()
                .next(Duration::ZERO)
                .await
                .into_iter()
                .filter_map(|(_, p)| p)
                .collect();
            e.follow_table_indexes("tab", Some(&parts)).await.unwrap();
            add(&mut f, counter.snapshot() - before);
        }
        write = w;
        follow = f;
        let mut batched: (u64, u64, u64) = (0, 0, 0);
        for i in n..2 * n {
            e.write("tab", put(i, gsis)).await.unwrap();
            if (i + 1) % 100 == 0 {
                let before = counter.snapshot();
                e.follow_table_indexes("tab", None).await.unwrap();
                add(&mut batched, counter.snapshot() - before);
            }
        }
        let per = |x: u64| x as f64 / n as f64;
        println!(
            "| {gsis} | {:.2} | {:.2} | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} |",
            per(write.1),
            per(write.0),
            per(follow.0),
            per(follow.1),
            per(follow.2),
            per(batched.0),
            per(batched.1),
            per(batched.2),
        );
    }
}

async fn propagation_lag() {
    println!("\n## Propagation lag: write acknowledged -> visible in an index Query (strata serve's follower loop, local store)\n");
    println!("| target writes/s | achieved writes/s | writes | lag p50 | lag p99 | lag max |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for rate in [200usize, 1000] {
        let dir = tempfile::tempdir().unwrap();
        let e = Arc::new(
            Engine::with_store(file_store(&dir), "bench", config())
                .await
                .unwrap(),
        );
        e.create_table(spec("tab", 1)).await.unwrap();
        let follower = tokio::spawn(follow_forever(Arc::clone(&e)));
        let secs = 5;
        let total = rate * secs;
        let acked: Arc<Vec<std::sync::Mutex<Option<Instant>>>> =
            Arc::new((0..total).map(|_| std::sync::Mutex::new(None)).collect());
        let seen: Arc<Vec<std::sync::Mutex<Option<Instant>>>> =
            Arc::new((0..total).map(|_| std::sync::Mutex::new(None)).collect());
        // The poller: every 2 ms, an index Query per value of a0, from
        // the last entry seen on.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let poller = {
            let (e, seen, done) = (Arc::clone(&e), Arc::clone(&seen), Arc::clone(&done));
            tokio::spawn(async move {
                let total = seen.len();
                let mut from: [i64; 10] = std::array::from_fn(|v| v as i64);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    #[allow(clippy::needless_range_loop)]
                    for v in 0..10 {
                        let page = e
                            .query_index(
                                "tab",
                                "gsi0",
                                &KeyValue::S(format!("v{v}")),
                                &SortKeyCondition::Ge(KeyValue::N(Number::from_i64(from[v]))),
                                true,
                                10_000,
                                None,
                                usize::MAX,
                                Consistency::Eventual,
                            )
                            .await
                            .unwrap();
                        let now = Instant::now();
                        for it in &page.items {
                            if let Some(Value::N(n)) = it.get("n") {
                                let i: usize = n.to_string().parse().unwrap();
                                let mut s = seen[i].lock().unwrap();
                                if s.is_none() {
                                    *s = Some(now);
                                }
                            }
                        }
                        // Writes land out of order: read on from the
                        // first one of this value not seen yet.
                        let mut next = from[v] as usize;
                        while next < total && seen[next].lock().unwrap().is_some() {
                            next += 10;
                        }
                        from[v] = next as i64;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut writers = Vec::new();
        for i in 0..total {
            tick.tick().await;
            let (e, acked) = (Arc::clone(&e), Arc::clone(&acked));
            writers.push(tokio::spawn(async move {
                e.write("tab", put(i, 1)).await.unwrap();
                *acked[i].lock().unwrap() = Some(Instant::now());
            }));
        }
        for w in writers {
            w.await.unwrap();
        }
        let achieved = total as f64 / start.elapsed().as_secs_f64();
        // Let the last ones through.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && seen.iter().any(|s| s.lock().unwrap().is_none()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        poller.await.unwrap();
        follower.abort();
        let mut lags: Vec<Duration> = (0..total)
            .filter_map(|i| {
                let a = (*acked[i].lock().unwrap())?;
                let s = (*seen[i].lock().unwrap())?;
                Some(s.saturating_duration_since(a))
            })
            .collect();
        let missing = total - lags.len();
        lags.sort();
        println!(
            "| {rate} | {achieved:.0} | {total}{} | {:.1} ms | {:.1} ms | {:.1} ms |",
            if missing > 0 {
                format!(" ({missing} never seen)")
            } else {
                String::new()
            },
            pct(&lags, 0.5),
            pct(&lags, 0.99),
            pct(&lags, 1.0),
        );
    }
}

async fn query_vs_table() {
    println!("\n## Query through a global index vs through the table (pages of 100 items, eventual, 20,000 items compacted)\n");
    println!("| read | pages | p50 | p99 | GETs per page |");
    println!("|---|---:|---:|---:|---:|");
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(
        Engine::with_store(file_store(&dir), "bench", config())
            .await
            .unwrap(),
    );
    // The table keyed like the index, so both queries read 100 items of one key.
    let mut table = spec("tab", 1);
    table.key_schema = KeySchema {
        hash: attr("a0", KeyType::S),
        range: Some(attr("n", KeyType::N)),
    };
    let mut base = spec("base", 1);
    base.partitions = Some(4);
    e.create_table(table).await.unwrap();
    e.create_table(base).await.unwrap();
    let n = 20_000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let ws = chunk.iter().map(|&i| {
            let e = Arc::clone(&e);
            async move {
                let it = item(i, 1);
                let tkey = ItemKey {
                    hash: KeyValue::S(format!("v{}", i % 10)),
                    range: Some(KeyValue::N(Number::from_i64(i as i64))),
                };
                e.write("tab", WriteRequest::single(WriteOp::put(tkey, it)))
                    .await
                    .unwrap();
                e.write("base", put(i, 1)).await.unwrap();
            }
        });
        futures::future::join_all(ws).await;
    }
    e.follow_all_indexes().await.unwrap();
    for t in ["tab", "base", "base!gsi0"] {
        e.compact(t).await.unwrap();
    }
    let pages = 300;
    drop(e);
    for (label, index) in [("table Query", false), ("global index Query", true)] {
        // A fresh instance (cold: nothing cached), then the same pages again (warm).
        let (store, c) = counting(file_store_at(dir.path()));
        let counter = c;
        let e = Engine::with_store(store, "bench", config()).await.unwrap();
        let mut lat = Vec::new();
        for round in 0..2 {
            let before = counter.snapshot();
            lat.clear();
            for p in 0..pages {
                let v = KeyValue::S(format!("v{}", p % 10));
                let from = SortKeyCondition::Ge(KeyValue::N(Number::from_i64((p * 50 % n) as i64)));
                let t0 = Instant::now();
                let page = if index {
                    e.query_index(
                        "base",
                        "gsi0",
                        &v,
                        &from,
                        true,
                        100,
                        None,
                        usize::MAX,
                        Consistency::Eventual,
                    )
                    .await
                } else {
                    e.query(
                        "tab",
                        &v,
                        &from,
                        true,
                        100,
                        None,
                        usize::MAX,
                        Consistency::Eventual,
                    )
                    .await
                }
                .unwrap();
                lat.push(t0.elapsed());
                assert!(!page.items.is_empty());
            }
            let gets = (counter.snapshot() - before).get as f64 / pages as f64;
            lat.sort();
            println!(
                "| {label}, {} | {pages} | {:.2} ms | {:.2} ms | {gets:.2} |",
                if round == 0 { "cold instance" } else { "warm" },
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
        }
    }
}

#[tokio::main]
async fn main() {
    requests_per_write().await;
    propagation_lag().await;
    query_vs_table().await;
}

//! The per-instance cache, measured (not a timed test):
//!
//!     cargo bench -p strata-api --bench cache
//!
//! Prints: cache-hit GetItem latency in the engine and through the API
//! handler; the item-cache hit ratio under a Zipf(1.0) key distribution with a
//! cache smaller than the table; and, with S3 latency injected (GET 10 ms,
//! PUT 20 ms, LIST 20 ms), eventual against strong GetItem on a warm instance
//! with object-store requests per operation.

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use strata_api::{Api, Caller};
use strata_engine::*;
use strata_store::counting::counting;
use strata_store::latency::{with_latency, LatencyProfile};

const ITEMS: usize = 20_000;

fn spec() -> TableSpec {
    TableSpec {
        name: "bench".into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: Some(8),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

fn key(i: usize) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("item{i:06}")),
        range: None,
    }
}

fn config(cache_bytes: u64) -> EngineConfig {
    EngineConfig {
        auto_compact: false,
        cache_bytes,
        ..EngineConfig::default()
    }
}

async fn load(store: &Arc<dyn ObjectStore>) {
    let e = Arc::new(
        Engine::with_store(Arc::clone(store), "bench", config(64 << 20))
            .await
            .unwrap(),
    );
    e.create_table(spec()).await.unwrap();
    let tasks = (0..32).map(|c| {
        let e = Arc::clone(&e);
        tokio::spawn(async move {
            for i in (c..ITEMS).step_by(32) {
                let item = Item::from([
                    ("pk".to_string(), Value::S(format!("item{i:06}"))),
                    ("payload".to_string(), Value::S("x".repeat(180))),
                ]);
                e.write("bench", WriteRequest::single(WriteOp::put(key(i), item)))
                    .await
                    .unwrap();
            }
        })
    });
    futures::future::join_all(tasks).await;
    e.compact("bench").await.unwrap();
}

fn pct(lat: &mut [Duration], p: f64) -> String {
    lat.sort();
    let d = lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn get_body(i: usize, strong: bool) -> Vec<u8> {
    format!(
        r#"{{"TableName":"bench","Key":{{"pk":{{"S":"item{i:06}"}}}},"ConsistentRead":{strong}}}"#
    )
    .into_bytes()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let base: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    load(&base).await;
    let caller = Caller {
        region: "us-east-1".into(),
        access_key: None,
        host: None,
        user: None,
    };
    let mut rows: Vec<[String; 6]> = Vec::new();

    // 1. Cache hits, no latency: engine and API handler.
    let e = Arc::new(
        Engine::with_store(Arc::clone(&base), "bench", config(256 << 20))
            .await
            .unwrap(),
    );
    for i in 0..ITEMS {
        e.get("bench", &key(i), Consistency::Eventual)
            .await
            .unwrap();
    }
    let mut lat = Vec::new();
    for n in 0..200_000 {
        let t = Instant::now();
        e.get("bench", &key(n * 7919 % ITEMS), Consistency::Eventual)
            .await
            .unwrap()
            .unwrap();
        lat.push(t.elapsed());
    }
    rows.push([
        "engine GetItem eventual, cache hit".into(),
        "200000".into(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        "-".into(),
        "0 requests".into(),
    ]);
    let api = Api::new(Arc::clone(&e), "us-east-1");
    let target = Some("DynamoDB_20120810.GetItem");
    let mut lat = Vec::new();
    for n in 0..100_000 {
        let body = get_body(n * 7919 % ITEMS, false);
        let t = Instant::now();
        let r = api.handle(target, &caller, &body).await;
        lat.push(t.elapsed());
        assert_eq!(r.status, 200);
    }
    rows.push([
        "API GetItem eventual, cache hit (JSON in and out)".into(),
        "100000".into(),
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        "-".into(),
        "0 requests".into(),
    ]);

    // 2. Hit ratio under Zipf(1.0) with a cache much smaller than the table.
    let small = Engine::with_store(Arc::clone(&base), "bench", config(4 << 20))
        .await
        .unwrap();
    let zipf = Zipf::new(ITEMS as f64, 1.0).unwrap();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    for _ in 0..200_000 {
        let i = zipf.sample(&mut rng) as usize - 1;
        small
            .get("bench", &key(i), Consistency::Eventual)
            .await
            .unwrap();
    }
    let items = small
        .cache_stats()
        .into_iter()
        .find(|s| s.name == "items")
        .unwrap();
    let blocks = small
        .cache_stats()
        .into_iter()
        .find(|s| s.name == "blocks")
        .unwrap();
    rows.push([
        format!(
            "Zipf(1.0) over {ITEMS} items, 4 MiB cache (~{} KiB of items)",
            items.capacity >> 10
        ),
        "200000".into(),
        "-".into(),
        "-".into(),
        format!(
            "items {:.1}%, blocks {:.1}%",
            items.hit_ratio() * 100.0,
            blocks.hit_ratio() * 100.0
        ),
        format!("{} evictions", items.evictions + blocks.evictions),
    ]);

    // 3. S3-like latency: eventual vs strong on a warm instance, through the API.
    let (slow, _) = with_latency(
        Arc::clone(&base),
        LatencyProfile {
            get: Duration::from_millis(10),
            put: Duration::from_millis(20),
            list: Duration::from_millis(20),
            head: Duration::from_millis(10),
            delete: Duration::from_millis(20),
        },
    );
    let (counted, counter) = counting(slow);
    let warm = Arc::new(
        Engine::with_store(counted, "bench", config(256 << 20))
            .await
            .unwrap(),
    );
    let api = Api::new(Arc::clone(&warm), "us-east-1");
    for i in 0..2000 {
        api.handle(target, &caller, &get_body(i, true)).await;
    }
    for (label, strong, n) in [
        ("API GetItem eventual, warm, S3 latency", false, 2000usize),
        ("API GetItem strong, warm, S3 latency", true, 200),
    ] {
        let before = counter.snapshot();
        let mut lat = Vec::new();
        for j in 0..n {
            let body = get_body(j % 2000, strong);
            let t = Instant::now();
            let r = api.handle(target, &caller, &body).await;
            lat.push(t.elapsed());
            assert_eq!(r.status, 200);
        }
        let c = counter.snapshot() - before;
        rows.push([
            label.into(),
            n.to_string(),
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            "-".into(),
            format!(
                "GET {:.3}/op, LIST {:.3}/op",
                c.get as f64 / n as f64,
                c.list as f64 / n as f64
            ),
        ]);
    }

    println!();
    println!("| measurement | ops | p50 | p99 | hit ratio | store requests |");
    println!("|---|---:|---:|---:|---:|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r[0], r[1], r[2], r[3], r[4], r[5]
        );
    }
    println!("\nItems ~200 B, {ITEMS} items in runs (compacted), 8 partitions, staleness bound 1 s; 2-core machine.");
}

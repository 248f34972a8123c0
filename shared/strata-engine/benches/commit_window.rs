//! The commit window: PUTs per write, throughput and latency against the
//! window a partition's group commit waits for company.
//!
//!     cargo bench -p strata-engine --bench commit_window
//!
//! Clients write in a closed loop (each waits for its write, then a pause)
//! to one partition of a store with S3 Standard's PUT latency (20 ms,
//! `LatencyProfile::s3_like`); requests are counted. Prices: S3
//! Standard $5.00 and S3 Express One Zone $1.13 per million PUTs; DynamoDB
//! on-demand $0.625 per million write units (public price lists,
//! us-east-1, 2026).

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::memory::InMemory;
use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::counting;
use strata_store::latency::{with_latency, LatencyProfile};

/// Each client's pause between writes.
const THINK: Duration = Duration::from_millis(10);
const RUN: Duration = Duration::from_secs(3);

fn spec() -> TableSpec {
    TableSpec {
        name: "tbl".into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: Some(1),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

struct Row {
    window_ms: u64,
    writes: u64,
    puts: u64,
    p50: Duration,
    p99: Duration,
}

async fn run(clients: usize, window: Duration) -> Row {
    let (counted, counter) = counting(Arc::new(InMemory::new()));
    let (slow, _) = with_latency(counted, LatencyProfile::s3_like());
    let store: Arc<dyn ObjectStore> = slow;
    let config = EngineConfig {
        commit_window: window,
        auto_compact: false,
        ..EngineConfig::default()
    };
    let e = Arc::new(Engine::with_store(store, "bench", config).await.unwrap());
    e.create_table(spec()).await.unwrap();
    let before = counter.snapshot();
    let deadline = Instant::now() + RUN;
    let clients = (0..clients).map(|c| {
        let e = Arc::clone(&e);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let item = Item::from([
                    ("pk".to_string(), Value::S(format!("c{c}-{i}"))),
                    ("v".to_string(), Value::S("x".repeat(100))),
                ]);
                let key = ItemKey {
                    hash: KeyValue::S(format!("c{c}-{i}")),
                    range: None,
                };
                let t = Instant::now();
                e.write("tbl", WriteRequest::single(WriteOp::put(key, item)))
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                i += 1;
                tokio::time::sleep(THINK).await;
            }
            latencies
        })
    });
    let mut latencies: Vec<Duration> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flat_map(|r| r.unwrap())
        .collect();
    latencies.sort();
    let c = counter.snapshot() - before;
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Row {
        window_ms: window.as_millis() as u64,
        writes: latencies.len() as u64,
        puts: c.put,
        p50: at(0.50),
        p99: at(0.99),
    }
}

#[tokio::main]
async fn main() {
    println!(
        "commit window: clients writing with {} ms between a client's writes, one partition, PUT 20 ms, {} s each",
        THINK.as_millis(),
        RUN.as_secs()
    );
    println!(
        "| clients | window | writes/s | writes per PUT | p50 | p99 | $ per M writes, S3 Standard | $ per M writes, S3 Express |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for clients in [1, 4, 64] {
        for ms in [0, 5, 20, 50] {
            let r = run(clients, Duration::from_millis(ms)).await;
            print_row(clients, &r);
        }
    }
    println!("(DynamoDB on-demand: $0.63 per million writes of up to 1 KB)");
}

fn print_row(clients: usize, r: &Row) {
    let per_put = r.writes as f64 / r.puts.max(1) as f64;
    println!(
        "| {clients} | {} ms | {:.0} | {:.1} | {:.1} ms | {:.1} ms | ${:.2} | ${:.2} |",
        r.window_ms,
        r.writes as f64 / RUN.as_secs_f64(),
        per_put,
        r.p50.as_secs_f64() * 1000.0,
        r.p99.as_secs_f64() * 1000.0,
        5.0 / per_put,
        1.13 / per_put,
    );
}

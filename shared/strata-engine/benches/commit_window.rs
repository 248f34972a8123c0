//! The commit window: PUTs per write and write latency by rate, partitions,
//! window and the log store's PUT latency.
//!
//!     cargo bench -p strata-engine --bench commit_window
//!
//! Writes arrive open-loop (a Poisson process at the given total rate) at
//! one server, spread over a table's partitions by key; the store is memory
//! with S3 Standard's latency (PUT 20 ms, GET 10 ms) or S3 Express-like
//! latency (PUT 5 ms, GET 3 ms); requests are counted. The run is in virtual
//! time (tokio's paused clock): latencies are store round trips and waiting,
//! never this machine's CPU, so 10,000 writes/s is simulated faithfully on
//! two cores and the table is the same on every run.
//!
//! Each cell: PUTs per write · p50 / p99 latency. A log PUT costs $5.00 per
//! million on S3 Standard and $1.13 on S3 Express One Zone; DynamoDB
//! on-demand charges $0.625 per million writes of up to 1 KB (public price
//! lists, us-east-1).

mod common;

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_engine::*;
use strata_store::counting::counting;
use strata_store::latency::{with_latency, LatencyProfile};

const WRITES: usize = 2_000;
const WINDOWS_MS: [u64; 4] = [0, 5, 20, 50];

/// A put of one 1 KB item.
fn put(name: String) -> WriteRequest {
    common::put(name, vec![("v", Value::S("x".repeat(1000)))])
}

/// PUTs per write, p50 and p99.
async fn run(
    profile: LatencyProfile,
    rate: f64,
    partitions: u32,
    window_ms: u64,
) -> (f64, Duration, Duration) {
    let (counted, counter) = counting(Arc::new(InMemory::new()));
    let (slow, _) = with_latency(counted, profile);
    let store: Arc<dyn ObjectStore> = slow;
    let config = EngineConfig {
        commit_window: Duration::from_millis(window_ms),
        auto_compact: false,
        ..EngineConfig::default()
    };
    let e = Arc::new(Engine::with_store_unchecked(store, "bench", config));
    e.create_table(common::spec("tbl", partitions))
        .await
        .unwrap();
    // Every partition loaded (its first write reads its manifest and log).
    let warm = (0..8 * partitions).map(|i| {
        let e = Arc::clone(&e);
        async move { e.write("tbl", put(format!("warm{i}"))).await.unwrap() }
    });
    futures::future::join_all(warm).await;
    let mut rng = SmallRng::seed_from_u64(42);
    let before = counter.snapshot();
    let mut writes = Vec::with_capacity(WRITES);
    // Arrival times on one clock: the timer's 1 ms ticks release every
    // write due by then together, so rates above 1,000/s stay true.
    let (start, mut due) = (tokio::time::Instant::now(), 0.0);
    for i in 0..WRITES {
        due += -(1.0 - rng.random::<f64>()).ln() / rate;
        tokio::time::sleep_until(start + Duration::from_secs_f64(due)).await;
        let req = put(format!("k{i}-{}", rng.random::<u32>()));
        let e = Arc::clone(&e);
        writes.push(tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            e.write("tbl", req).await.unwrap();
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(WRITES);
    for w in writes {
        latencies.push(w.await.unwrap());
    }
    latencies.sort();
    let puts = (counter.snapshot() - before).put;
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (puts as f64 / WRITES as f64, at(0.50), at(0.99))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    println!(
        "commit window: {WRITES} writes of 1 KB per cell, open loop, one server, virtual time"
    );
    println!("cells: PUTs per write · p50 / p99 write latency");
    println!();
    println!("| log PUT | writes/s | partitions | window 0 ms | 5 ms | 20 ms | 50 ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, profile) in [
        ("S3 Standard, 20 ms", LatencyProfile::s3_like()),
        ("S3 Express, 5 ms", LatencyProfile::s3_express_like()),
    ] {
        for rate in [100.0, 1_000.0, 10_000.0] {
            for partitions in [1, 8, 64] {
                let cells: Vec<String> = WINDOWS_MS
                    .iter()
                    .map(|w| {
                        let (per_write, p50, p99) = rt.block_on(run(profile, rate, partitions, *w));
                        format!(
                            "{per_write:.2} · {:.0} / {:.0} ms",
                            p50.as_secs_f64() * 1e3,
                            p99.as_secs_f64() * 1e3
                        )
                    })
                    .collect();
                println!(
                    "| {name} | {rate:.0} | {partitions} | {} |",
                    cells.join(" | ")
                );
            }
        }
    }
    println!();
    println!("$ per million writes = PUTs per write x $5.00 (S3 Standard) or x $1.13 (S3 Express); DynamoDB on-demand: $0.625");
}

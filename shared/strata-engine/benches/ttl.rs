//! Time to live: what the expiry sweep costs, by the share of a table that
//! has expired.
//!
//!     cargo bench -p strata-engine --bench ttl
//!
//! A table of 100,000 items of ~100 bytes over 4 partitions, compacted into
//! SSTs; a share of them carries an expiry in the past, the rest one in the
//! future. One sweep (`Engine::expire`) deletes the expired ones; a second
//! sweep right after finds nothing new (it remembers what it read); a new
//! instance's sweep reads the SSTs whose deleted items are not compacted
//! away yet; after the compaction that folds the deletes, nothing. Requests are counted on the store
//! (memory: the deletes/s column is this machine's CPU, the request counts
//! are what S3 would be sent). Each delete is a conditional delete; the
//! deletes of a partition are sent together, so group commit packs them
//! into few log segments (one PUT each).

mod common;

use std::sync::Arc;
use std::time::Instant;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use strata_engine::ttl::TtlSetting;
use strata_engine::*;
use strata_store::counting::counting;

const ITEMS: u64 = 100_000;
const NOW: u64 = 1_900_000_000;

fn put(i: u64, expired: bool) -> WriteRequest {
    let exp = if expired { NOW - 10 } else { NOW + 86_400 };
    common::put(
        format!("item{i:08}"),
        vec![
            ("v", Value::S("x".repeat(80))),
            ("exp", Value::N(number::Number::from_i64(exp as i64))),
        ],
    )
}

async fn run(expired_every: u64) -> Vec<String> {
    let (counted, counter) = counting(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = counted;
    let config = EngineConfig {
        auto_compact: false,
        ..EngineConfig::default()
    };
    let e = Arc::new(Engine::with_store_unchecked(
        Arc::clone(&store),
        "bench",
        config.clone(),
    ));
    e.create_table(common::spec("tbl", 4)).await.unwrap();
    e.update_table("tbl", |d| {
        if let Some(meta) = d.meta.as_object_mut() {
            TtlSetting {
                enabled: true,
                attribute_name: "exp".into(),
                changed_ms: 0,
                settled: true,
            }
            .store(meta);
        }
        Ok(())
    })
    .await
    .unwrap();
    for chunk in (0..ITEMS).collect::<Vec<_>>().chunks(2_000) {
        let writes = chunk.iter().map(|i| {
            let e = Arc::clone(&e);
            let req = put(*i, i % expired_every == 0);
            async move { e.write("tbl", req).await.unwrap() }
        });
        futures::future::join_all(writes).await;
    }
    e.compact("tbl").await.unwrap();
    let before = counter.snapshot();
    let t = Instant::now();
    let r = e.expire_at("tbl", NOW).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    let first = counter.snapshot() - before;
    let before = counter.snapshot();
    let again = e.expire_at("tbl", NOW + 1).await.unwrap();
    let second = counter.snapshot() - before;
    assert_eq!(again.deleted, 0);
    // A new instance (a cold Lambda) knows only the manifests: SSTs whose
    // expired items are deleted, but not yet compacted away, are read again.
    // (Each loads its views first: a sweep when nothing is due.)
    let cold = Engine::with_store_unchecked(Arc::clone(&store), "bench", config.clone());
    cold.expire_at("tbl", 0).await.unwrap();
    let before = counter.snapshot();
    cold.expire_at("tbl", NOW + 1).await.unwrap();
    let cold_requests = counter.snapshot() - before;
    e.compact("tbl").await.unwrap();
    let compacted = Engine::with_store_unchecked(store, "bench", config);
    compacted.expire_at("tbl", 0).await.unwrap();
    let before = counter.snapshot();
    compacted.expire_at("tbl", NOW + 1).await.unwrap();
    let after_compaction = counter.snapshot() - before;
    let requests = first.get + first.put + first.list + first.head;
    vec![
        format!("{:.0}%", 100.0 / expired_every as f64),
        r.deleted.to_string(),
        format!("{secs:.2}"),
        format!("{:.0}", r.deleted as f64 / secs),
        r.ssts_read.to_string(),
        format!("{} / {}", first.get, first.put),
        format!("{:.4}", requests as f64 / r.deleted.max(1) as f64),
        format!("{}", second.get + second.put + second.list),
        format!(
            "{}",
            cold_requests.get + cold_requests.put + cold_requests.list
        ),
        format!(
            "{}",
            after_compaction.get + after_compaction.put + after_compaction.list
        ),
    ]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let header = [
        "expired",
        "deleted",
        "sweep s",
        "deletes/s",
        "SSTs read",
        "GETs / PUTs",
        "requests/expired item",
        "next sweep's requests",
        "a cold instance's",
        "after compaction",
    ];
    println!(
        "TTL sweep over {ITEMS} items (4 partitions, compacted), memory store, counted requests\n"
    );
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for every in [100, 10, 1] {
        let row = rt.block_on(run(every));
        println!("| {} |", row.join(" | "));
    }
}

//! On-demand backups: how long CreateBackup and a restore from it take,
//! and what they send to the store, by table size.
//!
//!     cargo bench -p strata-engine --bench backups              # 100 MB
//!     STRATA_BENCH_BACKUP_MB=100,2048 cargo bench -p strata-engine --bench backups
//!
//! A table of 1 KB items over 8 partitions on a local directory (a temp
//! dir), loaded through ordinary writes and compacted; a few more writes
//! sit in the log tails. CreateBackup flushes each tail and writes one
//! record (no data is copied); the restore into a table of the same
//! partitions copies each pinned SST by the store (a hard link here, S3
//! CopyObject there; counted as PUTs) and publishes the manifests. (A split
//! table's restore reads and ingests instead: 113 MB/s for 2 GB when this
//! bench measured that path, see docs/benchmarks.md.) Requests are counted
//! on the store.

mod common;

use std::sync::Arc;
use std::time::Instant;

use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::counting;

/// A put of one 1 KB item.
fn put(i: u64) -> WriteRequest {
    common::put(
        format!("item{i:010}"),
        vec![("v", Value::S("x".repeat(1000)))],
    )
}

async fn run(mb: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let (counted, counter) = counting(Arc::new(local));
    let store: Arc<dyn ObjectStore> = counted;
    let e = Arc::new(Engine::with_store_unchecked(
        store,
        "bench",
        EngineConfig::default(),
    ));
    e.create_table(common::spec("src", 8)).await.unwrap();
    let items = mb * 1000;
    let t = Instant::now();
    let ids: Vec<u64> = (0..items).collect();
    for chunk in ids.chunks(4_000) {
        let writes = chunk.iter().map(|i| {
            let e = Arc::clone(&e);
            let req = put(*i);
            async move { e.write("src", req).await.unwrap() }
        });
        futures::future::join_all(writes).await;
    }
    e.compact("src").await.unwrap();
    for i in items..items + 1_000 {
        e.write("src", put(i)).await.unwrap();
    }
    let load = t.elapsed().as_secs_f64();

    let before = counter.snapshot();
    let t = Instant::now();
    let record = e
        .create_backup("src", "00000000000001-bench", "bench")
        .await
        .unwrap();
    let backup_secs = t.elapsed().as_secs_f64();
    let backup_req = counter.snapshot() - before;
    assert_eq!(record.items, items + 1_000);

    e.create_table(common::spec("dst", 8)).await.unwrap();
    let before = counter.snapshot();
    let t = Instant::now();
    let restored = e
        .restore_backup("00000000000001-bench", "dst")
        .await
        .unwrap();
    let restore_secs = t.elapsed().as_secs_f64();
    let restore_req = counter.snapshot() - before;
    assert_eq!(restored, items + 1_000);
    vec![
        format!("{mb} MB"),
        format!("{load:.0}"),
        format!("{backup_secs:.2}"),
        format!("{} / {}", backup_req.get, backup_req.put),
        format!("{restore_secs:.3}"),
        format!("{:.0}", restored as f64 / restore_secs),
        format!("{:.0}", (mb as f64) / restore_secs),
        format!("{} / {}", restore_req.get, restore_req.put),
    ]
}

fn main() {
    let sizes: Vec<u64> = std::env::var("STRATA_BENCH_BACKUP_MB")
        .unwrap_or_else(|_| "100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let header = [
        "table",
        "load s",
        "CreateBackup s",
        "its GETs / PUTs",
        "restore s",
        "restore items/s",
        "restore MB/s",
        "its GETs / PUTs",
    ];
    println!("On-demand backup and restore, 1 KB items, 8 partitions, local directory\n");
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for mb in sizes {
        let row = rt.block_on(run(mb));
        println!("| {} |", row.join(" | "));
    }
}

//! On-demand backups: a backup holds every write acknowledged before it,
//! pins its SSTs through GC, DeleteTable and the sweep of dead
//! incarnations, restores into a new table item for item, and once deleted
//! lets GC take what it pinned.

mod common;

use std::sync::Arc;
use std::time::Duration;

use strata_engine::*;

use common::*;

fn config() -> EngineConfig {
    EngineConfig {
        gc_grace: Duration::from_millis(400),
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        default_partitions: 3,
        ..test_config()
    }
}

fn sorted(mut items: Vec<Item>) -> Vec<Item> {
    items.sort_by_key(|i| format!("{:?}", item_key(i)));
    items
}

/// Restores backup `id` into a new table `target` (the same key schema).
async fn restore(e: &Engine, id: &str, target: &str) -> u64 {
    e.create_table(spec(target)).await.unwrap();
    e.restore_backup(id, target).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_the_table_as_it_was() {
    for b in backends() {
        let store = b.store();
        let e = engine(&store, config()).await;
        let other = engine(&store, config()).await;
        e.create_table(spec("orders")).await.unwrap();
        for i in 0..60 {
            put(
                &e,
                "orders",
                item(&format!("p{}", i % 7), i, &[("v", n(i))]),
            )
            .await;
        }
        e.compact("orders").await.unwrap();
        // Some in SSTs, some only in the log tail, written by another instance.
        for i in 60..90 {
            put(
                &other,
                "orders",
                item(&format!("p{}", i % 7), i, &[("v", n(i))]),
            )
            .await;
        }
        let snapshot = sorted(scan_all(&e, "orders", 1000).await);
        let record = e
            .create_backup("orders", "0001-b", "nightly")
            .await
            .unwrap();
        assert_eq!(record.items, 90, "[{}]", b.name);
        // Later writes are not in it.
        for i in 0..30 {
            e.write(
                "orders",
                WriteRequest::single(WriteOp::delete(key(&format!("p{}", i % 7), i))),
            )
            .await
            .unwrap();
        }
        put(&e, "orders", item("late", 1, &[])).await;
        let items = restore(&e, "0001-b", "copy").await;
        assert_eq!(items, 90, "[{}]", b.name);
        assert_eq!(
            sorted(scan_all(&e, "copy", 1000).await),
            snapshot,
            "[{}]",
            b.name
        );
        assert_eq!(
            e.list_backups().await.unwrap(),
            vec![record],
            "[{}]",
            b.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_pins_its_ssts_until_it_is_deleted() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        max_runs: 1, // every flush rewrites the one level: old SSTs are garbage at once
        ..config()
    };
    let e = engine(&store, config).await;
    e.create_table(spec("tbl")).await.unwrap();
    for i in 0..40 {
        put(&e, "tbl", item("a", i, &[("v", n(i))])).await;
    }
    e.compact("tbl").await.unwrap();
    let snapshot = sorted(scan_all(&e, "tbl", 1000).await);
    let incarnation = e.describe_table("tbl").await.unwrap().incarnation;
    e.create_backup("tbl", "0002-b", "before").await.unwrap();
    for round in 0..3 {
        for i in 0..40 {
            put(&e, "tbl", item("a", i, &[("v", n(i * 100 + round))])).await;
        }
        e.compact("tbl").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gc = e.gc("tbl").await.unwrap();
    assert!(gc.runs > 0, "GC took the SSTs no backup pins: {gc:?}");
    // Deleted, purged and swept: the pinned SSTs stay.
    e.delete_table("tbl").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    e.sweep_dead_incarnations().await.unwrap();
    assert_eq!(restore(&e, "0002-b", "back").await, 40);
    assert_eq!(sorted(scan_all(&e, "back", 1000).await), snapshot);
    assert!(!find_objects(&store, &incarnation).await.is_empty());
    // Once the backup is gone, so is what it pinned.
    assert!(e.delete_backup("0002-b").await.unwrap().is_some());
    assert!(e.backup("0002-b").await.unwrap().is_none());
    e.sweep_dead_incarnations().await.unwrap();
    assert_eq!(
        find_objects(&store, &incarnation).await,
        Vec::<object_store::path::Path>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_split_table_restores_too() {
    // A split table's SSTs are read and ingested (an unsplit one's copied).
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let e = engine(&store, config()).await;
    e.create_table(spec("split_src")).await.unwrap();
    for i in 0..120 {
        put(&e, "split_src", item(&format!("k{i}"), i, &[("v", n(i))])).await;
    }
    e.compact("split_src").await.unwrap();
    let first = e.partitions("split_src").await.unwrap()[0];
    e.split_partition("split_src", first).await.unwrap();
    e.compact("split_src").await.unwrap();
    for i in 120..140 {
        put(&e, "split_src", item(&format!("k{i}"), i, &[("v", n(i))])).await;
    }
    let snapshot = sorted(scan_all(&e, "split_src", 1000).await);
    e.create_backup("split_src", "0003-b", "split")
        .await
        .unwrap();
    assert_eq!(restore(&e, "0003-b", "split_copy").await, 140);
    assert_eq!(sorted(scan_all(&e, "split_copy", 1000).await), snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_by_copy_reads_no_data() {
    // What makes it seconds at any size: the SSTs are copied by the store
    // (one request each), none is read, whatever the table holds.
    let (counted, counter) =
        strata_store::counting::counting(Arc::new(object_store::memory::InMemory::new()));
    let store: Arc<dyn object_store::ObjectStore> = counted;
    let config = EngineConfig {
        sst_bytes: 2048,
        ..config()
    };
    let e = engine(&store, config).await;
    e.create_table(spec("big")).await.unwrap();
    for i in 0..300 {
        put(
            &e,
            "big",
            item(&format!("k{i}"), i, &[("v", Value::S("x".repeat(200)))]),
        )
        .await;
    }
    e.compact("big").await.unwrap();
    let record = e.create_backup("big", "0004-b", "big").await.unwrap();
    let ssts: usize = record
        .partitions
        .iter()
        .map(|(_, m)| m.ssts().count())
        .sum();
    assert!(ssts >= 20, "{ssts} SSTs");
    e.create_table(spec("big_copy")).await.unwrap();
    let before = counter.snapshot();
    assert_eq!(e.restore_backup("0004-b", "big_copy").await.unwrap(), 300);
    let cost = counter.snapshot() - before;
    assert_eq!(
        cost.put as usize,
        ssts + record.partitions.len(),
        "a copy per SST, a manifest per partition"
    );
    assert!(cost.get < 10, "no SST is read: {cost:?}");
    assert_eq!(scan_all(&e, "big_copy", 1000).await.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_being_restored_from_is_not_deleted() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let e = engine(&store, config()).await;
    e.create_table(spec("src")).await.unwrap();
    put(&e, "src", item("a", 1, &[])).await;
    e.create_backup("src", "0005-b", "inuse").await.unwrap();
    // A restore marks the backup in use: DeleteBackup is refused until it ends.
    let (_, mark) = e.begin_backup_use("0005-b", "dst").await.unwrap().unwrap();
    assert!(matches!(
        e.delete_backup("0005-b").await,
        Err(Error::Validation(_))
    ));
    // Two restores into one target each have their own mark.
    let (_, second) = e.begin_backup_use("0005-b", "dst").await.unwrap().unwrap();
    e.end_backup_use(&second).await.unwrap();
    assert!(
        e.delete_backup("0005-b").await.is_err(),
        "the first mark still holds"
    );
    e.end_backup_use(&mark).await.unwrap();
    assert!(e.delete_backup("0005-b").await.unwrap().is_some());
    assert!(e.begin_backup_use("0005-b", "dst").await.unwrap().is_none());

    // A mark left by a restore that died (its table gone, the mark old)
    // does not hold a backup for ever.
    e.create_backup("src", "0006-b", "orphan").await.unwrap();
    e.begin_backup_use("0006-b", "never_made")
        .await
        .unwrap()
        .unwrap();
    assert!(
        e.delete_backup("0006-b").await.is_err(),
        "a fresh mark holds"
    );
    let later = engine(
        &store,
        EngineConfig {
            clock: strata_engine::clock::Clock::skewed(3_600_000_000),
            ..config()
        },
    )
    .await;
    assert!(later.delete_backup("0006-b").await.unwrap().is_some());
}

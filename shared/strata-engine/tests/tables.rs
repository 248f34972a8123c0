//! Tables across instances, scans in segments, background compaction, and
//! the engine's own validation of what it is asked to store.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::*;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_are_created_listed_described_and_deleted_across_instances() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            catalog_staleness: Duration::ZERO,
            ..test_config()
        };
        let a = engine(&store, config.clone()).await;
        let other = engine(&store, config.clone()).await;
        let d = a
            .create_table(TableSpec {
                partitions: Some(3),
                ..spec("orders")
            })
            .await
            .unwrap();
        assert_eq!(d.partitions, 3);
        assert!(
            matches!(
                other.create_table(spec("orders")).await,
                Err(Error::TableExists(_))
            ),
            "[{}]",
            b.name
        );
        other.create_table(spec("users")).await.unwrap();
        assert_eq!(
            a.list_tables().await.unwrap(),
            ["orders", "users"],
            "[{}]",
            b.name
        );
        assert_eq!(other.describe_table("orders").await.unwrap(), d);
        put(&other, "orders", item("o", 1, &[])).await;
        a.delete_table("orders").await.unwrap();
        assert!(
            matches!(
                other.describe_table("orders").await,
                Err(Error::TableNotFound(_))
            ),
            "[{}]",
            b.name
        );
        assert!(matches!(
            other.get("orders", &key("o", 1), Consistency::Strong).await,
            Err(Error::TableNotFound(_))
        ));
        assert_eq!(a.list_tables().await.unwrap(), ["users"], "[{}]", b.name);
        assert!(matches!(
            a.delete_table("orders").await,
            Err(Error::TableNotFound(_))
        ));
        assert!(matches!(
            a.describe_table("no such table!").await,
            Err(Error::TableNotFound(_))
        ));
        assert!(matches!(
            a.create_table(spec("x")).await,
            Err(Error::Validation(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_table_never_sees_old_data() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            catalog_staleness: Duration::ZERO,
            ..test_config()
        };
        let a = engine(&store, config.clone()).await;
        a.create_table(spec("tbl")).await.unwrap();
        for i in 0..10 {
            put(&a, "tbl", item("p", i, &[])).await;
        }
        a.compact("tbl").await.unwrap();
        put(&a, "tbl", item("p", 99, &[])).await;
        a.delete_table("tbl").await.unwrap();
        // Re-created at once, before the old data can have been purged.
        let again = a.create_table(spec("tbl")).await.unwrap();
        assert_eq!(again.version, 3);
        assert!(
            scan_all(&a, "tbl", 5).await.is_empty(),
            "[{}] old data visible",
            b.name
        );
        let other = engine(&store, config).await;
        assert!(get(&other, "tbl", &key("p", 1)).await.is_none());
        assert!(
            scan_all(&other, "tbl", 5).await.is_empty(),
            "[{}] old data visible to a new instance",
            b.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segmented_scans_cover_the_table_exactly_once() {
    let b = &backends()[0];
    let store = b.store();
    let e = engine(
        &store,
        EngineConfig {
            default_partitions: 5,
            ..test_config()
        },
    )
    .await;
    e.create_table(spec("tbl")).await.unwrap();
    for i in 0..200 {
        put(&e, "tbl", item(&format!("u{}", i % 37), i, &[])).await;
    }
    e.compact("tbl").await.unwrap();
    for total in [1u32, 2, 3, 5, 8] {
        let mut seen = BTreeMap::new();
        for seg in 0..total {
            let mut after: Option<ItemKey> = None;
            loop {
                let p = e
                    .scan(
                        "tbl",
                        Some((seg, total)),
                        after.as_ref(),
                        17,
                        usize::MAX,
                        Consistency::Eventual,
                    )
                    .await
                    .unwrap();
                for it in &p.items {
                    *seen.entry(format!("{:?}", item_key(it))).or_insert(0) += 1;
                }
                match p.last_key {
                    Some(k) => after = Some(item_key(&k)),
                    None => break,
                }
            }
        }
        assert_eq!(seen.len(), 200, "{total} segments");
        assert!(
            seen.values().all(|n| *n == 1),
            "{total} segments: an item was returned twice"
        );
    }
    assert!(matches!(
        e.scan(
            "tbl",
            Some((3, 3)),
            None,
            10,
            usize::MAX,
            Consistency::Eventual
        )
        .await,
        Err(Error::Validation(_))
    ));
    // A byte budget ends a page early, with a key to resume from.
    let p = e
        .scan("tbl", None, None, 1000, 300, Consistency::Eventual)
        .await
        .unwrap();
    assert!(p.items.len() < 200 && p.last_key.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_starts_by_itself_past_its_threshold() {
    let b = &backends()[1];
    let store = b.store();
    let config = EngineConfig {
        default_partitions: 1,
        auto_compact: true,
        compact_after_segments: 10,
        ..test_config()
    };
    let e = engine(&store, config).await;
    e.create_table(spec("tbl")).await.unwrap();
    for i in 0..25 {
        put(&e, "tbl", item("p", i, &[])).await;
    }
    let mut folded = 0;
    for _ in 0..100 {
        folded = e.partition_stats("tbl").await.unwrap()[0].1;
        if folded >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        folded >= 10,
        "no background compaction: compacted_through = {folded}"
    );
    assert_eq!(scan_all(&e, "tbl", 7).await.len(), 25);
}

#[tokio::test]
async fn the_engine_refuses_what_dynamodb_refuses() {
    let b = &backends()[0];
    let store = b.store();
    let e = engine(&store, test_config()).await;
    e.create_table(spec("tbl")).await.unwrap();
    let write = |op: WriteOp| e.write("tbl", WriteRequest::single(op));
    let msg = |r: Result<Committed>| match r {
        Err(Error::Validation(m)) => m,
        other => panic!("expected a validation error, got {other:?}"),
    };

    let big = item("p", 1, &[("blob", Value::B(vec![0; 400 * 1024]))]);
    assert!(msg(write(WriteOp::put(key("p", 1), big)).await).contains("maximum allowed size"));

    assert!(
        msg(write(WriteOp::put(key("p", 2), item("p", 1, &[]))).await).contains("does not match")
    );

    let mut deep = Value::Null;
    for _ in 0..40 {
        deep = Value::L(vec![deep]);
    }
    assert!(
        msg(write(WriteOp::put(key("p", 1), item("p", 1, &[("d", deep)]))).await)
            .contains("Nesting")
    );

    let rekey: UpdateFn = Arc::new(|_| Ok(Some(item("other", 1, &[]))));
    assert!(msg(write(WriteOp::update(key("p", 1), rekey)).await).contains("part of the key"));

    let failing: UpdateFn =
        Arc::new(|_| Err("An operand in the update expression has an incorrect data type".into()));
    assert!(msg(write(WriteOp::update(key("p", 1), failing)).await).contains("incorrect data type"));

    let wrong_type = ItemKey {
        hash: KeyValue::N(Number::from_i64(1)),
        range: None,
    };
    assert!(msg(write(WriteOp::delete(wrong_type)).await).contains("does not match"));

    assert!(msg(e.write("tbl", WriteRequest::default()).await).contains("at least one"));
    // Nothing above was stored.
    assert!(scan_all(&e, "tbl", 10).await.is_empty());
}

/// object_store's S3 client retries a PUT after a 500; if the first attempt
/// had in fact succeeded, a conditional create then reports "already exists"
/// for our own object. Compaction and CreateTable must recognise their own
/// objects, not discard a run a published manifest needs.
#[tokio::test]
async fn own_creates_reported_as_conflicts_are_recognised() {
    use strata_store::faults::{with_faults, FaultPlan};
    let base: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let (faulty, faults) = with_faults(Arc::clone(&base), 3, FaultPlan::default());
    let faulty: Arc<dyn object_store::ObjectStore> = faulty;
    let e = engine(
        &faulty,
        EngineConfig {
            default_partitions: 1,
            ..test_config()
        },
    )
    .await;
    let conflicts_on = |path: &str| FaultPlan {
        conflict_after_success_rate: 1.0,
        kinds: vec![strata_store::RequestKind::Put],
        path_contains: path.to_string(),
        ..Default::default()
    };
    faults.set_plan(conflicts_on("/schema/"));
    e.create_table(spec("tbl"))
        .await
        .expect("our own create is not TableExists");
    faults.set_plan(conflicts_on("/log/"));
    for i in 0..10 {
        put(&e, "tbl", item("p", i, &[])).await;
    }
    faults.set_plan(conflicts_on("/manifest/"));
    let out = e.compact("tbl").await.unwrap();
    assert!(
        matches!(out[0], CompactionOutcome::Compacted { .. }),
        "{out:?}"
    );
    assert!(faults.injected().false_conflicts >= 12);
    faults.set_enabled(false);
    let fresh = engine(
        &base,
        EngineConfig {
            default_partitions: 1,
            ..test_config()
        },
    )
    .await;
    assert_eq!(
        scan_all(&fresh, "tbl", 4).await.len(),
        10,
        "the published manifest's run must exist"
    );
}

/// A writer that goes away mid-commit (a client disconnecting) does not fail
/// the other writes group-committed with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_writer_does_not_fail_its_group() {
    use strata_store::latency::{with_latency, LatencyProfile};
    let (slow, _) = with_latency(
        Arc::new(object_store::memory::InMemory::new()),
        LatencyProfile {
            put: Duration::from_millis(40),
            ..Default::default()
        },
    );
    let store: Arc<dyn object_store::ObjectStore> = slow;
    let e = Arc::new(
        engine(
            &store,
            EngineConfig {
                default_partitions: 1,
                ..test_config()
            },
        )
        .await,
    );
    e.create_table(spec("tbl")).await.unwrap();
    // A blocker holds the partition for one PUT; the victim queues first,
    // so it leads the next group, which takes in everyone queued behind it.
    let blocker = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { put(&e, "tbl", item("p", 100, &[])).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let victim = {
        let e = Arc::clone(&e);
        tokio::spawn(async move { put(&e, "tbl", item("p", 0, &[])).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    let others: Vec<_> = (1..10)
        .map(|i| {
            let e = Arc::clone(&e);
            tokio::spawn(async move {
                e.write(
                    "tbl",
                    WriteRequest::single(WriteOp::put(key("p", i), item("p", i, &[]))),
                )
                .await
            })
        })
        .collect();
    // The blocker's PUT ends at ~40 ms; abort the victim during the group's PUT.
    tokio::time::sleep(Duration::from_millis(50)).await;
    victim.abort();
    blocker.await.unwrap();
    for h in others {
        h.await
            .unwrap()
            .expect("a write batched with a cancelled one still commits");
    }
    assert!(scan_all(&e, "tbl", 100).await.len() >= 9);
}

/// Bounds a client controls never panic: a start key outside the condition
/// is DynamoDB's ValidationException, inverted bounds read nothing.
#[tokio::test]
async fn start_keys_outside_the_condition_are_refused() {
    let b = &backends()[0];
    let store = b.store();
    let e = engine(&store, test_config()).await;
    e.create_table(spec("tbl")).await.unwrap();
    for i in 0..10 {
        put(&e, "tbl", item("p", i, &[])).await;
    }
    let h = KeyValue::S("p".into());
    let nk = |v| KeyValue::N(Number::from_i64(v));
    for (cond, forward, start) in [
        (SortKeyCondition::Lt(nk(5)), true, 9),
        (SortKeyCondition::Lt(nk(5)), true, 5),
        (SortKeyCondition::Gt(nk(5)), false, 2),
        (SortKeyCondition::Between(nk(2), nk(4)), true, 7),
    ] {
        let err = e
            .query(
                "tbl",
                &h,
                &cond,
                forward,
                10,
                Some(&key("p", start)),
                usize::MAX,
                Consistency::Strong,
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("outside query boundaries"),
            "{cond:?} {start}: {err}"
        );
    }
    let empty = e
        .query(
            "tbl",
            &h,
            &SortKeyCondition::Between(nk(5), nk(1)),
            true,
            10,
            None,
            usize::MAX,
            Consistency::Strong,
        )
        .await
        .unwrap();
    assert!(empty.items.is_empty());
}

/// Objects of dead incarnations (a deleted table's, including writes from an
/// instance whose descriptor cache still named it) are swept after the grace
/// period; the live incarnation is untouched.
#[tokio::test]
async fn dead_incarnations_are_swept() {
    use futures::TryStreamExt;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let grace = EngineConfig {
        gc_grace: Duration::from_millis(50),
        clock_skew: Duration::ZERO,
        ..test_config()
    };
    let a = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::ZERO,
            ..grace.clone()
        },
    )
    .await;
    let late = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::from_secs(60),
            ..grace
        },
    )
    .await;
    a.create_table(spec("tbl")).await.unwrap();
    put(&late, "tbl", item("old", 1, &[])).await;
    let old = a.describe_table("tbl").await.unwrap().incarnation;
    a.delete_table("tbl").await.unwrap();
    put(&late, "tbl", item("old", 2, &[])).await; // still aimed at the old incarnation
    let new = a.create_table(spec("tbl")).await.unwrap().incarnation;
    put(&a, "tbl", item("new", 1, &[])).await;
    assert_eq!(
        a.sweep_dead_incarnations().await.unwrap(),
        0,
        "too recent to sweep"
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    a.sweep_dead_incarnations().await.unwrap();
    let left: Vec<String> = store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    assert!(
        !left.iter().any(|p| p.contains(&old)),
        "dead incarnation left behind: {left:?}"
    );
    assert!(left.iter().any(|p| p.contains(&new)));
    assert!(get(&a, "tbl", &key("new", 1)).await.is_some());
}

/// ItemCount and TableSizeBytes: the live items of the SSTs the manifests
/// list. Nothing before a flush; every item, at its DynamoDB size, after
/// one; deletes and rewrites settle once compaction merges them; a split
/// changes nothing (each child counts half of what it inherited).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_stats_follow_compaction_and_splits() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        default_partitions: 2,
        // Every flush merges into one level: the estimate is exact.
        max_runs: 1,
        ..test_config()
    };
    let e = engine(&store, config).await;
    e.create_table(spec("stats")).await.unwrap();
    let mut items: BTreeMap<i64, Item> = BTreeMap::new();
    for i in 0..30 {
        let it = item("p", i, &[("v", Value::S("x".repeat(i as usize * 10)))]);
        put(&e, "stats", it.clone()).await;
        items.insert(i, it);
    }
    let expect = |items: &BTreeMap<i64, Item>| LiveItems {
        items: items.len() as u64,
        bytes: items.values().map(|i| value::item_size(i) as u64).sum(),
    };
    assert_eq!(
        e.table_stats("stats").await.unwrap(),
        LiveItems::default(),
        "nothing flushed yet"
    );
    e.compact("stats").await.unwrap();
    assert_eq!(e.table_stats("stats").await.unwrap(), expect(&items));
    for i in 0..10 {
        e.write("stats", WriteRequest::single(WriteOp::delete(key("p", i))))
            .await
            .unwrap();
        items.remove(&i);
    }
    for i in 10..15 {
        let it = item("p", i, &[("v", Value::S("y".into()))]);
        put(&e, "stats", it.clone()).await;
        items.insert(i, it);
    }
    e.compact("stats").await.unwrap();
    assert_eq!(e.table_stats("stats").await.unwrap(), expect(&items));
    let before = e.table_stats("stats").await.unwrap();
    for part in e.partitions("stats").await.unwrap() {
        e.split_partition("stats", part).await.unwrap();
    }
    let after = e.table_stats("stats").await.unwrap();
    assert!(
        after.items.abs_diff(before.items) <= 4 && after.bytes.abs_diff(before.bytes) <= 4,
        "a split moves no items: {before:?} -> {after:?}"
    );
    // Another instance reads the same from the manifests.
    let other = engine(&store, test_config()).await;
    assert_eq!(other.table_stats("stats").await.unwrap(), after);
}

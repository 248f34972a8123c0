//! Secondary indexes: the invariants of ARCHITECTURE.md's "Secondary
//! indexes", each a test named after it.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use strata_engine::index::{index_table_name, ENTRY_KEY};
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan};

const TABLE: &str = "orders";

fn attr(name: &str, key_type: KeyType) -> KeyAttribute {
    KeyAttribute {
        name: name.into(),
        key_type,
    }
}

fn gsi(
    name: &str,
    hash: KeyAttribute,
    range: Option<KeyAttribute>,
    projection: Projection,
) -> IndexDef {
    IndexDef {
        name: name.into(),
        id: String::new(),
        kind: IndexKind::Global,
        key_schema: KeySchema { hash, range },
        projection,
        status: IndexStatus::Active,
        meta: serde_json::Value::Null,
    }
}

/// A local index on (pk, l N).
fn lsi(projection: Projection) -> IndexDef {
    IndexDef {
        name: "byL".into(),
        id: String::new(),
        kind: IndexKind::Local,
        key_schema: KeySchema {
            hash: attr("pk", KeyType::S),
            range: Some(attr("l", KeyType::N)),
        },
        projection,
        status: IndexStatus::Active,
        meta: serde_json::Value::Null,
    }
}

/// Every entry of local index `byL` for partition key "p", strongly
/// consistent.
async fn strong_lsi(e: &Engine) -> Page {
    e.query_index(
        TABLE,
        "byL",
        &KeyValue::S("p".into()),
        &SortKeyCondition::All,
        true,
        1000,
        None,
        usize::MAX,
        Consistency::Strong,
    )
    .await
    .unwrap()
}

/// `orders` (pk S, sk N) with a GSI on (g S, r N) projecting `x`, and a
/// hash-only GSI on h (N), keys only.
fn indexed_spec() -> TableSpec {
    TableSpec {
        partitions: Some(2),
        indexes: vec![
            gsi(
                "byG",
                attr("g", KeyType::S),
                Some(attr("r", KeyType::N)),
                Projection::Include(vec!["x".into()]),
            ),
            gsi("byH", attr("h", KeyType::N), None, Projection::KeysOnly),
        ],
        ..spec(TABLE)
    }
}

/// Every entry an index should hold, recomputed from the base table, in
/// index-table key order.
async fn expected_entries(e: &Engine, ix: &IndexDef) -> Vec<Item> {
    let base = e.describe_table(TABLE).await.unwrap();
    let schema = ix.table_schema();
    let mut out: Vec<(Vec<u8>, Item)> = scan_all(e, TABLE, 50)
        .await
        .iter()
        .filter_map(|i| ix.entry(&base.key_schema, i))
        .map(|entry| {
            let k = strata_engine::keys::encode_key(&schema.key_of(&entry).unwrap());
            (k, entry)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, i)| i).collect()
}

/// What the index table holds, by a strongly consistent scan of it.
async fn stored_entries(e: &Engine, ix: &IndexDef) -> Vec<Item> {
    let name = index_table_name(TABLE, &ix.name);
    let schema = ix.table_schema();
    let mut all: Vec<(Vec<u8>, Item)> = Vec::new();
    let mut after: Option<ItemKey> = None;
    loop {
        let p = e
            .scan(
                &name,
                None,
                after.as_ref(),
                37,
                usize::MAX,
                Consistency::Strong,
            )
            .await
            .unwrap();
        for i in &p.items {
            let k = strata_engine::keys::encode_key(&schema.key_of(i).unwrap());
            all.push((k, (**i).clone()));
        }
        match p.last_key {
            Some(k) => after = Some(schema.key_of(&k).unwrap()),
            None => break,
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all.into_iter().map(|(_, i)| i).collect()
}

async fn assert_index_equals_base(e: &Engine, what: &str) {
    let base = e.describe_table(TABLE).await.unwrap();
    for ix in &base.indexes {
        let want = expected_entries(e, ix).await;
        let got = stored_entries(e, ix).await;
        assert_eq!(got.len(), want.len(), "{what}: {} entry count", ix.name);
        assert_eq!(got, want, "{what}: {} entries", ix.name);
    }
}

async fn settle(e: &Engine) {
    for _ in 0..3 {
        e.follow_all_indexes().await.expect("follow");
    }
}

fn random_item(rng: &mut rand::rngs::StdRng, pk: &str, sk: i64, w: i64) -> Item {
    let mut attrs: Vec<(&str, Value)> = vec![("x", n(w)), ("y", n(w))];
    if rng.random_bool(0.8) {
        attrs.push(("g", Value::S(format!("g{}", rng.random_range(0..4)))));
    }
    if rng.random_bool(0.8) {
        attrs.push(("r", n(rng.random_range(0..6))));
    }
    if rng.random_bool(0.5) {
        attrs.push(("h", n(rng.random_range(0..3))));
    }
    item(pk, sk, &attrs)
}

async fn random_write(e: &Engine, rng: &mut rand::rngs::StdRng, w: i64) {
    let pk = format!("p{}", rng.random_range(0..25));
    let sk = rng.random_range(0..3);
    let op = match rng.random_range(0..10) {
        0..=5 => WriteOp::put(key(&pk, sk), random_item(rng, &pk, sk, w)),
        6..=7 => WriteOp::delete(key(&pk, sk)),
        _ => {
            // Moves the item in the index: a new g, the rest kept.
            let g = format!("g{}", rng.random_range(0..4));
            WriteOp::update(
                key(&pk, sk),
                Arc::new(move |cur: Option<&Item>| {
                    let mut i = cur.cloned().unwrap_or_default();
                    i.insert("g".into(), Value::S(g.clone()));
                    Ok(Some(i))
                }),
            )
        }
    };
    loop {
        match e.write(TABLE, WriteRequest::single(op.clone())).await {
            Ok(_) => return,
            Err(err) if err.is_retryable() => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(err) => panic!("write: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gsi_converges_to_base() {
    for backend in backends().into_iter().filter(|b| !b.is_remote()) {
        let store = backend.store();
        let mut engines = Vec::new();
        for _ in 0..4 {
            engines.push(Arc::new(engine(&store, test_config()).await));
        }
        engines[0].create_table(indexed_spec()).await.unwrap();
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let e = Arc::clone(&engines[w]);
                tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                    for i in 0..120 {
                        random_write(&e, &mut rng, (w * 1000 + i) as i64).await;
                        if i == 60 && w == 0 {
                            e.compact(TABLE).await.unwrap();
                            e.split_partition(TABLE, 0).await.unwrap();
                        }
                    }
                })
            })
            .collect();
        // Followers on two engines race the writers and each other.
        let followers: Vec<_> = (2..4)
            .map(|f| {
                let e = Arc::clone(&engines[f]);
                tokio::spawn(async move {
                    for _ in 0..30 {
                        let _ = e.follow_all_indexes().await;
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                })
            })
            .collect();
        for t in writers.into_iter().chain(followers) {
            t.await.unwrap();
        }
        engines[1].compact(TABLE).await.unwrap();
        let fresh = engine(&store, test_config()).await;
        settle(&fresh).await;
        assert_index_equals_base(&fresh, &backend.name).await;
        // Compacting the index tables changes nothing.
        for ix in ["byG", "byH"] {
            fresh.compact(&index_table_name(TABLE, ix)).await.unwrap();
        }
        assert_index_equals_base(&fresh, &backend.name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gsi_replay_is_noop() {
    let store = backends().remove(0).store();
    let e = engine(&store, test_config()).await;
    e.create_table(indexed_spec()).await.unwrap();
    // Followed from the first segment on (no backfill), so the whole log
    // has been through the index once when it is replayed below.
    settle(&e).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for w in 0..300 {
        random_write(&e, &mut rng, w).await;
    }
    // Followers killed at random moments: fresh engines each time (a new
    // process remembers nothing but the cursors in the store), over a
    // slow store so the kills land inside batches.
    let slow: Arc<dyn object_store::ObjectStore> = strata_store::latency::with_latency(
        Arc::clone(&store),
        strata_store::latency::LatencyProfile {
            get: Duration::from_millis(1),
            put: Duration::from_millis(1),
            list: Duration::from_millis(1),
            head: Duration::from_millis(1),
            delete: Duration::from_millis(1),
        },
    )
    .0;
    let mut kills = 0;
    for delay_ms in [3u64, 7, 12, 20, 35, 50, 80] {
        let f = Arc::new(Engine::with_store_unchecked(
            Arc::clone(&slow),
            "slow",
            test_config(),
        ));
        let task = tokio::spawn(async move { f.follow_all_indexes().await });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if !task.is_finished() {
            kills += 1;
        }
        task.abort();
        let _ = task.await;
        random_write(&e, &mut rng, 1000 + delay_ms as i64).await;
    }
    // Store faults and lost responses.
    let (faulty, _) = with_faults(
        Arc::clone(&store),
        5,
        FaultPlan {
            error_rate: 0.15,
            lost_response_rate: 0.15,
            ..FaultPlan::default()
        },
    );
    let faulty: Arc<dyn object_store::ObjectStore> = faulty;
    let flaky = Engine::with_store_unchecked(faulty, "faulty", test_config());
    for _ in 0..6 {
        let _ = flaky.follow_all_indexes().await;
    }
    let clean = engine(&store, test_config()).await;
    settle(&clean).await;
    assert_index_equals_base(&clean, "after kills and faults").await;
    assert!(kills > 0, "no follower was killed mid-run");

    // Replaying everything again, from the first segment, applies nothing.
    let base = clean.describe_table(TABLE).await.unwrap();
    for ix in &base.indexes {
        let itable = clean
            .describe_stored_table(&index_table_name(TABLE, &ix.name))
            .await
            .unwrap();
        for part in base.map().all() {
            let path = strata_engine::paths::index_cursor(&itable.name, &itable.incarnation, part);
            let seal = base.map().split_of(part).map(|s| s.seal_seq);
            let body = serde_json::json!({"base_incarnation": base.incarnation, "seq": 0});
            if seal.is_none() {
                store.put(&path, body.to_string().into()).await.unwrap();
            }
        }
    }
    let replayer = engine(&store, test_config()).await;
    let report = replayer.follow_all_indexes().await.unwrap();
    assert!(report.segments > 0, "{report:?}");
    assert_eq!(report.applied, 0, "a replay changed the index: {report:?}");
    assert_index_equals_base(&replayer, "after a replay").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lsi_atomic_with_item() {
    let store = backends().remove(0).store();
    let writer = Arc::new(engine(&store, test_config()).await);
    let reader = Arc::new(engine(&store, test_config()).await);
    let lsi = lsi(Projection::All);
    writer
        .create_table(TableSpec {
            indexes: vec![lsi],
            ..spec(TABLE)
        })
        .await
        .unwrap();
    let rounds = 150;
    let w = Arc::clone(&writer);
    let writes = tokio::spawn(async move {
        for i in 1..=rounds {
            // Item 1 moves through the LSI; item 2 leaves and rejoins it.
            put(
                &w,
                TABLE,
                item("p", 1, &[("l", n(rounds - i)), ("v", n(i))]),
            )
            .await;
            let two = if i % 2 == 0 {
                vec![("l", n(i)), ("v", n(i))]
            } else {
                vec![("v", n(i))]
            };
            put(&w, TABLE, item("p", 2, &two)).await;
        }
    });
    let mut checks = 0;
    while !writes.is_finished() || checks < 5 {
        let base = get(&reader, TABLE, &key("p", 1)).await;
        let page = strong_lsi(&reader).await;
        let ones: Vec<&Arc<Item>> = page
            .items
            .iter()
            .filter(|i| i.get("sk") == Some(&n(1)))
            .collect();
        if let Some(base) = base {
            assert_eq!(ones.len(), 1, "item 1 is in the LSI exactly once: {ones:?}");
            assert!(
                num_attr(ones[0], "v") >= num_attr(&base, "v"),
                "the LSI read is older than a strong read before it"
            );
            assert!(!ones[0].contains_key(ENTRY_KEY));
        }
        let twos: Vec<&Arc<Item>> = page
            .items
            .iter()
            .filter(|i| i.get("sk") == Some(&n(2)))
            .collect();
        assert!(twos.len() <= 1);
        if let Some(t) = twos.first() {
            assert!(
                t.contains_key("l"),
                "an item without its LSI key is not in the LSI"
            );
        }
        // Entries come in LSI sort-key order.
        let ls: Vec<i64> = page.items.iter().map(|i| num_attr(i, "l")).collect();
        assert!(ls.windows(2).all(|w| w[0] <= w[1]), "{ls:?}");
        checks += 1;
    }
    writes.await.unwrap();
    assert!(checks >= 5);
    let base = writer.describe_table(TABLE).await.unwrap();
    let _ = BTreeMap::<(), ()>::new();
    assert!(
        base.keep_old_images,
        "a table with indexes keeps old images"
    );
}

#[tokio::test]
async fn global_index_reads_refuse_strong_consistency_and_unknown_indexes() {
    let store = backends().remove(0).store();
    let e = engine(&store, test_config()).await;
    e.create_table(indexed_spec()).await.unwrap();
    let q = |index: &'static str, c: Consistency| {
        let e = &e;
        async move {
            e.query_index(
                TABLE,
                index,
                &KeyValue::S("g1".into()),
                &SortKeyCondition::All,
                true,
                10,
                None,
                usize::MAX,
                c,
            )
            .await
        }
    };
    assert!(
        matches!(q("byG", Consistency::Strong).await, Err(Error::Validation(m)) if m.contains("Consistent reads are not supported"))
    );
    assert!(matches!(
        q("nope", Consistency::Eventual).await,
        Err(Error::IndexNotFound(_))
    ));
    // A wrong index-key type is refused; an item without index keys is fine.
    let bad = item("a", 1, &[("g", n(1))]);
    let err = e
        .write(TABLE, WriteRequest::single(WriteOp::put(key("a", 1), bad)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Type mismatch for Index Key g"),
        "{err}"
    );
    put(&e, TABLE, item("a", 1, &[])).await;
    // Index tables are not user tables.
    assert_eq!(e.list_tables().await.unwrap(), vec![TABLE.to_string()]);
    assert_eq!(e.list_stored_tables().await.unwrap().len(), 3);
    // Dropping the table drops its index tables.
    e.delete_table(TABLE).await.unwrap();
    assert!(e.list_stored_tables().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_index_added_to_a_table_with_data_is_backfilled_then_active() {
    let store = backends().remove(0).store();
    let e = engine(&store, test_config()).await;
    e.create_table(spec(TABLE)).await.unwrap();
    for i in 0..200 {
        put(
            &e,
            TABLE,
            item(
                &format!("p{}", i % 17),
                i,
                &[
                    ("g", Value::S(format!("g{}", i % 3))),
                    ("r", n(i)),
                    ("x", n(i)),
                ],
            ),
        )
        .await;
    }
    let def = gsi(
        "byG",
        attr("g", KeyType::S),
        Some(attr("r", KeyType::N)),
        Projection::All,
    );
    let d = e.add_index(TABLE, def).await.unwrap();
    assert_eq!(d.index("byG").unwrap().status, IndexStatus::Creating);
    assert!(d.keep_old_images);
    // Writes during the backfill are not missed.
    for i in 200..230 {
        put(
            &e,
            TABLE,
            item(
                &format!("p{}", i % 17),
                i,
                &[("g", Value::S("g0".into())), ("r", n(i))],
            ),
        )
        .await;
    }
    e.follow_all_indexes().await.unwrap();
    let d = e.describe_table(TABLE).await.unwrap();
    assert_eq!(d.index("byG").unwrap().status, IndexStatus::Active);
    assert_index_equals_base(&e, "backfilled").await;
    let page = e
        .query_index(
            TABLE,
            "byG",
            &KeyValue::S("g0".into()),
            &SortKeyCondition::Ge(KeyValue::N(Number::from_i64(150))),
            false,
            5,
            None,
            usize::MAX,
            Consistency::Eventual,
        )
        .await
        .unwrap();
    let rs: Vec<i64> = page.items.iter().map(|i| num_attr(i, "r")).collect();
    assert_eq!(rs, vec![229, 228, 227, 226, 225]);
    let last = page.last_key.clone().expect("more pages");
    assert_eq!(last.len(), 4, "table and index keys: {last:?}");
    let next = e
        .query_index(
            TABLE,
            "byG",
            &KeyValue::S("g0".into()),
            &SortKeyCondition::Ge(KeyValue::N(Number::from_i64(150))),
            false,
            2,
            Some(&last),
            usize::MAX,
            Consistency::Eventual,
        )
        .await
        .unwrap();
    let rs: Vec<i64> = next.items.iter().map(|i| num_attr(i, "r")).collect();
    assert_eq!(rs, vec![224, 223]);
    // Dropping it removes it and its table.
    e.drop_index(TABLE, "byG").await.unwrap();
    assert!(e.describe_table(TABLE).await.unwrap().indexes.is_empty());
    assert_eq!(
        e.list_stored_tables().await.unwrap(),
        vec![TABLE.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_retained_log_backfills_and_sweeps_stale_entries() {
    let store = backends().remove(0).store();
    let config = EngineConfig {
        gc_grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        ..test_config()
    };
    let e = engine(&store, config).await;
    e.create_table(indexed_spec()).await.unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    for w in 0..150 {
        random_write(&e, &mut rng, w).await;
    }
    settle(&e).await;
    // Items move in the index while nobody follows; the log they moved in
    // is compacted and collected before the follower comes back.
    for w in 150..400 {
        random_write(&e, &mut rng, w).await;
    }
    e.compact(TABLE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let gc = e.gc(TABLE).await.unwrap();
    assert!(gc.segments > 0, "{gc:?}");
    let report = e.follow_all_indexes().await.unwrap();
    assert!(report.backfills > 0, "{report:?}");
    assert!(report.swept > 0, "stale entries were left: {report:?}");
    assert_index_equals_base(&e, "after a gap in the log").await;
}

#[tokio::test]
async fn a_strong_lsi_read_follows_a_split_its_descriptor_does_not_show() {
    let store = backends().remove(0).store();
    let writer = engine(&store, test_config()).await;
    let reader = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::from_secs(3600),
            ..test_config()
        },
    )
    .await;
    let lsi = lsi(Projection::KeysOnly);
    writer
        .create_table(TableSpec {
            partitions: Some(1),
            indexes: vec![lsi],
            ..spec(TABLE)
        })
        .await
        .unwrap();
    put(&writer, TABLE, item("p", 1, &[("l", n(1))])).await;
    assert_eq!(strong_lsi(&reader).await.items.len(), 1);
    // The writer splits the partition and writes into a child; the
    // reader's descriptor still shows one partition.
    writer.split_partition(TABLE, 0).await.unwrap();
    put(&writer, TABLE, item("p", 2, &[("l", n(2))])).await;
    assert_eq!(strong_lsi(&reader).await.items.len(), 2);
}

fn gsi_on(attr_name: &str) -> IndexDef {
    gsi(
        "byG",
        attr(attr_name, KeyType::S),
        None,
        Projection::KeysOnly,
    )
}

fn eager_gc() -> EngineConfig {
    EngineConfig {
        gc_grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        ..test_config()
    }
}

#[tokio::test]
async fn a_split_during_a_pending_rebuild_sweeps_the_children() {
    let store = backends().remove(0).store();
    let e = engine(&store, eager_gc()).await;
    e.create_table(TableSpec {
        partitions: Some(1),
        indexes: vec![gsi_on("g")],
        ..spec(TABLE)
    })
    .await
    .unwrap();
    for i in 0..60 {
        put(&e, TABLE, item("p", i, &[("g", Value::S("a".into()))])).await;
    }
    settle(&e).await;
    // Half the items move in the index, unfollowed; that log is folded and
    // collected, and the partition splits before the follower comes back.
    for i in 0..30 {
        put(&e, TABLE, item("p", i, &[("g", Value::S("b".into()))])).await;
    }
    e.compact(TABLE).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(e.gc(TABLE).await.unwrap().segments > 0);
    e.split_partition(TABLE, 0).await.unwrap();
    let report = e.follow_all_indexes().await.unwrap();
    assert!(report.swept >= 30, "{report:?}");
    assert_index_equals_base(&e, "after a split during a rebuild").await;
}

#[tokio::test]
async fn an_index_dropped_and_added_again_is_a_new_index() {
    let store = backends().remove(0).store();
    let e = engine(&store, test_config()).await;
    // An instance whose descriptor stays old: it must not bring the
    // dropped index's table back.
    let stale = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::from_secs(3600),
            ..test_config()
        },
    )
    .await;
    e.create_table(TableSpec {
        indexes: vec![gsi_on("g")],
        ..spec(TABLE)
    })
    .await
    .unwrap();
    for i in 0..20 {
        put(
            &e,
            TABLE,
            item(
                "p",
                i,
                &[("g", Value::S("x".into())), ("h", Value::S("y".into()))],
            ),
        )
        .await;
    }
    settle(&e).await;
    stale.follow_all_indexes().await.unwrap();
    e.drop_index(TABLE, "byG").await.unwrap();
    for i in 20..30 {
        put(
            &e,
            TABLE,
            item(
                "p",
                i,
                &[("g", Value::S("x".into())), ("h", Value::S("y".into()))],
            ),
        )
        .await;
    }
    stale.follow_all_indexes().await.unwrap();
    let live: Vec<String> = e.list_stored_tables().await.unwrap();
    assert_eq!(
        live,
        vec![TABLE.to_string()],
        "the dropped index's table came back"
    );
    // Added again under the same name, on another attribute.
    e.add_index(TABLE, gsi_on("h")).await.unwrap();
    stale.follow_all_indexes().await.unwrap();
    settle(&e).await;
    assert_eq!(
        e.describe_table(TABLE)
            .await
            .unwrap()
            .index("byG")
            .unwrap()
            .status,
        IndexStatus::Active
    );
    assert_index_equals_base(&e, "re-added index").await;
    let page = e
        .query_index(
            TABLE,
            "byG",
            &KeyValue::S("y".into()),
            &SortKeyCondition::All,
            true,
            100,
            None,
            usize::MAX,
            Consistency::Eventual,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 30);
}

#[tokio::test]
async fn values_too_long_to_index_are_left_out_not_fatal() {
    let store = backends().remove(0).store();
    let e = engine(&store, test_config()).await;
    e.create_table(spec(TABLE)).await.unwrap();
    put(
        &e,
        TABLE,
        item("p", 1, &[("g", Value::S("x".repeat(3000)))]),
    )
    .await;
    put(&e, TABLE, item("p", 2, &[("g", Value::S("short".into()))])).await;
    e.add_index(TABLE, gsi_on("g")).await.unwrap();
    e.follow_all_indexes().await.unwrap();
    assert_eq!(
        e.describe_table(TABLE)
            .await
            .unwrap()
            .index("byG")
            .unwrap()
            .status,
        IndexStatus::Active
    );
    assert_index_equals_base(&e, "oversized value").await;
    assert_eq!(stored_entries(&e, &gsi_on("g")).await.len(), 1);
}

#[tokio::test]
async fn a_strong_lsi_read_sees_a_split_another_follower_already_passed() {
    let store = backends().remove(0).store();
    let writer = engine(&store, test_config()).await;
    let lsi = lsi(Projection::KeysOnly);
    writer
        .create_table(TableSpec {
            partitions: Some(1),
            indexes: vec![lsi],
            ..spec(TABLE)
        })
        .await
        .unwrap();
    put(&writer, TABLE, item("p", 1, &[("l", n(1))])).await;
    // The reader knows the table (one partition) but holds no cursor.
    let reader = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::from_secs(3600),
            ..test_config()
        },
    )
    .await;
    assert!(get(&reader, TABLE, &key("p", 1)).await.is_some());
    writer.split_partition(TABLE, 0).await.unwrap();
    writer.follow_all_indexes().await.unwrap();
    put(&writer, TABLE, item("p", 2, &[("l", n(2))])).await;
    assert_eq!(strong_lsi(&reader).await.items.len(), 2);
}

#[tokio::test]
async fn log_older_than_the_retention_is_rebuilt_not_replayed() {
    let store = backends().remove(0).store();
    let e = engine(
        &store,
        EngineConfig {
            log_retention: Duration::from_millis(200),
            ..test_config()
        },
    )
    .await;
    e.create_table(TableSpec {
        indexes: vec![gsi_on("g")],
        ..spec(TABLE)
    })
    .await
    .unwrap();
    settle(&e).await;
    for i in 0..20 {
        put(
            &e,
            TABLE,
            item("p", i, &[("g", Value::S(format!("v{}", i % 3)))]),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = e.follow_all_indexes().await.unwrap();
    assert!(report.backfills > 0, "{report:?}");
    assert_index_equals_base(&e, "after expired log").await;
}

#[tokio::test]
async fn an_item_collection_past_its_limit_takes_no_more_items() {
    let store = backends().remove(0).store();
    let e = engine(
        &store,
        EngineConfig {
            max_item_collection_bytes: 4096,
            ..test_config()
        },
    )
    .await;
    e.create_table(TableSpec {
        partitions: Some(1),
        indexes: vec![lsi(Projection::KeysOnly)],
        ..spec(TABLE)
    })
    .await
    .unwrap();
    let big = |i: i64| {
        item(
            "full",
            i,
            &[("l", n(i)), ("pad", Value::S("x".repeat(400)))],
        )
    };
    let mut refused = None;
    for i in 0..40 {
        let w = e
            .write(
                TABLE,
                WriteRequest::single(WriteOp::put(key("full", i), big(i))),
            )
            .await;
        if let Err(err) = w {
            assert!(matches!(err, Error::ItemCollectionTooLarge), "{err}");
            refused = Some(i);
            break;
        }
    }
    let refused = refused.expect("the collection grew past its limit");
    assert!((9..=11).contains(&refused), "refused at item {refused}");
    // Other collections, and deletes from the full one, go on.
    put(&e, TABLE, item("other", 1, &[("l", n(1))])).await;
    e.write(TABLE, WriteRequest::single(WriteOp::delete(key("full", 0))))
        .await
        .unwrap();
}

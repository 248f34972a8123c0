//! Exports and restores at a moment equal what the table held then.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, Decimal128Array, StringArray};
use object_store::memory::InMemory;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata_engine::*;
use strata_export::{export, json::item_json, Destination, ExportJob, ExportKind, Format};

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

async fn engine() -> Arc<Engine> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let config = EngineConfig {
        default_partitions: 4,
        auto_compact: false,
        ..EngineConfig::default()
    };
    Arc::new(Engine::with_store(store, "memory", config).await.unwrap())
}

fn spec(name: &str) -> TableSpec {
    TableSpec {
        name: name.into(),
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

fn key(pk: &str, sk: i64) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(pk.into()),
        range: Some(KeyValue::N(Number::from_i64(sk))),
    }
}

fn item(pk: &str, sk: i64, price: &str) -> Item {
    Item::from([
        ("pk".to_string(), Value::S(pk.into())),
        ("sk".to_string(), Value::N(Number::from_i64(sk))),
        ("price".to_string(), Value::N(Number::parse(price).unwrap())),
        ("tags".to_string(), Value::SS(vec!["a".into()])),
    ])
}

async fn put(e: &Engine, it: Item) {
    let k = key(
        match &it["pk"] {
            Value::S(s) => s,
            _ => unreachable!(),
        },
        match &it["sk"] {
            Value::N(n) => n.to_string().parse().unwrap(),
            _ => unreachable!(),
        },
    );
    e.write("orders", WriteRequest::single(WriteOp::put(k, it)))
        .await
        .unwrap();
}

/// Every item as DynamoDB JSON, by key, by a strong scan now.
async fn snapshot(e: &Engine, table: &str) -> BTreeMap<String, ()> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = e
            .scan(
                table,
                None,
                after.as_ref(),
                1000,
                usize::MAX,
                Consistency::Strong,
            )
            .await
            .unwrap();
        for i in &page.items {
            out.insert(item_json(i), ());
        }
        match page.last_key {
            Some(k) => {
                after = Some(
                    e.describe_table(table)
                        .await
                        .unwrap()
                        .key_schema
                        .key_of(&k)
                        .unwrap(),
                )
            }
            None => return out,
        }
    }
}

async fn read_parquet(
    store: &Arc<dyn ObjectStore>,
    dir: &str,
) -> (BTreeMap<String, ()>, Vec<String>) {
    let files = store
        .get(&format!("{dir}/manifest-files.json").into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    let mut prices = Vec::new();
    for line in String::from_utf8(files.to_vec()).unwrap().lines() {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        let bytes = store
            .get(&f["dataFileS3Key"].as_str().unwrap().into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let mut n = 0;
        for batch in reader {
            let batch = batch.unwrap();
            let items = batch
                .column_by_name("item")
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let price = batch
                .column_by_name("price")
                .unwrap()
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .unwrap();
            assert_eq!(price.scale(), 2);
            for r in 0..batch.num_rows() {
                out.insert(items.value(r).to_string(), ());
                prices.push(price.value_as_string(r));
                n += 1;
            }
        }
        assert_eq!(f["itemCount"].as_u64().unwrap(), n);
    }
    (out, prices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_restore_hold_exactly_the_moment() {
    let e = engine().await;
    e.create_table(spec("orders")).await.unwrap();
    for i in 0..300 {
        put(
            &e,
            item(
                &format!("c{}", i % 17),
                i,
                if i % 2 == 0 { "10.5" } else { "3.25" },
            ),
        )
        .await;
    }
    e.compact("orders").await.unwrap();
    for i in 0..50 {
        e.write(
            "orders",
            WriteRequest::single(WriteOp::delete(key(&format!("c{}", i % 17), i))),
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = now_micros();
    let at_t = snapshot(&e, "orders").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Writes after T, and a compaction, change nothing about T.
    for i in 300..400 {
        put(&e, item("late", i, "1")).await;
    }
    e.write(
        "orders",
        WriteRequest::single(WriteOp::delete(key("c15", 100))),
    )
    .await
    .unwrap();
    e.compact("orders").await.unwrap();

    let dest_store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let dest = Destination {
        store: Arc::clone(&dest_store),
        dir: "exp/AWSDynamoDB/01-abc".into(),
        bucket: "b".into(),
        prefix: "exp".into(),
        export_arn: "arn:export".into(),
        table_arn: "arn:table".into(),
        export_id: "01-abc".into(),
    };
    let job = ExportJob {
        table: "orders".into(),
        format: Format::Parquet,
        kind: ExportKind::Full { at_micros: t },
    };
    let out = export(&e, &job, &dest, Arc::new(())).await.unwrap();
    assert_eq!(out.items as usize, at_t.len());
    let (exported, prices) = read_parquet(&dest_store, &dest.dir).await;
    assert!(
        exported == at_t,
        "export differs from the moment: {} vs {} items",
        exported.len(),
        at_t.len()
    );
    assert!(
        prices.iter().all(|p| p == "10.50" || p == "3.25"),
        "{prices:?}"
    );
    for f in ["_started", "manifest-summary.json"] {
        dest_store
            .head(&format!("{}/{f}", dest.dir).into())
            .await
            .unwrap();
    }

    // Restore to T equals the snapshot at T.
    e.create_table(spec("restored")).await.unwrap();
    let n = e.restore_into("orders", "restored", t).await.unwrap();
    assert_eq!(n as usize, at_t.len());
    let restored = snapshot(&e, "restored").await;
    assert!(
        restored == at_t,
        "restore differs: {} vs {} items",
        restored.len(),
        at_t.len()
    );

    // Incremental from T to now = the difference of the two moments.
    let now = now_micros();
    let inc = ExportJob {
        table: "orders".into(),
        format: Format::Parquet,
        kind: ExportKind::Incremental {
            from_micros: t,
            to_micros: now,
            with_old_images: true,
        },
    };
    let dest2 = Destination {
        dir: "exp/AWSDynamoDB/02-def".into(),
        export_id: "02-def".into(),
        ..dest.clone()
    };
    let out = export(&e, &inc, &dest2, Arc::new(())).await.unwrap();
    assert_eq!(out.items, 101); // 100 inserts and one remove
}

#[tokio::test]
async fn gc_keeps_what_the_recovery_window_needs() {
    // No grace and no log retention: without PITR, GC deletes all it can.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let config = EngineConfig {
        default_partitions: 1,
        auto_compact: false,
        gc_grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        ..EngineConfig::default()
    };
    let e = Engine::with_store(Arc::clone(&store), "memory", config.clone())
        .await
        .unwrap();
    for (name, window) in [("orders", 3600u64), ("plain", 0)] {
        e.create_table(TableSpec {
            partitions: Some(1),
            ..spec(name)
        })
        .await
        .unwrap();
        e.update_table(name, |d| {
            d.pitr_window_secs = window;
            Ok(())
        })
        .await
        .unwrap();
    }
    for name in ["orders", "plain"] {
        for i in 0..20 {
            e.write(
                name,
                WriteRequest::single(WriteOp::put(key("a", i), item("a", i, "1"))),
            )
            .await
            .unwrap();
        }
        e.compact(name).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t = now_micros();
    tokio::time::sleep(Duration::from_millis(5)).await;
    for name in ["orders", "plain"] {
        for i in 0..20 {
            e.write(name, WriteRequest::single(WriteOp::delete(key("a", i))))
                .await
                .unwrap();
        }
        e.compact(name).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        e.gc(name).await.unwrap();
    }
    // Read from another instance (this one remembers recent segments).
    let e = Engine::with_store(store, "memory", config).await.unwrap();
    // With the window, T is still readable: all 20 items.
    let mut m = e.point_in_time("orders", 0, t).await.unwrap();
    let mut live = 0;
    while let Some(chunk) = m.next_chunk(100).await.unwrap() {
        live += chunk.iter().filter(|(_, v)| !v.deleted).count();
    }
    assert_eq!(live, 20);
    // Without it, GC has removed what T needed, and says so.
    assert!(e.point_in_time("plain", 0, t).await.is_err());
}

/// The API hands the job to a runner that runs it to the end before
/// answering (as an invocation of the exporter function does), and the
/// export's description records the outcome.
#[tokio::test]
async fn api_jobs_run_through_the_exporter_code() {
    use strata_api::{Api, Caller};
    use strata_export::jobs::{run, Buckets};
    let e = engine().await;
    let dir = tempfile::tempdir().unwrap();
    let buckets = Buckets::parse(&format!("local-b=file://{}", dir.path().display())).unwrap();
    let runner_engine = Arc::clone(&e);
    let api = Api::new(Arc::clone(&e), "us-east-1").with_jobs(Arc::new(move |job| {
        let (engine, buckets) = (Arc::clone(&runner_engine), buckets.clone());
        // The job records its own failure; the hand-over itself succeeded.
        Box::pin(async move {
            let _ = run(&engine, &job, &buckets, Arc::new(())).await;
            Ok(())
        })
    }));
    let caller = Caller {
        region: "us-east-1".into(),
        access_key: None,
        host: None,
        user: None,
    };
    let call = |op: &'static str, body: serde_json::Value| {
        let api = &api;
        let caller = &caller;
        async move {
            let r = api
                .handle(
                    Some(&format!("DynamoDB_20120810.{op}")),
                    caller,
                    body.to_string().as_bytes(),
                )
                .await;
            (
                r.status,
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap(),
            )
        }
    };
    e.create_table(spec("orders")).await.unwrap();
    for i in 0..10 {
        put(&e, item("x", i, "2.5")).await;
    }
    let (s, _) = call(
        "UpdateContinuousBackups",
        serde_json::json!({"TableName": "orders",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true}}),
    )
    .await;
    assert_eq!(s, 200);
    let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/orders";
    let (s, r) = call(
        "ExportTableToPointInTime",
        serde_json::json!({"TableArn": arn, "S3Bucket": "local-b",
        "S3Prefix": "p", "ExportFormat": "PARQUET"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let export_arn = r["ExportDescription"]["ExportArn"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, d) = call(
        "DescribeExport",
        serde_json::json!({"ExportArn": export_arn}),
    )
    .await;
    assert_eq!(d["ExportDescription"]["ExportStatus"], "COMPLETED", "{d}");
    assert_eq!(d["ExportDescription"]["ItemCount"], 10);
    let manifest = d["ExportDescription"]["ExportManifest"].as_str().unwrap();
    assert!(dir.path().join(manifest).exists(), "{manifest}");
    // A bucket the exporter cannot write to: the export ends FAILED, with why.
    let (s, r) = call(
        "ExportTableToPointInTime",
        serde_json::json!({"TableArn": arn,
        "S3Bucket": "no-such-bucket-for-strata", "ExportFormat": "PARQUET"}),
    )
    .await;
    assert_eq!(s, 200, "{r}");
    let a = r["ExportDescription"]["ExportArn"].as_str().unwrap();
    let (_, d) = call("DescribeExport", serde_json::json!({"ExportArn": a})).await;
    assert_eq!(d["ExportDescription"]["ExportStatus"], "FAILED", "{d}");
    assert!(d["ExportDescription"]["FailureMessage"].as_str().is_some());
}

#[tokio::test]
async fn a_moment_read_is_sealed_so_later_commits_cannot_join_it() {
    let e = engine().await;
    e.create_table(TableSpec {
        partitions: Some(1),
        ..spec("orders")
    })
    .await
    .unwrap();
    put(&e, item("a", 1, "1")).await;
    let t = now_micros();
    let (tail_before, _, _) = e.partition_stats("orders").await.unwrap()[0];
    let count = |mut m: PointInTime| async move {
        let mut n = 0;
        while let Some(c) = m.next_chunk(100).await.unwrap() {
            n += c.iter().filter(|(_, v)| !v.deleted).count();
        }
        n
    };
    assert_eq!(
        count(e.point_in_time("orders", 0, t).await.unwrap()).await,
        1
    );
    // Reading the moment committed an empty segment stamped after T …
    let (tail_after, _, _) = e.partition_stats("orders").await.unwrap()[0];
    assert_eq!(tail_after, tail_before + 1);
    // … so a write now, even from a writer whose clock is behind, lands after T.
    put(&e, item("a", 2, "1")).await;
    assert_eq!(
        count(e.point_in_time("orders", 0, t).await.unwrap()).await,
        1
    );
    // And a moment already followed by a commit needs no seal.
    let (tail, _, _) = e.partition_stats("orders").await.unwrap()[0];
    e.point_in_time("orders", 0, t).await.unwrap();
    assert_eq!(e.partition_stats("orders").await.unwrap()[0].0, tail);
    // The future is refused.
    assert!(e
        .point_in_time("orders", 0, now_micros() + 60_000_000)
        .await
        .is_err());
}

/// An incremental export over a window a split falls in: each partition
/// live at the end is compared with its keys at the start, read from the
/// ancestor that held them then; every change appears once.
#[tokio::test]
async fn an_incremental_export_across_splits_holds_every_change_once() {
    let e = engine().await;
    e.create_table(spec("orders")).await.unwrap();
    for i in 0..100 {
        put(&e, item(&format!("c{i}"), i, "1")).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let from = now_micros();
    tokio::time::sleep(Duration::from_millis(5)).await;
    e.split_partition("orders", 0).await.unwrap();
    e.split_partition("orders", 1).await.unwrap();
    let [child, _] = strata_engine::partition_map::children(4, 0);
    e.split_partition("orders", child).await.unwrap();
    for i in 0..30 {
        put(&e, item(&format!("c{i}"), i, "2")).await;
    }
    for i in 30..40 {
        e.write(
            "orders",
            WriteRequest::single(WriteOp::delete(key(&format!("c{i}"), i))),
        )
        .await
        .unwrap();
    }
    for i in 0..20 {
        put(&e, item(&format!("n{i}"), i, "3")).await;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let to = now_micros();
    assert_eq!(e.partitions("orders").await.unwrap().len(), 7);
    let dest = Destination {
        store: Arc::new(InMemory::new()),
        dir: "exp/AWSDynamoDB/03-inc".into(),
        bucket: "b".into(),
        prefix: "exp".into(),
        export_arn: "arn:export".into(),
        table_arn: "arn:table".into(),
        export_id: "03-inc".into(),
    };
    let job = ExportJob {
        table: "orders".into(),
        format: Format::DynamoDbJson,
        kind: ExportKind::Incremental {
            from_micros: from,
            to_micros: to,
            with_old_images: true,
        },
    };
    let out = export(&e, &job, &dest, Arc::new(())).await.unwrap();
    assert_eq!(out.items, 60, "30 updates, 10 deletes, 20 inserts");
}

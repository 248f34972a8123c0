//! The replicator's events end to end on two in-memory regions: an SQS
//! batch of S3 notifications replicates just the partitions it names; the
//! schedule replicates the rest.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;
use strata_engine::ops::{Consistency, WriteOp, WriteRequest};
use strata_engine::replication::{add_replica, Replicator};
use strata_engine::*;

async fn region(name: &str) -> Arc<Engine> {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        region: name.into(),
        default_partitions: 4,
        auto_compact: false,
        ..EngineConfig::default()
    };
    Arc::new(Engine::with_store(store, name, config).await.unwrap())
}

fn key(k: &str) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(k.into()),
        range: None,
    }
}

fn item(k: &str) -> Item {
    Item::from([("k".to_string(), Value::S(k.into()))])
}

#[tokio::test]
async fn notifications_replicate_the_partitions_they_name() {
    let (a, b) = (region("us-east-1").await, region("eu-west-1").await);
    a.create_table(TableSpec {
        name: "orders".into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "k".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: None,
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    })
    .await
    .unwrap();
    let regions = BTreeMap::from([("eu-west-1".to_string(), Arc::clone(&b))]);
    add_replica(&a, &regions, "orders", "eu-west-1")
        .await
        .unwrap();
    let replicator = Replicator::new(Arc::clone(&a), regions);
    // The first pass over the new replica starts each partition's cursor.
    let out = strata_replicator::handle(&replicator, &json!({}))
        .await
        .unwrap();
    assert_eq!(out["backfills"], 4);
    let mut committed = Vec::new();
    for i in 0..20 {
        let k = format!("item{i}");
        let c = a
            .write(
                "orders",
                WriteRequest::single(WriteOp::put(key(&k), item(&k))),
            )
            .await
            .unwrap();
        committed.push((k, c.seq));
    }
    // Which partition each item went to: find the log keys by listing.
    let desc = a.describe_table("orders").await.unwrap();
    let mut keys = Vec::new();
    for p in 0..desc.partitions {
        let (_, read) = a.read_log("orders", p, 1, 1000).await.unwrap();
        for seg in read.segments {
            keys.push((
                p,
                format!(
                    "prefix/tables/orders/{}/p{p:04}/log/{:020}.seg",
                    desc.incarnation, seg.seq
                ),
            ));
        }
    }
    let first_part = keys[0].0;
    let body = json!({"Records": keys.iter().filter(|(p, _)| *p == first_part).map(|(_, k)| json!({"s3": {"object": {"key": k}}})).collect::<Vec<_>>()}).to_string();
    let event = json!({"Records": [{"eventSource": "aws:sqs", "body": body}]});
    let out = strata_replicator::handle(&replicator, &event)
        .await
        .unwrap();
    assert_eq!(out["tables"], 1);
    let in_first = keys.iter().filter(|(p, _)| *p == first_part).count();
    assert_eq!(out["segments"], in_first);
    // The schedule catches up everything else.
    let out = strata_replicator::handle(&replicator, &json!({"source": "aws.scheduler"}))
        .await
        .unwrap();
    assert_eq!(out["segments"], keys.len() - in_first);
    for (k, _) in &committed {
        assert!(
            b.get("orders", &key(k), Consistency::Strong)
                .await
                .unwrap()
                .is_some(),
            "{k}"
        );
    }
}

#[tokio::test]
async fn notifications_bring_indexes_up_to_date_without_replicas() {
    let a = region("us-east-1").await;
    let attr = |n: &str| KeyAttribute {
        name: n.into(),
        key_type: KeyType::S,
    };
    a.create_table(TableSpec {
        name: "orders".into(),
        key_schema: KeySchema {
            hash: attr("k"),
            range: None,
        },
        partitions: Some(2),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: vec![IndexDef {
            name: "byColour".into(),
            id: String::new(),
            kind: IndexKind::Global,
            key_schema: KeySchema {
                hash: attr("colour"),
                range: None,
            },
            projection: Projection::All,
            status: IndexStatus::Active,
            meta: serde_json::Value::Null,
        }],
        commit_window_ms: None,
    })
    .await
    .unwrap();
    // No other region: the replicator still runs, for the indexes.
    let replicator = Replicator::new(Arc::clone(&a), BTreeMap::new());
    strata_replicator::handle(&replicator, &json!({}))
        .await
        .unwrap();
    let desc = a.describe_table("orders").await.unwrap();
    let mut objects = Vec::new();
    for i in 0..10 {
        let k = format!("item{i}");
        let mut it = item(&k);
        it.insert("colour".into(), Value::S("red".into()));
        let c = a
            .write("orders", WriteRequest::single(WriteOp::put(key(&k), it)))
            .await
            .unwrap();
        let part = desc.map().route(&KeyValue::S(k.clone()));
        objects.push(format!(
            "prefix/tables/orders/{}/p{part:04}/log/{:020}.seg",
            desc.incarnation, c.seq
        ));
    }
    let body = json!({"Records": objects.iter().map(|k| json!({"s3": {"object": {"key": k}}})).collect::<Vec<_>>()}).to_string();
    let event = json!({"Records": [{"eventSource": "aws:sqs", "body": body}]});
    let out = strata_replicator::handle(&replicator, &event)
        .await
        .unwrap();
    assert_eq!(out["index_applied"], 10, "{out}");
    let page = a
        .query_index(
            "orders",
            "byColour",
            &KeyValue::S("red".into()),
            &SortKeyCondition::All,
            true,
            100,
            None,
            usize::MAX,
            Consistency::Eventual,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
}

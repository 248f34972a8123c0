//! Several compactor invocations at once (the schedule overlapping with
//! invocations from API instances), while writers keep writing: no
//! acknowledged write is lost and every read stays right.

use std::sync::Arc;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use serde_json::json;
use strata_engine::*;

fn spec() -> TableSpec {
    TableSpec {
        name: "tbl".into(),
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
        partitions: Some(2),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

fn item(pk: &str, sk: i64) -> (ItemKey, Item) {
    let key = ItemKey {
        hash: KeyValue::S(pk.into()),
        range: Some(KeyValue::N(Number::from_i64(sk))),
    };
    let item = Item::from([
        ("pk".to_string(), Value::S(pk.into())),
        ("sk".to_string(), Value::N(Number::from_i64(sk))),
    ]);
    (key, item)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compactors_are_safe() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let config = EngineConfig {
        auto_compact: false,
        max_runs: 2,
        ..EngineConfig::default()
    };
    let writer = Arc::new(
        Engine::with_store(Arc::clone(&store), "mem", config.clone())
            .await
            .unwrap(),
    );
    writer.create_table(spec()).await.unwrap();
    let compactors: Vec<Arc<Engine>> = futures::future::join_all(
        (0..4).map(|_| Engine::with_store(Arc::clone(&store), "mem", config.clone())),
    )
    .await
    .into_iter()
    .map(|e| Arc::new(e.unwrap()))
    .collect();
    let mut acked = Vec::new();
    for round in 0..5i64 {
        let writes = (0..40).map(|i| {
            let w = Arc::clone(&writer);
            async move {
                let (k, it) = item(&format!("u{}", i % 7), round * 100 + i);
                w.write("tbl", WriteRequest::single(WriteOp::put(k.clone(), it)))
                    .await
                    .map(|_| k)
            }
        });
        let events = [
            json!({}),
            json!({"table": "tbl", "partition": 0}),
            json!({"table": "tbl", "partition": 1}),
            json!({}),
        ];
        let runs = compactors.iter().zip(events).map(|(c, ev)| {
            let c = Arc::clone(c);
            async move { strata_compactor::handle(&c, &ev).await }
        });
        let (written, compacted) = futures::join!(
            futures::future::join_all(writes),
            futures::future::join_all(runs)
        );
        for w in written {
            acked.push(w.expect("write commits while compactors run"));
        }
        for c in compacted {
            c.expect("a compactor either wins, loses cleanly or finds nothing to do");
        }
    }
    let fresh = Engine::with_store(Arc::clone(&store), "mem", config)
        .await
        .unwrap();
    for k in &acked {
        assert!(
            fresh
                .get("tbl", k, Consistency::Strong)
                .await
                .unwrap()
                .is_some(),
            "{k:?} lost"
        );
    }
    let mut n = 0;
    let mut after = None;
    loop {
        let p = fresh
            .scan(
                "tbl",
                None,
                after.as_ref(),
                50,
                usize::MAX,
                Consistency::Strong,
            )
            .await
            .unwrap();
        n += p.items.len();
        match p.last_key {
            Some(k) => {
                after = Some(
                    spec()
                        .key_schema
                        .key_from_attributes(&k)
                        .expect("a resume key is a key"),
                )
            }
            None => break,
        }
    }
    assert_eq!(n, acked.len());
    let stats = fresh.partition_stats("tbl").await.unwrap();
    assert!(
        stats.iter().any(|(_, _, manifest)| *manifest > 1),
        "compaction never happened: {stats:?}"
    );
}

//! Object-store requests per operation: deterministic, and on S3 what drives
//! both cost and latency. These are the engine's cost targets as assertions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use strata_engine::*;
use strata_store::counting::{counting, RequestCounts};
use strata_store::latency::{with_latency, LatencyProfile};

use common::*;

/// An engine on a counted memory store with table `tbl` of `partitions`.
async fn table_of(partitions: u32) -> (Engine, Arc<strata_store::counting::RequestCounter>) {
    let (store, counter) = counting(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = store;
    let config = EngineConfig {
        default_partitions: partitions,
        ..test_config()
    };
    let e = engine(&store, config).await;
    e.create_table(spec("tbl")).await.unwrap();
    (e, counter)
}

async fn setup() -> (Engine, Arc<strata_store::counting::RequestCounter>) {
    let (e, counter) = table_of(1).await;
    put(&e, "tbl", item("warm", 1, &[])).await;
    (e, counter)
}

async fn cost<F: std::future::Future>(
    counter: &strata_store::counting::RequestCounter,
    f: F,
) -> RequestCounts {
    let before = counter.snapshot();
    f.await;
    counter.snapshot() - before
}

#[tokio::test]
async fn warm_instance_request_costs() {
    let (e, counter) = setup().await;

    let c = cost(&counter, put(&e, "tbl", item("a", 1, &[]))).await;
    assert_eq!(
        (c.put, c.list, c.head, c.delete),
        (1, 0, 0, 0),
        "uncontended put: {c}"
    );
    assert!(c.get <= 1, "uncontended put: {c}");

    let c = cost(&counter, async {
        e.get("tbl", &key("a", 1), Consistency::Strong)
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    assert!(c.get <= 1 && c.total() == c.get, "strong get: {c}");

    let c = cost(&counter, async {
        e.get("tbl", &key("a", 1), Consistency::Eventual)
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    assert_eq!(c.total(), 0, "eventual get on a warm instance: {c}");

    // After compaction the item lives in a run: the first read of it fetches
    // the run's index and block; later strong reads cost only the tail probe.
    e.compact("tbl").await.unwrap();
    e.get("tbl", &key("a", 1), Consistency::Strong)
        .await
        .unwrap()
        .unwrap();
    let c = cost(&counter, async {
        e.get("tbl", &key("a", 1), Consistency::Strong)
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    assert!(
        c.get <= 1 && c.list == 0,
        "strong get from a run, warm: {c}"
    );
    let c = cost(&counter, async {
        e.get("tbl", &key("a", 1), Consistency::Eventual)
            .await
            .unwrap()
            .unwrap()
    })
    .await;
    assert_eq!(c.total(), 0, "eventual get from a run, warm: {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_in_one_process_are_group_committed() {
    let (counted, counter) = counting(Arc::new(InMemory::new()));
    let (slow, _) = with_latency(
        counted,
        LatencyProfile {
            put: Duration::from_millis(30),
            ..Default::default()
        },
    );
    let store: Arc<dyn ObjectStore> = slow;
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
    put(&e, "tbl", item("warm", 1, &[])).await;
    let before = counter.snapshot();
    let writes = (0..32).map(|i| {
        let e = Arc::clone(&e);
        tokio::spawn(async move { put(&e, "tbl", item("k", i, &[])).await })
    });
    let seqs: Vec<u64> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(|r| r.unwrap().seq)
        .collect();
    let c = counter.snapshot() - before;
    assert!(
        c.put <= 4,
        "32 concurrent writes took {} PUTs; group commit should batch them",
        c.put
    );
    assert_eq!(c.list, 0, "{c}");
    let distinct: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(distinct.len() as u64, c.put, "one segment per PUT");
    assert_eq!(scan_all(&e, "tbl", 100).await.len(), 33);
}

/// The commit window: writes arriving a few ms apart, each alone on an
/// idle partition without it, share one PUT with it (at the window's
/// latency), whether the engine sets it or the table does; the engine's
/// commit stats say how many writes each PUT carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_window_turns_spaced_writes_into_one_put() {
    /// PUTs, writes per PUT and the slowest write's latency for 20 writes
    /// 2 ms apart, with the engine's and the table's windows.
    async fn spaced_writes(engine_ms: u64, table_ms: Option<u32>) -> (u64, f64, Duration) {
        let (store, counter) = counting(Arc::new(InMemory::new()));
        let store: Arc<dyn ObjectStore> = store;
        let config = EngineConfig {
            default_partitions: 1,
            commit_window: Duration::from_millis(engine_ms),
            ..test_config()
        };
        let e = Arc::new(engine(&store, config).await);
        e.create_table(TableSpec {
            commit_window_ms: table_ms,
            ..spec("tbl")
        })
        .await
        .unwrap();
        put(&e, "tbl", item("warm", 1, &[])).await;
        let before = (counter.snapshot(), e.commit_stats());
        let started = std::time::Instant::now();
        let mut writes = Vec::new();
        for i in 0..20 {
            let e = Arc::clone(&e);
            writes.push(tokio::spawn(async move {
                let t = std::time::Instant::now();
                put(&e, "tbl", item("k", i, &[])).await;
                t.elapsed()
            }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let slowest = futures::future::join_all(writes)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .max()
            .unwrap_or_default();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(scan_all(&e, "tbl", 100).await.len(), 21);
        let puts = (counter.snapshot() - before.0).put;
        let stats = e.commit_stats() - before.1;
        assert_eq!(stats.writes, 20, "{stats:?}");
        assert_eq!(stats.puts, puts, "every PUT a log segment's: {stats:?}");
        assert_eq!(stats.segments, puts, "no lost race: {stats:?}");
        (puts, stats.writes_per_put(), slowest)
    }
    let (without, per_put, _) = spaced_writes(0, None).await;
    assert!(
        without >= 10 && per_put <= 2.0,
        "spaced writes without a window: {without} PUTs, {per_put} writes each"
    );
    for (engine_ms, table_ms) in [(100, None), (0, Some(100))] {
        let (with, per_put, slowest) = spaced_writes(engine_ms, table_ms).await;
        assert!(
            with <= 2 && per_put >= 10.0,
            "20 writes within one 100 ms window took {with} PUTs \
             (engine {engine_ms} ms, table {table_ms:?})"
        );
        assert!(
            slowest >= Duration::from_millis(100),
            "a write waits out the window"
        );
    }
    // A table's window of 0 turns the engine's off for that table.
    let (with_zero, _, _) = spaced_writes(100, Some(0)).await;
    assert!(with_zero >= 10, "table window 0: {with_zero} PUTs");
}

/// Two instances writing one partition in turn: each finds the other's
/// segment in the seq it proposes. After the first lost race, an instance
/// looks at the log's tail before proposing (GETs at $0.40 per million on
/// S3 Standard) instead of losing every create (PUTs at $5): about one PUT
/// per write, not two.
#[tokio::test]
async fn instances_taking_turns_on_a_partition_pay_one_put_per_write() {
    let (store, counter) = counting(Arc::new(InMemory::new()));
    let store: Arc<dyn ObjectStore> = store;
    let config = EngineConfig {
        default_partitions: 1,
        ..test_config()
    };
    let a = engine(&store, config.clone()).await;
    let b = engine(&store, config).await;
    a.create_table(spec("tbl")).await.unwrap();
    put(&a, "tbl", item("warm", 0, &[])).await;
    put(&b, "tbl", item("warm", 1, &[])).await;
    let before = counter.snapshot();
    let n = 40;
    for i in 0..n {
        let e = if i % 2 == 0 { &a } else { &b };
        put(e, "tbl", item("k", i, &[])).await;
    }
    let c = counter.snapshot() - before;
    assert!(
        c.put <= n as u64 + 2,
        "{n} writes taking turns cost {} PUTs: {c}",
        c.put
    );
    assert_eq!(scan_all(&a, "tbl", 100).await.len(), n as usize + 2);
}

/// What a split costs in requests, whatever the partition's size (no data
/// is copied): the seal, the fold of the log tail into an SST, the
/// children's manifests and the descriptor, plus the reads that find them.
/// A writer on a stale descriptor pays the reroute once.
#[tokio::test]
async fn a_split_costs_a_handful_of_requests() {
    let (e, counter) = setup().await;
    for i in 0..50 {
        put(&e, "tbl", item(&format!("k{i}"), i, &[])).await;
    }
    let c = cost(&counter, async {
        e.split_partition("tbl", 0).await.unwrap();
    })
    .await;
    println!("split: {c}");
    assert_eq!(
        c.put, 6,
        "seal, SST, parent manifest, 2 children, descriptor: {c}"
    );
    assert!(c.total() <= 20, "split: {c}");
    // The first write in a child after the split: the child's view loads.
    let c = cost(&counter, put(&e, "tbl", item("k1", 1, &[]))).await;
    println!("first write after the split: {c}");
    assert_eq!(c.put, 1, "{c}");
}

/// A split changes the descriptor, not the table's other partitions: an
/// instance keeps their views (tails, caches, merges in flight), so its next
/// write to one of them reads nothing again. (Each split used to make every
/// partition anew: each re-read its whole log tail, and the old objects'
/// tails stayed in memory beside the new ones while merges held them.)
#[tokio::test]
async fn a_split_leaves_the_other_partitions_views_alone() {
    let (e, counter) = table_of(2).await;
    let elsewhere: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| keys::partition_of(&KeyValue::S(k.clone()), 2) == 1)
        .take(30)
        .collect();
    for k in &elsewhere {
        put(&e, "tbl", item(k, 1, &[])).await;
    }
    e.split_partition("tbl", 0).await.unwrap();
    let c = cost(&counter, put(&e, "tbl", item(&elsewhere[0], 2, &[]))).await;
    println!("a write to the partition not split: {c}");
    assert_eq!((c.put, c.list), (1, 0), "{c}");
    assert!(c.get <= 2, "no log segment read again: {c}");
    assert_eq!(
        e.get("tbl", &key(&elsewhere[29], 1), Consistency::Strong)
            .await
            .unwrap()
            .map(|i| i["sk"].clone()),
        Some(Value::N(Number::from_i64(1)))
    );
}

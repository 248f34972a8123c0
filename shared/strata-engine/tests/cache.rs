//! The per-instance caches: coherent with the log across instances, bounded
//! in memory, and never a source of torn or stale data.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use strata_engine::*;

use common::*;

const BOUND: Duration = Duration::from_millis(300);

fn cached_config() -> EngineConfig {
    EngineConfig {
        eventual_staleness: BOUND,
        default_partitions: 2,
        ..test_config()
    }
}

/// How many items the query for partition key "k" returns.
async fn q(e: &Engine, c: Consistency) -> usize {
    let h = KeyValue::S("k".into());
    e.query(
        "tbl",
        &h,
        &SortKeyCondition::All,
        true,
        100,
        None,
        usize::MAX,
        c,
    )
    .await
    .unwrap()
    .items
    .len()
}

async fn eventually_visible<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < BOUND * 3,
            "{what} still not visible after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// Two instances on one store, as two Lambda instances: a write through A is
/// seen at once by a strong read through B, and by an eventual read through
/// B within the staleness bound — for items and for query pages, before and
/// after A compacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_see_each_others_writes_within_the_bound() {
    for b in backends() {
        let store = b.store();
        let a = engine(&store, cached_config()).await;
        let bb = engine(&store, cached_config()).await;
        a.create_table(spec("tbl")).await.unwrap();
        for round in 0..3i64 {
            // B caches a miss, a query page and a hit.
            assert!(get(&bb, "tbl", &key("k", round)).await.is_none());
            let before = q(&bb, Consistency::Eventual).await;
            put(&a, "tbl", item("k", round, &[("round", n(round))])).await;

            // Strong reads through B see the write at once.
            assert!(
                get(&bb, "tbl", &key("k", round)).await.is_some(),
                "[{}] strong get missed a write",
                b.name
            );
            assert_eq!(
                q(&bb, Consistency::Strong).await,
                before + 1,
                "[{}] strong query missed a write",
                b.name
            );

            // Eventual reads through another fresh-cached instance catch up within the bound.
            let c = engine(&store, cached_config()).await;
            assert_eq!(q(&c, Consistency::Eventual).await, before + 1);
            put(&a, "tbl", item("k", 100 + round, &[])).await;
            let waited = eventually_visible("eventual get", || {
                let c = &c;
                async move {
                    c.get("tbl", &key("k", 100 + round), Consistency::Eventual)
                        .await
                        .unwrap()
                        .is_some()
                }
            })
            .await;
            assert!(
                waited <= BOUND + Duration::from_millis(150),
                "[{}] eventual read took {waited:?}",
                b.name
            );
            eventually_visible("eventual query", || {
                let c = &c;
                async move { q(c, Consistency::Eventual).await == before + 2 }
            })
            .await;
            a.compact("tbl").await.unwrap();
        }
        let stats = bb.cache_stats();
        let pages = stats.iter().find(|s| s.name == "pages").unwrap();
        assert!(
            pages.hits + pages.misses > 0,
            "[{}] the page cache was never consulted",
            b.name
        );
    }
}

/// Repeated reads are served from the caches: item and page hits, and no
/// store requests for a warm eventual read.
#[tokio::test]
async fn warm_reads_hit_the_caches() {
    let (counted, counter) =
        strata_store::counting::counting(Arc::new(object_store::memory::InMemory::new()));
    let store: Arc<dyn ObjectStore> = counted;
    let e = engine(&store, cached_config()).await;
    e.create_table(spec("tbl")).await.unwrap();
    for i in 0..50 {
        put(&e, "tbl", item("p", i, &[])).await;
    }
    e.compact("tbl").await.unwrap();
    let h = KeyValue::S("p".into());
    let cond = SortKeyCondition::Between(
        KeyValue::N(Number::from_i64(10)),
        KeyValue::N(Number::from_i64(19)),
    );
    for _ in 0..3 {
        assert!(e
            .get("tbl", &key("p", 7), Consistency::Eventual)
            .await
            .unwrap()
            .is_some());
        let p = e
            .query(
                "tbl",
                &h,
                &cond,
                true,
                100,
                None,
                usize::MAX,
                Consistency::Eventual,
            )
            .await
            .unwrap();
        assert_eq!(p.items.len(), 10);
    }
    let before = counter.snapshot();
    for _ in 0..100 {
        e.get("tbl", &key("p", 7), Consistency::Eventual)
            .await
            .unwrap();
        e.query(
            "tbl",
            &h,
            &cond,
            true,
            100,
            None,
            usize::MAX,
            Consistency::Eventual,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        (counter.snapshot() - before).total(),
        0,
        "warm eventual reads touched the store"
    );
    let stats = e.cache_stats();
    let by = |n: &str| stats.iter().find(|s| s.name == n).unwrap().clone();
    assert!(by("items").hits >= 100, "{:?}", by("items"));
    assert!(by("pages").hits >= 100, "{:?}", by("pages"));
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

/// A full scan of a table several times larger than the cache keeps every
/// cache within its byte bound, and the process does not grow by the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_within_the_bound_during_a_large_scan() {
    let b = &backends()[1]; // the file store: data on disk, not in this process
    let store = b.store();
    let loader = engine(
        &store,
        EngineConfig {
            default_partitions: 4,
            ..test_config()
        },
    )
    .await;
    loader.create_table(spec("big")).await.unwrap();
    let blob = Value::S("z".repeat(1000));
    let writes = (0..4000).map(|i| {
        let loader = &loader;
        let blob = blob.clone();
        async move {
            put(
                loader,
                "big",
                item(&format!("u{}", i % 97), i, &[("blob", blob)]),
            )
            .await
        }
    });
    futures::future::join_all(writes).await;
    loader.compact("big").await.unwrap();
    drop(loader);

    let budget: u64 = 1 << 20; // 1 MiB of cache for ~4 MB of items
    let e = engine(
        &store,
        EngineConfig {
            cache_bytes: budget,
            ..test_config()
        },
    )
    .await;
    let rss_before = resident_bytes();
    for _ in 0..2 {
        assert_eq!(scan_all(&e, "big", 500).await.len(), 4000);
    }
    let grown = resident_bytes().saturating_sub(rss_before);
    for s in e.cache_stats() {
        assert!(s.bytes <= s.capacity, "{s:?} over its bound");
    }
    let blocks = e
        .cache_stats()
        .into_iter()
        .find(|s| s.name == "blocks")
        .unwrap();
    assert!(
        blocks.evictions > 0,
        "the table fit in the cache: the test proves nothing ({blocks:?})"
    );
    assert!(
        grown < 24 << 20,
        "process grew by {} MB scanning a 4 MB table with a 1 MB cache",
        grown >> 20
    );
}

/// A torn object is rejected when it is loaded and never enters a cache:
/// the read fails every time rather than serving data once cached.
#[tokio::test]
async fn the_cache_never_serves_a_torn_object() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let w = engine(
        &store,
        EngineConfig {
            default_partitions: 1,
            ..test_config()
        },
    )
    .await;
    w.create_table(spec("tbl")).await.unwrap();
    for i in 0..30 {
        put(&w, "tbl", item("p", i, &[("v", Value::S("q".repeat(40)))])).await;
    }
    w.compact("tbl").await.unwrap();
    use futures::TryStreamExt;
    let runs: Vec<_> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_filter(|p| futures::future::ready(p.as_ref().contains("/runs/")))
        .try_collect()
        .await
        .unwrap();
    let bytes = store.get(&runs[0]).await.unwrap().bytes().await.unwrap();
    let mut torn = bytes.to_vec();
    torn[20] ^= 0xff;
    store
        .put(&runs[0], object_store::PutPayload::from(torn))
        .await
        .unwrap();
    let r = engine(
        &store,
        EngineConfig {
            default_partitions: 1,
            ..test_config()
        },
    )
    .await;
    for _ in 0..3 {
        let err = r
            .get("tbl", &key("p", 0), Consistency::Eventual)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    let items = r
        .cache_stats()
        .into_iter()
        .find(|s| s.name == "items")
        .unwrap();
    assert_eq!(items.bytes, 0, "a failed lookup was cached: {items:?}");
}

/// A deleted and re-created table never meets its predecessor's cache entries.
#[tokio::test]
async fn recreated_table_never_sees_old_cache_entries() {
    let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let e = engine(
        &store,
        EngineConfig {
            catalog_staleness: Duration::ZERO,
            ..cached_config()
        },
    )
    .await;
    e.create_table(spec("tbl")).await.unwrap();
    put(&e, "tbl", item("p", 1, &[])).await;
    e.compact("tbl").await.unwrap();
    let h = KeyValue::S("p".into());
    assert!(e
        .get("tbl", &key("p", 1), Consistency::Eventual)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        e.query(
            "tbl",
            &h,
            &SortKeyCondition::All,
            true,
            10,
            None,
            usize::MAX,
            Consistency::Eventual
        )
        .await
        .unwrap()
        .items
        .len(),
        1
    );
    e.delete_table("tbl").await.unwrap();
    e.create_table(spec("tbl")).await.unwrap();
    assert!(e
        .get("tbl", &key("p", 1), Consistency::Eventual)
        .await
        .unwrap()
        .is_none());
    assert!(e
        .query(
            "tbl",
            &h,
            &SortKeyCondition::All,
            true,
            10,
            None,
            usize::MAX,
            Consistency::Eventual
        )
        .await
        .unwrap()
        .items
        .is_empty());
}

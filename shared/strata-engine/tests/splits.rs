//! Partition splits (ARCHITECTURE.md, "Splits"): the invariants named
//! after them, against every backend in `common::backends()`.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan};
use strata_store::RequestKind;

use common::*;

fn one_partition(name: &str) -> TableSpec {
    TableSpec {
        partitions: Some(1),
        ..spec(name)
    }
}

fn value(i: i64) -> Value {
    Value::N(Number::from_i64(i))
}

/// Writers on 8 independent engines keep committing increments of 8
/// counters while a ninth splits every live partition, three times over
/// (1 → 8 partitions), compacting between: every acknowledged increment is
/// counted exactly once, on every engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn split_loses_no_write() {
    for b in backends() {
        let store = b.store();
        let engines: Vec<Arc<Engine>> =
            futures::future::join_all((0..9).map(|_| engine(&store, test_config())))
                .await
                .into_iter()
                .map(Arc::new)
                .collect();
        engines[0]
            .create_table(one_partition("counters"))
            .await
            .unwrap();
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..8).map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for (w, e) in engines[..8].iter().enumerate() {
            let (e, acked, stop) = (Arc::clone(e), Arc::clone(&acked), Arc::clone(&stop));
            let remote = b.is_remote();
            let name = b.name.clone();
            writers.push(tokio::spawn(async move {
                let mut i = w;
                while !stop.load(Ordering::SeqCst) {
                    // On S3 servers, paced: the seal must win a race too.
                    if remote {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let c = i % 8;
                    let op = WriteOp::update(key(&format!("c{c}"), 1), increment());
                    match e.write("counters", WriteRequest::single(op)).await {
                        Ok(_) => {
                            acked[c].fetch_add(1, Ordering::SeqCst);
                        }
                        // Lost every race for a while (8 writers on one
                        // partition): nothing committed, so try again.
                        Err(Error::Contention { .. }) => {}
                        Err(e) => panic!("[{name}] increment across splits: {e}"),
                    }
                    i += 1;
                }
            }));
        }
        let splitter = &engines[8];
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            for part in splitter.partitions("counters").await.unwrap() {
                splitter.split_partition("counters", part).await.unwrap();
            }
            splitter.compact("counters").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.await.unwrap();
        }
        let parts = splitter.partitions("counters").await.unwrap();
        assert_eq!(parts.len(), 8, "[{}] {parts:?}", b.name);
        for e in &engines {
            for c in 0..8 {
                let got = get(e, "counters", &key(&format!("c{c}"), 1)).await;
                let n = got.map_or(0, |i| num_attr(&i, "n"));
                assert_eq!(
                    n,
                    acked[c].load(Ordering::SeqCst) as i64,
                    "[{}] counter c{c}: lost or doubled increments",
                    b.name
                );
            }
        }
        let all = scan_keys(&engines[3], "counters", 3).await;
        assert_eq!(all.len(), 8, "[{}] the scan sees each counter once", b.name);
    }
}

/// Every key of a full scan, page by page (`limit` items a page).
async fn scan_keys(e: &Engine, table: &str, limit: usize) -> Vec<String> {
    scan_all(e, table, limit).await.iter().map(label).collect()
}

fn label(i: &Item) -> String {
    format!("{}/{}", str_attr(i, "pk"), num_attr(i, "sk"))
}

fn str_attr(i: &Item, name: &str) -> String {
    match i.get(name) {
        Some(Value::S(s)) => s.clone(),
        other => panic!("{name}: {other:?}"),
    }
}

/// A scan resumed from a page's last key after the table split (twice)
/// returns every item exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_resumed_across_splits_sees_every_item_once() {
    for b in backends() {
        let store = b.store();
        let e = engine(&store, test_config()).await;
        e.create_table(one_partition("scanned")).await.unwrap();
        let n = 40 * b.scale as i64;
        for i in 0..n {
            put(&e, "scanned", item(&format!("k{}", i % 23), i, &[])).await;
        }
        let mut seen = Vec::new();
        let mut after: Option<ItemKey> = None;
        let mut pages = 0;
        loop {
            let page = e
                .scan(
                    "scanned",
                    None,
                    after.as_ref(),
                    7,
                    1 << 20,
                    Consistency::Strong,
                )
                .await
                .unwrap();
            seen.extend(page.items.iter().map(|i| label(i)));
            pages += 1;
            if pages == 2 || pages == 4 {
                for part in e.partitions("scanned").await.unwrap() {
                    e.split_partition("scanned", part).await.unwrap();
                }
            }
            match page.last_key {
                Some(k) => after = Some(item_key(&k)),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "[{}] an item came twice", b.name);
        assert_eq!(seen.len() as i64, n, "[{}] items missing", b.name);
        assert_eq!(e.partitions("scanned").await.unwrap().len(), 4);
    }
}

/// The splitter dies after each step of a split (the seal, the fold, one
/// child's manifest, both, everything but the descriptor): another engine,
/// and the splitter's stale peers, read every acknowledged write, finish
/// the split on meeting the seal, and write on in the children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_finishes_after_crash() {
    // What fails (every PUT whose path holds it), and so where the split stops.
    let steps = [
        "/runs/",           // sealed; the seal's fold cannot write its SST
        "/p0000/manifest/", // sealed, SST written, fold not published
        "/p0001/manifest/", // folded; no child made
        "/p0002/manifest/", // one child made
        "/schema/",         // both children; no descriptor
    ];
    for b in backends() {
        for step in steps {
            let store = b.store();
            let peer = engine(&store, test_config()).await;
            peer.create_table(one_partition("crashy")).await.unwrap();
            let n = 10 * b.scale as i64;
            for i in 0..n {
                put(
                    &peer,
                    "crashy",
                    item(&format!("k{i}"), i, &[("v", value(i))]),
                )
                .await;
            }
            let (faulty, _) = with_faults(
                Arc::clone(&store),
                7,
                FaultPlan {
                    error_rate: 1.0,
                    kinds: vec![RequestKind::Put],
                    path_contains: step.to_string(),
                    ..FaultPlan::default()
                },
            );
            let faulty: Arc<dyn ObjectStore> = faulty;
            let splitter = Engine::with_store_unchecked(faulty, "faulty", test_config());
            let err = splitter.split_partition("crashy", 0).await;
            assert!(err.is_err(), "[{}] {step}: the split should stop", b.name);

            // A fresh engine reads everything, and its first write meets the
            // seal (or the split's descriptor) and goes to a child.
            let other = engine(&store, test_config()).await;
            for i in 0..n {
                let got = get(&other, "crashy", &key(&format!("k{i}"), i)).await;
                assert_eq!(
                    got.map(|g| num_attr(&g, "v")),
                    Some(i),
                    "[{}] {step}: k{i}",
                    b.name
                );
            }
            for i in n..n + 5 {
                put(
                    &other,
                    "crashy",
                    item(&format!("k{i}"), i, &[("v", value(i))]),
                )
                .await;
            }
            // The peer, whose handle predates the split, reads and writes on.
            put(&peer, "crashy", item("late", 0, &[("v", value(-1))])).await;
            for e in [&peer, &other] {
                for i in 0..n + 5 {
                    let got = get(e, "crashy", &key(&format!("k{i}"), i)).await;
                    assert_eq!(
                        got.map(|g| num_attr(&g, "v")),
                        Some(i),
                        "[{}] {step}",
                        b.name
                    );
                }
                assert!(get(e, "crashy", &key("late", 0)).await.is_some());
            }
            let parts = other.partitions("crashy").await.unwrap();
            let sealed = other.partition_stats("crashy").await.unwrap();
            assert_eq!(
                parts,
                vec![1, 2],
                "[{}] {step}: the split is finished",
                b.name
            );
            assert_eq!(sealed.len(), 2);
            let all = scan_keys(&other, "crashy", 4).await;
            assert_eq!(all.len() as i64, n + 6, "[{}] {step}", b.name);
            // Compaction and GC in the children keep every item.
            other.compact("crashy").await.unwrap();
            other.gc("crashy").await.unwrap();
            let fresh = engine(&store, test_config()).await;
            assert_eq!(scan_keys(&fresh, "crashy", 100).await.len() as i64, n + 6);
        }
    }
}

/// A child rewrites the SSTs it inherited (keeping only its own keys) once
/// nothing else is due, and GC then collects the parent's: once compaction
/// settles, a split costs no space, and every item is still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settled_split_leaves_no_parent_sst_behind() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            gc_grace: Duration::ZERO,
            clock_skew: Duration::ZERO,
            log_retention: Duration::ZERO,
            ..test_config()
        };
        let e = engine(&store, config.clone()).await;
        e.create_table(one_partition("roomy")).await.unwrap();
        for i in 0..200 {
            put(&e, "roomy", item(&format!("k{i}"), i, &[])).await;
        }
        e.compact("roomy").await.unwrap();
        assert!(!find_objects(&store, "/p0000/runs/").await.is_empty());
        e.split_partition("roomy", 0).await.unwrap();
        for _ in 0..50 {
            let out = e.compact("roomy").await.unwrap();
            if out.iter().all(|o| *o == CompactionOutcome::NothingToDo) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        e.gc("roomy").await.unwrap();
        let left = find_objects(&store, "/p0000/runs/").await;
        assert!(
            left.is_empty(),
            "[{}] the parent's SSTs stay: {left:?}",
            b.name
        );
        assert_eq!(scan_all(&e, "roomy", 50).await.len(), 200, "[{}]", b.name);
        let fresh = engine(&store, config).await;
        assert_eq!(
            scan_all(&fresh, "roomy", 50).await.len(),
            200,
            "[{}]",
            b.name
        );
        assert!(fresh
            .get("roomy", &key("k7", 7), Consistency::Strong)
            .await
            .unwrap()
            .is_some());
    }
}

/// Splits by commit rate: a partition whose log grows faster than
/// `split_commits_per_sec` over `split_window` is split by its next
/// compaction, one written slower is not, and the hot table's items all
/// stay readable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_committing_fast_splits() {
    for b in backends() {
        let store = b.store();
        let window = Duration::from_millis(800);
        let config = EngineConfig {
            split_commits_per_sec: 10,
            split_window: window,
            ..test_config()
        };
        let e = Arc::new(engine(&store, config).await);
        e.create_table(one_partition("hot")).await.unwrap();
        e.create_table(one_partition("cold")).await.unwrap();
        // The first compaction opens each partition's measuring window.
        e.compact("hot").await.unwrap();
        e.compact("cold").await.unwrap();
        let start = std::time::Instant::now();
        let mut written = 0i64;
        while start.elapsed() < window + Duration::from_millis(400) {
            put(&e, "hot", item(&format!("k{written}"), written, &[])).await;
            written += 1;
        }
        put(&e, "cold", item("only", 1, &[])).await;
        let rate = written as f64 / start.elapsed().as_secs_f64();
        e.compact("hot").await.unwrap();
        e.compact("cold").await.unwrap();
        assert_eq!(
            e.partitions("hot").await.unwrap().len(),
            2,
            "[{}] {written} commits at {rate:.0}/s did not split",
            b.name
        );
        assert_eq!(e.partitions("cold").await.unwrap(), vec![0], "[{}]", b.name);
        assert_eq!(
            scan_all(&e, "hot", 100).await.len(),
            written as usize,
            "[{}]",
            b.name
        );
    }
}

/// A moment after a split that the reader's descriptor does not show yet
/// (another instance split the partition and wrote to its children) holds
/// the children's writes: the reader finishes the split and reads them,
/// never the parent's frozen state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moment_after_an_unseen_split_holds_the_childrens_writes() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            // The reader keeps its descriptor for the whole test.
            catalog_staleness: Duration::from_secs(600),
            ..test_config()
        };
        let reader = engine(&store, config.clone()).await;
        reader.create_table(one_partition("moments")).await.unwrap();
        for i in 0..20 {
            put(&reader, "moments", item(&format!("k{i}"), i, &[])).await;
        }
        let splitter = engine(&store, config).await;
        splitter.split_partition("moments", 0).await.unwrap();
        for i in 20..40 {
            put(&splitter, "moments", item(&format!("k{i}"), i, &[])).await;
        }
        assert_eq!(
            reader.partitions("moments").await.unwrap(),
            vec![0],
            "[{}] stale",
            b.name
        );
        let t = strata_engine::clock::now_micros();
        let moments = reader.moments_of("moments", 0, t).await.unwrap();
        assert_eq!(moments.len(), 2, "[{}] the children's moments", b.name);
        let mut seen = BTreeSet::new();
        for (_, mut m) in moments {
            while let Some(chunk) = m.next_chunk(7).await.unwrap() {
                for (k, v) in chunk {
                    assert!(!v.deleted);
                    assert!(seen.insert(k), "[{}] a key in two moments", b.name);
                }
            }
        }
        assert_eq!(seen.len(), 40, "[{}] every item at T", b.name);
    }
}

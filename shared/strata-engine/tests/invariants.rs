//! One test per invariant of the design (ARCHITECTURE.md, "Invariants"),
//! each run against every backend in `common::backends()`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan, NonAtomicCreateStore};
use strata_store::RequestKind;

use common::*;

/// 1. No lost update: independent engines (separate views and caches, as
/// separate Lambda instances) incrementing one item concurrently lose none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_lost_update() {
    for b in backends() {
        let store = b.store();
        let engines: Vec<Arc<Engine>> =
            futures::future::join_all((0..8).map(|_| engine(&store, test_config())))
                .await
                .into_iter()
                .map(Arc::new)
                .collect();
        engines[0].create_table(spec("counters")).await.unwrap();
        let tasks_per_engine = 2;
        let per_task = 3 * b.scale;
        let mut handles = Vec::new();
        for e in &engines {
            for _ in 0..tasks_per_engine {
                let e = Arc::clone(e);
                handles.push(tokio::spawn(async move {
                    for _ in 0..per_task {
                        let op = WriteOp::update(key("c", 1), increment());
                        e.write("counters", WriteRequest::single(op))
                            .await
                            .expect("increment commits");
                    }
                }));
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        let expected = (engines.len() * tasks_per_engine * per_task) as i64;
        for e in &engines {
            let got = get(e, "counters", &key("c", 1))
                .await
                .expect("counter exists");
            assert_eq!(num_attr(&got, "n"), expected, "[{}] lost updates", b.name);
        }
    }
}

/// 2. No invisible acknowledged write: a writer whose view went stale while
/// others wrote, compacted and garbage-collected never acknowledges a write
/// at a sequence number that compaction already covers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_invisible_ack() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            gc_grace: Duration::from_millis(300),
            clock_skew: Duration::ZERO,
            log_retention: Duration::ZERO,
            default_partitions: 1,
            ..test_config()
        };
        let stale = engine(&store, config.clone()).await;
        let busy = engine(&store, config.clone()).await;
        stale.create_table(spec("tbl")).await.unwrap();
        let mut acked = Vec::new();
        put(&stale, "tbl", item("a", 0, &[])).await;
        acked.push(key("a", 0));
        for round in 1..=3 {
            // Others move the log on, fold it into a run and delete the segments.
            for i in 0..5 {
                put(&busy, "tbl", item("b", round * 10 + i, &[])).await;
                acked.push(key("b", round * 10 + i));
            }
            busy.compact("tbl").await.unwrap();
            tokio::time::sleep(Duration::from_millis(400)).await;
            let report = busy.gc("tbl").await.unwrap();
            assert!(
                report.segments > 0,
                "[{}] GC deleted nothing: the test would prove nothing",
                b.name
            );
            // The stale writer's view still points at the old tail.
            put(&stale, "tbl", item("a", round, &[])).await;
            acked.push(key("a", round));
        }
        // Every acknowledged write is visible to a brand-new instance.
        let fresh = engine(&store, config).await;
        for k in &acked {
            assert!(
                get(&fresh, "tbl", k).await.is_some(),
                "[{}] acknowledged write {k:?} is invisible",
                b.name
            );
        }
        assert_eq!(scan_all(&fresh, "tbl", 7).await.len(), acked.len());
    }
}

/// 3. Idempotent retry: a commit whose response was lost is not applied
/// twice, whether the engine retries it or the client does with its token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_retry() {
    for b in backends() {
        let plan = FaultPlan {
            lost_response_rate: 0.3,
            error_rate: 0.1,
            kinds: vec![RequestKind::Put],
            path_contains: "/log/".into(),
            ..Default::default()
        };
        let (faulty, faults) = with_faults(b.store(), 42, plan);
        let e = engine(&(faulty as Arc<dyn ObjectStore>), test_config()).await;
        e.create_table(spec("tbl")).await.unwrap();
        let increments = 10 * b.scale;
        for i in 0..increments {
            let req = WriteRequest::single(WriteOp::update(key("c", 1), increment()))
                .with_token(format!("inc-{i}"));
            // The client retries with the same token until it hears success.
            let mut tries = 0;
            loop {
                tries += 1;
                match e.write("tbl", req.clone()).await {
                    Ok(_) => break,
                    Err(err) if err.is_retryable() && tries < 50 => continue,
                    Err(err) => panic!("[{}] unexpected error: {err}", b.name),
                }
            }
        }
        faults.set_enabled(false);
        let got = get(&e, "tbl", &key("c", 1)).await.unwrap();
        assert_eq!(
            num_attr(&got, "n"),
            increments as i64,
            "[{}] an increment was applied twice or lost",
            b.name
        );
        assert!(
            faults.injected().lost_responses > 0,
            "[{}] no response was lost: the test proved nothing",
            b.name
        );

        // A retry after the token's segment was folded into a run is still recognised.
        let req =
            WriteRequest::single(WriteOp::update(key("c", 1), increment())).with_token("late");
        assert!(!e.write("tbl", req.clone()).await.unwrap().replayed);
        e.compact("tbl").await.unwrap();
        let other = engine(&e.store().clone(), test_config()).await;
        assert!(other.write("tbl", req).await.unwrap().replayed);
        let got = get(&other, "tbl", &key("c", 1)).await.unwrap();
        assert_eq!(num_attr(&got, "n"), increments as i64 + 1, "[{}]", b.name);
    }
}

/// Records every PUT: an unconditional write to an existing object, or to a
/// sequenced or immutable name, is a violation.
#[derive(Debug)]
struct AuditStore {
    inner: Arc<dyn ObjectStore>,
    violations: Mutex<Vec<String>>,
    created: Mutex<HashMap<String, usize>>,
}

impl std::fmt::Display for AuditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Audit({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for AuditStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let name = location.to_string();
        if !matches!(opts.mode, PutMode::Create) && !strata_engine::paths::is_probe(&name) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("unconditional PUT of {name}"));
        }
        let res = self.inner.put_opts(location, payload, opts).await;
        if res.is_ok() {
            *self.created.lock().unwrap().entry(name).or_default() += 1;
        }
        res
    }
    async fn put_multipart_opts(
        &self,
        l: &Path,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.violations
            .lock()
            .unwrap()
            .push(format!("multipart upload of {l}"));
        self.inner.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(l, o).await
    }
    async fn get_range(&self, l: &Path, r: std::ops::Range<u64>) -> object_store::Result<Bytes> {
        self.inner.get_range(l, r).await
    }
    async fn delete(&self, l: &Path) -> object_store::Result<()> {
        self.inner.delete(l).await
    }
    fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(p)
    }
    fn list_with_offset(
        &self,
        p: Option<&Path>,
        o: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(p, o)
    }
    async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(p).await
    }
    async fn copy(&self, f: &Path, t: &Path) -> object_store::Result<()> {
        self.violations
            .lock()
            .unwrap()
            .push(format!("copy onto {t}"));
        self.inner.copy(f, t).await
    }
    async fn copy_if_not_exists(&self, f: &Path, t: &Path) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(f, t).await
    }
}

/// 4. Immutable objects are never overwritten: every PUT the engine makes,
/// across writes, races, compaction, GC and table deletion, is a conditional
/// create, and no name is ever successfully written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn immutable_never_overwritten() {
    for b in backends() {
        let audit = Arc::new(AuditStore {
            inner: b.store(),
            violations: Mutex::default(),
            created: Mutex::default(),
        });
        let store: Arc<dyn ObjectStore> = audit.clone();
        // A grace short enough that GC collects within the test, long enough
        // that a compaction on LocalStack or moto under a loaded CI machine
        // publishes within half of it (else it is abandoned, by design).
        let config = EngineConfig {
            gc_grace: Duration::from_millis(400),
            clock_skew: Duration::ZERO,
            log_retention: Duration::ZERO,
            max_runs: 2,
            ..test_config()
        };
        let engines = [
            engine(&store, config.clone()).await,
            engine(&store, config.clone()).await,
        ];
        engines[0].create_table(spec("tbl")).await.unwrap();
        for round in 0..3 {
            let writes =
                (0..4 * b.scale as i64).map(|i| {
                    let e = &engines[(i % 2) as usize];
                    async move {
                        put(e, "tbl", item(&format!("k{}", i % 5), i + round * 100, &[])).await
                    }
                });
            futures::future::join_all(writes).await;
            let (a, c) = futures::join!(engines[0].compact("tbl"), engines[1].compact("tbl"));
            a.unwrap();
            c.unwrap();
            tokio::time::sleep(Duration::from_millis(450)).await;
            engines[0].gc("tbl").await.unwrap();
        }
        engines[1].delete_table("tbl").await.unwrap();
        engines[0].create_table(spec("tbl")).await.unwrap();
        put(&engines[0], "tbl", item("again", 1, &[])).await;
        let v = audit.violations.lock().unwrap().clone();
        assert!(v.is_empty(), "[{}] {v:?}", b.name);
        let twice: Vec<_> = audit
            .created
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k.clone())
            .collect();
        assert!(twice.is_empty(), "[{}] written twice: {twice:?}", b.name);
    }
}

/// Flips one byte in the middle of an object.
async fn corrupt(store: &Arc<dyn ObjectStore>, path: &Path) {
    let bytes = store.get(path).await.unwrap().bytes().await.unwrap();
    let mut v = bytes.to_vec();
    let mid = v.len() / 2;
    v[mid] ^= 0x20;
    store.put(path, PutPayload::from(v)).await.unwrap();
}

async fn find(store: &Arc<dyn ObjectStore>, part: &str) -> Vec<Path> {
    use futures::TryStreamExt;
    let mut v: Vec<Path> = store
        .list(None)
        .map_ok(|m| m.location)
        .try_filter(|p| futures::future::ready(p.as_ref().contains(part)))
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// 5. A torn or corrupt object is detected by its checksum and never served
/// as data: log segments, run blocks and manifests alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_object_detected() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            default_partitions: 1,
            ..test_config()
        };
        let e = engine(&store, config.clone()).await;
        e.create_table(spec("tbl")).await.unwrap();
        for i in 0..20 {
            put(&e, "tbl", item("p", i, &[("v", Value::S("x".repeat(50)))])).await;
        }
        e.compact("tbl").await.unwrap();
        put(&e, "tbl", item("p", 100, &[])).await;

        // A corrupt (torn) log segment in the tail: an empty commit. Its
        // contents are never served, and the partition goes on serving and
        // accepting writes after it (never refusing everything forever).
        let logs = find(&store, "/log/").await;
        corrupt(&store, logs.last().unwrap()).await;
        let fresh = engine(&store, config.clone()).await;
        let got = fresh
            .get("tbl", &key("p", 100), Consistency::Strong)
            .await
            .unwrap();
        assert_eq!(got, None, "[{}] a torn segment was served", b.name);
        assert!(get(&fresh, "tbl", &key("p", 3)).await.is_some());
        put(&fresh, "tbl", item("p", 101, &[])).await;
        let other = engine(&store, config.clone()).await;
        assert!(get(&other, "tbl", &key("p", 101)).await.is_some());
        assert!(get(&other, "tbl", &key("p", 100)).await.is_none());

        // A corrupt run block: the point read that needs it fails, loudly.
        let store2 = b.store();
        let e2 = engine(&store2, config.clone()).await;
        e2.create_table(spec("tbl")).await.unwrap();
        for i in 0..20 {
            put(&e2, "tbl", item("p", i, &[("v", Value::S("y".repeat(50)))])).await;
        }
        e2.compact("tbl").await.unwrap();
        let runs = find(&store2, "/runs/").await;
        let bytes = store2.get(&runs[0]).await.unwrap().bytes().await.unwrap();
        let mut v = bytes.to_vec();
        v[10] ^= 1; // inside the first data block
        store2.put(&runs[0], PutPayload::from(v)).await.unwrap();
        let fresh = engine(&store2, config.clone()).await;
        let err = fresh
            .get("tbl", &key("p", 0), Consistency::Strong)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "[{}] {err}", b.name);
        let err = fresh
            .scan("tbl", None, None, 100, usize::MAX, Consistency::Strong)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "[{}] {err}", b.name);

        // A truncated manifest.
        let manifests = find(&store2, "/manifest/").await;
        let bytes = store2
            .get(&manifests[0])
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store2
            .put(
                &manifests[0],
                PutPayload::from(bytes.slice(..bytes.len() - 3)),
            )
            .await
            .unwrap();
        let fresh = engine(&store2, config).await;
        let err = fresh
            .get("tbl", &key("p", 0), Consistency::Strong)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "[{}] {err}", b.name);
    }
}

/// Everything a reader can observe of the table, by every read path.
async fn observe(e: &Engine, keys: &[ItemKey]) -> Vec<String> {
    let mut out = Vec::new();
    for k in keys {
        out.push(format!("{:?}", get(e, "tbl", k).await));
    }
    for pk in ["p0", "p1", "p2"] {
        let h = KeyValue::S(pk.into());
        for (cond, fwd, limit) in [
            (SortKeyCondition::All, true, 1000),
            (SortKeyCondition::All, false, 7),
            (
                SortKeyCondition::Between(
                    KeyValue::N(Number::from_i64(5)),
                    KeyValue::N(Number::from_i64(30)),
                ),
                true,
                1000,
            ),
            (
                SortKeyCondition::Gt(KeyValue::N(Number::from_i64(20))),
                false,
                1000,
            ),
        ] {
            let p = e
                .query(
                    "tbl",
                    &h,
                    &cond,
                    fwd,
                    limit,
                    None,
                    usize::MAX,
                    Consistency::Strong,
                )
                .await
                .unwrap();
            out.push(format!("{:?} {:?}", p.items, p.last_key));
        }
    }
    out.push(format!("{:?}", scan_all(e, "tbl", 13).await));
    out
}

/// 6. Compaction never changes what any read returns: point reads, queries
/// both ways with limits, and paged scans, before and after each compaction
/// (including merges of all runs), from the compacting engine and a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compaction_preserves_reads() {
    use rand::{Rng, SeedableRng};
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            max_runs: 2,
            ..test_config()
        };
        let e = engine(&store, config.clone()).await;
        e.create_table(spec("tbl")).await.unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(6);
        let keys: Vec<ItemKey> = (0..3)
            .flat_map(|p| (0..40).map(move |s| key(&format!("p{p}"), s)))
            .collect();
        for round in 0..4 {
            for _ in 0..10 * b.scale {
                let k = &keys[rng.random_range(0..keys.len())];
                let op = if rng.random_bool(0.25) {
                    WriteOp::delete(k.clone())
                } else {
                    let mut it = Item::from([("pk".to_string(), k.hash.to_value())]);
                    it.insert("sk".into(), k.range.clone().unwrap().to_value());
                    it.insert("r".into(), n(round));
                    WriteOp::put(k.clone(), it)
                };
                e.write("tbl", WriteRequest::single(op)).await.unwrap();
            }
            let before = observe(&e, &keys).await;
            e.compact("tbl").await.unwrap();
            assert_eq!(
                observe(&e, &keys).await,
                before,
                "[{}] round {round}: compaction changed a read",
                b.name
            );
            let fresh = engine(&store, config.clone()).await;
            assert_eq!(
                observe(&fresh, &keys).await,
                before,
                "[{}] round {round}: a fresh reader disagrees",
                b.name
            );
        }
    }
}

/// 7. Startup refuses an object store whose conditional create is not
/// atomic, and says so clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refuses_non_atomic_store() {
    for b in backends() {
        let racy: Arc<dyn ObjectStore> = Arc::new(NonAtomicCreateStore::new(b.store()));
        let err = Engine::with_store(racy, "racy-s3", test_config())
            .await
            .err()
            .expect("refused");
        let msg = err.to_string();
        assert!(
            msg.contains("racy-s3") && msg.contains("not atomic"),
            "[{}] {msg}",
            b.name
        );
        // The real store itself passes.
        Engine::with_store(b.store(), &b.name, test_config())
            .await
            .expect("atomic store accepted");
    }
}

/// 61. A refused write saw every acknowledged write: a conditional write
/// that fails (or an update refused for the item's value) was evaluated on
/// a view brought up to date after it began, not on one merely fresh
/// enough to write with. Found by the crash test's history checker: engine
/// B, whose view predates A's acknowledged write, answered
/// ConditionalCheckFailed for a condition A's write had made true, and a
/// refusal writes nothing, so nothing told B its view was old.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_write_saw_every_acknowledged_write() {
    for b in backends() {
        let store = b.store();
        let (a, stale) = (
            engine(&store, test_config()).await,
            engine(&store, test_config()).await,
        );
        a.create_table(spec("refusals")).await.unwrap();
        let k = key("r", 1);
        let is = |want: i64| -> Condition {
            Arc::new(move |cur: Option<&Item>| Ok(cur.is_some_and(|i| num_attr(i, "v") == want)))
        };
        for round in 0..5i64 {
            // B's view is loaded (and young enough to write with) ...
            let _ = get(&stale, "refusals", &k).await;
            // ... then A's write is acknowledged ...
            put(&a, "refusals", item("r", 1, &[("v", n(round))])).await;
            // ... and B's conditional write on what A wrote must see it.
            let op = WriteOp::put(k.clone(), item("r", 1, &[("v", n(round)), ("by", n(1))]))
                .with_condition(is(round));
            stale
                .write("refusals", WriteRequest::single(op))
                .await
                .unwrap_or_else(|e| panic!("[{}] round {round}: {e}", b.name));
        }
    }
}

//! The durability and protocol guarantees of issue 11, one test each, named
//! after the guarantee (ARCHITECTURE.md, "Invariants and their tests").
//! Each scripts the one interleaving that used to lose, double or misreport
//! a write: a store answer lost or held in flight at a chosen moment, a
//! process paused at a chosen request, a clock frozen or set wrong.

mod common;

use std::sync::Arc;
use std::time::Duration;

use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, PutPayload};
use strata_engine::clock::Clock;
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan};
use strata_store::script::{ScriptedStore, Stall};
use strata_store::RequestKind;

use common::*;

const T: &str = "tbl";

fn one_partition(config: EngineConfig) -> EngineConfig {
    EngineConfig {
        default_partitions: 1,
        ..config
    }
}

/// Settings under which GC deletes as early as the rules allow.
fn eager_gc(grace_ms: u64) -> EngineConfig {
    one_partition(EngineConfig {
        gc_grace: Duration::from_millis(grace_ms),
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        ..test_config()
    })
}

/// A fresh store of `b`, and the same behind a [`ScriptedStore`] (as the
/// scripted handle and as a plain store).
fn scripted_store(
    b: &Backend,
) -> (
    Arc<dyn ObjectStore>,
    Arc<ScriptedStore>,
    Arc<dyn ObjectStore>,
) {
    let inner = b.store();
    let scripted = Arc::new(ScriptedStore::new(Arc::clone(&inner)));
    let store: Arc<dyn ObjectStore> = scripted.clone();
    (inner, scripted, store)
}

async fn increment_of(e: &Engine, k: ItemKey) -> Result<Committed> {
    e.write(T, WriteRequest::single(WriteOp::update(k, increment())))
        .await
}

/// Attribute `n` of the item (None when the item or `n` is absent).
async fn n_of(e: &Engine, k: &ItemKey) -> Option<i64> {
    let item = get(e, T, k).await?;
    item.contains_key("n").then(|| num_attr(&item, "n"))
}

// ------------------------------------------------------------------ item 1

/// Every PUT the engine is acknowledged for on the local store was synced
/// (file and directory) before the acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_are_synced_to_disk() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let local = Arc::new(strata_store::local::LocalStore::new(
        LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ));
    let (counted, counter) = strata_store::counting::counting(local.clone());
    let store: Arc<dyn ObjectStore> = counted;
    let e = engine(&store, one_partition(test_config())).await;
    let before = (counter.snapshot().put, local.syncs());
    e.create_table(spec(T)).await.unwrap();
    for i in 0..10 {
        put(&e, T, item("p", i, &[])).await;
    }
    e.compact(T).await.unwrap();
    let puts = counter.snapshot().put - before.0;
    let syncs = local.syncs() - before.1;
    assert!(puts >= 13, "{puts} puts");
    // Each PUT: its file and its directory (plus directories it created).
    assert!(syncs >= 2 * puts, "{syncs} syncs for {puts} puts");
}

/// A segment object that is empty or torn (what a crash leaves of an
/// unsynced write) is an empty commit: never served, and the partition
/// keeps serving and accepting writes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_or_empty_segment_never_blocks_the_partition() {
    for b in backends() {
        let store = b.store();
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        for i in 0..4 {
            put(&e, T, item("p", i, &[])).await;
        }
        let mut logs = find_objects(&store, "/log/").await;
        logs.sort();
        let last = logs.pop().unwrap();
        let second_last = logs.pop().unwrap();
        // One segment empty, one cut short.
        store
            .put(&last, PutPayload::from(Vec::new()))
            .await
            .unwrap();
        let bytes = store
            .get(&second_last)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store
            .put(
                &second_last,
                PutPayload::from(bytes.slice(..bytes.len() / 2)),
            )
            .await
            .unwrap();
        let fresh = engine(&store, one_partition(test_config())).await;
        assert!(get(&fresh, T, &key("p", 3)).await.is_none(), "[{}]", b.name);
        assert!(get(&fresh, T, &key("p", 2)).await.is_none(), "[{}]", b.name);
        assert!(get(&fresh, T, &key("p", 1)).await.is_some(), "[{}]", b.name);
        let c = put(&fresh, T, item("p", 9, &[])).await;
        assert_eq!(c.seq, 5, "[{}] the torn seqs stay taken", b.name);
        let other = engine(&store, one_partition(test_config())).await;
        assert!(get(&other, T, &key("p", 9)).await.is_some(), "[{}]", b.name);
        let read = other.read_log(T, 0, 1, 10).await.unwrap().1;
        assert_eq!(read.segments.len(), 5, "[{}]", b.name);
        assert!(read.segments[3].mutations.is_empty(), "[{}]", b.name);
        other.compact(T).await.unwrap();
        let after = engine(&store, one_partition(test_config())).await;
        assert_eq!(scan_all(&after, T, 10).await.len(), 3, "[{}]", b.name);
    }
}

// ------------------------------------------------------------------ item 3

/// A writer that stalled between evaluating and sending (longer than half
/// the grace period, while others wrote, compacted and collected that very
/// seq) and whose create's answer was then lost never acknowledges a write
/// nobody will read: the view's age is checked right before sending, and
/// every path that acknowledges confirms visibility.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_ack_from_a_view_that_aged_before_sending() {
    for b in backends() {
        let (inner, scripted, scripted_dyn) = scripted_store(&b);
        let config = eager_gc(2000);
        let other = engine(&inner, config.clone()).await;
        other.create_table(spec(T)).await.unwrap();
        put(&other, T, item("p", 0, &[])).await;
        other.compact(T).await.unwrap();
        let writer = Arc::new(engine(&scripted_dyn, config.clone()).await);
        assert!(get(&writer, T, &key("q", 0)).await.is_none()); // loads the view
                                                                // The writer evaluates, needs the run, and stalls on reading it.
        let gate = scripted.stall_next(&[RequestKind::Get], "/runs/", Stall::BeforeSending);
        let w = Arc::clone(&writer);
        let task = tokio::spawn(async move { increment_of(&w, key("p", 0)).await });
        gate.reached().await;
        // Meanwhile seq 2 is written, folded and collected.
        put(&other, T, item("q", 1, &[])).await;
        other.compact(T).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2300)).await;
        other.gc(T).await.unwrap();
        scripted.lose_next_answer(&[RequestKind::Put], "/log/");
        gate.open();
        // Not sent from the aged view: refreshed, evaluated again, committed.
        let res = task.await.unwrap();
        assert!(res.is_ok(), "[{}] {res:?}", b.name);
        let fresh = engine(&inner, config.clone()).await;
        assert_eq!(
            n_of(&fresh, &key("p", 0)).await,
            Some(1),
            "[{}] acknowledged, yet invisible",
            b.name
        );
        assert!(get(&fresh, T, &key("q", 1)).await.is_some(), "[{}]", b.name);
    }
}

// ------------------------------------------------------------------ item 4

/// A create S3 refuses with 409 (a conditional write of that name still
/// in flight: here the writer's own) is resolved by reading until it shows,
/// and an increment is applied once, acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_still_in_flight_is_applied_once() {
    for b in backends() {
        let (inner, scripted, store) = scripted_store(&b);
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        increment_of(&e, key("c", 0)).await.unwrap();
        scripted.hold_next_create("/log/");
        let c = increment_of(&e, key("c", 0)).await.unwrap();
        assert_eq!(scripted.held_creates(), 0, "[{}]", b.name);
        assert_eq!(c.seq, 2, "[{}]", b.name);
        assert_eq!(n_of(&e, &key("c", 0)).await, Some(2), "[{}]", b.name);
        let fresh = engine(&inner, one_partition(test_config())).await;
        assert_eq!(
            n_of(&fresh, &key("c", 0)).await,
            Some(2),
            "[{}] applied twice",
            b.name
        );
    }
}

/// A create refused with 409 that does not show within a few reads stays
/// unresolved; when the view later learns that seq is held by that very
/// attempt, its results are the answer: applied once, acknowledged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolved_create_is_settled_by_who_holds_its_seq() {
    for b in backends() {
        let (inner, scripted, store) = scripted_store(&b);
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        increment_of(&e, key("c", 0)).await.unwrap();
        // Lands only after the writer's settling reads and its next probe.
        scripted.hold_next_create_for("/log/", 5);
        let c = increment_of(&e, key("c", 0)).await.unwrap();
        assert_eq!(scripted.held_creates(), 0, "[{}]", b.name);
        assert_eq!(c.seq, 2, "[{}]", b.name);
        let fresh = engine(&inner, one_partition(test_config())).await;
        assert_eq!(
            n_of(&fresh, &key("c", 0)).await,
            Some(2),
            "[{}] applied twice",
            b.name
        );
        assert_eq!(fresh.log_tail(T, 0).await.unwrap(), 2, "[{}]", b.name);
    }
}

/// A compaction whose manifest create is refused with 409 while it is still
/// in flight never deletes the run that manifest names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_never_deletes_a_run_its_manifest_may_name() {
    for b in backends() {
        let (inner, scripted, store) = scripted_store(&b);
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        for i in 0..5 {
            put(&e, T, item("p", i, &[])).await;
        }
        scripted.hold_next_create("/manifest/");
        e.compact(T).await.unwrap();
        let fresh = engine(&inner, one_partition(test_config())).await;
        assert_eq!(scan_all(&fresh, T, 10).await.len(), 5, "[{}]", b.name);
        assert!(get(&fresh, T, &key("p", 4)).await.is_some(), "[{}]", b.name);
    }
}

// ------------------------------------------------------------------ item 5

/// An instance frozen between invocations (its clock jumps on thaw) neither
/// serves eventually consistent reads from its frozen view nor writes into
/// a table deleted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thawed_instance_rechecks_what_it_knew() {
    for b in backends() {
        let store = b.store();
        let clock = Clock::system();
        let frozen = engine(
            &store,
            EngineConfig {
                clock: clock.clone(),
                ..test_config()
            },
        )
        .await;
        let other = engine(&store, test_config()).await;
        other.create_table(spec(T)).await.unwrap();
        put(&other, T, item("p", 1, &[("v", n(1))])).await;
        let read = frozen
            .get(T, &key("p", 1), Consistency::Eventual)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(num_attr(&read, "v"), 1);
        put(&other, T, item("p", 1, &[("v", n(2))])).await;
        // An hour frozen: the view and the descriptor are an hour old.
        clock.jump(Duration::from_secs(3600));
        let read = frozen
            .get(T, &key("p", 1), Consistency::Eventual)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(num_attr(&read, "v"), 2, "[{}] served a frozen view", b.name);
        other.delete_table(T).await.unwrap();
        clock.jump(Duration::from_secs(3600));
        let res = frozen
            .write(
                T,
                WriteRequest::single(WriteOp::put(key("p", 2), item("p", 2, &[]))),
            )
            .await;
        assert!(
            matches!(res, Err(Error::TableNotFound(_))),
            "[{}] wrote into a deleted table: {res:?}",
            b.name
        );
    }
}

// ------------------------------------------------------------------ item 6

/// GC measures a manifest's age by the later of its writer's clock and the
/// store's, so a compactor whose clock lags cannot shorten the grace
/// period: a reader's runs stay while its view may use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_grace_holds_whatever_the_compactor_clock() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            max_runs: 1, // every compaction merges: the old run becomes garbage
            ..eager_gc(4000)
        };
        let lagging = engine(
            &store,
            EngineConfig {
                clock: Clock::skewed(-3_600_000_000),
                ..config.clone()
            },
        )
        .await;
        lagging.create_table(spec(T)).await.unwrap();
        for i in 0..20 {
            put(
                &lagging,
                T,
                item("p", i, &[("v", Value::S("x".repeat(40)))]),
            )
            .await;
        }
        lagging.compact(T).await.unwrap();
        // The run is older than the grace period by the store's clock.
        tokio::time::sleep(Duration::from_millis(4300)).await;
        let reader = engine(&store, config.clone()).await;
        assert!(get(&reader, T, &key("p", 0)).await.is_some());
        put(&lagging, T, item("p", 100, &[])).await;
        lagging.compact(T).await.unwrap();
        let collector = engine(&store, config.clone()).await;
        collector.gc(T).await.unwrap();
        // The reader's view (a second old) still names the first run.
        for i in 1..20 {
            let got = reader.get(T, &key("p", i), Consistency::Strong).await;
            assert!(
                matches!(got, Ok(Some(_))),
                "[{}] run collected under a reader: {got:?}",
                b.name
            );
        }
    }
}

// ------------------------------------------------------------------ item 7

/// A compaction paused between writing its run and publishing its manifest
/// for longer than half the grace period gives up: it never publishes a
/// manifest naming a run GC may have collected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_manifest_names_a_collected_run() {
    for b in backends() {
        let (inner, scripted, store) = scripted_store(&b);
        let config = eager_gc(2000);
        let compactor = Arc::new(engine(&store, config.clone()).await);
        compactor.create_table(spec(T)).await.unwrap();
        for i in 0..5 {
            put(&compactor, T, item("p", i, &[])).await;
        }
        // A first compaction, old enough for GC to act on.
        compactor.compact(T).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2300)).await;
        for i in 5..10 {
            put(&compactor, T, item("p", i, &[])).await;
        }
        let gate = scripted.stall_next(&[RequestKind::Put], "/runs/", Stall::BeforeAnswering);
        let c = Arc::clone(&compactor);
        let task = tokio::spawn(async move { c.compact(T).await });
        gate.reached().await;
        tokio::time::sleep(Duration::from_millis(2300)).await;
        let collector = engine(&inner, config.clone()).await;
        collector.gc(T).await.unwrap();
        gate.open();
        let abandoned = task.await.unwrap();
        assert!(abandoned.is_err(), "[{}] {abandoned:?}", b.name);
        let fresh = engine(&inner, config.clone()).await;
        let all = fresh
            .scan(T, None, None, 100, usize::MAX, Consistency::Strong)
            .await;
        assert!(
            all.as_ref().is_ok_and(|p| p.items.len() == 10),
            "[{}] {all:?}",
            b.name
        );
        // The next compaction starts afresh and succeeds.
        compactor.compact(T).await.unwrap();
        let fresh = engine(&inner, config.clone()).await;
        assert_eq!(scan_all(&fresh, T, 10).await.len(), 10, "[{}]", b.name);
    }
}

// ------------------------------------------------------------------ item 9

/// A point-in-time read at T holds every write acknowledged before T, even
/// after a version replicated from a region whose clock runs an hour ahead
/// was overwritten here (last-writer-wins stamps may run ahead; commit times
/// do not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moment_holds_every_write_acknowledged_before_it() {
    for b in backends() {
        let store = b.store();
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        let ahead = Stamp {
            ts_micros: clock::now_micros() + 3_600_000_000,
            region: Arc::from("eu-west-1"),
        };
        e.apply_replicated(T, vec![(Arc::new(item("p", 0, &[])), false, ahead.clone())])
            .await
            .unwrap();
        // Overwritten here: stamped after the replicated version.
        put(&e, T, item("p", 0, &[("v", n(1))])).await;
        for i in 1..5 {
            put(&e, T, item("p", i, &[])).await;
        }
        let t = clock::now_micros();
        let mut moment = e.point_in_time(T, 0, t).await.unwrap();
        let mut seen = 0;
        while let Some(chunk) = moment.next_chunk(100).await.unwrap() {
            seen += chunk.iter().filter(|(_, v)| !v.deleted).count();
        }
        assert_eq!(
            seen, 5,
            "[{}] acknowledged writes missing from the moment",
            b.name
        );
        // The overwrite still wins over the replicated version.
        let got = get(&e, T, &key("p", 0)).await.unwrap();
        assert_eq!(num_attr(&got, "v"), 1);
        let v = e.versions_after(T, 0, None, 10).await.unwrap();
        assert!(v[0].1.ts_micros > ahead.ts_micros, "[{}]", b.name);
    }
}

// ------------------------------------------------------------ write stall

/// What one ~1 KB item's write adds to a tail's charge (`item_footprint`
/// with its key and version), rounded up.
const ONE_WRITE: usize = 4 << 10;

/// Writers faster than the flush wait for it once the tail held in memory
/// passes `max_tail_bytes`: with the flush's SST upload held, a writer
/// stops, the tail stays within the bound, and once the upload goes on the
/// writer finishes and every write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_flush_past_the_tail_bound() {
    for b in backends() {
        let (_inner, scripted, store) = scripted_store(&b);
        let config = EngineConfig {
            default_partitions: 1,
            auto_compact: true,
            compact_after_bytes: 4 << 10,
            max_tail_bytes: 16 << 10,
            ..test_config()
        };
        let e = Arc::new(engine(&store, config.clone()).await);
        e.create_table(spec(T)).await.unwrap();
        let gate = scripted.stall_next(&[RequestKind::Put], "/runs/", Stall::BeforeSending);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let (e, done) = (Arc::clone(&e), Arc::clone(&done));
            tokio::spawn(async move {
                for i in 0..60 {
                    put(&e, T, item("p", i, &[("v", Value::S("x".repeat(1000)))])).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        gate.reached().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stalled_at = done.load(std::sync::atomic::Ordering::SeqCst);
        let tail = e.tail_bytes(T).await.unwrap()[0];
        assert!(stalled_at < 60, "[{}] the writer never waited", b.name);
        assert!(
            tail <= config.max_tail_bytes + ONE_WRITE,
            "[{}] tail grew to {tail} bytes past the {} bound",
            b.name,
            config.max_tail_bytes
        );
        gate.open();
        writer.await.unwrap();
        assert_eq!(scan_all(&e, T, 100).await.len(), 60, "[{}]", b.name);
    }
}

/// The same bound for every partition's tail together: with a partition's
/// own bound far away (1 MB), its writer still waits once the engine's
/// tails pass `max_total_tail_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_for_the_flush_past_the_engine_wide_tail_bound() {
    for b in backends() {
        let (_inner, scripted, store) = scripted_store(&b);
        let config = EngineConfig {
            default_partitions: 4,
            auto_compact: true,
            compact_after_bytes: 4 << 10,
            max_tail_bytes: 1 << 20,
            max_total_tail_bytes: 16 << 10,
            ..test_config()
        };
        let e = Arc::new(engine(&store, config.clone()).await);
        e.create_table(spec(T)).await.unwrap();
        let gate = scripted.stall_next(&[RequestKind::Put], "/runs/", Stall::BeforeSending);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = {
            let (e, done) = (Arc::clone(&e), Arc::clone(&done));
            tokio::spawn(async move {
                for i in 0..60 {
                    put(&e, T, item("p", i, &[("v", Value::S("x".repeat(1000)))])).await;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            })
        };
        gate.reached().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stalled_at = done.load(std::sync::atomic::Ordering::SeqCst);
        let total: usize = e.tail_bytes(T).await.unwrap().iter().sum();
        assert!(stalled_at < 60, "[{}] the writer never waited", b.name);
        assert!(
            total <= config.max_total_tail_bytes + ONE_WRITE,
            "[{}] tails grew to {total} bytes past the {} bound",
            b.name,
            config.max_total_tail_bytes
        );
        gate.open();
        writer.await.unwrap();
        assert_eq!(scan_all(&e, T, 100).await.len(), 60, "[{}]", b.name);
    }
}

/// The engine-wide bound holds however many partitions are written, each
/// far below its own flush threshold: past `max_total_tail_bytes`, a
/// partition's writer flushes once its tail passes a sixteenth of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_tails_stay_within_the_engine_wide_bound() {
    for b in backends() {
        let parts = 8;
        let config = EngineConfig {
            default_partitions: parts,
            auto_compact: true,
            compact_after_bytes: 64 << 10,
            compact_after_segments: 1_000,
            max_tail_bytes: 1 << 20,
            max_total_tail_bytes: 16 << 10,
            ..test_config()
        };
        let e = engine(&b.store(), config.clone()).await;
        e.create_table(spec(T)).await.unwrap();
        let items = 20 * parts as i64;
        let mut peak = 0;
        for i in 0..items {
            let v = Value::S("x".repeat(1000));
            put(&e, T, item(&format!("p{i}"), i, &[("v", v)])).await;
            peak = peak.max(e.tail_bytes(T).await.unwrap().iter().sum::<usize>());
        }
        // Each partition ends under a sixteenth of 64 KB, plus the write
        // that took it past, plus what was in flight.
        let bound = config.max_total_tail_bytes + parts as usize * ((4 << 10) + ONE_WRITE);
        assert!(
            peak <= bound,
            "[{}] tails peaked at {peak} bytes, past {bound}",
            b.name
        );
        assert_eq!(
            scan_all(&e, T, 100).await.len(),
            items as usize,
            "[{}]",
            b.name
        );
    }
}

/// Flushes take turns past `max_concurrent_flushes` (each holds the SST it
/// writes): with one slot and the first flush's upload held, a second
/// partition over its threshold does not start its upload until the first
/// is done; then both land and every write is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_take_turns_past_the_flush_slots() {
    for b in backends() {
        let (_inner, scripted, store) = scripted_store(&b);
        let config = EngineConfig {
            default_partitions: 2,
            auto_compact: true,
            compact_after_bytes: 4 << 10,
            max_tail_bytes: 1 << 20,
            max_total_tail_bytes: 1 << 20,
            max_concurrent_flushes: 1,
            ..test_config()
        };
        let e = Arc::new(engine(&store, config).await);
        e.create_table(spec(T)).await.unwrap();
        let first = scripted.stall_next(&[RequestKind::Put], "/runs/", Stall::BeforeSending);
        let second = scripted.stall_next(&[RequestKind::Put], "/runs/", Stall::BeforeSending);
        // Items under many partition keys: both partitions pass 4 KB.
        let items = 40;
        for i in 0..items {
            let v = Value::S("x".repeat(1000));
            put(&e, T, item(&format!("p{i}"), i, &[("v", v)])).await;
        }
        let tails = e.tail_bytes(T).await.unwrap();
        assert!(tails.iter().all(|t| *t > 4 << 10), "[{}] {tails:?}", b.name);
        first.reached().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !second.was_reached(),
            "[{}] a second flush uploaded beside the first",
            b.name
        );
        first.open();
        second.reached().await;
        second.open();
        e.compact(T).await.unwrap();
        assert_eq!(e.tail_bytes(T).await.unwrap(), vec![0, 0], "[{}]", b.name);
        assert_eq!(
            scan_all(&e, T, 100).await.len(),
            items as usize,
            "[{}]",
            b.name
        );
    }
}

// ------------------------------------------------- objects deleted by hand

/// A committed log segment deleted by hand (a gap below later segments) is
/// reported as an error naming the object, never served around: an
/// instance would otherwise take the gap for the tail and lose the writes
/// after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_deleted_by_hand_is_an_error_naming_it() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            default_partitions: 1,
            ..test_config()
        };
        let e = engine(&store, config.clone()).await;
        e.create_table(spec(T)).await.unwrap();
        for i in 0..8 {
            put(&e, T, item("p", i, &[])).await;
        }
        let mut logs = find_objects(&store, "/log/").await;
        logs.sort();
        let victim = logs[3].clone();
        store.delete(&victim).await.unwrap();
        let fresh = engine(&store, config).await;
        let err = fresh
            .get(T, &key("p", 7), Consistency::Strong)
            .await
            .expect_err("a gap in the log must not be served");
        let text = err.to_string();
        assert!(
            matches!(err, Error::Corrupt { .. }) && text.contains(victim.as_ref()),
            "[{}] {text}",
            b.name
        );
    }
}

// ------------------------------------------------ creates that keep failing

/// A store that fails every create of a log segment before it takes effect
/// (a full disk, a store down) makes a write report that its outcome is
/// unknown (retryable: DynamoDB's 500) after its read-backs find nothing,
/// never success; nothing is applied, and the next write once the store
/// recovers commits at the seq the failed one could not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_that_keep_failing_are_reported_unknown_and_apply_nothing() {
    for b in backends() {
        let (store, faults) = with_faults(b.store(), 7, FaultPlan::default());
        let store: Arc<dyn ObjectStore> = store;
        let e = engine(&store, one_partition(test_config())).await;
        e.create_table(spec(T)).await.unwrap();
        increment_of(&e, key("c", 0)).await.unwrap();
        faults.set_plan(FaultPlan {
            error_rate: 1.0,
            kinds: vec![RequestKind::Put],
            path_contains: "/log/".into(),
            ..FaultPlan::default()
        });
        let err = increment_of(&e, key("c", 0))
            .await
            .expect_err("no create landed");
        assert!(
            matches!(err, Error::OutcomeUnknown { .. }) && err.is_retryable(),
            "[{}] {err:?}",
            b.name
        );
        faults.set_enabled(false);
        let c = increment_of(&e, key("c", 0)).await.unwrap();
        assert_eq!(c.seq, 2, "[{}]", b.name);
        let fresh = engine(&store, one_partition(test_config())).await;
        assert_eq!(n_of(&fresh, &key("c", 0)).await, Some(2), "[{}]", b.name);
    }
}

/// A store whose listings leave out one object, as a listing that ran
/// while the object was created may (readdir on a local directory, a LIST
/// that passed the name before the create): no snapshot.
#[derive(Debug)]
struct ListingMisses {
    inner: Arc<dyn ObjectStore>,
    hidden: std::sync::Mutex<Option<object_store::path::Path>>,
}

impl std::fmt::Display for ListingMisses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ListingMisses({})", self.inner)
    }
}

impl ListingMisses {
    fn filter(
        &self,
        s: futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::StreamExt;
        let hidden = self.hidden.lock().unwrap().clone();
        s.filter(move |m| {
            let keep = !matches!((m, &hidden), (Ok(m), Some(h)) if &m.location == h);
            futures::future::ready(keep)
        })
        .boxed()
    }
}

#[async_trait::async_trait]
impl ObjectStore for ListingMisses {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }
    async fn delete(&self, location: &object_store::path::Path) -> object_store::Result<()> {
        self.inner.delete(location).await
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.filter(self.inner.list(prefix))
    }
    fn list_with_offset(
        &self,
        prefix: Option<&object_store::path::Path>,
        offset: &object_store::path::Path,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.filter(self.inner.list_with_offset(prefix, offset))
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.inner.copy(from, to).await
    }
    async fn copy_if_not_exists(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
    ) -> object_store::Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A reader far enough behind to catch up by LIST meets a listing that
/// left out a segment created while it ran, with later ones listed: that
/// is no deleted segment (the guarantee "a gap is an error" is for objects
/// really gone), so it reads on and serves every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_that_misses_a_new_segment_is_no_gap() {
    let store = Arc::new(ListingMisses {
        inner: Arc::new(object_store::memory::InMemory::new()),
        hidden: std::sync::Mutex::new(None),
    });
    let dyn_store: Arc<dyn ObjectStore> = store.clone();
    let (reader, writer) = (
        engine(&dyn_store, one_partition(test_config())).await,
        engine(&dyn_store, one_partition(test_config())).await,
    );
    reader.create_table(spec(T)).await.unwrap();
    put(&reader, T, item("k", 0, &[])).await;
    let tail = reader.log_tail(T, 0).await.unwrap();
    for i in 1..=10 {
        put(&writer, T, item("k", i, &[])).await;
    }
    // Probed one by one up to tail + 4, then listed: tail + 7 left out.
    let d = reader.describe_table(T).await.unwrap();
    let hidden = paths::PartitionPaths::new(T, &d.incarnation, 0).log(tail + 7);
    *store.hidden.lock().unwrap() = Some(hidden);
    for i in 0..=10 {
        assert!(get(&reader, T, &key("k", i)).await.is_some(), "item {i}");
    }
}

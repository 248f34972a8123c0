//! Global tables: regions on separate stores converge item for item.
//!
//! Region pairs: two in-memory stores always; with `STRATA_TEST_S3` naming
//! two servers (the test command: LocalStack and moto), one region on each.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use strata_engine::replication::{add_replica, remove_replica, Regions, Replicator};
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan};

const TABLE: &str = "global";

struct Region {
    name: String,
    engine: Arc<Engine>,
}

/// Region layouts to run on: per layout, the backend of each region (a
/// backend makes a fresh store every time). Always all in memory; with two
/// or more S3 servers configured, regions spread over them.
fn layouts(regions: usize) -> Vec<(String, Vec<Arc<common::Backend>>)> {
    let all: Vec<Arc<common::Backend>> = backends().into_iter().map(Arc::new).collect();
    let memory = all
        .iter()
        .find(|b| b.name == "memory")
        .cloned()
        .expect("memory");
    let mut out = vec![("memory".to_string(), vec![memory; regions])];
    let remote: Vec<_> = all.iter().filter(|b| b.is_remote()).cloned().collect();
    if remote.len() >= 2 {
        let picked: Vec<_> = (0..regions)
            .map(|i| Arc::clone(&remote[i % remote.len()]))
            .collect();
        let names: Vec<&str> = picked.iter().map(|b| b.name.as_str()).collect();
        out.push((names.join("+"), picked));
    }
    out
}

fn memory_backend() -> Arc<common::Backend> {
    layouts(1).remove(0).1.remove(0)
}

fn region_name(i: usize) -> String {
    ["us-east-1", "eu-west-1", "ap-south-1"][i].to_string()
}

async fn open_regions(stores: &[Arc<common::Backend>]) -> Vec<Region> {
    let mut out = Vec::new();
    for (i, b) in stores.iter().enumerate() {
        let config = EngineConfig {
            region: region_name(i),
            eventual_staleness: Duration::from_millis(0),
            ..test_config()
        };
        out.push(Region {
            name: region_name(i),
            engine: Arc::new(engine(&b.store(), config).await),
        });
    }
    out
}

/// The engines of every region but `i`, as a region's configuration names them.
fn others(regions: &[Region], i: usize) -> Regions {
    regions
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, r)| (r.name.clone(), Arc::clone(&r.engine)))
        .collect()
}

fn replicator(regions: &[Region], i: usize) -> Replicator {
    Replicator::new(Arc::clone(&regions[i].engine), others(regions, i))
}

/// A global table over every region, created in the first and extended.
async fn global_table(regions: &[Region]) {
    regions[0]
        .engine
        .create_table(spec(TABLE))
        .await
        .expect("create");
    for r in &regions[1..] {
        add_replica(&regions[0].engine, &others(regions, 0), TABLE, &r.name)
            .await
            .expect("add replica");
    }
}

/// Replicates every region until a full pass sends nothing.
async fn settle(reps: &[Replicator]) {
    for _ in 0..10 {
        let mut sent = 0;
        for r in reps {
            sent += r.run_once().await.expect("replicate").sent;
        }
        if sent == 0 {
            return;
        }
    }
    panic!("replication did not settle");
}

async fn contents(e: &Engine) -> BTreeMap<String, Item> {
    scan_all(e, TABLE, 97)
        .await
        .into_iter()
        .map(|i| (format!("{:?}/{:?}", i["pk"], i["sk"]), i))
        .collect()
}

async fn assert_converged(regions: &[Region]) -> BTreeMap<String, Item> {
    let first = contents(&regions[0].engine).await;
    for r in &regions[1..] {
        let other = contents(&r.engine).await;
        let differ: Vec<_> = first
            .keys()
            .chain(other.keys())
            .filter(|k| first.get(*k) != other.get(*k))
            .take(5)
            .collect();
        assert!(
            differ.is_empty(),
            "{} and {} differ at {differ:?}",
            regions[0].name,
            r.name
        );
    }
    first
}

/// A random write to one of a few keys: puts, deletes, ADDs to a number and
/// to a string set, so regions overlap on every kind of change.
async fn random_write(e: &Engine, rng: &mut rand::rngs::StdRng, region: &str, i: usize) {
    let k = rng.random_range(0..12);
    let key = key("k", k);
    let req = match rng.random_range(0..4) {
        0 => WriteOp::put(
            key,
            item(
                "k",
                k,
                &[("by", Value::S(region.into())), ("i", n(i as i64))],
            ),
        ),
        1 => WriteOp::delete(key),
        2 => WriteOp::update(key, increment()),
        _ => {
            let tag = format!("{region}-{i}");
            WriteOp::update(
                key,
                Arc::new(move |cur: Option<&Item>| {
                    let mut item = cur.cloned().unwrap_or_default();
                    let mut set = match item.get("tags") {
                        Some(Value::SS(s)) => s.clone(),
                        _ => Default::default(),
                    };
                    if !set.contains(&tag) {
                        set.push(tag.clone());
                        set.sort();
                    }
                    item.insert("tags".into(), Value::SS(set));
                    Ok(Some(item))
                }),
            )
        }
    };
    e.write(TABLE, WriteRequest::single(req))
        .await
        .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_converge() {
    for (layout, stores) in layouts(2) {
        let regions = open_regions(&stores).await;
        global_table(&regions).await;
        let reps: Vec<Replicator> = (0..2).map(|i| replicator(&regions, i)).collect();
        let writes = if layout == "memory" { 300 } else { 60 };
        let mut tasks = Vec::new();
        for (i, r) in regions.iter().enumerate() {
            for t in 0..2 {
                let e = Arc::clone(&r.engine);
                let name = r.name.clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = rand::rngs::StdRng::seed_from_u64((i * 10 + t) as u64);
                    for w in 0..writes {
                        random_write(&e, &mut rng, &name, w).await;
                    }
                }));
            }
        }
        // Replicate while the writes run, then to the end.
        let reps = Arc::new(reps);
        let running = {
            let reps = Arc::clone(&reps);
            tokio::spawn(async move {
                for _ in 0..20 {
                    for r in reps.iter() {
                        r.run_once().await.expect("replicate");
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        running.await.unwrap();
        settle(&reps).await;
        let items = assert_converged(&regions).await;
        assert!(!items.is_empty(), "{layout}: something survived");
        // Tombstones win too: a key deleted last in one region is absent in both.
        for r in &regions {
            r.engine.compact(TABLE).await.unwrap();
        }
        assert_converged(&regions).await;
        eprintln!("{layout}: {} items converged", items.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitioned_regions_converge_after_healing() {
    for (layout, stores) in layouts(2) {
        let regions = open_regions(&stores).await;
        global_table(&regions).await;
        // Both sides write while no replicator runs (the link is down).
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for w in 0..80 {
            let i = w % 2;
            random_write(&regions[i].engine, &mut rng, &regions[i].name, w).await;
        }
        let a = contents(&regions[0].engine).await;
        let b = contents(&regions[1].engine).await;
        assert_ne!(a, b, "{layout}: the regions diverged while partitioned");
        // Compaction and GC on both sides meanwhile change nothing.
        for r in &regions {
            r.engine.compact(TABLE).await.unwrap();
        }
        let reps: Vec<Replicator> = (0..2).map(|i| replicator(&regions, i)).collect();
        settle(&reps).await;
        assert_converged(&regions).await;
    }
}

/// Every replicated version in `e`'s log, by (key, stamp): each must appear once.
async fn replicated_versions(e: &Engine) -> HashMap<(Vec<u8>, Stamp), usize> {
    let d = e.describe_table(TABLE).await.unwrap();
    let mut seen = HashMap::new();
    for part in d.map().all() {
        // A child's log starts after its parent's seal.
        let from = strata_engine::partition_map::parent(d.partitions, part)
            .and_then(|p| d.map().split_of(p).map(|s| s.seal_seq + 1))
            .unwrap_or(1);
        let (_, read) = e.read_log(TABLE, part, from, 100_000).await.unwrap();
        assert!(!read.trimmed);
        for seg in &read.segments {
            for m in &seg.mutations {
                if let Some(s) = &m.replicated {
                    *seen.entry((m.key.clone(), s.clone())).or_insert(0) += 1;
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicator_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    for (layout, stores) in layouts(2) {
        let regions = open_regions(&stores).await;
        global_table(&regions).await;
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for w in 0..120 {
            random_write(&regions[0].engine, &mut rng, "us-east-1", w).await;
            // Keys that only ever get one write: "nothing lost" is exact.
            put(
                &regions[0].engine,
                TABLE,
                item("once", w as i64, &[("w", n(w as i64))]),
            )
            .await;
        }
        // Kill the replicator at random moments, each time a fresh one (a
        // new process: nothing remembered but the cursors in the store).
        let mut kills = 0;
        // The target answers slowly (1 ms a request), so the kills land
        // inside batches rather than after them.
        let slow: Arc<dyn object_store::ObjectStore> = strata_store::latency::with_latency(
            Arc::clone(regions[1].engine.store()),
            strata_store::latency::LatencyProfile {
                get: Duration::from_millis(1),
                put: Duration::from_millis(1),
                list: Duration::from_millis(1),
                head: Duration::from_millis(1),
                delete: Duration::from_millis(1),
            },
        )
        .0;
        for delay_ms in [2u64, 5, 9, 14, 20, 30, 45, 60, 80] {
            let target = Arc::new(Engine::with_store_unchecked(
                Arc::clone(&slow),
                "slow",
                EngineConfig {
                    region: regions[1].name.clone(),
                    ..test_config()
                },
            ));
            let rep = Arc::new(Replicator::new(
                Arc::clone(&regions[0].engine),
                BTreeMap::from([(regions[1].name.clone(), target)]),
            ));
            let task = tokio::spawn({
                let rep = Arc::clone(&rep);
                async move { rep.run_once().await }
            });
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if !task.is_finished() {
                kills += 1;
            }
            task.abort();
            let _ = task.await;
        }
        // And with the target store failing requests, some after they landed.
        let faulty = {
            let (store, _faults) = with_faults(
                Arc::clone(regions[1].engine.store()),
                3,
                FaultPlan {
                    error_rate: 0.2,
                    lost_response_rate: 0.2,
                    ..FaultPlan::default()
                },
            );
            let config = EngineConfig {
                region: regions[1].name.clone(),
                ..test_config()
            };
            let store: Arc<dyn object_store::ObjectStore> = store;
            Arc::new(Engine::with_store_unchecked(store, "faulty", config))
        };
        let flaky = Replicator::new(
            Arc::clone(&regions[0].engine),
            BTreeMap::from([(regions[1].name.clone(), faulty)]),
        );
        for _ in 0..5 {
            let _ = flaky.run_once().await;
        }
        settle(&[replicator(&regions, 0)]).await;
        assert_converged(&regions).await;
        for w in 0..120 {
            assert!(
                get(&regions[1].engine, TABLE, &key("once", w))
                    .await
                    .is_some(),
                "{layout}: once/{w} lost"
            );
        }
        let dup: Vec<_> = replicated_versions(&regions[1].engine)
            .await
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect();
        assert!(dup.is_empty(), "{layout}: applied twice: {dup:?}");
        eprintln!("{layout}: killed {kills} replicators mid-run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_regions_converge() {
    for (layout, stores) in layouts(3) {
        let regions = open_regions(&stores).await;
        global_table(&regions).await;
        for r in &regions {
            let d = r.engine.describe_table(TABLE).await.unwrap();
            assert_eq!(d.replicas, vec!["ap-south-1", "eu-west-1", "us-east-1"]);
        }
        let reps: Vec<Replicator> = (0..3).map(|i| replicator(&regions, i)).collect();
        let writes = if layout == "memory" { 200 } else { 40 };
        let mut tasks = Vec::new();
        for (i, r) in regions.iter().enumerate() {
            let e = Arc::clone(&r.engine);
            let name = r.name.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + i as u64);
                for w in 0..writes {
                    random_write(&e, &mut rng, &name, w).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        settle(&reps).await;
        assert_converged(&regions).await;
    }
}

#[tokio::test]
async fn replica_added_later_is_backfilled_and_removed_cleanly() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let regions = open_regions(&stores).await;
    let a = &regions[0].engine;
    a.create_table(spec(TABLE)).await.unwrap();
    // More keys than one backfill chunk holds.
    for w in 0..2500 {
        put(a, TABLE, item("early", w, &[("w", n(w))])).await;
    }
    a.compact(TABLE).await.unwrap();
    a.write(
        TABLE,
        WriteRequest::single(WriteOp::delete(key("early", 3))),
    )
    .await
    .unwrap();
    let d = add_replica(a, &others(&regions, 0), TABLE, "eu-west-1")
        .await
        .unwrap();
    assert_eq!(d.replicas, vec!["eu-west-1", "us-east-1"]);
    settle(&[replicator(&regions, 0), replicator(&regions, 1)]).await;
    let items = assert_converged(&regions).await;
    assert_eq!(items.len(), 2499);
    // Adding it twice is refused; so is a region with no store.
    assert!(add_replica(a, &others(&regions, 0), TABLE, "eu-west-1")
        .await
        .is_err());
    let err = add_replica(a, &others(&regions, 0), TABLE, "sa-east-1")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no store is configured"), "{err}");
    let d = remove_replica(a, &others(&regions, 0), TABLE, "eu-west-1")
        .await
        .unwrap();
    assert!(d.replicas.is_empty());
    assert!(matches!(
        regions[1].engine.describe_table(TABLE).await,
        Err(Error::TableNotFound(_))
    ));
}

#[tokio::test]
async fn later_local_write_beats_a_replicated_version_from_a_clock_ahead() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let regions = open_regions(&stores).await;
    global_table(&regions).await;
    let b = &regions[1].engine;
    // A version from a region whose clock is an hour ahead arrives first.
    let ahead = Stamp {
        ts_micros: (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64)
            + 3_600_000_000,
        region: Arc::from("us-east-1"),
    };
    let applied = b
        .apply_replicated(
            TABLE,
            vec![(Arc::new(item("c", 1, &[("v", n(1))])), false, ahead.clone())],
        )
        .await
        .unwrap();
    assert_eq!(applied, 1);
    // Sending it again changes nothing.
    let again = b
        .apply_replicated(
            TABLE,
            vec![(Arc::new(item("c", 1, &[("v", n(1))])), false, ahead)],
        )
        .await
        .unwrap();
    assert_eq!(again, 0);
    // A local overwrite after it must win everywhere, not lose to the clock.
    put(b, TABLE, item("c", 1, &[("v", n(2))])).await;
    settle(&[replicator(&regions, 0), replicator(&regions, 1)]).await;
    let items = assert_converged(&regions).await;
    assert_eq!(items.values().next().map(|i| num_attr(i, "v")), Some(2));
}

#[tokio::test]
async fn two_writes_of_one_key_in_one_commit_replicate_as_the_last() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let regions = open_regions(&stores).await;
    global_table(&regions).await;
    let a = &regions[0].engine;
    let reps = [replicator(&regions, 0), replicator(&regions, 1)];
    settle(&reps).await; // past the initial backfill: tailing the log from here
                         // One commit (one log segment, one stamp) writing the key twice.
    a.write(
        TABLE,
        WriteRequest {
            ops: vec![
                WriteOp::put(key("dup", 1), item("dup", 1, &[("v", n(1))])),
                WriteOp::put(key("dup", 1), item("dup", 1, &[("v", n(2))])),
            ],
            token: None,
        },
    )
    .await
    .unwrap();
    settle(&reps).await;
    let items = assert_converged(&regions).await;
    assert_eq!(items.values().next().map(|i| num_attr(i, "v")), Some(2));
}

#[tokio::test]
async fn a_replicated_batch_records_the_state_before_it_as_old_image() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let regions = open_regions(&stores).await;
    regions[0]
        .engine
        .create_table(TableSpec {
            keep_old_images: true,
            ..spec(TABLE)
        })
        .await
        .unwrap();
    add_replica(&regions[0].engine, &others(&regions, 0), TABLE, "eu-west-1")
        .await
        .unwrap();
    let b = &regions[1].engine;
    let stamp = |ts| Stamp {
        ts_micros: ts,
        region: Arc::from("us-east-1"),
    };
    let it = Arc::new(item("k", 1, &[("v", n(1))]));
    // Put then delete of a key B never had: B commits only the delete,
    // with no old image (a stream shows no record for it).
    b.apply_replicated(
        TABLE,
        vec![
            (Arc::clone(&it), false, stamp(10)),
            (Arc::new(item("k", 1, &[])), true, stamp(11)),
        ],
    )
    .await
    .unwrap();
    let d = b.describe_table(TABLE).await.unwrap();
    let mut found = Vec::new();
    for part in 0..d.partitions {
        let (_, read) = b.read_log(TABLE, part, 1, 100).await.unwrap();
        for seg in read.segments {
            found.extend(
                seg.mutations
                    .iter()
                    .map(|m| (m.deleted, m.old_image.is_some())),
            );
        }
    }
    assert_eq!(found, vec![(true, false)]);
}

#[tokio::test]
async fn log_older_than_retention_is_replaced_by_a_backfill() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let mut regions = open_regions(&stores).await;
    global_table(&regions).await;
    settle(&[replicator(&regions, 0)]).await;
    put(&regions[0].engine, TABLE, item("old", 1, &[])).await;
    regions[0]
        .engine
        .write(TABLE, WriteRequest::single(WriteOp::delete(key("old", 1))))
        .await
        .unwrap();
    put(&regions[0].engine, TABLE, item("kept", 1, &[])).await;
    // A replicator whose retention has already passed for those segments
    // must not send them from the log (their tombstones may have expired
    // elsewhere): it backfills the current versions instead.
    let mut config = EngineConfig {
        region: regions[0].name.clone(),
        ..test_config()
    };
    config.set_log_retention(Duration::ZERO);
    let source = Arc::new(Engine::with_store_unchecked(
        Arc::clone(regions[0].engine.store()),
        "a",
        config,
    ));
    regions[0].engine = source;
    let report = replicator(&regions, 0).run_once().await.unwrap();
    assert!(report.backfills > 0, "{report:?}");
    assert_eq!(report.segments, 0, "{report:?}");
    let items = assert_converged(&regions).await;
    assert_eq!(items.len(), 1);
}

/// Every version a region holds reaches every current replica: a replica
/// added after another was removed receives the removed region's items
/// (their origin is no longer a member, so the regions holding them send
/// them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_added_after_a_removal_receives_every_version() {
    for (layout, stores) in layouts(3) {
        let regions = open_regions(&stores).await;
        let (a, b, c) = (&regions[0], &regions[1], &regions[2]);
        a.engine.create_table(spec(TABLE)).await.unwrap();
        add_replica(&a.engine, &others(&regions, 0), TABLE, &b.name)
            .await
            .unwrap();
        for i in 0..5 {
            put(&a.engine, TABLE, item("a", i, &[])).await;
            put(&b.engine, TABLE, item("b", i, &[])).await;
        }
        b.engine
            .write(TABLE, WriteRequest::single(WriteOp::delete(key("a", 0))))
            .await
            .unwrap();
        settle(&[replicator(&regions, 0), replicator(&regions, 1)]).await;
        assert_eq!(contents(&a.engine).await.len(), 9, "[{layout}]");
        remove_replica(&a.engine, &others(&regions, 0), TABLE, &b.name)
            .await
            .unwrap();
        add_replica(&a.engine, &others(&regions, 0), TABLE, &c.name)
            .await
            .unwrap();
        settle(&[replicator(&regions, 0), replicator(&regions, 2)]).await;
        let held = contents(&c.engine).await;
        assert_eq!(held, contents(&a.engine).await, "[{layout}]");
        assert_eq!(held.len(), 9, "[{layout}] the new replica misses items");
        // Later writes still flow both ways, and nothing is sent twice over.
        put(&c.engine, TABLE, item("c", 1, &[])).await;
        settle(&[replicator(&regions, 0), replicator(&regions, 2)]).await;
        assert_eq!(contents(&a.engine).await.len(), 10, "[{layout}]");
    }
}

/// When a member leaves, versions it wrote that reached only some of the
/// others still reach all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_departed_region_versions_reach_every_remaining_member() {
    for (layout, stores) in layouts(3) {
        let regions = open_regions(&stores).await;
        global_table(&regions).await;
        let (a, b, c) = (&regions[0], &regions[1], &regions[2]);
        // Cursors in place (the first pass backfills, sending everything).
        settle(&[replicator(&regions, 0), replicator(&regions, 2)]).await;
        // A version written in B reaches A (as B's replicator sends it),
        // and B leaves before it reached C.
        let stamp = Stamp {
            ts_micros: strata_engine::clock::now_micros(),
            region: Arc::from(b.name.as_str()),
        };
        let version = Arc::new(item("b", 1, &[("v", n(1))]));
        a.engine
            .apply_replicated(TABLE, vec![(version, false, stamp)])
            .await
            .unwrap();
        settle(&[replicator(&regions, 0), replicator(&regions, 2)]).await;
        assert!(contents(&c.engine).await.is_empty(), "[{layout}]");
        remove_replica(&a.engine, &others(&regions, 0), TABLE, &b.name)
            .await
            .unwrap();
        settle(&[replicator(&regions, 0), replicator(&regions, 2)]).await;
        let held = contents(&c.engine).await;
        assert_eq!(held.len(), 1, "[{layout}] C never got B's item");
        assert_eq!(held, contents(&a.engine).await, "[{layout}]");
    }
}

/// A region that joins, writes, and leaves before its versions reached
/// every member: members that replicated while it was one backfill again
/// once it has left, so its versions still reach everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_that_joined_and_left_still_reaches_every_member() {
    for (layout, stores) in layouts(3) {
        let regions = open_regions(&stores).await;
        let (a, b, c) = (&regions[0], &regions[1], &regions[2]);
        a.engine.create_table(spec(TABLE)).await.unwrap();
        add_replica(&a.engine, &others(&regions, 0), TABLE, &b.name)
            .await
            .unwrap();
        put(&a.engine, TABLE, item("a", 1, &[])).await;
        settle(&[replicator(&regions, 0), replicator(&regions, 1)]).await;
        add_replica(&a.engine, &others(&regions, 0), TABLE, &c.name)
            .await
            .unwrap();
        // C's version reaches A only (as C's replicator would send it).
        let stamp = Stamp {
            ts_micros: strata_engine::clock::now_micros(),
            region: Arc::from(c.name.as_str()),
        };
        a.engine
            .apply_replicated(TABLE, vec![(Arc::new(item("c", 1, &[])), false, stamp)])
            .await
            .unwrap();
        // A replicates while C is a member: C's version is C's to send.
        replicator(&regions, 0).run_once().await.unwrap();
        assert_eq!(contents(&b.engine).await.len(), 1, "[{layout}]");
        remove_replica(&a.engine, &others(&regions, 0), TABLE, &c.name)
            .await
            .unwrap();
        settle(&[replicator(&regions, 0), replicator(&regions, 1)]).await;
        assert_eq!(
            contents(&b.engine).await.len(),
            2,
            "[{layout}] B never got C's item"
        );
        assert_eq!(
            contents(&b.engine).await,
            contents(&a.engine).await,
            "[{layout}]"
        );
    }
}

/// Replication follows splits on either side: a split partition's log is
/// sent up to its seal and each child's from there (no backfill), a region
/// split differently applies what it receives by its own map, and a replica
/// added after the splits is backfilled from the children.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_follows_splits() {
    for (layout, stores) in layouts(3) {
        let regions = open_regions(&stores).await;
        let (a, b, c) = (&regions[0], &regions[1], &regions[2]);
        a.engine.create_table(spec(TABLE)).await.unwrap();
        add_replica(&a.engine, &others(&regions, 0), TABLE, &b.name)
            .await
            .unwrap();
        let pair = [replicator(&regions, 0), replicator(&regions, 1)];
        for i in 0..30 {
            put(&regions[i % 2].engine, TABLE, item("s", i as i64, &[])).await;
        }
        settle(&pair).await;
        // a splits partition 0 and then one of its children; b splits 1.
        let base = a.engine.describe_table(TABLE).await.unwrap().partitions;
        a.engine.split_partition(TABLE, 0).await.unwrap();
        let [child, _] = strata_engine::partition_map::children(base, 0);
        a.engine.split_partition(TABLE, child).await.unwrap();
        b.engine.split_partition(TABLE, 1).await.unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for i in 0..60 {
            let r = &regions[i % 2];
            put(&r.engine, TABLE, item("s", 30 + i as i64, &[])).await;
            random_write(&r.engine, &mut rng, &r.name, i).await;
        }
        for rep in &pair {
            let report = rep.run_once().await.unwrap();
            assert_eq!(report.backfills, 0, "[{layout}] {report:?}");
        }
        settle(&pair).await;
        let items = assert_converged(&regions[..2]).await;
        let s = items.values().filter(|i| i["pk"] == Value::S("s".into()));
        assert_eq!(s.count(), 90, "[{layout}]");
        // Nothing arrived twice.
        for r in &regions[..2] {
            let versions = replicated_versions(&r.engine).await;
            assert!(versions.values().all(|&n| n == 1), "[{layout}] {}", r.name);
        }
        add_replica(&a.engine, &others(&regions, 0), TABLE, &c.name)
            .await
            .unwrap();
        let all: Vec<Replicator> = (0..3).map(|i| replicator(&regions, i)).collect();
        settle(&all).await;
        let held = assert_converged(&regions).await;
        assert_eq!(held.len(), items.len(), "[{layout}]");
        put(&c.engine, TABLE, item("c", 1, &[])).await;
        settle(&all).await;
        assert_eq!(
            contents(&a.engine).await.len(),
            items.len() + 1,
            "[{layout}]"
        );
    }
}

/// What the console and `/metrics` show: per (table, region) the unsent
/// backlog and the age of its oldest write when the last pass started.
#[tokio::test]
async fn lag_reports_what_the_last_pass_found_unsent() {
    let stores: Vec<_> = (0..2).map(|_| memory_backend()).collect();
    let regions = open_regions(&stores).await;
    global_table(&regions).await;
    let a = &regions[0].engine;
    let reps = [replicator(&regions, 0), replicator(&regions, 1)];
    settle(&reps).await;
    let lag = |r: &Replicator| r.lag()[&(TABLE.to_string(), region_name(1))];
    assert_eq!(lag(&reps[0]).backlog_segments, 0);
    assert_eq!(lag(&reps[0]).behind_ms, 0);
    for i in 0..3 {
        a.write(
            TABLE,
            WriteRequest {
                ops: vec![WriteOp::put(key("lag", i), item("lag", i, &[("v", n(1))]))],
                token: None,
            },
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    reps[0].run_once().await.unwrap();
    let found = lag(&reps[0]);
    assert_eq!(found.backlog_segments, 3, "{found:?}");
    assert!(found.behind_ms >= 30, "{found:?}");
    reps[0].run_once().await.unwrap();
    assert_eq!(lag(&reps[0]).backlog_segments, 0);
    assert_eq!(lag(&reps[0]).behind_ms, 0);
}

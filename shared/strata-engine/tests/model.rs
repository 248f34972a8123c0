//! Model-based tests: random operation sequences run against the engine and
//! against a plain in-memory map must agree at every read, with compaction,
//! GC and fresh engine instances at random points. A second test does the
//! same through a store that fails at random, with clients retrying.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_engine::*;
use strata_store::faults::{with_faults, FaultPlan};

use common::*;

type Model = BTreeMap<(String, i64), Item>;

const PKS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];

fn random_key(rng: &mut SmallRng) -> (String, i64) {
    (
        PKS[rng.random_range(0..PKS.len())].to_string(),
        rng.random_range(-20..20),
    )
}

fn model_query(m: &Model, pk: &str, lo: i64, hi: i64, forward: bool) -> Vec<Item> {
    let mut v: Vec<Item> = m
        .range((pk.to_string(), lo)..=(pk.to_string(), hi))
        .map(|(_, i)| i.clone())
        .collect();
    if !forward {
        v.reverse();
    }
    v
}

async fn query_all(
    e: &Engine,
    pk: &str,
    cond: &SortKeyCondition,
    forward: bool,
    limit: usize,
    strong: bool,
) -> Vec<Item> {
    let consistency = if strong {
        Consistency::Strong
    } else {
        Consistency::Eventual
    };
    let mut out = Vec::new();
    let mut after: Option<ItemKey> = None;
    loop {
        let p = e
            .query(
                "tbl",
                &KeyValue::S(pk.into()),
                cond,
                forward,
                limit,
                after.as_ref(),
                usize::MAX,
                consistency,
            )
            .await
            .expect("query");
        out.extend(p.items.iter().map(|i| (**i).clone()));
        match p.last_key {
            Some(k) => after = Some(item_key(&k)),
            None => return out,
        }
    }
}

/// Runs `steps` random operations and checks every read against the model.
async fn run_model(
    store: Arc<dyn ObjectStore>,
    seed: u64,
    steps: usize,
    label: &str,
    config: EngineConfig,
) -> Engine {
    let config = EngineConfig {
        gc_grace: Duration::from_millis(50),
        clock_skew: Duration::ZERO,
        log_retention: Duration::ZERO,
        ..config
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut e = engine(&store, config.clone()).await;
    e.create_table(spec("tbl")).await.unwrap();
    let mut model = Model::new();
    for step in 0..steps {
        let ctx = format!("[{label} seed {seed} step {step}]");
        match rng.random_range(0..100) {
            0..=29 => {
                let (pk, sk) = random_key(&mut rng);
                let it = item(
                    &pk,
                    sk,
                    &[
                        ("v", n(rng.random_range(0..1000))),
                        ("s", Value::S("x".repeat(rng.random_range(0..40)))),
                    ],
                );
                put(&e, "tbl", it.clone()).await;
                model.insert((pk, sk), it);
            }
            30..=39 => {
                let (pk, sk) = random_key(&mut rng);
                e.write("tbl", WriteRequest::single(WriteOp::delete(key(&pk, sk))))
                    .await
                    .unwrap();
                model.remove(&(pk, sk));
            }
            40..=49 => {
                // Put if absent.
                let (pk, sk) = random_key(&mut rng);
                let it = item(&pk, sk, &[("created", Value::Bool(true))]);
                let cond: Condition = Arc::new(|cur: Option<&Item>| Ok(cur.is_none()));
                let res = e
                    .write(
                        "tbl",
                        WriteRequest::single(
                            WriteOp::put(key(&pk, sk), it.clone()).with_condition(cond),
                        ),
                    )
                    .await;
                match (model.contains_key(&(pk.clone(), sk)), res) {
                    (false, Ok(_)) => {
                        model.insert((pk, sk), it);
                    }
                    (
                        true,
                        Err(Error::ConditionFailed {
                            item: Some(cur), ..
                        }),
                    ) => assert_eq!(Some(&cur), model.get(&(pk, sk)), "{ctx}"),
                    (exists, res) => panic!("{ctx} exists={exists} got {res:?}"),
                }
            }
            50..=59 => {
                let (pk, sk) = random_key(&mut rng);
                let c = e
                    .write(
                        "tbl",
                        WriteRequest::single(WriteOp::update(key(&pk, sk), increment())),
                    )
                    .await
                    .unwrap();
                let entry = model
                    .entry((pk.clone(), sk))
                    .or_insert_with(|| item(&pk, sk, &[]));
                let next = entry.get("n").map_or(1, |_| num_attr(entry, "n") + 1);
                entry.insert("n".into(), n(next));
                assert_eq!(c.outcomes[0].new.as_ref(), Some(&*entry), "{ctx}");
            }
            60..=64 => {
                // An atomic pair on one partition key whose second condition may fail.
                let pk = PKS[rng.random_range(0..PKS.len())];
                let (a, b) = (rng.random_range(-20..20), rng.random_range(-20..20));
                if a == b {
                    continue;
                }
                let must_exist: Condition = Arc::new(|cur: Option<&Item>| Ok(cur.is_some()));
                let req = WriteRequest {
                    ops: vec![
                        WriteOp::put(key(pk, a), item(pk, a, &[("pair", Value::Bool(true))])),
                        WriteOp::delete(key(pk, b)).with_condition(must_exist),
                    ],
                    token: None,
                };
                let res = e.write("tbl", req).await;
                if model.contains_key(&(pk.to_string(), b)) {
                    res.unwrap_or_else(|err| panic!("{ctx} {err}"));
                    model.insert(
                        (pk.to_string(), a),
                        item(pk, a, &[("pair", Value::Bool(true))]),
                    );
                    model.remove(&(pk.to_string(), b));
                } else {
                    assert!(
                        matches!(res, Err(Error::ConditionFailed { index: 1, .. })),
                        "{ctx} {res:?}"
                    );
                }
            }
            65..=74 => {
                let (pk, sk) = random_key(&mut rng);
                let consistency = if rng.random_bool(0.5) {
                    Consistency::Strong
                } else {
                    Consistency::Eventual
                };
                let got = e
                    .get("tbl", &key(&pk, sk), consistency)
                    .await
                    .unwrap()
                    .map(|i| (*i).clone());
                assert_eq!(got.as_ref(), model.get(&(pk, sk)), "{ctx} get");
            }
            75..=84 => {
                let pk = PKS[rng.random_range(0..PKS.len())];
                let (x, y) = (rng.random_range(-22..22), rng.random_range(-22..22));
                let (lo, hi) = (x.min(y), x.max(y));
                let forward = rng.random_bool(0.5);
                let limit = rng.random_range(1..8);
                let nk = |v: i64| KeyValue::N(Number::from_i64(v));
                let (cond, lo, hi) = match rng.random_range(0..5) {
                    0 => (SortKeyCondition::All, i64::MIN, i64::MAX),
                    1 => (SortKeyCondition::Between(nk(lo), nk(hi)), lo, hi),
                    2 => (SortKeyCondition::Lt(nk(hi)), i64::MIN, hi - 1),
                    3 => (SortKeyCondition::Ge(nk(lo)), lo, i64::MAX),
                    _ => (SortKeyCondition::Eq(nk(lo)), lo, lo),
                };
                let got = query_all(&e, pk, &cond, forward, limit, rng.random_bool(0.5)).await;
                assert_eq!(
                    got,
                    model_query(&model, pk, lo, hi, forward),
                    "{ctx} query {cond:?} fwd={forward}"
                );
            }
            85..=89 => {
                let mut got = scan_all(&e, "tbl", rng.random_range(1..20)).await;
                got.sort_by_key(|i| (format!("{:?}", i["pk"]), num_attr(i, "sk")));
                let mut want: Vec<Item> = model.values().cloned().collect();
                want.sort_by_key(|i| (format!("{:?}", i["pk"]), num_attr(i, "sk")));
                assert_eq!(got, want, "{ctx} scan");
            }
            90..=94 => {
                // With a grace period of 50 ms a slow store can make a step
                // give up (its SSTs too old to publish): a clean, retryable
                // failure that must leave every read as it was.
                match e.compact("tbl").await {
                    Ok(_) => {}
                    Err(err) if err.is_retryable() => {}
                    Err(err) => panic!("{ctx} compaction: {err}"),
                }
            }
            95..=96 => {
                tokio::time::sleep(Duration::from_millis(60)).await;
                e.gc("tbl").await.unwrap();
            }
            _ => {
                // A new instance: nothing cached, everything from the store.
                e = engine(&store, config.clone()).await;
            }
        }
    }
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_agrees_with_a_map_model() {
    for b in backends() {
        let seeds = if b.is_remote() { 2 } else { 6 };
        for seed in 0..seeds {
            let config = EngineConfig {
                max_runs: 3,
                ..test_config()
            };
            run_model(b.store(), seed, 60 * b.scale, &b.name, config).await;
        }
    }
}

/// Levels preserve reads: the model test with SSTs of a few hundred bytes,
/// small levels and small partitions, so compactions at random points
/// flush, push SSTs down through several levels (or merge tiers), drop
/// tombstones and split partitions past 4 KB (children rewriting the SSTs
/// they inherit, GC collecting them), under both policies; every read
/// agrees with the map throughout, and the runs end up several levels deep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_preserve_reads() {
    for b in backends() {
        let seeds = if b.is_remote() { 1 } else { 3 };
        for policy in [CompactionPolicy::Leveled, CompactionPolicy::Tiered] {
            let (mut deepest, mut splits) = (0, 0);
            for seed in 0..seeds {
                let config = EngineConfig {
                    default_partitions: 1,
                    max_runs: 2,
                    block_size: 128,
                    sst_bytes: 600,
                    level_base_bytes: 1500,
                    level_ratio: 2,
                    read_ahead_bytes: 400,
                    tombstone_retention: Duration::ZERO,
                    compaction_policy: policy,
                    split_bytes: 4000,
                    ..test_config()
                };
                let label = format!("{} {policy:?}", b.name);
                let e = run_model(b.store(), 100 + seed, 80 * b.scale, &label, config).await;
                // Settle (a step on a slow store may give up; the next goes on).
                for _ in 0..5 {
                    if e.compact("tbl").await.is_ok() {
                        break;
                    }
                }
                for runs in e.partition_levels("tbl").await.unwrap() {
                    for r in &runs {
                        for w in r.ssts.windows(2) {
                            assert!(w[0].last_key < w[1].first_key, "[{label}] overlapping SSTs");
                        }
                    }
                    deepest = deepest.max(runs.len());
                }
                splits = splits.max(e.partitions("tbl").await.unwrap().len());
            }
            assert!(
                b.is_remote() || splits > 1,
                "[{} {policy:?}] no partition split",
                b.name
            );
            // Remote stores run a shorter history (and with a 50 ms grace
            // some steps give up): the reads are checked, the depth is not.
            assert!(
                b.is_remote() || deepest >= 2,
                "[{} {policy:?}] never deeper than {deepest} runs",
                b.name
            );
        }
    }
}

/// Random store failures (errors and timeouts on every kind of request, and
/// lost PUT responses) while a client writes with tokens and retries until
/// it hears success: the final state equals applying each write exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_never_lose_or_duplicate_acknowledged_writes() {
    for b in backends() {
        let plan = FaultPlan {
            error_rate: 0.05,
            timeout_rate: 0.03,
            timeout: Duration::from_millis(5),
            lost_response_rate: 0.1,
            ..Default::default()
        };
        let base = b.store();
        let (faulty, faults) = with_faults(Arc::clone(&base), 1234, FaultPlan::default());
        let faulty: Arc<dyn ObjectStore> = faulty;
        let e = engine(&faulty, test_config()).await;
        e.create_table(spec("tbl")).await.unwrap();
        faults.set_plan(plan);
        let mut rng = SmallRng::seed_from_u64(99);
        let mut model = Model::new();
        for i in 0..40 * b.scale {
            let (pk, sk) = random_key(&mut rng);
            let delete = rng.random_bool(0.2);
            let op = if delete {
                WriteOp::delete(key(&pk, sk))
            } else {
                WriteOp::update(key(&pk, sk), increment())
            };
            let req = WriteRequest::single(op).with_token(format!("w{i}"));
            let mut attempts = 0;
            loop {
                attempts += 1;
                match e.write("tbl", req.clone()).await {
                    Ok(_) => break,
                    Err(err) if err.is_retryable() && attempts < 100 => {
                        tokio::task::yield_now().await
                    }
                    Err(err) => panic!("[{}] write {i}: {err}", b.name),
                }
            }
            if delete {
                model.remove(&(pk, sk));
            } else {
                let entry = model
                    .entry((pk.clone(), sk))
                    .or_insert_with(|| item(&pk, sk, &[]));
                let next = entry.get("n").map_or(1, |_| num_attr(entry, "n") + 1);
                entry.insert("n".into(), n(next));
            }
            if i % 25 == 24 {
                // Compaction under faults either completes or fails cleanly.
                let _ = e.compact("tbl").await;
            }
        }
        let injected = faults.injected();
        assert!(
            injected.errors + injected.timeouts + injected.lost_responses >= 2 * b.scale as u64 + 2,
            "[{}] too few faults: {injected:?}",
            b.name
        );
        faults.set_enabled(false);
        let fresh = engine(&base, test_config()).await;
        let mut got = scan_all(&fresh, "tbl", 50).await;
        got.sort_by_key(|i| (format!("{:?}", i["pk"]), num_attr(i, "sk")));
        let mut want: Vec<Item> = model.values().cloned().collect();
        want.sort_by_key(|i| (format!("{:?}", i["pk"]), num_attr(i, "sk")));
        assert_eq!(
            got, want,
            "[{}] state after faults differs from exactly-once",
            b.name
        );
    }
}

/// An unreachable store is a clear, retryable error, not a hang or a panic.
#[tokio::test]
async fn unreachable_store_is_a_retryable_error() {
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint("http://127.0.0.1:9")
        .with_bucket_name("nowhere")
        .with_region("us-east-1")
        .with_access_key_id("x")
        .with_secret_access_key("x")
        .with_allow_http(true)
        .with_retry(object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        })
        .build()
        .unwrap();
    let err = Engine::with_store(Arc::new(s3), "s3://nowhere (127.0.0.1:9)", test_config())
        .await
        .err()
        .expect("refused");
    assert!(err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("nowhere") && msg.contains("unreachable"),
        "{msg}"
    );
}

//! Transactions' invariants (ARCHITECTURE.md, "Transactions"), each test
//! named after its invariant, on every backend (memory, local directory,
//! tiered, and the S3 servers `STRATA_TEST_S3` names: LocalStack, moto).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use strata_engine::*;

const ACCOUNTS: usize = 20;
const START: i64 = 100;

/// Account `i`: its table (half in each of two tables) and key.
fn account(i: usize) -> (&'static str, ItemKey) {
    let table = if i % 2 == 0 { "acct_a" } else { "acct_b" };
    (table, key(&format!("acct-{i}"), 0))
}

/// Adds `delta` to `n` (refusing to go below zero) and appends `id` to the
/// item's list of applied transfers.
fn transfer_leg(delta: i64, id: String) -> UpdateFn {
    Arc::new(move |cur: Option<&Item>| {
        let mut item = cur.cloned().ok_or("no account")?;
        let n = num_attr(&item, "n") + delta;
        item.insert("n".into(), n_value(n));
        let mut log = match item.remove("log") {
            Some(Value::L(l)) => l,
            _ => Vec::new(),
        };
        log.push(Value::S(id.clone()));
        item.insert("log".into(), Value::L(log));
        Ok(Some(item))
    })
}

/// A single-item write to account `i`: adds 1 to its `n`.
async fn bump(e: &Engine, i: usize) -> Result<Committed> {
    let (t, k) = account(i);
    e.write(t, WriteRequest::single(WriteOp::update(k, increment())))
        .await
}

fn n_value(v: i64) -> Value {
    n(v)
}

/// The condition "n >= amount".
fn at_least(amount: i64) -> Condition {
    Arc::new(move |cur: Option<&Item>| Ok(cur.is_some_and(|i| num_attr(i, "n") >= amount)))
}

async fn engines(
    store: &Arc<dyn object_store::ObjectStore>,
    k: usize,
    c: EngineConfig,
) -> Vec<Arc<Engine>> {
    futures::future::join_all((0..k).map(|_| engine(store, c.clone())))
        .await
        .into_iter()
        .map(Arc::new)
        .collect()
}

async fn open_accounts(e: &Engine) {
    for t in ["acct_a", "acct_b"] {
        e.create_table(spec(t)).await.unwrap();
    }
    for i in 0..ACCOUNTS {
        let (t, k) = account(i);
        let mut it = item(&format!("acct-{i}"), 0, &[("n", n(START))]);
        it.insert("log".into(), Value::L(Vec::new()));
        e.write(t, WriteRequest::single(WriteOp::put(k, it)))
            .await
            .unwrap();
    }
}

async fn snapshot(e: &Arc<Engine>) -> Vec<Option<Arc<Item>>> {
    let gets: Vec<(String, ItemKey)> = (0..ACCOUNTS)
        .map(|i| {
            let (t, k) = account(i);
            (t.to_string(), k)
        })
        .collect();
    loop {
        match e.transact_get(&gets).await.unwrap() {
            Ok(items) => return items,
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

fn total(items: &[Option<Arc<Item>>]) -> i64 {
    items
        .iter()
        .map(|i| num_attr(i.as_ref().expect("account exists"), "n"))
        .sum()
}

/// Transfers between 20 accounts in two tables over many partitions from
/// 8 independent engines: no TransactGetItems snapshot ever shows a total
/// other than the start's, and each acknowledged transfer is applied
/// exactly once (its id in both accounts' logs once), each cancelled one
/// not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_atomic() {
    for b in backends() {
        let store = b.store();
        let es = engines(&store, 8, test_config()).await;
        open_accounts(&es[0]).await;
        let acked = Arc::new(Mutex::new(Vec::<(String, usize, usize)>::new()));
        let unknown = Arc::new(Mutex::new(Vec::<String>::new()));
        let per_engine = 4 * b.scale;
        let mut tasks = Vec::new();
        for (w, e) in es.iter().enumerate() {
            let (e, acked, unknown) = (Arc::clone(e), Arc::clone(&acked), Arc::clone(&unknown));
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(w as u64);
                for i in 0..per_engine {
                    let from = rng.random_range(0..ACCOUNTS);
                    let to = (from + rng.random_range(1..ACCOUNTS)) % ACCOUNTS;
                    let amount = rng.random_range(1..30);
                    let id = format!("t{w}-{i}");
                    let (ft, fk) = account(from);
                    let (tt, tk) = account(to);
                    let actions = vec![
                        TxnWrite {
                            table: ft.into(),
                            op: WriteOp::update(fk, transfer_leg(-amount, id.clone()))
                                .with_condition(at_least(amount)),
                            check: false,
                        },
                        TxnWrite {
                            table: tt.into(),
                            op: WriteOp::update(tk, transfer_leg(amount, id.clone())),
                            check: false,
                        },
                    ];
                    match e.transact_write(actions, TxnOptions::default()).await {
                        Ok(TxnResult::Committed { .. }) => {
                            acked.lock().unwrap().push((id, from, to))
                        }
                        Ok(TxnResult::Canceled(_)) => {}
                        Err(_) => unknown.lock().unwrap().push(id),
                    }
                }
            }));
        }
        // Snapshots taken while the transfers run.
        let reader = Arc::clone(&es[7]);
        let snapshots = tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..10 {
                assert_eq!(total(&snapshot(&reader).await), START * ACCOUNTS as i64);
                n += 1;
            }
            n
        });
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(snapshots.await.unwrap(), 10);
        let fresh = Arc::new(engine(&store, test_config()).await);
        let end = snapshot(&fresh).await;
        assert_eq!(total(&end), START * ACCOUNTS as i64, "[{}]", b.name);
        let mut applied: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, it) in end.iter().enumerate() {
            if let Some(Value::L(log)) = it.as_ref().and_then(|it| it.get("log")) {
                for v in log {
                    if let Value::S(id) = v {
                        applied.entry(id.clone()).or_default().push(i);
                    }
                }
            }
        }
        let acked = acked.lock().unwrap();
        assert!(!acked.is_empty(), "[{}] no transfer committed", b.name);
        for (id, from, to) in acked.iter() {
            let mut at = applied.remove(id).unwrap_or_default();
            at.sort();
            let mut want = vec![*from, *to];
            want.sort();
            assert_eq!(at, want, "[{}] acknowledged transfer {id}", b.name);
        }
        let unknown: HashSet<String> = unknown.lock().unwrap().iter().cloned().collect();
        for (id, at) in applied {
            assert!(
                unknown.contains(&id),
                "[{}] cancelled transfer {id} applied at {at:?}",
                b.name
            );
            assert_eq!(at.len(), 2, "[{}] transfer {id} half applied", b.name);
        }
        println!("[{}] {} transfers committed", b.name, acked.len());
    }
}

fn short_timeout() -> EngineConfig {
    EngineConfig {
        txn_timeout: Duration::from_millis(300),
        ..test_config()
    }
}

/// A timeout long enough for a test's steps before it on a slow S3 server.
const CRASH_TIMEOUT: Duration = Duration::from_millis(1500);

fn three_puts(tag: &str) -> Vec<TxnWrite> {
    (0..3)
        .map(|i| {
            let (t, k) = account(i);
            let mut it = item(&format!("acct-{i}"), 0, &[("n", n(START))]);
            it.insert("tag".into(), Value::S(tag.into()));
            TxnWrite {
                table: t.into(),
                op: WriteOp::put(k, it),
                check: false,
            }
        })
        .collect()
}

async fn tags(e: &Engine) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for i in 0..3 {
        let (t, k) = account(i);
        let it = e.get(t, &k, Consistency::Strong).await.unwrap();
        out.push(it.and_then(|it| match it.get("tag") {
            Some(Value::S(s)) => Some(s.clone()),
            _ => None,
        }));
    }
    out
}

/// A coordinator stopped at every step (after each prepare, after the
/// decision): another instance finds all of the transaction or none of it,
/// and the locks are settled (aborted past the deadline, or rolled forward)
/// so that single-item writes go through again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_coordinator_crash() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            txn_timeout: CRASH_TIMEOUT,
            ..test_config()
        };
        let es = engines(&store, 2, config.clone()).await;
        let (coordinator, other) = (&es[0], &es[1]);
        open_accounts(other).await;
        let steps = [
            TxnStop::AfterPrepares(0),
            TxnStop::AfterPrepares(1),
            TxnStop::AfterPrepares(2),
            TxnStop::AfterDecision,
        ];
        for (round, stop) in steps.into_iter().enumerate() {
            let tag = format!("round-{round}");
            let before = tags(other).await;
            let opts = TxnOptions {
                stop: Some(stop),
                ..Default::default()
            };
            let started = std::time::Instant::now();
            assert!(coordinator
                .transact_write(three_puts(&tag), opts)
                .await
                .is_err());
            let committed = stop == TxnStop::AfterDecision;
            // Before the deadline: all or nothing already.
            let now = tags(other).await;
            if committed {
                assert_eq!(now, vec![Some(tag.clone()); 3], "[{}] {stop:?}", b.name);
            } else {
                assert_eq!(now, before, "[{}] {stop:?}", b.name);
                // A single-item write meets the lock before the deadline.
                let err = bump(other, 0).await;
                if matches!(stop, TxnStop::AfterPrepares(n) if n > 0) {
                    assert!(
                        matches!(err, Err(Error::TransactionConflict { .. })),
                        "[{}] {stop:?}: {err:?}",
                        b.name
                    );
                }
                let past = CRASH_TIMEOUT + Duration::from_millis(100);
                tokio::time::sleep(past.saturating_sub(started.elapsed())).await;
            }
            // Past the deadline, anyone's writes and compactions settle it.
            for i in 0..3 {
                bump(other, i)
                    .await
                    .unwrap_or_else(|e| panic!("[{}] {stop:?}: {e}", b.name));
            }
            for t in ["acct_a", "acct_b"] {
                other.compact(t).await.unwrap();
            }
            let fresh = Arc::new(engine(&store, config.clone()).await);
            let after = tags(&fresh).await;
            if committed {
                assert_eq!(after, vec![Some(tag.clone()); 3], "[{}] {stop:?}", b.name);
            } else {
                assert_eq!(after, before, "[{}] {stop:?}", b.name);
            }
        }
    }
}

/// A transaction retried with its ClientRequestToken (from the same or
/// another instance, before or after it was settled and compacted) is not
/// applied again and answers the same; the token with other parameters is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_idempotent_token() {
    for b in backends() {
        let store = b.store();
        let es = engines(&store, 2, test_config()).await;
        open_accounts(&es[0]).await;
        let inc = |i: usize| {
            let (t, k) = account(i);
            TxnWrite {
                table: t.into(),
                op: WriteOp::update(k, transfer_leg(1, "x".into())),
                check: false,
            }
        };
        let opts = |token: &str, params: u64| TxnOptions {
            token: Some(("acct".into(), token.into())),
            params,
            settle_before_answer: true,
            ..Default::default()
        };
        let first = es[0]
            .transact_write(vec![inc(0), inc(1)], opts("tok-1", 7))
            .await
            .unwrap();
        assert!(matches!(
            first,
            TxnResult::Committed {
                replayed: false,
                ..
            }
        ));
        for e in &es {
            let again = e
                .transact_write(vec![inc(0), inc(1)], opts("tok-1", 7))
                .await
                .unwrap();
            assert!(
                matches!(again, TxnResult::Committed { replayed: true, .. }),
                "[{}] {again:?}",
                b.name
            );
        }
        for t in ["acct_a", "acct_b"] {
            es[1].compact(t).await.unwrap();
        }
        let fresh = Arc::new(engine(&store, test_config()).await);
        let again = fresh
            .transact_write(vec![inc(0), inc(1)], opts("tok-1", 7))
            .await
            .unwrap();
        assert!(
            matches!(again, TxnResult::Committed { replayed: true, .. }),
            "[{}] {again:?}",
            b.name
        );
        // Other parameters: refused, and nothing of them written, in any
        // partition (those the original never touched included).
        let other: Vec<TxnWrite> = [0, 2, 3, 4, 5, 6, 7, 8, 9].into_iter().map(inc).collect();
        let mismatch = fresh.transact_write(other, opts("tok-1", 8)).await;
        assert!(
            matches!(mismatch, Err(Error::IdempotentMismatch)),
            "[{}] {mismatch:?}",
            b.name
        );
        let items = snapshot(&fresh).await;
        let n_of = |i: usize| num_attr(items[i].as_ref().unwrap(), "n");
        assert_eq!((n_of(0), n_of(1)), (START + 1, START + 1), "[{}]", b.name);
        for i in 2..10 {
            assert_eq!(
                n_of(i),
                START,
                "[{}] account {i} written by a mismatched retry",
                b.name
            );
        }
        // Another token is another transaction.
        fresh
            .transact_write(vec![inc(0), inc(1)], opts("tok-2", 7))
            .await
            .unwrap();
        let items = snapshot(&fresh).await;
        assert_eq!(num_attr(items[0].as_ref().unwrap(), "n"), START + 2);

        // A first attempt aborted by others (its coordinator stalled past
        // its deadline): the request sent again with its token commits
        // under the token's next id, and sent once more (its answer lost)
        // is answered committed, not cancelled, and applied once.
        let slow = Arc::new(engine(&store, short_timeout()).await);
        let stalled = TxnOptions {
            stop: Some(TxnStop::AfterPrepares(1)),
            ..opts("tok-3", 5)
        };
        assert!(slow
            .transact_write(vec![inc(4), inc(5)], stalled)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(400)).await;
        for i in [4, 5] {
            bump(&slow, i).await.unwrap(); // settles (aborts) the stalled attempt's lock
        }
        for round in 0..2 {
            let r = slow
                .transact_write(vec![inc(4), inc(5)], opts("tok-3", 5))
                .await
                .unwrap();
            assert!(
                matches!(r, TxnResult::Committed { replayed, .. } if replayed == (round == 1)),
                "[{}] round {round}: {r:?}",
                b.name
            );
        }
        // (+1 by the writes that met the stalled locks, +1 by the transaction.)
        let items = snapshot(&slow).await;
        for i in [4, 5] {
            assert_eq!(
                num_attr(items[i].as_ref().unwrap(), "n"),
                START + 2,
                "[{}]",
                b.name
            );
        }
    }
}

/// A coordinator whose views went stale while others wrote, compacted and
/// garbage-collected (decisions included) never acknowledges a transaction
/// that is not visible: what it acknowledges a fresh instance reads. A
/// transaction its stall let expire was aborted by others; retried with its
/// token it is a new attempt, all of which is visible if acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_no_invisible_ack() {
    for b in backends() {
        let store = b.store();
        let config = EngineConfig {
            gc_grace: Duration::from_millis(300),
            clock_skew: Duration::ZERO,
            log_retention: Duration::ZERO,
            token_window: Duration::ZERO,
            txn_timeout: Duration::from_millis(200),
            default_partitions: 1,
            ..test_config()
        };
        let es = engines(&store, 2, config.clone()).await;
        let (stale, busy) = (&es[0], &es[1]);
        open_accounts(busy).await;
        let mut acked = Vec::new();
        for round in 0..3 {
            // The stale coordinator's partial prepare, left behind.
            let left = TxnOptions {
                stop: Some(TxnStop::AfterPrepares(1)),
                token: Some(("acct".into(), format!("left-{round}"))),
                params: 1,
                ..Default::default()
            };
            let _ = stale
                .transact_write(three_puts(&format!("left-{round}")), left)
                .await;
            tokio::time::sleep(Duration::from_millis(250)).await;
            // Others move on, settle, compact, collect.
            for i in 3..8 {
                bump(busy, i).await.unwrap();
            }
            for t in ["acct_a", "acct_b"] {
                busy.compact(t).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            for t in ["acct_a", "acct_b"] {
                busy.gc(t).await.unwrap();
            }
            busy.collect_decisions().await.unwrap();
            // The stale coordinator retries the left one (its deadline has
            // passed): never reported committed unless it is.
            let retry = TxnOptions {
                token: Some(("acct".into(), format!("left-{round}"))),
                params: 1,
                ..Default::default()
            };
            let r = stale
                .transact_write(three_puts(&format!("left-{round}")), retry)
                .await;
            if let Ok(TxnResult::Committed { .. }) = r {
                // (Its first attempt was aborted; the retry is a new one.)
                let fresh = engine(&store, config.clone()).await;
                let want = Some(format!("left-{round}"));
                assert_eq!(
                    tags(&fresh).await,
                    vec![want; 3],
                    "[{}] round {round}",
                    b.name
                );
                acked.push(format!("left-{round}"));
            }
            // And a new one, acknowledged.
            let tag = format!("new-{round}");
            let r = stale
                .transact_write(three_puts(&tag), TxnOptions::default())
                .await
                .unwrap();
            assert!(
                matches!(
                    r,
                    TxnResult::Committed {
                        replayed: false,
                        ..
                    }
                ),
                "{r:?}"
            );
            acked.push(tag.clone());
            let fresh = engine(&store, config.clone()).await;
            assert_eq!(
                tags(&fresh).await,
                vec![Some(tag); 3],
                "[{}] round {round}",
                b.name
            );
        }
        assert!(acked.len() >= 3, "[{}] {acked:?}", b.name);
    }
}

/// A history of transactions (each appends its id to the lists of a few of
/// six items), single-item appends, TransactGetItems of all six and
/// single strongly consistent reads, from four engines: the dependency
/// graph (write-write from the lists' order, write-read and read-write
/// from what each read saw) has no cycle, and every snapshot holds each
/// transaction whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_serializable() {
    const KEYS: usize = 6;
    let k_of = |i: usize| ("acct_a", key(&format!("reg-{i}"), 0));
    let append = |id: String| -> UpdateFn {
        Arc::new(move |cur: Option<&Item>| {
            let mut item = cur.cloned().unwrap_or_default();
            let mut log = match item.remove("log") {
                Some(Value::L(l)) => l,
                _ => Vec::new(),
            };
            log.push(Value::S(id.clone()));
            item.insert("log".into(), Value::L(log));
            Ok(Some(item))
        })
    };
    for b in backends() {
        let store = b.store();
        let es = engines(&store, 4, test_config()).await;
        es[0].create_table(spec("acct_a")).await.unwrap();
        // What each write wrote, and what each read saw.
        let writes = Arc::new(Mutex::new(BTreeMap::<String, Vec<usize>>::new()));
        let reads = Arc::new(Mutex::new(Vec::<Vec<(usize, Vec<String>)>>::new()));
        let ops = 6 * b.scale;
        let mut tasks = Vec::new();
        for (w, e) in es.iter().enumerate() {
            let (e, writes, reads) = (Arc::clone(e), Arc::clone(&writes), Arc::clone(&reads));
            tasks.push(tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(100 + w as u64);
                for i in 0..ops {
                    let id = format!("w{w}-{i}");
                    match rng.random_range(0..4) {
                        0 | 1 => {
                            let mut keys: Vec<usize> = (0..KEYS).collect();
                            keys.sort_by_key(|_| rng.random::<u32>());
                            keys.truncate(rng.random_range(2..4));
                            let actions = keys
                                .iter()
                                .map(|&k| TxnWrite {
                                    table: "acct_a".into(),
                                    op: WriteOp::update(k_of(k).1, append(id.clone())),
                                    check: false,
                                })
                                .collect();
                            if let Ok(TxnResult::Committed { .. }) =
                                e.transact_write(actions, TxnOptions::default()).await
                            {
                                writes.lock().unwrap().insert(id, keys);
                            }
                        }
                        2 => {
                            let k = rng.random_range(0..KEYS);
                            let op = WriteOp::update(k_of(k).1, append(id.clone()));
                            if e.write("acct_a", WriteRequest::single(op)).await.is_ok() {
                                writes.lock().unwrap().insert(id, vec![k]);
                            }
                        }
                        _ => {
                            let gets: Vec<(String, ItemKey)> = (0..KEYS)
                                .map(|k| ("acct_a".to_string(), k_of(k).1))
                                .collect();
                            if let Ok(Ok(items)) = e.transact_get(&gets).await {
                                let seen = items
                                    .iter()
                                    .enumerate()
                                    .map(|(k, it)| (k, list_of(it.as_deref())))
                                    .collect();
                                reads.lock().unwrap().push(seen);
                            }
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let fresh = engine(&store, test_config()).await;
        let mut finals = Vec::new();
        for k in 0..KEYS {
            let it = fresh
                .get("acct_a", &k_of(k).1, Consistency::Strong)
                .await
                .unwrap();
            finals.push(list_of(it.as_deref()));
        }
        let writes = writes.lock().unwrap().clone();
        let reads = reads.lock().unwrap().clone();
        check_serializable(&writes, &reads, &finals).unwrap_or_else(|e| panic!("[{}] {e}", b.name));
        println!(
            "[{}] {} writes, {} snapshots: serializable",
            b.name,
            writes.len(),
            reads.len()
        );
    }
}

fn list_of(item: Option<&Item>) -> Vec<String> {
    match item.and_then(|i| i.get("log")) {
        Some(Value::L(l)) => l
            .iter()
            .filter_map(|v| match v {
                Value::S(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A list-append history checker (after Elle): each key's final list
/// orders its writes; a read of a prefix follows the prefix's last write
/// and precedes the next one. Acknowledged writes appear exactly once in
/// each key they wrote; the graph of those edges has no cycle.
fn check_serializable(
    writes: &BTreeMap<String, Vec<usize>>,
    reads: &[Vec<(usize, Vec<String>)>],
    finals: &[Vec<String>],
) -> Result<(), String> {
    for (id, keys) in writes {
        for &k in keys {
            let n = finals[k].iter().filter(|x| *x == id).count();
            if n != 1 {
                return Err(format!("write {id} appears {n} times in key {k}"));
            }
        }
    }
    let mut edges: HashMap<String, HashSet<String>> = HashMap::new();
    let mut edge = |a: &str, b: &str| {
        if a != b {
            edges
                .entry(a.to_string())
                .or_default()
                .insert(b.to_string());
        }
    };
    for list in finals {
        for w in list.windows(2) {
            edge(&w[0], &w[1]);
        }
    }
    for (r, seen) in reads.iter().enumerate() {
        let me = format!("read-{r}");
        let mut present: HashSet<&String> = HashSet::new();
        for (k, prefix) in seen {
            if finals[*k].len() < prefix.len() || finals[*k][..prefix.len()] != prefix[..] {
                return Err(format!(
                    "{me} saw {prefix:?} of key {k}, not a prefix of its final list"
                ));
            }
            if let Some(last) = prefix.last() {
                edge(last, &me);
            }
            if let Some(next) = finals[*k].get(prefix.len()) {
                edge(&me, next);
            }
            present.extend(prefix.iter());
        }
        // Each transaction whole in the snapshot.
        for id in present {
            if let Some(keys) = writes.get(id) {
                for k in keys {
                    if !seen[*k].1.contains(id) {
                        return Err(format!("{me} saw part of {id}: not in key {k}"));
                    }
                }
            }
        }
    }
    // Cycle search (iterative DFS, three colours).
    let mut colour: HashMap<&str, u8> = HashMap::new();
    for start in edges.keys() {
        if colour.contains_key(start.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, next_of(&edges, start))];
        colour.insert(start, 1);
        while let Some((node, pending)) = stack.last_mut() {
            match pending.pop() {
                Some(n) => match colour.get(n) {
                    Some(1) => return Err(format!("cycle through {node} -> {n}")),
                    Some(_) => {}
                    None => {
                        colour.insert(n, 1);
                        let next = next_of(&edges, n);
                        stack.push((n, next));
                    }
                },
                None => {
                    colour.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

fn next_of<'a>(edges: &'a HashMap<String, HashSet<String>>, n: &str) -> Vec<&'a str> {
    edges
        .get(n)
        .map(|s| s.iter().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A lock outlives compaction (the manifest carries it until released): a
/// fresh instance's single-item write still meets it, a split waits for
/// it; once the transaction is settled both go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_locks_survive_compaction() {
    for b in backends() {
        let store = b.store();
        // Long enough for the steps below on a slow S3 server.
        let timeout = Duration::from_secs(4);
        let config = EngineConfig {
            default_partitions: 1,
            txn_timeout: timeout,
            ..test_config()
        };
        let es = engines(&store, 2, config.clone()).await;
        open_accounts(&es[1]).await;
        let left = TxnOptions {
            stop: Some(TxnStop::AfterPrepares(1)),
            ..Default::default()
        };
        let started = std::time::Instant::now();
        assert!(es[0]
            .transact_write(three_puts("held"), left)
            .await
            .is_err());
        // Another instance's write meets the lock.
        let fresh = Arc::new(engine(&store, config.clone()).await);
        let conflict = bump(&fresh, 0).await;
        assert!(
            matches!(conflict, Err(Error::TransactionConflict { .. })),
            "[{}] {conflict:?}",
            b.name
        );
        // A flush that folds the intent's segment: the lock goes into the
        // manifest; a split waits for it.
        es[1].compact("acct_a").await.unwrap();
        let split = es[1].split_partition("acct_a", 0).await;
        assert!(
            matches!(split, Err(Error::TransactionConflict { .. })),
            "[{}] a split went through a lock: {split:?}",
            b.name
        );
        // An instance starting from that manifest still meets it.
        let after = Arc::new(engine(&store, config.clone()).await);
        let conflict = bump(&after, 0).await;
        assert!(
            matches!(conflict, Err(Error::TransactionConflict { .. })),
            "[{}] {conflict:?}",
            b.name
        );
        // Past the deadline the lock is aborted by whoever meets it.
        let past = timeout + Duration::from_millis(100);
        tokio::time::sleep(past.saturating_sub(started.elapsed())).await;
        bump(&after, 0).await.unwrap();
        after.split_partition("acct_a", 0).await.unwrap();
        assert_eq!(tags(&after).await, vec![None, None, None], "[{}]", b.name);
    }
}

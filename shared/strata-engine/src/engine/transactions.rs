//! Transactions across partitions and tables (TransactWriteItems,
//! TransactGetItems), with no coordinator process: the instance that takes
//! the request prepares every partition in parallel, creates the decision,
//! answers, and settles. See `crate::txn` and ARCHITECTURE.md
//! ("Transactions") for the protocol and its invariants.

use std::collections::HashSet;

use futures::future::join_all;

use super::*;
use crate::ops::WriteOp;
use crate::partition::{Attempt, Prepared, Refusal, TxnAction, ALL_KEYS};
use crate::txn::{Decision, Outcome, Participant, TxnId};

/// Most actions one transaction may hold (DynamoDB's limit).
pub const MAX_TXN_ACTIONS: usize = 100;
/// How long after answering a coordinator settles a committed transaction.
const SETTLE_DELAY: std::time::Duration = std::time::Duration::from_millis(10);
/// How long a locking TransactGetItems waits for items others hold.
const LOCKED_READ_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);
/// Rounds of optimistic reads TransactGetItems makes before it locks.
const OPTIMISTIC_ROUNDS: usize = 3;
/// Attempts one request makes when it finds its id aborted by another.
const MAX_ATTEMPTS: u32 = 4;

/// One action of a TransactWriteItems.
#[derive(Clone)]
pub struct TxnWrite {
    pub table: String,
    pub op: WriteOp,
    /// A ConditionCheck: the condition is evaluated, nothing is changed.
    pub check: bool,
}

/// Why an action cancelled its transaction (DynamoDB's CancellationReasons).
#[derive(Debug, Clone, PartialEq)]
pub enum CancelReason {
    /// Nothing wrong with this action.
    None,
    /// Its condition was false; the item it was evaluated against.
    ConditionalCheckFailed(Option<Item>),
    /// Another transaction holds the item.
    TransactionConflict,
    ValidationError(String),
}

impl CancelReason {
    pub fn code(&self) -> &'static str {
        match self {
            CancelReason::None => "None",
            CancelReason::ConditionalCheckFailed(_) => "ConditionalCheckFailed",
            CancelReason::TransactionConflict => "TransactionConflict",
            CancelReason::ValidationError(_) => "ValidationError",
        }
    }
}

/// What a TransactWriteItems came to.
#[derive(Debug, Clone, PartialEq)]
pub enum TxnResult {
    /// Committed; `replayed` when by an earlier request with the same
    /// token. `sizes`: per action, the larger of its item's sizes before
    /// and after (what it costs; 0 when replayed).
    Committed { replayed: bool, sizes: Vec<usize> },
    /// Nothing was written: a reason per action, in order.
    Canceled(Vec<CancelReason>),
}

/// Where a test stops a coordinator, as if its process died there.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStop {
    /// After preparing this many partitions of each table it touches.
    AfterPrepares(usize),
    /// After the decision is made, before anything is settled.
    AfterDecision,
}

/// The options of one transaction.
#[derive(Debug, Clone, Default)]
pub struct TxnOptions {
    /// The client's request token and its scope (the caller's account).
    pub token: Option<(String, String)>,
    /// A hash of the request's parameters (what a token's retry must match).
    pub params: u64,
    /// Settle the partitions before answering (the default answers at the
    /// decision and settles right after, in the background).
    pub settle_before_answer: bool,
    #[doc(hidden)]
    pub stop: Option<TxnStop>,
}

/// An item of one partition that an action touches.
struct Planned {
    table: String,
    action: TxnAction,
}

impl Engine {
    /// TransactWriteItems: every action applied, or none; serializable with
    /// every other transaction and single-item write.
    pub async fn transact_write(
        self: &Arc<Self>,
        actions: Vec<TxnWrite>,
        opts: TxnOptions,
    ) -> Result<TxnResult> {
        // Checked whole before anything is written.
        self.check_items(
            actions
                .iter()
                .map(|a| (a.table.as_str(), &a.op.key))
                .collect(),
        )
        .await?;
        let mut by_table: BTreeMap<String, Vec<Planned>> = BTreeMap::new();
        for (index, a) in actions.into_iter().enumerate() {
            by_table.entry(a.table.clone()).or_default().push(Planned {
                table: a.table,
                action: TxnAction {
                    index,
                    op: a.op,
                    check: a.check,
                },
            });
        }
        let count: usize = by_table.values().map(Vec::len).sum();
        let groups: Vec<Vec<Planned>> = by_table.into_values().collect();
        // An attempt another request (or a resolver) aborted leaves its id
        // spent: a token's next attempt has an id of its own, so a request
        // cancelled once may be sent again with its token, as in DynamoDB.
        for attempt in 0..MAX_ATTEMPTS {
            let txn = match &opts.token {
                Some((scope, token)) => TxnId::from_token(scope, token, attempt),
                None => TxnId::random(),
            };
            if let Some(done) = self.attempt(txn, &groups, count, &opts).await? {
                return Ok(done);
            }
        }
        Ok(TxnResult::Canceled(vec![
            CancelReason::TransactionConflict;
            count
        ]))
    }

    /// One attempt at a transaction under id `txn`: its answer, or None
    /// when the id turned out to be decided for another attempt that
    /// aborted (this attempt's locks are released, and the next attempt
    /// has an id of its own).
    async fn attempt(
        self: &Arc<Self>,
        txn: TxnId,
        groups: &[Vec<Planned>],
        count: usize,
        opts: &TxnOptions,
    ) -> Result<Option<TxnResult>> {
        let clock = &self.ctx.config.clock;
        let me = Attempt {
            nonce: rand::random::<u64>() | 1,
            params: opts.params,
            deadline_micros: clock.now_micros() + self.ctx.config.txn_timeout.as_micros() as u64,
            partial: false,
        };

        // 1. Prepare every partition, in parallel.
        let prepared = join_all(
            groups
                .iter()
                .map(|g| self.prepare_table(txn, me, g, opts.stop)),
        )
        .await;
        let mut reasons = vec![CancelReason::None; count];
        let mut sizes = vec![0; count];
        let mut participants = Vec::new();
        let mut refused = false;
        let mut settled_before = false;
        let mut failure = None;
        for (who, outcome) in prepared.into_iter().flatten() {
            // A partition whose prepare failed may hold intents all the same.
            participants.push(who);
            match outcome {
                Ok(Prepared::Locked(locked)) => {
                    for l in locked {
                        sizes[l.index] = l.size;
                    }
                }
                Ok(Prepared::SettledBefore) => settled_before = true,
                Ok(Prepared::Refused(list)) => {
                    refused = true;
                    for (i, r) in list {
                        reasons[i] = match r {
                            Refusal::ConditionFailed(item) => {
                                CancelReason::ConditionalCheckFailed(item)
                            }
                            Refusal::Conflict => CancelReason::TransactionConflict,
                            Refusal::Validation(m) => CancelReason::ValidationError(m),
                        };
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if opts
            .stop
            .is_some_and(|s| matches!(s, TxnStop::AfterPrepares(_)))
        {
            return Err(stopped());
        }
        let decisions = &self.ctx.decisions;
        let store = self.ctx.store.as_ref();
        let decision = |outcome, reasons: Vec<String>| Decision {
            outcome,
            params: opts.params,
            attempt: me.nonce,
            at_micros: clock.now_micros(),
            participants: participants.clone(),
            reasons,
        };

        // 2. Decide. A refusal or a failed prepare aborts (the locks already
        // taken are released before answering: a client that tries again at
        // once must not meet them). A retry of a transaction already
        // settled somewhere (or one too slow to commit) never commits: a
        // commit now would apply only what this attempt locked.
        let aborting = refused || failure.is_some() || settled_before;
        let outcome = if aborting || clock.now_micros() >= me.deadline_micros {
            Outcome::Abort
        } else {
            Outcome::Commit
        };
        let codes = reasons.iter().map(|r| r.code().to_string()).collect();
        // The commit point: exactly one of this and a resolver's abort.
        let decided = match decisions.decide(store, txn, decision(outcome, codes)).await {
            Ok(d) => d,
            Err(e) if outcome == Outcome::Commit => {
                return Err(Error::OutcomeUnknown {
                    table: groups[0][0].table.clone(),
                    cause: format!("its decision could not be settled: {e}"),
                })
            }
            // Best effort: the locks expire at the deadline anyway.
            Err(e) => return Err(failure.unwrap_or(e)),
        };
        if opts.stop == Some(TxnStop::AfterDecision) {
            return Err(stopped());
        }
        let ours = decided.attempt == me.nonce;

        // 3. Settle: an abort (and another attempt's decision) before
        // answering, a commit after unless asked.
        if !ours || decided.outcome == Outcome::Abort {
            self.settle_now(txn, &decided, participants.clone()).await;
        }
        if !ours {
            // The id was decided by another attempt: its answer if it
            // committed, else this request goes on under the next id.
            return match decided.outcome {
                Outcome::Commit => replay(&decided, opts.params, count).map(Some),
                Outcome::Abort => Ok(None),
            };
        }
        if decided.outcome == Outcome::Abort {
            return match failure {
                Some(e) => Err(e),
                None if refused => Ok(Some(TxnResult::Canceled(reasons))),
                // Too slow, or a retry settled before without its decision
                // (collected): cancelled, nothing written.
                None => Ok(Some(TxnResult::Canceled(vec![
                    CancelReason::TransactionConflict;
                    count
                ]))),
            };
        }
        if opts.settle_before_answer {
            self.settle_now(txn, &decided, participants).await;
        } else {
            // A moment later: a transaction this process prepares meanwhile
            // on the same partitions carries the settlement in its own
            // segment (see `Partition::prepare`), and this finds it done.
            let me = Arc::clone(self);
            tokio::spawn(strata_store::attribution::inherit(async move {
                tokio::time::sleep(SETTLE_DELAY).await;
                me.settle_now(txn, &decided, participants).await
            }));
        }
        Ok(Some(TxnResult::Committed {
            replayed: false,
            sizes,
        }))
    }

    /// Prepares the actions on one table's items: grouped by partition,
    /// each group one segment of intents; a split met on the way is
    /// finished and the group prepared again in the children (a prepare is
    /// idempotent per attempt and item). Each partition's outcome, failures
    /// included (a failed prepare may have left intents to release); Err
    /// only when the table could not be routed.
    async fn prepare_table(
        &self,
        txn: TxnId,
        attempt: Attempt,
        planned: &[Planned],
        stop: Option<TxnStop>,
    ) -> Vec<(Participant, Result<Prepared>)> {
        let table = planned[0].table.as_str();
        let routed = self
            .routed(table, |t| {
                Box::pin(async move {
                    let map = t.desc.map();
                    let mut parts: BTreeMap<u32, Vec<TxnAction>> = BTreeMap::new();
                    for p in planned {
                        parts
                            .entry(map.route(&p.action.op.key.hash))
                            .or_default()
                            .push(p.action.clone());
                    }
                    let limit = match stop {
                        Some(TxnStop::AfterPrepares(n)) => n,
                        _ => usize::MAX,
                    };
                    let runs = parts.iter().take(limit).map(|(id, actions)| {
                        let t = &t;
                        async move {
                            let who = Participant {
                                table: t.desc.name.clone(),
                                incarnation: t.desc.incarnation.clone(),
                                part: *id,
                            };
                            let prepared = match self.partition_by_id(t, *id) {
                                Ok(p) => p.prepare(txn, attempt, actions).await,
                                Err(e) => Err(e),
                            };
                            (who, prepared)
                        }
                    });
                    let out = join_all(runs).await;
                    // A split met: routed again (the prepares that landed
                    // are found again as this attempt's own).
                    if let Some((_, Err(Error::Sealed { table, partition }))) = out
                        .iter()
                        .find(|(_, r)| matches!(r, Err(Error::Sealed { .. })))
                    {
                        return Err(Error::Sealed {
                            table: table.clone(),
                            partition: *partition,
                        });
                    }
                    Ok(out)
                })
            })
            .await;
        match routed {
            Ok(out) => out,
            Err(e) => {
                // Not even routed: named as the table's first partition so
                // the failure is reported (nothing was prepared by it).
                let who = Participant {
                    table: table.to_string(),
                    incarnation: String::new(),
                    part: 0,
                };
                vec![(who, Err(e))]
            }
        }
    }

    /// Settles a decided transaction's partitions. A failure is logged:
    /// whoever meets the locks settles them.
    async fn settle_now(
        &self,
        txn: TxnId,
        decision: &Arc<Decision>,
        participants: Vec<Participant>,
    ) {
        let work = participants
            .iter()
            .map(|p| async move { (p, self.settle_participant(txn, decision, p).await) });
        for (p, r) in join_all(work).await {
            if let Err(e) = r {
                tracing::warn!(%txn, table = %p.table, partition = p.part, error = %e,
                    "a transaction's settlement failed; whoever meets its locks settles them");
            }
        }
    }

    async fn settle_participant(
        &self,
        txn: TxnId,
        decision: &Arc<Decision>,
        p: &Participant,
    ) -> Result<()> {
        let t = match self.table(&p.table).await {
            Ok(t) => t,
            Err(Error::TableNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if t.desc.incarnation != p.incarnation {
            return Ok(()); // the table was deleted (and maybe re-created)
        }
        match t.partitions.get(&p.part) {
            Some(part) => part.settle_txn(txn, decision).await,
            None => Ok(()),
        }
    }

    /// TransactGetItems: the items as of one moment, never part of a
    /// transaction. Reads every item (strongly, settling decided locks),
    /// then reads their versions again: when nothing changed between the
    /// two rounds, the first round's items all held at the moment between
    /// them. Otherwise it reads again, a few times, then takes the snapshot
    /// by locking every item (`locked_read`), and cancels only if other
    /// transactions hold items then.
    pub async fn transact_get(
        self: &Arc<Self>,
        gets: &[(String, ItemKey)],
    ) -> Result<std::result::Result<Vec<Option<Arc<Item>>>, Vec<CancelReason>>> {
        self.check_items(gets.iter().map(|(t, k)| (t.as_str(), k)).collect())
            .await?;
        let mut before = self.read_versions(gets).await?;
        let mut changed = Vec::new();
        for _ in 0..OPTIMISTIC_ROUNDS {
            let after = self.read_versions(gets).await?;
            changed = (0..gets.len())
                .filter(|&i| version_id(&before[i]) != version_id(&after[i]))
                .collect();
            if changed.is_empty() {
                return Ok(Ok(before
                    .into_iter()
                    .map(|v| v.filter(|v| !v.deleted).map(|v| v.item))
                    .collect()));
            }
            before = after;
        }
        // Items that keep changing: lock them all (intents that change
        // nothing), read what the locks hold, release.
        if let Some(items) = self.locked_read(gets).await? {
            return Ok(Ok(items));
        }
        Ok(Err((0..gets.len())
            .map(|i| {
                if changed.contains(&i) {
                    CancelReason::TransactionConflict
                } else {
                    CancelReason::None
                }
            })
            .collect()))
    }

    /// A snapshot by locking: every item locked at once by a read-only
    /// transaction's ConditionCheck intents holds, at the moment the last
    /// lock landed, what its intent recorded. Items another transaction
    /// holds are asked again (the free ones are kept locked meanwhile, so
    /// the set only grows: transactions in flight decide within a few round
    /// trips, and new ones cancel on this one's locks) for up to
    /// `LOCKED_READ_WAIT`. Never committed: the locks are
    /// released (no decision is needed: nothing can commit this id). None
    /// when some item stayed held by others.
    async fn locked_read(
        self: &Arc<Self>,
        gets: &[(String, ItemKey)],
    ) -> Result<Option<Vec<Option<Arc<Item>>>>> {
        let txn = TxnId::random();
        let clock = &self.ctx.config.clock;
        let me = Attempt {
            nonce: rand::random::<u64>() | 1,
            params: 0,
            deadline_micros: clock.now_micros() + self.ctx.config.txn_timeout.as_micros() as u64,
            partial: true,
        };
        let mut by_table: BTreeMap<&str, Vec<Planned>> = BTreeMap::new();
        for (index, (table, key)) in gets.iter().enumerate() {
            by_table.entry(table).or_default().push(Planned {
                table: table.clone(),
                action: TxnAction {
                    index,
                    op: WriteOp::delete(key.clone()),
                    check: true,
                },
            });
        }
        let started = std::time::Instant::now();
        let mut participants: HashSet<Participant> = HashSet::new();
        let mut items = vec![None; gets.len()];
        let outcome = loop {
            let prepared = join_all(
                by_table
                    .values()
                    .map(|g| self.prepare_table(txn, me, g, None)),
            )
            .await;
            let mut complete = true;
            let mut failure = None;
            for (who, outcome) in prepared.into_iter().flatten() {
                participants.insert(who);
                match outcome {
                    Ok(Prepared::Locked(locked)) => {
                        for l in locked {
                            items[l.index] = l.image;
                        }
                    }
                    Ok(_) => complete = false,
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                break Err(e);
            }
            if complete {
                break Ok(Some(std::mem::take(&mut items)));
            }
            if started.elapsed() > LOCKED_READ_WAIT {
                break Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        // Released by a decision of this process's own, never stored:
        // nothing can commit a read's id.
        let release = Arc::new(Decision::abort_of(me.nonce, clock.now_micros()));
        self.settle_now(txn, &release, participants.into_iter().collect())
            .await;
        outcome
    }

    /// What both operations refuse before anything else: too few or too
    /// many items, a key of the wrong types, two actions on one item.
    async fn check_items(&self, items: Vec<(&str, &ItemKey)>) -> Result<()> {
        if items.is_empty() || items.len() > MAX_TXN_ACTIONS {
            return Err(Error::Validation(format!(
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {MAX_TXN_ACTIONS}, Member must have length greater than or equal to 1"
            )));
        }
        let mut seen = HashSet::new();
        for (table, key) in items {
            let t = self.table(table).await?;
            check_key_types(&t.desc.key_schema, key)?;
            if !seen.insert((table, encode_key(key))) {
                return Err(Error::Validation(
                    "Transaction request cannot include multiple operations on one item".into(),
                ));
            }
        }
        Ok(())
    }

    async fn read_versions(&self, gets: &[(String, ItemKey)]) -> Result<Vec<Option<Version>>> {
        join_all(gets.iter().map(|(table, key)| {
            self.routed(table, move |t| {
                Box::pin(async move {
                    self.partition_for(&t, &key.hash)?
                        .get_version(&encode_key(key), true)
                        .await
                })
            })
        }))
        .await
        .into_iter()
        .collect()
    }

    /// Settles the locks the table's partitions hold in this process's
    /// views (decided or past their deadline): what a strongly consistent
    /// read of a local index starts with.
    pub(crate) async fn settle_held_locks(
        &self,
        t: &TableHandle,
        parts: Option<&[u32]>,
    ) -> Result<()> {
        for (id, p) in &t.partitions {
            if parts.is_none_or(|ps| ps.contains(id)) {
                p.settle_locks(ALL_KEYS).await?;
            }
        }
        Ok(())
    }

    /// Deletes decisions no lock can need any more: older than the token
    /// window plus the GC grace period (no coordinator creates a decision
    /// past its deadline, and a retry within the window must find it), once
    /// every partition the transaction prepared holds no lock of it
    /// (settling them first). Returns how many it deleted.
    pub async fn collect_decisions(&self) -> Result<usize> {
        let c = &self.ctx.config;
        let horizon = c.clock.now_ms().saturating_sub(
            (c.token_window + c.gc_grace + c.clock_skew + c.txn_timeout).as_millis() as u64,
        );
        let store = self.ctx.store.as_ref();
        let mut deleted = 0;
        for meta in io::list(store, &paths::txn_decisions()).await? {
            if (meta.last_modified.timestamp_millis().max(0) as u64) >= horizon {
                continue;
            }
            let Some(id) = meta
                .location
                .filename()
                .and_then(|f| f.parse::<TxnId>().ok())
            else {
                continue;
            };
            let Some(d) = self.ctx.decisions.get(store, id).await? else {
                continue;
            };
            for p in &d.participants {
                self.settle_participant(id, &d, p).await?;
            }
            io::delete(store, &meta.location).await?;
            self.ctx.decisions.forget(id);
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// A decision made by another request with the same token: its answer.
fn replay(d: &Decision, params: u64, count: usize) -> Result<TxnResult> {
    if d.params != params && d.params != 0 {
        return Err(Error::IdempotentMismatch);
    }
    Ok(match d.outcome {
        Outcome::Commit => TxnResult::Committed {
            replayed: true,
            sizes: vec![0; count],
        },
        Outcome::Abort => TxnResult::Canceled(vec![CancelReason::TransactionConflict; count]),
    })
}

fn stopped() -> Error {
    Error::OutcomeUnknown {
        table: String::new(),
        cause: "the coordinator was stopped (a test)".into(),
    }
}

fn version_id(v: &Option<Version>) -> Option<(u64, u64, bool)> {
    v.as_ref().map(|v| (v.seq, v.ts_micros, v.deleted))
}

//! A partition's side of transactions: prepares (intents that lock items),
//! settlements (releases, with the changes of a committed transaction),
//! and the settling of decided or expired locks by whoever meets them.
//! See `crate::txn` and ARCHITECTURE.md ("Transactions").

use crate::txn::{Decision, Outcome};

/// A decided transaction, for settling: its id and its decision.
pub(crate) type Decided = (TxnId, Arc<Decision>);

use super::*;

/// One action of a transaction on an item of this partition.
#[derive(Clone)]
pub(crate) struct TxnAction {
    /// Its place in the transaction (what cancellation reasons are listed by).
    pub index: usize,
    pub op: crate::ops::WriteOp,
    /// A ConditionCheck: its condition is evaluated and the item locked,
    /// nothing is changed.
    pub check: bool,
}

/// Why an action cannot be prepared.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    ConditionFailed(Option<Item>),
    /// Another transaction holds the item.
    Conflict,
    Validation(String),
}

/// An action whose item holds its transaction's intent.
#[derive(Debug)]
pub(crate) struct LockedAction {
    pub index: usize,
    /// The larger of the item's sizes before and after (what it costs).
    pub size: usize,
    /// The item as the intent holds it (for a ConditionCheck: as it is,
    /// and stays while locked); None when absent.
    pub image: Option<Arc<Item>>,
}

/// What a prepare came to.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// Every action's item holds this transaction's intent (written now, or
    /// by an earlier attempt with the same token): per action, its index
    /// and the larger of the item's sizes before and after (what it costs).
    Locked(Vec<LockedAction>),
    /// The transaction was settled here already (a retry of one that was
    /// decided): its decision is the answer.
    SettledBefore,
    /// Refused, per action.
    Refused(Vec<(usize, Refusal)>),
}

impl Partition {
    /// Locks the items of `actions` for transaction `txn`, evaluating each
    /// condition (and computing each update) against the items' committed
    /// state: one segment of intents, appended through the one append loop.
    pub(crate) async fn prepare(
        &self,
        txn: TxnId,
        attempt: Attempt,
        actions: &[TxnAction],
    ) -> Result<Prepared> {
        let prepared = self.prepare_once(txn, attempt, actions).await?;
        let Prepared::Refused(refused) = &prepared else {
            return Ok(prepared);
        };
        // Items held by transactions that are decided (or past their
        // deadline) are settled, and the prepare tried once more.
        let held: Vec<Vec<u8>> = refused
            .iter()
            .filter(|(_, r)| matches!(r, Refusal::Conflict))
            .filter_map(|(i, _)| actions.iter().find(|a| a.index == *i))
            .map(|a| encode_key(&a.op.key))
            .collect();
        let settled = self.settle_keys(held).await?;
        if settled == 0 {
            return Ok(prepared);
        }
        self.prepare_once(txn, attempt, actions).await
    }

    async fn prepare_once(
        &self,
        txn: TxnId,
        attempt: Attempt,
        actions: &[TxnAction],
    ) -> Result<Prepared> {
        let _g = self.sync.lock().await;
        let (prepared, _) = self
            .append_loop(Refresh::IfStale, IfUnresolved::Reevaluate, || {
                Box::pin(async move {
                    if self.read_view().token_seq(&txn.token()).is_some() {
                        return Ok(Proposal::Done(Prepared::SettledBefore));
                    }
                    // Transactions this process knows decided are settled by
                    // the same segment (one PUT less each, and no wait for
                    // their own settlement), and their changes are the state
                    // this one is evaluated on.
                    let known = self.known_decided(txn);
                    let settling = self.settlement(&known).await?;
                    let mut intents = Vec::new();
                    let mut sizes = Vec::new();
                    let mut refused = Vec::new();
                    let mut newest_seen = settling.newest_seen;
                    for a in actions {
                        let key = encode_key(&a.op.key);
                        let held = self.read_view().locks.get(&key).map(|l| l.intent.clone());
                        match held {
                            // This attempt's own (a prepare asked again).
                            Some(i) if i.txn == txn && i.attempt == attempt.nonce => {
                                sizes.push(LockedAction {
                                    index: a.index,
                                    size: item_size(&i.image),
                                    image: (!i.deleted).then(|| Arc::clone(&i.image)),
                                });
                                continue;
                            }
                            // Settled by this segment.
                            Some(i) if known.iter().any(|(t, _)| *t == i.txn) => {}
                            // Another transaction's, or another attempt's
                            // under this id (a retry racing its original).
                            Some(_) => {
                                refused.push((a.index, Refusal::Conflict));
                                continue;
                            }
                            None => {}
                        }
                        let current = match settling.state.get(&key) {
                            Some(settled) => settled.clone(),
                            None => {
                                let found = self.lookup(&key, Fill::No).await?;
                                if let Some(v) = &found {
                                    newest_seen = newest_seen.max(v.ts_micros);
                                }
                                found.filter(|v| !v.deleted).map(|v| v.item)
                            }
                        };
                        let new = if a.check {
                            check_condition(&a.op, current.as_deref(), a.index)
                                .map(|()| current.as_deref().cloned())
                        } else {
                            self.apply_op(&a.op, current.as_deref(), a.index)
                        };
                        match new {
                            Ok(new) => {
                                let before = current.as_deref().map_or(0, item_size);
                                let after = new.as_ref().map_or(0, item_size);
                                let image = new.map(Arc::new);
                                sizes.push(LockedAction {
                                    index: a.index,
                                    size: before.max(after),
                                    image: image.clone(),
                                });
                                intents.push(Intent {
                                    txn,
                                    deleted: image.is_none(),
                                    image: image.unwrap_or_else(|| {
                                        Arc::new(self.table.key_schema.key_item(&a.op.key))
                                    }),
                                    key,
                                    check: a.check,
                                    deadline_micros: attempt.deadline_micros,
                                    params: attempt.params,
                                    attempt: attempt.nonce,
                                })
                            }
                            Err(Error::ConditionFailed { item, .. }) => {
                                refused.push((a.index, Refusal::ConditionFailed(item)))
                            }
                            Err(Error::Validation(m)) => {
                                refused.push((a.index, Refusal::Validation(m)))
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    let only_held = refused.iter().all(|(_, r)| matches!(r, Refusal::Conflict));
                    let answer = if refused.is_empty() {
                        Prepared::Locked(sizes)
                    } else if attempt.partial && only_held && !intents.is_empty() {
                        // A locking read keeps the items it could lock.
                        Prepared::Refused(refused)
                    } else {
                        // An observation of the items: made on a current view.
                        return Ok(Proposal::DoneIfCurrent(Prepared::Refused(refused)));
                    };
                    if intents.is_empty() {
                        return Ok(Proposal::Done(answer));
                    }
                    let mut seg = self.next_segment(
                        rand::random(),
                        newest_seen + 1,
                        settling.images_gen,
                        settling.mutations,
                    );
                    seg.releases = settling.releases;
                    seg.intents = intents;
                    Ok(Proposal::Append(seg, answer))
                })
            })
            .await?;
        Ok(prepared)
    }

    /// The transactions other than `except` holding locks here whose
    /// decisions this process has cached, for the attempt that holds them.
    fn known_decided(&self, except: TxnId) -> Vec<Decided> {
        let v = self.read_view();
        let mut out: Vec<Decided> = Vec::new();
        for l in v.locks.values() {
            let t = l.intent.txn;
            if t == except || out.iter().any(|(o, _)| *o == t) {
                continue;
            }
            if let Some(d) = self.ctx.decisions.cached(t) {
                if d.attempt == l.intent.attempt {
                    out.push((t, d));
                }
            }
        }
        out
    }

    /// What settling `txns` here writes: a release for every intent of
    /// theirs, and the change of each intent of the attempt a Commit
    /// decided as a mutation (with its old image when the table keeps
    /// them; another attempt's under that id can never commit); and the
    /// items' states after it.
    async fn settlement(&self, txns: &[Decided]) -> Result<Settlement> {
        let images_gen = self.next_images_gen();
        let keep_old = images_gen % 2 == 1;
        let held: Vec<(Intent, bool)> = {
            let v = self.read_view();
            v.locks
                .values()
                .filter_map(|l| {
                    let (_, d) = txns.iter().find(|(t, _)| *t == l.intent.txn)?;
                    let applies = d.outcome == Outcome::Commit && d.attempt == l.intent.attempt;
                    Some((l.intent.clone(), applies))
                })
                .collect()
        };
        let mut s = Settlement {
            images_gen,
            ..Default::default()
        };
        for (i, applies) in held {
            if applies && !i.check {
                let found = self.lookup(&i.key, Fill::No).await?;
                if let Some(v) = &found {
                    s.newest_seen = s.newest_seen.max(v.ts_micros);
                }
                let old = found.filter(|v| !v.deleted).map(|v| v.item);
                s.mutations.push(Mutation {
                    key: i.key.clone(),
                    image: Arc::clone(&i.image),
                    deleted: i.deleted,
                    old_image: if keep_old { old } else { None },
                    token: Some(i.txn.token()),
                    replicated: None,
                    expired: false,
                });
                let after = (!i.deleted).then(|| Arc::clone(&i.image));
                s.state.insert(i.key.clone(), after);
            }
            s.releases.push(Release {
                txn: i.txn,
                key: i.key,
            });
        }
        Ok(s)
    }

    /// Ends transaction `txn`'s locks here: a committed transaction's
    /// changes become the items' new versions (ordinary mutations, which
    /// streams, replicas and indexes see), an aborted one's are dropped.
    /// Nothing to do when no lock of it is held.
    pub(crate) async fn settle_txn(&self, txn: TxnId, decision: &Arc<Decision>) -> Result<()> {
        let _g = self.sync.lock().await;
        let decided = [(txn, Arc::clone(decision))];
        let decided = &decided;
        self.append_loop(Refresh::IfStale, IfUnresolved::Reevaluate, || {
            Box::pin(async move {
                let s = self.settlement(decided).await?;
                if s.releases.is_empty() {
                    return Ok(Proposal::Done(()));
                }
                let mut seg =
                    self.next_segment(rand::random(), s.newest_seen + 1, s.images_gen, s.mutations);
                seg.releases = s.releases;
                Ok(Proposal::Append(seg, ()))
            })
        })
        .await?;
        Ok(())
    }

    /// [`Partition::settle_locks`] on each of these items (encoded keys).
    pub(super) async fn settle_keys(
        &self,
        keys: impl IntoIterator<Item = Vec<u8>>,
    ) -> Result<usize> {
        let mut settled = 0;
        for key in keys {
            let one = (
                Bound::Included(key.as_slice()),
                Bound::Included(key.as_slice()),
            );
            settled += self.settle_locks(one).await?;
        }
        Ok(settled)
    }

    /// Settles the locks on items in `keys` whose transactions are decided,
    /// aborting those with no decision past their deadline (what a strongly
    /// consistent read does first, so it sees every acknowledged
    /// transaction; what a writer that met a lock does). Returns how many
    /// transactions it settled; the undecided ones keep their locks. With
    /// no lock in `keys`, it only looks at the view.
    pub(crate) async fn settle_locks(&self, keys: (Bound<&[u8]>, Bound<&[u8]>)) -> Result<usize> {
        let held: Vec<(TxnId, u64, u64)> = {
            let v = self.read_view();
            let mut held: Vec<(TxnId, u64, u64)> = v
                .locks
                .range::<[u8], _>(keys)
                .map(|(_, l)| (l.intent.txn, l.intent.attempt, l.intent.deadline_micros))
                .collect();
            held.sort();
            held.dedup_by_key(|(t, _, _)| *t);
            held
        };
        let mut settled = 0;
        for (txn, attempt, deadline) in held {
            if let Some(d) = self.decision(txn, attempt, deadline).await? {
                self.settle_txn(txn, &d).await?;
                settled += 1;
            }
        }
        Ok(settled)
    }

    /// Transaction `txn`'s decision, if made; past `deadline` with none,
    /// an abort is made (exactly one of the coordinator's commit and this
    /// abort is created: whichever is returned). A cached decision of
    /// another attempt than the lock's is read again: the id may have been
    /// collected and used again since.
    pub(crate) async fn decision(
        &self,
        txn: TxnId,
        attempt: u64,
        deadline_micros: u64,
    ) -> Result<Option<Arc<Decision>>> {
        let decisions = &self.ctx.decisions;
        let found = match decisions.get(self.store(), txn).await? {
            Some(d) if d.attempt != attempt => decisions.read(self.store(), txn).await?,
            found => found,
        };
        if found.is_some() {
            return Ok(found);
        }
        if self.clock().now_micros() <= deadline_micros {
            return Ok(None);
        }
        tracing::info!(table = %self.table.name, partition = self.part, %txn,
            "aborting a transaction past its deadline");
        let abort = Decision::abort_of(attempt, self.clock().now_micros());
        decisions.decide(self.store(), txn, abort).await.map(Some)
    }
}

/// What a coordinator's attempt writes into its intents.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    pub nonce: u64,
    pub params: u64,
    pub deadline_micros: u64,
    /// Lock what is free even when other items are held (a locking read,
    /// which asks again for the rest and keeps what it has).
    pub partial: bool,
}

/// What a settlement writes (see `Partition::settlement`).
#[derive(Default)]
struct Settlement {
    images_gen: u64,
    mutations: Vec<Mutation>,
    releases: Vec<Release>,
    newest_seen: u64,
    /// Each changed item's state after the settlement (None: deleted).
    state: HashMap<Vec<u8>, Option<Arc<Item>>>,
}

/// A ConditionCheck's condition against the item's current state.
fn check_condition(op: &crate::ops::WriteOp, current: Option<&Item>, index: usize) -> Result<()> {
    if let Some(cond) = &op.condition {
        if !cond(current).map_err(Error::Validation)? {
            return Err(Error::ConditionFailed {
                index,
                item: current.cloned(),
            });
        }
    }
    Ok(())
}

pub(crate) const ALL_KEYS: (Bound<&[u8]>, Bound<&[u8]>) = (Bound::Unbounded, Bound::Unbounded);

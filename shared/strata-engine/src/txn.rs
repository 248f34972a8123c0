//! What transactions leave in the store: intents and releases in the
//! partitions' logs, and one decision object per transaction.
//!
//! A transaction (TransactWriteItems) first *prepares* each partition it
//! touches: a segment holding an [`Intent`] per item, which locks the item
//! without changing it. Then it creates `txn/<id>` holding
//! [`Outcome::Commit`] by conditional create: that create is the commit
//! point. Whoever meets an intent afterwards (the coordinator right away,
//! a reader, a writer, the compactor) *settles* it: it appends the intent's
//! change as an ordinary mutation (commit) or nothing (abort), with a
//! [`Release`] that unlocks the item. An intent whose transaction has no
//! decision past its deadline is aborted by whoever meets it, by creating
//! `txn/<id>` holding [`Outcome::Abort`]: exactly one of the two creates
//! wins. See ARCHITECTURE.md ("Transactions").

use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::codec::{DecodeError, Reader, Writer};
use crate::error::{Error, Result};
use crate::io::{self, Created};
use crate::value::Item;

/// A transaction's id: derived from the client's request token when it
/// sends one (so a retry finds the same decision), random otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxnId(pub u128);

impl TxnId {
    pub fn random() -> TxnId {
        TxnId(rand::random::<u128>() | 1)
    }

    /// The id of attempt `n` of a transaction sent with `token` by `scope`
    /// (the caller's access key: two callers' tokens never meet). An
    /// attempt whose id was aborted leaves it spent; the next has its own.
    pub fn from_token(scope: &str, token: &str, n: u32) -> TxnId {
        let mut bytes = Vec::with_capacity(scope.len() + token.len() + 16);
        bytes.extend_from_slice(b"txn\0");
        bytes.extend_from_slice(scope.as_bytes());
        bytes.push(0);
        bytes.extend_from_slice(token.as_bytes());
        // 0xff never occurs in UTF-8: no token ends where the number starts.
        bytes.push(0xff);
        bytes.extend_from_slice(&n.to_le_bytes());
        TxnId(xxhash_rust::xxh3::xxh3_128(&bytes) | 1)
    }

    /// The token the settled changes carry in their partition's log, so a
    /// retry of a transaction that was settled there is recognised.
    pub fn token(self) -> String {
        format!("txn:{self}")
    }
}

impl std::fmt::Display for TxnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for TxnId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        u128::from_str_radix(s, 16).map(TxnId)
    }
}

/// The hash of a request's parameters that a retry with the same token
/// must match.
pub fn params_hash(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes) | 1
}

/// One item's part in a prepared transaction: the lock, and the change the
/// transaction makes if it commits.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub txn: TxnId,
    /// The item's encoded key.
    pub key: Vec<u8>,
    /// The new image (for a delete, the key attributes only).
    pub image: Arc<Item>,
    pub deleted: bool,
    /// A ConditionCheck: the item is locked, not changed.
    pub check: bool,
    /// After this (µs since the epoch) a transaction with no decision may
    /// be aborted by whoever meets the intent.
    pub deadline_micros: u64,
    /// A hash of the request (what a retry with the same token must match).
    pub params: u64,
    /// The coordinator's attempt that wrote it (random). Two coordinators
    /// may share an id (a client's retry while its first request is still
    /// in flight): a decision settles only the intents of the attempt that
    /// made it; another attempt's under that id can never commit.
    pub attempt: u64,
}

/// The end of an intent: the item is unlocked (its change, if the
/// transaction committed, is a mutation of the same segment).
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub txn: TxnId,
    pub key: Vec<u8>,
}

pub(crate) fn write_intent(w: &mut Writer, i: &Intent) {
    w.buf.extend_from_slice(&i.txn.0.to_le_bytes());
    w.bytes(&i.key);
    w.u8(u8::from(i.deleted) | (u8::from(i.check) << 1));
    w.item(&i.image);
    w.u64(i.deadline_micros);
    w.fixed_u64(i.params);
    w.fixed_u64(i.attempt);
}

pub(crate) fn read_intent(r: &mut Reader) -> std::result::Result<Intent, DecodeError> {
    let txn = read_id(r)?;
    let key = r.bytes()?.to_vec();
    let flags = r.u8()?;
    if flags & !3 != 0 {
        return Err(DecodeError(format!("unknown intent flags {flags:#x}")));
    }
    Ok(Intent {
        txn,
        key,
        deleted: flags & 1 != 0,
        check: flags & 2 != 0,
        image: Arc::new(r.item()?),
        deadline_micros: r.u64()?,
        params: r.fixed_u64()?,
        attempt: r.fixed_u64()?,
    })
}

pub(crate) fn write_release(w: &mut Writer, rel: &Release) {
    w.buf.extend_from_slice(&rel.txn.0.to_le_bytes());
    w.bytes(&rel.key);
}

pub(crate) fn read_release(r: &mut Reader) -> std::result::Result<Release, DecodeError> {
    Ok(Release {
        txn: read_id(r)?,
        key: r.bytes()?.to_vec(),
    })
}

fn read_id(r: &mut Reader) -> std::result::Result<TxnId, DecodeError> {
    let mut id = [0u8; 16];
    id.copy_from_slice(r.take(16)?);
    Ok(TxnId(u128::from_le_bytes(id)))
}

/// A lock as a manifest carries it (an intent the manifest's
/// `compacted_through` passed before it was released): the intent in the
/// segment codec, hex, and the seq it was committed at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedLock {
    pub seq: u64,
    pub intent: String,
}

impl CarriedLock {
    pub fn new(seq: u64, intent: &Intent) -> CarriedLock {
        let mut w = Writer::default();
        write_intent(&mut w, intent);
        CarriedLock {
            seq,
            intent: w.buf.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn intent(&self) -> std::result::Result<Intent, DecodeError> {
        let hex = self.intent.as_bytes();
        if hex.len() % 2 != 0 {
            return Err(DecodeError("odd-length carried lock".into()));
        }
        let bytes = hex
            .chunks(2)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 16).ok())
                    .ok_or_else(|| DecodeError("bad hex in a carried lock".into()))
            })
            .collect::<std::result::Result<Vec<u8>, _>>()?;
        let mut r = Reader::new(&bytes);
        let intent = read_intent(&mut r)?;
        if !r.is_empty() {
            return Err(DecodeError("trailing bytes after a carried lock".into()));
        }
        Ok(intent)
    }
}

/// What became of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Commit,
    Abort,
}

/// A partition a transaction prepared: what the decision's collector
/// looks at before it deletes the decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Participant {
    pub table: String,
    pub incarnation: String,
    pub part: u32,
}

/// The `txn/<id>` object: immutable once created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    /// The request hash of whoever decided (see [`Intent::params`]).
    pub params: u64,
    /// The attempt whose intents it decides (see [`Intent::attempt`]).
    pub attempt: u64,
    pub at_micros: u64,
    /// The partitions prepared (the coordinator's decision lists them; an
    /// abort by a resolver lists none).
    #[serde(default)]
    pub participants: Vec<Participant>,
    /// Why the coordinator aborted: a cancellation reason code per action
    /// ("None" for the ones that were fine), so a retry with the same
    /// token hears the same answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl Decision {
    /// An abort of `attempt` by someone other than its coordinator (a
    /// resolver past the deadline, a locking read releasing its locks).
    pub fn abort_of(attempt: u64, at_micros: u64) -> Decision {
        Decision {
            outcome: Outcome::Abort,
            params: 0,
            attempt,
            at_micros,
            participants: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

/// The decisions of transactions met lately. Decisions never change once
/// made, so they are cached without expiry, bounded by count.
pub(crate) struct Decisions {
    cache: moka::sync::Cache<TxnId, Arc<Decision>>,
}

impl Default for Decisions {
    fn default() -> Self {
        Self {
            cache: moka::sync::Cache::new(100_000),
        }
    }
}

impl Decisions {
    /// The decision, if this process has met it.
    pub fn cached(&self, id: TxnId) -> Option<Arc<Decision>> {
        self.cache.get(&id)
    }

    /// The decision, if one was made.
    pub async fn get(&self, store: &dyn ObjectStore, id: TxnId) -> Result<Option<Arc<Decision>>> {
        if let Some(d) = self.cache.get(&id) {
            return Ok(Some(d));
        }
        self.read(store, id).await
    }

    /// The decision as the store has it now (a cached one may be of an id
    /// since collected and used again, more than the token window later).
    pub async fn read(&self, store: &dyn ObjectStore, id: TxnId) -> Result<Option<Arc<Decision>>> {
        let path = decision_path(id);
        let Some(bytes) = io::get_opt(store, &path).await? else {
            self.cache.invalidate(&id);
            return Ok(None);
        };
        let d: Decision =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&path, e.to_string()))?;
        let d = Arc::new(d);
        self.cache.insert(id, Arc::clone(&d));
        Ok(Some(d))
    }

    /// Creates the decision if none exists; returns the one that holds
    /// (ours, or the one made first). An error leaves it unknown whether
    /// ours was made.
    pub async fn decide(
        &self,
        store: &dyn ObjectStore,
        id: TxnId,
        decision: Decision,
    ) -> Result<Arc<Decision>> {
        let path = decision_path(id);
        let bytes = serde_json::to_vec(&decision).unwrap_or_default();
        let mut last = None;
        for _ in 0..3 {
            match io::create(store, &path, bytes.clone()).await {
                Ok(Created::Created) => {
                    let d = Arc::new(decision);
                    self.cache.insert(id, Arc::clone(&d));
                    return Ok(d);
                }
                Ok(refused) => {
                    let found = io::read_refused(refused, || self.read(store, id)).await?;
                    if let Some(d) = found {
                        return Ok(d);
                    }
                    // A 409 with nothing to read yet: ask again.
                }
                Err(e) => {
                    // The create may have landed: what is there now decides.
                    if let Some(d) = self.read(store, id).await? {
                        return Ok(d);
                    }
                    last = Some(e);
                }
            }
        }
        Err(match last {
            Some(e) => Error::store(&path, e),
            None => Error::store_msg(&path, "a transaction's decision could not be settled"),
        })
    }

    pub fn forget(&self, id: TxnId) {
        self.cache.invalidate(&id);
    }
}

pub fn decision_path(id: TxnId) -> Path {
    crate::paths::txn_decision(&id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn intents_round_trip_through_a_carried_lock() {
        let i = Intent {
            txn: TxnId::from_token("acct", "tok", 0),
            key: vec![1, 2, 3],
            image: Arc::new(Item::from([("a".into(), Value::S("b".into()))])),
            deleted: false,
            check: true,
            deadline_micros: 17,
            params: 0xfeed,
            attempt: 9,
        };
        let c = CarriedLock::new(5, &i);
        assert_eq!(c.intent().unwrap(), i);
        assert_eq!(TxnId::from_token("acct", "tok", 0), i.txn);
        assert_ne!(TxnId::from_token("other", "tok", 0), i.txn);
        assert_ne!(TxnId::from_token("acct", "tok", 1), i.txn);
        assert_eq!(i.txn.to_string().parse::<TxnId>().unwrap(), i.txn);
    }
}

//! Log segments: one committed batch of mutations of one partition.
//!
//! A segment is created exactly once, by a conditional create of
//! `log/<seq>`; whoever creates it owns that sequence number. Its frame
//! carries a checksum, so a torn or corrupted segment is rejected.

use std::sync::Arc;

use crate::codec::{seal, unseal, DecodeError, Reader, Writer};
use crate::txn::{read_intent, read_release, write_intent, write_release, Intent, Release};
use crate::value::Item;

const MAGIC: &[u8; 4] = b"STSG";
/// The format of an ordinary segment.
const VERSION: u8 = 3;
/// The format of a seal (a split's last segment of its partition): format
/// 3 and a flag, so a build that predates splits refuses a seal instead of
/// reading it as an empty commit and committing after it.
const VERSION_SEAL: u8 = 4;
/// The format of a segment holding an expiry by time to live: format 4
/// whose per-mutation origin byte has a second flag (the service's own
/// delete), so a build that predates it refuses the segment instead of
/// misreading the flag as a replicated stamp.
const VERSION_EXPIRY: u8 = 5;
/// The format of a segment holding a transaction's intents or releases:
/// format 5 and two lists after the seal byte, so a build that predates
/// transactions refuses it instead of committing over a lock.
const VERSION_TXN: u8 = 6;

/// The origin byte of a mutation: replicated (a stamp follows), expired.
const REPLICATED: u8 = 1;
const EXPIRED: u8 = 2;

/// Who wrote a version of an item, and when: the order last-writer-wins
/// replication uses. Compared by time first, then by region name, so two
/// regions always agree which of two versions is newer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub ts_micros: u64,
    pub region: Arc<str>,
}

impl Default for Stamp {
    /// Older than every real version: what an absent key has.
    fn default() -> Self {
        Stamp {
            ts_micros: 0,
            region: Arc::from(""),
        }
    }
}

/// One mutation of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct Mutation {
    /// The item's encoded key ([`crate::keys::encode_key`]).
    pub key: Vec<u8>,
    /// The new image; for a delete, the key attributes only.
    pub image: Arc<Item>,
    pub deleted: bool,
    /// The image before, kept when the table's streams want old images.
    pub old_image: Option<Arc<Item>>,
    /// The client's request token, for idempotent retries.
    pub token: Option<String>,
    /// Set when the mutation was replicated from another region: the
    /// version's original stamp. A local mutation's stamp is its segment's
    /// `lww_ts_micros` and region.
    pub replicated: Option<Stamp>,
    /// Deleted by the service's time-to-live expiry, not by a client: its
    /// stream record names the service (`userIdentity`).
    pub expired: bool,
}

impl LogSegment {
    /// The stamp of mutation `m` of this segment.
    pub fn stamp_of(&self, m: &Mutation) -> Stamp {
        m.replicated.clone().unwrap_or_else(|| Stamp {
            ts_micros: self.lww_ts_micros,
            region: Arc::from(self.origin_region.as_str()),
        })
    }
}

/// A committed batch: the mutations of one or more requests, applied atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSegment {
    pub seq: u64,
    /// Random per commit attempt: lets a writer whose create response was
    /// lost recognise its own segment.
    pub commit_id: u128,
    /// Commit time, microseconds since the Unix epoch by the committing
    /// instance's clock; strictly increasing within a partition. What
    /// point-in-time reads cut the log by. Never pushed ahead by a stamp
    /// replicated from another region.
    pub commit_ts_micros: u64,
    /// The last-writer-wins time of this segment's local mutations: the
    /// commit time, or later when a version it replaces carries a later
    /// stamp (from a region whose clock runs ahead).
    pub lww_ts_micros: u64,
    pub origin_region: String,
    /// The table's old-image generation this segment was written under
    /// (see `TableDescriptor::images_gen`): odd means every mutation carries
    /// its old image (`None` when absent). Never lower than the previous
    /// segment's, so one writer with a stale descriptor cannot leave images
    /// out once a stream is on. `None` in segments written before it existed.
    pub images_gen: Option<u64>,
    pub mutations: Vec<Mutation>,
    /// The partition is split here: nothing commits after this segment (it
    /// carries no mutations); its keys go on in its two children.
    pub seal: bool,
    /// Items a transaction locks here (its prepare).
    pub intents: Vec<Intent>,
    /// Locks this segment ends (a settled transaction; its changes, if it
    /// committed, are among `mutations`).
    pub releases: Vec<Release>,
}

impl LogSegment {
    /// What a torn or otherwise unreadable segment object counts as: a
    /// commit of nothing. It holds its sequence number, so nothing is
    /// written over it, and every reader sees the same empty commit.
    pub fn void(seq: u64) -> LogSegment {
        LogSegment {
            seq,
            commit_id: 0,
            commit_ts_micros: 0,
            lww_ts_micros: 0,
            origin_region: String::new(),
            images_gen: None,
            mutations: Vec::new(),
            seal: false,
            intents: Vec::new(),
            releases: Vec::new(),
        }
    }

    /// Whether `bytes` pass the segment frame check (length, magic,
    /// checksum): a segment that does, yet does not decode, is not torn.
    pub fn frame_ok(bytes: &[u8]) -> bool {
        unseal(MAGIC, bytes).is_ok()
    }

    pub fn is_void(&self) -> bool {
        self.commit_id == 0
            && self.commit_ts_micros == 0
            && self.mutations.is_empty()
            && self.intents.is_empty()
            && self.releases.is_empty()
    }

    /// Whether this segment's mutations carry old images.
    pub fn keeps_old_images(&self) -> Option<bool> {
        self.images_gen.map(|g| g % 2 == 1)
    }
}

impl LogSegment {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u64(self.seq);
        w.buf.extend_from_slice(&self.commit_id.to_le_bytes());
        w.u64(self.commit_ts_micros);
        w.u64(self.lww_ts_micros);
        w.str(&self.origin_region);
        match self.images_gen {
            Some(g) => {
                w.u8(1);
                w.u64(g);
            }
            None => w.u8(0),
        }
        w.u64(self.mutations.len() as u64);
        for m in &self.mutations {
            w.bytes(&m.key);
            w.u8(u8::from(m.deleted));
            w.item(&m.image);
            match &m.old_image {
                Some(old) => {
                    w.u8(1);
                    w.item(old);
                }
                None => w.u8(0),
            }
            w.str(m.token.as_deref().unwrap_or(""));
            let flags = if m.replicated.is_some() {
                REPLICATED
            } else {
                0
            } | if m.expired { EXPIRED } else { 0 };
            w.u8(flags);
            if let Some(s) = &m.replicated {
                w.u64(s.ts_micros);
                w.str(&s.region);
            }
        }
        let version = if !self.intents.is_empty() || !self.releases.is_empty() {
            VERSION_TXN
        } else if self.seal {
            VERSION_SEAL
        } else if self.mutations.iter().any(|m| m.expired) {
            VERSION_EXPIRY
        } else {
            VERSION
        };
        if version >= VERSION_SEAL {
            w.u8(u8::from(self.seal));
        }
        if version >= VERSION_TXN {
            w.u64(self.intents.len() as u64);
            for i in &self.intents {
                write_intent(&mut w, i);
            }
            w.u64(self.releases.len() as u64);
            for r in &self.releases {
                write_release(&mut w, r);
            }
        }
        seal(MAGIC, version, &w.buf)
    }

    pub fn decode(bytes: &[u8]) -> Result<LogSegment, DecodeError> {
        let (version, body) = unseal(MAGIC, bytes)?;
        if !(1..=VERSION_TXN).contains(&version) {
            return Err(DecodeError(format!(
                "unsupported segment version {version}"
            )));
        }
        let mut r = Reader::new(body);
        let seq = r.u64()?;
        let mut id = [0u8; 16];
        id.copy_from_slice(r.take(16)?);
        let commit_ts_micros = r.u64()?;
        let lww_ts_micros = if version >= 3 {
            r.u64()?
        } else {
            commit_ts_micros
        };
        let origin_region = r.str()?.to_string();
        let images_gen = match version {
            1 | 2 => None,
            _ => match r.u8()? {
                0 => None,
                _ => Some(r.u64()?),
            },
        };
        let n = r.count()?;
        let mut mutations = Vec::with_capacity(n);
        for _ in 0..n {
            let key = r.bytes()?.to_vec();
            let deleted = r.u8()? != 0;
            let image = Arc::new(r.item()?);
            let old_image = match r.u8()? {
                0 => None,
                _ => Some(Arc::new(r.item()?)),
            };
            let token = Some(r.str()?.to_string()).filter(|t| !t.is_empty());
            let flags = match version {
                1 => 0,
                // Before format 5 any nonzero byte meant replicated.
                2..=4 => match r.u8()? {
                    0 => 0,
                    _ => REPLICATED,
                },
                _ => r.u8()?,
            };
            if flags & !(REPLICATED | EXPIRED) != 0 {
                return Err(DecodeError(format!("unknown mutation flags {flags:#x}")));
            }
            let replicated = match flags & REPLICATED {
                0 => None,
                _ => Some(Stamp {
                    ts_micros: r.u64()?,
                    region: Arc::from(r.str()?),
                }),
            };
            mutations.push(Mutation {
                key,
                image,
                deleted,
                old_image,
                token,
                replicated,
                expired: flags & EXPIRED != 0,
            });
        }
        let seal = version >= VERSION_SEAL && r.u8()? != 0;
        let (mut intents, mut releases) = (Vec::new(), Vec::new());
        if version >= VERSION_TXN {
            for _ in 0..r.count()? {
                intents.push(read_intent(&mut r)?);
            }
            for _ in 0..r.count()? {
                releases.push(read_release(&mut r)?);
            }
        }
        if !r.is_empty() {
            return Err(DecodeError("trailing bytes after segment".into()));
        }
        Ok(LogSegment {
            seq,
            commit_id: u128::from_le_bytes(id),
            commit_ts_micros,
            lww_ts_micros,
            origin_region,
            images_gen,
            mutations,
            seal,
            intents,
            releases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn round_trips_and_rejects_corruption() {
        let seg = LogSegment {
            seq: 9,
            commit_id: 0xdead_beef,
            commit_ts_micros: 1_700_000_000_000_000,
            lww_ts_micros: 1_700_000_000_000_007,
            origin_region: "us-east-1".into(),
            images_gen: Some(3),
            mutations: vec![Mutation {
                key: vec![1, 2, 3],
                image: Arc::new(Item::from([("a".into(), Value::S("b".into()))])),
                deleted: false,
                old_image: None,
                token: Some("tok".into()),
                replicated: Some(Stamp {
                    ts_micros: 5,
                    region: Arc::from("eu-west-1"),
                }),
                expired: false,
            }],
            seal: false,
            intents: Vec::new(),
            releases: Vec::new(),
        };
        let bytes = seg.encode();
        assert_eq!(LogSegment::decode(&bytes).unwrap(), seg);
        let sealed = LogSegment {
            seal: true,
            mutations: Vec::new(),
            ..seg.clone()
        };
        assert_eq!(LogSegment::decode(&sealed.encode()).unwrap(), sealed);
        assert_eq!(
            sealed.encode()[4],
            4,
            "a seal is format 4; other segments stay 3"
        );
        assert_eq!(bytes[4], 3);
        let mut expiring = seg.clone();
        expiring.mutations[0].expired = true;
        expiring.mutations[0].replicated = None;
        let e = expiring.encode();
        assert_eq!(e[4], 5, "an expiry is format 5");
        assert_eq!(LogSegment::decode(&e).unwrap(), expiring);
        let mut txn = seg.clone();
        txn.intents.push(Intent {
            txn: crate::txn::TxnId(7),
            key: vec![4],
            image: Arc::new(Item::new()),
            deleted: true,
            check: false,
            deadline_micros: 99,
            params: 3,
            attempt: 4,
        });
        txn.releases.push(Release {
            txn: crate::txn::TxnId(8),
            key: vec![5],
        });
        let t = txn.encode();
        assert_eq!(t[4], 6, "intents and releases are format 6");
        assert_eq!(LogSegment::decode(&t).unwrap(), txn);
        let mut bad = bytes.clone();
        bad[12] ^= 0x40;
        assert!(LogSegment::decode(&bad).is_err());
        assert!(LogSegment::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}

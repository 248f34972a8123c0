//! Partition manifests: which SSTs are live, in which sorted runs, and how
//! far the log is folded into them. A new version is published by a
//! conditional create of `manifest/<v+1>`, so two compactors can never both
//! win.
//!
//! Format 2 lists sorted runs (`levels`), newest first: level-0 runs are
//! flushes of the log; each deeper level is one sorted run cut into SSTs
//! with disjoint key ranges. Format 1 (before levels) listed `runs`, each
//! one SST; it is read as one level-0 sorted run per SST.

use serde::{Deserialize, Serialize};

use crate::codec::{seal, unseal, DecodeError};
use crate::run::RunInfo;

const MAGIC: &[u8; 4] = b"STMF";
const VERSION: u8 = 2;
/// Format 2 plus what splits add (SSTs inherited from another partition, a
/// seal): written only by a partition that took part in a split, so a
/// build that predates splits refuses it instead of misreading it.
const VERSION_SPLIT: u8 = 3;
/// Format 3 with `locks`: a build that predates transactions refuses it
/// rather than forget a lock.
const VERSION_LOCKS: u8 = 4;
/// The format before levels, still read.
const VERSION_RUNS: u8 = 1;

/// One sorted run: SSTs with disjoint key ranges, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortedRun {
    /// 0 for a flush of the log; 1.. for the levels below it.
    pub level: u32,
    pub ssts: Vec<RunInfo>,
}

impl SortedRun {
    pub fn bytes(&self) -> u64 {
        self.ssts.iter().map(|s| s.size).sum()
    }

    /// The SST that may hold `key`: at most one, by binary search.
    pub fn sst_for(&self, key: &[u8]) -> Option<&RunInfo> {
        let i = self
            .ssts
            .partition_point(|s| !s.range_unknown() && s.last_key.as_slice() < key);
        self.ssts.get(i).filter(|s| s.covers(key))
    }
}

/// A client request token folded into runs, kept for the idempotency window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FoldedToken {
    pub token: String,
    pub seq: u64,
    pub ts_micros: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    /// 0 is the implicit empty manifest that exists before any compaction.
    pub version: u64,
    /// Every log segment with seq <= this is folded into `runs`.
    pub compacted_through: u64,
    /// Live sorted runs, newest first: for any key, a version in an earlier
    /// run is newer than one in a later run.
    #[serde(default)]
    pub levels: Vec<SortedRun>,
    /// Format 1's SSTs, newest first (moved into `levels` when read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunInfo>,
    /// Wall-clock creation time (ms since the epoch), for GC's grace period.
    pub created_at_ms: u64,
    /// Commit time (µs) of segment `compacted_through`: the runs hold no
    /// write committed later. What point-in-time reads choose manifests by
    /// (0 in manifests written before it existed).
    #[serde(default)]
    pub folded_ts_micros: u64,
    /// Client request tokens of folded segments that are still within the
    /// idempotency window.
    pub tokens: Vec<FoldedToken>,
    /// The old-image generation of segment `compacted_through` (see
    /// `LogSegment::images_gen`), which the next segment inherits.
    #[serde(default)]
    pub images_gen: u64,
    /// Set once the log folded here ends in a seal (a split): the
    /// partition takes no more writes; its children go on from its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<SealMark>,
    /// Intents `compacted_through` passed before they were released: the
    /// locks a view starting from this manifest holds (see `txn`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<crate::txn::CarriedLock>,
}

/// Where a partition's log was sealed by a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealMark {
    pub seq: u64,
    pub ts_micros: u64,
}

impl Manifest {
    /// The latest commit time the runs may hold, in µs: `folded_ts_micros`,
    /// or for older manifests the creation time less the allowed skew.
    pub fn folded_at(&self, clock_skew: std::time::Duration) -> u64 {
        if self.compacted_through == 0 {
            0
        } else if self.folded_ts_micros > 0 {
            self.folded_ts_micros
        } else {
            (self.created_at_ms.saturating_mul(1000)).saturating_sub(clock_skew.as_micros() as u64)
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // JSON inside a checksummed frame: small, and readable when debugging.
        let body = serde_json::to_vec(self).unwrap_or_default();
        let split = self.sealed.is_some() || self.ssts().any(|s| s.home.is_some());
        let version = if !self.locks.is_empty() {
            VERSION_LOCKS
        } else if split {
            VERSION_SPLIT
        } else {
            VERSION
        };
        seal(MAGIC, version, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
        let (version, body) = unseal(MAGIC, bytes)?;
        if !(VERSION_RUNS..=VERSION_LOCKS).contains(&version) {
            return Err(DecodeError(format!(
                "manifest format {version} found; this build reads formats {VERSION_RUNS} to {VERSION_LOCKS} (upgrade it)"
            )));
        }
        let mut m: Manifest =
            serde_json::from_slice(body).map_err(|e| DecodeError(format!("bad manifest: {e}")))?;
        for sst in std::mem::take(&mut m.runs) {
            m.levels.push(SortedRun {
                level: 0,
                ssts: vec![sst],
            });
        }
        Ok(m)
    }

    /// The next version: these levels, folding the same log.
    pub fn next_with(&self, levels: Vec<SortedRun>, created_at_ms: u64) -> Manifest {
        Manifest {
            version: self.version + 1,
            levels,
            runs: Vec::new(),
            created_at_ms,
            ..self.clone()
        }
    }

    /// Every live SST.
    pub fn ssts(&self) -> impl Iterator<Item = &RunInfo> {
        self.levels.iter().flat_map(|r| r.ssts.iter())
    }

    /// Whether any SST holds data.
    pub fn has_data(&self) -> bool {
        self.levels.iter().any(|r| !r.ssts.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sst(id: &str) -> RunInfo {
        RunInfo {
            id: id.into(),
            size: 10,
            meta_offset: 5,
            entries: 1,
            max_seq: 3,
            first_key: Vec::new(),
            last_key: Vec::new(),
            home: None,
            live: None,
            expiry: None,
        }
    }

    #[test]
    fn format_1_reads_as_level_0_runs_and_newer_formats_are_refused() {
        // A format-1 manifest: `runs`, one SST each, no key ranges.
        let body = serde_json::json!({
            "version": 4, "compacted_through": 9, "created_at_ms": 1, "tokens": [],
            "runs": [{"id": "a", "size": 10, "meta_offset": 5, "entries": 1, "max_seq": 3},
                     {"id": "b", "size": 10, "meta_offset": 5, "entries": 1, "max_seq": 3}],
        });
        let bytes = seal(MAGIC, VERSION_RUNS, &serde_json::to_vec(&body).unwrap());
        let m = Manifest::decode(&bytes).unwrap();
        assert_eq!(
            m.levels,
            vec![
                SortedRun {
                    level: 0,
                    ssts: vec![sst("a")]
                },
                SortedRun {
                    level: 0,
                    ssts: vec![sst("b")]
                },
            ]
        );
        assert!(
            m.levels[0].sst_for(b"anything").is_some(),
            "unknown ranges cover every key"
        );
        // Written back, it is format 2 and reads the same.
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
        // A manifest of a split partition is format 3.
        let mut split = m.clone();
        split.sealed = Some(SealMark {
            seq: 9,
            ts_micros: 1,
        });
        assert_eq!(split.encode()[4], VERSION_SPLIT);
        assert_eq!(Manifest::decode(&split.encode()).unwrap(), split);
        let newer = seal(MAGIC, VERSION_LOCKS + 1, b"{}");
        let err = Manifest::decode(&newer).unwrap_err().0;
        assert!(
            err.contains("format 5 found") && err.contains("1 to 4"),
            "{err}"
        );
    }
}

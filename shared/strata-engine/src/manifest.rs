//! Partition manifests: which runs are live and how far the log is folded
//! into them. A new version is published by a conditional create of
//! `manifest/<v+1>`, so two compactors can never both win.

use serde::{Deserialize, Serialize};

use crate::codec::{seal, unseal, DecodeError};
use crate::run::RunInfo;

const MAGIC: &[u8; 4] = b"STMF";
const VERSION: u8 = 1;

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
    /// Live runs, newest first.
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
        seal(MAGIC, VERSION, &body)
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, DecodeError> {
        let (version, body) = unseal(MAGIC, bytes)?;
        if version != VERSION {
            return Err(DecodeError(format!(
                "unsupported manifest version {version}"
            )));
        }
        serde_json::from_slice(body).map_err(|e| DecodeError(format!("bad manifest: {e}")))
    }
}

//! The console's plots: requests, errors by code and latency quantiles per
//! operation, in 10-second windows over the last 10 minutes. Fixed memory:
//! 60 windows, each a count, the error codes seen and a log-bucketed
//! latency histogram per operation.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value as Json};

/// Seconds per window.
pub const WINDOW_SECS: u64 = 10;
/// Windows kept (10 minutes).
const WINDOWS: usize = 60;

/// Latency buckets: the first ends at 50 µs, each next one 25% later, the
/// last at about 2 minutes (a quantile is reported as its bucket's end, so
/// within 25%).
const BUCKETS: usize = 67;
const FIRST_BUCKET_MICROS: f64 = 50.0;
const GROWTH: f64 = 1.25;

fn bucket_of(latency: Duration) -> usize {
    let us = latency.as_secs_f64() * 1e6;
    if us <= FIRST_BUCKET_MICROS {
        return 0;
    }
    let i = ((us / FIRST_BUCKET_MICROS).ln() / GROWTH.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

fn bucket_end_ms(i: usize) -> f64 {
    FIRST_BUCKET_MICROS * GROWTH.powi(i as i32) / 1e3
}

#[derive(Debug, Clone)]
struct OpWindow {
    requests: u64,
    errors: BTreeMap<&'static str, u64>,
    latency: [u32; BUCKETS],
}

impl Default for OpWindow {
    fn default() -> Self {
        Self {
            requests: 0,
            errors: BTreeMap::new(),
            latency: [0; BUCKETS],
        }
    }
}

impl OpWindow {
    /// The latency (ms) below which a `q` share of the window's requests fell.
    fn quantile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return 0.0;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return bucket_end_ms(i);
            }
        }
        bucket_end_ms(BUCKETS - 1)
    }
}

#[derive(Debug, Clone)]
struct Window {
    /// Seconds since the epoch at which it starts (a multiple of WINDOW_SECS).
    start: u64,
    ops: BTreeMap<&'static str, OpWindow>,
}

/// The rolling windows.
#[derive(Debug, Default)]
pub struct Series {
    windows: Mutex<VecDeque<Window>>,
}

impl Series {
    /// Records one request that ended at `now_secs`.
    pub fn record(
        &self,
        now_secs: u64,
        operation: &'static str,
        error: Option<&'static str>,
        latency: Duration,
    ) {
        let start = now_secs - now_secs % WINDOW_SECS;
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.back().is_none_or(|b| b.start < start) {
            w.push_back(Window {
                start,
                ops: BTreeMap::new(),
            });
            while w.len() > WINDOWS {
                w.pop_front();
            }
        }
        // A request that ended in an earlier window than the newest (clocks
        // are read per request) counts in the newest: off by one window at most.
        let Some(window) = w.back_mut() else { return };
        let op = window.ops.entry(operation).or_default();
        op.requests += 1;
        if let Some(code) = error {
            *op.errors.entry(code).or_default() += 1;
        }
        op.latency[bucket_of(latency)] += 1;
    }

    /// The windows of the last 10 minutes up to `now_secs`, oldest first,
    /// empty ones included: `[{t, ops: {op: {requests, errors, p50_ms,
    /// p99_ms}}}]`.
    pub fn snapshot(&self, now_secs: u64) -> Json {
        let w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let newest = now_secs - now_secs % WINDOW_SECS;
        let oldest = newest.saturating_sub(WINDOW_SECS * (WINDOWS as u64 - 1));
        let mut out = Vec::with_capacity(WINDOWS);
        let mut t = oldest;
        while t <= newest {
            let ops: serde_json::Map<String, Json> = w
                .iter()
                .find(|x| x.start == t)
                .map(|x| {
                    x.ops
                        .iter()
                        .map(|(op, o)| {
                            (
                                op.to_string(),
                                json!({
                                    "requests": o.requests,
                                    "errors": o.errors,
                                    "p50_ms": o.quantile_ms(0.5),
                                    "p99_ms": o.quantile_ms(0.99),
                                }),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(json!({ "t": t, "ops": ops }));
            t += WINDOW_SECS;
        }
        Json::Array(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_bucket_of_the_ranked_request() {
        let s = Series::default();
        for i in 0..100 {
            let ms = if i < 98 { 1 } else { 100 };
            s.record(1_000, "GetItem", None, Duration::from_millis(ms));
        }
        s.record(
            1_005,
            "PutItem",
            Some("ValidationException"),
            Duration::from_millis(2),
        );
        let snap = s.snapshot(1_009);
        let windows = snap.as_array().unwrap();
        assert_eq!(windows.len(), WINDOWS);
        let last = &windows[WINDOWS - 1];
        assert_eq!(last["t"], 1_000);
        let get = &last["ops"]["GetItem"];
        assert_eq!(get["requests"], 100);
        let (p50, p99) = (
            get["p50_ms"].as_f64().unwrap(),
            get["p99_ms"].as_f64().unwrap(),
        );
        assert!((1.0..1.25).contains(&p50), "{p50}");
        assert!((100.0..125.0).contains(&p99), "{p99}");
        assert_eq!(last["ops"]["PutItem"]["errors"]["ValidationException"], 1);
    }

    #[test]
    fn old_windows_roll_off_and_gaps_are_empty() {
        let s = Series::default();
        s.record(0, "Query", None, Duration::from_micros(10));
        s.record(700, "Query", None, Duration::from_micros(10));
        let snap = s.snapshot(700);
        let windows = snap.as_array().unwrap();
        assert_eq!(windows[0]["t"], 700 - 590);
        assert!(
            windows
                .iter()
                .filter(|w| w["ops"]["Query"].is_object())
                .count()
                == 1
        );
        assert!(s.windows.lock().unwrap().len() <= WINDOWS);
    }
}

//! CloudWatch Embedded Metric Format (EMF): metrics as structured log lines
//! that CloudWatch turns into metrics with no agent and no API calls.
//!
//! [`with_emf`] wraps the router: every request prints one line with its
//! operation, latency, error code (if any) and the object-store requests it
//! made by kind; at most once per `cache_interval` a line per cache carries
//! the hits, misses and evictions since the last one and the bytes held, and
//! a commit line the log PUTs sent since (lost races included), the segments
//! group commits appended, the items they wrote, and items per PUT (what the
//! commit window buys).
//! Per-request store counts are exact when requests do not overlap (one
//! request at a time, as in a Lambda instance).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value as Json};
use strata_engine::{CacheStats, CommitStats, Engine};
use strata_store::counting::{RequestCounter, RequestCounts};

use crate::http::Outcome;

/// The CloudWatch namespace Strata's metrics go to.
pub const NAMESPACE: &str = "Strata";

/// Where EMF lines go (stdout in Lambda; a buffer in tests).
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

pub struct EmfState {
    service: String,
    engine: Arc<Engine>,
    counter: Option<Arc<RequestCounter>>,
    cache_interval: Duration,
    last_caches: Mutex<Periodic>,
    sink: Sink,
}

impl EmfState {
    /// `counter` is the request counter wrapped around the engine's store, if any.
    pub fn new(
        service: impl Into<String>,
        engine: Arc<Engine>,
        counter: Option<Arc<RequestCounter>>,
        sink: Sink,
    ) -> Self {
        Self {
            service: service.into(),
            engine,
            counter,
            cache_interval: Duration::from_secs(60),
            last_caches: Mutex::new(Periodic::default()),
            sink,
        }
    }

    pub fn cache_interval(mut self, every: Duration) -> Self {
        self.cache_interval = every;
        self
    }

    /// Prints cache lines if the interval has passed (or `force`).
    pub fn flush_caches(&self, force: bool) {
        let mut last = self.last_caches.lock().unwrap_or_else(|p| p.into_inner());
        if !force && last.at.is_some_and(|t| t.elapsed() < self.cache_interval) {
            return;
        }
        let caches = self.engine.cache_stats();
        let commits = self.engine.commit_stats();
        for line in cache_lines(&self.service, &caches, &last.caches, now_ms()) {
            (self.sink)(&line);
        }
        let delta = commits - last.commits;
        if delta.puts > 0 {
            (self.sink)(&commit_line(&self.service, delta, now_ms()));
        }
        *last = Periodic {
            at: Some(Instant::now()),
            caches,
            commits,
        };
    }
}

/// What the periodic lines were computed from last time.
#[derive(Default)]
struct Periodic {
    at: Option<Instant>,
    caches: Vec<CacheStats>,
    commits: CommitStats,
}

/// Stdout, the sink CloudWatch reads in Lambda.
pub fn stdout_sink() -> Sink {
    Arc::new(|line: &str| println!("{line}"))
}

pub fn with_emf(router: Router, state: Arc<EmfState>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(state, record))
}

async fn record(State(s): State<Arc<EmfState>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let before = s.counter.as_ref().map(|c| c.snapshot());
    let response = next.run(req).await;
    let latency = start.elapsed();
    let store = match (&s.counter, before) {
        (Some(c), Some(b)) => c.snapshot() - b,
        _ => RequestCounts::default(),
    };
    if let Some(o) = response.extensions().get::<Outcome>() {
        (s.sink)(&request_line(
            &s.service,
            &o.operation,
            o.error_code.map(|c| c.name()),
            latency,
            store,
            now_ms(),
        ));
    }
    s.flush_caches(false);
    response
}

use strata_engine::clock::now_ms;

/// An EMF line's `_aws` member: which of its members are metrics (name,
/// unit) and which dimension sets they are kept under.
fn directive(timestamp_ms: u64, dimensions: Json, metrics: &[(&str, &str)]) -> Json {
    json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": NAMESPACE,
            "Dimensions": dimensions,
            "Metrics": metrics.iter().map(|(n, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
        }],
    })
}

/// One request as an EMF line.
pub fn request_line(
    service: &str,
    operation: &str,
    error_code: Option<&str>,
    latency: Duration,
    store: RequestCounts,
    timestamp_ms: u64,
) -> String {
    let mut dimensions = vec![json!(["Service", "Operation"]), json!(["Service"])];
    if error_code.is_some() {
        dimensions.push(json!(["Service", "ErrorCode"]));
    }
    let metrics = [
        ("Requests", "Count"),
        ("Errors", "Count"),
        ("Latency", "Milliseconds"),
        ("StoreGET", "Count"),
        ("StorePUT", "Count"),
        ("StoreLIST", "Count"),
        ("StoreHEAD", "Count"),
        ("StoreDELETE", "Count"),
    ];
    let mut line = json!({
        "_aws": directive(timestamp_ms, json!(dimensions), &metrics),
        "Service": service,
        "Operation": operation,
        "Requests": 1,
        "Errors": u8::from(error_code.is_some()),
        "Latency": (latency.as_secs_f64() * 1e6).round() / 1e3,
        "StoreGET": store.get,
        "StorePUT": store.put,
        "StoreLIST": store.list,
        "StoreHEAD": store.head,
        "StoreDELETE": store.delete,
    });
    if let (Some(code), Json::Object(o)) = (error_code, &mut line) {
        o.insert("ErrorCode".into(), json!(code));
    }
    line.to_string()
}

/// One EMF line per cache: activity since `prev`, and bytes held now.
pub fn cache_lines(
    service: &str,
    now: &[CacheStats],
    prev: &[CacheStats],
    timestamp_ms: u64,
) -> Vec<String> {
    now.iter()
        .map(|c| {
            let p = prev.iter().find(|p| p.name == c.name);
            let delta = |f: fn(&CacheStats) -> u64| f(c).saturating_sub(p.map_or(0, f));
            let metrics = [
                ("CacheHits", "Count"),
                ("CacheMisses", "Count"),
                ("CacheEvictions", "Count"),
                ("CacheBytes", "Bytes"),
            ];
            json!({
                "_aws": directive(timestamp_ms, json!([["Service", "Cache"]]), &metrics),
                "Service": service,
                "Cache": c.name,
                "CacheHits": delta(|s| s.hits),
                "CacheMisses": delta(|s| s.misses),
                "CacheEvictions": delta(|s| s.evictions),
                "CacheBytes": c.bytes,
            })
            .to_string()
        })
        .collect()
}

/// The log since the last line: PUTs sent, segments appended, items
/// written, and items per PUT.
pub fn commit_line(service: &str, delta: CommitStats, timestamp_ms: u64) -> String {
    let metrics = [
        ("LogPuts", "Count"),
        ("LogSegments", "Count"),
        ("LogWrites", "Count"),
        ("WritesPerPut", "None"),
    ];
    json!({
        "_aws": directive(timestamp_ms, json!([["Service"]]), &metrics),
        "Service": service,
        "LogPuts": delta.puts,
        "LogSegments": delta.segments,
        "LogWrites": delta.writes,
        "WritesPerPut": (delta.writes_per_put() * 100.0).round() / 100.0,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_valid_emf() {
        let store = RequestCounts {
            get: 1,
            put: 2,
            ..Default::default()
        };
        let line = request_line(
            "strata-api",
            "PutItem",
            Some("ValidationException"),
            Duration::from_micros(1500),
            store,
            42,
        );
        let v: Json = serde_json::from_str(&line).unwrap();
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 42);
        assert_eq!(directive["Namespace"], "Strata");
        // Every metric named in the directive is a number at the top level,
        // and every dimension is a string at the top level.
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(v[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(v[d.as_str().unwrap()].is_string(), "{d}");
            }
        }
        assert_eq!(
            (
                v["Latency"].as_f64(),
                v["StorePUT"].as_u64(),
                v["Errors"].as_u64()
            ),
            (Some(1.5), Some(2), Some(1))
        );
    }

    #[test]
    fn cache_lines_report_deltas() {
        let stat = |hits| CacheStats {
            name: "items",
            hits,
            misses: 1,
            evictions: 0,
            bytes: 10,
            capacity: 100,
        };
        let lines = cache_lines("strata-api", &[stat(15)], &[stat(5)], 1);
        let v: Json = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            (
                v["CacheHits"].as_u64(),
                v["CacheMisses"].as_u64(),
                v["Cache"].as_str()
            ),
            (Some(10), Some(0), Some("items"))
        );
    }

    #[test]
    fn commit_lines_report_writes_per_put() {
        let delta = CommitStats {
            puts: 5,
            segments: 4,
            writes: 10,
        };
        let v: Json = serde_json::from_str(&commit_line("strata-api", delta, 1)).unwrap();
        assert_eq!(
            (v["LogSegments"].as_u64(), v["WritesPerPut"].as_f64()),
            (Some(4), Some(2.0))
        );
    }
}

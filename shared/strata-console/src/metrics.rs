//! `GET /metrics`: Prometheus (OpenMetrics text) exposition with the
//! `prometheus-client` crate.
//!
//! Request metrics (count, errors by code, latency histogram, per
//! operation) are kept as they happen by [`Metrics::observe`]; everything
//! the engine already counts (store requests per operation and kind,
//! caches, group commit, compaction and GC, tables, splits, replication lag)
//! is read when scraped, so there is one source for each figure.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use strata_engine::replication::Lag;
use strata_engine::{CacheStats, CommitStats, CompactionStats};
use strata_store::counting::RequestCounts;
use strata_store::RequestKind;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn latency_histogram() -> Histogram {
    // 0.5 ms .. about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The request metrics, kept as requests end.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
        }
    }
}

/// What the engine and the replicator count, read at scrape time.
#[derive(Debug, Default)]
pub struct EngineFigures {
    pub store: BTreeMap<&'static str, RequestCounts>,
    pub caches: Vec<CacheStats>,
    pub commits: CommitStats,
    pub compaction: CompactionStats,
    /// (table, live partitions, splits so far).
    pub tables: Vec<(String, usize, usize)>,
    pub replication: BTreeMap<(String, String), Lag>,
}

impl Metrics {
    pub fn observe(&self, operation: &str, error: Option<&str>, latency: Duration) {
        let op = labels(&[("operation", operation)]);
        self.requests.get_or_create(&op).inc();
        self.latency
            .get_or_create(&op)
            .observe(latency.as_secs_f64());
        if let Some(code) = error {
            self.errors
                .get_or_create(&labels(&[("operation", operation), ("code", code)]))
                .inc();
        }
    }

    /// The exposition: these request metrics and `figures`.
    pub fn render(&self, f: &EngineFigures) -> String {
        let mut r = Registry::with_prefix("strata");
        r.register(
            "requests",
            "DynamoDB API requests served, by operation",
            self.requests.clone(),
        );
        r.register(
            "request_errors",
            "Requests answered with an error, by operation and error code",
            self.errors.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time to answer a request, by operation",
            Unit::Seconds,
            self.latency.clone(),
        );

        let store: Family<Labels, Counter> = Family::default();
        for (op, counts) in &f.store {
            for kind in RequestKind::ALL {
                store
                    .get_or_create(&labels(&[("operation", *op), ("kind", kind.name())]))
                    .inc_by(counts.of(kind));
            }
        }
        r.register(
            "store_requests",
            "Object-store requests, by the operation they were made for (background: compaction, GC, replication, indexes) and kind",
            store,
        );

        let cache_counter =
            |name: &str, help: &str, r: &mut Registry, v: fn(&CacheStats) -> u64| {
                let fam: Family<Labels, Counter> = Family::default();
                for c in &f.caches {
                    fam.get_or_create(&labels(&[("cache", c.name)]))
                        .inc_by(v(c));
                }
                r.register(name, help, fam);
            };
        cache_counter("cache_hits", "Cache hits, per cache", &mut r, |c| c.hits);
        cache_counter("cache_misses", "Cache misses, per cache", &mut r, |c| {
            c.misses
        });
        cache_counter(
            "cache_evictions",
            "Cache evictions, per cache",
            &mut r,
            |c| c.evictions,
        );
        let cache_gauge = |name: &str, help: &str, r: &mut Registry, v: fn(&CacheStats) -> u64| {
            let fam: Family<Labels, Gauge> = Family::default();
            for c in &f.caches {
                fam.get_or_create(&labels(&[("cache", c.name)]))
                    .set(v(c) as i64);
            }
            r.register_with_unit(name, help, Unit::Bytes, fam);
        };
        cache_gauge("cache", "Bytes held, per cache", &mut r, |c| c.bytes);
        cache_gauge("cache_capacity", "Byte bound, per cache", &mut r, |c| {
            c.capacity
        });

        let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
            let c: Counter = Counter::default();
            c.inc_by(v);
            r.register(name, help, c);
        };
        let seconds = |r: &mut Registry, name: &str, help: &str, v: f64| {
            let c: Counter<f64, AtomicU64> = Counter::default();
            c.inc_by(v);
            r.register_with_unit(name, help, Unit::Seconds, c);
        };
        let (c, k) = (&f.commits, &f.compaction);
        counter(
            &mut r,
            "log_puts",
            "Log segment creates sent (each a billed PUT; lost races included)",
            c.puts,
        );
        counter(
            &mut r,
            "commit_segments",
            "Log segments group commits appended",
            c.segments,
        );
        counter(
            &mut r,
            "commit_writes",
            "Writes group commits carried",
            c.writes,
        );
        counter(
            &mut r,
            "compaction_flushes",
            "Flushes of a log tail into an SST",
            k.flushes,
        );
        seconds(
            &mut r,
            "compaction_flush",
            "Time spent flushing",
            k.flush_secs,
        );
        counter(
            &mut r,
            "compaction_merges",
            "Merges of sorted runs",
            k.merges,
        );
        seconds(
            &mut r,
            "compaction_merge",
            "Time spent merging",
            k.merge_secs,
        );
        counter(
            &mut r,
            "compaction_sst_puts",
            "SSTs uploaded by flushes and merges",
            k.sst_puts,
        );
        counter(&mut r, "gc_passes", "Table GC passes", k.gc_passes);
        counter(
            &mut r,
            "gc_deleted_objects",
            "Objects GC deleted (segments, manifests, SSTs)",
            k.gc_deleted,
        );

        let partitions: Family<Labels, Gauge> = Family::default();
        let splits: Family<Labels, Gauge> = Family::default();
        for (table, live, split) in &f.tables {
            let l = labels(&[("table", table)]);
            partitions.get_or_create(&l).set(*live as i64);
            splits.get_or_create(&l).set(*split as i64);
        }
        r.register("table_partitions", "Live partitions, per table", partitions);
        r.register("table_splits", "Partition splits so far, per table", splits);

        let lag: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        let backlog: Family<Labels, Gauge> = Family::default();
        for ((table, region), l) in &f.replication {
            let lb = labels(&[("table", table), ("region", region)]);
            lag.get_or_create(&lb).set(l.behind_ms as f64 / 1e3);
            backlog.get_or_create(&lb).set(l.backlog_segments as i64);
        }
        r.register_with_unit(
            "replication_lag",
            "Age of the oldest write not yet sent to a replica region, when the last pass started",
            Unit::Seconds,
            lag,
        );
        r.register(
            "replication_backlog_segments",
            "Log segments not yet sent to a replica region, when the last pass started",
            backlog,
        );

        let mut out = String::new();
        if let Err(e) = encode(&mut out, &r) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_once_and_ends_with_eof() {
        let m = Metrics::default();
        m.observe("PutItem", None, Duration::from_millis(3));
        m.observe(
            "PutItem",
            Some("ValidationException"),
            Duration::from_millis(1),
        );
        let mut f = EngineFigures::default();
        f.store.insert(
            "PutItem",
            RequestCounts {
                put: 2,
                ..Default::default()
            },
        );
        f.tables.push(("t".into(), 8, 1));
        let text = m.render(&f);
        assert!(
            text.contains("strata_requests_total{operation=\"PutItem\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "strata_request_errors_total{operation=\"PutItem\",code=\"ValidationException\"} 1"
        ));
        assert!(text.contains("strata_store_requests_total{operation=\"PutItem\",kind=\"PUT\"} 2"));
        assert!(text.contains("strata_table_splits{table=\"t\"} 1"));
        assert!(text.contains("strata_request_duration_seconds_bucket"));
        assert!(text.trim_end().ends_with("# EOF"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert_eq!(text.matches(line).count(), 1, "{line}");
        }
    }
}

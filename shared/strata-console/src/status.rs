//! The console's JSON status: what the DynamoDB API cannot tell. Requests
//! and errors per operation (totals and 10-second windows), the store
//! requests they cost and what that costs at the configured prices, caches,
//! group commit, compaction and GC, tables' partitions and splits,
//! replication lag; and per table its storage (`/console/api/storage`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as AxumJson;
use serde_json::{json, Value as Json};

use crate::metrics::EngineFigures;
use crate::Console;

/// What the engine, its store counter and the replicator count now.
pub(crate) async fn figures(c: &Console) -> EngineFigures {
    let mut tables = Vec::new();
    for name in c.engine.list_tables().await.unwrap_or_default() {
        if let Ok(d) = c.engine.describe_table(&name).await {
            tables.push((name, d.map().leaves().len(), d.splits.len()));
        }
    }
    EngineFigures {
        store: c.counter.by_operation(),
        caches: c.engine.cache_stats(),
        commits: c.engine.commit_stats(),
        compaction: c.engine.compaction_stats(),
        tables,
        replication: c.replicator.as_ref().map(|r| r.lag()).unwrap_or_default(),
    }
}

/// `GET /console/api/status`.
pub(crate) async fn status(State(c): State<Arc<Console>>) -> Response {
    let f = figures(&c).await;
    let now_ms = strata_engine::clock::now_ms();
    let totals = c.totals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut operations = BTreeMap::new();
    for (op, (requests, errors)) in &totals {
        let store = f.store.get(op).copied().unwrap_or_default();
        operations.insert(
            op.to_string(),
            json!({"requests": requests, "errors": errors, "store": store.by_kind()}),
        );
    }
    if let Some(bg) = f.store.get(strata_store::attribution::BACKGROUND) {
        operations.insert(
            strata_store::attribution::BACKGROUND.to_string(),
            json!({"requests": 0, "errors": 0, "store": bg.by_kind()}),
        );
    }
    let caches: Vec<Json> = f
        .caches
        .iter()
        .map(|k| {
            json!({"name": k.name, "hits": k.hits, "misses": k.misses, "evictions": k.evictions,
                   "bytes": k.bytes, "capacity": k.capacity, "hit_ratio": k.hit_ratio()})
        })
        .collect();
    let k = &f.compaction;
    let replication: Vec<Json> = f
        .replication
        .iter()
        .map(|((table, region), l)| {
            json!({"table": table, "region": region, "behind_ms": l.behind_ms,
                   "backlog_segments": l.backlog_segments, "checked_ms": l.checked_ms})
        })
        .collect();
    let tables: Vec<Json> = f
        .tables
        .iter()
        .map(|(name, live, splits)| json!({"name": name, "partitions": live, "splits": splits}))
        .collect();
    let prices: serde_json::Map<String, Json> = c
        .prices
        .entries()
        .iter()
        .map(|(n, v, _)| (n.to_string(), json!(v)))
        .collect();
    AxumJson(json!({
        "region": c.engine.config().region,
        "regions": c.replicator.as_ref().map(|r| r.regions()).unwrap_or_default(),
        "started_ms": c.started_ms,
        "now_ms": now_ms,
        "window_secs": crate::series::WINDOW_SECS,
        "operations": operations,
        "series": c.series.snapshot(now_ms / 1000),
        "caches": caches,
        "commits": {"puts": f.commits.puts, "segments": f.commits.segments,
                    "writes": f.commits.writes, "writes_per_put": f.commits.writes_per_put()},
        "compaction": {"flushes": k.flushes, "flush_secs": k.flush_secs, "merges": k.merges,
                       "merge_secs": k.merge_secs, "flushed_bytes": k.flushed_bytes,
                       "merged_in_bytes": k.merged_in_bytes, "merged_out_bytes": k.merged_out_bytes,
                       "sst_puts": k.sst_puts, "gc_passes": k.gc_passes, "gc_deleted": k.gc_deleted},
        "tables": tables,
        "replication": replication,
        "prices": prices,
        "prices_as_of": crate::PRICES_AS_OF,
    }))
    .into_response()
}

/// `GET /console/api/storage?table=NAME`.
pub(crate) async fn storage(
    State(c): State<Arc<Console>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(table) = q.get("table") else {
        return (StatusCode::BAD_REQUEST, "?table=NAME is required\n").into_response();
    };
    match c.engine.storage(table).await {
        Ok(s) => AxumJson(s).into_response(),
        Err(strata_engine::Error::TableNotFound(_)) => {
            (StatusCode::NOT_FOUND, format!("no table {table}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

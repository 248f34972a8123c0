//! What the compactor does for one event, apart from Lambda so it can be
//! tested directly.
//!
//! - `{"table": "t", "partition": 3}` (from the API function, when that
//!   partition's log passed its threshold): compact that partition.
//! - anything else (the schedule): delete expired items (time to live),
//!   compact every partition of every table, collect garbage, and sweep
//!   the data of deleted table incarnations.
//!
//! Any number of compactors may run at once: the manifest's conditional
//! create lets one win each version, and a loser discards its run.

use serde_json::{json, Value};
use strata_engine::{CompactionOutcome, Engine};

pub async fn handle(engine: &Engine, event: &Value) -> Result<Value, strata_engine::Error> {
    if let (Some(table), Some(partition)) = (event["table"].as_str(), event["partition"].as_u64()) {
        let out = engine.compact_partition(table, partition as u32).await?;
        return Ok(json!({ "table": table, "partition": partition, "outcome": describe(&out) }));
    }
    let mut tables = Vec::new();
    let mut names = engine.list_stored_tables().await?;
    // Each run starts at another table, so that one table's long upkeep (a
    // backlog of expired items) cannot keep a run that times out from ever
    // reaching the tables after it.
    if !names.is_empty() {
        // From the clock's nanoseconds: a start that moves whatever the
        // schedule's period and the number of tables.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let len = names.len();
        names.rotate_left(nanos as usize % len);
    }
    for table in names {
        // One table's failure to expire must not stop the others' upkeep.
        let expiry = engine.expire(&table).await.unwrap_or_else(|e| {
            tracing::warn!(table = %table, error = %e, "expiring items failed");
            Default::default()
        });
        let outcomes = engine.compact(&table).await?;
        let gc = engine.gc(&table).await?;
        tables.push(json!({
            "table": table,
            "compacted": outcomes.iter().filter(|o| matches!(o, CompactionOutcome::Compacted { .. })).count(),
            "gc": { "segments": gc.segments, "manifests": gc.manifests, "runs": gc.runs },
            "expired": { "found": expiry.expired, "deleted": expiry.deleted, "ssts_read": expiry.ssts_read },
        }));
    }
    let swept = engine.sweep_dead_incarnations().await?;
    let decisions = engine.collect_decisions().await?;
    Ok(json!({ "tables": tables, "swept_objects": swept, "collected_decisions": decisions }))
}

fn describe(o: &CompactionOutcome) -> String {
    match o {
        CompactionOutcome::NothingToDo => "nothing to do".into(),
        CompactionOutcome::Busy => "busy".into(),
        CompactionOutcome::LostRace => "another compactor won".into(),
        CompactionOutcome::Compacted {
            version,
            compacted_through,
            runs,
        } => {
            format!("manifest {version}, folded through seq {compacted_through}, {runs} runs")
        }
    }
}

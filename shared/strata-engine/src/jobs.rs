//! Jobs the API hands to a runner that need only the engine: restores
//! (and the end every job that fills a table shares, `finish_fill`).
//! (Exports, which need arrow and parquet, run in `strata-export`.)

use serde_json::{json, Value as Json};

/// Runs a restore job: fills the target from a table's moment
/// (`source`, `atMicros`) or from a backup (`backup`), then marks it
/// restored (ACTIVE).
pub async fn run_restore(engine: &crate::Engine, job: &Json) -> Result<u64, String> {
    let target = job["target"].as_str().ok_or("restore job without target")?;
    let (source, filled) = match job["backup"].as_str() {
        Some(id) => {
            let filled = engine.restore_backup(id, target).await;
            // The backup may be deleted again once its items are in.
            if let Some(mark) = job["useMark"].as_str() {
                if let Err(e) = engine.end_backup_use(mark).await {
                    tracing::warn!(backup = id, error = %e, "could not unmark a restored backup");
                }
            }
            (format!("backup {id}"), filled)
        }
        None => {
            let source = job["source"].as_str().ok_or("restore job without source")?;
            let at = job["atMicros"]
                .as_u64()
                .ok_or("restore job without atMicros")?;
            (
                source.to_string(),
                engine.restore_into(source, target, at).await,
            )
        }
    };
    let items = match filled {
        Ok(n) => n,
        Err(e) => {
            // A partial table is worse than none: the restore fails whole.
            drop_filled(engine, target, job).await;
            return Err(format!("restoring {source} into {target} failed: {e}"));
        }
    };
    finish_fill(engine, target, &job["indexes"]).await?;
    Ok(items)
}

/// Deletes the table a failed job was filling: only the incarnation the
/// job made (`targetIncarnation`), never one made since (a job retried
/// after its table was re-created).
pub async fn drop_filled(engine: &crate::Engine, table: &str, job: &Json) {
    let ours = match (
        engine.describe_table(table).await,
        job["targetIncarnation"].as_str(),
    ) {
        (Ok(d), Some(inc)) => d.incarnation == inc,
        (Ok(_), None) => true,
        (Err(_), _) => false,
    };
    if ours {
        let _ = engine.delete_table(table).await;
    }
}

/// Ends the filling of a table a job made (a restore, an import): it turns
/// ACTIVE, then its indexes (`indexes`: IndexDefs as JSON, or null) are
/// built from its items (see `Engine::restore_indexes`).
pub async fn finish_fill(
    engine: &crate::Engine,
    table: &str,
    indexes: &Json,
) -> Result<(), String> {
    engine
        .update_table(table, |d| {
            if let Some(meta) = d.meta.as_object_mut() {
                meta.remove("RestoreInProgress");
                if let Some(s) = meta.get_mut("RestoreSummary") {
                    s["RestoreInProgress"] = json!(false);
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
    let indexes: Vec<crate::IndexDef> = match indexes {
        Json::Null => Vec::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| format!("a job with unreadable indexes: {e}"))?,
    };
    engine
        .restore_indexes(table, &indexes)
        .await
        .map_err(|e| e.to_string())
}

//! Point-in-time recovery, exports and restores: UpdateContinuousBackups,
//! DescribeContinuousBackups, ExportTableToPointInTime, DescribeExport,
//! ListExports, RestoreTableToPointInTime.
//!
//! The API only validates, records and hands work on: an export or a
//! restore is a *job* (JSON) given to the host's job runner — in
//! `strata serve` a task in the same process, in AWS the `strata-exporter`
//! function invoked asynchronously — because writing Parquet needs arrow
//! and parquet, which this crate (and the API function) must not link.
//! An export's status lives in `exports/<table>/<export id>.json` in the
//! table's store; the runner rewrites it when the export ends.

use object_store::PutPayload;
use serde_json::{json, Value as Json};
use strata_engine::{TableDescriptor, TableSpec};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::req::{missing, Req};
use crate::tables::{arn, description, iso_time};
use crate::{Api, Caller};

/// DynamoDB's default and largest recovery period.
const MAX_RECOVERY_DAYS: i64 = 35;

use strata_engine::clock::{now_micros, now_ms};

/// Epoch seconds with microseconds, as timestamps are sent.
fn secs(micros: u64) -> f64 {
    micros as f64 / 1e6
}

pub use strata_engine::paths::{export_record, valid_bucket_name};

pub(crate) fn table_not_found(name: &str) -> ApiError {
    ApiError::new(ErrorCode::TableNotFound, format!("Table not found: {name}"))
}

pub(crate) async fn table(api: &Api, name: &str) -> ApiResult<TableDescriptor> {
    match api.engine.describe_table(name).await {
        Ok(d) => Ok(d),
        Err(strata_engine::Error::TableNotFound(_)) => Err(table_not_found(name)),
        Err(e) => Err(e.into()),
    }
}

/// The moments a table can be read at: (earliest, latest) in ms, if PITR is on.
fn window(d: &TableDescriptor) -> Option<(u64, u64)> {
    if d.pitr_window_secs == 0 {
        return None;
    }
    let now = now_ms();
    let enabled = d
        .meta
        .get("PitrEnabledMs")
        .and_then(Json::as_u64)
        .unwrap_or(d.created_at_ms);
    let earliest = enabled.max(now.saturating_sub(d.pitr_window_secs * 1000));
    Some((earliest, now))
}

fn backups_description(d: &TableDescriptor) -> Json {
    let mut pitr = json!({ "PointInTimeRecoveryStatus": "DISABLED" });
    if let Some((earliest, latest)) = window(d) {
        pitr = json!({
            "PointInTimeRecoveryStatus": "ENABLED",
            "RecoveryPeriodInDays": d.pitr_window_secs / 86_400,
            "EarliestRestorableDateTime": earliest as f64 / 1000.0,
            "LatestRestorableDateTime": latest as f64 / 1000.0,
        });
    }
    json!({
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": pitr,
    })
}

pub async fn update_continuous_backups(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let name = req.req_str("TableName")?;
    let spec = req
        .obj("PointInTimeRecoverySpecification")?
        .ok_or_else(|| missing("PointInTimeRecoverySpecification"))?;
    let enabled = spec
        .get("PointInTimeRecoveryEnabled")
        .and_then(Json::as_bool)
        .ok_or_else(|| missing("PointInTimeRecoveryEnabled"))?;
    let days = match spec.get("RecoveryPeriodInDays") {
        None | Some(Json::Null) => MAX_RECOVERY_DAYS,
        Some(v) => match v.as_i64() {
            Some(d) if (1..=MAX_RECOVERY_DAYS).contains(&d) => d,
            _ => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{v}' at 'pointInTimeRecoverySpecification.recoveryPeriodInDays' failed to satisfy constraint: Member must have value between 1 and {MAX_RECOVERY_DAYS}"
                )))
            }
        },
    };
    table(api, name).await?;
    let d = api
        .engine
        .update_table(name, |d| {
            let old_window = d.pitr_window_secs;
            d.pitr_window_secs = if enabled { days as u64 * 86_400 } else { 0 };
            if let Some(meta) = d.meta.as_object_mut() {
                if enabled && old_window == 0 {
                    meta.insert("PitrEnabledMs".into(), json!(now_ms()));
                } else if enabled {
                    // A longer window does not bring back what GC already
                    // removed under the shorter one.
                    let since = meta
                        .get("PitrEnabledMs")
                        .and_then(Json::as_u64)
                        .unwrap_or(0);
                    let kept_from = now_ms().saturating_sub(old_window * 1000);
                    meta.insert("PitrEnabledMs".into(), json!(since.max(kept_from)));
                } else if !enabled {
                    meta.remove("PitrEnabledMs");
                }
            } else if enabled {
                d.meta = json!({ "PitrEnabledMs": now_ms() });
            }
            Ok(())
        })
        .await?;
    Ok(json!({ "ContinuousBackupsDescription": backups_description(&d) }))
}

pub async fn describe_continuous_backups(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let name = req.req_str("TableName")?;
    let d = table(api, name).await?;
    Ok(json!({ "ContinuousBackupsDescription": backups_description(&d) }))
}

/// A timestamp member (epoch seconds, as the JSON protocol sends them) in ms.
pub(crate) fn time_ms(req: &Req<'_>, field: &str) -> ApiResult<Option<u64>> {
    match req.get(field) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            // Up to the year 5000: keeps every later conversion in range.
            .filter(|s| *s >= 0.0 && *s < 95_617_584_000.0)
            .map(|s| Some((s * 1000.0) as u64))
            .ok_or_else(|| {
                ApiError::serialization(format!("{field} must be a timestamp (epoch seconds)"))
            }),
    }
}

fn in_window(d: &TableDescriptor, t_ms: u64, code: ErrorCode, what: &str) -> ApiResult<()> {
    let Some((earliest, latest)) = window(d) else {
        return Err(ApiError::new(
            ErrorCode::PointInTimeRecoveryUnavailable,
            format!(
                "Point in time recovery is not enabled for table '{}'",
                d.name
            ),
        ));
    };
    // Allow the second the window opened in: requests carry whole seconds.
    if t_ms + 1000 < earliest || t_ms > latest {
        return Err(ApiError::new(
            code,
            format!(
                "{what} must be between {} and {} (the table's point-in-time recovery window)",
                iso_time(earliest),
                iso_time(latest)
            ),
        ));
    }
    Ok(())
}

/// A table name from a `…:table/<name>` ARN.
pub(crate) fn table_of_arn(arn_text: &str) -> ApiResult<&str> {
    arn_text
        .split_once(":table/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::validation(format!("Invalid TableArn: {arn_text}")))
}

pub async fn export(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let table_arn = req.req_str("TableArn")?;
    let bucket = req.req_str("S3Bucket")?;
    if !valid_bucket_name(bucket) {
        return Err(ApiError::validation(format!(
            "Invalid S3Bucket name: {bucket}"
        )));
    }
    let prefix = req.str("S3Prefix")?.unwrap_or("").trim_matches('/');
    let format = req.str("ExportFormat")?.unwrap_or("DYNAMODB_JSON");
    if !["DYNAMODB_JSON", "PARQUET"].contains(&format) {
        return Err(ApiError::validation(format!(
            "ExportFormat {format} is not supported by Strata: use PARQUET or DYNAMODB_JSON"
        )));
    }
    let export_type = req.str("ExportType")?.unwrap_or("FULL_EXPORT");
    let name = table_of_arn(table_arn)?;
    let d = table(api, name).await?;
    // Times in µs: a default of "now" must include every write acknowledged before.
    let now = now_micros();
    let given = |field: &str, r: &Req<'_>| -> ApiResult<Option<u64>> {
        Ok(time_ms(r, field)?.map(|ms| ms * 1000))
    };
    let mut incremental = None;
    let export_time = match export_type {
        "FULL_EXPORT" => {
            let t = given("ExportTime", req)?.unwrap_or(now);
            in_window(&d, t / 1000, ErrorCode::InvalidExportTime, "ExportTime")?;
            t
        }
        "INCREMENTAL_EXPORT" => {
            let spec = req
                .obj("IncrementalExportSpecification")?
                .ok_or_else(|| missing("IncrementalExportSpecification"))?;
            let spec_req = Req(spec);
            let from =
                given("ExportFromTime", &spec_req)?.ok_or_else(|| missing("ExportFromTime"))?;
            let to = given("ExportToTime", &spec_req)?.unwrap_or(now);
            let view = spec_req
                .str("ExportViewType")?
                .unwrap_or("NEW_AND_OLD_IMAGES");
            if !["NEW_IMAGE", "NEW_AND_OLD_IMAGES"].contains(&view) {
                return Err(ApiError::validation(format!(
                    "Invalid ExportViewType: {view}"
                )));
            }
            if from >= to {
                return Err(ApiError::new(
                    ErrorCode::InvalidExportTime,
                    "ExportFromTime must be before ExportToTime",
                ));
            }
            in_window(
                &d,
                from / 1000,
                ErrorCode::InvalidExportTime,
                "ExportFromTime",
            )?;
            in_window(&d, to / 1000, ErrorCode::InvalidExportTime, "ExportToTime")?;
            incremental = Some(json!({
                "ExportFromTime": secs(from),
                "ExportToTime": secs(to),
                "ExportViewType": view,
            }));
            to
        }
        other => return Err(ApiError::validation(format!("Invalid ExportType: {other}"))),
    };
    let Some(runner) = api.jobs() else {
        return Err(ApiError::validation(
            "Exports need an exporter: this server has no job runner configured",
        ));
    };
    let export_id = format!("{:013}-{:08x}", now / 1000, rand_u32());
    let table_arn = arn(&caller.region, name);
    let mut desc = json!({
        "ExportArn": format!("{table_arn}/export/{export_id}"),
        "ExportStatus": "IN_PROGRESS",
        "StartTime": secs(now),
        "TableArn": table_arn,
        "TableId": d.incarnation,
        "ExportTime": secs(export_time),
        "S3Bucket": bucket,
        "S3Prefix": prefix,
        "S3SseAlgorithm": "AES256",
        "ExportFormat": format,
        "ExportType": export_type,
    });
    if let Some(spec) = incremental {
        desc["IncrementalExportSpecification"] = spec;
    }
    if let Some(token) = req.str("ClientToken")? {
        desc["ClientToken"] = json!(token);
    }
    let record = export_record(name, &export_id);
    api.engine
        .store()
        .put(&record, PutPayload::from(desc.to_string().into_bytes()))
        .await
        .map_err(|e| ApiError::unavailable(format!("recording the export: {e}")))?;
    let handed = runner(json!({
        "kind": "export",
        "table": name,
        "exportId": export_id,
        "record": record.to_string(),
        "description": desc,
    }))
    .await;
    if let Err(e) = handed {
        let mut failed = desc.clone();
        failed["ExportStatus"] = json!("FAILED");
        failed["FailureCode"] = json!("ExporterUnavailable");
        failed["FailureMessage"] = json!(e);
        let _ = api
            .engine
            .store()
            .put(&record, PutPayload::from(failed.to_string().into_bytes()))
            .await;
        return Err(ApiError::unavailable(format!(
            "could not start the export: {e}"
        )));
    }
    Ok(json!({ "ExportDescription": desc }))
}

/// A fresh id for a backup or an import: its time (ms, 14 digits, so ids
/// sort by time) and 8 random hex digits, as DynamoDB's look.
pub(crate) fn record_id() -> String {
    format!("{:014}-{:08x}", now_ms(), rand_u32())
}

pub(crate) fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    h.finish() as u32
}

/// An export ARN's table and export id.
pub(crate) fn parse_export_arn(text: &str) -> ApiResult<(&str, &str)> {
    let table = table_of_arn(text)?;
    let id = text
        .rsplit_once("/export/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .ok_or_else(|| ApiError::validation(format!("Invalid ExportArn: {text}")))?;
    Ok((table, id))
}

async fn read_record(api: &Api, table: &str, id: &str) -> ApiResult<Option<Json>> {
    read_json(api, &export_record(table, id)).await
}

/// A JSON record the API keeps in the table store (an export's, an
/// import's), if it exists.
pub(crate) async fn read_json(
    api: &Api,
    path: &object_store::path::Path,
) -> ApiResult<Option<Json>> {
    match api.engine.store().get(path).await {
        Ok(r) => {
            let bytes = r
                .bytes()
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            Ok(serde_json::from_slice(&bytes).ok())
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(ApiError::unavailable(e.to_string())),
    }
}

pub async fn describe_export(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let export_arn = req.req_str("ExportArn")?;
    let (table, id) = parse_export_arn(export_arn)?;
    match read_record(api, table, id).await? {
        Some(desc) => Ok(json!({ "ExportDescription": desc })),
        None => Err(ApiError::new(
            ErrorCode::ExportNotFound,
            format!("Export not found: {export_arn}"),
        )),
    }
}

/// The objects under `prefix` in the table store, in name order (records
/// named by time list oldest first).
pub(crate) async fn list_sorted(
    api: &Api,
    prefix: &object_store::path::Path,
) -> ApiResult<Vec<object_store::path::Path>> {
    use futures::TryStreamExt;
    let mut out: Vec<_> = api
        .engine
        .store()
        .list(Some(prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    out.sort();
    Ok(out)
}

pub async fn list_exports(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let only = match req.str("TableArn")? {
        Some(a) => Some(table_of_arn(a)?.to_string()),
        None => None,
    };
    let max = match req.int("MaxResults")? {
        None => 25,
        Some(n) if (1..=25).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::validation(format!(
                "MaxResults must be between 1 and 25, got {n}"
            )))
        }
    };
    let prefix = strata_engine::paths::export_records(only.as_deref());
    let keys: Vec<String> = list_sorted(api, &prefix)
        .await?
        .iter()
        .map(|p| p.to_string())
        .collect();
    let start = req.str("NextToken")?.unwrap_or("");
    let mut summaries = Vec::new();
    let mut next = None;
    for key in keys.iter().filter(|k| k.as_str() > start) {
        if summaries.len() == max {
            next = summaries.last().map(|(k, _): &(String, Json)| k.clone());
            break;
        }
        let Some((table, id)) = key
            .strip_prefix("exports/")
            .and_then(|k| k.strip_suffix(".json"))
            .and_then(|k| k.split_once('/'))
        else {
            continue;
        };
        if let Some(d) = read_record(api, table, id).await? {
            summaries.push((
                key.clone(),
                json!({
                    "ExportArn": d["ExportArn"],
                    "ExportStatus": d["ExportStatus"],
                    "ExportType": d["ExportType"],
                }),
            ));
        }
    }
    let mut out =
        json!({ "ExportSummaries": summaries.into_iter().map(|(_, s)| s).collect::<Vec<_>>() });
    if let Some(n) = next {
        out["NextToken"] = json!(n);
    }
    Ok(out)
}

pub async fn restore(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let source = match (req.str("SourceTableName")?, req.str("SourceTableArn")?) {
        (Some(n), _) => n.to_string(),
        (None, Some(a)) => table_of_arn(a)?.to_string(),
        (None, None) => return Err(missing("SourceTableName")),
    };
    let target = req.req_str("TargetTableName")?;
    let d = table(api, &source).await?;
    let latest = req.bool("UseLatestRestorableTime")?.unwrap_or(false);
    let at = match (time_ms(req, "RestoreDateTime")?, latest) {
        (Some(_), true) => {
            return Err(ApiError::validation(
                "Only one of RestoreDateTime or UseLatestRestorableTime may be given",
            ))
        }
        (Some(t), false) => t * 1000,
        (None, _) => now_micros(),
    };
    in_window(
        &d,
        at / 1000,
        ErrorCode::InvalidRestoreTime,
        "RestoreDateTime",
    )?;
    let mut meta = restored_settings(&d.meta);
    if let Some(mode) = req.str("BillingModeOverride")? {
        meta.insert("BillingMode".into(), json!(mode));
    }
    let summary = json!({
        "SourceTableArn": arn(&caller.region, &source),
        "RestoreDateTime": secs(at),
        "RestoreInProgress": true,
    });
    let created = create_restore_target(api, &d, target, meta, summary).await?;
    let job = json!({
        "kind": "restore",
        "source": source,
        "target": target,
        "targetIncarnation": created.incarnation,
        "atMicros": at,
        "indexes": serde_json::to_value(&d.indexes).unwrap_or_default(),
    });
    if let Err(e) = start_restore(api, job).await {
        // Nothing was restored: take the empty table away again.
        let _ = api.engine.delete_table(target).await;
        return Err(e);
    }
    Ok(json!({ "TableDescription": description(api, &created, &caller.region, "CREATING") }))
}

/// Creates the table a restore fills: `d`'s key schema and partitions,
/// `meta` (what the restore keeps, with its overrides) with its
/// RestoreSummary `summary`, CREATING until the restore job ends.
/// The settings a restored table keeps from its source, as DynamoDB's
/// restores (from a backup or to a point in time): key schema, indexes,
/// billing mode and throughput, encryption. Not its tags, stream, time to
/// live, point-in-time recovery or deletion protection ("you must manually
/// set up" those, says RestoreTableFromBackup's reference).
pub(crate) fn restored_settings(meta: &Json) -> serde_json::Map<String, Json> {
    let mut meta = meta.as_object().cloned().unwrap_or_default();
    for k in [
        "StreamSpecification",
        "StreamCreatedMs",
        "StreamStartMs",
        "StreamDisabledMs",
        "PitrEnabledMs",
        "Tags",
        "DeletionProtectionEnabled",
        "TimeToLive",
    ] {
        meta.remove(k);
    }
    meta
}

pub(crate) async fn create_restore_target(
    api: &Api,
    d: &TableDescriptor,
    target: &str,
    mut meta: serde_json::Map<String, Json>,
    summary: Json,
) -> ApiResult<TableDescriptor> {
    meta.insert("RestoreSummary".into(), summary);
    meta.insert("RestoreInProgress".into(), json!(true));
    api.engine
        .create_table(TableSpec {
            name: target.to_string(),
            key_schema: d.key_schema.clone(),
            partitions: Some(d.partitions),
            keep_old_images: false,
            replicas: Vec::new(),
            meta: Json::Object(meta),
            indexes: Vec::new(),
            commit_window_ms: None,
        })
        .await
        .map_err(|e| match e {
            strata_engine::Error::TableExists(t) => ApiError::new(
                ErrorCode::TableAlreadyExists,
                format!("Table already exists: {t}"),
            ),
            e => e.into(),
        })
}

/// Hands a restore job to the job runner; with none, a restore needs only
/// the engine, so it runs here, in a task.
pub(crate) async fn start_restore(api: &Api, job: Json) -> ApiResult<()> {
    match api.jobs() {
        Some(runner) => runner(job)
            .await
            .map_err(|e| ApiError::unavailable(format!("could not start the restore: {e}"))),
        None => {
            let engine = std::sync::Arc::clone(&api.engine);
            tokio::spawn(async move {
                if let Err(e) = run_restore(&engine, &job).await {
                    tracing::error!(error = %e, "restore failed");
                }
            });
            Ok(())
        }
    }
}

pub use strata_engine::jobs::run_restore;

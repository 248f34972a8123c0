//! On-demand backups: CreateBackup, DescribeBackup, ListBackups,
//! DeleteBackup and RestoreTableFromBackup.
//!
//! A backup pins the table's manifests (`Engine::create_backup`): it is
//! AVAILABLE when CreateBackup answers, whatever the table's size, and
//! outlives the table. A restore creates the target table (CREATING) and
//! hands a restore job to the job runner, as RestoreTableToPointInTime
//! does; the table turns ACTIVE when its items are in.

use serde_json::{json, Value as Json};
use strata_engine::BackupRecord;

use crate::backups::{create_restore_target, record_id, start_restore, time_ms};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::req::Req;
use crate::tables::{arn, billing_of, description, key_schema_json};
use crate::{Api, Caller};

/// Epoch seconds, as DynamoDB sends times.
fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn backup_arn(region: &str, r: &BackupRecord) -> String {
    format!("{}/backup/{}", arn(region, &r.table.name), r.id)
}

fn not_found(arn: &str) -> ApiError {
    ApiError::new(
        ErrorCode::BackupNotFound,
        format!("Backup not found: {arn}"),
    )
}

/// The backup id in a backup ARN
/// (`arn:aws:dynamodb:<region>:<account>:table/<t>/backup/<14 digits>-<8 hex>`).
pub(crate) fn backup_id(arn_text: &str) -> ApiResult<&str> {
    let invalid = || ApiError::validation(format!("Invalid BackupArn: {arn_text}"));
    let (table_part, id) = arn_text.rsplit_once("/backup/").ok_or_else(invalid)?;
    if !table_part.starts_with("arn:aws:dynamodb:") || !table_part.contains(":table/") {
        return Err(invalid());
    }
    let well_formed = id.len() == 23
        && id.as_bytes()[14] == b'-'
        && id[..14].bytes().all(|b| b.is_ascii_digit())
        && id[15..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(invalid());
    }
    Ok(id)
}

/// The backup an ARN names: its id, under the table and account it names
/// (an ARN naming another table than the backup's finds nothing, so that a
/// policy on the ARN's table governs the backup it reaches).
async fn record(api: &Api, arn_text: &str) -> ApiResult<BackupRecord> {
    let id = backup_id(arn_text)?;
    let r = api
        .engine
        .backup(id)
        .await?
        .ok_or_else(|| not_found(arn_text))?;
    let tail = format!(":{}:table/{}/backup/{}", crate::ACCOUNT, r.table.name, r.id);
    if !arn_text.ends_with(&tail) || crate::backups::table_of_arn(arn_text)? != r.table.name {
        return Err(not_found(arn_text));
    }
    Ok(r)
}

fn details(r: &BackupRecord, region: &str, status: &str) -> Json {
    json!({
        "BackupArn": backup_arn(region, r),
        "BackupName": r.name,
        "BackupSizeBytes": r.bytes,
        "BackupStatus": status,
        "BackupType": "USER",
        "BackupCreationDateTime": secs(r.created_ms),
    })
}

fn summary(r: &BackupRecord, region: &str) -> Json {
    json!({
        "TableName": r.table.name,
        "TableId": r.table.incarnation,
        "TableArn": arn(region, &r.table.name),
        "BackupArn": backup_arn(region, r),
        "BackupName": r.name,
        "BackupCreationDateTime": secs(r.created_ms),
        "BackupStatus": "AVAILABLE",
        "BackupType": "USER",
        "BackupSizeBytes": r.bytes,
    })
}

fn backup_description(r: &BackupRecord, region: &str, status: &str) -> Json {
    let d = &r.table;
    let meta = d.meta.as_object().cloned().unwrap_or_default();
    let (billing, units) = billing_of(&meta);
    let table_arn = arn(region, &d.name);
    // The indexes as DescribeTable lists them.
    let mut features = json!({});
    crate::indexes::describe(d, &table_arn, &mut features);
    let mut feature_details = json!({});
    for k in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        if let Some(list) = features.get(k) {
            feature_details[k] = list.clone();
        }
    }
    if let Some(s) = meta.get("StreamSpecification") {
        feature_details["StreamDescription"] = s.clone();
    }
    if let Some(t) = strata_engine::ttl::TtlSetting::of(d) {
        feature_details["TimeToLiveDescription"] =
            json!({"TimeToLiveStatus": t.status(), "AttributeName": t.attribute_name});
    }
    json!({
        "BackupDetails": details(r, region, status),
        "SourceTableDetails": {
            "TableName": d.name,
            "TableId": d.incarnation,
            "TableArn": table_arn,
            "TableSizeBytes": r.bytes,
            "KeySchema": key_schema_json(d),
            "TableCreationDateTime": secs(d.created_at_ms),
            "ProvisionedThroughput": {
                "ReadCapacityUnits": units.0,
                "WriteCapacityUnits": units.1,
            },
            "ItemCount": r.items,
            "BillingMode": billing,
        },
        "SourceTableFeatureDetails": feature_details,
    })
}

pub async fn create(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let table = crate::tables::table_name(req)?;
    let name = req.req_str("BackupName")?;
    if strata_engine::catalog::validate_table_name(name).is_err() {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{name}' at 'backupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
        )));
    }
    let d = crate::backups::table(api, table).await?;
    if d.meta.get("RestoreInProgress") == Some(&Json::Bool(true)) {
        return Err(ApiError::new(
            ErrorCode::TableInUse,
            format!("Table is being restored: {table}"),
        ));
    }
    let id = record_id();
    let r = api
        .engine
        .create_backup(table, &id, name)
        .await
        .map_err(|e| match e {
            strata_engine::Error::TableNotFound(_) => crate::backups::table_not_found(table),
            e => e.into(),
        })?;
    Ok(json!({ "BackupDetails": details(&r, &caller.region, "AVAILABLE") }))
}

pub async fn describe(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let r = record(api, req.req_str("BackupArn")?).await?;
    Ok(json!({ "BackupDescription": backup_description(&r, &caller.region, "AVAILABLE") }))
}

pub async fn delete(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let arn_text = req.req_str("BackupArn")?;
    let id = backup_id(arn_text)?;
    let r = match api.engine.delete_backup(id).await {
        Ok(Some(r)) => r,
        Ok(None) => return Err(not_found(arn_text)),
        Err(strata_engine::Error::Validation(m)) => {
            return Err(ApiError::new(ErrorCode::BackupInUse, m))
        }
        Err(e) => return Err(e.into()),
    };
    Ok(json!({ "BackupDescription": backup_description(&r, &caller.region, "DELETED") }))
}

/// Largest page ListBackups returns (DynamoDB's).
const MAX_LIST: usize = 100;

pub async fn list(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let table = req.str("TableName")?;
    let limit = match req.int("Limit")? {
        None => MAX_LIST,
        Some(n) if (1..=MAX_LIST as i64).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 100"
            )))
        }
    };
    let lower = time_ms(req, "TimeRangeLowerBound")?;
    let upper = time_ms(req, "TimeRangeUpperBound")?;
    if let (Some(l), Some(u)) = (lower, upper) {
        if l > u {
            return Err(ApiError::validation(
                "TimeRangeLowerBound must be less than or equal to TimeRangeUpperBound",
            ));
        }
    }
    match req.str("BackupType")? {
        None | Some("USER" | "ALL") => {}
        // Strata takes no system or AWS Backup backups.
        Some("SYSTEM" | "AWS_BACKUP") => return Ok(json!({ "BackupSummaries": [] })),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'backupType' failed to satisfy constraint: Member must satisfy enum value set: [USER, SYSTEM, AWS_BACKUP, ALL]"
            )))
        }
    }
    let after = req
        .str("ExclusiveStartBackupArn")?
        .map(backup_id)
        .transpose()?;
    let mut matching = api
        .engine
        .list_backups()
        .await?
        .into_iter()
        .filter(|r| table.is_none_or(|t| r.table.name == t))
        .filter(|r| lower.is_none_or(|l| r.created_ms >= l))
        .filter(|r| upper.is_none_or(|u| r.created_ms <= u))
        .filter(|r| after.is_none_or(|a| r.id.as_str() > a))
        .peekable();
    let mut page = Vec::new();
    while page.len() < limit {
        match matching.next() {
            Some(r) => page.push(r),
            None => break,
        }
    }
    let mut out = json!({
        "BackupSummaries": page.iter().map(|r| summary(r, &caller.region)).collect::<Vec<_>>(),
    });
    if matching.peek().is_some() {
        if let Some(last) = page.last() {
            out["LastEvaluatedBackupArn"] = json!(backup_arn(&caller.region, last));
        }
    }
    Ok(out)
}

pub async fn restore(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let target = req.req_str("TargetTableName")?;
    let arn_text = req.req_str("BackupArn")?;
    let id = backup_id(arn_text)?;
    // Marked in use first, so DeleteBackup cannot slip between reading the
    // backup and the job's end (see `Engine::begin_backup_use`).
    let Some((r, mark)) = api.engine.begin_backup_use(id, target).await? else {
        return Err(not_found(arn_text));
    };
    let restored = restore_from(api, req, caller, target, &r, &mark).await;
    if restored.is_err() {
        let _ = api.engine.end_backup_use(&mark).await;
    }
    restored
}

/// RestoreTableFromBackup once the backup is marked in use (`mark`): the
/// job, once handed over, removes the mark.
async fn restore_from(
    api: &Api,
    req: &Req<'_>,
    caller: &Caller,
    target: &str,
    r: &BackupRecord,
    mark: &str,
) -> ApiResult<Json> {
    let d = &r.table;
    let indexes = crate::indexes::parse_overrides(req, d)?;
    let mut meta = crate::backups::restored_settings(&d.meta);
    if let Some(mode) = req.str("BillingModeOverride")? {
        if !matches!(mode, "PROVISIONED" | "PAY_PER_REQUEST") {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{mode}' at 'billingModeOverride' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
            )));
        }
        meta.insert("BillingMode".into(), json!(mode));
    }
    if let Some(pt) = req.obj("ProvisionedThroughputOverride")? {
        meta.insert("ProvisionedThroughput".into(), Json::Object(pt.clone()));
    }
    if let Some(sse) = req.obj("SSESpecificationOverride")? {
        crate::tables::check_sse(api, sse).await?;
        meta.insert("SSESpecification".into(), Json::Object(sse.clone()));
    }
    let summary = json!({
        "SourceBackupArn": backup_arn(&caller.region, r),
        "SourceTableArn": arn(&caller.region, &d.name),
        "RestoreDateTime": secs(r.created_ms),
        "RestoreInProgress": true,
    });
    let created = create_restore_target(api, d, target, meta, summary).await?;
    let job = json!({
        "kind": "restore",
        "backup": r.id,
        "useMark": mark,
        "target": target,
        "targetIncarnation": created.incarnation,
        "indexes": serde_json::to_value(&indexes).unwrap_or_default(),
    });
    if let Err(e) = start_restore(api, job).await {
        let _ = api.engine.delete_table(target).await;
        return Err(e);
    }
    let mut t = description(api, &created, &caller.region, "CREATING");
    if !indexes.is_empty() {
        // The indexes come with the data (see `Engine::restore_indexes`).
        let mut with = created.clone();
        with.indexes = indexes;
        crate::indexes::describe(&with, &arn(&caller.region, target), &mut t);
    }
    Ok(json!({ "TableDescription": t }))
}

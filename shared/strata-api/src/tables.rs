//! Table operations: CreateTable, DescribeTable, ListTables, DeleteTable,
//! UpdateTable, tags, TTL, DescribeEndpoints, DescribeLimits.
//!
//! What DynamoDB keeps about a table beyond its key schema (billing mode,
//! throughput, tags, TTL, stream and SSE specifications, deletion
//! protection, attribute definitions) lives in the descriptor's `meta`.

use serde_json::{json, Map, Value as Json};
use strata_engine::{TableDescriptor, TableSpec};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::indexes::{self, IndexUpdate};
use crate::req::{missing, Req};
use crate::{Api, Caller, ACCOUNT};

fn invalid(m: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("One or more parameter values were invalid: {m}"))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Requested resource not found: Table: {name} not found"
    ))
}

/// A table name, or the name inside a table ARN.
pub(crate) fn table_name<'a>(req: &Req<'a>) -> ApiResult<&'a str> {
    let name = req.req_str("TableName")?;
    let name = name
        .rsplit_once(":table/")
        .map_or(name, |(_, n)| n.split('/').next().unwrap_or(n));
    // Checked before any lookup, as DynamoDB does (DynamoDB Local's words).
    if strata_engine::catalog::validate_table_name(name).is_err() {
        return Err(ApiError::validation(
            "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'",
        ));
    }
    Ok(name)
}

pub(crate) fn arn(region: &str, table: &str) -> String {
    format!("arn:aws:dynamodb:{region}:{ACCOUNT}:table/{table}")
}

pub use strata_engine::clock::iso_time;

/// The KeySchema member of a table or stream description.
pub(crate) fn key_schema_json(d: &TableDescriptor) -> Json {
    let mut key_schema = vec![json!({"AttributeName": d.key_schema.hash.name, "KeyType": "HASH"})];
    if let Some(r) = &d.key_schema.range {
        key_schema.push(json!({"AttributeName": r.name, "KeyType": "RANGE"}));
    }
    Json::Array(key_schema)
}

/// A table's billing mode and provisioned (read, write) units, from its meta.
pub(crate) fn billing_of(meta: &Map<String, Json>) -> (&str, (i64, i64)) {
    let mode = meta
        .get("BillingMode")
        .and_then(Json::as_str)
        .unwrap_or("PROVISIONED");
    let pt = meta.get("ProvisionedThroughput");
    let units = |k: &str| {
        pt.and_then(|p| p.get(k))
            .and_then(Json::as_i64)
            .unwrap_or(0)
    };
    (
        mode,
        (units("ReadCapacityUnits"), units("WriteCapacityUnits")),
    )
}

/// DynamoDB's TableDescription for a descriptor.
/// `region` names the caller's region in ARNs; `home` is this server's
/// region, left out of the Replicas list.
/// What encrypts the table's data at rest, as DynamoDB describes it: the
/// store's encryption, the same for every table of a deployment (none is
/// described when the store keeps objects as they are).
/// What encrypts a table's objects: its own KMS key (S3 stores write each
/// table's objects with the key its SSESpecification names), else the
/// store's encryption.
fn sse_description(api: &Api, d: &TableDescriptor, region: &str) -> Option<Json> {
    use strata_store::AtRest;
    let kms = |key: &str| {
        let arn = if key.starts_with("arn:") {
            key.to_string()
        } else if key.starts_with("alias/") {
            format!("arn:aws:kms:{region}:{ACCOUNT}:{key}")
        } else {
            format!("arn:aws:kms:{region}:{ACCOUNT}:key/{key}")
        };
        json!({"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": arn})
    };
    if api.engine.supports_table_keys() {
        if let Some(key) = strata_engine::kms_key(d) {
            return Some(kms(key));
        }
    }
    match api.engine.at_rest() {
        AtRest::StoreDefault => None,
        AtRest::Strata { .. } => Some(json!({"Status": "ENABLED", "SSEType": "AES256"})),
        AtRest::S3 { sse, .. } if sse == "AES256" => {
            Some(json!({"Status": "ENABLED", "SSEType": "AES256"}))
        }
        AtRest::S3 { kms_key_id, .. } => Some(kms(kms_key_id.as_deref().unwrap_or("alias/aws/s3"))),
    }
}

/// Refuses an SSESpecification the store cannot honour: encryption asked of
/// a store that has none, a KMS key of the table's own on a store that
/// cannot write one per table (unless it is the store's), or a key the
/// store cannot write with (missing, another region's, not allowed).
pub(crate) async fn check_sse(api: &Api, sse: &serde_json::Map<String, Json>) -> ApiResult<()> {
    use strata_store::AtRest;
    if sse.get("Enabled") != Some(&Json::Bool(true)) {
        return Ok(());
    }
    let asked = sse.get("KMSMasterKeyId").and_then(Json::as_str);
    let kms = sse.get("SSEType").and_then(Json::as_str).unwrap_or("KMS") == "KMS";
    if asked.is_some() && !kms {
        return Err(invalid(
            "SSESpecification: KMSMasterKeyId can only be given with SSEType KMS",
        ));
    }
    if let Some(key) = asked.filter(|k| !k.is_empty()) {
        if api.engine.supports_table_keys() {
            // The table's objects are written with its own key: one the
            // store can write with.
            return api
                .engine
                .check_table_key(key)
                .await
                .map_err(|e| invalid(format!("SSESpecification: {e}")));
        }
    }
    match (api.engine.at_rest(), asked) {
        (AtRest::StoreDefault, _) => Err(invalid(
            "SSESpecification: this server's store does not encrypt at rest; start strata serve with --encryption-key FILE (a local directory) or open an S3 store with sse=AES256 or sse=aws:kms",
        )),
        (_, None) => Ok(()),
        (AtRest::S3 { sse, kms_key_id: Some(k) }, Some(a)) if sse == "aws:kms" && (k == a || k.ends_with(a)) => Ok(()),
        (at_rest, Some(a)) => Err(invalid(format!(
            "SSESpecification: every table of this deployment is encrypted with {}, not with KMS key {a}",
            match at_rest {
                AtRest::S3 { sse, kms_key_id } => format!("{sse}{}", kms_key_id.as_ref().map(|k| format!(" ({k})")).unwrap_or_default()),
                _ => "Strata's own AES-256 key".to_string(),
            }
        ))),
    }
}

pub(crate) fn description(api: &Api, d: &TableDescriptor, region: &str, status: &str) -> Json {
    let home = api.engine.config().region.as_str();
    let meta = d.meta.as_object().cloned().unwrap_or_default();
    // A table being restored is CREATING until its data is in.
    let restoring = meta.get("RestoreInProgress") == Some(&Json::Bool(true));
    let status = if restoring && status == "ACTIVE" {
        "CREATING"
    } else {
        status
    };
    let (billing, (read_units, write_units)) = billing_of(&meta);
    let created = d.created_at_ms as f64 / 1000.0;
    let table_arn = arn(region, &d.name);
    let mut t = json!({
        "AttributeDefinitions": [],
        "TableName": d.name,
        "KeySchema": key_schema_json(d),
        "TableStatus": status,
        "CreationDateTime": created,
        "ProvisionedThroughput": {
            "NumberOfDecreasesToday": 0,
            "ReadCapacityUnits": read_units,
            "WriteCapacityUnits": write_units,
        },
        "TableSizeBytes": 0,
        "ItemCount": 0,
        "TableArn": table_arn,
        "TableId": format!(
            "{}-{}-{}-{}-{}",
            &d.incarnation[0..8], &d.incarnation[8..12], &d.incarnation[12..16], &d.incarnation[16..20], &d.incarnation[20..32]
        ),
        "DeletionProtectionEnabled": meta.get("DeletionProtectionEnabled").and_then(Json::as_bool).unwrap_or(false),
    });
    if billing == "PAY_PER_REQUEST" {
        t["BillingModeSummary"] =
            json!({"BillingMode": "PAY_PER_REQUEST", "LastUpdateToPayPerRequestDateTime": created});
    }
    if let Some(s) = meta
        .get("StreamSpecification")
        .filter(|s| s.get("StreamEnabled") == Some(&Json::Bool(true)))
    {
        let label = iso_time(
            meta.get("StreamCreatedMs")
                .and_then(Json::as_u64)
                .unwrap_or(d.created_at_ms),
        );
        t["StreamSpecification"] = s.clone();
        t["LatestStreamLabel"] = json!(label);
        t["LatestStreamArn"] = json!(format!("{table_arn}/stream/{label}"));
    } else if let Some(created) = meta
        .get("DisabledStream")
        .and_then(|s| s.get("StreamCreatedMs"))
        .and_then(Json::as_u64)
    {
        // The latest stream, disabled: still named, as DynamoDB names it.
        let label = iso_time(created);
        t["LatestStreamLabel"] = json!(label);
        t["LatestStreamArn"] = json!(format!("{table_arn}/stream/{label}"));
    }
    if let Some(sse) = sse_description(api, d, region) {
        t["SSEDescription"] = sse;
    }
    if let Some(class) = meta.get("TableClass") {
        t["TableClassSummary"] = json!({"TableClass": class});
    }
    if let Some(r) = meta.get("RestoreSummary") {
        t["RestoreSummary"] = r.clone();
    }
    indexes::describe(d, &table_arn, &mut t);
    if !d.replicas.is_empty() {
        // Like DynamoDB, the other regions of the global table.
        let others: Vec<Json> = d
            .replicas
            .iter()
            .filter(|r| *r != home)
            .map(|r| json!({"RegionName": r, "ReplicaStatus": "ACTIVE"}))
            .collect();
        t["Replicas"] = Json::Array(others);
        t["GlobalTableVersion"] = json!("2019.11.21");
    }
    t
}

/// Billing mode and throughput, checked together as DynamoDB does.
fn billing(req: &Req, meta: &mut Map<String, Json>, creating: bool) -> ApiResult<()> {
    let mode = match req.str("BillingMode")? {
        Some(m @ ("PROVISIONED" | "PAY_PER_REQUEST")) => m.to_string(),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
            )))
        }
        None => meta.get("BillingMode").and_then(Json::as_str).unwrap_or("PROVISIONED").to_string(),
    };
    let pt = req.obj("ProvisionedThroughput")?;
    if mode == "PAY_PER_REQUEST" && pt.is_some() {
        return Err(invalid("Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST"));
    }
    if let Some(pt) = pt {
        let r = pt.get("ReadCapacityUnits").and_then(Json::as_i64);
        let w = pt.get("WriteCapacityUnits").and_then(Json::as_i64);
        match (r, w) {
            (Some(r), Some(w)) if r >= 1 && w >= 1 => {
                meta.insert("ProvisionedThroughput".into(), json!({"ReadCapacityUnits": r, "WriteCapacityUnits": w}));
            }
            (Some(_), Some(_)) => return Err(invalid("Provisioned throughput values must be at least 1")),
            _ => return Err(invalid("ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED")),
        }
    } else if mode == "PROVISIONED"
        && (creating || meta.get("BillingMode").and_then(Json::as_str) != Some("PROVISIONED"))
    {
        return Err(invalid("ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED"));
    }
    if mode == "PAY_PER_REQUEST" {
        meta.remove("ProvisionedThroughput");
    }
    meta.insert("BillingMode".into(), json!(mode));
    Ok(())
}

fn stream_spec(req: &Req, meta: &mut Map<String, Json>, updating: bool) -> ApiResult<()> {
    let Some(s) = req.obj("StreamSpecification")? else {
        return Ok(());
    };
    let enabled = s
        .get("StreamEnabled")
        .and_then(Json::as_bool)
        .ok_or_else(|| missing("StreamEnabled"))?;
    if enabled {
        let view = s.get("StreamViewType").and_then(Json::as_str).unwrap_or("");
        if view.is_empty() {
            return Err(ApiError::validation(
                "Invalid StreamViewType: Stream ViewType must not be null or empty when enabling streams.",
            ));
        }
        if !["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"].contains(&view) {
            return Err(invalid("StreamViewType must be one of KEYS_ONLY, NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES when streams are enabled"));
        }
        if meta.contains_key("StreamSpecification") {
            return Err(invalid("Table already has an enabled stream"));
        }
        meta.insert(
            "StreamSpecification".into(),
            json!({"StreamEnabled": true, "StreamViewType": view}),
        );
        // Which segments belong to the stream is decided by the log (the
        // descriptor's new old-image generation), not by time: no writer
        // with a stale descriptor can leave images out of it.
        let now = strata_engine::clock::now_ms();
        meta.insert("StreamCreatedMs".into(), json!(now));
        meta.insert("StreamStartMs".into(), json!(now));
    } else if meta.remove("StreamSpecification").is_none() && updating {
        return Err(ApiError::validation("Table has no stream to disable"));
    }
    Ok(())
}

/// Whether the log keeps each mutation's old image: whenever a stream is
/// enabled, whatever its view type, since telling INSERT from MODIFY (and a
/// delete from a delete of nothing) needs the state before.
fn keeps_old_images(meta: &Map<String, Json>) -> bool {
    meta.get("StreamSpecification")
        .is_some_and(|s| s.get("StreamEnabled") == Some(&Json::Bool(true)))
}

/// The tag that sets a table's commit window: how many ms its group
/// commits wait for more writes before their one PUT (0 to 1000; without
/// it, the server's `--commit-window-ms`). A tag, so every client can set
/// it (docs/cost.md).
pub const COMMIT_WINDOW_TAG: &str = "strata:commit-window-ms";

/// The commit window a table's tags set (validated when tagged).
pub(crate) fn commit_window_of(meta: &Map<String, Json>) -> Option<u32> {
    meta.get("Tags")?
        .as_array()?
        .iter()
        .find(|t| t.get("Key").and_then(Json::as_str) == Some(COMMIT_WINDOW_TAG))?
        .get("Value")?
        .as_str()?
        .parse()
        .ok()
}

fn tags_from(v: Option<&Vec<Json>>) -> ApiResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for t in v.into_iter().flatten() {
        let k = t
            .get("Key")
            .and_then(Json::as_str)
            .ok_or_else(|| missing("Key"))?;
        let v = t
            .get("Value")
            .and_then(Json::as_str)
            .ok_or_else(|| missing("Value"))?;
        // Lengths in characters, not bytes; DynamoDB's character set.
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c))
        };
        if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
            return Err(invalid(
                "Tag keys must be 1 to 128 characters and values at most 256",
            ));
        }
        if !allowed(k) || !allowed(v) {
            return Err(invalid(
                "Tag keys and values may contain only letters, numbers, white space and + - = . _ : / @",
            ));
        }
        let max = strata_engine::config::MAX_COMMIT_WINDOW_MS;
        if k == COMMIT_WINDOW_TAG && !v.parse::<u64>().is_ok_and(|ms| ms <= max) {
            return Err(invalid(format!(
                "The value of tag {COMMIT_WINDOW_TAG} must be a whole number of milliseconds from 0 to {max}"
            )));
        }
        if k.starts_with("aws:") {
            return Err(invalid(
                "Tag keys may not start with the reserved prefix aws:",
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    if out.len() > MAX_TAGS {
        return Err(ApiError::limit_exceeded(format!(
            "The number of tags exceeds the limit of {MAX_TAGS} tags per table"
        )));
    }
    Ok(out)
}

/// Most tags one table may have.
const MAX_TAGS: usize = 50;

fn merge_tags(meta: &mut Map<String, Json>, tags: Vec<(String, String)>) {
    let mut all: Vec<(String, String)> = meta
        .get("Tags")
        .and_then(Json::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("Key")?.as_str()?.to_string(),
                        t.get("Value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in tags {
        all.retain(|(x, _)| *x != k);
        all.push((k, v));
    }
    meta.insert(
        "Tags".into(),
        Json::Array(
            all.into_iter()
                .map(|(k, v)| json!({"Key": k, "Value": v}))
                .collect(),
        ),
    );
}

pub async fn create(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let spec = table_spec(req)?;
    if let Some(sse) = req.obj("SSESpecification")? {
        check_sse(api, sse).await?;
    }
    let d = api.engine.create_table(spec).await.map_err(|e| match e {
        strata_engine::Error::TableExists(t) => {
            ApiError::in_use(format!("Table already exists: {t}"))
        }
        e => e.into(),
    })?;
    Ok(json!({ "TableDescription": description(api, &d, &caller.region, "ACTIVE") }))
}

/// The table a CreateTable request (or ImportTable's
/// TableCreationParameters) describes, validated.
pub(crate) fn table_spec(req: &Req<'_>) -> ApiResult<TableSpec> {
    let name = req.req_str("TableName")?;
    let mut meta = Map::new();
    let provisioned = req.str("BillingMode")? != Some("PAY_PER_REQUEST");
    let schema = indexes::parse_schema(req, provisioned)?;
    billing(req, &mut meta, true)?;
    meta.insert(
        "AttributeDefinitions".into(),
        indexes::definitions_json(&schema.defs),
    );
    stream_spec(req, &mut meta, false)?;
    merge_tags(&mut meta, tags_from(req.arr("Tags")?)?);
    if let Some(sse) = req.obj("SSESpecification")? {
        meta.insert("SSESpecification".into(), Json::Object(sse.clone()));
    }
    if let Some(class) = req.str("TableClass")? {
        meta.insert("TableClass".into(), json!(class));
    }
    if let Some(p) = req.bool("DeletionProtectionEnabled")? {
        meta.insert("DeletionProtectionEnabled".into(), json!(p));
    }
    Ok(TableSpec {
        name: name.to_string(),
        key_schema: schema.key_schema,
        partitions: None,
        keep_old_images: keeps_old_images(&meta),
        replicas: Vec::new(),
        commit_window_ms: commit_window_of(&meta),
        meta: Json::Object(meta),
        indexes: schema.indexes,
    })
}

pub(crate) async fn descriptor(api: &Api, name: &str) -> ApiResult<TableDescriptor> {
    api.engine.describe_table(name).await.map_err(|e| match e {
        strata_engine::Error::TableNotFound(_) => not_found(name),
        e => e.into(),
    })
}

pub async fn describe(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_name(req)?;
    let d = descriptor(api, name).await?;
    let t = description(api, &d, &caller.region, "ACTIVE");
    Ok(json!({ "Table": with_stats(api, &d, t).await? }))
}

/// A description's ItemCount and TableSizeBytes, and each index's
/// ItemCount and IndexSizeBytes, from the engine's estimate
/// (`Engine::table_stats`: what compaction has folded, updated within a
/// minute in `strata serve`).
async fn with_stats(api: &Api, d: &TableDescriptor, mut t: Json) -> ApiResult<Json> {
    let s = api.engine.table_stats(&d.name).await?;
    t["ItemCount"] = json!(s.items);
    t["TableSizeBytes"] = json!(s.bytes);
    for key in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
        let Some(Json::Array(indexes)) = t.get_mut(key) else {
            continue;
        };
        for ix in indexes {
            let Some(name) = ix.get("IndexName").and_then(Json::as_str) else {
                continue;
            };
            let stored = strata_engine::index::index_table_name(&d.name, name);
            // An index still being created may have no table yet: 0, as
            // DynamoDB reports while it backfills.
            if let Ok(s) = api.engine.table_stats(&stored).await {
                ix["ItemCount"] = json!(s.items);
                ix["IndexSizeBytes"] = json!(s.bytes);
            }
        }
    }
    Ok(t)
}

pub async fn list(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let limit = req.int("Limit")?.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100"
        )));
    }
    let start = req.str("ExclusiveStartTableName")?;
    let names: Vec<String> = api
        .engine
        .list_tables()
        .await?
        .into_iter()
        .filter(|n| start.is_none_or(|s| n.as_str() > s))
        .collect();
    let page: Vec<&String> = names.iter().take(limit as usize).collect();
    let mut out = json!({ "TableNames": page });
    if names.len() > limit as usize {
        out["LastEvaluatedTableName"] = json!(page.last());
    }
    Ok(out)
}

pub async fn delete(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_name(req)?;
    let d = descriptor(api, name).await?;
    if d.meta.get("DeletionProtectionEnabled") == Some(&Json::Bool(true)) {
        return Err(ApiError::validation(
            "Resource cannot be deleted as it is currently protected against deletion. Disable deletion protection first.",
        ));
    }
    if !d.replicas.is_empty() {
        strata_engine::replication::leave_group(&api.engine, api.regions(), name).await?;
    }
    let d = api.engine.delete_table(name).await.map_err(|e| match e {
        strata_engine::Error::TableNotFound(_) => not_found(name),
        e => e.into(),
    })?;
    Ok(json!({ "TableDescription": description(api, &d, &caller.region, "DELETING") }))
}

pub(crate) async fn change_meta<F>(api: &Api, name: &str, f: F) -> ApiResult<TableDescriptor>
where
    F: Fn(&mut Map<String, Json>) -> ApiResult<()>,
{
    let failure = std::sync::Mutex::new(None);
    let res = api
        .engine
        .update_table(name, |d| {
            let mut meta = d.meta.as_object().cloned().unwrap_or_default();
            if let Err(e) = f(&mut meta) {
                let msg = e.message.clone();
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                return Err(strata_engine::Error::Validation(msg));
            }
            // A stream is the log of one old-image generation: enabling
            // one starts a new generation even when old images were already
            // kept (a table with indexes keeps them), so the stream holds
            // no change made before it was enabled.
            let old_meta = d.meta.as_object().cloned().unwrap_or_default();
            if keeps_old_images(&meta) && !keeps_old_images(&old_meta) && d.images_gen() % 2 == 1 {
                d.images_gen = d.images_gen() + 2;
            }
            // A disabled stream stays readable for 24 hours: it is its
            // generation's log, which disabling closes (a table whose
            // indexes keep old images goes on in a new generation).
            if keeps_old_images(&old_meta) && !keeps_old_images(&meta) {
                let spec = &old_meta["StreamSpecification"];
                meta.insert(
                    "DisabledStream".into(),
                    json!({
                        "StreamViewType": spec.get("StreamViewType").cloned().unwrap_or(Json::Null),
                        "StreamCreatedMs": old_meta.get("StreamCreatedMs").cloned().unwrap_or(json!(d.created_at_ms)),
                        "StreamStartMs": old_meta.get("StreamStartMs").cloned().unwrap_or(Json::Null),
                        "Gen": d.images_gen(),
                        "DisabledMs": strata_engine::clock::now_ms(),
                    }),
                );
                d.images_gen = d.images_gen() + 1;
            }
            d.keep_old_images = keeps_old_images(&meta);
            d.commit_window_ms = commit_window_of(&meta);
            d.meta = Json::Object(meta);
            Ok(())
        })
        .await;
    match res {
        Ok(d) => Ok(d),
        Err(strata_engine::Error::TableNotFound(_)) => Err(not_found(name)),
        Err(e) => Err(failure
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| e.into())),
    }
}

pub async fn update(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_name(req)?;
    let replica_updates = req.arr("ReplicaUpdates")?.filter(|a| !a.is_empty());
    let index_updates = req
        .arr("GlobalSecondaryIndexUpdates")?
        .is_some_and(|a| !a.is_empty());
    let settings = [
        "BillingMode",
        "ProvisionedThroughput",
        "StreamSpecification",
        "SSESpecification",
        "DeletionProtectionEnabled",
        "TableClass",
    ]
    .iter()
    .any(|k| req.has(k))
        || (req.has("AttributeDefinitions") && !index_updates);
    if !settings && replica_updates.is_none() && !index_updates {
        return Err(ApiError::validation(
            "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
        ));
    }
    let d = descriptor(api, name).await?;
    let index_update = indexes::parse_update(req, &d)?;
    if req.has("AttributeDefinitions") && !matches!(index_update, Some(IndexUpdate::Create(..))) {
        // Only attributes already defined may be (re)declared.
        let known = indexes::table_definitions(&d);
        for def in req.arr("AttributeDefinitions")?.into_iter().flatten() {
            let n = def
                .get("AttributeName")
                .and_then(Json::as_str)
                .unwrap_or_default();
            if !known.iter().any(|(k, _)| k == n) {
                return Err(invalid(
                    "Cannot change the key schema or add attribute definitions without an index",
                ));
            }
        }
    }
    if let Some(u) = index_update {
        let d = update_index(api, name, u).await?;
        if !settings && replica_updates.is_none() {
            // DynamoDB Local's status: the table stays ACTIVE while its
            // new index is CREATING.
            return Ok(
                json!({ "TableDescription": description(api, &d, &caller.region, "ACTIVE") }),
            );
        }
    }
    if let Some(updates) = replica_updates {
        let d = update_replicas(api, name, updates).await?;
        if !settings {
            return Ok(
                json!({ "TableDescription": description(api, &d, &caller.region, "ACTIVE") }),
            );
        }
    }
    if let Some(sse) = req.obj("SSESpecification")? {
        check_sse(api, sse).await?;
    }
    let d = change_meta(api, name, |meta| {
        if req.has("BillingMode") || req.has("ProvisionedThroughput") {
            billing(req, meta, false)?;
        }
        stream_spec(req, meta, true)?;
        if let Some(sse) = req.obj("SSESpecification")? {
            meta.insert("SSESpecification".into(), Json::Object(sse.clone()));
        }
        if let Some(p) = req.bool("DeletionProtectionEnabled")? {
            meta.insert("DeletionProtectionEnabled".into(), json!(p));
        }
        if let Some(class) = req.str("TableClass")? {
            meta.insert("TableClass".into(), json!(class));
        }
        Ok(())
    })
    .await?;
    let d = close_disabled_stream(api, d).await?;
    Ok(json!({ "TableDescription": description(api, &d, &caller.region, "ACTIVE") }))
}

/// A stream just disabled ends, in each partition it had, where the log
/// ends now: disabling marked every partition with the next old-image
/// generation before it returned, so nothing later is the stream's.
/// Recorded once (`Ends`), so its shards stay closed at one place.
async fn close_disabled_stream(api: &Api, d: TableDescriptor) -> ApiResult<TableDescriptor> {
    let open = d
        .meta
        .get("DisabledStream")
        .is_some_and(|s| s.get("Ends").is_none());
    if !open {
        return Ok(d);
    }
    let mut ends = Map::new();
    for part in d.map().all() {
        let (_, tail) = api.engine.log_bounds(&d.name, part).await?;
        ends.insert(part.to_string(), json!(tail));
    }
    let ends = Json::Object(ends);
    change_meta(api, &d.name, |meta| {
        if let Some(Json::Object(s)) = meta.get_mut("DisabledStream") {
            s.entry("Ends").or_insert_with(|| ends.clone());
        }
        Ok(())
    })
    .await
}

/// Makes one GlobalSecondaryIndexUpdates change.
async fn update_index(api: &Api, name: &str, u: IndexUpdate) -> ApiResult<TableDescriptor> {
    let missing_table = |e: strata_engine::Error| match e {
        strata_engine::Error::TableNotFound(_) => not_found(name),
        e => e.into(),
    };
    // A global table's replicas get the same index: each region maintains
    // its own from its own log (what arrives there by replication included).
    let home = api.engine.config().region.clone();
    let replicas: Vec<&strata_engine::Engine> = descriptor(api, name)
        .await?
        .replicas
        .iter()
        .filter(|r| **r != home)
        .filter_map(|r| api.regions().get(r).map(|e| e.as_ref()))
        .collect();
    match u {
        IndexUpdate::Create(def, defs) => {
            let defs = indexes::definitions_json(&defs);
            let record = |d: &mut TableDescriptor| {
                if let Some(m) = d.meta.as_object_mut() {
                    m.insert("AttributeDefinitions".into(), defs.clone());
                }
                Ok(())
            };
            // The index first: a definition is never recorded for an
            // index that was not added.
            api.engine
                .add_index(name, def.clone())
                .await
                .map_err(missing_table)?;
            let d = api
                .engine
                .update_table(name, record)
                .await
                .map_err(missing_table)?;
            for e in replicas {
                match e.add_index(name, def.clone()).await {
                    Ok(_) | Err(strata_engine::Error::Validation(_)) => {}
                    Err(err) => return Err(err.into()),
                }
                e.update_table(name, record).await?;
            }
            Ok(d)
        }
        IndexUpdate::Delete(index) => {
            let d = api
                .engine
                .drop_index(name, &index)
                .await
                .map_err(missing_table)?;
            for e in replicas {
                match e.drop_index(name, &index).await {
                    Ok(_) | Err(strata_engine::Error::IndexNotFound(_)) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(d)
        }
        IndexUpdate::Update(index, pt) => api
            .engine
            .update_table(name, |d| {
                for ix in d.indexes.iter_mut().filter(|i| i.name == index) {
                    if let Some(m) = ix.meta.as_object_mut() {
                        m.insert("ProvisionedThroughput".into(), pt.clone());
                    } else {
                        ix.meta = json!({ "ProvisionedThroughput": pt });
                    }
                }
                Ok(())
            })
            .await
            .map_err(missing_table),
    }
}

/// ReplicaUpdates: `{"Create": {"RegionName": …}}` or `{"Delete": {…}}`,
/// each applied in turn (see `strata_engine::replication`).
async fn update_replicas(api: &Api, name: &str, updates: &[Json]) -> ApiResult<TableDescriptor> {
    use strata_engine::replication::{add_replica, remove_replica};
    let mut d = descriptor(api, name).await?;
    for u in updates {
        let region = |action: &str| {
            u.get(action)
                .and_then(|a| a.get("RegionName"))
                .and_then(Json::as_str)
                .ok_or_else(|| missing("RegionName"))
        };
        let result = if u.get("Create").is_some() {
            add_replica(&api.engine, api.regions(), name, region("Create")?).await
        } else if u.get("Delete").is_some() {
            remove_replica(&api.engine, api.regions(), name, region("Delete")?).await
        } else if u.get("Update").is_some() {
            return Err(invalid(
                "ReplicaUpdates Update: per-replica settings are not supported by Strata; replicas share the table's settings",
            ));
        } else {
            return Err(invalid(
                "ReplicaUpdates: each update needs one of Create, Update or Delete",
            ));
        };
        d = result.map_err(|e| match e {
            strata_engine::Error::TableNotFound(_) => not_found(name),
            e => e.into(),
        })?;
    }
    Ok(d)
}

/// The table a tagging request's ResourceArn names. As DynamoDB checks
/// it: an ARN of another account is denied, one of another region (or
/// not a table's) is invalid.
pub(crate) fn table_from_arn<'a>(req: &Req<'a>, caller: &Caller) -> ApiResult<&'a str> {
    let arn = req.req_str("ResourceArn")?;
    let invalid = || {
        ApiError::validation(format!(
            "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
        ))
    };
    // arn:aws:dynamodb:REGION:ACCOUNT:table/NAME
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some(service), Some(region), Some(account), Some(rest)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    if service != "dynamodb" || account != ACCOUNT {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            format!("User is not authorized to perform this operation on resource: {arn}"),
        ));
    }
    if region != caller.region {
        return Err(invalid());
    }
    rest.strip_prefix("table/")
        .map(|t| t.split('/').next().unwrap_or(t))
        .filter(|t| !t.is_empty())
        .ok_or_else(invalid)
}

pub async fn tag(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_from_arn(req, caller)?;
    let tags = req.arr("Tags")?.ok_or_else(|| missing("Tags"))?;
    if tags.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let tags = tags_from(Some(tags))?;
    change_meta(api, name, |meta| {
        merge_tags(meta, tags.clone());
        let n = meta
            .get("Tags")
            .and_then(Json::as_array)
            .map_or(0, Vec::len);
        if n > MAX_TAGS {
            return Err(ApiError::limit_exceeded(format!(
                "The number of tags exceeds the limit of {MAX_TAGS} tags per table"
            )));
        }
        Ok(())
    })
    .await?;
    Ok(Json::Null) // an empty body
}

pub async fn untag(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_from_arn(req, caller)?;
    let keys: Vec<String> = req
        .arr("TagKeys")?
        .ok_or_else(|| missing("TagKeys"))?
        .iter()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    if keys.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'tagKeys' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    change_meta(api, name, |meta| {
        if let Some(Json::Array(a)) = meta.get_mut("Tags") {
            a.retain(|t| {
                !t.get("Key")
                    .and_then(Json::as_str)
                    .is_some_and(|k| keys.iter().any(|x| x == k))
            });
        }
        Ok(())
    })
    .await?;
    Ok(Json::Null) // an empty body
}

pub async fn list_tags(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let name = table_from_arn(req, caller)?;
    let d = descriptor(api, name).await?;
    Ok(json!({ "Tags": d.meta.get("Tags").cloned().unwrap_or(json!([])) }))
}

/// The endpoint the caller reached (an SDK doing endpoint discovery must
/// come back here, not go to AWS); DynamoDB's regional name when the
/// request named no host.
pub fn describe_endpoints(caller: &Caller) -> Json {
    let address = caller
        .host
        .clone()
        .unwrap_or_else(|| format!("dynamodb.{}.amazonaws.com", caller.region));
    json!({ "Endpoints": [{ "Address": address, "CachePeriodInMinutes": 1440 }] })
}

pub fn describe_limits() -> Json {
    json!({
        "AccountMaxReadCapacityUnits": 80000,
        "AccountMaxWriteCapacityUnits": 80000,
        "TableMaxReadCapacityUnits": 40000,
        "TableMaxWriteCapacityUnits": 40000,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_time_is_utc_civil_time() {
        assert_eq!(super::iso_time(0), "1970-01-01T00:00:00.000");
        assert_eq!(
            super::iso_time(1_700_000_000_123),
            "2023-11-14T22:13:20.123"
        );
    }
}

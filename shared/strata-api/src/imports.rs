//! ImportTable, DescribeImport, ListImports.
//!
//! ImportTable validates, creates the new table (CREATING), records the
//! import (`imports/<id>.json`, IN_PROGRESS) and hands an import job to the
//! job runner (`strata_export::jobs`: a task in `strata serve`, the
//! exporter function in AWS), which ingests the objects under the source
//! prefix as SSTs and rewrites the record when it ends (COMPLETED with the
//! counts, or FAILED and the table deleted).

use object_store::PutPayload;
use serde_json::{json, Value as Json};

use crate::backups::{list_sorted, read_json, record_id};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::req::{missing, Req};
use crate::tables::arn;
use crate::{Api, Caller};

const FORMATS: [&str; 3] = ["CSV", "DYNAMODB_JSON", "ION"];
const COMPRESSIONS: [&str; 3] = ["GZIP", "ZSTD", "NONE"];
/// The delimiters DynamoDB takes for CSV.
const DELIMITERS: [&str; 6] = [",", "\t", ":", ";", "|", " "];

fn enum_error(value: &str, field: &str, set: &[&str]) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
        set.join(", ")
    ))
}

fn import_arn(region: &str, table: &str, id: &str) -> String {
    format!("{}/import/{id}", arn(region, table))
}

/// The import id in an import ARN (`…:table/<t>/import/<id>`).
fn import_id(arn_text: &str) -> ApiResult<&str> {
    arn_text
        .rsplit_once("/import/")
        .filter(|(t, id)| t.starts_with("arn:aws:dynamodb:") && !id.is_empty() && !id.contains('/'))
        .map(|(_, id)| id)
        .ok_or_else(|| ApiError::validation(format!("Invalid ImportArn: {arn_text}")))
}

pub async fn import_table(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let source = req
        .obj("S3BucketSource")?
        .ok_or_else(|| missing("S3BucketSource"))?;
    let bucket = source
        .get("S3Bucket")
        .and_then(Json::as_str)
        .ok_or_else(|| missing("S3BucketSource.S3Bucket"))?;
    if !strata_engine::paths::valid_bucket_name(bucket) {
        return Err(ApiError::validation(format!("Invalid S3Bucket: {bucket}")));
    }
    let format = req.req_str("InputFormat")?;
    if !FORMATS.contains(&format) {
        return Err(enum_error(format, "inputFormat", &FORMATS));
    }
    let compression = req.str("InputCompressionType")?.unwrap_or("NONE");
    if !COMPRESSIONS.contains(&compression) {
        return Err(enum_error(
            compression,
            "inputCompressionType",
            &COMPRESSIONS,
        ));
    }
    if let Some(options) = req.obj("InputFormatOptions")? {
        if format != "CSV" {
            return Err(ApiError::validation(
                "InputFormatOptions are only valid with InputFormat CSV",
            ));
        }
        let csv = options.get("Csv");
        if let Some(d) = csv.and_then(|c| c.get("Delimiter")) {
            if !d.as_str().is_some_and(|d| DELIMITERS.contains(&d)) {
                return Err(ApiError::validation(
                    "Delimiter must be one of: comma, tab, colon, semicolon, pipe, space",
                ));
            }
        }
        if let Some(h) = csv.and_then(|c| c.get("HeaderList")) {
            let names = h.as_array().filter(|a| !a.is_empty() && a.len() <= 255);
            if !names.is_some_and(|a| a.iter().all(|n| n.as_str().is_some_and(|n| !n.is_empty()))) {
                return Err(ApiError::validation(
                    "HeaderList must name between 1 and 255 attributes",
                ));
            }
        }
    }
    let params = req
        .obj("TableCreationParameters")?
        .ok_or_else(|| missing("TableCreationParameters"))?;
    let mut spec = crate::tables::table_spec(&Req(params))?;
    if let Some(sse) = Req(params).obj("SSESpecification")? {
        crate::tables::check_sse(api, sse).await?;
    }
    let table = spec.name.clone();
    // The indexes are built from the items once they are in.
    let indexes = std::mem::take(&mut spec.indexes);
    if let Some(meta) = spec.meta.as_object_mut() {
        meta.insert("RestoreInProgress".into(), json!(true));
    }
    let now = strata_engine::clock::now_micros();
    let id = record_id();
    let arn_text = import_arn(&caller.region, &table, &id);
    let created = api.engine.create_table(spec).await.map_err(|e| match e {
        strata_engine::Error::TableExists(t) => {
            ApiError::in_use(format!("Table already exists: {t}"))
        }
        e => e.into(),
    })?;
    let mut desc = json!({
        "ImportArn": arn_text,
        "ImportStatus": "IN_PROGRESS",
        "TableArn": arn(&caller.region, &table),
        "TableId": created.incarnation,
        "S3BucketSource": Json::Object(source.clone()),
        "ErrorCount": 0,
        "CloudWatchLogGroupArn": format!("arn:aws:logs:{}:{}:log-group:/aws-dynamodb/imports:*", caller.region, crate::ACCOUNT),
        "InputFormat": format,
        "InputCompressionType": compression,
        "TableCreationParameters": Json::Object(params.clone()),
        "StartTime": now as f64 / 1e6,
        "ProcessedSizeBytes": 0,
        "ProcessedItemCount": 0,
        "ImportedItemCount": 0,
    });
    if let Some(o) = req.obj("InputFormatOptions")? {
        desc["InputFormatOptions"] = Json::Object(o.clone());
    }
    if let Some(t) = req.str("ClientToken")? {
        desc["ClientToken"] = json!(t);
    }
    let record = strata_engine::paths::import_record(&id);
    let stored = api
        .engine
        .store()
        .put(&record, PutPayload::from(desc.to_string().into_bytes()))
        .await;
    let job = json!({
        "kind": "import",
        "record": record.to_string(),
        "table": table,
        "targetIncarnation": created.incarnation,
        "description": desc,
        "indexes": serde_json::to_value(&indexes).unwrap_or_default(),
    });
    let started = match (stored, api.jobs()) {
        (Err(e), _) => Err(format!("recording the import: {e}")),
        (Ok(_), Some(runner)) => runner(job).await,
        (Ok(_), None) => Err("this server runs no import jobs".to_string()),
    };
    if let Err(e) = started {
        let _ = api.engine.delete_table(&table).await;
        // Left IN_PROGRESS, the record would say so for ever.
        let _ = api.engine.store().delete(&record).await;
        return Err(ApiError::unavailable(format!(
            "could not start the import: {e}"
        )));
    }
    Ok(json!({ "ImportTableDescription": desc }))
}

async fn read(api: &Api, id: &str) -> ApiResult<Option<Json>> {
    read_json(api, &strata_engine::paths::import_record(id)).await
}

pub async fn describe_import(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let arn_text = req.req_str("ImportArn")?;
    let id = import_id(arn_text)?;
    // Only under the table its ARN names (the record holds the real ARN).
    match read(api, id).await?.filter(|d| d["ImportArn"] == arn_text) {
        Some(d) => Ok(json!({ "ImportTableDescription": d })),
        None => Err(ApiError::new(
            ErrorCode::ImportNotFound,
            format!("Import not found: {arn_text}"),
        )),
    }
}

/// ListImports' largest page (DynamoDB's).
const MAX_PAGE: i64 = 25;

pub async fn list_imports(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let table_arn = req.str("TableArn")?;
    let page = req.int("PageSize")?.unwrap_or(MAX_PAGE);
    if !(1..=MAX_PAGE).contains(&page) {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{page}' at 'pageSize' failed to satisfy constraint: Member must have value between 1 and 25"
        )));
    }
    let after = req.str("NextToken")?;
    let ids: Vec<String> = list_sorted(api, &strata_engine::paths::import_records())
        .await?
        .iter()
        .filter_map(strata_engine::paths::parse_record_id)
        .collect();
    let mut out = Vec::new();
    let mut next = None;
    for id in ids
        .into_iter()
        .filter(|id| after.is_none_or(|a| id.as_str() > a))
    {
        let Some(d) = read(api, &id).await? else {
            continue;
        };
        if table_arn.is_some_and(|t| d["TableArn"].as_str() != Some(t)) {
            continue;
        }
        if out.len() as i64 == page {
            next = out.last().map(|(id, _): &(String, Json)| id.clone());
            break;
        }
        let mut summary = json!({});
        for k in [
            "ImportArn",
            "ImportStatus",
            "TableArn",
            "S3BucketSource",
            "CloudWatchLogGroupArn",
            "InputFormat",
            "StartTime",
            "EndTime",
        ] {
            if let Some(v) = d.get(k) {
                summary[k] = v.clone();
            }
        }
        out.push((id, summary));
    }
    let mut res =
        json!({ "ImportSummaryList": out.into_iter().map(|(_, s)| s).collect::<Vec<_>>() });
    if let Some(n) = next {
        res["NextToken"] = json!(n);
    }
    Ok(res)
}

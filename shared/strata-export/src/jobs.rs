//! Runs the jobs the API hands on (see `strata_api::backups` and
//! `strata_api::imports`): exports, imports and restores. Used by `strata serve` (in-process) and by the
//! `strata-exporter` Lambda function.

use std::sync::Arc;

use object_store::path::Path;
use object_store::PutPayload;
use serde_json::{json, Value as Json};
use strata_engine::paths::ExportPaths;
use strata_engine::Engine;

use crate::{export, Destination, ExportJob, ExportKind, Format, Progress};

/// Export buckets: S3Bucket names mapped to store URLs (`name=url`
/// entries, `STRATA_EXPORT_BUCKETS` or `--export-bucket`); a bucket not
/// named is `s3://<bucket>` with the standard AWS settings.
#[derive(Debug, Clone, Default)]
pub struct Buckets(pub Vec<(String, String)>);

impl Buckets {
    pub fn parse(spec: &str) -> Result<Buckets, String> {
        let mut out = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .filter(|(n, u)| !n.is_empty() && !u.is_empty())
                .ok_or_else(|| format!("bad export bucket {entry:?}: expected name=store-url"))?;
            out.push((name.to_string(), url.to_string()));
        }
        Ok(Buckets(out))
    }

    /// The store URL for a bucket name; None for a name S3 would refuse
    /// (it would otherwise become part of a URL).
    pub fn url(&self, bucket: &str) -> Option<String> {
        if let Some((_, u)) = self.0.iter().find(|(n, _)| n == bucket) {
            return Some(u.clone());
        }
        strata_engine::paths::valid_bucket_name(bucket).then(|| format!("s3://{bucket}"))
    }
}

impl Buckets {
    /// Refuses up front a bucket nothing can reach: one with no store
    /// configured, when no AWS credentials are in the environment (S3's
    /// client would otherwise ask the instance metadata address, which
    /// outside AWS never answers, and the export would fail minutes later).
    pub fn check(&self, bucket: &str) -> Result<(), String> {
        if self.0.iter().any(|(n, _)| n == bucket) {
            return Ok(());
        }
        const SOURCES: [&str; 6] = [
            "AWS_ACCESS_KEY_ID",
            "AWS_PROFILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_LAMBDA_FUNCTION_NAME",
        ];
        if SOURCES.iter().any(|v| std::env::var_os(v).is_some()) {
            return Ok(());
        }
        Err(format!(
            "no store is configured for bucket {bucket} (strata serve --export-bucket {bucket}=URL) and no AWS credentials are in the environment"
        ))
    }
}

/// The export directory for a prefix and id, as DynamoDB lays it out.
pub fn export_dir(prefix: &str, export_id: &str) -> String {
    ExportPaths::new(prefix, export_id).dir().to_string()
}

fn micros(v: &Json) -> Option<u64> {
    v.as_f64().map(|s| (s * 1_000_000.0).round() as u64)
}

/// Runs one job to the end. Failures of an export are recorded in its
/// description (status FAILED) as well as returned.
pub async fn run(
    engine: &Engine,
    job: &Json,
    buckets: &Buckets,
    progress: Arc<dyn Progress>,
) -> Result<Json, String> {
    match job["kind"].as_str() {
        Some("restore") => strata_engine::jobs::run_restore(engine, job)
            .await
            .map(|items| json!({ "restoredItems": items })),
        Some("export") => {
            let record = Path::from(job["record"].as_str().ok_or("export job without record")?);
            let mut desc = job["description"].clone();
            let result = run_export(engine, job, &desc, buckets, progress).await;
            desc["EndTime"] = json!(strata_engine::clock::now_micros() as f64 / 1e6);
            match &result {
                Ok((outcome, manifest)) => {
                    desc["ExportStatus"] = json!("COMPLETED");
                    desc["ItemCount"] = json!(outcome.items);
                    desc["BilledSizeBytes"] = json!(outcome.bytes);
                    desc["ExportManifest"] = json!(manifest);
                }
                Err(e) => {
                    desc["ExportStatus"] = json!("FAILED");
                    desc["FailureCode"] = json!("ExportFailed");
                    desc["FailureMessage"] = json!(e);
                }
            }
            write_record(engine, &record, &desc, "export").await?;
            result.map(|_| desc)
        }
        Some("import") => run_import(engine, job, buckets, progress).await,
        other => Err(format!("unknown job kind {other:?}")),
    }
}

async fn run_export(
    engine: &Engine,
    job: &Json,
    desc: &Json,
    buckets: &Buckets,
    progress: Arc<dyn Progress>,
) -> Result<(crate::ExportOutcome, String), String> {
    let table = job["table"].as_str().ok_or("export job without table")?;
    let export_id = job["exportId"]
        .as_str()
        .ok_or("export job without exportId")?;
    let bucket = desc["S3Bucket"].as_str().ok_or("export without S3Bucket")?;
    let prefix = desc["S3Prefix"].as_str().unwrap_or("");
    let format = match desc["ExportFormat"].as_str() {
        Some("PARQUET") => Format::Parquet,
        _ => Format::DynamoDbJson,
    };
    let kind = match desc["ExportType"].as_str() {
        Some("INCREMENTAL_EXPORT") => {
            let spec = &desc["IncrementalExportSpecification"];
            ExportKind::Incremental {
                from_micros: micros(&spec["ExportFromTime"]).ok_or("no ExportFromTime")?,
                to_micros: micros(&spec["ExportToTime"]).ok_or("no ExportToTime")?,
                with_old_images: spec["ExportViewType"].as_str() != Some("NEW_IMAGE"),
            }
        }
        _ => ExportKind::Full {
            at_micros: micros(&desc["ExportTime"]).ok_or("no ExportTime")?,
        },
    };
    let url = buckets
        .url(bucket)
        .ok_or_else(|| format!("invalid bucket name {bucket:?}"))?;
    let opened = strata_store::open_unchecked(&url).map_err(|e| e.to_string())?;
    let dir = export_dir(prefix, export_id);
    let dest = Destination {
        store: opened.store,
        dir: dir.clone(),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        export_arn: desc["ExportArn"].as_str().unwrap_or_default().to_string(),
        table_arn: desc["TableArn"].as_str().unwrap_or_default().to_string(),
        export_id: export_id.to_string(),
    };
    let job = ExportJob {
        table: table.to_string(),
        format,
        kind,
    };
    let outcome = export(engine, &job, &dest, progress)
        .await
        .map_err(|e| e.to_string())?;
    Ok((outcome, ExportPaths::at(&dir).manifest_summary()))
}

/// Rewrites a job's record (its description) when the job ends.
async fn write_record(
    engine: &Engine,
    record: &Path,
    desc: &Json,
    what: &str,
) -> Result<(), String> {
    engine
        .store()
        .put(record, PutPayload::from(desc.to_string().into_bytes()))
        .await
        .map(|_| ())
        .map_err(|e| format!("recording the {what}'s end: {e}"))
}

/// Runs an import job: fills its table, records the outcome in the
/// import's description, and turns the table ACTIVE (or, failed, deletes
/// it, as a failed restore does).
async fn run_import(
    engine: &Engine,
    job: &Json,
    buckets: &Buckets,
    progress: Arc<dyn Progress>,
) -> Result<Json, String> {
    let record = Path::from(job["record"].as_str().ok_or("import job without record")?);
    let table = job["table"].as_str().ok_or("import job without table")?;
    let mut desc = job["description"].clone();
    let result = import_from(engine, table, job, &desc, buckets, progress).await;
    let result = match result {
        Ok(o) => strata_engine::jobs::finish_fill(engine, table, &job["indexes"])
            .await
            .map(|_| o),
        Err(e) => Err(e),
    };
    desc["EndTime"] = json!(strata_engine::clock::now_micros() as f64 / 1e6);
    match &result {
        Ok(o) => {
            desc["ImportStatus"] = json!("COMPLETED");
            desc["ProcessedSizeBytes"] = json!(o.processed_bytes);
            desc["ProcessedItemCount"] = json!(o.processed_items);
            desc["ImportedItemCount"] = json!(o.imported_items);
            desc["ErrorCount"] = json!(o.errors);
        }
        Err(e) => {
            strata_engine::jobs::drop_filled(engine, table, job).await;
            desc["ImportStatus"] = json!("FAILED");
            desc["FailureCode"] = json!("ImportFailed");
            desc["FailureMessage"] = json!(e);
        }
    }
    write_record(engine, &record, &desc, "import").await?;
    // A failure is recorded (FAILED): the job is done, not to be retried.
    if let Err(e) = &result {
        tracing::warn!(table, error = %e, "import failed");
    }
    Ok(desc)
}

async fn import_from(
    engine: &Engine,
    table: &str,
    job: &Json,
    desc: &Json,
    buckets: &Buckets,
    progress: Arc<dyn Progress>,
) -> Result<crate::import::ImportOutcome, String> {
    use crate::import::{Compression, CsvOptions, ImportSpec, InputFormat};
    let source = &desc["S3BucketSource"];
    let bucket = source["S3Bucket"]
        .as_str()
        .ok_or("import without S3Bucket")?;
    let url = buckets
        .url(bucket)
        .ok_or_else(|| format!("invalid bucket name {bucket:?}"))?;
    let opened = strata_store::open_unchecked(&url).map_err(|e| e.to_string())?;
    let format = desc["InputFormat"]
        .as_str()
        .and_then(InputFormat::parse)
        .ok_or("import without a known InputFormat")?;
    let compression = desc["InputCompressionType"]
        .as_str()
        .map_or(Some(Compression::None), Compression::parse)
        .ok_or("import with an unknown InputCompressionType")?;
    let csv_spec = &desc["InputFormatOptions"]["Csv"];
    let csv = CsvOptions {
        delimiter: csv_spec["Delimiter"]
            .as_str()
            .and_then(|d| d.bytes().next())
            .unwrap_or(b','),
        header: csv_spec["HeaderList"].as_array().map(|h| {
            h.iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        }),
    };
    let spec = ImportSpec {
        table: table.to_string(),
        source: opened.store,
        bucket: bucket.to_string(),
        prefix: source["S3KeyPrefix"].as_str().unwrap_or("").to_string(),
        format,
        compression,
        csv,
        import_arn: desc["ImportArn"].as_str().unwrap_or_default().to_string(),
        indexes: match &job["indexes"] {
            Json::Null => Vec::new(),
            v => serde_json::from_value(v.clone())
                .map_err(|e| format!("an import job with unreadable indexes: {e}"))?,
        },
        exact: false,
    };
    crate::import::import(engine, &spec, progress).await
}

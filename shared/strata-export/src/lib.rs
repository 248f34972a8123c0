//! Point-in-time exports of a Strata table, laid out like DynamoDB's
//! exports but with Parquet data files (DynamoDB JSON too):
//!
//! ```text
//! <dir>/_started                 written first
//! <dir>/data/<part>-<id>.parquet one file per partition with data
//! <dir>/manifest-files.json      one JSON line per data file: itemCount, md5Checksum, etag, dataFileS3Key
//! <dir>/manifest-summary.json    written last: the export's description and totals
//! ```
//! `<dir>` is `<S3Prefix>/AWSDynamoDB/<export id>`, as in DynamoDB.
//!
//! A full export at T holds exactly the items the table held at T: each
//! partition is read as of T (the newest manifest created by T and the log
//! segments committed by T, see `strata_engine::PointInTime`), and a log
//! segment is one atomic commit, so no multi-item write is ever split. An
//! incremental export from F to T holds, per key whose item differs between
//! F and T, the change (INSERT, MODIFY, REMOVE), the commit time of the
//! newer version, and the new and (optionally) old items: the difference of
//! two full exports, by construction (a merge of the two moments in key order).

mod columns;
pub mod import;
pub mod jobs;
pub mod json;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::RecordBatch;
use base64::Engine as _;
use md5::{Digest, Md5};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde_json::json;
use strata_engine::clock::now_micros;
use strata_engine::paths::ExportPaths;
use strata_engine::run::Version;
use strata_engine::{Engine, Item, PointInTime};

use columns::{Column, Extra, ExtraValue, Inference, Rows};

/// Versions read per step, and rows per Parquet row group batch.
const CHUNK: usize = 8192;
/// Partitions exported at once.
const PARALLEL: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] strata_engine::Error),
    #[error("writing {path}: {source}")]
    Store {
        path: String,
        source: object_store::Error,
    },
    #[error("encoding Parquet: {0}")]
    Encode(String),
}

impl From<arrow_schema::ArrowError> for ExportError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        ExportError::Encode(e.to_string())
    }
}

impl From<parquet::errors::ParquetError> for ExportError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ExportError::Encode(e.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    DynamoDbJson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "PARQUET",
            Format::DynamoDbJson => "DYNAMODB_JSON",
        }
    }
}

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportJob {
    pub table: String,
    pub format: Format,
    pub kind: ExportKind,
}

#[derive(Debug, Clone, Copy)]
pub enum ExportKind {
    /// The table as of this moment (µs since the epoch).
    Full { at_micros: u64 },
    /// What changed between two moments.
    Incremental {
        from_micros: u64,
        to_micros: u64,
        with_old_images: bool,
    },
}

/// Where it goes: a store and the export's directory in it.
#[derive(Clone)]
pub struct Destination {
    pub store: Arc<dyn ObjectStore>,
    /// `<S3Prefix>/AWSDynamoDB/<export id>` (no leading or trailing slash).
    pub dir: String,
    /// For the manifests: the bucket and prefix as the caller named them.
    pub bucket: String,
    pub prefix: String,
    pub export_arn: String,
    pub table_arn: String,
    pub export_id: String,
}

/// One data file of an export.
#[derive(Debug, Clone)]
pub struct DataFile {
    pub key: String,
    pub items: u64,
    pub bytes: u64,
    pub md5_base64: String,
}

#[derive(Debug, Clone, Default)]
pub struct ExportOutcome {
    pub items: u64,
    pub bytes: u64,
    pub files: Vec<DataFile>,
}

/// Progress: rows written so far, and the total once known.
pub trait Progress: Send + Sync {
    fn total(&self, _rows: u64) {}
    fn advance(&self, _rows: u64) {}
}

impl Progress for () {}

async fn put(store: &dyn ObjectStore, key: &str, body: Vec<u8>) -> Result<(), ExportError> {
    store
        .put(&Path::from(key), PutPayload::from(body))
        .await
        .map(|_| ())
        .map_err(|source| ExportError::Store {
            path: key.to_string(),
            source,
        })
}

/// Runs an export to the end: `_started`, the data files, then the two
/// manifests (the summary last, so its presence means the export is whole).
pub async fn export(
    engine: &Engine,
    job: &ExportJob,
    dest: &Destination,
    progress: Arc<dyn Progress>,
) -> Result<ExportOutcome, ExportError> {
    let started = now_micros();
    let store = dest.store.as_ref();
    put(store, &ExportPaths::at(&dest.dir).started(), Vec::new()).await?;
    let desc = engine.describe_table(&job.table).await?;
    let files = match job.kind {
        ExportKind::Full { at_micros } => {
            let parts = desc.map().leaves_at(Some(at_micros));
            full(engine, job, dest, &parts, at_micros, &progress).await?
        }
        ExportKind::Incremental {
            from_micros,
            to_micros,
            with_old_images,
        } => {
            // Each partition live at the end, against its keys at the start
            // (an ancestor's, where a split came between).
            let parts = desc.map().leaves_at(Some(to_micros));
            incremental(
                engine,
                job,
                dest,
                &parts,
                (from_micros, to_micros),
                with_old_images,
                progress.as_ref(),
            )
            .await?
        }
    };
    let outcome = ExportOutcome {
        items: files.iter().map(|f| f.items).sum(),
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
    };
    let mut lines = String::new();
    for f in &outcome.files {
        let etag = hex(&base64::engine::general_purpose::STANDARD
            .decode(&f.md5_base64)
            .unwrap_or_default());
        lines.push_str(
            &json!({
                "itemCount": f.items,
                "md5Checksum": f.md5_base64,
                "etag": etag,
                "dataFileS3Key": f.key,
            })
            .to_string(),
        );
        lines.push('\n');
    }
    let files_key = ExportPaths::at(&dest.dir).manifest_files();
    put(store, &files_key, lines.into_bytes()).await?;
    let (export_type, export_time) = match job.kind {
        ExportKind::Full { at_micros } => ("FULL_EXPORT", at_micros),
        ExportKind::Incremental { to_micros, .. } => ("INCREMENTAL_EXPORT", to_micros),
    };
    let summary = json!({
        "version": "2023-08-01",
        "exportArn": dest.export_arn,
        "startTime": iso(started),
        "endTime": iso(now_micros()),
        "tableArn": dest.table_arn,
        "tableId": desc.incarnation,
        "exportTime": iso(export_time),
        "s3Bucket": dest.bucket,
        "s3Prefix": dest.prefix,
        "s3SseAlgorithm": null,
        "s3SseKmsKeyId": null,
        "manifestFilesS3Key": files_key,
        "billedSizeBytes": outcome.bytes,
        "itemCount": outcome.items,
        "outputFormat": job.format.name(),
        "exportType": export_type,
    });
    put(
        store,
        &ExportPaths::at(&dest.dir).manifest_summary(),
        serde_json::to_vec_pretty(&summary).unwrap_or_default(),
    )
    .await?;
    Ok(outcome)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3339 with milliseconds, UTC.
pub fn iso(micros: u64) -> String {
    format!("{}Z", strata_engine::clock::iso_time(micros / 1000))
}

/// A data file's bytes, written and described.
async fn write_file(
    dest: &Destination,
    name: String,
    body: Vec<u8>,
    items: u64,
) -> Result<DataFile, ExportError> {
    let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
    let key = ExportPaths::at(&dest.dir).data(&name);
    let bytes = body.len() as u64;
    put(dest.store.as_ref(), &key, body).await?;
    Ok(DataFile {
        key,
        items,
        bytes,
        md5_base64: md5,
    })
}

fn parquet_writer(schema: arrow_schema::SchemaRef) -> Result<ArrowWriter<Vec<u8>>, ExportError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        // Row groups of 64k rows keep the writer's buffers small.
        .set_max_row_group_size(65_536)
        .build();
    Ok(ArrowWriter::try_new(Vec::new(), schema, Some(props))?)
}

fn gzip() -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
}

fn joined<T>(r: Result<Result<T, ExportError>, tokio::task::JoinError>) -> Result<T, ExportError> {
    r.map_err(|e| ExportError::Encode(format!("export task failed: {e}")))?
}

/// Full export: one pass to find the columns, one to write them; each
/// partition is a task, `PARALLEL` at a time (the work is CPU-bound).
async fn full(
    engine: &Engine,
    job: &ExportJob,
    dest: &Destination,
    partitions: &[u32],
    at: u64,
    progress: &Arc<dyn Progress>,
) -> Result<Vec<DataFile>, ExportError> {
    let mut moments = Vec::with_capacity(partitions.len());
    for &part in partitions {
        let found = engine.moments_of(&job.table, part, at).await?;
        moments.extend(found.into_iter().map(|(_, m)| m));
    }
    let keys = moments
        .first()
        .map(|m| m.table().key_schema.clone())
        .ok_or_else(|| ExportError::Encode("table has no partitions".into()))?;
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut inference = Inference::default();
    if job.format == Format::Parquet {
        let tasks: Vec<_> = moments
            .into_iter()
            .map(|mut m| {
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    let mut inference = Inference::default();
                    let mut n = 0u64;
                    while let Some(chunk) = m.next_chunk(CHUNK).await? {
                        for (_, v) in chunk.iter().filter(|(_, v)| !v.deleted) {
                            inference.observe(&v.item);
                            n += 1;
                        }
                    }
                    m.rewind();
                    Ok::<_, ExportError>((m, inference, n))
                })
            })
            .collect();
        moments = Vec::with_capacity(tasks.len());
        let mut total = 0;
        for t in tasks {
            let (m, inf, n) = joined(t.await)?;
            inference.merge(&inf);
            total += n;
            moments.push(m);
        }
        progress.total(total);
    }
    let columns = Arc::new(inference.columns(&keys, &["item"]));
    let tasks: Vec<_> = moments
        .into_iter()
        .enumerate()
        .map(|(part, m)| {
            let (permits, columns, dest, progress) = (
                Arc::clone(&permits),
                Arc::clone(&columns),
                dest.clone(),
                Arc::clone(progress),
            );
            let format = job.format;
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let (name, (body, items)) = match format {
                    Format::Parquet => (
                        ExportPaths::data_name(part as u32, &dest.export_id, "parquet"),
                        full_parquet(m, &columns, progress.as_ref()).await?,
                    ),
                    Format::DynamoDbJson => (
                        ExportPaths::data_name(part as u32, &dest.export_id, "json.gz"),
                        full_json(m, progress.as_ref()).await?,
                    ),
                };
                if items == 0 {
                    return Ok(None);
                }
                Ok::<_, ExportError>(Some(write_file(&dest, name, body, items).await?))
            })
        })
        .collect();
    let mut files = Vec::new();
    for t in tasks {
        files.extend(joined(t.await)?);
    }
    Ok(files)
}

async fn full_parquet(
    mut m: PointInTime,
    columns: &[Column],
    progress: &dyn Progress,
) -> Result<(Vec<u8>, u64), ExportError> {
    let extras = [Extra::Text("item")];
    let mut rows = Rows::new(columns, &extras)?;
    let mut writer = parquet_writer(rows.schema())?;
    let mut items = 0u64;
    while let Some(chunk) = m.next_chunk(CHUNK).await? {
        let mut n = 0;
        for (_, v) in chunk.iter().filter(|(_, v)| !v.deleted) {
            let text = json::item_json(&v.item);
            rows.push(Some(&v.item), &[ExtraValue::Text(Some(&text))]);
            n += 1;
        }
        if rows.len > 0 {
            writer.write(&rows.finish()?)?;
        }
        items += n;
        progress.advance(n);
        tokio::task::yield_now().await;
    }
    let body = writer.into_inner()?;
    Ok((body, items))
}

async fn full_json(
    mut m: PointInTime,
    progress: &dyn Progress,
) -> Result<(Vec<u8>, u64), ExportError> {
    let mut out = gzip();
    let mut items = 0u64;
    while let Some(chunk) = m.next_chunk(CHUNK).await? {
        let mut n = 0;
        for (_, v) in chunk.iter().filter(|(_, v)| !v.deleted) {
            writeln!(out, "{{\"Item\":{}}}", json::item_json(&v.item))
                .map_err(|e| ExportError::Encode(e.to_string()))?;
            n += 1;
        }
        items += n;
        progress.advance(n);
    }
    let body = out
        .finish()
        .map_err(|e| ExportError::Encode(e.to_string()))?;
    Ok((body, items))
}

/// One changed key of an incremental export.
struct Change {
    kind: &'static str,
    commit_micros: Option<u64>,
    new: Option<Arc<Item>>,
    old: Option<Arc<Item>>,
    keys: Item,
}

/// Merges two moments of one partition in key order into the changes
/// between them.
async fn diff(mut from: PointInTime, mut to: PointInTime) -> Result<Vec<Change>, ExportError> {
    let keys = to.table().key_schema.clone();
    let mut a: std::collections::VecDeque<(Vec<u8>, Version)> = Default::default();
    let mut b: std::collections::VecDeque<(Vec<u8>, Version)> = Default::default();
    let (mut a_done, mut b_done) = (false, false);
    let mut out = Vec::new();
    loop {
        if a.is_empty() && !a_done {
            match from.next_chunk(CHUNK).await? {
                Some(c) => a.extend(c),
                None => a_done = true,
            }
        }
        if b.is_empty() && !b_done {
            match to.next_chunk(CHUNK).await? {
                Some(c) => b.extend(c),
                None => b_done = true,
            }
        }
        let (old, new) = match (a.front(), b.front()) {
            (None, None) => return Ok(out),
            (Some(x), Some(y)) if x.0 == y.0 => (a.pop_front(), b.pop_front()),
            (Some(x), Some(y)) if x.0 < y.0 => (a.pop_front(), None),
            (Some(_), None) => (a.pop_front(), None),
            _ => (None, b.pop_front()),
        };
        let old_live = old
            .as_ref()
            .filter(|(_, v)| !v.deleted)
            .map(|(_, v)| Arc::clone(&v.item));
        let new_live = new
            .as_ref()
            .filter(|(_, v)| !v.deleted)
            .map(|(_, v)| Arc::clone(&v.item));
        let kind = match (&old_live, &new_live) {
            (None, None) => continue,
            (None, Some(_)) => "INSERT",
            (Some(_), None) => "REMOVE",
            (Some(o), Some(n)) if o == n => continue,
            (Some(_), Some(_)) => "MODIFY",
        };
        let any = new_live.as_ref().or(old_live.as_ref()).map(Arc::clone);
        let Some(any) = any else { continue };
        let key_item = match keys.key_of(&any) {
            Ok(k) => keys.key_item(&k),
            Err(_) => continue,
        };
        out.push(Change {
            kind,
            // The newer version's time; a delete whose tombstone is gone has none.
            commit_micros: new.as_ref().map(|(_, v)| v.ts_micros),
            new: new_live,
            old: old_live,
            keys: key_item,
        });
    }
}

#[allow(clippy::too_many_arguments)]
async fn incremental(
    engine: &Engine,
    job: &ExportJob,
    dest: &Destination,
    partitions: &[u32],
    (from_micros, to_micros): (u64, u64),
    with_old: bool,
    progress: &dyn Progress,
) -> Result<Vec<DataFile>, ExportError> {
    let mut per_part = Vec::with_capacity(partitions.len());
    let mut inference = Inference::default();
    let mut total = 0;
    for &part in partitions {
        // (A partition the descriptor showed live at the end may have been
        // split by then: its children's ends, each against its keys at the
        // start.)
        for (leaf, to) in engine.moments_of(&job.table, part, to_micros).await? {
            let from = engine.point_in_time(&job.table, leaf, from_micros).await?;
            let changes = diff(from, to).await?;
            for c in &changes {
                inference.observe(&c.keys);
            }
            total += changes.len() as u64;
            per_part.push(changes);
        }
    }
    progress.total(total);
    let desc = engine.describe_table(&job.table).await?;
    let columns = inference.columns(
        &desc.key_schema,
        &["change", "commit_time", "new_item", "old_item"],
    );
    let mut files = Vec::new();
    for (part, changes) in per_part.into_iter().enumerate() {
        if changes.is_empty() {
            continue;
        }
        let n = changes.len() as u64;
        let (name, body) = match job.format {
            Format::Parquet => {
                let mut extras = vec![
                    Extra::Text("change"),
                    Extra::Time("commit_time"),
                    Extra::Text("new_item"),
                ];
                if with_old {
                    extras.push(Extra::Text("old_item"));
                }
                let mut rows = Rows::new(&columns, &extras)?;
                let mut writer = parquet_writer(rows.schema())?;
                for batch in changes.chunks(CHUNK) {
                    for c in batch {
                        let new = c.new.as_deref().map(json::item_json);
                        let old = c.old.as_deref().filter(|_| with_old).map(json::item_json);
                        let mut values = vec![
                            ExtraValue::Text(Some(c.kind)),
                            ExtraValue::Time(c.commit_micros.map(|t| t as i64)),
                            ExtraValue::Text(new.as_deref()),
                        ];
                        if with_old {
                            values.push(ExtraValue::Text(old.as_deref()));
                        }
                        rows.push(Some(&c.keys), &values);
                    }
                    let batch: RecordBatch = rows.finish()?;
                    writer.write(&batch)?;
                }
                (
                    ExportPaths::data_name(part as u32, &dest.export_id, "parquet"),
                    writer.into_inner()?,
                )
            }
            Format::DynamoDbJson => {
                let mut out = gzip();
                for c in &changes {
                    let mut line = format!(
                        "{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{}\"}}}},\"Keys\":{}",
                        c.commit_micros.unwrap_or_default(),
                        json::item_json(&c.keys)
                    );
                    if let Some(n) = &c.new {
                        line.push_str(&format!(",\"NewImage\":{}", json::item_json(n)));
                    }
                    if let (true, Some(o)) = (with_old, &c.old) {
                        line.push_str(&format!(",\"OldImage\":{}", json::item_json(o)));
                    }
                    writeln!(out, "{line}}}").map_err(|e| ExportError::Encode(e.to_string()))?;
                }
                let body = out
                    .finish()
                    .map_err(|e| ExportError::Encode(e.to_string()))?;
                (
                    ExportPaths::data_name(part as u32, &dest.export_id, "json.gz"),
                    body,
                )
            }
        };
        progress.advance(n);
        files.push(write_file(dest, name, body, n).await?);
    }
    Ok(files)
}

/// Counts rows for a caller that only wants the number.
#[derive(Default)]
pub struct Counter(pub AtomicU64);

impl Progress for Counter {
    fn advance(&self, rows: u64) {
        self.0.fetch_add(rows, Ordering::Relaxed);
    }
}

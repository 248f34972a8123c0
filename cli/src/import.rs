//! `strata import`: ImportTable from the command line, with a progress
//! bar. Creates the table, ingests every object under the source (a
//! directory, a file, or a store URL and prefix) as SSTs, and prints
//! ImportSummary's counts; bad lines are logged and counted.

use std::path::PathBuf;
use std::sync::Arc;

use strata_engine::value::{KeyAttribute, KeySchema, KeyType};
use strata_engine::TableSpec;
use strata_export::import::{import, Compression, CsvOptions, ImportSpec, InputFormat};

use crate::{open_engine, Bar, StoreArgs};

#[derive(clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The new table.
    #[arg(long)]
    table: String,
    /// Its key: NAME:TYPE (S, N or B), the partition key first, then the sort key if any.
    #[arg(long = "key", required = true, num_args = 1..=2)]
    keys: Vec<String>,
    /// A directory or file to import …
    #[arg(long, conflicts_with = "source")]
    from: Option<PathBuf>,
    /// … or a store URL (e.g. s3://bucket), with --prefix.
    #[arg(long)]
    source: Option<String>,
    /// Only objects under this prefix of --source.
    #[arg(long, default_value = "")]
    prefix: String,
    /// csv, dynamodb-json or ion.
    #[arg(long)]
    format: String,
    /// none, gzip or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// CSV: the delimiter (one character).
    #[arg(long, default_value = ",")]
    delimiter: String,
    /// CSV: the column names (comma-separated), when the files have no header line.
    #[arg(long)]
    header: Option<String>,
}

fn key_attribute(spec: &str) -> Result<KeyAttribute, String> {
    let (name, t) = spec
        .rsplit_once(':')
        .ok_or_else(|| format!("bad --key {spec:?}: expected NAME:TYPE"))?;
    let key_type = match t {
        "S" => KeyType::S,
        "N" => KeyType::N,
        "B" => KeyType::B,
        _ => return Err(format!("bad key type {t:?}: S, N or B")),
    };
    Ok(KeyAttribute {
        name: name.to_string(),
        key_type,
    })
}

pub async fn import_cmd(args: ImportArgs) -> Result<(), String> {
    let format = match args.format.as_str() {
        "csv" => InputFormat::Csv,
        "dynamodb-json" | "json" => InputFormat::DynamoDbJson,
        "ion" => InputFormat::Ion,
        other => {
            return Err(format!(
                "unknown format {other:?}: csv, dynamodb-json or ion"
            ))
        }
    };
    let compression = Compression::parse(&args.compression.to_uppercase()).ok_or_else(|| {
        format!(
            "unknown compression {:?}: none, gzip or zstd",
            args.compression
        )
    })?;
    let delimiter = match args.delimiter.as_bytes() {
        [d] => *d,
        _ => return Err("--delimiter must be one character".into()),
    };
    let (url, prefix, exact) = match (&args.from, &args.source) {
        (Some(path), _) => {
            let abs =
                std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
            // A file: its directory, and that one name in it.
            if abs.is_file() {
                let dir = abs.parent().ok_or("a file without a directory")?;
                let name = abs.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                (format!("file://{}", dir.display()), name.to_string(), true)
            } else {
                (
                    format!("file://{}", abs.display()),
                    args.prefix.clone(),
                    false,
                )
            }
        }
        (None, Some(url)) => (url.clone(), args.prefix.clone(), false),
        (None, None) => return Err("say what to import: --from PATH or --source URL".into()),
    };
    let mut keys = args.keys.iter().map(|k| key_attribute(k));
    let hash = keys.next().ok_or("--key is required")??;
    let range = keys.next().transpose()?;
    let engine = open_engine(&args.store).await?;
    engine
        .create_table(TableSpec {
            name: args.table.clone(),
            key_schema: KeySchema { hash, range },
            partitions: None,
            keep_old_images: false,
            replicas: Vec::new(),
            meta: serde_json::json!({"BillingMode": "PAY_PER_REQUEST"}),
            indexes: Vec::new(),
            commit_window_ms: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    let source = strata_store::open_unchecked(&url).map_err(|e| e.to_string())?;
    let spec = ImportSpec {
        table: args.table.clone(),
        source: source.store,
        bucket: url.clone(),
        prefix,
        format,
        compression,
        csv: CsvOptions {
            delimiter,
            header: args
                .header
                .as_ref()
                .map(|h| h.split(',').map(str::to_string).collect()),
        },
        import_arn: format!("strata:import/{}", args.table),
        indexes: Vec::new(),
        exact,
    };
    let bar = Bar::new(
        "{bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        format!("importing into {}", args.table),
    )?;
    let start = std::time::Instant::now();
    let out = import(&engine, &spec, Arc::new(bar.clone())).await?;
    bar.0.finish_and_clear();
    println!(
        "strata: imported {} of {} items ({:.1} MB read, {} errors) into {} in {:.2} s",
        out.imported_items,
        out.processed_items,
        out.processed_bytes as f64 / 1e6,
        out.errors,
        args.table,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

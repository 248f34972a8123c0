//! `strata`: the local DynamoDB-compatible server and tools.
//!
//!     strata serve                       # http://127.0.0.1:8000, data in ./strata-data
//!     strata serve --store s3://bucket/prefix --port 8001
//!     strata serve --region us-east-1 --replica eu-west-1=file:///srv/eu   # global tables
//!     strata replicate --once --region us-east-1 --replica eu-west-1=…
//!     strata export --table Music --format parquet --to-dir ./exports
//!     strata restore --table Music --target MusicYesterday --time 2026-11-23T10:00:00Z
//!     strata cost --size-gb 100 --writes-per-sec 100 --reads-per-sec 1000

mod cost;
mod head_errors;
mod import;
mod rekey;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_api::Api;
use strata_engine::replication::{open_regions, parse_regions, Regions, Replicator};
use strata_engine::{Engine, EngineConfig};
use strata_export::jobs::Buckets;

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Strata: a DynamoDB-compatible database on object storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the DynamoDB API locally (the embedded default: a local directory store).
    Serve(ServeArgs),
    /// Replicate this region's global tables to their other regions, in a
    /// loop (or one pass with --once); what `strata serve` does in the background.
    Replicate(ReplicateArgs),
    /// Export a table as it was at a moment (default: now) to Parquet or DynamoDB
    /// JSON, laid out like DynamoDB's exports, with a progress bar.
    Export(ExportArgs),
    /// Restore a table as it was at a moment into a new table.
    Restore(RestoreArgs),
    /// Import CSV, DynamoDB JSON or ION files (plain, gzip or zstd) into a new
    /// table, ingested as SSTs, with a progress bar (ImportTable from the shell).
    Import(import::ImportArgs),
    /// The monthly cost of a workload on Strata (per deployment, from
    /// measured request counts) next to DynamoDB on-demand and provisioned.
    Cost(cost::CostArgs),
    /// Finish rotating --encryption-key: seal every object still written with an
    /// old key (listed after the new one in the key file) with the new key. Run it
    /// while no server has the store open.
    Rekey(rekey::RekeyArgs),
}

#[derive(clap::Args)]
struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The table to export.
    #[arg(long)]
    table: String,
    /// The moment to export (RFC 3339, e.g. 2026-11-24T09:00:00Z, or epoch seconds); default now.
    #[arg(long)]
    time: Option<String>,
    /// With --from: export what changed between --from and --time (an incremental export).
    #[arg(long)]
    from: Option<String>,
    /// parquet or dynamodb-json.
    #[arg(long, default_value = "parquet")]
    format: String,
    /// Write into this directory …
    #[arg(long, conflicts_with = "dest")]
    to_dir: Option<PathBuf>,
    /// … or into this store URL (e.g. s3://bucket/prefix).
    #[arg(long)]
    dest: Option<String>,
    /// Incremental exports: leave out old images.
    #[arg(long)]
    new_image_only: bool,
}

#[derive(clap::Args)]
struct RestoreArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The table to restore from.
    #[arg(long)]
    table: String,
    /// The new table.
    #[arg(long)]
    target: String,
    /// The moment to restore (RFC 3339 or epoch seconds); default now.
    #[arg(long)]
    time: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct StoreArgs {
    /// Directory for the local filesystem store (ignored with --store).
    #[arg(long, default_value = "./strata-data", env = "STRATA_DATA")]
    data: PathBuf,
    /// Store URL instead of --data: file:///abs/dir, memory://, or s3://bucket/prefix
    /// (S3 settings from the standard AWS environment: AWS_ENDPOINT_URL, AWS_REGION,
    /// credentials; `?endpoint=…&region=…` overrides them for one store).
    #[arg(long, env = "STRATA_STORE")]
    store: Option<String>,
    /// This server's region: stamped on commits, and the default in ARNs.
    #[arg(long, default_value = "us-east-1", env = "STRATA_REGION")]
    region: String,
    /// Another region's store, for global tables: REGION=STORE-URL. Repeat per
    /// region; STRATA_REGIONS takes the same entries separated by commas.
    #[arg(
        long = "replica",
        value_name = "REGION=URL",
        env = "STRATA_REGIONS",
        value_delimiter = ','
    )]
    replicas: Vec<String>,
    /// Encrypt every object of the store at rest (AES-256-GCM) with the key in this
    /// file: 32 bytes, or 64 hex digits (`openssl rand -hex 32 > key`). The same key
    /// must be given every time the store is opened. To rotate it, list a new key
    /// first and the old ones after it, one per line (new objects take the first,
    /// every one reads); `strata rekey` then rewrites the old keys' objects. (S3
    /// stores: prefer S3's own encryption, `?sse=AES256` or `?sse=aws:kms`.)
    #[arg(long, env = "STRATA_ENCRYPTION_KEY", value_name = "FILE")]
    encryption_key: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReplicateArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Milliseconds between passes.
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// One pass, then exit.
    #[arg(long)]
    once: bool,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1", env = "STRATA_HOST")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8000, env = "STRATA_PORT")]
    port: u16,
    #[command(flatten)]
    store: StoreArgs,
    /// Milliseconds between replication passes, when other regions are configured.
    #[arg(long, default_value_t = 200)]
    replicate_interval_ms: u64,
    /// Hours GC keeps log segments: what DynamoDB Streams readers can still
    /// read, and how long a replicator may be cut off and still resume.
    #[arg(long, default_value_t = 24, env = "STRATA_LOG_RETENTION_HOURS")]
    stream_retention_hours: u64,
    /// Where ExportTableToPointInTime's S3Bucket names go: NAME=STORE-URL (repeat;
    /// STRATA_EXPORT_BUCKETS takes them comma-separated). Other names are s3://NAME.
    #[arg(
        long = "export-bucket",
        value_name = "NAME=URL",
        env = "STRATA_EXPORT_BUCKETS",
        value_delimiter = ','
    )]
    export_buckets: Vec<String>,
    /// Partitions for new tables.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// How stale an eventually consistent read may be, in milliseconds (DynamoDB's usual lag is about a second).
    #[arg(long, default_value_t = 1000, env = "STRATA_STALENESS_MS")]
    staleness_ms: u64,
    /// Memory for the read caches in MiB (default: 10% of the machine's memory).
    #[arg(long, env = "STRATA_CACHE_MB")]
    cache_mb: Option<u64>,
    /// Milliseconds a partition's group commit waits for more writes before its one PUT
    /// (0: none). Fewer PUTs for busy tables, at up to this much latency per write; at most 1000.
    #[arg(long, default_value_t = 0, env = "STRATA_COMMIT_WINDOW_MS",
          value_parser = clap::value_parser!(u64).range(0..=strata_engine::config::MAX_COMMIT_WINDOW_MS))]
    commit_window_ms: u64,
    /// A partition committing faster than this many writes a second (over a minute)
    /// splits at its next compaction, as DynamoDB splits a hot partition.
    #[arg(long, default_value_t = 1000, env = "STRATA_SPLIT_COMMITS_PER_SEC",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    split_commits_per_sec: u64,
    /// The window (seconds) that rate is measured over.
    #[arg(long, default_value_t = 60, env = "STRATA_SPLIT_WINDOW_SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    split_window_secs: u64,
    /// Seconds between background passes over every table: compaction (which also brings
    /// DescribeTable's ItemCount and TableSizeBytes up to date) and garbage collection.
    #[arg(long, default_value_t = 60, env = "STRATA_MAINTENANCE_SECS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    maintenance_secs: u64,
    /// Seconds before a table's time to live may be changed again (DynamoDB: 3600; 0: any time).
    #[arg(long, default_value_t = 0, env = "STRATA_TTL_CHANGE_INTERVAL_SECS")]
    ttl_change_interval_secs: u64,
    /// Require SigV4-signed requests from the users in this JSON file, each allowed
    /// what its IAM-style policy allows (see docs/security.md). Without it every
    /// request is served, as DynamoDB Local serves them.
    #[arg(long, env = "STRATA_AUTH", value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(
        long,
        env = "STRATA_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(
        long,
        env = "STRATA_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// Open connections at most; past it a new connection is answered
    /// 503 ThrottlingException and closed.
    #[arg(long, default_value_t = 4096, env = "STRATA_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Requests in flight at most; past it, 503 ThrottlingException (retryable).
    #[arg(long, default_value_t = 1024, env = "STRATA_MAX_IN_FLIGHT",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_in_flight: u64,
    /// Memory (MiB) the requests in flight may hold in parsed bodies; a
    /// request waits for its share, and one needing more than all of it is
    /// refused (ValidationException) before it is parsed.
    #[arg(long, default_value_t = strata_api::DEFAULT_REQUEST_MEMORY >> 20,
          env = "STRATA_REQUEST_MEMORY_MB",
          value_parser = clap::value_parser!(u64).range(16..=1_000_000))]
    request_memory_mb: u64,
    /// Seconds a client has to send a request's head (and to finish a TLS
    /// handshake); an idle keep-alive connection is closed after as long.
    #[arg(long, default_value_t = 10, env = "STRATA_HEADER_TIMEOUT_SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_secs: u64,
    /// A price the console's cost per million requests uses: NAME=VALUE ($; repeat;
    /// `strata cost --prices` lists them).
    #[arg(long = "price", value_name = "NAME=VALUE")]
    prices: Vec<String>,
}

pub(crate) fn store_url(args: &StoreArgs) -> Result<String, String> {
    let url = match &args.store {
        Some(url) => url.clone(),
        None => {
            std::fs::create_dir_all(&args.data).map_err(|e| {
                format!("cannot create data directory {}: {e}", args.data.display())
            })?;
            let abs = std::fs::canonicalize(&args.data)
                .map_err(|e| format!("cannot resolve {}: {e}", args.data.display()))?;
            format!("file://{}", abs.display())
        }
    };
    let Some(key) = &args.encryption_key else {
        return Ok(url);
    };
    let key = std::fs::canonicalize(key)
        .map_err(|e| format!("--encryption-key {}: {e}", key.display()))?;
    let mut parsed = url::Url::parse(&url).map_err(|e| format!("store URL {url}: {e}"))?;
    parsed
        .query_pairs_mut()
        .append_pair("encryption_key", &key.to_string_lossy());
    Ok(parsed.to_string())
}

/// The other regions' engines, from --replica / STRATA_REGIONS.
async fn regions(args: &StoreArgs, config: &EngineConfig) -> Result<Regions, String> {
    let entries = parse_regions(&args.replicas.join(",")).map_err(|e| e.to_string())?;
    open_regions(&entries, config)
        .await
        .map_err(|e| e.to_string())
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let url = store_url(&args.store)?;
    let mut config = EngineConfig {
        region: args.store.region.clone(),
        default_partitions: args.partitions,
        eventual_staleness: Duration::from_millis(args.staleness_ms),
        commit_window: Duration::from_millis(args.commit_window_ms),
        ttl_change_interval: Duration::from_secs(args.ttl_change_interval_secs),
        split_commits_per_sec: args.split_commits_per_sec,
        split_window: Duration::from_secs(args.split_window_secs),
        ..EngineConfig::default()
    };
    if let Some(mb) = args.cache_mb {
        config.cache_bytes = mb << 20;
    }
    config.set_log_retention(Duration::from_secs(args.stream_retention_hours * 3600));
    let cache_mb = config.cache_bytes >> 20;
    let mut prices = strata_console::Prices::default();
    for spec in &args.prices {
        prices.set(spec)?;
    }
    // Store requests are counted per operation for the console and /metrics.
    let opened = strata_store::open_store(&url)
        .await
        .map_err(|e| e.to_string())?;
    let (counted, counter) = strata_store::counting::counting(Arc::clone(&opened.store));
    let opened = strata_store::OpenedStore {
        store: counted,
        ..opened
    };
    // (open_store has just run the atomic-create probe.)
    let engine = Arc::new(Engine::with_opened_unchecked(opened, config));
    let mut console = strata_console::Console::new(Arc::clone(&engine), counter, prices);
    let regions = regions(&args.store, engine.config()).await?;
    if !regions.is_empty() {
        let names: Vec<&str> = regions.keys().map(String::as_str).collect();
        println!(
            "strata: region {}; global tables may replicate to {} (every {} ms)",
            args.store.region,
            names.join(", "),
            args.replicate_interval_ms
        );
        let replicator = Arc::new(Replicator::new(Arc::clone(&engine), regions.clone()));
        console = console.with_replicator(Arc::clone(&replicator));
        tokio::spawn(replicate_loop(
            replicator,
            Duration::from_millis(args.replicate_interval_ms),
        ));
    }
    let buckets = Buckets::parse(&args.export_buckets.join(","))?;
    let jobs_engine = Arc::clone(&engine);
    let runner: strata_api::JobRunner = Arc::new(move |job| {
        let (engine, buckets) = (Arc::clone(&jobs_engine), buckets.clone());
        if let Some(bucket) = job["description"]["S3Bucket"].as_str() {
            if let Err(e) = buckets.check(bucket) {
                return Box::pin(async move { Err(e) });
            }
        }
        tokio::spawn(async move {
            match strata_export::jobs::run(&engine, &job, &buckets, Arc::new(())).await {
                Ok(_) => tracing::info!(kind = %job["kind"], "job done"),
                Err(e) => tracing::error!(kind = %job["kind"], error = %e, "job failed"),
            }
        });
        Box::pin(async { Ok(()) })
    });
    let mut api = Api::new(Arc::clone(&engine), args.store.region.clone())
        .with_regions(regions)
        .with_jobs(runner)
        .with_max_in_flight(args.max_in_flight as usize)
        .with_request_memory(args.request_memory_mb << 20);
    if let Some(path) = &args.auth {
        let users = strata_api::auth::Users::load(&path.to_string_lossy())
            .map_err(|e| format!("--auth: {e}"))?;
        println!(
            "strata: requests must be SigV4-signed by one of the {} users of {}",
            users.len(),
            path.display()
        );
        let users = Arc::new(users);
        api = api.with_auth(Arc::clone(&users));
        console = console.with_auth(users);
    }
    let api = Arc::new(api);
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::Tls::load(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| format!("bad address {}:{}: {e}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tokio::spawn(maintenance(
        Arc::clone(&engine),
        Duration::from_secs(args.maintenance_secs),
    ));
    tokio::spawn(strata_engine::index::follower::follow_forever(Arc::clone(
        &engine,
    )));
    println!("strata: DynamoDB API on {scheme}://{addr} (store: {url}, cache {cache_mb} MiB, eventual reads at most {} ms stale)", args.staleness_ms);
    println!("strata: try  aws dynamodb list-tables --endpoint-url {scheme}://{addr}");
    println!("strata: console on {scheme}://{addr}/console (loopback connections only), metrics on {scheme}://{addr}/metrics");
    if args.auth.is_none() && !addr.ip().is_loopback() {
        println!("strata: WARNING: no --auth, and listening on {addr}: anyone who can reach it can read, write and delete every table");
    }
    let app = strata_console::router(strata_api::http::router(api), Arc::new(console));
    let limits = server::Limits {
        max_connections: args.max_connections as usize,
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        write_timeout: Duration::from_secs(30),
    };
    server::serve(listener, app, limits, tls, async {
        let _ = tokio::signal::ctrl_c().await;
        println!("strata: shutting down (every acknowledged write is already durable)");
    })
    .await;
    Ok(())
}

/// Replicates every `interval` until the process ends.
async fn replicate_loop(replicator: Arc<Replicator>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match replicator.run_once().await {
            Ok(r) if r.sent > 0 => {
                tracing::debug!(sent = r.sent, applied = r.applied, "replicated")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "replication pass failed; retrying"),
        }
    }
}

async fn replicate(args: ReplicateArgs) -> Result<(), String> {
    let url = store_url(&args.store)?;
    let config = EngineConfig {
        region: args.store.region.clone(),
        ..EngineConfig::from_env()
    };
    let engine = Arc::new(
        Engine::open(&url, config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let regions = regions(&args.store, engine.config()).await?;
    if regions.is_empty() {
        return Err(
            "no other region configured: pass --replica REGION=URL (or STRATA_REGIONS)".into(),
        );
    }
    let replicator = Replicator::new(engine, regions);
    if args.once {
        let r = replicator.run_once().await.map_err(|e| e.to_string())?;
        println!(
            "strata: replicated {} versions from {} segments ({} applied, {} partitions backfilled)",
            r.sent, r.segments, r.applied, r.backfills
        );
        return Ok(());
    }
    println!(
        "strata: replicating region {} every {} ms (Ctrl-C stops)",
        args.store.region, args.interval_ms
    );
    tokio::select! {
        _ = replicate_loop(Arc::new(replicator), Duration::from_millis(args.interval_ms)) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// A moment from RFC 3339 or epoch seconds, in µs; now when absent.
fn moment(text: Option<&str>) -> Result<u64, String> {
    let Some(t) = text else {
        return Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or_default());
    };
    let micros = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => (secs * 1e6).round() as u64,
        Ok(_) => return Err(format!("bad time {t:?}: not a moment")),
        Err(_) => humantime::parse_rfc3339_weak(t.trim_end_matches('Z'))
            .map_err(|e| format!("bad time {t:?}: {e} (use RFC 3339 or epoch seconds)"))
            .and_then(|st| {
                st.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_micros() as u64)
                    .map_err(|e| e.to_string())
            })?,
    };
    if micros > moment(None)? {
        return Err(format!("bad time {t:?}: it is in the future"));
    }
    Ok(micros)
}

pub(crate) async fn open_engine(store: &StoreArgs) -> Result<Arc<Engine>, String> {
    let url = store_url(store)?;
    let config = EngineConfig {
        region: store.region.clone(),
        auto_compact: false,
        ..EngineConfig::from_env()
    };
    Ok(Arc::new(
        Engine::open(&url, config)
            .await
            .map_err(|e| e.to_string())?,
    ))
}

/// An indicatif bar fed by the exporter or the importer.
#[derive(Clone)]
pub(crate) struct Bar(pub(crate) indicatif::ProgressBar);

impl Bar {
    /// A bar showing `msg`, then the bar, then `counts` (an indicatif
    /// template: items or bytes, rate, time left).
    pub(crate) fn new(counts: &str, msg: String) -> Result<Bar, String> {
        let style = indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {{msg}} [{{bar:40}}] {counts}"
        ))
        .map_err(|e| e.to_string())?
        .progress_chars("=> ");
        let bar = indicatif::ProgressBar::new(0).with_style(style);
        bar.set_message(msg);
        Ok(Bar(bar))
    }
}

impl strata_export::Progress for Bar {
    fn total(&self, rows: u64) {
        self.0.set_length(rows);
    }
    fn advance(&self, rows: u64) {
        self.0.inc(rows);
    }
}

async fn export_cmd(args: ExportArgs) -> Result<(), String> {
    use strata_export::{export, Destination, ExportJob, ExportKind, Format};
    let engine = open_engine(&args.store).await?;
    let at = moment(args.time.as_deref())?;
    let format = match args.format.as_str() {
        "parquet" => Format::Parquet,
        "dynamodb-json" | "json" => Format::DynamoDbJson,
        other => {
            return Err(format!(
                "unknown format {other:?}: parquet or dynamodb-json"
            ))
        }
    };
    let kind = match &args.from {
        Some(from) if moment(Some(from))? >= at => {
            return Err("--from must be before --time".into())
        }
        Some(from) => ExportKind::Incremental {
            from_micros: moment(Some(from))?,
            to_micros: at,
            with_old_images: !args.new_image_only,
        },
        None => ExportKind::Full { at_micros: at },
    };
    let dest_url = match (&args.to_dir, &args.dest) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let abs = std::fs::canonicalize(dir).map_err(|e| e.to_string())?;
            format!("file://{}", abs.display())
        }
        (None, Some(url)) => url.clone(),
        (None, None) => return Err("say where to: --to-dir DIR or --dest URL".into()),
    };
    let opened = strata_store::open_unchecked(&dest_url).map_err(|e| e.to_string())?;
    let id = format!(
        "{:013}-cli",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    );
    let dest = Destination {
        store: opened.store,
        dir: strata_export::jobs::export_dir("", &id),
        bucket: dest_url.clone(),
        prefix: String::new(),
        export_arn: format!("strata:export/{}/{id}", args.table),
        table_arn: format!("strata:table/{}", args.table),
        export_id: id,
    };
    let bar = Bar::new(
        "{pos}/{len} items ({per_sec}, {eta} left)",
        format!("exporting {}", args.table),
    )?;
    let progress = Arc::new(bar.clone());
    let start = std::time::Instant::now();
    let job = ExportJob {
        table: args.table.clone(),
        format,
        kind,
    };
    let out = export(&engine, &job, &dest, progress)
        .await
        .map_err(|e| e.to_string())?;
    bar.0.finish_and_clear();
    println!(
        "strata: exported {} items ({} files, {:.1} MB) in {:.2} s to {dest_url}/{}",
        out.items,
        out.files.len(),
        out.bytes as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        dest.dir
    );
    Ok(())
}

async fn restore_cmd(args: RestoreArgs) -> Result<(), String> {
    let engine = open_engine(&args.store).await?;
    let at = moment(args.time.as_deref())?;
    let source = engine
        .describe_table(&args.table)
        .await
        .map_err(|e| e.to_string())?;
    engine
        .create_table(strata_engine::TableSpec {
            name: args.target.clone(),
            key_schema: source.key_schema.clone(),
            partitions: Some(source.partitions),
            keep_old_images: false,
            replicas: Vec::new(),
            meta: serde_json::json!({
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": source.meta.get("AttributeDefinitions"),
            }),
            indexes: Vec::new(),
            commit_window_ms: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    let start = std::time::Instant::now();
    let items = engine
        .restore_into(&args.table, &args.target, at)
        .await
        .map_err(|e| e.to_string())?;
    engine
        .restore_indexes(&args.target, &source.indexes)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "strata: restored {items} items of {} into {} in {:.2} s",
        args.table,
        args.target,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Compacts and garbage-collects every table every `every`, so quiet tables
/// get folded too (busy ones compact by threshold as they are written), and
/// their item counts are current; deletes expired items (time to live).
async fn maintenance(engine: Arc<Engine>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    let mut last = Vec::new();
    loop {
        tick.tick().await;
        let stats = engine.cache_stats();
        if stats != last {
            for s in &stats {
                tracing::info!(
                    cache = s.name,
                    hits = s.hits,
                    misses = s.misses,
                    hit_ratio = format!("{:.3}", s.hit_ratio()),
                    evictions = s.evictions,
                    bytes = s.bytes,
                    capacity = s.capacity,
                    "cache"
                );
            }
            last = stats;
        }
        let Ok(tables) = engine.list_stored_tables().await else {
            continue;
        };
        for t in tables {
            match engine.expire(&t).await {
                Ok(r) if r.expired > 0 => {
                    tracing::info!(table = %t, expired = r.expired, deleted = r.deleted,
                        ssts_read = r.ssts_read, "time to live")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(table = %t, error = %e, "expiring items failed"),
            }
            if let Err(e) = engine.compact(&t).await {
                tracing::warn!(table = %t, error = %e, "background compaction failed");
            }
            if let Err(e) = engine.gc(&t).await {
                tracing::warn!(table = %t, error = %e, "background GC failed");
            }
        }
        if let Err(e) = engine.sweep_dead_incarnations().await {
            tracing::warn!(error = %e, "sweeping deleted tables' data failed");
        }
        if let Err(e) = engine.collect_decisions().await {
            tracing::warn!(error = %e, "collecting transactions' decisions failed");
        }
    }
}

// See `strata_engine::allocator`: glibc's per-thread arenas kept hundreds
// of MB of freed compaction buffers.
#[global_allocator]
static ALLOC: strata_engine::allocator::Allocator = strata_engine::allocator::Allocator;

#[tokio::main]
async fn main() {
    strata_engine::allocator::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,strata_cli=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Replicate(args) => replicate(args).await,
        Command::Export(args) => export_cmd(args).await,
        Command::Restore(args) => restore_cmd(args).await,
        Command::Import(args) => import::import_cmd(args).await,
        Command::Rekey(args) => rekey::rekey_cmd(args).await,
        // Its own runtime, in virtual time, on a thread of its own.
        Command::Cost(args) => std::thread::spawn(move || cost::run(args))
            .join()
            .unwrap_or_else(|_| Err("the cost model failed".into())),
    };
    if let Err(e) = result {
        eprintln!("strata: {e}");
        std::process::exit(1);
    }
}

//! `strata`: the local DynamoDB-compatible server and tools.
//!
//!     strata serve                       # http://127.0.0.1:8000, data in ./strata-data
//!     strata serve --store s3://bucket/prefix --port 8001
//!     strata serve --region us-east-1 --replica eu-west-1=file:///srv/eu   # global tables
//!     strata replicate --once --region us-east-1 --replica eu-west-1=…

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use strata_api::Api;
use strata_engine::replication::{open_regions, parse_regions, Regions, Replicator};
use strata_engine::{Engine, EngineConfig};

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
}

#[derive(clap::Args)]
struct StoreArgs {
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
    /// Partitions for new tables.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// How stale an eventually consistent read may be, in milliseconds (DynamoDB's usual lag is about a second).
    #[arg(long, default_value_t = 1000, env = "STRATA_STALENESS_MS")]
    staleness_ms: u64,
    /// Memory for the read caches in MiB (default: 10% of the machine's memory).
    #[arg(long, env = "STRATA_CACHE_MB")]
    cache_mb: Option<u64>,
}

fn store_url(args: &StoreArgs) -> Result<String, String> {
    if let Some(url) = &args.store {
        return Ok(url.clone());
    }
    std::fs::create_dir_all(&args.data)
        .map_err(|e| format!("cannot create data directory {}: {e}", args.data.display()))?;
    let abs = std::fs::canonicalize(&args.data)
        .map_err(|e| format!("cannot resolve {}: {e}", args.data.display()))?;
    Ok(format!("file://{}", abs.display()))
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
        ..EngineConfig::default()
    };
    if let Some(mb) = args.cache_mb {
        config.cache_bytes = mb << 20;
    }
    config.set_log_retention(Duration::from_secs(args.stream_retention_hours * 3600));
    let cache_mb = config.cache_bytes >> 20;
    let engine = Arc::new(
        Engine::open(&url, config)
            .await
            .map_err(|e| e.to_string())?,
    );
    let regions = regions(&args.store, engine.config()).await?;
    if !regions.is_empty() {
        let names: Vec<&str> = regions.keys().map(String::as_str).collect();
        println!(
            "strata: region {}; global tables may replicate to {} (every {} ms)",
            args.store.region,
            names.join(", "),
            args.replicate_interval_ms
        );
        let replicator = Replicator::new(Arc::clone(&engine), regions.clone());
        tokio::spawn(replicate_loop(
            replicator,
            Duration::from_millis(args.replicate_interval_ms),
        ));
    }
    let api =
        Arc::new(Api::new(Arc::clone(&engine), args.store.region.clone()).with_regions(regions));
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| format!("bad address {}:{}: {e}", args.host, args.port))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tokio::spawn(maintenance(Arc::clone(&engine)));
    println!("strata: DynamoDB API on http://{addr} (store: {url}, cache {cache_mb} MiB, eventual reads at most {} ms stale)", args.staleness_ms);
    println!("strata: try  aws dynamodb list-tables --endpoint-url http://{addr}");
    axum::serve(listener, strata_api::http::router(api))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            println!("strata: shutting down (every acknowledged write is already durable)");
        })
        .await
        .map_err(|e| e.to_string())
}

/// Replicates every `interval` until the process ends.
async fn replicate_loop(replicator: Replicator, interval: Duration) {
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
        _ = replicate_loop(replicator, Duration::from_millis(args.interval_ms)) => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Compacts and garbage-collects every table now and then, so quiet tables
/// get folded too (busy ones compact by threshold as they are written).
async fn maintenance(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
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
        let Ok(tables) = engine.list_tables().await else {
            continue;
        };
        for t in tables {
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
    }
}

#[tokio::main]
async fn main() {
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
    };
    if let Err(e) = result {
        eprintln!("strata: {e}");
        std::process::exit(1);
    }
}

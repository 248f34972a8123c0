//! `strata cost`: what a workload costs per month on Strata, line by line,
//! next to DynamoDB on-demand and provisioned.
//!
//! The request counts are measured, not assumed: the workload runs, scaled
//! down, on engines over counted in-memory stores (one per storage tier)
//! with S3-like latency, in virtual time (tokio's paused clock, so a
//! simulated minute takes milliseconds; the engine's own clock is the real
//! one, so runs differ by about a percent).
//! Writes arrive as a Poisson process at one partition's share of the rate,
//! through as many engines as the deployment has (`serve` VMs behind a load
//! balancer, or one Lambda instance per concurrent request); reads go to a
//! compacted table with the cache scaled to the table as in production. The
//! prices are one dated table below, each overridable with `--price`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::memory::InMemory;
use object_store::ObjectStore;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_engine::{
    Consistency, Engine, EngineConfig, ItemKey, KeyAttribute, KeySchema, KeyType, KeyValue,
    TableSpec, Value, WriteOp, WriteRequest,
};
use strata_store::counting::{counting, RequestCounter, RequestCounts};
use strata_store::latency::{with_latency, LatencyProfile};
use strata_store::tiered::TieredStore;

pub use strata_console::prices::{Prices, PRICES_AS_OF};

/// Where a tier's objects live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Class {
    Standard,
    Express,
}

impl Class {
    fn latency(self) -> LatencyProfile {
        match self {
            Class::Standard => LatencyProfile::s3_like(),
            Class::Express => LatencyProfile::s3_express_like(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Class::Standard => "S3 Standard",
            Class::Express => "S3 Express",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Class::Standard => "s3",
            Class::Express => "express",
        }
    }
}

/// How Strata is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Deployment {
    /// The API function behind an API Gateway HTTP API.
    LambdaHttpApi,
    /// The API function behind a Lambda function URL.
    LambdaFunctionUrl,
    /// `strata serve` on --vms VMs (behind a load balancer when more than one).
    Serve,
}

#[derive(clap::Args, Debug, Clone)]
pub struct CostArgs {
    /// Table size in GB.
    #[arg(long, default_value_t = 100.0)]
    size_gb: f64,
    /// Writes per second (PutItem of one item).
    #[arg(long, default_value_t = 100.0)]
    writes_per_sec: f64,
    /// Reads per second (GetItem of one item).
    #[arg(long, default_value_t = 1000.0)]
    reads_per_sec: f64,
    /// Item size in KB.
    #[arg(long, default_value_t = 1.0)]
    item_kb: f64,
    /// Strongly consistent reads (default: eventually consistent).
    #[arg(long)]
    strong: bool,
    /// Reads go uniformly to this much of the table (GB; default: all of it).
    #[arg(long)]
    hot_set_gb: Option<f64>,
    /// Deployments to price (repeat; default: all three).
    #[arg(long = "deployment", value_enum)]
    deployments: Vec<Deployment>,
    /// VMs running `strata serve`.
    #[arg(long, default_value_t = 2)]
    vms: u32,
    /// Read cache per VM in GB (serve).
    #[arg(long, default_value_t = 4.0)]
    cache_gb: f64,
    /// Memory of the API function in MB (40% of it is read cache).
    #[arg(long, default_value_t = 1024)]
    lambda_memory_mb: u32,
    /// Commit window of `strata serve` in ms (Lambda instances serve one
    /// request at a time: a window there only waits).
    #[arg(long, default_value_t = 20)]
    commit_window_ms: u64,
    /// Where the log lives.
    #[arg(long, value_enum, default_value = "express")]
    log: Class,
    /// Where SSTs live.
    #[arg(long, value_enum, default_value = "standard")]
    runs: Class,
    /// Hours of log kept (streams, PITR's recent past).
    #[arg(long, default_value_t = 24.0)]
    log_retention_hours: f64,
    /// Override a price: NAME=VALUE (see the table printed with --prices).
    #[arg(long = "price", value_name = "NAME=VALUE")]
    prices: Vec<String>,
    /// Print the price table and exit.
    #[arg(long = "prices")]
    show_prices: bool,
}

const MONTH_SECS: f64 = 30.0 * 86_400.0;

/// The simulated table.
const TABLE: &str = "workload";

/// Requests per operation, by storage class.
#[derive(Debug, Clone, Copy, Default)]
struct PerOp {
    standard: [f64; 2], // [PUT+LIST, GET+HEAD]
    express: [f64; 2],
    latency_ms: f64,
}

impl PerOp {
    fn add(&mut self, class: Class, c: RequestCounts, n: f64) {
        let slot = match class {
            Class::Standard => &mut self.standard,
            Class::Express => &mut self.express,
        };
        slot[0] += (c.put + c.list) as f64 / n;
        slot[1] += (c.get + c.head) as f64 / n;
    }
}

/// Counted, latency-injected memory stores, one per tier.
struct Tiers {
    store: Arc<dyn ObjectStore>,
    counters: Vec<(Class, Arc<RequestCounter>)>,
}

impl Tiers {
    fn new(log: Class, runs: Class) -> Self {
        let mut counters = Vec::new();
        let mut tier = |class: Class| -> Arc<dyn ObjectStore> {
            let (counted, counter) = counting(Arc::new(InMemory::new()));
            counters.push((class, counter));
            with_latency(counted, class.latency()).0
        };
        let (main, log, runs) = (tier(Class::Standard), tier(log), tier(runs));
        let store = Arc::new(TieredStore::new(main, Some(log), Some(runs)));
        Self { store, counters }
    }

    fn snapshot(&self) -> Vec<RequestCounts> {
        self.counters.iter().map(|(_, c)| c.snapshot()).collect()
    }

    fn per_op(&self, before: &[RequestCounts], n: f64) -> PerOp {
        let mut out = PerOp::default();
        for ((class, c), b) in self.counters.iter().zip(before) {
            out.add(*class, c.snapshot() - *b, n);
        }
        out
    }
}

fn schema() -> TableSpec {
    TableSpec {
        name: TABLE.into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: None,
        },
        partitions: Some(1),
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    }
}

fn key(i: u64) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("k{i:08}")),
        range: None,
    }
}

fn put(i: u64, bytes: usize) -> WriteRequest {
    let item = [
        ("pk".to_string(), Value::S(format!("k{i:08}"))),
        ("v".to_string(), Value::S("x".repeat(bytes))),
    ]
    .into_iter()
    .collect();
    WriteRequest::single(WriteOp::put(key(i), item))
}

fn config(window_ms: u64, cache_bytes: u64) -> EngineConfig {
    EngineConfig {
        default_partitions: 1,
        commit_window: Duration::from_millis(window_ms),
        cache_bytes,
        ..EngineConfig::default()
    }
}

/// Partitions a table of this size has: the default 8, split at 10 GB.
fn partitions(size_gb: f64) -> f64 {
    (size_gb / 10.0).ceil().max(8.0)
}

/// One partition's writes: Poisson arrivals at its share of the rate,
/// spread over the deployment's engines.
async fn measure_writes(a: &CostArgs, d: Deployment) -> PerOp {
    let tiers = Tiers::new(a.log, a.runs);
    let rate = a.writes_per_sec / partitions(a.size_gb);
    let lambda = d != Deployment::Serve;
    let window = if lambda { 0 } else { a.commit_window_ms };
    let new_engine = || {
        Arc::new(Engine::with_store_unchecked(
            Arc::clone(&tiers.store),
            "cost",
            config(window, 64 << 20),
        ))
    };
    let first = new_engine();
    first.create_table(schema()).await.expect("memory store");
    // serve: a fixed set of engines taking concurrent requests; Lambda: an
    // idle instance per request, a new one when all are busy.
    let fixed: Vec<Arc<Engine>> = if lambda {
        Vec::new()
    } else {
        std::iter::once(first.clone())
            .chain((1..a.vms.max(1)).map(|_| new_engine()))
            .collect()
    };
    let idle = Arc::new(Mutex::new(vec![first]));
    let bytes = (a.item_kb * 1000.0) as usize;
    let n = 400u64;
    let mut rng = SmallRng::seed_from_u64(7);
    let before = tiers.snapshot();
    let mut tasks = Vec::new();
    // Arrival times on one clock (the timer ticks in whole ms).
    let (start, mut due) = (tokio::time::Instant::now(), 0.0);
    for i in 0..n {
        due += -(1.0 - rng.random::<f64>()).ln() / rate;
        tokio::time::sleep_until(start + Duration::from_secs_f64(due)).await;
        let req = put(rng.random_range(0..100_000), bytes);
        let engine = if lambda {
            let got = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            got.unwrap_or_else(new_engine)
        } else {
            Arc::clone(&fixed[i as usize % fixed.len()])
        };
        let idle = Arc::clone(&idle);
        tasks.push(tokio::spawn(async move {
            let t = tokio::time::Instant::now();
            engine.write(TABLE, req).await.expect("write");
            let took = t.elapsed();
            if lambda {
                idle.lock().unwrap_or_else(|p| p.into_inner()).push(engine);
            }
            took
        }));
    }
    let mut total = Duration::ZERO;
    for t in tasks {
        total += t.await.expect("write task");
    }
    let mut out = tiers.per_op(&before, n as f64);
    out.latency_ms = total.as_secs_f64() * 1e3 / n as f64;
    out
}

/// Reads of a compacted table through a cache scaled as in production.
async fn measure_reads(a: &CostArgs, cache_gb: f64) -> PerOp {
    let tiers = Tiers::new(a.log, a.runs);
    let bytes = (a.item_kb * 1000.0) as usize;
    let items = 4_000u64;
    let loader = Engine::with_store_unchecked(Arc::clone(&tiers.store), "load", config(0, 0));
    loader.create_table(schema()).await.expect("memory store");
    for chunk in (0..items).collect::<Vec<_>>().chunks(25) {
        let ops = chunk
            .iter()
            .flat_map(|i| put(*i, bytes).ops)
            .collect::<Vec<_>>();
        loader
            .write(TABLE, WriteRequest { ops, token: None })
            .await
            .expect("load");
    }
    loader.compact(TABLE).await.expect("compact");
    let hot = a.hot_set_gb.unwrap_or(a.size_gb).min(a.size_gb);
    // The cache as large relative to the hot set as in production (a cache
    // beyond a few times the data only holds empty room).
    let share = (cache_gb / hot).min(4.0);
    let cache = ((items as f64 * bytes as f64 * 1.2 * share) as u64).max(64 << 10);
    let reader = Engine::with_store_unchecked(Arc::clone(&tiers.store), "read", config(0, cache));
    let consistency = if a.strong {
        Consistency::Strong
    } else {
        Consistency::Eventual
    };
    let mut rng = SmallRng::seed_from_u64(11);
    for _ in 0..2 * items {
        let k = key(rng.random_range(0..items));
        reader.get(TABLE, &k, consistency).await.expect("read");
    }
    let n = 2_000u64;
    let before = tiers.snapshot();
    let gap = Duration::from_secs_f64(1.0 / a.reads_per_sec.max(1.0));
    let mut busy = Duration::ZERO;
    for _ in 0..n {
        // Reads at the workload's pace: an eventually consistent read may
        // reuse what a read within the staleness bound saw, as in service.
        tokio::time::sleep(gap).await;
        let k = key(rng.random_range(0..items));
        let t = tokio::time::Instant::now();
        reader.get(TABLE, &k, consistency).await.expect("read");
        busy += t.elapsed();
    }
    let mut out = tiers.per_op(&before, n as f64);
    out.latency_ms = busy.as_secs_f64() * 1e3 / n as f64;
    out
}

/// One priced line.
struct Line(String, f64);

fn strata_lines(a: &CostArgs, p: &Prices, d: Deployment, w: &PerOp, r: &PerOp) -> Vec<Line> {
    let (writes, reads) = (a.writes_per_sec * MONTH_SECS, a.reads_per_sec * MONTH_SECS);
    let mut lines = Vec::new();
    for (class, idx, kind) in [
        (Class::Standard, 0, "PUT/LIST"),
        (Class::Standard, 1, "GET/HEAD"),
        (Class::Express, 0, "PUT/LIST"),
        (Class::Express, 1, "GET/HEAD"),
    ] {
        let per = |o: &PerOp| match class {
            Class::Standard => o.standard[idx],
            Class::Express => o.express[idx],
        };
        let n = writes * per(w) + reads * per(r);
        if n > 0.0 {
            let price = p.get(&format!(
                "{}_{}_per_million",
                class.prefix(),
                if idx == 0 { "put" } else { "get" }
            ));
            let name = format!(
                "{} {kind}: {:.2} per write, {:.3} per read",
                class.label(),
                per(w),
                per(r)
            );
            lines.push(Line(name, n / 1e6 * price));
        }
    }
    let gb_price = |c: Class| p.get(&format!("{}_gb_month", c.prefix()));
    lines.push(Line(
        format!("storage: {} GB of SSTs ({:?})", a.size_gb, a.runs),
        a.size_gb * gb_price(a.runs),
    ));
    let log_gb = a.writes_per_sec * a.item_kb / 1e6 * a.log_retention_hours * 3600.0;
    lines.push(Line(
        format!(
            "storage: {log_gb:.1} GB of log ({:?}, {} h)",
            a.log, a.log_retention_hours
        ),
        log_gb * gb_price(a.log),
    ));
    match d {
        Deployment::Serve => {
            lines.push(Line(
                format!("{} VM(s)", a.vms),
                f64::from(a.vms) * p.get("vm_month"),
            ));
            if a.vms > 1 {
                lines.push(Line("load balancer".into(), p.get("lb_month")));
            }
        }
        Deployment::LambdaHttpApi | Deployment::LambdaFunctionUrl => {
            let requests = writes + reads;
            lines.push(Line(
                "Lambda requests".into(),
                requests / 1e6 * p.get("lambda_requests_per_million"),
            ));
            // Billed per ms; 1 ms of CPU on top of the store's latency.
            let secs = writes * (w.latency_ms + 1.0).ceil() / 1e3
                + reads * (r.latency_ms + 1.0).ceil() / 1e3;
            let gb = f64::from(a.lambda_memory_mb) / 1024.0;
            lines.push(Line(
                format!(
                    "Lambda duration: {:.0} ms per write, {:.0} ms per read, {} MB",
                    (w.latency_ms + 1.0).ceil(),
                    (r.latency_ms + 1.0).ceil(),
                    a.lambda_memory_mb
                ),
                secs * gb * p.get("lambda_gb_second"),
            ));
            if d == Deployment::LambdaHttpApi {
                lines.push(Line(
                    "API Gateway HTTP API".into(),
                    requests / 1e6 * p.get("http_api_per_million"),
                ));
            }
        }
    }
    lines
}

fn dynamodb(a: &CostArgs, p: &Prices) -> (Vec<Line>, Vec<Line>) {
    let (writes, reads) = (a.writes_per_sec * MONTH_SECS, a.reads_per_sec * MONTH_SECS);
    let wru = a.item_kb.ceil();
    let rru = (a.item_kb / 4.0).ceil() * if a.strong { 1.0 } else { 0.5 };
    let storage = Line(
        format!("storage: {} GB", a.size_gb),
        a.size_gb * p.get("ddb_gb_month"),
    );
    let hours = MONTH_SECS / 3600.0;
    let on_demand = vec![
        Line(
            format!("writes: {wru} WRU each"),
            writes * wru / 1e6 * p.get("ddb_write_per_million"),
        ),
        Line(
            format!("reads: {rru} RRU each"),
            reads * rru / 1e6 * p.get("ddb_read_per_million"),
        ),
        Line(storage.0.clone(), storage.1),
    ];
    let provisioned = vec![
        Line(
            format!("{:.0} WCU", a.writes_per_sec * wru),
            a.writes_per_sec * wru * hours * p.get("ddb_wcu_hour"),
        ),
        Line(
            format!("{:.0} RCU", a.reads_per_sec * rru),
            a.reads_per_sec * rru * hours * p.get("ddb_rcu_hour"),
        ),
        storage,
    ];
    (on_demand, provisioned)
}

fn print_block(title: &str, lines: &[Line]) -> f64 {
    let total: f64 = lines.iter().map(|l| l.1).sum();
    println!("{title}: ${total:.0} a month");
    for Line(name, dollars) in lines {
        println!("  {dollars:>10.2}  {name}");
    }
    println!();
    total
}

pub fn run(a: CostArgs) -> Result<(), String> {
    let mut prices = Prices::default();
    for spec in &a.prices {
        prices.set(spec)?;
    }
    if a.show_prices {
        print!("Prices ({PRICES_AS_OF}):\n{}", prices.table());
        return Ok(());
    }
    for (v, what) in [
        (a.size_gb, "--size-gb"),
        (a.item_kb, "--item-kb"),
        (a.writes_per_sec, "--writes-per-sec"),
        (a.reads_per_sec, "--reads-per-sec"),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{what} must be a positive number"));
        }
    }
    if a.item_kb > 400.0 {
        return Err("--item-kb: DynamoDB items are at most 400 KB".into());
    }
    // Beyond these the model has nothing to say (and virtual time overflows).
    for (v, max, what) in [
        (a.size_gb, 1e7, "--size-gb"),
        (a.writes_per_sec, 1e7, "--writes-per-sec"),
        (a.reads_per_sec, 1e7, "--reads-per-sec"),
    ] {
        if v > max {
            return Err(format!("{what} is at most {max}"));
        }
    }
    if a.writes_per_sec / partitions(a.size_gb) < 1e-3 {
        return Err("--writes-per-sec: too few writes per partition to simulate".into());
    }
    if a.vms == 0 {
        return Err("--vms must be at least 1".into());
    }
    if a.commit_window_ms > strata_engine::config::MAX_COMMIT_WINDOW_MS {
        return Err(format!(
            "--commit-window-ms is at most {}",
            strata_engine::config::MAX_COMMIT_WINDOW_MS
        ));
    }
    if !(a.log_retention_hours.is_finite() && a.log_retention_hours >= 0.0) {
        return Err("--log-retention-hours must be 0 or more".into());
    }
    for (v, what) in [
        (a.cache_gb, "--cache-gb"),
        (a.hot_set_gb.unwrap_or(1.0), "--hot-set-gb"),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{what} must be a positive number"));
        }
    }
    if a.lambda_memory_mb < 128 {
        return Err("--lambda-memory-mb is at least 128".into());
    }
    let deployments = if a.deployments.is_empty() {
        vec![
            Deployment::LambdaHttpApi,
            Deployment::LambdaFunctionUrl,
            Deployment::Serve,
        ]
    } else {
        a.deployments.clone()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    println!(
        "Workload: {} GB, {} writes/s, {} {} reads/s of {} KB items{}; a 30-day month; \
         log in S3 {:?}, SSTs in S3 {:?}.\n",
        a.size_gb,
        a.writes_per_sec,
        a.reads_per_sec,
        if a.strong { "strong" } else { "eventual" },
        a.item_kb,
        a.hot_set_gb
            .map(|h| format!(", reads over a {h} GB hot set"))
            .unwrap_or_default(),
        a.log,
        a.runs
    );
    let mut summary = Vec::new();
    for d in deployments {
        let (w, r, label) = rt.block_on(async {
            let w = measure_writes(&a, d).await;
            let (cache, label) = match d {
                Deployment::Serve => (
                    a.cache_gb,
                    format!(
                        "strata serve on {} VM(s), {} GB cache each, {} ms commit window",
                        a.vms, a.cache_gb, a.commit_window_ms
                    ),
                ),
                _ => (
                    0.4 * f64::from(a.lambda_memory_mb) / 1024.0,
                    format!(
                        "Lambda ({} MB) + {}",
                        a.lambda_memory_mb,
                        if d == Deployment::LambdaHttpApi {
                            "HTTP API"
                        } else {
                            "function URL"
                        }
                    ),
                ),
            };
            (w, measure_reads(&a, cache).await, label)
        });
        let total = print_block(&label, &strata_lines(&a, &prices, d, &w, &r));
        summary.push((label, total));
    }
    let (on_demand, provisioned) = dynamodb(&a, &prices);
    let od = print_block("DynamoDB on-demand", &on_demand);
    let pr = print_block("DynamoDB provisioned (at exactly the rate)", &provisioned);
    println!("| deployment | $ a month | vs DynamoDB on-demand |");
    println!("|---|---|---|");
    for (label, total) in summary {
        println!("| {label} | {total:.0} | {:.2}x |", total / od);
    }
    println!("| DynamoDB on-demand | {od:.0} | 1.00x |");
    println!("| DynamoDB provisioned | {pr:.0} | {:.2}x |", pr / od);
    println!("\nPrices: {PRICES_AS_OF} (strata cost --prices; override with --price NAME=VALUE).");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        cost: CostArgs,
    }

    fn args(extra: &[&str]) -> CostArgs {
        Cli::parse_from(std::iter::once("cost").chain(extra.iter().copied())).cost
    }

    fn total(lines: &[Line]) -> f64 {
        lines.iter().map(|l| l.1).sum()
    }

    #[test]
    fn dynamodb_prices_the_reference_workload_as_the_issue_does() {
        let (on_demand, provisioned) = dynamodb(&args(&[]), &Prices::default());
        assert_eq!(total(&on_demand).round(), 349.0);
        assert_eq!(total(&provisioned).round(), 119.0);
        let strong = dynamodb(&args(&["--strong"]), &Prices::default()).0;
        assert_eq!(strong[1].1.round(), 324.0, "a strong read is a whole RRU");
    }

    #[test]
    fn prices_can_be_overridden_by_name_only() {
        let mut p = Prices::default();
        p.set("s3_put_per_million=4.5").unwrap();
        assert_eq!(p.get("s3_put_per_million"), 4.5);
        for bad in ["s3_put=1", "s3_put_per_million", "s3_put_per_million=cheap"] {
            assert!(p.set(bad).is_err(), "{bad}");
        }
        for bad in [
            &["--size-gb", "0"][..],
            &["--item-kb", "401"],
            &["--size-gb", "1e21"],
            &["--writes-per-sec", "1e-9"],
            &["--vms", "0"],
            &["--commit-window-ms", "5000"],
            &["--log-retention-hours=-1"],
            &["--hot-set-gb", "0"],
        ] {
            assert!(run(args(bad)).is_err(), "{bad:?}");
        }
    }

    /// Measured, not assumed: one server batches a partition's writes
    /// (fewer PUTs than writes with a window), a second server on the same
    /// partition loses appends to the first (more), and a Lambda instance
    /// takes one request at a time (one PUT per write at least).
    #[test]
    fn write_costs_are_measured_per_deployment() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        let puts = |extra: &[&str], d: Deployment| {
            let a = args(extra);
            let w = rt.block_on(measure_writes(&a, d));
            w.express[0] + w.standard[0]
        };
        let one = puts(
            &["--vms", "1", "--commit-window-ms", "100"],
            Deployment::Serve,
        );
        let two = puts(
            &["--vms", "2", "--commit-window-ms", "100"],
            Deployment::Serve,
        );
        let lambda = puts(&[], Deployment::LambdaFunctionUrl);
        assert!(one < 0.8, "one server, 100 ms window: {one} PUTs per write");
        assert!(two > one, "two servers contend: {two} vs {one}");
        assert!(lambda >= 1.0, "Lambda: {lambda} PUTs per write");
    }
}

//! Load generator: the same workload against several DynamoDB endpoints,
//! through aws-sdk-dynamodb, printed as one table.
//!
//!     strata-loadgen --target strata=http://127.0.0.1:8001 \
//!                    --target ddblocal=http://127.0.0.1:8000 --concurrency 16
//!
//! Workload per target: create a table, load `--pks` × 100 items (~200 B),
//! then PutItem, GetItem (strong), GetItem (eventual), Query of 100 items and
//! a full Scan, each with `--concurrency` clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as AV, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// name=url; give one per endpoint to compare (the first is the baseline for ratios).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// Concurrent clients per operation.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Operations per point-operation phase.
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// Partition keys loaded (each with 100 sort keys).
    #[arg(long, default_value_t = 50)]
    pks: usize,
    /// Client: `raw` (pre-built JSON over keep-alive HTTP with a fixed SigV4-shaped header;
    /// little client CPU, so the servers are what is measured) or `sdk` (aws-sdk-dynamodb).
    #[arg(long, default_value = "raw")]
    client: String,
    /// Phases to run, comma-separated: put, get-strong, get-eventual, query, scan.
    #[arg(
        long,
        default_value = "put,get-strong,get-eventual,query,scan",
        value_delimiter = ','
    )]
    phases: Vec<String>,
}

const TABLE: &str = "loadgen";

fn item(pk: usize, sk: usize) -> HashMap<String, AV> {
    HashMap::from([
        ("pk".to_string(), AV::S(format!("user{pk:05}"))),
        ("sk".to_string(), AV::N(sk.to_string())),
        ("name".to_string(), AV::S(format!("name-{pk}-{sk}"))),
        ("payload".to_string(), AV::S("x".repeat(150))),
        ("count".to_string(), AV::N((pk * sk).to_string())),
    ])
}

fn key(pk: usize, sk: usize) -> HashMap<String, AV> {
    HashMap::from([
        ("pk".to_string(), AV::S(format!("user{pk:05}"))),
        ("sk".to_string(), AV::N(sk.to_string())),
    ])
}

async fn setup(c: &Client, pks: usize) {
    let _ = c.delete_table().table_name(TABLE).send().await;
    strata_sdk_tests::create_table(c, TABLE).await;
    let batches: Vec<Vec<WriteRequest>> = (0..pks * 100)
        .map(|i| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item(i / 100, i % 100)))
                        .build()
                        .unwrap(),
                )
                .build()
        })
        .collect::<Vec<_>>()
        .chunks(25)
        .map(<[WriteRequest]>::to_vec)
        .collect();
    futures::future::join_all(batches.into_iter().map(|b| {
        let c = c.clone();
        async move {
            let mut pending = b;
            while !pending.is_empty() {
                let out = c
                    .batch_write_item()
                    .request_items(TABLE, pending)
                    .send()
                    .await
                    .expect("load");
                pending = out
                    .unprocessed_items()
                    .and_then(|u| u.get(TABLE))
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }))
    .await;
}

struct Stats {
    ops: usize,
    secs: f64,
    lat: Vec<Duration>,
}

async fn phase<F, Fut>(concurrency: usize, ops: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    let tasks = (0..concurrency).map(|w| {
        let f = Arc::clone(&f);
        tokio::spawn(async move {
            let mut lat = Vec::new();
            for i in (w..ops).step_by(concurrency) {
                let t = Instant::now();
                f(i).await;
                lat.push(t.elapsed());
            }
            lat
        })
    });
    let mut lat: Vec<Duration> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("worker"))
        .collect();
    lat.sort();
    Stats {
        ops,
        secs: start.elapsed().as_secs_f64(),
        lat,
    }
}

impl Stats {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    fn pct(&self, p: f64) -> String {
        let d = self.lat[((self.lat.len() as f64 * p) as usize).min(self.lat.len() - 1)];
        format!("{:.2} ms", d.as_secs_f64() * 1000.0)
    }
}

/// How requests are sent: through the AWS SDK, or as raw HTTP.
#[derive(Clone)]
enum Driver {
    Sdk(Client),
    Raw {
        http: reqwest::Client,
        url: Arc<str>,
    },
}

/// Any credentials are accepted by Strata and DynamoDB Local; the header only has to parse.
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDLOADGEN/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date;x-amz-target, Signature=0000";

impl Driver {
    async fn raw(http: &reqwest::Client, url: &str, op: &str, body: String) -> serde_json::Value {
        let r = http
            .post(url)
            .header("X-Amz-Target", format!("DynamoDB_20120810.{op}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header("X-Amz-Date", "20260101T000000Z")
            .header("Authorization", AUTH)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        let bytes = r.bytes().await.expect("body");
        assert!(
            status.is_success(),
            "{op}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).expect("json")
    }

    async fn put(&self, pk: usize, sk: usize) {
        match self {
            Driver::Sdk(c) => {
                c.put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(pk, sk)))
                    .send()
                    .await
                    .expect("put");
            }
            Driver::Raw { http, url } => {
                let body = format!(
                    r#"{{"TableName":"{TABLE}","Item":{{"pk":{{"S":"user{pk:05}"}},"sk":{{"N":"{sk}"}},"name":{{"S":"name-{pk}-{sk}"}},"payload":{{"S":"{}"}},"count":{{"N":"{}"}}}}}}"#,
                    "x".repeat(150),
                    pk * sk
                );
                Self::raw(http, url, "PutItem", body).await;
            }
        }
    }

    async fn get(&self, pk: usize, sk: usize, strong: bool) {
        match self {
            Driver::Sdk(c) => {
                let r = c
                    .get_item()
                    .table_name(TABLE)
                    .set_key(Some(key(pk, sk)))
                    .consistent_read(strong)
                    .send()
                    .await
                    .expect("get");
                assert!(r.item().is_some());
            }
            Driver::Raw { http, url } => {
                let body = format!(
                    r#"{{"TableName":"{TABLE}","Key":{{"pk":{{"S":"user{pk:05}"}},"sk":{{"N":"{sk}"}}}},"ConsistentRead":{strong}}}"#
                );
                assert!(Self::raw(http, url, "GetItem", body)
                    .await
                    .get("Item")
                    .is_some());
            }
        }
    }

    async fn query100(&self, pk: usize) {
        let count = match self {
            Driver::Sdk(c) => c
                .query()
                .table_name(TABLE)
                .key_condition_expression("pk = :p AND sk < :hundred")
                .expression_attribute_values(":p", AV::S(format!("user{pk:05}")))
                .expression_attribute_values(":hundred", AV::N("100".into()))
                .send()
                .await
                .expect("query")
                .count() as i64,
            Driver::Raw { http, url } => {
                let body = format!(
                    r#"{{"TableName":"{TABLE}","KeyConditionExpression":"pk = :p AND sk < :hundred","ExpressionAttributeValues":{{":p":{{"S":"user{pk:05}"}},":hundred":{{"N":"100"}}}}}}"#
                );
                Self::raw(http, url, "Query", body).await["Count"]
                    .as_i64()
                    .unwrap_or(-1)
            }
        };
        assert_eq!(count, 100);
    }

    async fn scan_all(&self) -> usize {
        match self {
            Driver::Sdk(c) => {
                let pages = c
                    .scan()
                    .table_name(TABLE)
                    .into_paginator()
                    .send()
                    .collect::<Vec<_>>()
                    .await;
                pages
                    .into_iter()
                    .map(|p| p.expect("scan").count() as usize)
                    .sum()
            }
            Driver::Raw { http, url } => {
                let mut total = 0;
                let mut start: Option<serde_json::Value> = None;
                loop {
                    let mut body = serde_json::json!({ "TableName": TABLE });
                    if let Some(k) = start.take() {
                        body["ExclusiveStartKey"] = k;
                    }
                    let page = Self::raw(http, url, "Scan", body.to_string()).await;
                    total += page["Count"].as_u64().unwrap_or(0) as usize;
                    match page.get("LastEvaluatedKey") {
                        Some(k) => start = Some(k.clone()),
                        None => return total,
                    }
                }
            }
        }
    }
}

async fn run(c: Client, url: &str, args: &Args) -> Vec<(&'static str, Stats)> {
    let t = Instant::now();
    setup(&c, args.pks).await;
    eprintln!("loadgen: loaded in {:.1} s", t.elapsed().as_secs_f64());
    let driver = match args.client.as_str() {
        "sdk" => Driver::Sdk(c),
        _ => Driver::Raw {
            http: reqwest::Client::new(),
            url: Arc::from(url),
        },
    };
    let pks = args.pks;
    let n = args.ops;
    let cc = args.concurrency;
    let want = |p: &str| args.phases.iter().any(|x| x == p);
    let mut out = Vec::new();
    if want("put") {
        let d = driver.clone();
        let stats = phase(cc, n, move |i| {
            let d = d.clone();
            async move { d.put(i % pks, 1000 + i).await }
        })
        .await;
        out.push(("PutItem", stats));
    }
    for (name, strong, phase_name) in [
        ("GetItem strong", true, "get-strong"),
        ("GetItem eventual", false, "get-eventual"),
    ] {
        if !want(phase_name) {
            continue;
        }
        let d = driver.clone();
        let stats = phase(cc, n, move |i| {
            let d = d.clone();
            let j = i * 7919 % (pks * 100);
            async move { d.get(j / 100, j % 100, strong).await }
        })
        .await;
        out.push((name, stats));
    }
    if want("query") {
        let d = driver.clone();
        let stats = phase(cc, (n / 20).max(cc), move |i| {
            let d = d.clone();
            async move { d.query100(i % pks).await }
        })
        .await;
        out.push(("Query 100 items", stats));
    }
    if want("scan") {
        let d = driver.clone();
        let stats = phase(2, 4, move |_| {
            let d = d.clone();
            async move {
                assert!(d.scan_all().await >= pks * 100);
            }
        })
        .await;
        out.push(("Scan (full table)", stats));
    }
    out
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut results = Vec::new();
    for t in &args.targets {
        let (name, url) = t.split_once('=').expect("--target name=url");
        eprintln!(
            "loadgen: {name} at {url}: loading {} items, then {} ops per phase with {} clients",
            args.pks * 100,
            args.ops,
            args.concurrency
        );
        let c = strata_sdk_tests::client(url).await;
        results.push((name.to_string(), run(c, url, &args).await));
    }
    let mut header = "| operation |".to_string();
    let mut rule = "|---|".to_string();
    for (name, _) in &results {
        header += &format!(" {name} ops/s | {name} p50 | {name} p99 |");
        rule += "---:|---:|---:|";
    }
    if results.len() > 1 {
        header += &format!(" {} / {} |", results[0].0, results[1].0);
        rule += "---:|";
    }
    println!("{header}\n{rule}");
    for (i, (op, _)) in results[0].1.iter().enumerate() {
        let mut row = format!("| {op} |");
        for (_, stats) in &results {
            let s = &stats[i].1;
            row += &format!(" {:.0} | {} | {} |", s.rate(), s.pct(0.5), s.pct(0.99));
        }
        if results.len() > 1 {
            row += &format!(
                " {:.1}x |",
                results[0].1[i].1.rate() / results[1].1[i].1.rate()
            );
        }
        println!("{row}");
    }
    println!(
        "\n{} clients; items ~200 B; {} items loaded; PutItem/GetItem {} ops each.",
        args.concurrency,
        args.pks * 100,
        args.ops
    );
}

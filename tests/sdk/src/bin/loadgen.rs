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

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue as AV, BillingMode, KeySchemaElement, KeyType, PutRequest,
    ScalarAttributeType, WriteRequest,
};
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
    c.create_table()
        .table_name(TABLE)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
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

async fn run(c: Client, args: &Args) -> Vec<(&'static str, Stats)> {
    setup(&c, args.pks).await;
    let pks = args.pks;
    let n = args.ops;
    let cc = args.concurrency;
    let mut out = Vec::new();
    let c1 = c.clone();
    out.push((
        "PutItem",
        phase(cc, n, move |i| {
            let c = c1.clone();
            async move {
                c.put_item()
                    .table_name(TABLE)
                    .set_item(Some(item(i % pks, 1000 + i)))
                    .send()
                    .await
                    .expect("put");
            }
        })
        .await,
    ));
    for (name, strong) in [("GetItem strong", true), ("GetItem eventual", false)] {
        let c1 = c.clone();
        out.push((
            name,
            phase(cc, n, move |i| {
                let c = c1.clone();
                async move {
                    let j = i * 7919 % (pks * 100);
                    let r = c
                        .get_item()
                        .table_name(TABLE)
                        .set_key(Some(key(j / 100, j % 100)))
                        .consistent_read(strong)
                        .send()
                        .await
                        .expect("get");
                    assert!(r.item().is_some());
                }
            })
            .await,
        ));
    }
    let c1 = c.clone();
    out.push((
        "Query 100 items",
        phase(cc, (n / 20).max(cc), move |i| {
            let c = c1.clone();
            async move {
                let r = c
                    .query()
                    .table_name(TABLE)
                    .key_condition_expression("pk = :p AND sk < :hundred")
                    .expression_attribute_values(":p", AV::S(format!("user{:05}", i % pks)))
                    .expression_attribute_values(":hundred", AV::N("100".into()))
                    .send()
                    .await
                    .expect("query");
                assert_eq!(r.count(), 100);
            }
        })
        .await,
    ));
    let c1 = c.clone();
    out.push((
        "Scan (full table)",
        phase(2, 4, move |_| {
            let c = c1.clone();
            async move {
                let pages = c
                    .scan()
                    .table_name(TABLE)
                    .into_paginator()
                    .send()
                    .collect::<Vec<_>>()
                    .await;
                let total: i32 = pages.into_iter().map(|p| p.expect("scan").count()).sum();
                assert!(total >= (pks * 100) as i32);
            }
        })
        .await,
    ));
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
        results.push((name.to_string(), run(c, &args).await));
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

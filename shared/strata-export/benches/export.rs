//! Export and restore benchmark: a table of N items of about 200 bytes on the
//! local-filesystem store, exported to Parquet (and DynamoDB JSON) in a local
//! directory, then restored to a new table. Prints seconds, items/s and
//! peak memory. The table is loaded once; each export and the restore then
//! runs in a fresh process of this binary (as the exporter function would),
//! which reports its own peak RSS.
//!
//!     cargo bench -p strata-export --bench export            # 1,000,000 items
//!     STRATA_BENCH_ITEMS=100000 cargo bench -p strata-export --bench export

use std::sync::Arc;
use std::time::Instant;

use object_store::ObjectStore;
use strata_engine::*;
use strata_export::{export, Destination, ExportJob, ExportKind, Format};

const PARTITIONS: u32 = 8;

fn dir_store() -> (Arc<dyn ObjectStore>, String) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
        .keep();
    open_dir(&dir.display().to_string())
}

fn open_dir(dir: &str) -> (Arc<dyn ObjectStore>, String) {
    let url = format!("file://{dir}");
    (
        strata_store::open_unchecked(&url).expect("store").store,
        dir.to_string(),
    )
}

fn config() -> EngineConfig {
    EngineConfig {
        default_partitions: PARTITIONS,
        auto_compact: false,
        ..EngineConfig::default()
    }
}

/// One phase in this process: `export PARQUET|DYNAMODB_JSON DIR AT` or
/// `restore DIR AT`; prints a table row.
async fn phase(args: &[String]) {
    let (store, _) = open_dir(&args[1]);
    let at: u64 = args[2].parse().expect("time");
    // The exporter's engine: a cache big enough to keep the blocks pass 1 decoded for pass 2.
    let engine = Engine::with_store_unchecked(
        store,
        "bench",
        EngineConfig {
            cache_bytes: 512 << 20,
            ..config()
        },
    );
    let start = Instant::now();
    if args[0] == "restore" {
        let items = engine
            .restore_into("orders", "restored", at)
            .await
            .expect("restore");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "| restore | {items} | {secs:.2} | {:.0} | - | {:.0} |",
            items as f64 / secs,
            peak_mb()
        );
        return;
    }
    let format = if args[3] == "PARQUET" {
        Format::Parquet
    } else {
        Format::DynamoDbJson
    };
    let (dest_store, dest_dir) = dir_store();
    let dest = Destination {
        store: dest_store,
        dir: "exports/AWSDynamoDB/bench".into(),
        bucket: "local".into(),
        prefix: "exports".into(),
        export_arn: "arn:bench".into(),
        table_arn: "arn:table".into(),
        export_id: "bench".into(),
    };
    let job = ExportJob {
        table: "orders".into(),
        format,
        kind: ExportKind::Full { at_micros: at },
    };
    let out = export(&engine, &job, &dest, Arc::new(()))
        .await
        .expect("export");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "| export {} | {} | {secs:.2} | {:.0} | {:.1} | {:.0} |",
        format.name(),
        out.items,
        out.items as f64 / secs,
        out.bytes as f64 / 1e6,
        peak_mb()
    );
    let _ = std::fs::remove_dir_all(dest_dir);
}

fn item(i: usize) -> Item {
    Item::from([
        ("pk".to_string(), Value::S(format!("customer#{:07}", i / 4))),
        ("sk".to_string(), Value::N(Number::from_i64((i % 4) as i64))),
        ("name".to_string(), Value::S(format!("name-{i}"))),
        (
            "city".to_string(),
            Value::S(["Lisbon", "Oslo", "Lima", "Pune"][i % 4].into()),
        ),
        (
            "price".to_string(),
            Value::N(Number::parse(&format!("{}.{:02}", i % 1000, i % 100)).expect("number")),
        ),
        ("active".to_string(), Value::Bool(i % 3 == 0)),
        ("note".to_string(), Value::S("x".repeat(140))),
    ])
}

fn key(i: usize) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(format!("customer#{:07}", i / 4)),
        range: Some(KeyValue::N(Number::from_i64((i % 4) as i64))),
    }
}

fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("STRATA_BENCH_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "--phase")
        .skip(1)
        .collect();
    if !args.is_empty() {
        return phase(&args).await;
    }
    let (store, dir) = dir_store();
    let engine = Arc::new(Engine::with_store_unchecked(store, "bench", config()));
    let spec = |name: &str| TableSpec {
        name: name.into(),
        key_schema: KeySchema {
            hash: KeyAttribute {
                name: "pk".into(),
                key_type: KeyType::S,
            },
            range: Some(KeyAttribute {
                name: "sk".into(),
                key_type: KeyType::N,
            }),
        },
        partitions: None,
        keep_old_images: false,
        replicas: Vec::new(),
        meta: serde_json::Value::Null,
        indexes: Vec::new(),
        commit_window_ms: None,
    };
    engine.create_table(spec("orders")).await.expect("create");
    let load = Instant::now();
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let e = Arc::clone(&engine);
            tokio::spawn(async move {
                for i in (w..n).step_by(64) {
                    e.write(
                        "orders",
                        WriteRequest::single(WriteOp::put(key(i), item(i))),
                    )
                    .await
                    .expect("put");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    engine.compact("orders").await.expect("compact");
    let bytes: usize = (0..1000)
        .map(|i| strata_engine::value::item_size(&item(i)))
        .sum::<usize>()
        / 1000;
    println!(
        "loaded {n} items of ~{bytes} bytes in {:.1} s ({PARTITIONS} partitions, compacted)\n",
        load.elapsed().as_secs_f64()
    );
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros() as u64;
    engine.create_table(spec("restored")).await.expect("create");
    drop(engine);

    println!("| phase | items | seconds | items/s | output MB | peak RSS MB |");
    println!("|---|---:|---:|---:|---:|---:|");
    let me = std::env::current_exe().expect("exe");
    let at = at.to_string();
    for args in [
        vec!["--phase", "export", &dir, &at, "PARQUET"],
        vec!["--phase", "export", &dir, &at, "DYNAMODB_JSON"],
        vec!["--phase", "restore", &dir, &at],
    ] {
        let status = std::process::Command::new(&me)
            .args(&args)
            .status()
            .expect("phase");
        assert!(status.success(), "{args:?} failed");
    }
    // A million items take a few hundred MB: leave nothing behind.
    let _ = std::fs::remove_dir_all(&dir);
}

//! Import rate: 1,000,000 items of ~100 bytes as DynamoDB JSON (gzip, ten
//! files) and as CSV (plain, one file), imported into a new table on a
//! local directory (`strata_export::import`, as ImportTable and `strata
//! import` run it). Prints items/s, MB/s of input and the requests sent.
//!
//!     cargo bench -p strata-export --bench import
//!     STRATA_BENCH_IMPORT_ITEMS=200000 cargo bench -p strata-export --bench import

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use object_store::ObjectStore;
use strata_engine::value::{KeyAttribute, KeySchema, KeyType};
use strata_engine::{Engine, EngineConfig, TableSpec};
use strata_export::import::{import, Compression, CsvOptions, ImportSpec, InputFormat};
use strata_store::counting::counting;

fn write_inputs(dir: &std::path::Path, items: u64) -> (u64, u64) {
    std::fs::create_dir_all(dir.join("json")).unwrap();
    let files = 10;
    let mut json_bytes = 0;
    for f in 0..files {
        let path = dir.join("json").join(format!("part-{f}.json.gz"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in (f..items).step_by(files as usize) {
            writeln!(
                gz,
                r#"{{"Item":{{"pk":{{"S":"user{i:08}"}},"name":{{"S":"name {i}"}},"n":{{"N":"{i}"}},"note":{{"S":"{}"}}}}}}"#,
                "x".repeat(40)
            )
            .unwrap();
        }
        let bytes = gz.finish().unwrap();
        json_bytes += bytes.len() as u64;
        std::fs::write(path, bytes).unwrap();
    }
    std::fs::create_dir_all(dir.join("csv")).unwrap();
    let mut csv = String::from("pk,name,n,note\n");
    for i in 0..items {
        csv.push_str(&format!("user{i:08},name {i},{i},{}\n", "x".repeat(40)));
    }
    std::fs::write(dir.join("csv").join("all.csv"), &csv).unwrap();
    (json_bytes, csv.len() as u64)
}

async fn run(format: InputFormat, dir: &std::path::Path, items: u64) -> Vec<String> {
    let data = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(data.path()).unwrap();
    let (counted, counter) = counting(Arc::new(local));
    let store: Arc<dyn ObjectStore> = counted;
    let engine = Engine::with_store_unchecked(store, "bench", EngineConfig::default());
    engine
        .create_table(TableSpec {
            name: "imported".into(),
            key_schema: KeySchema {
                hash: KeyAttribute {
                    name: "pk".into(),
                    key_type: KeyType::S,
                },
                range: None,
            },
            partitions: Some(8),
            keep_old_images: false,
            replicas: Vec::new(),
            meta: serde_json::json!({}),
            indexes: Vec::new(),
            commit_window_ms: None,
        })
        .await
        .unwrap();
    let (sub, compression, name) = match format {
        InputFormat::Csv => ("csv/", Compression::None, "CSV, plain"),
        _ => ("json/", Compression::Gzip, "DynamoDB JSON, gzip"),
    };
    let source = object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap();
    let spec = ImportSpec {
        table: "imported".into(),
        source: Arc::new(source),
        bucket: "bench".into(),
        prefix: sub.into(),
        format,
        compression,
        csv: CsvOptions::default(),
        import_arn: "bench".into(),
        indexes: Vec::new(),
        exact: false,
    };
    let t = Instant::now();
    let out = import(&engine, &spec, Arc::new(())).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(out.imported_items, items);
    let c = counter.snapshot();
    vec![
        name.to_string(),
        items.to_string(),
        format!("{:.1}", out.processed_bytes as f64 / 1e6),
        format!("{secs:.1}"),
        format!("{:.0}", items as f64 / secs),
        format!("{:.1}", out.processed_bytes as f64 / 1e6 / secs),
        format!("{} / {}", c.get, c.put),
    ]
}

fn main() {
    let items: u64 = std::env::var("STRATA_BENCH_IMPORT_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let inputs = tempfile::tempdir().unwrap();
    write_inputs(inputs.path(), items);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let header = [
        "input",
        "items",
        "input MB",
        "import s",
        "items/s",
        "input MB/s",
        "table store GETs / PUTs",
    ];
    println!("Import into a new table (8 partitions, local directory)\n");
    println!("| {} |", header.join(" | "));
    println!("|{}", "---|".repeat(header.len()));
    for format in [InputFormat::DynamoDbJson, InputFormat::Csv] {
        let row = rt.block_on(run(format, inputs.path(), items));
        println!("| {} |", row.join(" | "));
    }
}

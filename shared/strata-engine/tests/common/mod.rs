//! Shared test harness: the stores every engine test runs against, and
//! small helpers to build tables, keys and items.
//!
//! Backends: `memory`, `file` (a temporary directory) and `tiered` (the log
//! and the SSTs in directories of their own, the rest in memory: the shape
//! of a log in S3 Express One Zone) always; plus every S3
//! endpoint named in `STRATA_TEST_S3`, a comma-separated list of
//! `name=http://host:port/bucket` (the test command sets it for LocalStack
//! and moto; point it at MinIO or AWS to run the same suite there).
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, RetryConfig};
use strata_engine::*;

pub struct Backend {
    pub name: String,
    /// Relative size of workloads: remote stores get smaller ones.
    pub scale: usize,
    make: Arc<dyn Fn() -> Arc<dyn ObjectStore> + Send + Sync>,
}

impl Backend {
    /// A fresh, empty store (a new prefix for S3).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        (self.make)()
    }

    pub fn is_remote(&self) -> bool {
        self.scale < 4
    }
}

/// The store `url_of(dir)` names, for a fresh directory in Cargo's
/// per-target temporary directory (kept: a test may reopen it).
fn opened_in_temp_dir(url_of: fn(&str) -> String) -> Arc<dyn ObjectStore> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir")
        .keep();
    let url = url_of(&dir.display().to_string());
    strata_store::open_unchecked(&url)
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .store
}

pub fn backends() -> Vec<Backend> {
    let mut out = vec![
        Backend {
            name: "memory".into(),
            scale: 4,
            make: Arc::new(|| Arc::new(InMemory::new()) as Arc<dyn ObjectStore>),
        },
        Backend {
            name: "file".into(),
            scale: 4,
            // The store `file://` URLs open (LocalFileSystem with inline reads).
            make: Arc::new(|| opened_in_temp_dir(|d| format!("file://{d}"))),
        },
        Backend {
            name: "tiered".into(),
            scale: 4,
            make: Arc::new(|| {
                opened_in_temp_dir(|d| format!("memory://?log=file://{d}/log&runs=file://{d}/runs"))
            }),
        },
    ];
    if let Ok(spec) = std::env::var("STRATA_TEST_S3") {
        for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .expect("STRATA_TEST_S3 entries are name=http://host:port/bucket");
            let (endpoint, bucket) = url.rsplit_once('/').expect("endpoint/bucket");
            let (endpoint, bucket) = (endpoint.to_string(), bucket.to_string());
            out.push(Backend {
                name: name.to_string(),
                scale: 1,
                make: Arc::new(move || {
                    let s3 = AmazonS3Builder::new()
                        .with_endpoint(&endpoint)
                        .with_bucket_name(&bucket)
                        .with_region("us-east-1")
                        .with_access_key_id("test")
                        .with_secret_access_key("test")
                        .with_allow_http(true)
                        .with_virtual_hosted_style_request(false)
                        .with_retry(RetryConfig {
                            max_retries: 2,
                            retry_timeout: Duration::from_secs(10),
                            ..Default::default()
                        })
                        .build()
                        .expect("s3 store");
                    let prefix = format!("test-{}", strata_engine::paths::random_id());
                    Arc::new(PrefixStore::new(s3, prefix)) as Arc<dyn ObjectStore>
                }),
            });
        }
    }
    out
}

/// Settings for tests: small thresholds, no background compaction unless asked.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        default_partitions: 4,
        auto_compact: false,
        block_size: 512,
        ..EngineConfig::default()
    }
}

pub async fn engine(store: &Arc<dyn ObjectStore>, config: EngineConfig) -> Engine {
    Engine::with_store(Arc::clone(store), "test-store", config)
        .await
        .expect("engine opens")
}

/// A table with a string partition key `pk` and a number sort key `sk`.
pub fn spec(name: &str) -> TableSpec {
    TableSpec {
        name: name.to_string(),
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
    }
}

pub fn key(pk: &str, sk: i64) -> ItemKey {
    ItemKey {
        hash: KeyValue::S(pk.into()),
        range: Some(KeyValue::N(Number::from_i64(sk))),
    }
}

pub fn item(pk: &str, sk: i64, attrs: &[(&str, Value)]) -> Item {
    let mut i = Item::from([
        ("pk".to_string(), Value::S(pk.into())),
        ("sk".to_string(), Value::N(Number::from_i64(sk))),
    ]);
    for (k, v) in attrs {
        i.insert(k.to_string(), v.clone());
    }
    i
}

pub fn n(v: i64) -> Value {
    Value::N(Number::from_i64(v))
}

pub fn num_attr(item: &Item, name: &str) -> i64 {
    match item.get(name) {
        Some(Value::N(x)) => x.to_string().parse().expect("integer"),
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// An update that adds 1 to attribute `n` (creating it at 1).
pub fn increment() -> UpdateFn {
    Arc::new(|cur: Option<&Item>| {
        let mut item = cur.cloned().unwrap_or_default();
        let next = match item.get("n") {
            Some(Value::N(x)) => x.add(&Number::from_i64(1)).map_err(|e| e.to_string())?,
            _ => Number::from_i64(1),
        };
        item.insert("n".into(), Value::N(next));
        Ok(Some(item))
    })
}

pub async fn put(e: &Engine, table: &str, it: Item) -> Committed {
    let k = ItemKey {
        hash: match &it["pk"] {
            Value::S(s) => KeyValue::S(s.clone()),
            _ => unreachable!(),
        },
        range: match &it["sk"] {
            Value::N(x) => Some(KeyValue::N(x.clone())),
            _ => unreachable!(),
        },
    };
    e.write(table, WriteRequest::single(WriteOp::put(k, it)))
        .await
        .expect("put")
}

pub async fn get(e: &Engine, table: &str, k: &ItemKey) -> Option<Item> {
    e.get(table, k, Consistency::Strong)
        .await
        .expect("get")
        .map(|i| (*i).clone())
}

/// Every live item of the table, by a full strongly consistent scan in pages.
pub async fn scan_all(e: &Engine, table: &str, page: usize) -> Vec<Item> {
    let mut out = Vec::new();
    let mut after: Option<ItemKey> = None;
    loop {
        let p = e
            .scan(
                table,
                None,
                after.as_ref(),
                page,
                usize::MAX,
                Consistency::Strong,
            )
            .await
            .expect("scan");
        out.extend(p.items.iter().map(|i| (**i).clone()));
        match p.last_key {
            Some(k) => after = Some(item_key(&k)),
            None => return out,
        }
    }
}

pub fn item_key(i: &Item) -> ItemKey {
    spec("any")
        .key_schema
        .key_of(i)
        .expect("an item of a pk/sk table")
}

/// Every object whose path contains `part`.
#[allow(dead_code)]
pub async fn find_objects(
    store: &Arc<dyn ObjectStore>,
    part: &str,
) -> Vec<object_store::path::Path> {
    use futures::TryStreamExt;
    store
        .list(None)
        .map_ok(|m| m.location)
        .try_filter(|p| futures::future::ready(p.as_ref().contains(part)))
        .try_collect()
        .await
        .unwrap()
}

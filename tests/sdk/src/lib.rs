//! Helpers for driving Strata with aws-sdk-dynamodb.

use std::net::SocketAddr;
use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use aws_sdk_dynamodb::Client;
use strata_api::Api;
use strata_engine::{Engine, EngineConfig};

/// Creates an on-demand table with `pk` (S) as partition key and `sk` (N)
/// as sort key, the shape every test and benchmark here uses.
pub async fn create_table(c: &Client, name: &str) {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let key = |n: &str, t| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
            .expect("key schema")
    };
    let def = |n: &str, t| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(t)
            .build()
            .expect("definition")
    };
    c.create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .attribute_definitions(def("pk", ScalarAttributeType::S))
        .attribute_definitions(def("sk", ScalarAttributeType::N))
        .send()
        .await
        .expect("create table");
}

/// A client for `endpoint` with throwaway credentials, as any user would configure it.
pub async fn client(endpoint: &str) -> Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDSTRATA",
            "secret",
            None,
            None,
            "strata-tests",
        ))
        .endpoint_url(endpoint)
        .load()
        .await;
    Client::new(&conf)
}

/// Serves the API (the same router `strata serve` runs) over `store`
/// on an ephemeral loopback port; returns its URL. The server lives as long
/// as the runtime.
pub async fn serve(store: Arc<dyn object_store::ObjectStore>) -> String {
    let engine = Arc::new(
        Engine::with_store(store, "sdk-test", EngineConfig::default())
            .await
            .expect("store opens"),
    );
    let api = Arc::new(Api::new(engine, "us-east-1"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, strata_api::http::router(api)).await;
    });
    format!("http://{addr}")
}

/// The stores the suite runs on: a temporary directory always, and the
/// LocalStack endpoint named `localstack` in `STRATA_TEST_S3` when set.
pub fn stores() -> Vec<(String, Arc<dyn object_store::ObjectStore>)> {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir).expect("fs");
    let mut out: Vec<(String, Arc<dyn object_store::ObjectStore>)> =
        vec![("file".into(), Arc::new(fs))];
    let spec = std::env::var("STRATA_TEST_S3").unwrap_or_default();
    for entry in spec.split(',').filter(|e| e.starts_with("localstack=")) {
        let url = &entry["localstack=".len()..];
        let Some((endpoint, bucket)) = url.rsplit_once('/') else {
            continue;
        };
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("s3");
        let prefix = format!("sdk-{}", strata_engine::paths::random_id());
        out.push((
            "localstack".into(),
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
        ));
    }
    out
}

//! What SigV4 verification and policy checks add to a request, in-process
//! (no network, no disk: a memory store), so the figure is the server's CPU
//! per request and not the noise of a shared machine:
//!
//!     cargo bench -p strata-api --bench auth
//!
//! Each operation runs through the whole router (`strata_api::http::router`:
//! body read, authentication, parse, authorization, the operation, the
//! response) on one thread, with `--auth` off and on (a user whose policy
//! allows `dynamodb:*` on the bench's tables and denies DeleteTable, as in
//! `bench/auth.sh`); the signed request is signed once and replayed (within
//! the 15-minute window), so the client's signing is not counted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Body;
use http_body_util::BodyExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use strata_api::Api;
use strata_engine::{Engine, EngineConfig};
use tower::ServiceExt;

const USERS: &str = r#"{"users": [{"name": "loadgen", "access_key_id": "AKIDSTRATA", "secret_access_key": "secret",
  "policy": {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:aws:dynamodb:*:*:table/loadgen*"},
    {"Effect": "Deny", "Action": "dynamodb:DeleteTable", "Resource": "*"}]}}]}"#;

/// A request as aws-sdk-dynamodb sends it, signed for `dynamodb`.
fn request(op: &str, body: &str, now: SystemTime) -> axum::http::Request<Body> {
    let target = format!("DynamoDB_20120810.{op}");
    let date = strata_api::auth::sigv4::format_amz_date(now);
    let day = date[..8].to_string();
    let payload = hex::encode(Sha256::digest(body.as_bytes()));
    let canonical = format!(
        "POST\n/\n\ncontent-type:application/x-amz-json-1.0\nhost:localhost\nx-amz-date:{date}\nx-amz-target:{target}\n\ncontent-type;host;x-amz-date;x-amz-target\n{payload}"
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{day}/us-east-1/dynamodb/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = aws_sigv4::sign::v4::generate_signing_key("secret", now, "us-east-1", "dynamodb");
    let signature = aws_sigv4::sign::v4::calculate_signature(key, sts.as_bytes());
    axum::http::Request::post("/")
        .header("content-type", "application/x-amz-json-1.0")
        .header("host", "localhost")
        .header("x-amz-date", &date)
        .header("x-amz-target", target)
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIDSTRATA/{day}/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={signature}"),
        )
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn call(router: &axum::Router, req: axum::http::Request<Body>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body)
    );
}

/// Microseconds per request of `op`, over about a second.
async fn per_request(router: &axum::Router, op: &str, body: &str) -> f64 {
    let now = SystemTime::now();
    let parts = request(op, body, now).into_parts().0;
    let make = || {
        let mut r = axum::http::Request::post("/")
            .body(Body::from(body.to_string()))
            .unwrap();
        *r.headers_mut() = parts.headers.clone();
        r
    };
    for _ in 0..200 {
        call(router, make()).await;
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            call(router, make()).await;
        }
        n += 100;
    }
    started.elapsed().as_secs_f64() * 1e6 / n as f64
}

async fn router(auth: bool) -> axum::Router {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let engine = Arc::new(
        Engine::with_store(store, "memory", EngineConfig::default())
            .await
            .unwrap(),
    );
    let mut api = Api::new(engine, "us-east-1");
    if auth {
        api = api.with_auth(Arc::new(strata_api::auth::Users::load(USERS).unwrap()));
    }
    let router = strata_api::http::router(Arc::new(api));
    let now = SystemTime::now();
    let create = json!({"TableName": "loadgen", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}]});
    call(&router, request("CreateTable", &create.to_string(), now)).await;
    for i in 0..100 {
        let item = json!({"TableName": "loadgen", "Item": {"pk": {"S": "p"}, "sk": {"S": format!("{i:03}")}, "v": {"S": "x".repeat(150)}}});
        call(&router, request("PutItem", &item.to_string(), now)).await;
    }
    router
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let off = router(false).await;
    let on = router(true).await;
    let get = json!({"TableName": "loadgen", "Key": {"pk": {"S": "p"}, "sk": {"S": "007"}}, "ConsistentRead": true}).to_string();
    let get_eventual =
        json!({"TableName": "loadgen", "Key": {"pk": {"S": "p"}, "sk": {"S": "007"}}}).to_string();
    let put = json!({"TableName": "loadgen", "Item": {"pk": {"S": "q"}, "sk": {"S": "1"}, "v": {"S": "x".repeat(150)}}}).to_string();
    let query = json!({"TableName": "loadgen", "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}).to_string();
    println!("| operation | auth off µs/request | auth on µs/request | auth adds µs | off/on throughput |");
    println!("|---|---:|---:|---:|---:|");
    for (name, op, body) in [
        ("GetItem (eventual, cached)", "GetItem", &get_eventual),
        ("GetItem (strong)", "GetItem", &get),
        ("PutItem (memory store)", "PutItem", &put),
        ("Query (100 items)", "Query", &query),
    ] {
        let a = per_request(&off, op, body).await;
        let b = per_request(&on, op, body).await;
        println!(
            "| {name} | {a:.1} | {b:.1} | {:.1} | {:.2}x |",
            b - a,
            a / b
        );
    }
    println!(
        "\nOne thread, in-process through the router, memory store; the signed request replayed."
    );
}

//! The `strata-api` function driven the way API Gateway drives it: recorded
//! HTTP API (v2), REST API (v1, with a stage) and function-URL events, parsed
//! by lambda_http and handed to the handler in-process. The store is memory,
//! and LocalStack's S3 when `STRATA_TEST_S3` names a `localstack` endpoint.

use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use serde_json::Value;
use strata_api_function::{build, Settings};
use strata_engine::EngineConfig;
use tower::ServiceExt;

fn fixture(name: &str) -> String {
    let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn call(router: &axum::Router, name: &str) -> (u16, Value) {
    let req = lambda_http::request::from_str(&fixture(name)).expect("a valid API Gateway event");
    let (parts, body) = req.into_parts();
    let bytes = body.to_vec();
    let req = http::Request::from_parts(parts, axum::body::Body::from(bytes));
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn exercise(store: String, label: &str) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_string()))
            as strata_api::metrics::Sink
    };
    let settings = Settings {
        store,
        region: "us-east-1".into(),
        compactor: None,
        exporter: None,
        regions: Vec::new(),
        auth: None,
        config: EngineConfig::default(),
    };
    let app = build(settings, sink).expect("builds without network I/O");

    let (status, body) = call(&app.router, "apigw-v2-create-table.json").await;
    assert_eq!(status, 200, "[{label}] {body}");
    assert_eq!(body["TableDescription"]["TableStatus"], "ACTIVE");
    let (status, body) = call(&app.router, "apigw-v2-put-item-base64.json").await;
    assert_eq!(status, 200, "[{label}] {body}");
    let (status, body) = call(&app.router, "apigw-v1-get-item.json").await;
    assert_eq!(status, 200, "[{label}] REST API path with a stage: {body}");
    assert_eq!(body["Item"]["Plays"]["N"], "1");
    let (status, body) = call(&app.router, "function-url-query.json").await;
    assert_eq!(status, 200, "[{label}] {body}");
    assert_eq!(body["Count"], 1);
    let (status, body) = call(&app.router, "apigw-v2-bad-json.json").await;
    assert_eq!(status, 400);
    assert!(
        body["__type"]
            .as_str()
            .unwrap()
            .ends_with("#SerializationException"),
        "{body}"
    );

    // One EMF line per request, with the operation and its store requests.
    let lines = lines.lock().unwrap();
    let requests: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("Operation").is_some())
        .collect();
    let ops: Vec<&str> = requests
        .iter()
        .map(|v| v["Operation"].as_str().unwrap())
        .collect();
    assert_eq!(
        ops,
        ["CreateTable", "PutItem", "GetItem", "Query", "GetItem"],
        "[{label}]"
    );
    assert_eq!(
        requests[1]["StorePUT"], 1,
        "[{label}] a put is one PUT: {}",
        requests[1]
    );
    assert_eq!(requests[4]["ErrorCode"], "SerializationException");
    assert!(
        lines.iter().any(|l| l.contains("\"Cache\"")),
        "[{label}] cache metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_and_function_url_events_are_served() {
    exercise("memory://".into(), "memory").await;
    if let Some(url) = std::env::var("STRATA_TEST_S3")
        .unwrap_or_default()
        .split(',')
        .find_map(|e| e.strip_prefix("localstack=").map(str::to_string))
    {
        let (endpoint, bucket) = url.rsplit_once('/').expect("endpoint/bucket");
        // This test binary has a single test: setting the environment is safe.
        std::env::set_var("AWS_ENDPOINT_URL", endpoint);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        exercise(
            format!("s3://{bucket}/fn-{}", strata_engine::paths::random_id()),
            "localstack",
        )
        .await;
    }
}

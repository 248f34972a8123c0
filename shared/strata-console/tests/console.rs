//! The console's router over a real engine: store requests counted per
//! operation (a group commit's PUT for the request that led it), the
//! loopback guard, the status JSON and the Prometheus exposition.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value as Json};
use strata_console::{Console, Prices};
use strata_engine::{Engine, EngineConfig};
use tower::ServiceExt;

struct Setup {
    app: axum::Router,
    counter: Arc<strata_store::counting::RequestCounter>,
}

async fn setup() -> Setup {
    let opened = strata_store::open_store("memory://").await.unwrap();
    let (counted, counter) = strata_store::counting::counting(Arc::clone(&opened.store));
    let opened = strata_store::OpenedStore {
        store: counted,
        ..opened
    };
    let engine = Arc::new(Engine::with_opened_unchecked(
        opened,
        EngineConfig::default(),
    ));
    let api = Arc::new(strata_api::Api::new(Arc::clone(&engine), "us-east-1"));
    let console = Console::new(engine, Arc::clone(&counter), Prices::default());
    Setup {
        app: strata_console::router(strata_api::http::router(api), Arc::new(console)),
        counter,
    }
}

fn from(addr: &str, mut req: Request<Body>) -> Request<Body> {
    let addr: SocketAddr = addr.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

async fn call(app: &axum::Router, op: &str, body: Json) -> (StatusCode, Json) {
    let req = Request::post("/")
        .header("x-amz-target", format!("DynamoDB_20120810.{op}"))
        .header("content-type", "application/x-amz-json-1.0")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app
        .clone()
        .oneshot(from("127.0.0.1:5000", req))
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Json::Null))
}

async fn get(app: &axum::Router, path: &str, peer: &str) -> (StatusCode, String) {
    let req = from(peer, Request::get(path).body(Body::empty()).unwrap());
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 8 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn store_requests_count_for_the_operation_that_made_them() {
    let s = setup().await;
    let (status, created) = call(
        &s.app,
        "CreateTable",
        json!({"TableName": "tab", "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
               "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
               "BillingMode": "PAY_PER_REQUEST"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let before = s.counter.by_operation();
    for i in 0..3 {
        let (status, _) = call(
            &s.app,
            "PutItem",
            json!({"TableName": "tab", "Item": {"k": {"S": format!("k{i}")}}}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let after = s.counter.by_operation();
    let puts = |m: &std::collections::BTreeMap<&str, strata_store::counting::RequestCounts>| {
        m.get("PutItem").map_or(0, |c| c.put)
    };
    // Each PutItem's log segment is created by the group-commit task it
    // spawned: counted for PutItem, not as background.
    assert_eq!(puts(&after) - puts(&before), 3, "{after:?}");
    assert!(
        after.get("CreateTable").is_some_and(|c| c.put >= 1),
        "{after:?}"
    );

    let (status, body) = get(&s.app, "/console/api/status", "127.0.0.1:5000").await;
    assert_eq!(status, StatusCode::OK);
    let st: Json = serde_json::from_str(&body).unwrap();
    assert_eq!(st["operations"]["PutItem"]["requests"], 3);
    assert_eq!(st["operations"]["PutItem"]["store"]["PUT"], 3);
    assert_eq!(st["tables"][0]["name"], "tab");
    assert!(st["prices"]["s3_put_per_million"].as_f64().is_some());

    let (status, body) = get(&s.app, "/console/api/storage?table=tab", "[::1]:5000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let storage: Json = serde_json::from_str(&body).unwrap();
    assert!(!storage["partitions"].as_array().unwrap().is_empty());
    let (status, _) = get(&s.app, "/console/api/storage?table=nope", "127.0.0.1:5000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, text) = get(&s.app, "/metrics", "10.1.2.3:5000").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("strata_requests_total{operation=\"PutItem\"} 3"),
        "{text}"
    );
    assert!(text.contains("strata_store_requests_total{operation=\"PutItem\",kind=\"PUT\"} 3"));
}

#[tokio::test]
async fn the_console_answers_loopback_peers_only() {
    let s = setup().await;
    for path in ["/console", "/console/api/status", "/console/assets/app.js"] {
        assert_eq!(
            get(&s.app, path, "127.0.0.1:1").await.0,
            StatusCode::OK,
            "{path}"
        );
        assert_eq!(
            get(&s.app, path, "192.168.1.9:1").await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    assert_eq!(
        get(&s.app, "/console/assets/nope.js", "127.0.0.1:1")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The DynamoDB API is still there, unguarded, and the health check too.
    assert_eq!(get(&s.app, "/", "192.168.1.9:1").await.0, StatusCode::OK);
}

#[tokio::test]
async fn client_chosen_operation_names_never_become_labels() {
    let s = setup().await;
    let (status, _) = call(&s.app, "NoSuchOperation", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, text) = get(&s.app, "/metrics", "127.0.0.1:1").await;
    assert!(!text.contains("NoSuchOperation"));
    assert!(
        text.contains("strata_requests_total{operation=\"Unknown\"} 1"),
        "{text}"
    );
}

//! `STRATA_AUTH=secretsmanager:<id>`: the API function reads its users from
//! Secrets Manager when an instance starts (signed GetSecretValue, no SDK),
//! here from moto's Secrets Manager when `STRATA_TEST_S3` names a `moto`
//! endpoint (tests/run.sh starts one); skipped otherwise.

use std::sync::Arc;

use http_body_util::BodyExt;
use strata_api_function::{aws, build, Settings};
use strata_engine::EngineConfig;
use tower::ServiceExt;

fn moto() -> Option<String> {
    let url = std::env::var("STRATA_TEST_S3")
        .unwrap_or_default()
        .split(',')
        .find_map(|e| e.strip_prefix("moto=").map(str::to_string))?;
    Some(url.rsplit_once('/')?.0.to_string())
}

fn settings(auth: &str) -> Settings {
    Settings {
        store: "memory://".into(),
        region: "us-east-1".into(),
        compactor: None,
        exporter: None,
        regions: Vec::new(),
        auth: Some(auth.into()),
        config: EngineConfig::default(),
    }
}

#[tokio::test]
async fn users_are_read_from_secrets_manager_when_an_instance_starts() {
    let Some(endpoint) = moto() else {
        eprintln!("skipped: no moto endpoint in STRATA_TEST_S3");
        return;
    };
    let name = format!("strata/users-{}", strata_engine::paths::random_id());
    let users = serde_json::json!({"users": [{
        "name": "alice", "access_key_id": "AKIDALICE", "secret_access_key": "s3cret",
        "policy": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}
    }]})
    .to_string();
    let created = aws::secrets_manager(
        &endpoint,
        "us-east-1",
        "CreateSecret",
        serde_json::json!({ "Name": name, "SecretString": users }),
    )
    .await
    .expect("CreateSecret on moto");
    let arn = created["ARN"].as_str().expect("an ARN").to_string();

    for auth in [format!("secretsmanager:{name}"), arn] {
        let mut s = settings(&auth);
        s.resolve_auth_at(&endpoint).await.expect("GetSecretValue");
        assert_eq!(s.auth.as_deref(), Some(users.as_str()), "{auth}");
        // The users are in force: an unsigned request is refused.
        let sink = Arc::new(|_: &str| {}) as strata_api::metrics::Sink;
        let app = build(s, sink).expect("builds");
        let req = http::Request::post("/")
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .header("content-type", "application/x-amz-json-1.0")
            .body(axum::body::Body::from("{}"))
            .unwrap();
        let resp = app.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["__type"]
                .as_str()
                .unwrap()
                .ends_with("#MissingAuthenticationTokenException"),
            "{body}"
        );
    }

    // A secret that is not there stops the instance's start with a clear error.
    let mut s = settings("secretsmanager:strata/no-such-secret");
    let e = s.resolve_auth_at(&endpoint).await.unwrap_err();
    assert!(e.contains("ResourceNotFoundException"), "{e}");
    // Users given inline or as a path are left as they are.
    let mut s = settings(r#"{"users": []}"#);
    s.resolve_auth_at("http://127.0.0.1:9").await.unwrap();
    assert_eq!(s.auth.as_deref(), Some(r#"{"users": []}"#));
}

//! The HTTP face of the API: `POST /` with `X-Amz-Target`, `GET /` as a
//! health check. One router, served by the local server and (through
//! lambda_http) by the Lambda function.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::Api;

/// Largest request body accepted (DynamoDB's limit is 16 MB for batches).
pub const MAX_BODY_BYTES: usize = 16 << 20;

pub fn router(api: Arc<Api>) -> Router {
    // Any path: behind API Gateway the path may carry a stage (`/prod`),
    // behind a function URL emulator a prefix; DynamoDB clients POST to
    // whatever endpoint path they were given.
    Router::new()
        .route("/", get(health).post(call))
        .route("/{*path}", get(health).post(call))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
}

async fn health() -> &'static str {
    "healthy: strata"
}

async fn call(State(api): State<Arc<Api>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = api.caller(auth);
    let content_type = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(ct) if ct.starts_with("application/x-amz-json-1.1") => "application/x-amz-json-1.1",
        _ => "application/x-amz-json-1.0",
    };
    let res = api.handle(target, &caller, &body).await;
    let outcome = Outcome {
        operation: target
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("Unknown")
            .to_string(),
        error_code: res.error_code,
    };
    let crc = crc32fast::hash(&res.body);
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, res.body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Clients verify this checksum of the body, as DynamoDB sends it.
    if let Ok(v) = HeaderValue::from_str(&crc.to_string()) {
        h.insert("x-amz-crc32", v);
    }
    if let Ok(v) = HeaderValue::from_str(&crate::request_id()) {
        h.insert("x-amzn-requestid", v);
    }
    response.extensions_mut().insert(outcome);
    response
}

/// What a request was and how it ended, attached to each response for
/// metrics layers.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub operation: String,
    pub error_code: Option<&'static str>,
}

//! The HTTP face of the API: `POST` with `X-Amz-Target` on any path,
//! `GET /` as a health check, CORS and compressed bodies as DynamoDB has
//! them. One router, served by the local server and (through lambda_http)
//! by the Lambda function.

mod cors;
pub mod encoding;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::Api;

/// Largest request body accepted, before and after decoding (DynamoDB's
/// limit is 16 MB for batches).
pub const MAX_BODY_BYTES: usize = 16 << 20;

pub fn router(api: Arc<Api>) -> Router {
    // Any path: behind API Gateway the path may carry a stage (`/prod`),
    // behind a function URL emulator a prefix; DynamoDB clients POST to
    // whatever endpoint path they were given.
    Router::new()
        .fallback(serve)
        .layer(axum::middleware::from_fn(cors::cors))
        .with_state(api)
}

/// Routes by method: POST is an operation on any path; GET is the health
/// check on `/` (or on an endpoint's base path, which ends in `/`);
/// anything else is not an operation.
async fn serve(State(api): State<Arc<Api>>, req: Request) -> Response {
    let path = req.uri().path();
    match *req.method() {
        Method::POST => call(api, req).await,
        Method::GET if path.ends_with('/') => {
            let mut res = "healthy: strata".into_response();
            stamp(res.headers_mut(), b"healthy: strata");
            res
        }
        // DynamoDB answers these with an empty 200 (load balancers' probes).
        Method::GET if path.starts_with("/health") => {
            let mut res = StatusCode::OK.into_response();
            stamp(res.headers_mut(), b"");
            res
        }
        _ => unknown_operation(),
    }
}

/// What DynamoDB answers a method or path that is not an operation.
fn unknown_operation() -> Response {
    const BODY: &[u8] = b"<UnknownOperationException/>\n";
    let mut res = (StatusCode::NOT_FOUND, Body::from(BODY)).into_response();
    stamp(res.headers_mut(), BODY);
    res
}

/// The headers every DynamoDB response carries: the body's CRC32 (which
/// clients check; of the bytes sent, compressed or not) and a request id.
fn stamp(h: &mut HeaderMap, body: &[u8]) {
    if let Ok(v) = HeaderValue::from_str(&crc32fast::hash(body).to_string()) {
        h.insert("x-amz-crc32", v);
    }
    if let Ok(v) = HeaderValue::from_str(&crate::request_id()) {
        h.insert("x-amzn-requestid", v);
    }
}

async fn call(api: Arc<Api>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    let content_type = match text(header::CONTENT_TYPE) {
        Some(ct) if ct.starts_with("application/x-amz-json-1.1") => "application/x-amz-json-1.1",
        _ => "application/x-amz-json-1.0",
    };
    let res = match read_body(&parts.headers, body).await {
        Err(e) => crate::Response::error(&e),
        Ok(raw) => match authenticate(&api, &parts, &raw) {
            Err(e) => crate::Response::error(&e),
            Ok(caller) => {
                match encoding::decode_body(text(header::CONTENT_ENCODING), &raw, MAX_BODY_BYTES) {
                    Err(e) => crate::Response::error(&e),
                    Ok(body) => {
                        let caller = crate::Caller {
                            host: text(header::HOST).map(str::to_string),
                            ..caller
                        };
                        match api.in_flight_slot() {
                            Err(e) => crate::Response::error(&e),
                            Ok(_slot) => api.handle(target, &caller, &body).await,
                        }
                    }
                }
            }
        },
    };
    let outcome = Outcome {
        operation: target
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("Unknown")
            .to_string(),
        error_code: res.error_code,
    };
    let (body, coding) =
        encoding::encode_body(encoding::negotiate(text(header::ACCEPT_ENCODING)), res.body);
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(c) = coding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(c.name()));
    }
    stamp(&mut h, &body);
    let mut response = (status, h, body).into_response();
    response.extensions_mut().insert(outcome);
    response
}

/// An error answered outside an operation (the console's status
/// endpoints), in the shape and with the headers an operation's has.
pub fn error_response(e: &crate::ApiError) -> Response {
    let r = crate::Response::error(e);
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    stamp(&mut h, &r.body);
    (status, h, r.body).into_response()
}

/// How long a request body may take to arrive once its head has.
pub const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The request body: refused up front when its Content-Length is over the
/// limit, and when it does not arrive within [`BODY_READ_TIMEOUT`] (a client
/// that sends less than it announced), each with a DynamoDB-shaped error.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, crate::ApiError> {
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(encoding::too_large(MAX_BODY_BYTES));
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_READ_TIMEOUT, http_body_util::BodyExt::collect(limited)).await {
        Err(_) => Err(crate::ApiError::new(
            crate::ErrorCode::RequestTimeout,
            format!(
                "The request body did not arrive within {} seconds",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(encoding::too_large(MAX_BODY_BYTES))
        }
        Ok(Err(e)) => Err(crate::ApiError::serialization(format!(
            "The request body could not be read: {}",
            crate::error::bounded(&e.to_string())
        ))),
    }
}

/// The caller of a request: with `--auth`, the user whose signature it
/// carries (checked over the body as sent), or DynamoDB's error; without,
/// whoever the Authorization header names.
fn authenticate(
    api: &Api,
    parts: &axum::http::request::Parts,
    raw: &[u8],
) -> Result<crate::Caller, crate::ApiError> {
    let header = |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let Some(users) = api.auth() else {
        return Ok(api.caller(header(header::AUTHORIZATION)));
    };
    let signed = crate::auth::sigv4::Signed::of(&parts.method, &parts.uri, &parts.headers, raw);
    let (user, region) = users.authenticate(&signed, api.region(), std::time::SystemTime::now())?;
    Ok(crate::Caller {
        region,
        access_key: Some(user.access_key_id.clone()),
        host: None,
        user: Some(user),
    })
}

/// What a request was and how it ended, attached to each response for
/// metrics layers.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub operation: String,
    pub error_code: Option<crate::error::ErrorCode>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_past_the_in_flight_limit_are_throttled_not_queued() {
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let engine = strata_engine::Engine::with_store(store, "memory", Default::default())
            .await
            .unwrap();
        let engine = Arc::new(engine);
        let call = |app: Router| async move {
            let req = Request::post("/")
                .header("x-amz-target", "DynamoDB_20120810.ListTables")
                .body(Body::from("{}"))
                .unwrap();
            let res = app.oneshot(req).await.unwrap();
            let status = res.status();
            let body = axum::body::to_bytes(res.into_body(), 1 << 16)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        };
        // No slot at all: every request is a retryable throttle, in DynamoDB's shape.
        let none = router(Arc::new(
            Api::new(Arc::clone(&engine), "us-east-1").with_max_in_flight(0),
        ));
        let (status, j) = call(none).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            j["__type"],
            "com.amazon.coral.availability#ThrottlingException"
        );
        // One slot: requests one after another each get it back.
        let one = router(Arc::new(
            Api::new(engine, "us-east-1").with_max_in_flight(1),
        ));
        for _ in 0..3 {
            assert_eq!(call(one.clone()).await.0, StatusCode::OK);
        }
    }
}

//! CORS as DynamoDB answers browsers: any origin may call, with the
//! request id and error headers readable by scripts.
//!
//! - A request with an `Origin` gets `Access-Control-Allow-Origin: *` and
//!   `Access-Control-Expose-Headers` on its response; one without gets no
//!   CORS header at all.
//! - A preflight (`OPTIONS` with an `Origin`) is answered here, before
//!   anything else runs: 200, an empty body, the requested method and
//!   headers allowed, cached for two days (`Access-Control-Max-Age`, the
//!   value DynamoDB sends). `OPTIONS` without an `Origin` is not an
//!   operation: 404.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The response headers a script may read (DynamoDB's list).
const EXPOSE_HEADERS: &str = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date";
/// How long a browser may reuse a preflight's answer, in seconds.
const MAX_AGE: &str = "172800";

/// The middleware (see the module documentation).
pub async fn cors(req: Request, next: Next) -> Response {
    let has_origin = req.headers().contains_key(header::ORIGIN);
    if req.method() == Method::OPTIONS {
        return if has_origin {
            preflight(req.headers())
        } else {
            super::unknown_operation()
        };
    }
    let mut res = next.run(req).await;
    if has_origin {
        allow(res.headers_mut());
    }
    res
}

fn allow(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

fn preflight(asked: &HeaderMap) -> Response {
    let mut res = (StatusCode::OK, Body::empty()).into_response();
    let h = res.headers_mut();
    allow(h);
    for (ask, allowed) in [
        (
            header::ACCESS_CONTROL_REQUEST_METHOD,
            header::ACCESS_CONTROL_ALLOW_METHODS,
        ),
        (
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
        ),
    ] {
        if let Some(v) = asked.get(&ask) {
            h.insert(allowed, v.clone());
        }
    }
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    super::stamp(h, b"");
    res
}

//! What `strata serve` shows of itself: a web console at `/console`, the
//! JSON status it reads (`/console/api/status`, `/console/api/storage`),
//! and Prometheus metrics at `/metrics`.
//!
//! The console is static HTML, CSS and JavaScript embedded in the binary
//! (`assets/`, nothing fetched at run time). It reads and writes tables
//! through the same DynamoDB API any client uses (POSTs to `/`) and reads
//! what that API cannot tell (requests per operation, store requests and
//! their cost, caches, storage, replication) from the status endpoints.
//!
//! Who may look: the console and its status endpoints answer only
//! connections from a loopback address to a loopback name (403 otherwise);
//! with `--auth` the status endpoints also want a signed request (the
//! console signs in the browser) and `/metrics` is loopback-only too;
//! without, `/metrics` answers anyone (Prometheus scrapes from elsewhere)
//! and tells counts, never data.

mod assets;
pub mod metrics;
pub mod prices;
mod series;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use strata_engine::replication::Replicator;
use strata_engine::Engine;
use strata_store::counting::RequestCounter;

pub use prices::{Prices, PRICES_AS_OF};

/// Everything the console and `/metrics` read.
pub struct Console {
    engine: Arc<Engine>,
    /// The counter around the engine's store (per operation and kind).
    counter: Arc<RequestCounter>,
    replicator: Option<Arc<Replicator>>,
    prices: Prices,
    metrics: metrics::Metrics,
    series: series::Series,
    /// Cumulative requests and errors per operation since start.
    totals: std::sync::Mutex<std::collections::BTreeMap<&'static str, (u64, u64)>>,
    started_ms: u64,
    /// With `--auth`: the status endpoints want a signed request too, and
    /// `/metrics` answers loopback peers only.
    auth: Option<Arc<strata_api::auth::Users>>,
}

impl Console {
    pub fn new(engine: Arc<Engine>, counter: Arc<RequestCounter>, prices: Prices) -> Self {
        Self {
            engine,
            counter,
            replicator: None,
            prices,
            metrics: metrics::Metrics::default(),
            series: series::Series::default(),
            totals: Default::default(),
            started_ms: strata_engine::clock::now_ms(),
            auth: None,
        }
    }

    /// Requests to the status endpoints must be SigV4-signed by one of
    /// `users` (the console signs them in the browser).
    pub fn with_auth(mut self, users: Arc<strata_api::auth::Users>) -> Self {
        self.auth = Some(users);
        self
    }

    /// The replicator whose lag the console and `/metrics` show.
    pub fn with_replicator(mut self, r: Arc<Replicator>) -> Self {
        self.replicator = Some(r);
        self
    }

    fn observe(
        &self,
        operation: &'static str,
        error: Option<&'static str>,
        took: std::time::Duration,
    ) {
        self.metrics.observe(operation, error, took);
        self.series.record(
            strata_engine::clock::now_ms() / 1000,
            operation,
            error,
            took,
        );
        let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let e = t.entry(operation).or_default();
        e.0 += 1;
        e.1 += u64::from(error.is_some());
    }
}

/// `api` (the DynamoDB router) with the console's routes beside it and
/// every API request recorded. Serve it with connect info
/// (`into_make_service_with_connect_info::<SocketAddr>`): the console
/// answers loopback peers only.
pub fn router(api: Router, console: Arc<Console>) -> Router {
    let recorded = api.layer(axum::middleware::from_fn_with_state(
        Arc::clone(&console),
        record,
    ));
    let metrics = Router::new().route("/metrics", get(scrape));
    let metrics = if console.auth.is_some() {
        metrics.layer(axum::middleware::from_fn(loopback_only))
    } else {
        metrics
    };
    let status = Router::new()
        .route("/console/api/status", get(status::status))
        .route("/console/api/storage", get(status::storage))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&console),
            signed_if_auth,
        ));
    Router::new()
        .route("/console", get(assets::index))
        .route("/console/", get(assets::index))
        .route("/console/assets/{file}", get(assets::file))
        .route("/console/api/region", get(region))
        .merge(status)
        .layer(axum::middleware::from_fn(loopback_only))
        .merge(metrics)
        .with_state(console)
        .merge(recorded)
}

/// Times each API request, attributes the store requests it makes to its
/// operation, and records how it ended.
async fn record(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let operation = strata_api::operation_name(target);
    let start = Instant::now();
    let response = strata_store::attribution::scope(operation, next.run(req)).await;
    let error = response
        .extensions()
        .get::<strata_api::http::Outcome>()
        .and_then(|o| o.error_code)
        .map(|c| c.name());
    c.observe(operation, error, start.elapsed());
    response
}

/// Loopback peers only, addressing the server by a loopback name (a page
/// elsewhere that resolves its own name to 127.0.0.1, DNS rebinding, is
/// refused too).
async fn loopback_only(req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_name);
    let local_name = host.is_none_or(|h| {
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    if peer.is_some_and(|ip| ip.is_loopback()) && local_name {
        return next.run(req).await;
    }
    (
        StatusCode::FORBIDDEN,
        "The console answers loopback connections only (to 127.0.0.1, ::1 or localhost): open it on the machine that runs strata serve, or through an SSH tunnel.\n",
    )
        .into_response()
}

/// `Host`'s name without its port (`[::1]:8000` → `::1`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// With `--auth`, the status endpoints want a request signed by a user
/// (the console signs them as it signs its API calls).
async fn signed_if_auth(State(c): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let Some(users) = &c.auth else {
        return next.run(req).await;
    };
    let signed = strata_api::auth::sigv4::Signed::of(req.method(), req.uri(), req.headers(), b"");
    match users.authenticate(
        &signed,
        &c.engine.config().region,
        std::time::SystemTime::now(),
    ) {
        Ok(_) => next.run(req).await,
        Err(e) => strata_api::http::error_response(&e),
    }
}

/// The region requests are signed for (the console needs it to sign).
async fn region(State(c): State<Arc<Console>>) -> Response {
    axum::Json(serde_json::json!({"region": c.engine.config().region})).into_response()
}

async fn scrape(State(c): State<Arc<Console>>) -> Response {
    let figures = status::figures(&c).await;
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        c.metrics.render(&figures),
    )
        .into_response()
}

//! Everything the `strata-api` function builds once per instance (store,
//! engine, caches, router), kept out of `main` so tests can drive it with
//! recorded API Gateway events.

pub mod aws;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use strata_api::metrics::{with_emf, EmfState, Sink};
use strata_api::Api;
use strata_engine::{CompactionHook, Engine, EngineConfig};
use tokio::sync::OnceCell;

pub use aws::invoke_async;

/// The function's configuration, from its environment.
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: String,
    pub region: String,
    pub compactor: Option<String>,
    /// The exporter function, which runs export and restore jobs
    /// (`STRATA_EXPORTER_FUNCTION`).
    pub exporter: Option<String>,
    /// Other regions' stores for global tables (`STRATA_REGIONS`).
    pub regions: Vec<(String, String)>,
    /// The users requests must be signed by (`STRATA_AUTH`: the users file's
    /// JSON, a path to it, or a Secrets Manager secret holding it, which
    /// [`Settings::resolve_auth`] reads); none: API Gateway's IAM
    /// authorization (or nothing) decides who may call.
    pub auth: Option<String>,
    pub config: EngineConfig,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let store = std::env::var("STRATA_STORE")
            .map_err(|_| "STRATA_STORE is not set (s3://bucket/prefix)".to_string())?;
        let config = EngineConfig::from_env();
        Ok(Settings {
            store,
            region: config.region.clone(),
            compactor: std::env::var("STRATA_COMPACTOR_FUNCTION")
                .ok()
                .filter(|v| !v.is_empty()),
            exporter: std::env::var("STRATA_EXPORTER_FUNCTION")
                .ok()
                .filter(|v| !v.is_empty()),
            regions: strata_engine::replication::parse_regions(
                &std::env::var("STRATA_REGIONS").unwrap_or_default(),
            )
            .map_err(|e| format!("STRATA_REGIONS: {e}"))?,
            auth: std::env::var("STRATA_AUTH")
                .ok()
                .filter(|v| !v.trim().is_empty()),
            config,
        })
    }

    /// Reads the users from Secrets Manager when `STRATA_AUTH` names a
    /// secret (`secretsmanager:<name or ARN>`, or its ARN): once, when the
    /// instance starts, so that the secret's value is in no configuration
    /// anyone can read. The one network call of an instance's start.
    pub async fn resolve_auth(&mut self) -> Result<(), String> {
        let region = self
            .auth
            .as_deref()
            .and_then(aws::secret_id)
            .and_then(aws::secret_region)
            .unwrap_or(&self.region)
            .to_string();
        let endpoint = aws::secrets_endpoint(&region);
        self.resolve_auth_at(&endpoint).await
    }

    /// [`Settings::resolve_auth`] with Secrets Manager at `endpoint`.
    pub async fn resolve_auth_at(&mut self, endpoint: &str) -> Result<(), String> {
        let Some(id) = self.auth.as_deref().and_then(aws::secret_id) else {
            return Ok(());
        };
        let region = aws::secret_region(id).unwrap_or(&self.region).to_string();
        let users = aws::get_secret(endpoint, &region, id)
            .await
            .map_err(|e| format!("STRATA_AUTH: {e}"))?;
        // Parsed here, as JSON only: a value that is not a users file is
        // refused without being echoed (it may hold secrets).
        if !users.trim_start().starts_with('{') {
            return Err(format!(
                "STRATA_AUTH: the secret {id} does not hold a users file (JSON)"
            ));
        }
        strata_api::auth::Users::parse(&users)
            .map_err(|e| format!("STRATA_AUTH: the secret {id}: {e}"))?;
        self.auth = Some(users);
        Ok(())
    }
}

/// What one instance keeps between invocations.
pub struct App {
    pub engine: Arc<Engine>,
    pub router: Router,
}

/// Builds the engine (no network I/O) and the router: the same router as
/// `strata serve`, wrapped with EMF metrics and a first-request store check.
pub fn build(settings: Settings, sink: Sink) -> Result<App, strata_engine::Error> {
    let mut config = settings.config;
    if let Some(compactor) = settings.compactor.clone() {
        // A frozen instance cannot compact in the background: ask the compactor.
        let region = settings.region.clone();
        config.compaction_hook = Some(CompactionHook(Arc::new(
            move |table: &str, partition: u32| {
                let (compactor, region) = (compactor.clone(), region.clone());
                let payload =
                    serde_json::json!({ "table": table, "partition": partition }).to_string();
                tokio::spawn(async move {
                    if let Err(e) = invoke_async(&compactor, &region, payload).await {
                        tracing::warn!(error = %e, "could not invoke the compactor; the schedule will catch up");
                    }
                });
            },
        )));
    }
    // Count store requests for the metrics.
    let opened = strata_store::open_unchecked(&settings.store)?;
    let (counted, counter) = strata_store::counting::counting(Arc::clone(&opened.store));
    let opened = strata_store::OpenedStore {
        store: counted,
        ..opened
    };
    // The first-request probe checks every part of a split store.
    let engine = Arc::new(Engine::with_opened_unchecked(opened, config));
    let regions =
        strata_engine::replication::open_regions_unchecked(&settings.regions, engine.config())?;
    let mut api = Api::new(Arc::clone(&engine), settings.region.clone()).with_regions(regions);
    // An instance serves one request at a time: a quarter of its memory
    // may go to parsing it (the block cache takes 40%).
    if let Some(mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
    {
        api = api.with_request_memory((mb << 20) / 4);
    }
    if let Some(auth) = &settings.auth {
        let users = strata_api::auth::Users::load(auth)
            .map_err(|e| strata_engine::Error::Validation(format!("STRATA_AUTH: {e}")))?;
        api = api.with_auth(Arc::new(users));
    }
    if let Some(exporter) = settings.exporter.clone() {
        // Exports need arrow and parquet, which this function does not link:
        // the exporter function runs them (and restores), invoked
        // asynchronously; the request waits only for the hand-over.
        let region = settings.region.clone();
        api = api.with_jobs(Arc::new(move |job| {
            let (exporter, region) = (exporter.clone(), region.clone());
            Box::pin(async move { invoke_async(&exporter, &region, job.to_string()).await })
        }));
    }
    let api = Arc::new(api);
    let emf = Arc::new(EmfState::new(
        "strata-api",
        Arc::clone(&engine),
        Some(counter),
        sink,
    ));
    let router =
        with_emf(strata_api::http::router(api), emf).layer(axum::middleware::from_fn_with_state(
            Arc::new(Checked {
                engine: Arc::clone(&engine),
                once: OnceCell::new(),
            }),
            check_store_once,
        ));
    Ok(App { engine, router })
}

struct Checked {
    engine: Arc<Engine>,
    once: OnceCell<Result<(), String>>,
}

/// Probes the store's atomic create before the first request is served
/// (not at init: init does no network I/O), and refuses every request if
/// the store is unfit.
async fn check_store_once(State(c): State<Arc<Checked>>, req: Request, next: Next) -> Response {
    let verdict = c
        .once
        .get_or_init(|| async { c.engine.check_store().await.map_err(|e| e.to_string()) })
        .await;
    match verdict {
        Ok(()) => next.run(req).await,
        Err(msg) => {
            let body = serde_json::json!({ "__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": msg });
            (StatusCode::INTERNAL_SERVER_ERROR, body.to_string()).into_response()
        }
    }
}

//! Everything the `strata-api` function builds once per instance (store,
//! engine, caches, router), kept out of `main` so tests can drive it with
//! recorded API Gateway events.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use strata_api::metrics::{with_emf, EmfState, Sink};
use strata_api::Api;
use strata_engine::{CompactionHook, Engine, EngineConfig};
use tokio::sync::OnceCell;

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
    /// JSON, or a path to it); none: API Gateway's IAM authorization (or
    /// nothing) decides who may call.
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
    // An instance serves one request at a time: half its memory may go to
    // parsing it.
    if let Some(mb) = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
    {
        api = api.with_request_memory((mb << 20) / 2);
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

/// Invokes a Lambda function asynchronously (`InvocationType: Event`),
/// signed with SigV4 from the function's own credentials. The endpoint is
/// `STRATA_LAMBDA_ENDPOINT` when set (a local emulator), else the regional one.
pub async fn invoke_async(function: &str, region: &str, payload: String) -> Result<(), String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let endpoint = std::env::var("STRATA_LAMBDA_ENDPOINT")
        .unwrap_or_else(|_| format!("https://lambda.{region}.amazonaws.com"));
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        endpoint.trim_end_matches('/')
    );
    let env = |k: &str| std::env::var(k).ok();
    let creds = aws_credential_types::Credentials::new(
        env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        env("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("lambda")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut request = http::Request::post(&url)
        .header("x-amz-invocation-type", "Event")
        .header("content-type", "application/json")
        .body(payload.clone())
        .map_err(|e| e.to_string())?;
    let headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers,
        SignableBody::Bytes(payload.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let client = reqwest::Client::new();
    let mut builder = client.post(&url).body(payload);
    for (k, v) in request.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let response = builder.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("invoke {function}: HTTP {}", response.status()));
    }
    Ok(())
}

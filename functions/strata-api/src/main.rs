//! The `strata-api` Lambda function: a thin adapter. lambda_http turns API
//! Gateway (HTTP API v2, REST API v1) and function-URL events into HTTP
//! requests for the very router `strata serve` runs.
//!
//! Configuration (environment): `STRATA_STORE` (`s3://bucket/prefix`), the
//! standard AWS variables, `STRATA_COMPACTOR_FUNCTION` (name or ARN of the
//! compactor to invoke when a partition's log passes its threshold),
//! `STRATA_AUTH` (the users file's JSON or path, or `secretsmanager:<id>`),
//! and the `EngineConfig::from_env` settings.

use std::sync::Arc;

use strata_api_function::{build, Settings};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let started = std::time::Instant::now();
    lambda_http::tracing::init_default_subscriber();
    let mut settings = Settings::from_env().map_err(|e| lambda_http::Error::from(e.to_string()))?;
    settings
        .resolve_auth()
        .await
        .map_err(lambda_http::Error::from)?;
    let app = build(settings, strata_api::metrics::stdout_sink())
        .map_err(|e| lambda_http::Error::from(e.to_string()))?;
    tracing::info!(
        init_ms = started.elapsed().as_secs_f64() * 1e3,
        "strata-api ready"
    );
    let _keep = Arc::clone(&app.engine);
    lambda_http::run(app.router).await
}

//! The `strata-compactor` Lambda function (see lib.rs). Configured like the
//! API function: `STRATA_STORE` and the standard AWS variables.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_engine::{Engine, EngineConfig};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let url = std::env::var("STRATA_STORE")
        .map_err(|_| Error::from("STRATA_STORE is not set (s3://bucket/prefix)"))?;
    let config = EngineConfig {
        auto_compact: false,
        ..EngineConfig::from_env()
    };
    let engine =
        Arc::new(Engine::open_unchecked(&url, config).map_err(|e| Error::from(e.to_string()))?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let engine = Arc::clone(&engine);
        async move {
            engine
                .check_store_once()
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            strata_compactor::handle(&engine, &event.payload)
                .await
                .map_err(|e| Error::from(e.to_string()))
        }
    }))
    .await
}

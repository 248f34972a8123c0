//! The `strata-replicator` Lambda function (see lib.rs). Configured like the
//! API function: `STRATA_STORE`, `STRATA_REGION` (or `AWS_REGION`), and
//! `STRATA_REGIONS` naming the other regions' stores (`region=s3://…,…`).

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_engine::replication::{open_regions_unchecked, parse_regions, Replicator};
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
    let entries = parse_regions(&std::env::var("STRATA_REGIONS").unwrap_or_default())
        .map_err(|e| Error::from(e.to_string()))?;
    // No network I/O at init: stores are probed before the first event.
    let regions =
        open_regions_unchecked(&entries, &config).map_err(|e| Error::from(e.to_string()))?;
    let engine =
        Arc::new(Engine::open_unchecked(&url, config).map_err(|e| Error::from(e.to_string()))?);
    let all: Vec<Arc<Engine>> = std::iter::once(Arc::clone(&engine))
        .chain(regions.values().cloned())
        .collect();
    let replicator = Arc::new(Replicator::new(engine, regions));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (replicator, all) = (Arc::clone(&replicator), all.clone());
        async move {
            for e in &all {
                e.check_store_once()
                    .await
                    .map_err(|e| Error::from(e.to_string()))?;
            }
            strata_replicator::handle(&replicator, &event.payload)
                .await
                .map_err(|e| Error::from(e.to_string()))
        }
    }))
    .await
}

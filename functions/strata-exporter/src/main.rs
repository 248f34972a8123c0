//! The `strata-exporter` Lambda function: each event is a job from the API
//! function (`strata_api::backups`): `{"kind": "export", …}` writes an export
//! and records its end in the export's description; `{"kind": "restore", …}`
//! fills a restored table (to a point in time, or from an on-demand backup);
//! `{"kind": "import", …}` runs an ImportTable into its new table. Configured like the other functions
//! (`STRATA_STORE`, the AWS variables) plus `STRATA_EXPORT_BUCKETS`
//! (`name=store-url,…`; other bucket names are `s3://<name>`).

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use strata_engine::{Engine, EngineConfig};
use strata_export::jobs::{run, Buckets};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let url = std::env::var("STRATA_STORE")
        .map_err(|_| Error::from("STRATA_STORE is not set (s3://bucket/prefix)"))?;
    let buckets = Buckets::parse(&std::env::var("STRATA_EXPORT_BUCKETS").unwrap_or_default())
        .map_err(Error::from)?;
    let config = EngineConfig {
        auto_compact: false,
        ..EngineConfig::from_env()
    };
    let engine =
        Arc::new(Engine::open_unchecked(&url, config).map_err(|e| Error::from(e.to_string()))?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (engine, buckets) = (Arc::clone(&engine), buckets.clone());
        async move {
            engine
                .check_store_once()
                .await
                .map_err(|e| Error::from(e.to_string()))?;
            run(&engine, &event.payload, &buckets, Arc::new(()))
                .await
                .map_err(Error::from)
        }
    }))
    .await
}

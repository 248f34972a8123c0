//! The start-up check that a store's conditional create is atomic.
//!
//! Strata's commit protocol is "whoever creates `log/<n+1>` first owns
//! sequence n+1". That is only true if the store lets exactly one of several
//! racing `If-None-Match: *` puts of one key succeed. Some S3 look-alikes
//! (s3s-fs, garage) check and then write with no lock, or ignore the header;
//! on them every compare-and-swap silently breaks. So before a store is used,
//! several rounds of racing creates are sent at a fresh probe key, and the
//! store is refused unless every round has exactly one winner.

use std::sync::Arc;

use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use rand::Rng;

/// Racing creates per round, and rounds.
const RACERS: usize = 8;
const ROUNDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "refusing object store {store}: its conditional create is not atomic \
         ({winners} of {racers} racing If-None-Match:* creates of one key succeeded; exactly one must). \
         Strata's commit protocol depends on it; use AWS S3, MinIO, R2, LocalStack or a local directory"
    )]
    NotAtomic {
        store: String,
        winners: usize,
        racers: usize,
    },
    #[error(
        "refusing object store {store}: it does not support conditional create \
         (PUT with If-None-Match: *): {source}"
    )]
    Unsupported {
        store: String,
        source: object_store::Error,
    },
    #[error("object store {store} is unreachable or failing (retry later): {source}")]
    Unreachable {
        store: String,
        source: object_store::Error,
    },
}

impl ProbeError {
    /// True when trying again later may succeed (the store was unreachable).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProbeError::Unreachable { .. })
    }
}

/// Races `RACERS` creates of one fresh key, `ROUNDS` times; refuses the store
/// unless each round has exactly one winner. Cleans up its probe keys.
pub async fn probe_atomic_create(
    store: &Arc<dyn ObjectStore>,
    store_name: &str,
) -> Result<(), ProbeError> {
    let nonce: u64 = rand::rng().random();
    for round in 0..ROUNDS {
        let key = crate::paths::probe(nonce, round);
        let attempts = (0..RACERS).map(|i| {
            let store = Arc::clone(store);
            let key = key.clone();
            tokio::spawn(async move {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                store
                    .put_opts(&key, PutPayload::from(format!("racer {i}")), opts)
                    .await
            })
        });
        let results = futures::future::join_all(attempts).await;
        let mut winners = 0;
        let mut failure = None;
        for r in results {
            match r {
                Ok(Ok(_)) => winners += 1,
                Ok(Err(object_store::Error::AlreadyExists { .. }))
                | Ok(Err(object_store::Error::Precondition { .. })) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(join) => {
                    failure = Some(object_store::Error::Generic {
                        store: "probe",
                        source: Box::new(join),
                    })
                }
            }
        }
        let _ = store.delete(&key).await;
        if let Some(e) = failure {
            return Err(match e {
                object_store::Error::NotImplemented | object_store::Error::NotSupported { .. } => {
                    ProbeError::Unsupported {
                        store: store_name.to_string(),
                        source: e,
                    }
                }
                e => ProbeError::Unreachable {
                    store: store_name.to_string(),
                    source: e,
                },
            });
        }
        if winners != 1 {
            return Err(ProbeError::NotAtomic {
                store: store_name.to_string(),
                winners,
                racers: RACERS,
            });
        }
    }
    Ok(())
}

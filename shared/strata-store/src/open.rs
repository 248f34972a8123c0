//! One constructor from a URL for every store Strata runs on.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;
use url::Url;

use crate::probe::{probe_atomic_create, ProbeError};

/// A store opened from a URL, with the URL kept for messages.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    /// The URL it was opened from, credentials never included.
    pub url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "invalid store URL {url:?}: {reason}. Use file:///abs/dir, memory:// or s3://bucket/prefix"
    )]
    BadUrl { url: String, reason: String },
    #[error("cannot open store {url}: {source}")]
    Store {
        url: String,
        source: object_store::Error,
    },
    #[error("cannot create directory for store {url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Opens a store from a URL and checks that its conditional create is atomic.
///
/// - `file:///abs/dir`: a local directory (created if missing), the embedded default;
/// - `memory://`: a fresh in-memory store, for tests;
/// - `s3://bucket[/prefix]`: S3 or any S3-compatible server, configured from the
///   standard AWS environment (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, `AWS_REGION`
///   or `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
///   `AWS_SESSION_TOKEN`). With an explicit endpoint, requests use path-style
///   addressing, and plain http is allowed when the endpoint is http. Query
///   parameters override the environment for this store only, so stores of
///   different regions can live on different servers:
///   `s3://bucket/prefix?endpoint=http://127.0.0.1:5000&region=eu-west-1`.
pub async fn open_store(url: &str) -> Result<OpenedStore, OpenError> {
    let opened = open_unchecked(url)?;
    probe_atomic_create(&opened.store, &opened.url).await?;
    Ok(opened)
}

/// Opens a store from a URL without the atomicity probe.
pub fn open_unchecked(url: &str) -> Result<OpenedStore, OpenError> {
    let bad = |reason: &str| OpenError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    let store: Arc<dyn ObjectStore> = match parsed.scheme() {
        "memory" => Arc::new(InMemory::new()),
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| bad("a file URL needs an absolute path"))?;
            std::fs::create_dir_all(&dir).map_err(|source| OpenError::Io {
                url: url.to_string(),
                source,
            })?;
            let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|source| OpenError::Store {
                url: url.to_string(),
                source,
            })?;
            Arc::new(crate::local::LocalStore::new(fs))
        }
        "s3" => {
            let bucket = parsed
                .host_str()
                .filter(|b| !b.is_empty())
                .ok_or_else(|| bad("an s3 URL needs a bucket: s3://bucket/prefix"))?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let query = |name: &str| {
                parsed
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            for (k, _) in parsed.query_pairs() {
                if k != "endpoint" && k != "region" {
                    return Err(bad(&format!(
                        "unknown parameter {k:?} (s3 URLs take endpoint and region)"
                    )));
                }
            }
            let endpoint = query("endpoint").or_else(|| {
                env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
            });
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false)
                    .with_endpoint(endpoint);
            }
            if let Some(region) =
                query("region").or_else(|| env_first(&["AWS_REGION", "AWS_DEFAULT_REGION"]))
            {
                builder = builder.with_region(region);
            }
            let s3 = builder.build().map_err(|source| OpenError::Store {
                url: url.to_string(),
                source,
            })?;
            let prefix = parsed.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        }
        other => return Err(bad(&format!("unknown scheme {other:?}"))),
    };
    Ok(OpenedStore {
        store,
        url: url.to_string(),
    })
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::NonAtomicCreateStore;

    #[tokio::test]
    async fn opens_memory_and_file_stores() {
        open_store("memory://").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/sub", dir.path().display());
        open_store(&url).await.unwrap();
        assert!(dir.path().join("sub").is_dir());
    }

    #[tokio::test]
    async fn rejects_bad_urls_with_a_hint() {
        for url in ["nope", "ftp://x/y", "s3:///prefix", "file://relative"] {
            let err = open_store(url).await.unwrap_err().to_string();
            assert!(err.contains("invalid store URL"), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn probe_refuses_non_atomic_create() {
        let racy: Arc<dyn ObjectStore> =
            Arc::new(NonAtomicCreateStore::new(Arc::new(InMemory::new())));
        let err = probe_atomic_create(&racy, "racy://test").await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ProbeError::NotAtomic { .. }), "{msg}");
        assert!(
            msg.contains("racy://test") && msg.contains("not atomic"),
            "{msg}"
        );
    }
}

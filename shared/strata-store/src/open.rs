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
    /// The stores it is made of, each with its URL: itself, or the main
    /// store and each tier's (see [`crate::tiered`]). Each must pass the
    /// atomic-create probe: conditional creates happen in every one.
    pub parts: Vec<(Arc<dyn ObjectStore>, String)>,
    /// How its objects are encrypted at rest (what DescribeTable reports).
    pub at_rest: AtRest,
    /// Where the engine says which KMS key each table's objects are
    /// written with, when every part of the store can honour one (S3
    /// general-purpose buckets; see [`crate::kms`]).
    pub table_keys: Option<Arc<crate::kms::TableKeys>>,
}

/// Encryption at rest of a store's objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AtRest {
    /// As the store keeps them (a local directory: plain files).
    #[default]
    StoreDefault,
    /// `encryption_key=FILE`: AES-256-GCM by Strata ([`crate::encrypted`]).
    Strata { key_id: String },
    /// `sse=AES256` (SSE-S3) or `sse=aws:kms` (SSE-KMS, `sse_kms_key_id`),
    /// asked of S3 on every PUT.
    S3 {
        sse: String,
        kms_key_id: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "invalid store URL {url:?}: {reason}. Use file:///abs/dir, memory:// or s3://bucket/prefix, each optionally with ?log=URL&runs=URL"
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
///   A bucket named like an S3 Express One Zone directory bucket
///   (`name--usw2-az1--x-s3`) is opened as one unless an endpoint is given.
///
/// Any of them may move partitions' log segments or SSTs into stores of
/// their own (see [`crate::tiered`]): `?log=URL` and `?runs=URL`, e.g.
/// `s3://data/strata?log=s3://logs--usw2-az1--x-s3/strata`. A tier URL
/// with parameters of its own is percent-encoded.
pub async fn open_store(url: &str) -> Result<OpenedStore, OpenError> {
    let opened = open_unchecked(url)?;
    for (store, url) in &opened.parts {
        probe_atomic_create(store, url).await?;
    }
    Ok(opened)
}

/// Opens a store from a URL without the atomicity probe (of any of its
/// [`OpenedStore::parts`]).
pub fn open_unchecked(url: &str) -> Result<OpenedStore, OpenError> {
    let bad = |reason: &str| bad_url(url, reason);
    let mut parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    // A tier URL's own parameters must be percent-encoded: a raw `?` in
    // its value would hand the rest of its parameters to the main store.
    for raw in parsed.query().unwrap_or("").split('&') {
        let (k, v) = raw.split_once('=').unwrap_or((raw, ""));
        if (k == "log" || k == "runs" || k == "encryption_key") && v.contains('?') {
            return Err(bad(&format!(
                "percent-encode the parameters of the {k} store's URL (%3F for ?, %26 for &, %3D for =)"
            )));
        }
    }
    let mut tier_urls: [Option<String>; 2] = [None, None];
    let mut key_file: Option<String> = None;
    let mut faults: Option<String> = None;
    let mut rest = Vec::new();
    for (k, v) in parsed.query_pairs() {
        let slot = match k.as_ref() {
            "log" => &mut tier_urls[0],
            "runs" => &mut tier_urls[1],
            "encryption_key" => &mut key_file,
            "faults" => &mut faults,
            _ => {
                rest.push((k.into_owned(), v.into_owned()));
                continue;
            }
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(bad(&format!("{k} is given twice")));
        }
    }
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let key = match &key_file {
        Some(f) => Some(
            crate::encrypted::KeyRing::load(std::path::Path::new(f))
                .map_err(|e| bad(&format!("encryption_key: {e}")))?,
        ),
        None => None,
    };
    let table_keys = Arc::new(crate::kms::TableKeys::default());
    let faults = faults
        .as_deref()
        .map(crate::faults::parse_plan)
        .transpose()
        .map_err(|e| bad(&format!("faults: {e}")))?;
    let main = open_one(&parsed, url, &table_keys)?;
    if tier_urls.iter().all(Option::is_none) {
        return Ok(encrypt(with_faults(main, faults), key));
    }
    refuse_overlaps(std::iter::once(parsed.to_string()).chain(tier_urls.iter().flatten().cloned()))
        .map_err(|reason| bad(&reason))?;
    let mut parts = main.parts.clone();
    // Tables' own keys only when every tier can write with them.
    let mut keyed = main.table_keys.is_some();
    let mut tier = |u: &Option<String>| -> Result<Option<crate::DynStore>, OpenError> {
        let Some(u) = u else { return Ok(None) };
        let p = Url::parse(u).map_err(|e| bad(&format!("tier URL {u:?}: {e}")))?;
        if p.query_pairs().any(|(k, _)| k == "log" || k == "runs") {
            return Err(bad("a tier's URL cannot name tiers of its own"));
        }
        let opened = open_one(&p, u, &table_keys)?;
        keyed &= opened.table_keys.is_some();
        parts.extend(opened.parts);
        Ok(Some(opened.store))
    };
    let (log, runs) = (tier(&tier_urls[0])?, tier(&tier_urls[1])?);
    Ok(encrypt(
        with_faults(
            OpenedStore {
                store: Arc::new(crate::tiered::TieredStore::new(main.store, log, runs)),
                url: url.to_string(),
                parts,
                at_rest: main.at_rest,
                table_keys: keyed.then_some(table_keys),
            },
            faults,
        ),
        key,
    ))
}

/// `opened` with faults injected into its tables' requests (`faults=` in
/// the URL: a test's and the soak's, never production's).
fn with_faults(
    opened: OpenedStore,
    faults: Option<(u64, crate::faults::FaultPlan)>,
) -> OpenedStore {
    match faults {
        None => opened,
        Some((seed, plan)) => OpenedStore {
            store: crate::faults::with_faults(opened.store, seed, plan).0,
            ..opened
        },
    }
}

/// `opened`, its objects encrypted by Strata when a key is given.
fn encrypt(opened: OpenedStore, key: Option<crate::encrypted::KeyRing>) -> OpenedStore {
    match key {
        None => opened,
        Some(key) => OpenedStore {
            at_rest: AtRest::Strata {
                key_id: key.current().id_hex(),
            },
            // Strata's own encryption is every table's.
            table_keys: None,
            store: Arc::new(crate::encrypted::EncryptedStore::new(opened.store, key)),
            ..opened
        },
    }
}

fn bad_url(url: &str, reason: &str) -> OpenError {
    OpenError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

/// Tiers are other stores: one holding another's objects (the same place,
/// or one inside the other) would list them twice. (Every `memory://` is
/// a store of its own.)
fn refuse_overlaps(urls: impl Iterator<Item = String>) -> Result<(), String> {
    let places: Vec<String> = urls
        .filter(|u| !u.starts_with("memory:"))
        .map(|u| {
            u.split('?')
                .next()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_string()
                + "/"
        })
        .collect();
    for (i, a) in places.iter().enumerate() {
        for b in &places[i + 1..] {
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return Err(format!(
                    "{} and {} overlap: each tier needs a place of its own",
                    a.trim_end_matches('/'),
                    b.trim_end_matches('/')
                ));
            }
        }
    }
    Ok(())
}

/// One store from a URL without tier parameters; an S3 general-purpose
/// bucket writes each table's objects with the key `table_keys` names.
fn open_one(
    parsed: &Url,
    url: &str,
    table_keys: &Arc<crate::kms::TableKeys>,
) -> Result<OpenedStore, OpenError> {
    let bad = |reason: &str| bad_url(url, reason);
    if parsed.scheme() != "s3" {
        if let Some((k, _)) = parsed.query_pairs().next() {
            return Err(bad(&format!(
                "unknown parameter {k:?} ({} URLs take only log and runs)",
                parsed.scheme()
            )));
        }
    }
    let mut at_rest = AtRest::StoreDefault;
    let mut keyed = false;
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
                if !["endpoint", "region", "sse", "sse_kms_key_id"].contains(&k.as_ref()) {
                    return Err(bad(&format!(
                        "unknown parameter {k:?} (s3 URLs take endpoint, region, sse, sse_kms_key_id, log, runs and encryption_key)"
                    )));
                }
            }
            use object_store::aws::AmazonS3ConfigKey;
            let config_key = |name: &str| {
                name.parse::<AmazonS3ConfigKey>()
                    .map_err(|e| bad(&format!("{name}: {e}")))
            };
            let sse = query("sse");
            let kms_key_id = query("sse_kms_key_id");
            match (sse.as_deref(), &kms_key_id) {
                (None, None) => {}
                (Some("AES256"), None) => {}
                (Some("aws:kms"), _) => {}
                _ => return Err(bad(
                    "sse is AES256 (SSE-S3) or aws:kms (SSE-KMS, with an optional sse_kms_key_id)",
                )),
            }
            if let Some(sse) = &sse {
                builder = builder.with_config(config_key("aws_server_side_encryption")?, sse);
            }
            if let Some(k) = &kms_key_id {
                builder = builder.with_config(config_key("aws_sse_kms_key_id")?, k);
            }
            let endpoint = query("endpoint").or_else(|| {
                env_first(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
            });
            if let Some(endpoint) = &endpoint {
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
            let directory = is_directory_bucket(bucket);
            if directory && endpoint.is_none() {
                builder = builder.with_s3_express(true);
            }
            if let Some(sse) = sse {
                at_rest = AtRest::S3 { sse, kms_key_id };
            }
            let prefix = parsed.path().trim_matches('/').to_string();
            let build = move |builder: AmazonS3Builder| -> object_store::Result<crate::DynStore> {
                let s3 = builder.build()?;
                Ok(if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix.as_str()))
                })
            };
            let store = build(builder.clone()).map_err(|source| OpenError::Store {
                url: url.to_string(),
                source,
            })?;
            if directory {
                // A directory bucket takes one KMS key, the bucket's.
                store
            } else {
                keyed = true;
                let encryption = config_key("aws_server_side_encryption")?;
                let key_id = config_key("aws_sse_kms_key_id")?;
                let open: crate::kms::OpenWithKey = Arc::new(move |key: &str| {
                    build(
                        builder
                            .clone()
                            .with_config(encryption, "aws:kms")
                            .with_config(key_id, key),
                    )
                });
                Arc::new(crate::kms::KmsRouted::new(
                    store,
                    Arc::clone(table_keys),
                    open,
                ))
            }
        }
        other => return Err(bad(&format!("unknown scheme {other:?}"))),
    };
    Ok(OpenedStore {
        parts: vec![(Arc::clone(&store), url.to_string())],
        store,
        url: url.to_string(),
        at_rest,
        table_keys: keyed.then(|| Arc::clone(table_keys)),
    })
}

/// An S3 Express One Zone directory bucket's name: `base--<az-id>--x-s3`.
pub fn is_directory_bucket(bucket: &str) -> bool {
    bucket
        .strip_suffix("--x-s3")
        .and_then(|b| b.rsplit_once("--"))
        .is_some_and(|(base, az)| !base.is_empty() && !az.is_empty())
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
    async fn tier_parameters_split_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let url = format!("file://{d}/main?log=file://{d}/log&runs=file://{d}/runs");
        let opened = open_store(&url).await.unwrap();
        let p = crate::paths::PartitionPaths::new("t", "i", 0);
        for path in [p.log(1), p.run("r"), p.manifest(1)] {
            opened.store.put(&path, "x".into()).await.unwrap();
        }
        assert!(dir.path().join("log/tables/t/i/p0000/log").is_dir());
        assert!(dir.path().join("runs/tables/t/i/p0000/runs").is_dir());
        assert!(dir.path().join("main/tables/t/i/p0000/manifest").is_dir());
        assert!(!dir.path().join("main/tables/t/i/p0000/log").exists());
        assert_eq!(opened.parts.len(), 3, "each tier is probed");
        for bad in [
            format!("file://{d}/m?log=nope"),
            format!("file://{d}/m?cache=1"),
            "memory://?log=memory://%3Flog%3Dmemory://".to_string(),
            format!("file://{d}/m?log=file://{d}/m/"),
            format!("file://{d}/m?log=file://{d}/m/log"),
            format!("file://{d}/m?log=file://{d}/l&runs=file://{d}/l"),
            "s3://b/p?log=s3://l/p?endpoint=http://x&region=eu-west-1".to_string(),
        ] {
            let err = open_store(&bad).await.unwrap_err().to_string();
            assert!(err.contains("invalid store URL"), "{bad}: {err}");
        }
        // Parameters of the main store survive the tier parameters' removal.
        let err = open_unchecked("s3://b/p?log=memory://&colour=red")
            .unwrap_err()
            .to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn directory_buckets_are_recognised() {
        assert!(is_directory_bucket("logs--usw2-az1--x-s3"));
        for not in ["logs", "logs--x-s3", "--az--x-s3", "logs--usw2-az1"] {
            assert!(!is_directory_bucket(not), "{not}");
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

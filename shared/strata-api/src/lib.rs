//! Strata's DynamoDB API: the JSON 1.0 protocol (`POST /` with
//! `X-Amz-Target: DynamoDB_20120810.<Operation>`), every item, query, scan,
//! batch and table operation, and the HTTP router that both the local server
//! and the Lambda function serve. Storage is `strata_engine`'s business.

pub mod auth;
pub mod backups;
mod capacity;
mod choices;
pub mod error;
pub mod expr;
pub mod http;
mod imports;
mod index_reads;
mod indexes;
mod items;
pub mod json;
mod legacy;
pub mod metrics;
mod on_demand_backups;
pub mod parse_budget;
mod partiql;
mod reads;
mod req;
mod streams;
mod tables;
mod transactions;
mod ttl;

use std::sync::Arc;

use serde_json::Value as Json;
use strata_engine::replication::Regions;
use strata_engine::Engine;

pub use error::{ApiError, ApiResult, ErrorCode};
use req::Req;
pub use tables::iso_time;

/// The account id in ARNs (like DynamoDB Local, Strata has no accounts).
pub const ACCOUNT: &str = "000000000000";

/// The memory parsed request bodies may hold unless the server says
/// otherwise (`--request-memory-mb`).
pub const DEFAULT_REQUEST_MEMORY: u64 = 512 << 20;

/// Serves the DynamoDB API over one engine.
pub struct Api {
    engine: Arc<Engine>,
    /// Region used in ARNs when a request's signature names none.
    default_region: String,
    /// The stores of the other regions global tables may replicate to.
    regions: Regions,
    /// Runs export and restore jobs (see [`backups`]).
    jobs: Option<JobRunner>,
    /// The users requests must be signed by (`--auth`); none: every
    /// request is served.
    auth: Option<Arc<auth::Users>>,
    /// The deployment's key for shard iterators (see [`streams`]), read or
    /// created at first use.
    iterator_key: tokio::sync::OnceCell<Arc<[u8]>>,
    /// Requests being handled at most (`--max-in-flight`), counted once a
    /// request's body is in and its signature checked.
    in_flight: Option<Arc<tokio::sync::Semaphore>>,
    /// The memory requests in flight may hold in parsed bodies.
    parse_budget: parse_budget::ParseBudget,
}

/// Takes an export or restore job (JSON) and starts it somewhere: a task in
/// this process, or another function. The future resolves once the job is
/// handed over (not when it ends), so a Lambda instance is not frozen
/// before the hand-over is done.
pub type JobRunner =
    Arc<dyn Fn(Json) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What is known of the caller: the region from its SigV4 credential scope,
/// and the endpoint it reached (the `Host` it sent).
#[derive(Debug, Clone)]
pub struct Caller {
    pub region: String,
    pub access_key: Option<String>,
    pub host: Option<String>,
    /// The authenticated user, when requests must be signed.
    pub user: Option<Arc<auth::User>>,
}

/// A response: HTTP status and JSON body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// DynamoDB's error code when the request failed.
    pub error_code: Option<ErrorCode>,
}

impl Response {
    /// A failed request's response (logged when it is the server's fault).
    pub fn error(e: &ApiError) -> Self {
        if e.status() >= 500 {
            tracing::error!(code = e.code.name(), message = %e.message, "request failed");
        }
        Response {
            status: e.status(),
            error_code: Some(e.code),
            body: serde_json::to_vec(&e.body()).unwrap_or_else(|_| b"{}".to_vec()),
        }
    }
}

impl Api {
    pub fn new(engine: Arc<Engine>, default_region: impl Into<String>) -> Self {
        Self {
            engine,
            default_region: default_region.into(),
            regions: Regions::new(),
            jobs: None,
            auth: None,
            iterator_key: tokio::sync::OnceCell::new(),
            in_flight: None,
            parse_budget: parse_budget::ParseBudget::new(DEFAULT_REQUEST_MEMORY),
        }
    }

    /// Bounds the memory the requests in flight hold in parsed bodies (see
    /// [`parse_budget`]); 512 MiB unless set.
    pub fn with_request_memory(mut self, bytes: u64) -> Self {
        self.parse_budget = parse_budget::ParseBudget::new(bytes);
        self
    }

    /// Answers 503 ThrottlingException past `max` requests being handled
    /// (rather than queueing without bound).
    pub fn with_max_in_flight(mut self, max: usize) -> Self {
        self.in_flight = Some(Arc::new(tokio::sync::Semaphore::new(max)));
        self
    }

    /// A slot for one request, if the in-flight limit allows it.
    pub(crate) fn in_flight_slot(&self) -> ApiResult<Option<tokio::sync::OwnedSemaphorePermit>> {
        match &self.in_flight {
            None => Ok(None),
            Some(s) => Arc::clone(s).try_acquire_owned().map(Some).map_err(|_| {
                ApiError::new(
                    ErrorCode::Throttling,
                    "Too many requests in flight: try again in a moment.",
                )
            }),
        }
    }

    /// The key that authenticates shard iterators: one per deployment (an
    /// object in the store, created by conditional create by whoever needs
    /// it first), so that every instance accepts every instance's
    /// iterators and nobody can forge one.
    pub(crate) async fn iterator_key(&self) -> ApiResult<Arc<[u8]>> {
        use object_store::{PutMode, PutOptions};
        let unavailable = |e: object_store::Error| {
            ApiError::new(
                ErrorCode::ServiceUnavailable,
                format!("The stream iterator key could not be read: {e}"),
            )
        };
        self.iterator_key
            .get_or_try_init(|| async {
                let store = self.engine.store();
                let path = strata_engine::paths::stream_iterator_key();
                for _ in 0..3 {
                    match store.get(&path).await {
                        Ok(r) => {
                            let bytes = r.bytes().await.map_err(unavailable)?;
                            if bytes.len() != 32 {
                                return Err(ApiError::new(
                                    ErrorCode::ServiceUnavailable,
                                    format!("{path} is not a 32-byte key"),
                                ));
                            }
                            return Ok(Arc::from(bytes.as_ref()));
                        }
                        Err(object_store::Error::NotFound { .. }) => {
                            let key: [u8; 32] = rand::random();
                            let opts = PutOptions {
                                mode: PutMode::Create,
                                ..Default::default()
                            };
                            match store.put_opts(&path, key.to_vec().into(), opts).await {
                                Ok(_) => return Ok(Arc::from(&key[..])),
                                // Another instance created it first: read theirs.
                                Err(object_store::Error::AlreadyExists { .. }) => continue,
                                Err(e) => return Err(unavailable(e)),
                            }
                        }
                        Err(e) => return Err(unavailable(e)),
                    }
                }
                Err(ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "The stream iterator key could not be read",
                ))
            })
            .await
            .cloned()
    }

    /// Requires every request to be signed by one of `users` and allowed
    /// by their policy.
    pub fn with_auth(mut self, users: Arc<auth::Users>) -> Self {
        self.auth = Some(users);
        self
    }

    /// This server's region (ARNs when a request names none; the region a
    /// signature must be scoped to with `--auth`).
    pub fn region(&self) -> &str {
        &self.default_region
    }

    pub fn auth(&self) -> Option<&Arc<auth::Users>> {
        self.auth.as_ref()
    }

    /// Sets who runs export and restore jobs.
    pub fn with_jobs(mut self, runner: JobRunner) -> Self {
        self.jobs = Some(runner);
        self
    }

    pub(crate) fn jobs(&self) -> Option<&JobRunner> {
        self.jobs.as_ref()
    }

    /// Names the other regions (and their stores' engines) that global
    /// tables may have replicas in.
    pub fn with_regions(mut self, regions: Regions) -> Self {
        self.regions = regions;
        self
    }

    pub fn regions(&self) -> &Regions {
        &self.regions
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Reads region and access key from a SigV4 `Authorization` header:
    /// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/dynamodb/aws4_request, …`.
    /// Any credentials are accepted, as DynamoDB Local accepts them.
    pub fn caller(&self, authorization: Option<&str>) -> Caller {
        let scope = authorization
            .and_then(|a| a.split("Credential=").nth(1))
            .map(|c| {
                c.split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .split('/')
                    .collect::<Vec<_>>()
            });
        match scope {
            Some(parts) if parts.len() >= 3 && !parts[2].is_empty() => Caller {
                region: parts[2].to_string(),
                access_key: Some(parts[0].to_string()),
                host: None,
                user: None,
            },
            _ => Caller {
                region: self.default_region.clone(),
                access_key: None,
                host: None,
                user: None,
            },
        }
    }

    /// Handles one request: the `X-Amz-Target` header, the caller, the body.
    pub async fn handle(&self, target: Option<&str>, caller: &Caller, body: &[u8]) -> Response {
        let result = self.dispatch(target, caller, body).await;
        match result {
            // An operation with no response members (TagResource,
            // UntagResource) answers with an empty body, as DynamoDB does.
            Ok(Json::Null) => Response {
                status: 200,
                error_code: None,
                body: Vec::new(),
            },
            Ok(j) => Response {
                status: 200,
                error_code: None,
                body: serde_json::to_vec(&j).unwrap_or_else(|_| b"{}".to_vec()),
            },
            Err(e) => Response::error(&e),
        }
    }

    async fn dispatch(
        &self,
        target: Option<&str>,
        caller: &Caller,
        body: &[u8],
    ) -> ApiResult<Json> {
        let (streams, op) = match target {
            Some(t) if t.starts_with("DynamoDBStreams_20120810.") => {
                (true, &t["DynamoDBStreams_20120810.".len()..])
            }
            Some(t) if t.starts_with("DynamoDB_20120810.") => {
                (false, &t["DynamoDB_20120810.".len()..])
            }
            _ => return Err(ApiError::unknown_operation()),
        };
        let not_json = |e: serde_json::Error| {
            ApiError::serialization(format!(
                "Start of structure or map found where not expected: {e}"
            ))
        };
        // The body's share of the parse budget, held while it is handled.
        let (parsed, _share): (Json, _) = if body.iter().all(u8::is_ascii_whitespace) {
            (Json::Object(Default::default()), None)
        } else {
            let shape = parse_budget::parse_cost(body).map_err(not_json)?;
            let share = self.parse_budget.take(shape).await?;
            (serde_json::from_slice(body).map_err(not_json)?, Some(share))
        };
        let obj = parsed.as_object().ok_or_else(|| {
            ApiError::serialization("Start of structure or map found where not expected")
        })?;
        let req = Req(obj);
        if self.auth.is_some() {
            // The HTTP layer authenticated the caller (a request reaching
            // here unsigned is refused all the same).
            let user = caller.user.as_ref().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MissingAuthenticationToken,
                    "Request is missing Authentication Token",
                )
            })?;
            auth::authz::authorize(self, user, caller, op, &req, streams).await?;
        }
        if streams {
            return streams::dispatch(self, op, &req, caller).await;
        }
        match op {
            "CreateTable" => tables::create(self, &req, caller).await,
            "DescribeTable" => tables::describe(self, &req, caller).await,
            "ListTables" => tables::list(self, &req).await,
            "DeleteTable" => tables::delete(self, &req, caller).await,
            "UpdateTable" => tables::update(self, &req, caller).await,
            "TagResource" => tables::tag(self, &req, caller).await,
            "UntagResource" => tables::untag(self, &req, caller).await,
            "ListTagsOfResource" => tables::list_tags(self, &req, caller).await,
            "DescribeTimeToLive" => ttl::describe_ttl(self, &req).await,
            "UpdateTimeToLive" => ttl::update_ttl(self, &req).await,
            "DescribeEndpoints" => Ok(tables::describe_endpoints(caller)),
            "DescribeLimits" => Ok(tables::describe_limits()),
            "UpdateContinuousBackups" => backups::update_continuous_backups(self, &req).await,
            "DescribeContinuousBackups" => backups::describe_continuous_backups(self, &req).await,
            "ExportTableToPointInTime" => backups::export(self, &req, caller).await,
            "DescribeExport" => backups::describe_export(self, &req).await,
            "ListExports" => backups::list_exports(self, &req).await,
            "RestoreTableToPointInTime" => backups::restore(self, &req, caller).await,
            "ImportTable" => imports::import_table(self, &req, caller).await,
            "DescribeImport" => imports::describe_import(self, &req).await,
            "ListImports" => imports::list_imports(self, &req).await,
            "CreateBackup" => on_demand_backups::create(self, &req, caller).await,
            "DescribeBackup" => on_demand_backups::describe(self, &req, caller).await,
            "ListBackups" => on_demand_backups::list(self, &req, caller).await,
            "DeleteBackup" => on_demand_backups::delete(self, &req, caller).await,
            "RestoreTableFromBackup" => on_demand_backups::restore(self, &req, caller).await,
            "PutItem" => items::put(self, &req).await,
            "GetItem" => items::get(self, &req).await,
            "UpdateItem" => items::update(self, &req).await,
            "DeleteItem" => items::delete(self, &req).await,
            "BatchWriteItem" => items::batch_write(self, &req).await,
            "BatchGetItem" => reads::batch_get(self, &req).await,
            "TransactWriteItems" => transactions::transact_write(self, &req, caller).await,
            "TransactGetItems" => transactions::transact_get(self, &req).await,
            "Query" => reads::query(self, &req).await,
            "Scan" => reads::scan(self, &req).await,
            "ExecuteStatement" => partiql::execute_statement(self, &req).await,
            "BatchExecuteStatement" => partiql::batch_execute_statement(self, &req).await,
            _ => Err(ApiError::unknown_operation()),
        }
    }
}

pub(crate) use capacity::{consumed, read_units};

/// Every operation Strata answers (DynamoDB's, then DynamoDB Streams'), as
/// metrics name them.
pub const OPERATIONS: &[&str] = &[
    "CreateTable",
    "DescribeTable",
    "ListTables",
    "DeleteTable",
    "UpdateTable",
    "TagResource",
    "UntagResource",
    "ListTagsOfResource",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
    "DescribeEndpoints",
    "DescribeLimits",
    "UpdateContinuousBackups",
    "DescribeContinuousBackups",
    "ExportTableToPointInTime",
    "DescribeExport",
    "ListExports",
    "RestoreTableToPointInTime",
    "ImportTable",
    "DescribeImport",
    "ListImports",
    "CreateBackup",
    "DescribeBackup",
    "ListBackups",
    "DeleteBackup",
    "RestoreTableFromBackup",
    "PutItem",
    "GetItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "BatchGetItem",
    "TransactWriteItems",
    "TransactGetItems",
    "Query",
    "Scan",
    "ExecuteStatement",
    "BatchExecuteStatement",
    "ListStreams",
    "DescribeStream",
    "GetShardIterator",
    "GetRecords",
];

/// The operation an `X-Amz-Target` names, as a name from [`OPERATIONS`]
/// ("Unknown" for anything else, so that what a client sends never becomes
/// a new metric label).
pub fn operation_name(target: Option<&str>) -> &'static str {
    let op = target.and_then(|t| t.rsplit_once('.')).map(|(_, op)| op);
    op.and_then(|op| OPERATIONS.iter().find(|o| **o == op).copied())
        .unwrap_or("Unknown")
}

/// A fresh request id for the `x-amzn-RequestId` header.
pub fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{:020}{:012}", t % 10u128.pow(20), n % 1_000_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metrics' list of operations and the dispatch agree: every name
    /// listed is answered (maybe with a validation error), none is unknown.
    #[tokio::test]
    async fn every_listed_operation_is_dispatched() {
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let engine = Engine::with_store(store, "memory", Default::default())
            .await
            .unwrap();
        let api = Api::new(Arc::new(engine), "us-east-1");
        let caller = api.caller(None);
        for op in OPERATIONS {
            let streams = [
                "ListStreams",
                "DescribeStream",
                "GetShardIterator",
                "GetRecords",
            ];
            let service = if streams.contains(op) {
                "DynamoDBStreams_20120810"
            } else {
                "DynamoDB_20120810"
            };
            let target = format!("{service}.{op}");
            let r = api.handle(Some(&target), &caller, b"{}").await;
            assert_ne!(r.error_code, Some(ErrorCode::UnknownOperation), "{op}");
            assert_eq!(operation_name(Some(&target)), *op);
        }
        assert_eq!(operation_name(Some("DynamoDB_20120810.Nope")), "Unknown");
        assert_eq!(operation_name(None), "Unknown");
    }
}

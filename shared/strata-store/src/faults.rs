//! Seeded fault injection.
//!
//! [`FaultInjector`] makes requests fail the ways a real object store fails:
//! an error before the request takes effect, a timeout (a delay, then an
//! error, with the request not applied), and a lost response (the request took
//! effect, the caller is told it failed). The random choices come from a
//! seeded generator, so a failing test replays exactly.
//!
//! [`NonAtomicCreateStore`] is a different kind of fault: a store whose
//! conditional create checks and then writes without a lock, like s3s-fs. It
//! exists to prove that Strata refuses such a store at start-up.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::intercept::{Intercepted, Interceptor, RequestKind};

/// What to inject, as probabilities per request (0.0 to 1.0).
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    /// Fail before the request reaches the store.
    pub error_rate: f64,
    /// Wait `timeout`, then fail; the request does not reach the store.
    pub timeout_rate: f64,
    pub timeout: Duration,
    /// Let a PUT or DELETE take effect, then report failure.
    pub lost_response_rate: f64,
    /// Let a conditional PUT take effect, then report that the object
    /// already existed: what a store client that retries after a 500 which
    /// hid a success (object_store's S3 client does) reports to its caller.
    pub conflict_after_success_rate: f64,
    /// Only requests of these kinds are touched (all kinds when empty).
    pub kinds: Vec<RequestKind>,
    /// Only paths containing this text are touched (all paths when empty).
    pub path_contains: String,
    /// While this file exists, every touched request fails before it
    /// reaches the store: a network partition a test opens and heals.
    pub cut_while: Option<std::path::PathBuf>,
}

/// Counts of what was injected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InjectedFaults {
    pub errors: u64,
    pub timeouts: u64,
    pub lost_responses: u64,
    pub false_conflicts: u64,
}

#[derive(Debug)]
pub struct FaultInjector {
    enabled: AtomicBool,
    plan: Mutex<FaultPlan>,
    rng: Mutex<SmallRng>,
    errors: AtomicU64,
    timeouts: AtomicU64,
    lost: AtomicU64,
    conflicts: AtomicU64,
}

#[derive(Debug)]
struct InjectedFault(&'static str);

impl fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected fault: {}", self.0)
    }
}

impl std::error::Error for InjectedFault {}

fn fault(what: &'static str) -> object_store::Error {
    object_store::Error::Generic {
        store: "fault-injection",
        source: Box::new(InjectedFault(what)),
    }
}

impl FaultInjector {
    pub fn new(seed: u64, plan: FaultPlan) -> Self {
        Self {
            enabled: AtomicBool::new(true),
            plan: Mutex::new(plan),
            rng: Mutex::new(SmallRng::seed_from_u64(seed)),
            errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
        }
    }

    /// Turns injection on or off without losing the plan or the seed's position.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
    }

    pub fn set_plan(&self, plan: FaultPlan) {
        *self.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    pub fn injected(&self) -> InjectedFaults {
        InjectedFaults {
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            lost_responses: self.lost.load(Ordering::Relaxed),
            false_conflicts: self.conflicts.load(Ordering::Relaxed),
        }
    }

    /// Draws once for this request; `None` when the request is not targeted.
    fn draw(&self, kind: RequestKind, path: &Path) -> Option<(f64, FaultPlan)> {
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let plan = self.plan.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let kind_ok = plan.kinds.is_empty() || plan.kinds.contains(&kind);
        let path_ok = plan.path_contains.is_empty() || path.as_ref().contains(&plan.path_contains);
        if !(kind_ok && path_ok) {
            return None;
        }
        let x = self
            .rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .random::<f64>();
        Some((x, plan))
    }
}

#[async_trait]
impl Interceptor for FaultInjector {
    async fn before(&self, kind: RequestKind, path: &Path) -> Result<()> {
        let Some((x, plan)) = self.draw(kind, path) else {
            return Ok(());
        };
        if plan.cut_while.as_ref().is_some_and(|f| f.exists()) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return Err(fault("the link to the store is cut"));
        }
        if x < plan.error_rate {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return Err(fault("request failed"));
        }
        if x < plan.error_rate + plan.timeout_rate {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(plan.timeout).await;
            return Err(fault("request timed out"));
        }
        Ok(())
    }

    async fn after(&self, kind: RequestKind, path: &Path, succeeded: bool) -> Result<()> {
        if !succeeded || !matches!(kind, RequestKind::Put | RequestKind::Delete) {
            return Ok(());
        }
        let Some((x, plan)) = self.draw(kind, path) else {
            return Ok(());
        };
        if x < plan.lost_response_rate {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(fault("response lost after the request took effect"));
        }
        if kind == RequestKind::Put
            && x < plan.lost_response_rate + plan.conflict_after_success_rate
        {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            return Err(object_store::Error::AlreadyExists {
                path: path.to_string(),
                source: Box::new(InjectedFault(
                    "conflict reported after the create took effect",
                )),
            });
        }
        Ok(())
    }
}

pub type FaultStore = Intercepted<FaultInjector>;

/// Wraps `inner` with seeded fault injection per `plan`.
/// A plan from text, as a store URL's `faults=` gives it:
/// `error:0.02,timeout:0.01,lost:0.02,conflict:0.01,seed:7` (probabilities
/// per request; timeouts wait 200 ms), and `cut:FILE` (every request fails
/// while FILE exists). Only the tables' objects are touched (`tables/`), so
/// the store's start-up probe is not.
pub fn parse_plan(text: &str) -> std::result::Result<(u64, FaultPlan), String> {
    let mut plan = FaultPlan {
        timeout: Duration::from_millis(200),
        path_contains: "tables/".into(),
        ..FaultPlan::default()
    };
    let mut seed = 0;
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once(':')
            .ok_or_else(|| format!("{part:?}: expected NAME:VALUE"))?;
        if name == "seed" {
            seed = value.parse().map_err(|_| format!("seed {value:?}"))?;
            continue;
        }
        if name == "cut" {
            plan.cut_while = Some(std::path::PathBuf::from(value));
            continue;
        }
        let p: f64 = value
            .parse()
            .ok()
            .filter(|p| (0.0..=1.0).contains(p))
            .ok_or_else(|| format!("{name}: {value:?} is not a probability"))?;
        match name {
            "error" => plan.error_rate = p,
            "timeout" => plan.timeout_rate = p,
            "lost" => plan.lost_response_rate = p,
            "conflict" => plan.conflict_after_success_rate = p,
            _ => return Err(format!("{name:?}: error, timeout, lost, conflict or seed")),
        }
    }
    Ok((seed, plan))
}

pub fn with_faults(
    inner: Arc<dyn ObjectStore>,
    seed: u64,
    plan: FaultPlan,
) -> (Arc<FaultStore>, Arc<FaultInjector>) {
    let hook = Arc::new(FaultInjector::new(seed, plan));
    (Arc::new(Intercepted::new(inner, Arc::clone(&hook))), hook)
}

/// A store whose `PutMode::Create` is check-then-write with no lock between,
/// as s3s-fs 0.14 implements it: racing creates of one key can all "win".
#[derive(Debug)]
pub struct NonAtomicCreateStore {
    inner: Arc<dyn ObjectStore>,
}

impl NonAtomicCreateStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for NonAtomicCreateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NonAtomicCreate({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for NonAtomicCreateStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Create) {
            match self.inner.head(location).await {
                Ok(_) => {
                    return Err(object_store::Error::AlreadyExists {
                        path: location.to_string(),
                        source: "exists".into(),
                    })
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
            // The window in which another create can slip through.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let opts = PutOptions {
                mode: PutMode::Overwrite,
                ..opts
            };
            return self.inner.put_opts(location, payload, opts).await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_from_a_store_url() {
        let (seed, plan) =
            parse_plan("error:0.03,timeout:0.01,lost:0.02,conflict:0.01,seed:19").unwrap();
        assert_eq!(seed, 19);
        assert_eq!(
            (
                plan.error_rate,
                plan.timeout_rate,
                plan.lost_response_rate,
                plan.conflict_after_success_rate
            ),
            (0.03, 0.01, 0.02, 0.01)
        );
        assert_eq!(plan.path_contains, "tables/");
        let (_, cut) = parse_plan("cut:/tmp/link-cut").unwrap();
        assert_eq!(
            cut.cut_while,
            Some(std::path::PathBuf::from("/tmp/link-cut"))
        );
        for bad in ["error", "error:2", "bogus:0.1", "seed:x"] {
            assert!(parse_plan(bad).is_err(), "{bad}");
        }
    }
}

//! Latency injection: every request waits a configured time per kind before
//! reaching the inner store, so a local store behaves like S3 in benchmarks.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, Result};

use crate::intercept::{Intercepted, Interceptor, RequestKind};

/// Added latency per request kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyProfile {
    pub get: Duration,
    pub put: Duration,
    pub list: Duration,
    pub head: Duration,
    pub delete: Duration,
}

impl LatencyProfile {
    /// Round-trip times in the range S3 Standard shows inside one region:
    /// PUT 20 ms, GET 10 ms, LIST 20 ms, HEAD 10 ms, DELETE 20 ms.
    pub fn s3_like() -> Self {
        let ms = Duration::from_millis;
        Self {
            get: ms(10),
            put: ms(20),
            list: ms(20),
            head: ms(10),
            delete: ms(20),
        }
    }

    /// Round-trip times like S3 Express One Zone's (single-digit ms): PUT,
    /// LIST and DELETE 5 ms, GET and HEAD 3 ms.
    pub fn s3_express_like() -> Self {
        let ms = Duration::from_millis;
        Self {
            get: ms(3),
            put: ms(5),
            list: ms(5),
            head: ms(3),
            delete: ms(5),
        }
    }

    pub fn for_kind(&self, kind: RequestKind) -> Duration {
        match kind {
            RequestKind::Get => self.get,
            RequestKind::Put => self.put,
            RequestKind::List => self.list,
            RequestKind::Head => self.head,
            RequestKind::Delete => self.delete,
        }
    }
}

/// The interceptor; its profile can be changed while the store is in use.
#[derive(Debug, Default)]
pub struct LatencyInjector {
    profile: RwLock<LatencyProfile>,
}

impl LatencyInjector {
    pub fn set(&self, profile: LatencyProfile) {
        *self.profile.write().unwrap_or_else(|p| p.into_inner()) = profile;
    }

    pub fn get(&self) -> LatencyProfile {
        *self.profile.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Interceptor for LatencyInjector {
    async fn before(&self, kind: RequestKind, _path: &Path) -> Result<()> {
        let d = self.get().for_kind(kind);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        Ok(())
    }
}

pub type LatencyStore = Intercepted<LatencyInjector>;

/// Wraps `inner` so that each request first waits per `profile`.
pub fn with_latency(
    inner: Arc<dyn ObjectStore>,
    profile: LatencyProfile,
) -> (Arc<LatencyStore>, Arc<LatencyInjector>) {
    let hook = Arc::new(LatencyInjector::default());
    hook.set(profile);
    (Arc::new(Intercepted::new(inner, Arc::clone(&hook))), hook)
}

//! Request counting: how many GET/PUT/LIST/HEAD/DELETE requests a piece of
//! work cost. The count is deterministic, and on a real object store it is
//! what drives both the bill and the latency.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use object_store::path::Path;
use object_store::{ObjectStore, Result};

use crate::intercept::{Intercepted, Interceptor, RequestKind};

/// Counters for each [`RequestKind`].
#[derive(Debug, Default)]
pub struct RequestCounter {
    counts: [AtomicU64; 5],
    put_bytes: AtomicU64,
    /// The same counts per operation ([`crate::attribution`]).
    by_operation: Mutex<BTreeMap<&'static str, RequestCounts>>,
}

/// A point-in-time copy of a [`RequestCounter`]; subtract two to get the cost
/// of what happened between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub get: u64,
    pub put: u64,
    pub list: u64,
    pub head: u64,
    pub delete: u64,
}

impl RequestCounter {
    fn slot(kind: RequestKind) -> usize {
        RequestKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_default()
    }

    /// Bytes sent in PUT payloads so far (what write amplification is
    /// measured by).
    pub fn put_bytes(&self) -> u64 {
        self.put_bytes.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> RequestCounts {
        let n = |k| self.counts[Self::slot(k)].load(Ordering::Relaxed);
        RequestCounts {
            get: n(RequestKind::Get),
            put: n(RequestKind::Put),
            list: n(RequestKind::List),
            head: n(RequestKind::Head),
            delete: n(RequestKind::Delete),
        }
    }

    /// The counts per operation the requests were made for
    /// ([`crate::attribution::BACKGROUND`] for those made outside any).
    pub fn by_operation(&self) -> BTreeMap<&'static str, RequestCounts> {
        self.by_operation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl RequestCounts {
    fn add(&mut self, kind: RequestKind) {
        *match kind {
            RequestKind::Get => &mut self.get,
            RequestKind::Put => &mut self.put,
            RequestKind::List => &mut self.list,
            RequestKind::Head => &mut self.head,
            RequestKind::Delete => &mut self.delete,
        } += 1;
    }

    /// The count of one kind.
    pub fn of(&self, kind: RequestKind) -> u64 {
        match kind {
            RequestKind::Get => self.get,
            RequestKind::Put => self.put,
            RequestKind::List => self.list,
            RequestKind::Head => self.head,
            RequestKind::Delete => self.delete,
        }
    }

    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.head + self.delete
    }

    /// Counts by kind name, for printing.
    pub fn by_kind(&self) -> BTreeMap<&'static str, u64> {
        RequestKind::ALL
            .iter()
            .map(|k| (k.name(), self.of(*k)))
            .collect()
    }
}

impl std::ops::Sub for RequestCounts {
    type Output = RequestCounts;
    fn sub(self, o: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get.saturating_sub(o.get),
            put: self.put.saturating_sub(o.put),
            list: self.list.saturating_sub(o.list),
            head: self.head.saturating_sub(o.head),
            delete: self.delete.saturating_sub(o.delete),
        }
    }
}

impl std::fmt::Display for RequestCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GET {} PUT {} LIST {} HEAD {} DELETE {}",
            self.get, self.put, self.list, self.head, self.delete
        )
    }
}

#[async_trait]
impl Interceptor for RequestCounter {
    async fn before(&self, kind: RequestKind, _path: &Path) -> Result<()> {
        self.counts[Self::slot(kind)].fetch_add(1, Ordering::Relaxed);
        let op = crate::attribution::current().unwrap_or(crate::attribution::BACKGROUND);
        self.by_operation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default()
            .add(kind);
        Ok(())
    }

    fn put_payload(&self, bytes: u64) {
        self.put_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// A store that counts the requests made to `inner`.
pub type CountingStore = Intercepted<RequestCounter>;

/// Wraps `inner` in a counting decorator and returns it with its counter.
pub fn counting(inner: Arc<dyn ObjectStore>) -> (Arc<CountingStore>, Arc<RequestCounter>) {
    let counter = Arc::new(RequestCounter::default());
    let store = Arc::new(Intercepted::new(inner, Arc::clone(&counter)));
    (store, counter)
}

//! Scripted faults: one request at a time, exactly when a test wants it.
//!
//! [`faults`](crate::faults) draws faults at random from a seed; the
//! interleavings that break a protocol usually need one request to misbehave
//! at one precise moment. A [`ScriptedStore`] forwards everything to its inner
//! store except the requests a test has scripted:
//!
//! - [`ScriptedStore::hold_next_create`]: the next conditional PUT of a
//!   matching path is answered with S3's `409 ConditionalRequestConflict`
//!   (which object_store reports as `AlreadyExists`) while the PUT is kept
//!   in flight; it takes effect right after the next GET or HEAD of that
//!   path has answered ([`ScriptedStore::hold_next_create_for`]: the n-th). That is a create still in progress when its writer
//!   (or its writer's own retry) looks.
//! - [`ScriptedStore::stall_next`]: the next matching request waits at a
//!   [`Gate`] before it is sent, or after it took effect and before its
//!   answer is returned (a paused process, a store brownout).
//! - [`ScriptedStore::lose_next_answer`]: the next matching request takes
//!   effect and its caller is told it failed.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use tokio::sync::Notify;

use crate::intercept::{read_whole, RequestKind};

/// Where a stalled request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Before it reaches the store (nothing has happened yet).
    BeforeSending,
    /// After it took effect, before the caller hears the answer.
    BeforeAnswering,
}

/// Holds a stalled request until opened.
#[derive(Debug, Default)]
pub struct Gate {
    open: AtomicBool,
    opened: Notify,
    reached: AtomicBool,
    arrived: Notify,
}

impl Gate {
    /// Lets the stalled request (and any later one at this gate) go on.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.opened.notify_waiters();
    }

    /// Waits until a request is stalled here.
    pub async fn reached(&self) {
        loop {
            let arrived = self.arrived.notified();
            if self.reached.load(Ordering::SeqCst) {
                return;
            }
            arrived.await;
        }
    }

    /// Whether a request has been stalled here.
    pub fn was_reached(&self) -> bool {
        self.reached.load(Ordering::SeqCst)
    }

    async fn pass(&self) {
        self.reached.store(true, Ordering::SeqCst);
        self.arrived.notify_waiters();
        loop {
            let opened = self.opened.notified();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            opened.await;
        }
    }
}

#[derive(Debug)]
enum Action {
    HoldCreate(u32),
    Stall(Stall, Arc<Gate>),
    LoseAnswer,
}

#[derive(Debug)]
struct Rule {
    kinds: Vec<RequestKind>,
    path_contains: String,
    action: Action,
}

#[derive(Debug)]
struct Held {
    path: Path,
    payload: PutPayload,
    /// GETs or HEADs of the path still to answer before it lands.
    reads_left: u32,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ScriptedStore {
    inner: Arc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
    held: Mutex<Vec<Held>>,
}

/// The error S3 answers a conditional PUT with while another conditional
/// write of the key is in flight, as object_store reports it.
fn conflict(path: &Path) -> object_store::Error {
    object_store::Error::AlreadyExists {
        path: path.to_string(),
        source: "Server returned non-2xx status code: 409 Conflict: <Code>ConditionalRequestConflict</Code>".into(),
    }
}

impl ScriptedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            rules: Mutex::new(Vec::new()),
            held: Mutex::new(Vec::new()),
        }
    }

    /// See the module documentation.
    pub fn hold_next_create(&self, path_contains: &str) {
        self.hold_next_create_for(path_contains, 1);
    }

    /// Like [`ScriptedStore::hold_next_create`], landing after the `reads`-th
    /// GET or HEAD of the path.
    pub fn hold_next_create_for(&self, path_contains: &str, reads: u32) {
        self.push(
            vec![RequestKind::Put],
            path_contains,
            Action::HoldCreate(reads.max(1)),
        );
    }

    /// The next request of one of `kinds` to a path containing
    /// `path_contains` waits at the returned gate.
    pub fn stall_next(&self, kinds: &[RequestKind], path_contains: &str, at: Stall) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        self.push(
            kinds.to_vec(),
            path_contains,
            Action::Stall(at, Arc::clone(&gate)),
        );
        gate
    }

    /// The next request of one of `kinds` to a path containing
    /// `path_contains` takes effect, and its caller hears an error.
    pub fn lose_next_answer(&self, kinds: &[RequestKind], path_contains: &str) {
        self.push(kinds.to_vec(), path_contains, Action::LoseAnswer);
    }

    /// Creates still held in flight.
    pub fn held_creates(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn push(&self, kinds: Vec<RequestKind>, path_contains: &str, action: Action) {
        self.rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Rule {
                kinds,
                path_contains: path_contains.to_string(),
                action,
            });
    }

    /// Takes the first rule that matches this request.
    fn take(&self, kind: RequestKind, path: &Path, create: bool) -> Option<Action> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        let i = rules.iter().position(|r| {
            r.kinds.contains(&kind)
                && path.as_ref().contains(&r.path_contains)
                && (create || !matches!(r.action, Action::HoldCreate(_)))
        })?;
        Some(rules.remove(i).action)
    }

    async fn run<T, F>(&self, kind: RequestKind, path: &Path, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let action = self.take(kind, path, false);
        let lose = matches!(action, Some(Action::LoseAnswer));
        let stall = match action {
            Some(Action::Stall(at, gate)) => Some((at, gate)),
            _ => None,
        };
        if let Some((Stall::BeforeSending, gate)) = &stall {
            gate.pass().await;
        }
        let out = fut.await;
        if let Some((Stall::BeforeAnswering, gate)) = &stall {
            gate.pass().await;
        }
        if matches!(kind, RequestKind::Get | RequestKind::Head) {
            self.land_held(path).await;
        }
        if lose {
            return Err(object_store::Error::Generic {
                store: "scripted",
                source: "the answer was lost after the request took effect".into(),
            });
        }
        out
    }

    /// Lets held creates of `path` take effect.
    async fn land_held(&self, path: &Path) {
        let landing: Vec<Held> = {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            for h in held.iter_mut().filter(|h| h.path == *path) {
                h.reads_left = h.reads_left.saturating_sub(1);
            }
            let (now, later) = held
                .drain(..)
                .partition(|h| h.path == *path && h.reads_left == 0);
            *held = later;
            now
        };
        for h in landing {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            let _ = self.inner.put_opts(&h.path, h.payload, opts).await;
        }
    }
}

impl fmt::Display for ScriptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scripted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for ScriptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        if create {
            let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            let i = rules.iter().position(|r| {
                matches!(r.action, Action::HoldCreate(_))
                    && location.as_ref().contains(&r.path_contains)
            });
            if let Some(i) = i {
                let reads_left = match rules.remove(i).action {
                    Action::HoldCreate(n) => n,
                    _ => 1,
                };
                drop(rules);
                self.held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(Held {
                        path: location.clone(),
                        payload,
                        reads_left,
                    });
                return Err(conflict(location));
            }
        }
        self.run(
            RequestKind::Put,
            location,
            self.inner.put_opts(location, payload, opts),
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let kind = if options.head {
            RequestKind::Head
        } else {
            RequestKind::Get
        };
        self.run(
            kind,
            location,
            read_whole(self.inner.as_ref(), location, options),
        )
        .await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.run(
            RequestKind::Get,
            location,
            self.inner.get_range(location, range),
        )
        .await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.run(RequestKind::Head, location, self.inner.head(location))
            .await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.run(RequestKind::Delete, location, self.inner.delete(location))
            .await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
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

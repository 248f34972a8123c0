//! A generic decorator: one `ObjectStore` implementation that forwards every
//! request to an inner store and lets a small [`Interceptor`] act before and
//! after it. Counting, latency and fault injection are each an interceptor, so
//! the request classification below is written once.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// The request kinds an object store bills and that Strata counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RequestKind {
    Get,
    Put,
    List,
    Head,
    Delete,
}

impl RequestKind {
    pub const ALL: [RequestKind; 5] = [
        RequestKind::Get,
        RequestKind::Put,
        RequestKind::List,
        RequestKind::Head,
        RequestKind::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RequestKind::Get => "GET",
            RequestKind::Put => "PUT",
            RequestKind::List => "LIST",
            RequestKind::Head => "HEAD",
            RequestKind::Delete => "DELETE",
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Hooks run around each request of an [`Intercepted`] store.
#[async_trait]
pub trait Interceptor: fmt::Debug + Send + Sync + 'static {
    /// Runs before the request reaches the inner store. An error is returned
    /// to the caller and the inner store is never called.
    async fn before(&self, _kind: RequestKind, _path: &Path) -> Result<()> {
        Ok(())
    }

    /// Runs after the inner store answered (`succeeded` tells how). Returning
    /// an error replaces the answer: this is how a response can be "lost"
    /// after the request took effect.
    async fn after(&self, _kind: RequestKind, _path: &Path, _succeeded: bool) -> Result<()> {
        Ok(())
    }

    /// Told the size of each PUT's payload before it is sent.
    fn put_payload(&self, _bytes: u64) {}
}

/// A GET whose body has been read in full: what a decorator returns when
/// its hooks must cover the whole request, as it would be on the wire.
pub(crate) async fn read_whole(
    inner: &dyn ObjectStore,
    location: &Path,
    options: GetOptions,
) -> Result<GetResult> {
    let res = inner.get_opts(location, options).await?;
    let meta = res.meta.clone();
    let range = res.range.clone();
    let attributes = res.attributes.clone();
    let bytes = res.bytes().await?;
    Ok(GetResult {
        payload: object_store::GetResultPayload::Stream(
            futures::stream::once(async move { Ok(bytes) }).boxed(),
        ),
        meta,
        range,
        attributes,
    })
}

/// An object store that runs an [`Interceptor`] around every request to `inner`.
#[derive(Debug)]
pub struct Intercepted<I> {
    inner: Arc<dyn ObjectStore>,
    hook: Arc<I>,
}

impl<I: Interceptor> Intercepted<I> {
    pub fn new(inner: Arc<dyn ObjectStore>, hook: Arc<I>) -> Self {
        Self { inner, hook }
    }

    /// The interceptor, for reading its state (counters) or changing its settings.
    pub fn hook(&self) -> &Arc<I> {
        &self.hook
    }

    async fn run<T, F>(&self, kind: RequestKind, path: &Path, fut: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        self.hook.before(kind, path).await?;
        let out = fut.await;
        self.hook.after(kind, path, out.is_ok()).await?;
        out
    }

    fn list_stream(
        &self,
        prefix: Option<&Path>,
        stream: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        // One LIST request is charged when the listing starts; paging is the
        // inner store's business.
        let hook = Arc::clone(&self.hook);
        let path = prefix.cloned().unwrap_or_default();
        futures::stream::once(async move {
            match hook.before(RequestKind::List, &path).await {
                Ok(()) => stream,
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }
}

impl<I: Interceptor> fmt::Display for Intercepted<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait]
impl<I: Interceptor> ObjectStore for Intercepted<I> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.hook.put_payload(payload.content_length() as u64);
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
        self.run(
            RequestKind::Put,
            location,
            self.inner.put_multipart_opts(location, opts),
        )
        .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let kind = if options.head {
            RequestKind::Head
        } else {
            RequestKind::Get
        };
        // Read the body inside the interception so that latency and faults
        // cover the whole request, as they would on the wire.
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
        self.list_stream(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.list_stream(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let path = prefix.cloned().unwrap_or_default();
        self.run(
            RequestKind::List,
            &path,
            self.inner.list_with_delimiter(prefix),
        )
        .await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.run(RequestKind::Put, to, self.inner.copy(from, to))
            .await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.run(
            RequestKind::Put,
            to,
            self.inner.copy_if_not_exists(from, to),
        )
        .await
    }
}

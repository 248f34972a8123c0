//! The local-directory store (the embedded default): object_store's
//! `LocalFileSystem`, with whole-object reads done inline.
//!
//! `LocalFileSystem` runs every file access on tokio's blocking pool. For the
//! reads Strata makes most — probing `log/<seq>` for a strongly consistent
//! read, usually answered by ENOENT in microseconds — the thread handoff
//! costs far more than the read, and it dominated the local server's CPU
//! profile. Small whole-object reads from a local disk are done inline
//! instead; everything else (writes, ranged reads, listings) is delegated
//! unchanged.

use std::fmt;
use std::io::Read;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Objects larger than this are read through `LocalFileSystem` as usual.
const INLINE_READ_MAX: u64 = 1 << 20;

#[derive(Debug)]
pub struct LocalStore {
    fs: LocalFileSystem,
}

impl LocalStore {
    pub fn new(fs: LocalFileSystem) -> Self {
        Self { fs }
    }

    /// Reads a whole small object on the calling thread; `None` means "let
    /// `LocalFileSystem` do it" (large object, or anything unusual).
    fn read_inline(&self, location: &Path) -> Option<Result<GetResult>> {
        let path = self.fs.path_to_filesystem(location).ok()?;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Some(Err(object_store::Error::NotFound {
                    path: location.to_string(),
                    source: Box::new(e),
                }))
            }
            Err(_) => return None,
        };
        let meta = file.metadata().ok()?;
        if !meta.is_file() || meta.len() > INLINE_READ_MAX {
            return None;
        }
        let mut buf = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut buf).ok()?;
        let size = buf.len() as u64;
        let last_modified = meta
            .modified()
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from)?;
        let bytes = Bytes::from(buf);
        Some(Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(bytes) }).boxed(),
            ),
            meta: ObjectMeta {
                location: location.clone(),
                last_modified,
                size,
                e_tag: None,
                version: None,
            },
            range: 0..size,
            attributes: Default::default(),
        }))
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fs)
    }
}

fn is_plain_get(o: &GetOptions) -> bool {
    o.if_match.is_none()
        && o.if_none_match.is_none()
        && o.if_modified_since.is_none()
        && o.if_unmodified_since.is_none()
        && o.range.is_none()
        && o.version.is_none()
        && !o.head
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.fs.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.fs.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if is_plain_get(&options) {
            if let Some(res) = self.read_inline(location) {
                return res;
            }
        }
        self.fs.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.fs.get_range(location, range).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.fs.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.fs.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.fs.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.fs.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.fs.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.fs.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inline_reads_agree_with_local_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let p = Path::from("a/b/obj");
        store
            .put(&p, PutPayload::from("hello world"))
            .await
            .unwrap();
        let got = store.get(&p).await.unwrap();
        assert_eq!(got.meta.size, 11);
        assert_eq!(got.bytes().await.unwrap(), "hello world");
        assert_eq!(store.get_range(&p, 6..11).await.unwrap(), "world");
        let err = store.get(&Path::from("a/b/missing")).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        let ranged = store
            .get_opts(
                &p,
                GetOptions {
                    range: Some((0..5).into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(ranged.bytes().await.unwrap(), "hello");
    }
}

//! The local-directory store (the embedded default): object_store's
//! `LocalFileSystem`, with durable writes and whole-object reads done inline.
//!
//! `LocalFileSystem` writes a staging file and links or renames it into
//! place without any `fsync`: after a power failure an acknowledged object
//! can vanish or come back empty. Here every PUT writes its staging file,
//! syncs it, links it into place (a conditional create: the link fails if
//! the name exists) or renames it (an overwrite), and syncs the directory,
//! all before it answers; directories it creates are synced into their
//! parents. [`LocalStore::syncs`] counts those syncs, so tests can check that
//! every acknowledged write made them.
//!
//! `LocalFileSystem` runs every file access on tokio's blocking pool. For the
//! reads Strata makes most — probing `log/<seq>` for a strongly consistent
//! read, usually answered by ENOENT in microseconds — the thread handoff
//! costs far more than the read, and it dominated the local server's CPU
//! profile. Small whole-object reads from a local disk are done inline
//! instead; everything else (writes, ranged reads, listings) is delegated
//! unchanged.

use std::collections::HashSet;
use std::fmt;
use std::io::{Read, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Objects larger than this are read through `LocalFileSystem` as usual.
const INLINE_READ_MAX: u64 = 1 << 20;

#[derive(Debug)]
pub struct LocalStore {
    fs: LocalFileSystem,
    syncs: Arc<AtomicU64>,
    /// Directories this process has synced into their parents.
    durable_dirs: Arc<Mutex<HashSet<PathBuf>>>,
}

impl LocalStore {
    pub fn new(fs: LocalFileSystem) -> Self {
        // The store's root and what is above it are taken as they are.
        let root = fs
            .path_to_filesystem(&Path::from("x"))
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_path_buf()));
        Self {
            fs,
            syncs: Arc::new(AtomicU64::new(0)),
            durable_dirs: Arc::new(Mutex::new(root.into_iter().collect())),
        }
    }

    /// `fsync`s made so far (files and directories), all before the PUT
    /// that needed them answered.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
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

fn generic(e: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    }
}

/// Writes `payload` to `path` so that it survives a power failure once this
/// returns: staging file written and synced, then placed (`place_durably`).
fn write_durably(
    path: &std::path::Path,
    payload: &PutPayload,
    create: bool,
    syncs: &AtomicU64,
    durable_dirs: &Mutex<HashSet<PathBuf>>,
) -> std::io::Result<()> {
    place_durably(path, create, syncs, durable_dirs, |staging| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(staging)?;
        for chunk in payload.iter() {
            f.write_all(chunk)?;
        }
        f.sync_all()?;
        syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// Puts an object at `path` so that it survives a power failure once this
/// returns: `stage` makes a staging file whose content is durable (written
/// and synced, or a hard link to a durable file), which is then linked
/// (`create`: fails with `AlreadyExists` if the name is taken) or renamed
/// into place, and the directory synced. The staging name ends in
/// `#<digits>`, which `LocalFileSystem`'s listings skip.
fn place_durably(
    path: &std::path::Path,
    create: bool,
    syncs: &AtomicU64,
    durable_dirs: &Mutex<HashSet<PathBuf>>,
    stage: impl FnOnce(&std::path::Path) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no directory"))?;
    ensure_dir(dir, syncs, durable_dirs)?;
    let mut staging = path.as_os_str().to_owned();
    staging.push(format!("#{}", rand::random::<u64>()));
    let staging = std::path::PathBuf::from(staging);
    let placed = stage(&staging).and_then(|()| {
        if create {
            std::fs::hard_link(&staging, path)
        } else {
            std::fs::rename(&staging, path)
        }
    });
    if create || placed.is_err() {
        let _ = std::fs::remove_file(&staging);
    }
    placed?;
    sync_dir(dir, syncs)
}

/// Runs a blocking file operation on object `location` off the runtime,
/// its errors as object_store's.
async fn blocking(
    location: &Path,
    op: impl FnOnce() -> std::io::Result<()> + Send + 'static,
) -> Result<()> {
    let location = location.to_string();
    tokio::task::spawn_blocking(op)
        .await
        .map_err(|e| generic(std::io::Error::other(e)))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => object_store::Error::AlreadyExists {
                path: location,
                source: Box::new(e),
            },
            std::io::ErrorKind::NotFound => object_store::Error::NotFound {
                path: location,
                source: Box::new(e),
            },
            _ => generic(e),
        })
}

fn sync_dir(dir: &std::path::Path, syncs: &AtomicU64) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()?;
    syncs.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Creates `dir` and any missing parents, each synced into its parent.
/// A directory that already exists is synced into its parent too, once per
/// process: another writer may have just created it and not synced it yet,
/// and an object acknowledged inside it must not depend on that writer.
fn ensure_dir(
    dir: &std::path::Path,
    syncs: &AtomicU64,
    durable_dirs: &Mutex<HashSet<PathBuf>>,
) -> std::io::Result<()> {
    let known = |d: &std::path::Path| {
        durable_dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(d)
    };
    if known(dir) {
        return Ok(());
    }
    let Some(parent) = dir.parent() else {
        return Ok(()); // the root
    };
    ensure_dir(parent, syncs, durable_dirs)?;
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    sync_dir(parent, syncs)?;
    durable_dirs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(dir.to_path_buf());
    Ok(())
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
        let create = match opts.mode {
            PutMode::Create => true,
            PutMode::Overwrite => false,
            // Not supported by LocalFileSystem either: let it say so.
            PutMode::Update(_) => return self.fs.put_opts(location, payload, opts).await,
        };
        let path = self.fs.path_to_filesystem(location)?;
        let (syncs, dirs) = (Arc::clone(&self.syncs), Arc::clone(&self.durable_dirs));
        blocking(location, move || {
            write_durably(&path, &payload, create, &syncs, &dirs)
        })
        .await?;
        Ok(PutResult {
            e_tag: None,
            version: None,
        })
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

    /// A hard link, durable before it answers: staged, renamed into place,
    /// its directory synced (`LocalFileSystem` syncs nothing).
    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        let src = self.fs.path_to_filesystem(from)?;
        let dst = self.fs.path_to_filesystem(to)?;
        let (syncs, dirs) = (Arc::clone(&self.syncs), Arc::clone(&self.durable_dirs));
        blocking(from, move || {
            place_durably(&dst, false, &syncs, &dirs, |staging| {
                std::fs::hard_link(&src, staging)
            })
        })
        .await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.fs.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_synced_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let p = Path::from("t/log/00000000000000000001.seg");
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .put_opts(&p, PutPayload::from("one"), create.clone())
            .await
            .unwrap();
        // File, its directory, and every directory on the way synced into
        // its parent (once per process).
        let first = store.syncs();
        assert_eq!(first, 4, "syncs stop at the store root");
        let err = store
            .put_opts(&p, PutPayload::from("two"), create)
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "{err}"
        );
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), "one");
        store.put(&p, PutPayload::from("three")).await.unwrap();
        assert_eq!(store.get(&p).await.unwrap().bytes().await.unwrap(), "three");
        // No staging file is left behind or listed.
        let listed: Vec<_> = store
            .list(None)
            .map(|m| m.unwrap().location)
            .collect()
            .await;
        assert_eq!(listed, vec![p.clone()]);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("t/log"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[tokio::test]
    async fn copies_are_synced_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let (from, to) = (Path::from("a/runs/x.sst"), Path::from("b/runs/x.sst"));
        store.put(&from, PutPayload::from("sst")).await.unwrap();
        let before = store.syncs();
        store.copy(&from, &to).await.unwrap();
        // The new directories into their parents, then the copy's directory.
        assert_eq!(store.syncs() - before, 3);
        assert_eq!(store.get(&to).await.unwrap().bytes().await.unwrap(), "sst");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("b/runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no staging file is left: {names:?}");
        let err = store.copy(&Path::from("nope"), &to).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    }

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
        // Each PUT synced its file, its directory and the directories it made.
        assert!(store.syncs() >= 2, "{}", store.syncs());
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

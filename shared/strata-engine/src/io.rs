//! Thin helpers over the object store that every component uses: a GET that
//! says "absent" instead of failing, and the conditional create.

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, PutMode, PutOptions, PutPayload};

use crate::error::{Error, Result};

/// The whole object, or `None` when it does not exist.
pub async fn get_opt(store: &dyn ObjectStore, path: &Path) -> Result<Option<Bytes>> {
    match store.get(path).await {
        Ok(r) => match r.bytes().await {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::store(path, e)),
        },
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path, e)),
    }
}

pub async fn get_range(
    store: &dyn ObjectStore,
    path: &Path,
    start: u64,
    end: u64,
) -> Result<Bytes> {
    store
        .get_range(path, start..end)
        .await
        .map_err(|e| Error::store(path, e))
}

/// What a conditional create found.
// `Created::Created` reads as the sentence it is.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created the object.
    Created,
    /// The object already existed; nothing was written.
    Exists,
    /// S3's `409 ConditionalRequestConflict`: another conditional write of
    /// the name (perhaps the caller's own timed-out attempt) was in flight.
    /// Nothing was written by this call; the name may or may not be taken.
    Conflict,
}

/// `PUT` with `If-None-Match: *`. Any other failure is returned as the
/// store's error: the create may or may not have taken effect.
pub async fn create(
    store: &dyn ObjectStore,
    path: &Path,
    bytes: Vec<u8>,
) -> Result<Created, object_store::Error> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(path, PutPayload::from(bytes), opts).await {
        Ok(_) => Ok(Created::Created),
        // object_store reports S3's 412 as AlreadyExists wrapping a
        // Precondition error, and S3's 409 as a bare AlreadyExists.
        Err(object_store::Error::AlreadyExists { source, .. }) if is_conflict(source.as_ref()) => {
            Ok(Created::Conflict)
        }
        Err(object_store::Error::AlreadyExists { .. })
        | Err(object_store::Error::Precondition { .. }) => Ok(Created::Exists),
        Err(e) => Err(e),
    }
}

/// Reads a name whose conditional create came back `refused`: once after a
/// 412 (it existed, so absent now means collected since), a few times 20 to
/// 80 ms apart after S3's 409 (a create still in flight shows within
/// moments). `None`: not there.
pub async fn read_refused<T, F, Fut>(refused: Created, mut read: F) -> Result<Option<T>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let reads = if refused == Created::Conflict { 4 } else { 1 };
    for i in 0..reads {
        if let Some(found) = read().await? {
            return Ok(Some(found));
        }
        if i + 1 < reads {
            tokio::time::sleep(std::time::Duration::from_millis(20 << i)).await;
        }
    }
    Ok(None)
}

/// Whether an AlreadyExists came from an HTTP 409 (a conflicting request in
/// flight) rather than from an existing object.
fn is_conflict(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    if source.downcast_ref::<object_store::Error>().is_some() {
        return false; // 412 Precondition Failed / 304, wrapped
    }
    let text = source.to_string();
    text.contains("409 Conflict") || text.contains("ConditionalRequestConflict")
}

/// Every object under `prefix`, in name order.
pub async fn list(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>> {
    let mut v: Vec<ObjectMeta> = store
        .list(Some(prefix))
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))?;
    v.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(v)
}

/// Objects under `prefix` whose names sort after `offset`, in name order.
pub async fn list_after(
    store: &dyn ObjectStore,
    prefix: &Path,
    offset: &Path,
) -> Result<Vec<ObjectMeta>> {
    let mut v: Vec<ObjectMeta> = store
        .list_with_offset(Some(prefix), offset)
        .try_collect()
        .await
        .map_err(|e| Error::store(prefix, e))?;
    v.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(v)
}

/// Whether an object exists (one HEAD).
pub async fn exists(store: &dyn ObjectStore, path: &Path) -> Result<bool> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(Error::store(path, e)),
    }
}

/// Deletes, treating "already gone" as done.
pub async fn delete(store: &dyn ObjectStore, path: &Path) -> Result<()> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(Error::store(path, e)),
    }
}

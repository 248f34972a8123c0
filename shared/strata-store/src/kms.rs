//! A KMS key per table on S3 (SSE-KMS), as DynamoDB's SSESpecification
//! offers: the objects of a table that names a key are written with that
//! key, the others with the store's own encryption (`sse=` in its URL).
//!
//! S3 takes the key on each write (PUT, multipart, CopyObject), and
//! object_store sets it per client, so a [`KmsRouted`] store keeps one S3
//! client per key in use (built on first use from the store's own
//! configuration) and sends each write to the client of its table's key;
//! reads, lists and deletes need no key (S3 decrypts for any caller with
//! `kms:Decrypt`) and go to the store's own client. Which table names which
//! key is the engine's knowledge: it writes it into the shared
//! [`TableKeys`] when it learns a table's descriptor, before it writes any
//! of the table's objects. A table's objects are the ones under
//! `tables/<table>/<incarnation>/`; an index table's (`<table>!<index>`)
//! are its table's; descriptors (`tables/<table>/schema/`) are the store's.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::DynStore;

/// The KMS key each table asks for, by table name (index tables excluded:
/// they are their table's).
#[derive(Debug, Default)]
pub struct TableKeys {
    by_table: RwLock<HashMap<String, String>>,
    /// Probes in flight: a probe object's id and the key it is written with.
    probes: RwLock<HashMap<String, String>>,
}

/// Where probe objects live.
const PROBES: &str = "_strata/kms-probe";

impl TableKeys {
    /// Records the key `table`'s objects are written with from now on
    /// (`None`: the store's own encryption).
    pub fn set(&self, table: &str, key: Option<&str>) {
        let table = base_table(table);
        let mut by_table = self.by_table.write().unwrap_or_else(|p| p.into_inner());
        match key {
            Some(k) => {
                if by_table.get(table).map(String::as_str) != Some(k) {
                    by_table.insert(table.to_string(), k.to_string());
                }
            }
            None => {
                by_table.remove(table);
            }
        }
    }

    /// The key the object at `path` is written with, if its table names one.
    /// A table's descriptors (`tables/<table>/schema/…`: its settings, no
    /// items) are the store's, so that a descriptor changing the key is
    /// written like the ones before it.
    pub fn for_path(&self, path: &Path) -> Option<String> {
        if let Some(id) = path
            .as_ref()
            .strip_prefix(PROBES)
            .and_then(|r| r.strip_prefix('/'))
        {
            let probes = self.probes.read().unwrap_or_else(|p| p.into_inner());
            return probes.get(id).cloned();
        }
        let mut parts = path.parts();
        if parts.next()?.as_ref() != "tables" {
            return None;
        }
        let table = parts.next()?;
        if parts.next()?.as_ref() == "schema" {
            return None;
        }
        let by_table = self.by_table.read().unwrap_or_else(|p| p.into_inner());
        by_table.get(base_table(table.as_ref())).cloned()
    }
}

impl TableKeys {
    /// A path whose write is made with `key` until [`TableKeys::end_probe`]:
    /// to check a key before a table takes it.
    pub fn start_probe(&self, key: &str) -> Path {
        let id = crate::paths::random_id();
        let mut probes = self.probes.write().unwrap_or_else(|p| p.into_inner());
        probes.insert(id.clone(), key.to_string());
        Path::from(format!("{PROBES}/{id}"))
    }

    pub fn end_probe(&self, path: &Path) {
        if let Some(id) = path
            .as_ref()
            .strip_prefix(PROBES)
            .and_then(|r| r.strip_prefix('/'))
        {
            let mut probes = self.probes.write().unwrap_or_else(|p| p.into_inner());
            probes.remove(id);
        }
    }
}

/// The table an index table belongs to (`t!ix` → `t`).
fn base_table(table: &str) -> &str {
    table.split('!').next().unwrap_or(table)
}

/// S3 clients kept at most (one per key in use).
const MAX_CLIENTS: usize = 64;

/// Opens the store's S3 client again with another KMS key.
pub type OpenWithKey = Arc<dyn Fn(&str) -> Result<DynStore> + Send + Sync>;

/// An S3 store whose writes carry their table's KMS key.
pub struct KmsRouted {
    default: DynStore,
    keys: Arc<TableKeys>,
    open: OpenWithKey,
    clients: Mutex<HashMap<String, DynStore>>,
}

impl fmt::Debug for KmsRouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsRouted({})", self.default)
    }
}

impl fmt::Display for KmsRouted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl KmsRouted {
    pub fn new(default: DynStore, keys: Arc<TableKeys>, open: OpenWithKey) -> Self {
        Self {
            default,
            keys,
            open,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The client a write to `path` goes to.
    fn writer(&self, path: &Path) -> Result<DynStore> {
        let Some(key) = self.keys.for_path(path) else {
            return Ok(Arc::clone(&self.default));
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(Arc::clone(c));
        }
        if clients.len() >= MAX_CLIENTS {
            // Keys named and dropped over a long life: start over.
            clients.clear();
        }
        let c = (self.open)(&key)?;
        clients.insert(key, Arc::clone(&c));
        Ok(c)
    }
}

#[async_trait]
impl ObjectStore for KmsRouted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.writer(location)?
            .put_opts(location, payload, opts)
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.writer(location)?
            .put_multipart_opts(location, opts)
            .await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.default.get_opts(location, options).await
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.default.get_range(location, range).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.default.get_ranges(location, ranges).await
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.default.head(location).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.default.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.default.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.default.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.default.list_with_delimiter(prefix).await
    }

    /// A copy is a write of `to` (CopyObject takes the target's key).
    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.writer(to)?.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.writer(to)?.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn writes_go_to_their_tables_key_and_reads_to_the_store() {
        let default: DynStore = Arc::new(InMemory::new());
        let keyed: DynStore = Arc::new(InMemory::new());
        let opened = Arc::new(Mutex::new(Vec::new()));
        let open: OpenWithKey = {
            let (keyed, opened) = (Arc::clone(&keyed), Arc::clone(&opened));
            Arc::new(move |k: &str| {
                opened.lock().unwrap().push(k.to_string());
                Ok(Arc::clone(&keyed))
            })
        };
        let keys = Arc::new(TableKeys::default());
        let store = KmsRouted::new(Arc::clone(&default), Arc::clone(&keys), open);
        keys.set("secret", Some("key-1"));
        for p in [
            "tables/secret/i/p0000/log/1",
            "tables/secret!byX/i/p0000/log/1",
            "tables/secret/schema/00000000000000000001",
        ] {
            store.put(&Path::from(p), "x".into()).await.unwrap();
        }
        assert!(default
            .head(&Path::from("tables/secret/schema/00000000000000000001"))
            .await
            .is_ok());
        store
            .put(&Path::from("tables/plain/i/x"), "x".into())
            .await
            .unwrap();
        store
            .put(&Path::from("backups/b.json"), "x".into())
            .await
            .unwrap();
        assert!(keyed
            .head(&Path::from("tables/secret/i/p0000/log/1"))
            .await
            .is_ok());
        assert!(keyed
            .head(&Path::from("tables/secret!byX/i/p0000/log/1"))
            .await
            .is_ok());
        assert!(default.head(&Path::from("tables/plain/i/x")).await.is_ok());
        assert!(default.head(&Path::from("backups/b.json")).await.is_ok());
        assert_eq!(
            *opened.lock().unwrap(),
            vec!["key-1".to_string()],
            "one client per key"
        );
        // A key taken off: the store's own encryption again.
        keys.set("secret", None);
        store
            .put(&Path::from("tables/secret/i/y"), "x".into())
            .await
            .unwrap();
        assert!(default.head(&Path::from("tables/secret/i/y")).await.is_ok());
    }
}

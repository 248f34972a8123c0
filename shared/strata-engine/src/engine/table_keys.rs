//! A KMS key per table: the descriptor's `SSESpecification` (DynamoDB's,
//! kept in `meta` by the API) names it, and the engine tells the store
//! (`strata_store::kms`) whenever it installs a descriptor, which it does
//! before it writes any of the table's objects (a change of key reaches
//! other instances as their descriptors are refreshed, within the
//! catalog's staleness bound).

use serde_json::Value as Json;

use super::Engine;
use crate::catalog::TableDescriptor;

/// The KMS key a table's descriptor asks for, if any.
pub fn kms_key(desc: &TableDescriptor) -> Option<&str> {
    let sse = desc.meta.get("SSESpecification")?;
    // KMS is the only type DynamoDB takes, and the one it means unsaid.
    let kms = sse.get("Enabled") == Some(&Json::Bool(true))
        && sse.get("SSEType").and_then(Json::as_str).unwrap_or("KMS") == "KMS";
    kms.then(|| sse.get("KMSMasterKeyId").and_then(Json::as_str))
        .flatten()
        .filter(|k| !k.is_empty())
}

/// A table's settings for a replica in another region: a KMS key is a
/// region's own (S3 refuses another region's key), so the replica keeps
/// its store's encryption.
pub fn without_table_key(meta: &Json) -> Json {
    let mut meta = meta.clone();
    if let Some(sse) = meta
        .get_mut("SSESpecification")
        .and_then(Json::as_object_mut)
    {
        sse.remove("KMSMasterKeyId");
    }
    meta
}

impl Engine {
    /// Checks that the store can write with `key` (it exists, is in this
    /// region and the server may use it), as DynamoDB checks a table's key
    /// when it is given: one small object written with it and deleted.
    pub async fn check_table_key(&self, key: &str) -> crate::Result<()> {
        let Some(keys) = &self.table_keys else {
            return Err(crate::Error::Validation(
                "this store cannot write a table with a KMS key of its own".into(),
            ));
        };
        let path = keys.start_probe(key);
        let store = self.ctx.store.as_ref();
        let written = store.put(&path, "probe".into()).await;
        keys.end_probe(&path);
        match written {
            Ok(_) => {
                let _ = store.delete(&path).await;
                Ok(())
            }
            Err(e) => Err(crate::Error::Validation(format!(
                "KMS key {key} cannot be used to write this table's objects: {e}"
            ))),
        }
    }

    /// Whether tables can have KMS keys of their own on this store.
    pub fn supports_table_keys(&self) -> bool {
        self.table_keys.is_some()
    }

    /// Tells the store which key `desc`'s objects are written with. An
    /// index table's objects are its table's (the store knows them by the
    /// table's name), so only tables themselves say.
    pub(super) fn note_table_key(&self, desc: &TableDescriptor) {
        if let Some(keys) = &self.table_keys {
            if !crate::index::is_index_table(&desc.name) {
                keys.set(&desc.name, kms_key(desc));
            }
        }
    }
}

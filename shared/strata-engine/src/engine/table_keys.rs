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

impl Engine {
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

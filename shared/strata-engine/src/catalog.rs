//! Table descriptors, versioned by conditional create of `schema/<v>`.
//! A delete is a new version marked deleted; a re-create is the next version
//! with a new incarnation, so it never sees its predecessor's data.

use object_store::path::Path;
use object_store::ObjectStore;
use serde::{Deserialize, Serialize};

use crate::codec::{seal, unseal};
use crate::error::{Error, Result};
use crate::index::IndexDef;
use crate::io::{self, Created};
use crate::partition_map::{PartitionMap, SplitRecord};
use crate::paths;
use crate::value::KeySchema;

const MAGIC: &[u8; 4] = b"STTD";
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDescriptor {
    pub name: String,
    /// The schema object version this descriptor was read from.
    pub version: u64,
    /// Random id of this incarnation of the table; its data lives under it.
    pub incarnation: String,
    pub key_schema: KeySchema,
    /// The partitions the table was created with (see `partition_map`).
    pub partitions: u32,
    /// The splits made since, in order (see [`TableDescriptor::map`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splits: Vec<SplitRecord>,
    pub created_at_ms: u64,
    #[serde(default)]
    pub deleted: bool,
    /// Keep each mutation's old image in the log (for streams).
    #[serde(default)]
    pub keep_old_images: bool,
    /// Every region of the global table this table belongs to, this one
    /// included, sorted; empty for a table of one region.
    #[serde(default)]
    pub replicas: Vec<String>,
    /// Old-image generation: incremented each time `keep_old_images`
    /// changes, so it is odd exactly while old images are kept. Enabling a
    /// stream starts a new odd generation: the stream is the log segments
    /// of that generation. See [`TableDescriptor::images_gen`].
    #[serde(default)]
    pub images_gen: u64,
    /// Point-in-time recovery window in seconds (0: off). GC keeps every
    /// manifest, run and log segment any moment of the window needs.
    #[serde(default)]
    pub pitr_window_secs: u64,
    /// Settings the engine stores but does not interpret (billing mode,
    /// tags, TTL, stream and SSE specifications…), owned by the API layer.
    #[serde(default)]
    pub meta: serde_json::Value,
    /// The table's secondary indexes (see `index`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexDef>,
    /// This table's commit window in ms, overriding the engine's
    /// `commit_window` (see [`crate::EngineConfig::commit_window`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_window_ms: Option<u32>,
}

impl TableDescriptor {
    /// The index named `name`.
    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The old-image generation in force (descriptors written before it
    /// existed read as generation 1 when they keep old images).
    pub fn images_gen(&self) -> u64 {
        next_images_gen(self.images_gen, self.keep_old_images)
    }

    /// `newer` is this descriptor with more splits recorded and nothing
    /// else changed (what lets an instance keep its partitions' views).
    pub fn only_splits_added(&self, newer: &TableDescriptor) -> bool {
        newer.splits.starts_with(&self.splits)
            && TableDescriptor {
                version: newer.version,
                splits: newer.splits.clone(),
                ..self.clone()
            } == *newer
    }

    /// Which partitions are live and which one holds a key.
    pub fn map(&self) -> PartitionMap<'_> {
        PartitionMap {
            base: self.partitions,
            splits: &self.splits,
        }
    }
}

/// The generation after `gen` that is odd exactly when `keep` is.
pub fn next_images_gen(gen: u64, keep: bool) -> u64 {
    if (gen % 2 == 1) == keep {
        gen
    } else {
        gen + 1
    }
}

/// What CreateTable asks for.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub key_schema: KeySchema,
    /// Defaults to the engine's `default_partitions`.
    pub partitions: Option<u32>,
    pub keep_old_images: bool,
    /// The global table's regions (see [`TableDescriptor::replicas`]).
    pub replicas: Vec<String>,
    /// Opaque settings kept with the table (see [`TableDescriptor::meta`]).
    pub meta: serde_json::Value,
    /// Secondary indexes (see [`TableDescriptor::indexes`]). A table with
    /// indexes keeps old images: maintaining an index needs them.
    pub indexes: Vec<IndexDef>,
    /// See [`TableDescriptor::commit_window_ms`].
    pub commit_window_ms: Option<u32>,
}

/// Most partitions a table may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// A stored table's name: a user table's, or an index table's
/// (`<table>!<index>`, see `index`).
pub fn validate_stored_name(name: &str) -> Result<()> {
    match name.split_once('!') {
        Some((table, index)) => {
            validate_table_name(table)?;
            validate_table_name(index)
        }
        None => validate_table_name(name),
    }
}

/// DynamoDB's table-name rule: 3 to 255 of `[a-zA-Z0-9_.-]`.
pub fn validate_table_name(name: &str) -> Result<()> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !(3..=255).contains(&name.len()) || !ok_chars {
        return Err(Error::Validation(format!(
            "1 validation error detected: Value '{name}' at 'tableName' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 3 and 255"
        )));
    }
    Ok(())
}

fn encode(d: &TableDescriptor) -> Vec<u8> {
    seal(MAGIC, VERSION, &serde_json::to_vec(d).unwrap_or_default())
}

fn decode(path: &Path, bytes: &[u8]) -> Result<TableDescriptor> {
    let (_, body) = unseal(MAGIC, bytes).map_err(|e| Error::corrupt(path, e))?;
    let d: TableDescriptor = serde_json::from_slice(body).map_err(|e| Error::corrupt(path, e))?;
    if d.partitions == 0 || d.partitions > MAX_PARTITIONS {
        return Err(Error::corrupt(
            path,
            format!("partition count {} out of range", d.partitions),
        ));
    }
    Ok(d)
}

async fn read(store: &dyn ObjectStore, path: &Path) -> Result<Option<TableDescriptor>> {
    match io::get_opt(store, path).await? {
        Some(b) => Ok(Some(decode(path, &b)?)),
        None => Ok(None),
    }
}

/// The latest descriptor version of `name` (possibly a deleted marker).
pub async fn latest(store: &dyn ObjectStore, name: &str) -> Result<Option<TableDescriptor>> {
    let versions = io::list(store, &paths::schema_dir(name)).await?;
    let Some(last) = versions
        .iter()
        .rfind(|m| paths::parse_seq(&m.location).is_some())
    else {
        return Ok(None);
    };
    let desc = read(store, &last.location).await?;
    // A newer version may have been created since the listing.
    match desc {
        Some(d) => newest_from(store, d).await.map(Some),
        None => Ok(None),
    }
}

/// Follows `schema/<v+1>`, `<v+2>`… from `d` to the newest version.
pub async fn newest_from(
    store: &dyn ObjectStore,
    mut d: TableDescriptor,
) -> Result<TableDescriptor> {
    while let Some(next) = read(store, &paths::schema(&d.name, d.version + 1)).await? {
        d = next;
    }
    Ok(d)
}

/// Publishes `d` as version `d.version`; `Exists` means someone else did
/// first. A conflict reported for our own create (a store client retrying
/// after a failure that hid its success) is recognised by reading back.
pub async fn publish(store: &dyn ObjectStore, d: &TableDescriptor) -> Result<Created> {
    let path = paths::schema(&d.name, d.version);
    let created = io::create(store, &path, encode(d))
        .await
        .map_err(|e| Error::store(&path, e))?;
    if created == Created::Created {
        return Ok(Created::Created);
    }
    // Refused: ours (a retried create), someone else's, or (S3's 409) one
    // still in flight, which shows within moments.
    match io::read_refused(created, || read(store, &path)).await? {
        Some(existing) if existing == *d => Ok(Created::Created),
        Some(_) => Ok(Created::Exists),
        None if created == Created::Exists => Ok(Created::Exists),
        None => Err(Error::store_msg(
            &path,
            "a conflicting create of this table version is still in flight",
        )),
    }
}

/// Publishes the descriptor version that routes by `split` (after its
/// children's manifests exist), or finds one that already does. Racing
/// finishers: the loser re-reads and finds the split recorded.
pub async fn record_split(
    store: &dyn ObjectStore,
    known: &TableDescriptor,
    split: SplitRecord,
) -> Result<TableDescriptor> {
    let mut current = newest_from(store, known.clone()).await?;
    loop {
        if current.deleted || current.incarnation != known.incarnation {
            return Err(Error::TableNotFound(known.name.clone()));
        }
        if current
            .splits
            .iter()
            .any(|s| s.partition == split.partition)
        {
            return Ok(current);
        }
        let mut next = current.clone();
        next.version += 1;
        next.splits.push(split.clone());
        match publish(store, &next).await? {
            Created::Created => return Ok(next),
            Created::Exists | Created::Conflict => {
                current = newest_from(store, current).await?;
            }
        }
    }
}

/// Names of every table that has ever had a descriptor (deleted ones included).
pub async fn names(store: &dyn ObjectStore) -> Result<Vec<String>> {
    let root = paths::tables_root();
    let listing = store
        .list_with_delimiter(Some(&root))
        .await
        .map_err(|e| Error::store(&root, e))?;
    let mut names: Vec<String> = listing
        .common_prefixes
        .iter()
        .filter_map(|p| p.filename().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

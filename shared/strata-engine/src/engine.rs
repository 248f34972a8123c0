//! The engine: tables, and the routing of every read and write to the
//! partition that holds its key.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock};

use object_store::ObjectStore;

use crate::cache::{CacheStats, Caches};
use crate::catalog::{self, TableDescriptor, TableSpec, MAX_PARTITIONS};
use crate::config::EngineConfig;
use crate::error::{Error, Result};
use crate::index::follower::{CursorCache, IndexSignal};
use crate::index::is_index_table;
use crate::io::{self, Created};
use crate::keys::{begins_with_prefix, encode_component, encode_key, prefix_end};
use crate::manifest::SortedRun;
use crate::ops::{Committed, Consistency, Page, SortKeyCondition, WriteRequest};
use crate::partition::{
    above_lo, below_hi, CommitStats, CompactionOutcome, CompactionStats, Ctx, GcReport, LogRead,
    Partition, ReplicatedChange,
};
use crate::paths;
use crate::run::Version;
use crate::segment::Stamp;
use crate::value::{Item, ItemKey, KeyType, KeyValue};

pub use transactions::{CancelReason, TxnOptions, TxnResult, TxnStop, TxnWrite, MAX_TXN_ACTIONS};
mod backups;
mod collect;
mod expiry;
mod indexes;
mod ingest;
mod point_in_time;
mod stats;
mod table_keys;
mod transactions;

pub use backups::BackupRecord;
pub use expiry::ExpiryReport;
pub use ingest::Ingested;

pub use point_in_time::PointInTime;
pub use stats::{PartitionStorage, RunStorage, TableStorage};
pub use table_keys::{kms_key, without_table_key};

/// Starts the descriptor's old-image generation in every partition's log
/// (see `Partition::mark_images_gen`). A partition that fails is logged: its
/// next write starts the generation instead.
async fn mark_images_gen(t: &TableHandle) {
    let leaves: Vec<&Arc<Partition>> = t.leaves().collect();
    let marks = leaves.iter().map(|p| p.mark_images_gen());
    for (p, res) in leaves.iter().zip(futures::future::join_all(marks).await) {
        if let Err(e) = res {
            tracing::warn!(table = %t.desc.name, partition = p.part, error = %e,
                "could not mark the start of a new old-image generation");
        }
    }
}

pub(crate) struct TableHandle {
    pub(crate) desc: Arc<TableDescriptor>,
    /// Every partition the table has had, live or sealed by a split, by
    /// number (see `partition_map`).
    pub(crate) partitions: BTreeMap<u32, Arc<Partition>>,
    checked: Mutex<crate::clock::Tick>,
}

impl TableHandle {
    /// The live partitions, in number order.
    pub(crate) fn leaves(&self) -> impl Iterator<Item = &Arc<Partition>> + '_ {
        self.desc
            .map()
            .leaves()
            .into_iter()
            .filter_map(|l| self.partitions.get(&l))
    }
}

/// Splits one request may route around (each finished on the way).
const MAX_REROUTES: u32 = 2 * crate::partition_map::MAX_SPLIT_DEPTH;

/// A Strata engine over one object store. Cheap to share (`Arc`); any number
/// of engines, in any number of processes, may use one store at once.
pub struct Engine {
    ctx: Arc<Ctx>,
    store_name: String,
    /// How the store encrypts what it holds (DescribeTable's SSEDescription).
    at_rest: strata_store::AtRest,
    /// Where each table's KMS key is told to the store (S3), if it can
    /// write tables with keys of their own (see `engine/table_keys.rs`).
    table_keys: Option<Arc<strata_store::kms::TableKeys>>,
    /// The stores the probe checks: the store itself, or each tier of a
    /// split one (see `strata_store::tiered`).
    probed: Vec<(Arc<dyn ObjectStore>, String)>,
    tables: RwLock<HashMap<String, Arc<TableHandle>>>,
    /// Set once [`Engine::check_store_once`] has passed.
    checked: tokio::sync::OnceCell<()>,
    /// Base partitions written since the index follower last looked.
    index_signal: IndexSignal,
    index_cursors: CursorCache,
    /// What the expiry sweep learnt of each table's SSTs.
    expiry_memo: Mutex<HashMap<String, expiry::ExpiryMemo>>,
    /// What each backup pins (see `Engine::pinned`).
    backup_pins: backups::PinCache,
}

impl Engine {
    /// Opens the store at `url` (see [`strata_store::open_store`]), refusing
    /// it unless its conditional create is atomic.
    pub async fn open(url: &str, config: EngineConfig) -> Result<Engine> {
        let opened = strata_store::open_store(url).await?;
        Ok(Self::new_unchecked(opened, config))
    }

    /// Opens the store at `url` without the atomicity probe (no network I/O):
    /// call [`Engine::check_store`] before serving. For a Lambda function's
    /// init phase.
    pub fn open_unchecked(url: &str, config: EngineConfig) -> Result<Engine> {
        let opened = strata_store::open_unchecked(url)?;
        Ok(Self::new_unchecked(opened, config))
    }

    /// Refuses the store unless its conditional create is atomic (the probe
    /// [`Engine::open`] runs).
    pub async fn check_store(&self) -> Result<()> {
        for (store, name) in &self.probed {
            strata_store::probe_atomic_create(store, name).await?;
        }
        Ok(())
    }

    /// [`Engine::check_store`] the first time only (a failed check is tried
    /// again next time): what a function opened without network I/O at
    /// init calls before each event.
    pub async fn check_store_once(&self) -> Result<()> {
        self.checked
            .get_or_try_init(|| self.check_store())
            .await
            .map(|_| ())
    }

    /// An engine over a store opened from a URL (perhaps wrapped since, as
    /// the API function counts its requests), without the probe: call
    /// [`Engine::check_store`] before serving; it probes every part.
    pub fn with_opened_unchecked(
        opened: strata_store::OpenedStore,
        config: EngineConfig,
    ) -> Engine {
        Self::new_unchecked(opened, config)
    }

    /// An engine over an already-built store, without the probe: call
    /// [`Engine::check_store`] before serving.
    pub fn with_store_unchecked(
        store: Arc<dyn ObjectStore>,
        name: impl Into<String>,
        config: EngineConfig,
    ) -> Engine {
        Self::new_unchecked(Self::whole(store, name.into()), config)
    }

    /// An engine over an already-built store; probes it first.
    pub async fn with_store(
        store: Arc<dyn ObjectStore>,
        name: &str,
        config: EngineConfig,
    ) -> Result<Engine> {
        strata_store::probe_atomic_create(&store, name).await?;
        Ok(Self::new_unchecked(
            Self::whole(store, name.to_string()),
            config,
        ))
    }

    /// A store built by the caller, probed as one.
    fn whole(store: Arc<dyn ObjectStore>, name: String) -> strata_store::OpenedStore {
        strata_store::OpenedStore {
            parts: vec![(Arc::clone(&store), name.clone())],
            store,
            url: name,
            at_rest: Default::default(),
            table_keys: None,
        }
    }

    fn new_unchecked(opened: strata_store::OpenedStore, config: EngineConfig) -> Engine {
        let strata_store::OpenedStore {
            store,
            url: store_name,
            parts: probed,
            at_rest,
            table_keys,
        } = opened;
        let cache = Caches::new(config.cache_bytes);
        let merge_slots = tokio::sync::Semaphore::new(config.max_concurrent_merges.max(1));
        let flush_slots = tokio::sync::Semaphore::new(config.max_concurrent_flushes.max(1));
        Engine {
            ctx: Arc::new(Ctx {
                store,
                config,
                cache,
                tail_bytes: Default::default(),
                merge_slots,
                flush_slots,
                compaction: Default::default(),
                commits: Default::default(),
                decisions: Default::default(),
            }),
            store_name,
            at_rest,
            table_keys,
            probed,
            tables: RwLock::new(HashMap::new()),
            checked: tokio::sync::OnceCell::new(),
            index_signal: IndexSignal::default(),
            index_cursors: CursorCache::default(),
            expiry_memo: Mutex::default(),
            backup_pins: Mutex::default(),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.ctx.config
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.ctx.store
    }

    /// How the store's objects are encrypted at rest.
    pub fn at_rest(&self) -> &strata_store::AtRest {
        &self.at_rest
    }

    pub fn store_name(&self) -> &str {
        &self.store_name
    }

    /// Where commits to tables with indexes are announced to the index
    /// follower (`strata serve`'s loop waits on it).
    pub fn index_signal(&self) -> &IndexSignal {
        &self.index_signal
    }

    pub(crate) fn index_cursors(&self) -> &CursorCache {
        &self.index_cursors
    }

    // ---------------------------------------------------------------- tables

    /// Creates a table, and the tables of its indexes (each given an id).
    pub async fn create_table(&self, mut spec: TableSpec) -> Result<TableDescriptor> {
        catalog::validate_table_name(&spec.name)?;
        for ix in &mut spec.indexes {
            ix.id = paths::random_id();
        }
        self.create_stored_table(spec).await
    }

    /// Creates a table of any stored name (an index table's too).
    pub(crate) async fn create_stored_table(&self, spec: TableSpec) -> Result<TableDescriptor> {
        catalog::validate_stored_name(&spec.name)?;
        let partitions = spec
            .partitions
            .unwrap_or(self.ctx.config.default_partitions);
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::Validation(format!(
                "partition count must be between 1 and {MAX_PARTITIONS}"
            )));
        }
        let store = self.ctx.store.as_ref();
        let latest = catalog::latest(store, &spec.name).await?;
        if latest.as_ref().is_some_and(|d| !d.deleted) {
            return Err(Error::TableExists(spec.name));
        }
        // Maintaining an index needs each change's old image.
        let keep_old = spec.keep_old_images || !spec.indexes.is_empty();
        let desc = TableDescriptor {
            name: spec.name.clone(),
            version: latest.map_or(1, |d| d.version + 1),
            incarnation: paths::random_id(),
            key_schema: spec.key_schema,
            partitions,
            splits: Vec::new(),
            created_at_ms: self.ctx.config.clock.now_ms(),
            deleted: false,
            keep_old_images: keep_old,
            images_gen: catalog::next_images_gen(0, keep_old),
            replicas: spec.replicas,
            pitr_window_secs: 0,
            meta: spec.meta,
            indexes: spec.indexes,
            commit_window_ms: spec.commit_window_ms,
        };
        match catalog::publish(store, &desc).await? {
            Created::Created => {
                self.install(Arc::new(desc.clone()));
                for ix in &desc.indexes {
                    self.make_index_table(&desc, ix).await?;
                }
                Ok(desc)
            }
            Created::Exists | Created::Conflict => Err(Error::TableExists(spec.name)),
        }
    }

    /// A user table's descriptor (an index table is not found: clients
    /// never reach one by name).
    pub async fn describe_table(&self, name: &str) -> Result<TableDescriptor> {
        if is_index_table(name) {
            return Err(Error::TableNotFound(name.to_string()));
        }
        self.describe_stored_table(name).await
    }

    /// Any stored table's descriptor, an index table's too.
    pub async fn describe_stored_table(&self, name: &str) -> Result<TableDescriptor> {
        Ok((*self.table(name).await?.desc).clone())
    }

    /// Names of live tables, sorted (index tables left out).
    pub async fn list_tables(&self) -> Result<Vec<String>> {
        self.live_tables(|n| !is_index_table(n)).await
    }

    /// Marks the table deleted, then removes its data in the background.
    pub async fn delete_table(&self, name: &str) -> Result<TableDescriptor> {
        let store = self.ctx.store.as_ref();
        loop {
            let current = self.table(name).await?;
            let mut tomb = (*current.desc).clone();
            tomb.version += 1;
            tomb.deleted = true;
            match catalog::publish(store, &tomb).await? {
                Created::Created => {
                    self.tables
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(name);
                    let store = Arc::clone(&self.ctx.store);
                    let root = paths::incarnation_root(name, &current.desc.incarnation);
                    // What backups pin stays: listed after the tombstone
                    // (see `engine::backups`). Failing that, the sweep of
                    // dead incarnations purges later.
                    match self.pinned(name).await {
                        Ok(keep) => {
                            tokio::spawn(async move {
                                if let Err(e) = collect::purge(store.as_ref(), &root, &keep).await {
                                    tracing::warn!(prefix = %root, error = %e, "purging a deleted table's data failed; GC retries");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(prefix = %root, error = %e, "listing backups failed; the sweep purges the deleted table's data")
                        }
                    }
                    Box::pin(self.drop_index_tables(&current.desc)).await;
                    return Ok((*current.desc).clone());
                }
                // Someone else changed the table meanwhile: look again.
                Created::Exists | Created::Conflict => self.forget(name),
            }
        }
    }

    /// Changes a table's settings (its `meta` and `keep_old_images`) by
    /// publishing the next descriptor version; data and key schema are
    /// untouched. `change` may run more than once if another instance
    /// changes the table at the same time.
    pub async fn update_table<F>(&self, name: &str, change: F) -> Result<TableDescriptor>
    where
        F: Fn(&mut TableDescriptor) -> Result<()>,
    {
        let store = self.ctx.store.as_ref();
        loop {
            let current = self.table(name).await?;
            let mut next = (*current.desc).clone();
            change(&mut next)?;
            next.name = current.desc.name.clone();
            next.version = current.desc.version + 1;
            next.incarnation = current.desc.incarnation.clone();
            next.key_schema = current.desc.key_schema.clone();
            next.partitions = current.desc.partitions;
            next.splits = current.desc.splits.clone();
            next.deleted = false;
            next.keep_old_images |= !next.indexes.is_empty();
            // `change` may start a new generation by raising it.
            next.images_gen = catalog::next_images_gen(
                current.desc.images_gen().max(next.images_gen),
                next.keep_old_images,
            );
            match catalog::publish(store, &next).await? {
                Created::Created => {
                    let handle = self.install(Arc::new(next.clone()));
                    if next.images_gen != current.desc.images_gen() {
                        mark_images_gen(&handle).await;
                    }
                    return Ok(next);
                }
                Created::Exists | Created::Conflict => self.forget(name),
            }
        }
    }

    fn forget(&self, name: &str) {
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Makes `desc` the table's handle. A descriptor that only records more
    /// splits keeps the partitions this instance has (their views, tails,
    /// caches and merges in flight: nothing they use changed) and makes only
    /// the new children; any other change makes every partition anew.
    fn install(&self, desc: Arc<TableDescriptor>) -> Arc<TableHandle> {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        // Under the lock, so that the store's key and the installed
        // descriptor agree whichever of two installs comes last.
        self.note_table_key(&desc);
        let kept = tables
            .get(&desc.name)
            .filter(|old| old.desc.only_splits_added(&desc))
            .map(|old| old.partitions.clone())
            .unwrap_or_default();
        let partitions = desc
            .map()
            .all()
            .into_iter()
            .map(|p| {
                let part = kept.get(&p).cloned().unwrap_or_else(|| {
                    Arc::new(Partition::new(Arc::clone(&self.ctx), Arc::clone(&desc), p))
                });
                (p, part)
            })
            .collect();
        let handle = Arc::new(TableHandle {
            desc: Arc::clone(&desc),
            partitions,
            checked: Mutex::new(self.ctx.config.clock.tick()),
        });
        tables.insert(desc.name.clone(), Arc::clone(&handle));
        handle
    }

    /// The table's handle, re-checking the descriptor when it is older than
    /// `catalog_staleness` (one GET of the next schema version).
    pub(crate) async fn table(&self, name: &str) -> Result<Arc<TableHandle>> {
        let cached = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let store = self.ctx.store.as_ref();
        let desc = match cached {
            Some(h) => {
                let checked = *h.checked.lock().unwrap_or_else(|p| p.into_inner());
                let age = self.ctx.config.clock.since(checked);
                if age < self.ctx.config.catalog_staleness {
                    return Ok(h);
                }
                let newest = catalog::newest_from(store, (*h.desc).clone()).await?;
                if newest == *h.desc {
                    *h.checked.lock().unwrap_or_else(|p| p.into_inner()) =
                        self.ctx.config.clock.tick();
                    return Ok(h);
                }
                newest
            }
            None => {
                catalog::validate_stored_name(name)
                    .map_err(|_| Error::TableNotFound(name.to_string()))?;
                // An index table's objects take its table's KMS key, which
                // the table's descriptor names: know it before writing.
                if self.table_keys.is_some() && is_index_table(name) {
                    let base = name.split('!').next().unwrap_or(name);
                    let _ = Box::pin(self.table(base)).await;
                }
                match catalog::latest(store, name).await? {
                    Some(d) => d,
                    None => return Err(Error::TableNotFound(name.to_string())),
                }
            }
        };
        if desc.deleted {
            self.forget(name);
            return Err(Error::TableNotFound(name.to_string()));
        }
        Ok(self.install(Arc::new(desc)))
    }

    /// Installs `desc` unless the handle already holds it or a newer one.
    fn install_if_newer(&self, desc: TableDescriptor) {
        let current = self
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&desc.name)
            .map(|h| h.desc.version);
        if current.is_none_or(|v| v < desc.version) {
            self.install(Arc::new(desc));
        }
    }

    pub(crate) fn partition_for<'a>(
        &self,
        t: &'a TableHandle,
        hash: &KeyValue,
    ) -> Result<&'a Arc<Partition>> {
        self.partition_by_id(t, t.desc.map().route(hash))
    }

    fn partition_by_id<'a>(&self, t: &'a TableHandle, id: u32) -> Result<&'a Arc<Partition>> {
        t.partitions.get(&id).ok_or_else(|| {
            Error::corrupt(
                &paths::schema(&t.desc.name, t.desc.version),
                format!("routes to partition {id}, which it does not list"),
            )
        })
    }

    /// Runs `op` on the table's current handle, again after each sealed
    /// partition it meets (see `reroute`): the one retry loop of every
    /// operation routed by key.
    pub(crate) async fn routed<'a, T>(
        &'a self,
        table: &'a str,
        op: impl Fn(Arc<TableHandle>) -> futures::future::BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let mut attempts = 0;
        loop {
            let t = self.table(table).await?;
            match op(Arc::clone(&t)).await {
                Err(e) => self.reroute(&t, e, &mut attempts).await?,
                done => return done,
            }
        }
    }

    /// After an operation failed with `e`: when it met a sealed partition,
    /// finishes that split (whoever started it) and installs the
    /// descriptor routing around it, so the caller can try again; any
    /// other error is the caller's answer.
    async fn reroute(&self, t: &TableHandle, e: Error, attempts: &mut u32) -> Result<()> {
        let Error::Sealed { partition, .. } = &e else {
            return Err(e);
        };
        *attempts += 1;
        let Some(part) = t
            .partitions
            .get(partition)
            .filter(|_| *attempts <= MAX_REROUTES)
        else {
            return Err(e);
        };
        let desc = part.split().await?;
        self.install_if_newer(desc);
        Ok(())
    }

    // ---------------------------------------------------------------- writes

    /// Commits a request atomically. All its operations must be on items of
    /// one partition (in practice: one partition-key value, or keys that hash
    /// together); otherwise it is refused.
    pub async fn write(&self, table: &str, req: WriteRequest) -> Result<Committed> {
        let req = &req;
        self.routed(table, |t| {
            Box::pin(async move { self.write_once(&t, req.clone()).await })
        })
        .await
    }

    async fn write_once(&self, t: &TableHandle, req: WriteRequest) -> Result<Committed> {
        let Some(first) = req.ops.first() else {
            return Err(Error::Validation(
                "a write request needs at least one operation".into(),
            ));
        };
        let schema = &t.desc.key_schema;
        for op in &req.ops {
            check_key_types(schema, &op.key)?;
        }
        let map = t.desc.map();
        let target = map.route(&first.key.hash);
        if req.ops.iter().any(|op| map.route(&op.key.hash) != target) {
            return Err(Error::Validation(
                "all operations of one atomic write must be in one partition".into(),
            ));
        }
        self.check_collections(t, &req).await?;
        let committed = self.partition_by_id(t, target)?.commit(req).await?;
        if !t.desc.indexes.is_empty() {
            self.index_signal.mark(&t.desc.name, Some(target));
        }
        Ok(committed)
    }

    // ----------------------------------------------------------------- reads

    pub async fn get(
        &self,
        table: &str,
        key: &ItemKey,
        consistency: Consistency,
    ) -> Result<Option<Arc<Item>>> {
        self.routed(table, |t| {
            Box::pin(async move {
                check_key_types(&t.desc.key_schema, key)?;
                self.partition_for(&t, &key.hash)?
                    .get(&encode_key(key), consistency == Consistency::Strong)
                    .await
            })
        })
        .await
    }

    /// Items with partition key `hash` whose sort key satisfies `cond`, in
    /// sort-key order (`forward`) or reverse, after `start_after`, up to
    /// `limit` items or `max_bytes` of item data (DynamoDB's 1 MB page).
    #[allow(clippy::too_many_arguments)]
    pub async fn query(
        &self,
        table: &str,
        hash: &KeyValue,
        cond: &SortKeyCondition,
        forward: bool,
        limit: usize,
        start_after: Option<&ItemKey>,
        max_bytes: usize,
        consistency: Consistency,
    ) -> Result<Page> {
        let t = self.table(table).await?;
        let schema = &t.desc.key_schema;
        check_key_types(
            schema,
            &ItemKey {
                hash: hash.clone(),
                range: None,
            },
        )?;
        let mut prefix = Vec::new();
        encode_component(hash, &mut prefix);
        let with = |v: &KeyValue| {
            let mut k = prefix.clone();
            encode_component(v, &mut k);
            k
        };
        let end = || prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        check_sort_operand(schema, cond)?;
        let (lo, hi) = match cond {
            SortKeyCondition::All => (Bound::Included(prefix.clone()), end()),
            SortKeyCondition::Eq(v) => (Bound::Included(with(v)), Bound::Included(with(v))),
            SortKeyCondition::Lt(v) => (Bound::Included(prefix.clone()), Bound::Excluded(with(v))),
            SortKeyCondition::Le(v) => (Bound::Included(prefix.clone()), Bound::Included(with(v))),
            SortKeyCondition::Gt(v) => (Bound::Excluded(with(v)), end()),
            SortKeyCondition::Ge(v) => (Bound::Included(with(v)), end()),
            SortKeyCondition::Between(a, b) => (Bound::Included(with(a)), Bound::Included(with(b))),
            SortKeyCondition::BeginsWith(v) => {
                if matches!(v, KeyValue::N(_)) {
                    return Err(Error::Validation("Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N".into()));
                }
                let mut p = prefix.clone();
                p.extend(begins_with_prefix(v));
                let hi = prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
                (Bound::Included(p), hi)
            }
        };
        self.range_read(
            table,
            hash,
            (lo, hi),
            forward,
            limit,
            start_after,
            max_bytes,
            consistency,
        )
        .await
    }

    /// The items of the partition holding `hash` between the encoded keys
    /// `lo` and `hi`, after `start_after` (which must lie between them):
    /// what [`Engine::query`] and index queries read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn range_read(
        &self,
        table: &str,
        hash: &KeyValue,
        (mut lo, mut hi): (Bound<Vec<u8>>, Bound<Vec<u8>>),
        forward: bool,
        limit: usize,
        start_after: Option<&ItemKey>,
        max_bytes: usize,
        consistency: Consistency,
    ) -> Result<Page> {
        if let Some(after) = start_after {
            let t = self.table(table).await?;
            check_key_types(&t.desc.key_schema, after)?;
            let k = encode_key(after);
            if !(above_lo(&k, &lo) && below_hi(&k, &hi)) {
                return Err(Error::Validation(
                    "The provided starting key is outside query boundaries based on provided conditions".into(),
                ));
            }
            if forward {
                lo = Bound::Excluded(k);
            } else {
                hi = Bound::Excluded(k);
            }
        }
        let (lo, hi) = (&lo, &hi);
        self.routed(table, |t| {
            Box::pin(async move {
                self.partition_for(&t, hash)?
                    .range(
                        lo.clone(),
                        hi.clone(),
                        forward,
                        limit,
                        max_bytes,
                        consistency == Consistency::Strong,
                    )
                    .await
            })
        })
        .await
    }

    // ------------------------------------------------------------ maintenance

    /// Compacts every live partition of the table now (splitting those
    /// that are due), in partition-number order.
    pub async fn compact(&self, table: &str) -> Result<Vec<CompactionOutcome>> {
        let t = self.table(table).await?;
        let mut out = Vec::new();
        for p in t.leaves() {
            out.push(self.compact_and_split(p).await?);
        }
        Ok(out)
    }

    /// Compacts one partition of the table now, and splits it if it is due
    /// (what the compactor function runs). A sealed partition's compaction
    /// finishes its split.
    pub async fn compact_partition(
        &self,
        table: &str,
        partition: u32,
    ) -> Result<CompactionOutcome> {
        let (_, p) = self.partition(table, partition).await?;
        self.compact_and_split(&p).await
    }

    async fn compact_and_split(&self, p: &Arc<Partition>) -> Result<CompactionOutcome> {
        let outcome = p.compact().await?;
        if p.sealed().is_some() || p.split_due() {
            match p.split().await {
                Ok(desc) => self.install_if_newer(desc),
                // Transactions hold items here: the split waits for the
                // next compaction.
                Err(Error::TransactionConflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(outcome)
    }

    /// Splits one live partition of the table in two now (the compactor
    /// splits by size and commit rate on its own). Returns the descriptor
    /// that routes to the children.
    pub async fn split_partition(&self, table: &str, partition: u32) -> Result<TableDescriptor> {
        let (t, p) = self.partition(table, partition).await?;
        if t.desc.map().split_of(partition).is_some() {
            return Err(Error::Validation(format!(
                "partition {partition} of table {table} is already split"
            )));
        }
        let desc = p.split().await?;
        self.install_if_newer(desc.clone());
        Ok(desc)
    }

    /// The live partitions of the table, in number order.
    pub async fn partitions(&self, table: &str) -> Result<Vec<u32>> {
        Ok(self.table(table).await?.desc.map().leaves())
    }

    // ------------------------------------------------- streams and replication

    async fn partition(
        &self,
        table: &str,
        part: u32,
    ) -> Result<(Arc<TableHandle>, Arc<Partition>)> {
        let t = self.table(table).await?;
        let p =
            t.partitions.get(&part).cloned().ok_or_else(|| {
                Error::Validation(format!("table {table} has no partition {part}"))
            })?;
        Ok((t, p))
    }

    /// Up to `max` committed log segments of one partition from `from` on
    /// (see [`LogRead`]), and the table incarnation they belong to.
    pub async fn read_log(
        &self,
        table: &str,
        part: u32,
        from: u64,
        max: usize,
    ) -> Result<(Arc<TableDescriptor>, LogRead)> {
        let (t, p) = self.partition(table, part).await?;
        Ok((Arc::clone(&t.desc), p.read_log(from, max).await?))
    }

    /// The first retained log segment and the tail of one partition.
    pub async fn log_bounds(&self, table: &str, part: u32) -> Result<(u64, u64)> {
        self.partition(table, part).await?.1.log_bounds().await
    }

    /// Up to `limit` of one partition's newest versions, tombstones
    /// included, with keys after `after` (see [`Partition::versions_after`]).
    pub async fn versions_after(
        &self,
        table: &str,
        part: u32,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Version)>> {
        self.partition(table, part)
            .await?
            .1
            .versions_after(after, limit)
            .await
    }

    /// One partition's newest committed sequence number.
    pub async fn log_tail(&self, table: &str, part: u32) -> Result<u64> {
        self.partition(table, part).await?.1.tail().await
    }

    /// Applies versions replicated from other regions, last writer wins
    /// (see [`Partition::apply_replicated`]). Each change's image must hold
    /// its key. Returns how many changed the table.
    pub async fn apply_replicated(
        &self,
        table: &str,
        changes: Vec<(Arc<Item>, bool, Stamp)>,
    ) -> Result<usize> {
        // Applies are idempotent (last writer wins), so after a split the
        // whole batch is simply routed again.
        let changes = &changes;
        self.routed(table, |t| {
            Box::pin(async move { self.apply_replicated_once(&t, changes).await })
        })
        .await
    }

    async fn apply_replicated_once(
        &self,
        t: &TableHandle,
        changes: &[(Arc<Item>, bool, Stamp)],
    ) -> Result<usize> {
        let schema = &t.desc.key_schema;
        let mut by_part: HashMap<u32, Vec<ReplicatedChange>> = HashMap::new();
        for (image, deleted, stamp) in changes.iter().cloned() {
            let key = schema
                .key_of(&image)
                .map_err(|e| Error::Validation(e.to_string()))?;
            check_key_types(schema, &key)?;
            let p = t.desc.map().route(&key.hash);
            by_part.entry(p).or_default().push(ReplicatedChange {
                key: encode_key(&key),
                image,
                deleted,
                stamp,
            });
        }
        let mut applied = 0;
        let mut parts = Vec::with_capacity(by_part.len());
        for (p, changes) in &by_part {
            parts.push((Arc::clone(self.partition_by_id(t, *p)?), changes));
        }
        let results = futures::future::join_all(
            parts
                .iter()
                .map(|(part, changes)| async move { part.apply_replicated(changes).await }),
        )
        .await;
        for r in results {
            applied += r?;
        }
        if !t.desc.indexes.is_empty() {
            for p in by_part.keys() {
                self.index_signal.mark(&t.desc.name, Some(*p));
            }
        }
        Ok(applied)
    }
}

/// A sort-key condition's value must have the type of `schema`'s sort key
/// (a table's, or an index's).
pub(crate) fn check_sort_operand(
    schema: &crate::value::KeySchema,
    cond: &SortKeyCondition,
) -> Result<()> {
    if let Some(v) = sort_key_operand(cond) {
        if schema.range.as_ref().map(|r| r.key_type) != Some(v.key_type()) {
            return Err(Error::Validation(
                "Query condition missed key schema element or has a wrong type".into(),
            ));
        }
    }
    Ok(())
}

fn sort_key_operand(c: &SortKeyCondition) -> Option<&KeyValue> {
    match c {
        SortKeyCondition::All => None,
        SortKeyCondition::Eq(v)
        | SortKeyCondition::Lt(v)
        | SortKeyCondition::Le(v)
        | SortKeyCondition::Gt(v)
        | SortKeyCondition::Ge(v)
        | SortKeyCondition::BeginsWith(v)
        | SortKeyCondition::Between(v, _) => Some(v),
    }
}

pub(crate) fn check_key_types(schema: &crate::value::KeySchema, key: &ItemKey) -> Result<()> {
    let mismatch = |expected: KeyType, v: &KeyValue| expected != v.key_type();
    if mismatch(schema.hash.key_type, &key.hash) {
        return Err(Error::Validation(
            "The provided key element does not match the schema".into(),
        ));
    }
    match (&schema.range, &key.range) {
        (Some(r), Some(v)) if mismatch(r.key_type, v) => Err(Error::Validation(
            "The provided key element does not match the schema".into(),
        )),
        (None, Some(_)) => Err(Error::Validation(
            "The provided key element does not match the schema".into(),
        )),
        _ => Ok(()),
    }
}

//! Secondary indexes on the engine: their tables, reads through them, and
//! adding or dropping one (see `crate::index`).

use std::sync::Arc;

use serde_json::json;

use super::Engine;
use crate::catalog::{TableDescriptor, TableSpec};
use crate::error::{Error, Result};
use crate::index::{index_table_name, is_index_table, IndexDef, IndexKind, IndexStatus, ENTRY_KEY};
use crate::ops::{Consistency, Page, SortKeyCondition};
use crate::value::{Item, KeyValue};

/// Longest an eventually consistent index read waits for the process's
/// follower loop to reach the writes acknowledged before it (see
/// `IndexSignal::wait_followed`).
const READ_YOUR_WRITES: std::time::Duration = std::time::Duration::from_secs(5);

impl Engine {
    /// Names of live user tables and index tables, sorted: what compaction
    /// and GC go over. ([`Engine::list_tables`] leaves index tables out.)
    pub async fn list_stored_tables(&self) -> Result<Vec<String>> {
        self.live_tables(|_| true).await
    }

    /// The table holding `ix` of `base`. Opening never creates one from a
    /// descriptor that may be stale (a dropped index would come back):
    /// when it is missing or not this index's (a leftover of a dropped
    /// index of that name, or of an earlier incarnation of the base), the
    /// base's newest descriptor is read from the store, and only if that
    /// still lists this very index is its table (re)made — which repairs a
    /// process that died between publishing an index and making its table.
    /// Otherwise the index is gone: [`Error::IndexNotFound`].
    pub async fn index_table(
        &self,
        base: &TableDescriptor,
        ix: &IndexDef,
    ) -> Result<TableDescriptor> {
        let name = index_table_name(&base.name, &ix.name);
        match self.describe_stored_table(&name).await {
            Ok(d) if owned_by(&d, base, ix) => return Ok(d),
            Ok(_) | Err(Error::TableNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let latest = crate::catalog::latest(self.ctx.store.as_ref(), &base.name).await?;
        let listed = latest.as_ref().is_some_and(|d| {
            !d.deleted
                && d.incarnation == base.incarnation
                && d.index(&ix.name).is_some_and(|i| i.id == ix.id)
        });
        if !listed {
            return Err(Error::IndexNotFound(ix.name.clone()));
        }
        self.make_index_table(base, ix).await
    }

    /// Makes the table of `ix` (listed by `base`), replacing a table of
    /// that name that belongs to another index or base incarnation.
    pub(crate) async fn make_index_table(
        &self,
        base: &TableDescriptor,
        ix: &IndexDef,
    ) -> Result<TableDescriptor> {
        let name = index_table_name(&base.name, &ix.name);
        for _ in 0..4 {
            match self.describe_stored_table(&name).await {
                Ok(d) if owned_by(&d, base, ix) => return Ok(d),
                Ok(_) => match Box::pin(self.delete_table(&name)).await {
                    Ok(_) | Err(Error::TableNotFound(_)) => {}
                    Err(e) => return Err(e),
                },
                Err(Error::TableNotFound(_)) => {}
                Err(e) => return Err(e),
            }
            let spec = TableSpec {
                name: name.clone(),
                key_schema: ix.table_schema(),
                partitions: None,
                keep_old_images: false,
                replicas: Vec::new(),
                meta: json!({"base_incarnation": base.incarnation, "index": ix.name, "index_id": ix.id}),
                indexes: Vec::new(),
                commit_window_ms: None,
            };
            match Box::pin(self.create_stored_table(spec)).await {
                Ok(d) => return Ok(d),
                // Someone else created it meanwhile: look again.
                Err(Error::TableExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::Validation(format!(
            "the table of index {} of table {} keeps changing",
            ix.name, base.name
        )))
    }

    /// Deletes index tables whose index no longer exists: its base table
    /// was deleted or re-created, or the index dropped (a drop whose delete
    /// failed, or a table made again by a process that had not seen the
    /// drop). Reads the base's newest descriptor from the store, after
    /// listing, so an index being added (its descriptor is published before
    /// its table is made) is never taken for garbage.
    pub async fn collect_index_tables(&self) -> Result<usize> {
        let store = self.ctx.store.as_ref();
        let mut deleted = 0;
        for name in self.live_tables(is_index_table).await? {
            let Some((table, index)) = name.split_once('!') else {
                continue;
            };
            let Some(itable) = crate::catalog::latest(store, &name).await? else {
                continue;
            };
            let base = crate::catalog::latest(store, table).await?;
            let live = base.is_some_and(|b| {
                !b.deleted && b.index(index).is_some_and(|ix| owned_by(&itable, &b, ix))
            });
            if !live {
                tracing::info!(table = %name, "deleting the table of an index that no longer exists");
                match self.delete_table(&name).await {
                    Ok(_) => deleted += 1,
                    Err(Error::TableNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(deleted)
    }

    /// An upper bound of the size in bytes of the item collection of
    /// `hash` (its items, in a table with local indexes): the size of the
    /// partition holding it, as this instance's view knows it. A
    /// collection never spans partitions: splits divide hash ranges.
    pub async fn collection_size_bound(&self, table: &str, hash: &KeyValue) -> Result<u64> {
        let t = self.table(table).await?;
        Ok(self.partition_for(&t, hash)?.size_bound())
    }

    /// Refuses a write that adds to an item collection past
    /// `max_item_collection_bytes` (tables with local indexes only). Costs
    /// nothing while the partition holding the collection is smaller than
    /// the limit (its size bounds the collection's); past it, the
    /// collection is measured by reading it, page by page. A check before
    /// the commit, as DynamoDB's is approximate too: concurrent writes may
    /// overshoot by what they add.
    pub(crate) async fn check_collections(
        &self,
        t: &super::TableHandle,
        req: &crate::ops::WriteRequest,
    ) -> Result<()> {
        if !t.desc.indexes.iter().any(|i| i.kind == IndexKind::Local) {
            return Ok(());
        }
        let limit = self.ctx.config.max_item_collection_bytes;
        let mut seen: Vec<&KeyValue> = Vec::new();
        for op in &req.ops {
            if matches!(
                op.change,
                crate::ops::Change::Delete | crate::ops::Change::Expire
            ) || seen.contains(&&op.key.hash)
            {
                continue;
            }
            seen.push(&op.key.hash);
            if self.partition_for(t, &op.key.hash)?.size_bound() <= limit {
                continue;
            }
            let mut size = 0u64;
            let mut after: Option<crate::value::ItemKey> = None;
            loop {
                let page = self
                    .query(
                        &t.desc.name,
                        &op.key.hash,
                        &SortKeyCondition::All,
                        true,
                        1000,
                        after.as_ref(),
                        1 << 20,
                        Consistency::Eventual,
                    )
                    .await?;
                size += page
                    .items
                    .iter()
                    .map(|i| crate::value::item_size(i) as u64)
                    .sum::<u64>();
                if size > limit {
                    return Err(Error::ItemCollectionTooLarge);
                }
                match page.last_key {
                    Some(k) => {
                        after = Some(
                            t.desc
                                .key_schema
                                .key_of(&k)
                                .map_err(|e| Error::Validation(e.to_string()))?,
                        )
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Adds a global secondary index to a table (UpdateTable's
    /// GlobalSecondaryIndexUpdates Create). The index is `Creating` until
    /// the follower has filled it from the table's items.
    pub async fn add_index(&self, table: &str, def: IndexDef) -> Result<TableDescriptor> {
        let def = &def;
        let id = crate::paths::random_id();
        let desc = self
            .update_table(table, |d| {
                if d.index(&def.name).is_some() {
                    return Err(Error::Validation(format!(
                        "One or more parameter values were invalid: Attempting to create an index which already exists. IndexName: {}",
                        def.name
                    )));
                }
                d.indexes.push(IndexDef {
                    status: IndexStatus::Creating,
                    id: id.clone(),
                    ..def.clone()
                });
                Ok(())
            })
            .await?;
        if let Some(ix) = desc.index(&def.name) {
            self.make_index_table(&desc, ix).await?;
        }
        self.index_signal().mark(table, None);
        Ok(desc)
    }

    /// Gives a restored table its source's indexes, once its items are in:
    /// each is `Creating` until the follower has filled it from them.
    pub async fn restore_indexes(&self, table: &str, defs: &[IndexDef]) -> Result<()> {
        if defs.is_empty() {
            return Ok(());
        }
        let desc = self
            .update_table(table, |d| {
                d.indexes = defs
                    .iter()
                    .map(|ix| IndexDef {
                        status: IndexStatus::Creating,
                        id: crate::paths::random_id(),
                        ..ix.clone()
                    })
                    .collect();
                Ok(())
            })
            .await?;
        for ix in &desc.indexes {
            self.make_index_table(&desc, ix).await?;
        }
        self.index_signal().mark(table, None);
        Ok(())
    }

    /// Drops an index (UpdateTable's Delete): the descriptor stops listing
    /// it at once; its table, entries and cursors are deleted after.
    pub async fn drop_index(&self, table: &str, name: &str) -> Result<TableDescriptor> {
        let desc = self
            .update_table(table, |d| {
                if d.index(name).is_none() {
                    return Err(Error::IndexNotFound(name.to_string()));
                }
                d.indexes.retain(|i| i.name != name);
                Ok(())
            })
            .await?;
        match self.delete_table(&index_table_name(table, name)).await {
            Ok(_) | Err(Error::TableNotFound(_)) => {}
            Err(e) => {
                tracing::warn!(table, index = name, error = %e, "deleting an index's table failed; GC retries")
            }
        }
        Ok(desc)
    }

    /// Deletes the index tables of a base table that was just deleted.
    pub(crate) async fn drop_index_tables(&self, base: &TableDescriptor) {
        for ix in &base.indexes {
            let name = index_table_name(&base.name, &ix.name);
            match self.delete_table(&name).await {
                Ok(_) | Err(Error::TableNotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(table = %name, error = %e, "deleting an index table failed")
                }
            }
        }
    }

    /// A Query on an index: entries with index partition key `hash` whose
    /// index sort key satisfies `cond`, ordered by index sort key, then by
    /// the table's key. `start_after` holds the table's and the index's key
    /// attributes (a page's `last_key`). Strongly consistent reads are for
    /// local indexes only: the index is first brought up to date with the
    /// base partition that holds `hash`.
    #[allow(clippy::too_many_arguments)]
    pub async fn query_index(
        &self,
        table: &str,
        index: &str,
        hash: &KeyValue,
        cond: &SortKeyCondition,
        forward: bool,
        limit: usize,
        start_after: Option<&Item>,
        max_bytes: usize,
        consistency: Consistency,
    ) -> Result<Page> {
        let (base, ix, itable) = self.index_parts(table, index, consistency).await?;
        if ix.key_schema.hash.key_type != hash.key_type() {
            return Err(Error::Validation(
                "Query condition missed key schema element or has a wrong type".into(),
            ));
        }
        crate::engine::check_sort_operand(&ix.key_schema, cond)?;
        match consistency {
            Consistency::Strong => self.catch_up(table, &ix, Some(hash)).await?,
            Consistency::Eventual => self.index_signal().wait_followed(READ_YOUR_WRITES).await,
        }
        let after = start_after.map(|k| position(&base, &ix, k)).transpose()?;
        let page = self
            .range_read(
                &itable.name,
                hash,
                ix.bounds(hash, cond),
                forward,
                limit,
                after.as_ref(),
                max_bytes,
                consistency,
            )
            .await?;
        Ok(entries_page(page, &base, &ix))
    }

    /// A Scan of an index (`segment` as for [`Engine::scan`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn scan_index(
        &self,
        table: &str,
        index: &str,
        segment: Option<(u32, u32)>,
        start_after: Option<&Item>,
        limit: usize,
        max_bytes: usize,
        consistency: Consistency,
    ) -> Result<Page> {
        let (base, ix, itable) = self.index_parts(table, index, consistency).await?;
        match consistency {
            Consistency::Strong => self.catch_up(table, &ix, None).await?,
            Consistency::Eventual => self.index_signal().wait_followed(READ_YOUR_WRITES).await,
        }
        let after = start_after.map(|k| position(&base, &ix, k)).transpose()?;
        let page = self
            .scan(
                &itable.name,
                segment,
                after.as_ref(),
                limit,
                max_bytes,
                consistency,
            )
            .await?;
        Ok(entries_page(page, &base, &ix))
    }

    /// Brings a local index up to date with the base partition holding
    /// `hash` (every partition: None), now: what a strongly consistent read
    /// of it starts with. A split the descriptor does not show yet is
    /// finished and the descriptor re-read, so the children's writes are
    /// followed too.
    async fn catch_up(&self, table: &str, ix: &IndexDef, hash: Option<&KeyValue>) -> Result<()> {
        let mut attempts = 0;
        loop {
            let t = self.table(table).await?;
            let part = hash.map(|h| [t.desc.map().route(h)]);
            // Transactions acknowledged but not yet settled are settled
            // first, so the base log holds them.
            self.settle_held_locks(&t, part.as_ref().map(|p| &p[..]))
                .await?;
            let report = self
                .follow_index(&t.desc, ix, part.as_ref().map(|p| &p[..]))
                .await?;
            let Some(partition) = report.unseen_split else {
                return Ok(());
            };
            let sealed = Error::Sealed {
                table: table.to_string(),
                partition,
            };
            self.reroute(&t, sealed, &mut attempts).await?;
        }
    }

    async fn index_parts(
        &self,
        table: &str,
        index: &str,
        consistency: Consistency,
    ) -> Result<(Arc<TableDescriptor>, IndexDef, TableDescriptor)> {
        let base = Arc::new(self.describe_table(table).await?);
        let ix = base
            .index(index)
            .cloned()
            .ok_or_else(|| Error::IndexNotFound(index.to_string()))?;
        if consistency == Consistency::Strong && ix.kind == IndexKind::Global {
            return Err(Error::Validation(
                "Consistent reads are not supported on global secondary indexes".into(),
            ));
        }
        let itable = self.index_table(&base, &ix).await?;
        Ok((base, ix, itable))
    }

    /// Live table names passing `keep`, sorted.
    pub(crate) async fn live_tables(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        let store = self.ctx.store.as_ref();
        let mut out = Vec::new();
        for name in crate::catalog::names(store).await? {
            if keep(&name)
                && crate::catalog::latest(store, &name)
                    .await?
                    .is_some_and(|d| !d.deleted)
            {
                out.push(name);
            }
        }
        Ok(out)
    }
}

/// Whether `d`, an index table, is the table of index `ix` of this
/// incarnation of `base`.
fn owned_by(d: &TableDescriptor, base: &TableDescriptor, ix: &IndexDef) -> bool {
    let meta = |k: &str| d.meta.get(k).and_then(|v| v.as_str());
    is_index_table(&d.name)
        && meta("base_incarnation") == Some(base.incarnation.as_str())
        && meta("index_id").unwrap_or_default() == ix.id
}

/// The index-table key of a client's start key.
fn position(base: &TableDescriptor, ix: &IndexDef, key: &Item) -> Result<crate::value::ItemKey> {
    ix.position(&base.key_schema, key).ok_or_else(|| {
        Error::Validation("The provided starting key is invalid: The provided key element does not match the schema".into())
    })
}

/// A page of index entries as clients see it: without the synthetic entry
/// key, and resumable from the table's and the index's key attributes.
fn entries_page(page: Page, base: &TableDescriptor, ix: &IndexDef) -> Page {
    let last_key = page.last_key.as_ref().and_then(|_| {
        let last = page.items.last()?;
        Some(
            ix.key_attributes(&base.key_schema)
                .into_iter()
                .filter_map(|k| Some((k.to_string(), last.get(k)?.clone())))
                .collect(),
        )
    });
    let items = page
        .items
        .into_iter()
        .map(|mut e| {
            Arc::make_mut(&mut e).remove(ENTRY_KEY);
            e
        })
        .collect();
    Page { items, last_key }
}

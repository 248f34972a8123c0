use super::*;

/// Whether a lookup caches what the runs answer (see `Partition::lookup`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    Cache,
    No,
}

impl Partition {
    /// The newest version of `key`, tombstones included: the log tail
    /// first, then the item cache, then the runs newest-first. What the
    /// runs answer is cached for a read (`Fill::Cache`), not for a write
    /// (`Fill::No`): a written key's next version is in the tail, which
    /// shadows the entry until a flush makes a new manifest, under which it
    /// is never asked for again; a bulk load's lookups would otherwise fill
    /// the cache with such entries, one per item written.
    pub(super) async fn lookup(&self, key: &[u8], fill: Fill) -> Result<Option<Version>> {
        let manifest = {
            let v = self.read_view();
            if let Some(found) = v.mem.get(key) {
                return Ok(Some(found.clone()));
            }
            Arc::clone(&v.manifest)
        };
        if !manifest.has_data() {
            return Ok(None);
        }
        if let Some(cached) = self.ctx.cache.item(&self.cache_id, manifest.version, key) {
            return Ok(cached);
        }
        let found = self.lookup_runs(&manifest, key).await?;
        if fill == Fill::Cache {
            self.ctx
                .cache
                .put_item(&self.cache_id, manifest.version, key, found.clone());
        }
        Ok(found)
    }

    pub(super) async fn lookup_runs(
        &self,
        manifest: &Manifest,
        key: &[u8],
    ) -> Result<Option<Version>> {
        // Newest sorted run first; in each, the one SST whose key range
        // holds the key, and its bloom filter before any block.
        for run in &manifest.levels {
            let Some(sst) = run.sst_for(key) else {
                continue;
            };
            let path = self.sst_path(sst);
            let meta = self.ctx.cache.run_meta(self.store(), &path, sst).await?;
            if !meta.bloom.may_contain(key) {
                continue;
            }
            let b = meta.block_at_or_after(key);
            let Some(handle) = meta.blocks.get(b) else {
                continue;
            };
            let block = self.ctx.cache.block(self.store(), &path, handle).await?;
            if let Ok(i) = block.binary_search_by(|(k, _)| k.as_slice().cmp(key)) {
                return Ok(Some(block[i].1.clone()));
            }
        }
        Ok(None)
    }

    pub async fn get(&self, key: &[u8], strong: bool) -> Result<Option<Arc<Item>>> {
        Ok(self
            .get_version(key, strong)
            .await?
            .filter(|v| !v.deleted)
            .map(|v| v.item))
    }

    /// The item's newest committed version, tombstones included. A
    /// strongly consistent read first settles a lock on the item whose
    /// transaction is decided, so it sees every acknowledged transaction;
    /// an undecided transaction's change is not seen (it has not happened).
    pub(crate) async fn get_version(&self, key: &[u8], strong: bool) -> Result<Option<Version>> {
        self.ensure_fresh(strong).await?;
        self.check_not_sealed()?;
        let one = (Bound::Included(key), Bound::Included(key));
        if strong {
            self.settle_locks(one).await?;
        }
        self.lookup(key, Fill::Cache).await
    }

    /// Items with keys in `(lo, hi)`, in key order (or reverse), skipping
    /// tombstones, up to `limit` items or `max_bytes` of item data.
    pub async fn range(
        &self,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        forward: bool,
        limit: usize,
        max_bytes: usize,
        strong: bool,
    ) -> Result<Page> {
        if is_empty_range(&lo, &hi) {
            return Ok(Page::default());
        }
        self.ensure_fresh(strong).await?;
        self.check_not_sealed()?;
        let span = (bound_ref(&lo), bound_ref(&hi));
        if strong {
            self.settle_locks(span).await?;
        }
        let cache_key = PageKey {
            partition: Arc::clone(&self.cache_id),
            lo: lo.clone(),
            hi: hi.clone(),
            forward,
            limit,
            max_bytes,
        };
        let stamp_now = {
            let v = self.read_view();
            (v.manifest.version, v.tail)
        };
        if let Some(page) = self.ctx.cache.page(&cache_key, stamp_now) {
            return Ok(page);
        }
        // The snapshot and its stamp are taken under one lock.
        let (mem, manifest, stamp) = {
            let v = self.read_view();
            let mut mem: Vec<(Vec<u8>, Version)> = v
                .mem
                .range((lo.clone(), hi.clone()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !forward {
                mem.reverse();
            }
            (mem, Arc::clone(&v.manifest), (v.manifest.version, v.tail))
        };
        let span = Span { lo, hi, forward };
        let mut merge = Merger::new(self, mem, &manifest.levels, span, Fetch::Cached);
        let mut page = Page::default();
        let mut bytes = 0;
        while page.items.len() < limit && bytes < max_bytes {
            let Some((_, version)) = merge.next().await? else {
                self.ctx.cache.put_page(cache_key, stamp, page.clone());
                return Ok(page);
            };
            if !version.deleted {
                bytes += item_size(&version.item);
                page.items.push(version.item);
            }
        }
        // Stopped at a limit: say where to resume.
        page.last_key = page
            .items
            .last()
            .map(|item| key_attributes(&self.table, item));
        self.ctx.cache.put_page(cache_key, stamp, page.clone());
        Ok(page)
    }
}

pub(crate) fn key_attributes(table: &TableDescriptor, item: &Item) -> Item {
    let s = &table.key_schema;
    std::iter::once(&s.hash)
        .chain(s.range.as_ref())
        .filter_map(|a| item.get(&a.name).map(|v| (a.name.clone(), v.clone())))
        .collect()
}

fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

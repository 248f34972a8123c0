//! Collecting what no reader needs: a table's GC (partition by partition,
//! children before the ancestors they inherit from, keeping what backups
//! pin), the sweep of dead table incarnations, and the purge of a deleted
//! table's objects.

use super::*;

impl Engine {
    /// Garbage-collects every partition of the table, sealed ones
    /// included. An SST inherited at a split is garbage only when no
    /// retained manifest of any partition names it.
    pub async fn gc(&self, table: &str) -> Result<GcReport> {
        let t = self.table(table).await?;
        let mut inherited: HashMap<u32, std::collections::HashSet<String>> = HashMap::new();
        let mut total = GcReport::default();
        let map = t.desc.map();
        // What backups pin is kept as if a child had inherited it. The pins
        // are listed again once they are a quarter of the grace period old:
        // a backup written after the listing pins a manifest that was the
        // newest at most half the grace period before, and GC deletes only
        // what manifests superseded a whole grace period ago named (see
        // `engine::backups`).
        let clock = &self.ctx.config.clock;
        let mut pins: Option<(crate::clock::Tick, std::collections::HashSet<String>)> = None;
        // Highest number first: a child is numbered after every ancestor,
        // so each partition is collected after all that inherit from it.
        for (id, p) in t.partitions.iter().rev() {
            let stale = pins
                .as_ref()
                .is_none_or(|(at, _)| !clock.fresh(Some(*at), self.ctx.config.gc_grace / 4));
            if stale {
                pins = Some((clock.tick(), self.pinned(table).await?));
            }
            let mut keep = inherited.remove(id).unwrap_or_default();
            if let Some((_, pinned)) = &pins {
                let part = paths::PartitionPaths::new(table, &t.desc.incarnation, *id);
                keep.extend(pinned.iter().filter_map(|p| part.own_run_id(p)));
            }
            let split = map.split_of(*id);
            let (r, kept) = p.gc(&keep, split).await?;
            for (home, sst) in kept {
                inherited.entry(home).or_default().insert(sst);
            }
            total.segments += r.segments;
            total.manifests += r.manifests;
            total.runs += r.runs;
        }
        self.ctx
            .compaction
            .collected((total.segments + total.manifests + total.runs) as u64);
        Ok(total)
    }

    /// Deletes the data of table incarnations that are no longer live: a
    /// deleted table's, or a re-created table's predecessor's. The deleting
    /// process purges right away; this catches what it missed and what other
    /// instances wrote in the moments their descriptor cache still named the
    /// old incarnation. Only once the table's latest schema change is older
    /// than the GC grace period. Returns the number of objects deleted.
    pub async fn sweep_dead_incarnations(&self) -> Result<usize> {
        let store = self.ctx.store.as_ref();
        let c = &self.ctx.config;
        let horizon = c
            .clock
            .now_ms()
            .saturating_sub((c.gc_grace + c.clock_skew).as_millis() as u64);
        let mut deleted = 0;
        for name in catalog::names(store).await? {
            let schemas = io::list(store, &paths::schema_dir(&name)).await?;
            let Some(newest) = schemas
                .iter()
                .filter(|m| paths::parse_seq(&m.location).is_some())
                .max_by_key(|m| m.location.clone())
            else {
                continue;
            };
            if (newest.last_modified.timestamp_millis().max(0) as u64) >= horizon {
                continue; // too recent: writers may still be finishing
            }
            let Some(latest) = catalog::latest(store, &name).await? else {
                continue;
            };
            let live = (!latest.deleted).then_some(latest.incarnation.as_str());
            let keep = self.pinned(&name).await?;
            let root = paths::table_root(&name);
            let listing = store
                .list_with_delimiter(Some(&root))
                .await
                .map_err(|e| Error::store(&root, e))?;
            for prefix in listing.common_prefixes {
                let Some(dir) = prefix.filename() else {
                    continue;
                };
                if dir == "schema" || Some(dir) == live {
                    continue;
                }
                for meta in io::list(store, &prefix).await? {
                    if keep.contains(meta.location.as_ref()) {
                        continue;
                    }
                    io::delete(store, &meta.location).await?;
                    deleted += 1;
                }
            }
        }
        Ok(deleted)
    }
}

/// Deletes every object under `prefix` but those named in `keep`.
pub(super) async fn purge(
    store: &dyn ObjectStore,
    prefix: &object_store::path::Path,
    keep: &std::collections::HashSet<String>,
) -> Result<()> {
    for meta in io::list(store, prefix).await? {
        if !keep.contains(meta.location.as_ref()) {
            io::delete(store, &meta.location).await?;
        }
    }
    Ok(())
}

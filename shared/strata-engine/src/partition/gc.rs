use super::*;

/// What a GC pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub segments: usize,
    pub manifests: usize,
    pub runs: usize,
}

impl Partition {
    /// Deletes what no reader can need any more: log segments folded into a
    /// manifest older than the grace period (and past log retention),
    /// manifests superseded longer ago than that, and runs no such manifest
    /// references, here or (`inherited`) in a partition split from this one.
    /// Also returns the SSTs of ancestors that the manifests it keeps name,
    /// as (home, id): what their GC must keep. `split` is this partition's
    /// split as the caller's (current) descriptor records it: the
    /// partition's own descriptor may predate it (an instance keeps its
    /// partitions across splits).
    pub async fn gc(
        &self,
        inherited: &std::collections::HashSet<String>,
        split: Option<&map::SplitRecord>,
    ) -> Result<(GcReport, Vec<(u32, String)>)> {
        let c = &self.ctx.config;
        let now = self.clock().now_ms();
        // With point-in-time recovery on, the manifest in force at the start
        // of the window, and everything after it, must stay.
        let grace = c
            .gc_grace
            .max(Duration::from_secs(self.table.pitr_window_secs));
        let horizon = now.saturating_sub((grace + c.clock_skew).as_millis() as u64);
        // A manifest's age: the later of its writer's clock and the store's
        // (a compactor whose clock lags must not shorten the grace period).
        let mut manifests: Vec<(Manifest, u64)> = Vec::new();
        for meta in io::list(self.store(), &self.paths.manifest_dir()).await? {
            if let Some(v) = paths::parse_seq(&meta.location) {
                if let Some(m) = self.read_manifest(v).await? {
                    let stored_ms = meta.last_modified.timestamp_millis().max(0) as u64;
                    if stored_ms.abs_diff(m.created_at_ms) > c.clock_skew.as_millis() as u64 {
                        tracing::warn!(path = %meta.location, written_ms = m.created_at_ms, stored_ms,
                            "manifest written by an instance whose clock is off by more than the allowed skew");
                    }
                    let created = m.created_at_ms.max(stored_ms);
                    manifests.push((m, created));
                }
            }
        }
        manifests.sort_by_key(|(m, _)| m.version);
        let mut report = GcReport::default();
        let mut kept_inherited = Vec::new();
        let mut keep = |m: &Manifest| {
            kept_inherited.extend(
                m.ssts()
                    .filter_map(|s| s.inherited_from(self.part).map(|h| (h, s.id.clone()))),
            )
        };
        // By what the runs hold, as point-in-time reads choose manifests.
        let Some((stable, _)) = manifests
            .iter()
            .rev()
            .find(|(m, created)| *created < horizon && m.folded_at(c.clock_skew) < horizon * 1000)
        else {
            manifests.iter().for_each(|(m, _)| keep(m));
            return Ok((report, kept_inherited));
        };
        // Log segments.
        let retention = now.saturating_sub(c.log_retention.as_millis() as u64);
        for meta in io::list(self.store(), &self.paths.log_dir()).await? {
            let old = (meta.last_modified.timestamp_millis().max(0) as u64) < retention;
            if paths::parse_seq(&meta.location).is_some_and(|s| s <= stable.compacted_through)
                && old
            {
                io::delete(self.store(), &meta.location).await?;
                report.segments += 1;
            }
        }
        // Manifests superseded before the horizon, and the runs only they use.
        // A sealed partition whose split was recorded before the horizon
        // serves no read from its SSTs any more (its keys are its children's,
        // and a moment before the seal is read from older manifests): its
        // last manifests stay as the record of the seal, but what they name
        // lives on only where a child's manifest names it.
        let retired = |m: &Manifest| {
            m.sealed.is_some() && split.is_some_and(|s| s.sealed_at_micros / 1000 < horizon)
        };
        let mut live_runs = std::collections::HashSet::new();
        for (i, (m, _)) in manifests.iter().enumerate() {
            let superseded_at = manifests.get(i + 1).map(|(_, created)| *created);
            if superseded_at.is_some_and(|t| t < horizon) {
                io::delete(self.store(), &self.paths.manifest(m.version)).await?;
                report.manifests += 1;
            } else if !retired(m) {
                live_runs.extend(
                    m.ssts()
                        .filter(|r| r.inherited_from(self.part).is_none())
                        .map(|r| r.id.clone()),
                );
                keep(m);
            }
        }
        for meta in io::list(self.store(), &self.paths.runs_dir()).await? {
            let Some(id) = paths::parse_run_id(&meta.location) else {
                continue;
            };
            let old = (meta.last_modified.timestamp_millis().max(0) as u64) < horizon;
            if !live_runs.contains(&id) && !inherited.contains(&id) && old {
                io::delete(self.store(), &meta.location).await?;
                report.runs += 1;
            }
        }
        Ok((report, kept_inherited))
    }
}

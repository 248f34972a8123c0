//! Point-in-time reads and restores: a partition's keys as they were at
//! a moment (following splits up the map to the ancestor live then, and
//! down to the children of a split the caller's descriptor did not show),
//! and a table filled from another's moment.

use super::*;

impl Engine {
    /// One partition's keys as they were at `t_micros` (see
    /// [`PointInTime`]). Before a split made the partition, its keys were
    /// an ancestor's: that one's moment is read, keeping only its keys.
    pub async fn point_in_time(
        &self,
        table: &str,
        part: u32,
        t_micros: u64,
    ) -> Result<PointInTime> {
        let (t, p) = self.partition(table, part).await?;
        let map = t.desc.map();
        let mut live = part;
        while let Some(parent) = crate::partition_map::parent(t.desc.partitions, live) {
            match map.split_of(parent) {
                Some(split) if split.sealed_at_micros > t_micros => live = parent,
                _ => break,
            }
        }
        let (p, only) = if live == part {
            (p, None)
        } else {
            let only = crate::partition_map::Owner {
                node: crate::partition_map::node_of(t.desc.partitions, part),
                hash_type: t.desc.key_schema.hash.key_type,
            };
            (self.partition(table, live).await?.1, Some(only))
        };
        let plan = p.plan_at(t_micros).await?;
        // Sealed at or before T by a split the caller's descriptor did not
        // show: the moment is the children's (their writes after the seal
        // are not here). Finish the split so the descriptor routes to them.
        if p.sealed().is_some_and(|s| s.ts_micros <= t_micros) {
            self.install_if_newer(p.split().await?);
            return Err(Error::Sealed {
                table: table.to_string(),
                partition: live,
            });
        }
        Ok(PointInTime {
            desc: Arc::clone(&t.desc),
            part: p,
            plan,
            only,
            after: None,
            done: false,
        })
    }

    /// The moments at `t_micros` that hold partition `part`'s keys then:
    /// its own, or, when a split the caller's descriptor did not show had
    /// sealed it by then, its children's (the split is finished first).
    /// Each comes with the partition it is of.
    pub async fn moments_of(
        &self,
        table: &str,
        part: u32,
        t_micros: u64,
    ) -> Result<Vec<(u32, PointInTime)>> {
        let mut todo = vec![part];
        let mut out = Vec::new();
        let mut rerouted = 0;
        while let Some(p) = todo.pop() {
            match self.point_in_time(table, p, t_micros).await {
                Ok(m) => out.push((p, m)),
                Err(e @ Error::Sealed { .. }) => {
                    rerouted += 1;
                    let desc = self.describe_table(table).await?;
                    if rerouted > MAX_REROUTES || desc.map().split_of(p).is_none() {
                        return Err(e);
                    }
                    let [low, high] = crate::partition_map::children(desc.partitions, p);
                    todo.extend([high, low]);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Fills `target` (a table created with `source`'s key schema) with
    /// exactly the items `source` held at `t_micros`: each partition live
    /// at that moment is read in key order and its items routed by the
    /// target's own map, becoming one sorted run of each target partition
    /// they land in, the oldest data it has, written SST by SST as the
    /// moment is read (memory bounded by one chunk and an SST per target
    /// partition one source partition feeds). Returns the number of items.
    pub async fn restore_into(&self, source: &str, target: &str, t_micros: u64) -> Result<u64> {
        let desc = self.describe_table(source).await?;
        let t = self.table(target).await?;
        if t.desc.key_schema != desc.key_schema {
            return Err(Error::Validation(format!(
                "cannot restore {source} into {target}: their keys differ"
            )));
        }
        let mut items = 0;
        for part in desc.map().leaves_at(Some(t_micros)) {
            for (_, moment) in self.moments_of(source, part, t_micros).await? {
                items += self.restore_moment(moment, &t, target).await?;
            }
        }
        Ok(items)
    }

    /// Ingests one moment's items into the partitions of `t` they route to.
    pub(super) async fn restore_moment(
        &self,
        mut moment: PointInTime,
        t: &TableHandle,
        target: &str,
    ) -> Result<u64> {
        let hash_type = moment.desc.key_schema.hash.key_type;
        let target_map = t.desc.map();
        let mut items = 0;
        let mut ingests = BTreeMap::new();
        while let Some(chunk) = moment.next_chunk(RESTORE_CHUNK).await? {
            for (k, v) in chunk.into_iter().filter(|(_, v)| !v.deleted) {
                let h = crate::partition_map::encoded_key_hash(&k, hash_type)
                    .ok_or_else(|| Error::Validation("a stored key does not parse".into()))?;
                let to = target_map.route_hash(h, None);
                let ingest = match ingests.entry(to) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let p = t.partitions.get(&to).ok_or_else(|| {
                            Error::Validation(format!("{target} has no partition {to}"))
                        })?;
                        e.insert(p.ingest())
                    }
                };
                ingest.push(&k, &Version { seq: 0, ..v }).await?;
                items += 1;
            }
        }
        for (_, ingest) in ingests {
            ingest.finish().await?;
        }
        Ok(items)
    }
}

/// Versions a restore reads from its source at a time.
const RESTORE_CHUNK: usize = 10_000;

/// One partition of a table as it was at one moment, read in key order,
/// chunk by chunk (tombstones included, so two moments can be compared).
pub struct PointInTime {
    desc: Arc<TableDescriptor>,
    part: Arc<Partition>,
    plan: crate::partition::PointInTimePlan,
    /// Reading an ancestor's moment for a partition split from it since.
    only: Option<crate::partition_map::Owner>,
    after: Option<Vec<u8>>,
    done: bool,
}

impl PointInTime {
    /// A partition's moment as `plan` holds it, read through `part`.
    pub(super) fn of_plan(
        desc: Arc<TableDescriptor>,
        part: Arc<Partition>,
        plan: crate::partition::PointInTimePlan,
    ) -> Self {
        PointInTime {
            desc,
            part,
            plan,
            only: None,
            after: None,
            done: false,
        }
    }

    pub fn table(&self) -> &TableDescriptor {
        &self.desc
    }

    /// The last log segment of the partition the moment includes.
    pub fn through(&self) -> u64 {
        self.plan.through
    }

    /// Starts reading again from the first key.
    pub fn rewind(&mut self) {
        self.after = None;
        self.done = false;
    }

    /// The next up to `limit` versions, or None at the end.
    pub async fn next_chunk(&mut self, limit: usize) -> Result<Option<Vec<(Vec<u8>, Version)>>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let mut chunk = self
                .part
                .chunk_of(&self.plan, self.after.as_deref(), limit.max(1))
                .await?;
            if chunk.len() < limit.max(1) {
                self.done = true;
            }
            match chunk.last() {
                Some((k, _)) => self.after = Some(k.clone()),
                None => return Ok(None),
            }
            if let Some(only) = &self.only {
                chunk.retain(|(k, _)| only.owns(k));
            }
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

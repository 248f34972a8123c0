use super::*;

#[derive(Default)]
pub(super) struct View {
    pub(super) loaded: bool,
    pub(super) manifest: Arc<Manifest>,
    pub(super) manifest_checked: Option<Tick>,
    pub(super) tail: u64,
    pub(super) tail_checked: Option<Tick>,
    /// Commit time of the tail segment (commit times increase along the log).
    pub(super) last_ts: u64,
    /// Old-image generation of the tail segment (the next one inherits it).
    pub(super) images_gen: u64,
    /// Commit id of each segment after `manifest.compacted_through`, so a
    /// writer recognises its own segment however it learns of it.
    pub(super) commits: BTreeMap<u64, u128>,
    /// Newest version of each key written after `manifest.compacted_through`.
    pub(super) mem: BTreeMap<Vec<u8>, Version>,
    pub(super) mem_bytes: usize,
    /// Client tokens in `mem`'s segments: token -> (seq, ts).
    pub(super) tokens: HashMap<String, (u64, u64)>,
    /// The seal that ended the log (a split), once met.
    pub(super) sealed: Option<SealMark>,
    /// Items locked by a transaction's intent and not released yet.
    pub(super) locks: BTreeMap<Vec<u8>, Lock>,
}

/// An intent not released yet, and the seq it was committed at.
#[derive(Debug, Clone)]
pub(super) struct Lock {
    pub(super) seq: u64,
    pub(super) intent: Intent,
}

impl View {
    pub(super) fn apply(&mut self, seg: &LogSegment) {
        if seg.seq <= self.tail {
            return;
        }
        let origin: Arc<str> = Arc::from(seg.origin_region.as_str());
        for m in &seg.mutations {
            self.mem_bytes += entry_bytes(&m.key, &m.image);
            let (ts_micros, origin) = match &m.replicated {
                Some(s) => (s.ts_micros, Arc::clone(&s.region)),
                None => (seg.lww_ts_micros, Arc::clone(&origin)),
            };
            let replaced = self.mem.insert(
                m.key.clone(),
                Version {
                    seq: seg.seq,
                    ts_micros,
                    origin,
                    deleted: m.deleted,
                    item: Arc::clone(&m.image),
                },
            );
            if let Some(old) = replaced {
                self.mem_bytes = self
                    .mem_bytes
                    .saturating_sub(entry_bytes(&m.key, &old.item));
            }
            if let Some(t) = &m.token {
                self.tokens
                    .insert(t.clone(), (seg.seq, seg.commit_ts_micros));
            }
        }
        for r in &seg.releases {
            if self
                .locks
                .get(&r.key)
                .is_some_and(|l| l.intent.txn == r.txn)
            {
                if let Some(l) = self.locks.remove(&r.key) {
                    self.mem_bytes = self
                        .mem_bytes
                        .saturating_sub(entry_bytes(&r.key, &l.intent.image));
                }
            }
        }
        for i in &seg.intents {
            self.mem_bytes += entry_bytes(&i.key, &i.image);
            let lock = Lock {
                seq: seg.seq,
                intent: i.clone(),
            };
            if let Some(old) = self.locks.insert(i.key.clone(), lock) {
                self.mem_bytes = self
                    .mem_bytes
                    .saturating_sub(entry_bytes(&old.intent.key, &old.intent.image));
            }
        }
        self.tail = seg.seq;
        self.last_ts = self.last_ts.max(seg.commit_ts_micros);
        self.images_gen = self.images_gen.max(seg.images_gen.unwrap_or_default());
        self.commits.insert(seg.seq, seg.commit_id);
        if seg.seal {
            self.sealed = Some(SealMark {
                seq: seg.seq,
                ts_micros: seg.commit_ts_micros,
            });
        }
    }

    /// Adopts a newer manifest: what it folded leaves `mem`.
    pub(super) fn install(&mut self, m: Arc<Manifest>) {
        if m.version <= self.manifest.version && self.loaded {
            return;
        }
        let ct = m.compacted_through;
        // Locks: the ones this view met stay as it knows them (released or
        // not) unless the manifest folded past them without carrying them
        // (released by then); the manifest's own it never met are added.
        let carried: Vec<(u64, Intent)> = m
            .locks
            .iter()
            .filter_map(|c| match c.intent() {
                Ok(i) => Some((c.seq, i)),
                Err(e) => {
                    tracing::error!(error = %e, "a manifest's carried lock does not decode");
                    None
                }
            })
            .collect();
        let seen_through = if self.loaded { self.tail } else { 0 };
        self.locks.retain(|k, l| {
            l.seq > ct
                || carried
                    .iter()
                    .any(|(_, i)| i.key == *k && i.txn == l.intent.txn)
        });
        for (seq, i) in carried {
            if seq > seen_through {
                self.locks.insert(i.key.clone(), Lock { seq, intent: i });
            }
        }
        self.mem.retain(|_, v| v.seq > ct);
        self.tokens.retain(|_, (seq, _)| *seq > ct);
        self.commits.retain(|seq, _| *seq > ct);
        self.images_gen = self.images_gen.max(m.images_gen);
        self.mem_bytes = self
            .mem
            .iter()
            .map(|(k, v)| entry_bytes(k, &v.item))
            .sum::<usize>()
            + self
                .locks
                .iter()
                .map(|(k, l)| entry_bytes(k, &l.intent.image))
                .sum::<usize>();
        self.tail = self.tail.max(ct);
        self.last_ts = self.last_ts.max(m.folded_ts_micros);
        self.sealed = self.sealed.or(m.sealed);
        self.manifest = m;
    }

    pub(super) fn token_seq(&self, token: &str) -> Option<u64> {
        self.tokens.get(token).map(|(s, _)| *s).or_else(|| {
            self.manifest
                .tokens
                .iter()
                .find(|t| t.token == token)
                .map(|t| t.seq)
        })
    }
}

/// The first `limit` entries of `mem` with keys after `after` (a merge of
/// `limit` results never needs more of them).
pub(super) fn first_after(
    mem: &BTreeMap<Vec<u8>, Version>,
    after: Option<&[u8]>,
    limit: usize,
) -> Vec<(Vec<u8>, Version)> {
    let lo = after.map_or(Bound::Unbounded, |k| Bound::Excluded(k.to_vec()));
    mem.range((lo, Bound::Unbounded))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Memory a segment's images and old images hold (see `entry_bytes`).
pub(super) fn segment_bytes(seg: &LogSegment) -> usize {
    seg.mutations
        .iter()
        .map(|m| entry_bytes(&m.key, &m.image) + m.old_image.as_deref().map_or(0, item_footprint))
        .sum()
}

/// Memory a tail entry is charged for: its key, its version and the item.
pub(super) fn entry_bytes(key: &[u8], item: &Item) -> usize {
    key.len() + 32 + item_footprint(item)
}

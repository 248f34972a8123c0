//! Merged reads over the log tail and the sorted runs: one cursor per
//! sorted run, each reading one SST at a time and one block at a time, so a
//! merge holds a block (or a read-ahead buffer) per run whatever the
//! partition's size.

use bytes::Bytes;

use crate::manifest::SortedRun;
use crate::run::{decode_block, decode_meta};

use super::*;

/// How a cursor fetches SST metadata and blocks.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fetch {
    /// Through the block cache (reads: what they touch is likely touched
    /// again).
    Cached,
    /// Past the cache, this many bytes of consecutive blocks per ranged GET
    /// (compaction: one pass over everything, which must neither evict what
    /// readers use nor cost a GET per block).
    ReadAhead(usize),
}

/// True when no key can lie between the bounds (a range a BTreeMap would
/// refuse with a panic).
pub(super) fn is_empty_range(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

pub(crate) fn above_lo(key: &[u8], lo: &Bound<Vec<u8>>) -> bool {
    match lo {
        Bound::Unbounded => true,
        Bound::Included(b) => key >= b.as_slice(),
        Bound::Excluded(b) => key > b.as_slice(),
    }
}

pub(crate) fn below_hi(key: &[u8], hi: &Bound<Vec<u8>>) -> bool {
    match hi {
        Bound::Unbounded => true,
        Bound::Included(b) => key <= b.as_slice(),
        Bound::Excluded(b) => key < b.as_slice(),
    }
}

/// The bounds a cursor reads within, and its direction.
#[derive(Debug, Clone)]
pub(super) struct Span {
    pub(super) lo: Bound<Vec<u8>>,
    pub(super) hi: Bound<Vec<u8>>,
    pub(super) forward: bool,
}

impl Span {
    pub(super) fn all() -> Self {
        Self {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
            forward: true,
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        above_lo(key, &self.lo) && below_hi(key, &self.hi)
    }
}

/// Reads one SST in key order (or reverse) within a span, a block at a time.
pub(super) struct SstCursor {
    path: Path,
    meta: Arc<RunMeta>,
    block_idx: Option<usize>,
    block: Option<Arc<Block>>,
    pos: usize,
    /// Under [`Fetch::ReadAhead`]: bytes of the SST from this offset.
    ahead: Option<(u64, Bytes)>,
    /// Inherited from an ancestor at a split: holds keys of the sibling
    /// too, which this cursor skips.
    foreign: bool,
}

impl SstCursor {
    pub(super) async fn open(
        part: &Partition,
        sst: &RunInfo,
        span: &Span,
        fetch: Fetch,
    ) -> Result<Self> {
        let path = part.sst_path(sst);
        let meta = match fetch {
            Fetch::Cached => part.ctx.cache.run_meta(part.store(), &path, sst).await?,
            Fetch::ReadAhead(_) => {
                part.ctx.compaction.merge_get();
                let bytes = io::get_range(part.store(), &path, sst.meta_offset, sst.size).await?;
                Arc::new(decode_meta(&bytes).map_err(|e| Error::corrupt(&path, e))?)
            }
        };
        let n = meta.blocks.len();
        let block_idx = if span.forward {
            let i = match &span.lo {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_after(k),
            };
            (i < n).then_some(i)
        } else {
            match &span.hi {
                Bound::Unbounded => n.checked_sub(1),
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_before(k),
            }
        };
        Ok(Self {
            path,
            meta,
            block_idx,
            block: None,
            pos: 0,
            ahead: None,
            foreign: sst.inherited_from(part.part).is_some(),
        })
    }

    async fn load(&mut self, part: &Partition, idx: usize, fetch: Fetch) -> Result<Arc<Block>> {
        let handle = &self.meta.blocks[idx];
        let Fetch::ReadAhead(ahead) = fetch else {
            return part.ctx.cache.block(part.store(), &self.path, handle).await;
        };
        let (start, end) = (handle.offset, handle.offset + handle.len);
        let buffered = self
            .ahead
            .as_ref()
            .is_some_and(|(at, b)| *at <= start && end <= *at + b.len() as u64);
        if !buffered {
            // This block and the ones after it, up to the read-ahead size.
            let mut until = end;
            for h in &self.meta.blocks[idx + 1..] {
                if h.offset + h.len - start > ahead as u64 {
                    break;
                }
                until = h.offset + h.len;
            }
            self.ahead = None; // free the old buffer before the new read
            part.ctx.compaction.merge_get();
            let bytes = io::get_range(part.store(), &self.path, start, until).await?;
            self.ahead = Some((start, bytes));
        }
        let (at, bytes) = self.ahead.as_ref().expect("buffered above");
        let slice = &bytes[(start - at) as usize..(end - at) as usize];
        let block = decode_block(slice).map_err(|e| Error::corrupt(&self.path, e))?;
        Ok(Arc::new(block))
    }

    pub(super) async fn peek(
        &mut self,
        part: &Partition,
        span: &Span,
        fetch: Fetch,
    ) -> Result<Option<(Vec<u8>, Version)>> {
        loop {
            let Some(idx) = self.block_idx else {
                return Ok(None);
            };
            if self.block.is_none() {
                let block = self.load(part, idx, fetch).await?;
                self.pos = if span.forward {
                    block.partition_point(|(k, _)| !above_lo(k, &span.lo))
                } else {
                    block.partition_point(|(k, _)| below_hi(k, &span.hi))
                };
                self.block = Some(block);
            }
            let block = self.block.as_ref().map(Arc::clone).unwrap_or_default();
            let entry = if span.forward {
                block.get(self.pos)
            } else {
                self.pos.checked_sub(1).and_then(|p| block.get(p))
            };
            match entry {
                Some((k, v)) => {
                    if !span.contains(k) {
                        self.block_idx = None;
                        return Ok(None);
                    }
                    if self.foreign && !part.owner.owns(k) {
                        self.advance(span.forward);
                        continue;
                    }
                    return Ok(Some((k.clone(), v.clone())));
                }
                None => {
                    self.block = None;
                    self.block_idx = if span.forward {
                        Some(idx + 1).filter(|i| *i < self.meta.blocks.len())
                    } else {
                        idx.checked_sub(1)
                    };
                }
            }
        }
    }

    /// The index of the block the cursor is in.
    pub(super) fn block_index(&self) -> Option<usize> {
        self.block_idx.filter(|_| self.block.is_some())
    }

    /// Puts the block the cursor is in into the block cache; returns its
    /// index (see `Caches::put_block`).
    pub(super) fn cache_block(&self, part: &Partition) -> Option<usize> {
        let (idx, block) = (self.block_idx?, self.block.as_ref()?);
        part.ctx
            .cache
            .put_block(&self.path, &self.meta.blocks[idx], Arc::clone(block));
        Some(idx)
    }

    pub(super) fn advance(&mut self, forward: bool) {
        if forward {
            self.pos += 1;
        } else {
            self.pos = self.pos.saturating_sub(1);
        }
    }
}

/// Reads one sorted run within a span: its SSTs one after another (their
/// key ranges are disjoint and ordered), skipping those outside the span.
pub(super) struct RunCursor<'a> {
    run: &'a SortedRun,
    /// The next SST to open, counted in the cursor's direction.
    next: usize,
    open: Option<SstCursor>,
    fetch: Fetch,
}

impl<'a> RunCursor<'a> {
    pub(super) fn new(run: &'a SortedRun, span: &Span, fetch: Fetch) -> Self {
        let n = run.ssts.len();
        // SSTs wholly before the span (in the direction of reading) are
        // skipped without being opened.
        let skip = if span.forward {
            run.ssts
                .iter()
                .take_while(|s| !s.range_unknown() && !above_lo(&s.last_key, &span.lo))
                .count()
        } else {
            run.ssts
                .iter()
                .rev()
                .take_while(|s| !s.range_unknown() && !below_hi(&s.first_key, &span.hi))
                .count()
        };
        Self {
            run,
            next: skip.min(n),
            open: None,
            fetch,
        }
    }

    async fn peek(&mut self, part: &Partition, span: &Span) -> Result<Option<(Vec<u8>, Version)>> {
        loop {
            if let Some(open) = self.open.as_mut() {
                if let Some(entry) = open.peek(part, span, self.fetch).await? {
                    return Ok(Some(entry));
                }
                self.open = None;
            }
            let n = self.run.ssts.len();
            if self.next >= n {
                return Ok(None);
            }
            let i = if span.forward {
                self.next
            } else {
                n - 1 - self.next
            };
            let sst = &self.run.ssts[i];
            // Past the span: nothing later in this run can be inside it.
            let past = !sst.range_unknown()
                && if span.forward {
                    !below_hi(&sst.first_key, &span.hi)
                } else {
                    !above_lo(&sst.last_key, &span.lo)
                };
            if past {
                self.next = n;
                return Ok(None);
            }
            self.next += 1;
            self.open = Some(SstCursor::open(part, sst, span, self.fetch).await?);
        }
    }

    fn advance(&mut self, forward: bool) {
        if let Some(open) = self.open.as_mut() {
            open.advance(forward);
        }
    }
}

/// Merges the in-memory tail with the sorted runs, newest source first on
/// equal keys, yielding each key's newest version once (tombstones
/// included).
pub(super) struct Merger<'a> {
    pub(super) part: &'a Partition,
    pub(super) mem: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Version)>>,
    pub(super) runs: Vec<RunCursor<'a>>,
    pub(super) span: Span,
}

impl<'a> Merger<'a> {
    /// A merge of `mem` (the log's versions, in the span's order) over the
    /// sorted runs `levels` (newest first).
    pub(super) fn new(
        part: &'a Partition,
        mem: Vec<(Vec<u8>, Version)>,
        levels: &'a [SortedRun],
        span: Span,
        fetch: Fetch,
    ) -> Self {
        let runs = levels
            .iter()
            .map(|r| RunCursor::new(r, &span, fetch))
            .collect();
        Self {
            part,
            mem: mem.into_iter().peekable(),
            runs,
            span,
        }
    }

    pub(super) async fn next(&mut self) -> Result<Option<(Vec<u8>, Version)>> {
        let forward = self.span.forward;
        let mut best: Option<(Vec<u8>, Version)> = self.mem.peek().cloned();
        let mut heads = Vec::with_capacity(self.runs.len());
        for run in self.runs.iter_mut() {
            heads.push(run.peek(self.part, &self.span).await?);
        }
        // Runs are newest first, so on equal keys the earlier source wins.
        for head in heads.iter().flatten() {
            let better = match &best {
                None => true,
                Some((k, _)) => {
                    if forward {
                        head.0 < *k
                    } else {
                        head.0 > *k
                    }
                }
            };
            if better {
                best = Some(head.clone());
            }
        }
        let Some((key, version)) = best else {
            return Ok(None);
        };
        if self.mem.peek().is_some_and(|(k, _)| *k == key) {
            self.mem.next();
        }
        for (run, head) in self.runs.iter_mut().zip(&heads) {
            if head.as_ref().is_some_and(|(k, _)| *k == key) {
                run.advance(forward);
            }
        }
        Ok(Some((key, version)))
    }
}

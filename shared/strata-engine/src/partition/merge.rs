use super::*;

/// Reads one run in key order (or reverse) within bounds, a block at a time.
pub(super) struct RunCursor {
    pub(super) path: Path,
    pub(super) meta: Arc<RunMeta>,
    pub(super) lo: Bound<Vec<u8>>,
    pub(super) hi: Bound<Vec<u8>>,
    pub(super) forward: bool,
    pub(super) block_idx: Option<usize>,
    pub(super) block: Option<Arc<Block>>,
    pub(super) pos: usize,
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

impl RunCursor {
    pub(super) fn new(
        path: Path,
        meta: Arc<RunMeta>,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        forward: bool,
    ) -> Self {
        let n = meta.blocks.len();
        let block_idx = if forward {
            let i = match &lo {
                Bound::Unbounded => 0,
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_after(k),
            };
            (i < n).then_some(i)
        } else {
            match &hi {
                Bound::Unbounded => n.checked_sub(1),
                Bound::Included(k) | Bound::Excluded(k) => meta.block_at_or_before(k),
            }
        };
        Self {
            path,
            meta,
            lo,
            hi,
            forward,
            block_idx,
            block: None,
            pos: 0,
        }
    }

    pub(super) async fn peek(&mut self, part: &Partition) -> Result<Option<(Vec<u8>, Version)>> {
        loop {
            let Some(idx) = self.block_idx else {
                return Ok(None);
            };
            if self.block.is_none() {
                let handle = &self.meta.blocks[idx];
                let block = part
                    .ctx
                    .cache
                    .block(part.store(), &self.path, handle)
                    .await?;
                self.pos = if self.forward {
                    block.partition_point(|(k, _)| !above_lo(k, &self.lo))
                } else {
                    block.partition_point(|(k, _)| below_hi(k, &self.hi))
                };
                self.block = Some(block);
            }
            let block = self.block.as_ref().map(Arc::clone).unwrap_or_default();
            let entry = if self.forward {
                block.get(self.pos)
            } else {
                self.pos.checked_sub(1).and_then(|p| block.get(p))
            };
            match entry {
                Some((k, v)) => {
                    let inside = if self.forward {
                        below_hi(k, &self.hi)
                    } else {
                        above_lo(k, &self.lo)
                    };
                    if !inside {
                        self.block_idx = None;
                        return Ok(None);
                    }
                    return Ok(Some((k.clone(), v.clone())));
                }
                None => {
                    self.block = None;
                    self.block_idx = if self.forward {
                        Some(idx + 1).filter(|i| *i < self.meta.blocks.len())
                    } else {
                        idx.checked_sub(1)
                    };
                }
            }
        }
    }

    pub(super) fn advance(&mut self) {
        if self.forward {
            self.pos += 1;
        } else {
            self.pos = self.pos.saturating_sub(1);
        }
    }
}

/// Merges the in-memory tail with the runs, newest source first on equal
/// keys, yielding each key's newest version once (tombstones included).
pub(super) struct Merger<'a> {
    pub(super) part: &'a Partition,
    pub(super) mem: std::iter::Peekable<std::vec::IntoIter<(Vec<u8>, Version)>>,
    pub(super) runs: Vec<RunCursor>,
    pub(super) forward: bool,
}

impl Merger<'_> {
    pub(super) async fn next(&mut self) -> Result<Option<(Vec<u8>, Version)>> {
        let mut best: Option<(Vec<u8>, Version)> = self.mem.peek().cloned();
        let mut heads = Vec::with_capacity(self.runs.len());
        for run in self.runs.iter_mut() {
            heads.push(run.peek(self.part).await?);
        }
        // Runs are newest first, so on equal keys the earlier source wins.
        for head in heads.iter().flatten() {
            let better = match &best {
                None => true,
                Some((k, _)) => {
                    if self.forward {
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
                run.advance();
            }
        }
        Ok(Some((key, version)))
    }
}

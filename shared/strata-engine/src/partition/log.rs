use super::*;

/// Segments read from a partition's log.
#[derive(Debug, Clone)]
pub struct LogRead {
    pub segments: Vec<Arc<LogSegment>>,
    /// The newest committed sequence number when read.
    pub tail: u64,
    /// The requested position is older than the oldest retained segment.
    pub trimmed: bool,
}

impl Partition {
    /// The newest committed sequence number, after a strong refresh.
    pub async fn tail(&self) -> Result<u64> {
        self.ensure_fresh(true).await?;
        Ok(self.read_view().tail)
    }

    /// The log as it is now: the first retained segment and the tail (the
    /// newest committed sequence number). GC deletes a prefix of the log, so
    /// the retained segments are `first..=tail`; `first == tail + 1` when
    /// none is. Found by binary search with HEAD requests (LIST order is not
    /// name order on every store), from a remembered lower bound.
    pub async fn log_bounds(&self) -> Result<(u64, u64)> {
        self.ensure_fresh(true).await?;
        let tail = self.read_view().tail;
        let (mut lo, mut hi) = (self.first_retained.load(Ordering::Relaxed).max(1), tail + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if io::exists(self.store(), &self.paths.log(mid)).await? {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        self.first_retained.fetch_max(lo, Ordering::Relaxed);
        Ok((lo, tail))
    }

    /// Up to `max` committed segments from `from` on, in order (one GET
    /// each, after one probe for the tail), with the tail as of the read.
    /// `trimmed` when `from` is at or before the tail but no longer retained.
    pub async fn read_log(&self, from: u64, max: usize) -> Result<LogRead> {
        self.ensure_fresh(true).await?;
        let (tail, folded) = {
            let v = self.read_view();
            (v.tail, v.manifest.compacted_through)
        };
        let from = from.max(1);
        let mut segments = Vec::new();
        // Only folded segments are ever deleted. Remembered ones may outlive
        // their objects: look at the store, so the trim horizon is the same
        // for every instance.
        if from <= folded.min(tail) && !io::exists(self.store(), &self.paths.log(from)).await? {
            return Ok(LogRead {
                segments,
                tail,
                trimmed: true,
            });
        }
        let mut trimmed = false;
        for seq in from..=tail.min(from.saturating_add(max as u64).saturating_sub(1)) {
            if let Some(seg) = self.recent_segment(seq) {
                segments.push(seg);
                continue;
            }
            match self.read_segment(seq).await? {
                Some(seg) => segments.push(Arc::new(seg)),
                None => {
                    trimmed = segments.is_empty();
                    break;
                }
            }
        }
        Ok(LogRead {
            segments,
            tail,
            trimmed,
        })
    }
}

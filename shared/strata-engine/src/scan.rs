//! Scans: a table read family by family (the partitions descended from
//! one first partition), each family in key order whatever splits it has
//! had, so a scan resumed from a page's last key after a split neither
//! skips nor repeats an item.

use std::collections::VecDeque;
use std::ops::Bound;
use std::sync::Arc;

use crate::engine::TableHandle;
use crate::error::{Error, Result};
use crate::keys::{encode_key, partition_of};
use crate::ops::{Consistency, Page};
use crate::partition::Partition;
use crate::partition_map::family;
use crate::value::{item_size, Item, ItemKey};
use crate::Engine;

/// Items a family member is read ahead by, at least, in a merged scan.
const MIN_CHUNK: usize = 16;

impl Engine {
    /// One page of a scan. With `segment = Some((s, n))` only the families
    /// `f` with `f % n == s` are read (a family: a first partition and the
    /// partitions split from it), so `n` workers can scan in parallel.
    /// Resume with the page's `last_key` as `start_after`.
    pub async fn scan(
        &self,
        table: &str,
        segment: Option<(u32, u32)>,
        start_after: Option<&ItemKey>,
        limit: usize,
        max_bytes: usize,
        consistency: Consistency,
    ) -> Result<Page> {
        let (seg, total) = segment.unwrap_or((0, 1));
        if total == 0 || seg >= total {
            return Err(Error::Validation(
                "Segment must be less than TotalSegments".into(),
            ));
        }
        let strong = consistency == Consistency::Strong;
        self.routed(table, |t| {
            Box::pin(async move {
                self.scan_page(&t, (seg, total), start_after, limit, max_bytes, strong)
                    .await
            })
        })
        .await
    }

    async fn scan_page(
        &self,
        t: &TableHandle,
        (seg, total): (u32, u32),
        start_after: Option<&ItemKey>,
        limit: usize,
        max_bytes: usize,
        strong: bool,
    ) -> Result<Page> {
        let base = t.desc.partitions;
        let (first, after) = match start_after {
            Some(k) => {
                crate::engine::check_key_types(&t.desc.key_schema, k)?;
                let family = partition_of(&k.hash, base);
                if family % total != seg {
                    return Err(Error::Validation(
                        "Exclusive start key must lie within the segment".into(),
                    ));
                }
                (family, Some(encode_key(k)))
            }
            None => (0, None),
        };
        let leaves = t.desc.map().leaves();
        let mut page = Page::default();
        let mut bytes = 0;
        for fam in (first..base).filter(|f| f % total == seg) {
            let members: Vec<&Arc<Partition>> = leaves
                .iter()
                .filter(|l| family(base, **l) == fam)
                .filter_map(|l| t.partitions.get(l))
                .collect();
            let after = if fam == first { after.clone() } else { None };
            let want = limit - page.items.len();
            let got = scan_family(
                t,
                &members,
                after,
                want,
                max_bytes.saturating_sub(bytes),
                strong,
            )
            .await?;
            bytes += got.items.iter().map(|i| item_size(i)).sum::<usize>();
            page.items.extend(got.items);
            if got.last_key.is_some() {
                page.last_key = got.last_key;
                return Ok(page);
            }
        }
        Ok(page)
    }
}

/// One family's items after `after`, in key order: the one partition's
/// range read, or a k-way merge of its members' ranges read a chunk at a
/// time (members own disjoint keys, so the merge only interleaves).
async fn scan_family(
    t: &TableHandle,
    members: &[&Arc<Partition>],
    after: Option<Vec<u8>>,
    limit: usize,
    max_bytes: usize,
    strong: bool,
) -> Result<Page> {
    let lo = |after: &Option<Vec<u8>>| after.clone().map_or(Bound::Unbounded, Bound::Excluded);
    if let [only] = members {
        return only
            .range(lo(&after), Bound::Unbounded, true, limit, max_bytes, strong)
            .await;
    }
    struct Member {
        buf: VecDeque<(Vec<u8>, Arc<Item>)>,
        after: Option<Vec<u8>>,
        done: bool,
    }
    let chunk = (limit / members.len().max(1)).max(MIN_CHUNK);
    let mut state: Vec<Member> = members
        .iter()
        .map(|_| Member {
            buf: VecDeque::new(),
            after: after.clone(),
            done: false,
        })
        .collect();
    let schema = &t.desc.key_schema;
    let mut page = Page::default();
    let mut bytes = 0;
    loop {
        for (m, part) in state.iter_mut().zip(members) {
            if !m.buf.is_empty() || m.done {
                continue;
            }
            let got = part
                .range(
                    lo(&m.after),
                    Bound::Unbounded,
                    true,
                    chunk,
                    max_bytes,
                    strong,
                )
                .await?;
            m.done = got.last_key.is_none() || got.items.is_empty();
            for item in got.items {
                let key = schema
                    .key_of(&item)
                    .map_err(|e| Error::Validation(e.to_string()))?;
                m.buf.push_back((encode_key(&key), item));
            }
            if let Some((k, _)) = m.buf.back() {
                m.after = Some(k.clone());
            }
        }
        let next = state
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.buf.front().map(|(k, _)| (k, i)))
            .min()
            .map(|(_, i)| i);
        let Some(i) = next else {
            return Ok(page);
        };
        let Some((_, item)) = state[i].buf.pop_front() else {
            return Ok(page);
        };
        bytes += item_size(&item);
        page.items.push(item);
        if page.items.len() >= limit || bytes >= max_bytes {
            page.last_key = page
                .items
                .last()
                .map(|item| crate::partition::key_attributes(&t.desc, item));
            return Ok(page);
        }
    }
}

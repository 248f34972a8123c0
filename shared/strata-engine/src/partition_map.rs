//! The partition map: which partitions of a table are live, which one holds
//! a key, and how they split.
//!
//! A table starts with `base` partitions. A partition owns the keys whose
//! hash `h` has `h % m == r`; the first ones are `(r, base)`. A split of
//! `(r, m)` makes `(r, 2m)` and `(r + m, 2m)` (linear hashing): the
//! children partition the parent's keys exactly, whatever order splits
//! happen in, and every descendant of `(b, base)` holds keys with
//! `h % base == b` (its *family*).
//!
//! Each partition that ever existed has one number, `base·(2^j − 1) + r`
//! for `m = base·2^j` (a heap numbering): the first `base` are today's
//! `0..base`, so a table that never split keeps its layout, and every
//! follower that names partitions by number (stream shards, replication
//! cursors, export files, compactor events) names children the same way.

use serde::{Deserialize, Serialize};

use crate::keys::{encode_component, hash_component_len};
use crate::value::{KeyType, KeyValue};

/// Splits below a first partition at most (2^16 leaves per family).
pub const MAX_SPLIT_DEPTH: u32 = 16;

/// A split that happened: the partition sealed, the seq and commit time of
/// its seal segment. Kept in the table descriptor, in the order they were
/// made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitRecord {
    pub partition: u32,
    pub seal_seq: u64,
    pub sealed_at_micros: u64,
}

/// Where a partition sits: it owns the keys with `hash % m == r`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub r: u64,
    pub m: u64,
}

/// The partition numbered `id` in a table of `base` first partitions.
pub fn node_of(base: u32, id: u32) -> Node {
    let base = u64::from(base.max(1));
    let id = u64::from(id);
    let mut depth = 0;
    // Partitions at depth j are numbered base·(2^j − 1) .. base·(2^(j+1) − 1).
    while id >= base * ((1u64 << (depth + 1)) - 1) {
        depth += 1;
    }
    let m = base << depth;
    Node {
        r: id - base * ((1u64 << depth) - 1),
        m,
    }
}

/// The number of the partition `(r, m)`.
pub fn id_of(base: u32, node: Node) -> u32 {
    let base = u64::from(base.max(1));
    let depth = (node.m / base).trailing_zeros();
    (base * ((1u64 << depth) - 1) + node.r) as u32
}

/// The two partitions a split of `id` makes.
pub fn children(base: u32, id: u32) -> [u32; 2] {
    let n = node_of(base, id);
    let m = n.m * 2;
    [
        id_of(base, Node { r: n.r, m }),
        id_of(base, Node { r: n.r + n.m, m }),
    ]
}

/// The partition `id` was split from, if any.
pub fn parent(base: u32, id: u32) -> Option<u32> {
    let n = node_of(base, id);
    if n.m <= u64::from(base.max(1)) {
        return None;
    }
    let m = n.m / 2;
    Some(id_of(base, Node { r: n.r % m, m }))
}

/// How deep below its first partition `id` is.
pub fn depth(base: u32, id: u32) -> u32 {
    (node_of(base, id).m / u64::from(base.max(1))).trailing_zeros()
}

/// The first partition whose keys `id`'s are a part of (its family).
pub fn family(base: u32, id: u32) -> u32 {
    (node_of(base, id).r % u64::from(base.max(1))) as u32
}

/// The stable hash of a partition-key value that decides where it lives.
pub fn key_hash(hash: &KeyValue) -> u64 {
    let mut enc = Vec::with_capacity(16);
    encode_component(hash, &mut enc);
    xxhash_rust::xxh3::xxh3_64(&enc)
}

/// The same hash of an encoded key ([`crate::keys::encode_key`]) of a
/// table whose partition key has type `hash_type`; None when it does not
/// parse.
pub fn encoded_key_hash(key: &[u8], hash_type: KeyType) -> Option<u64> {
    hash_component_len(key, hash_type).map(|n| xxhash_rust::xxh3::xxh3_64(&key[..n]))
}

/// The partition map of one table: its first partitions and the splits made
/// since.
#[derive(Debug, Clone, Copy)]
pub struct PartitionMap<'a> {
    pub base: u32,
    pub splits: &'a [SplitRecord],
}

impl PartitionMap<'_> {
    pub fn split_of(&self, id: u32) -> Option<&SplitRecord> {
        self.splits.iter().find(|s| s.partition == id)
    }

    /// `parts` (every partition: None) that exist, with their ancestors:
    /// what a log reader must go over, since a partition's log goes on
    /// from its parent's. In number order: parents before children.
    pub fn with_ancestors(&self, parts: Option<&[u32]>) -> std::collections::BTreeSet<u32> {
        let all = self.all();
        let mut wanted = std::collections::BTreeSet::new();
        for &part in parts.unwrap_or(&all) {
            if all.binary_search(&part).is_ok() {
                let mut at = Some(part);
                while let Some(p) = at {
                    wanted.insert(p);
                    at = parent(self.base, p);
                }
            }
        }
        wanted
    }

    fn split_by(&self, id: u32, at_micros: Option<u64>) -> bool {
        self.split_of(id)
            .is_some_and(|s| at_micros.is_none_or(|t| s.sealed_at_micros <= t))
    }

    /// The partition that holds keys with this partition key.
    pub fn route(&self, hash: &KeyValue) -> u32 {
        self.route_hash(key_hash(hash), None)
    }

    /// The live partition holding hash `h` (at `at_micros`, or now).
    pub fn route_hash(&self, h: u64, at_micros: Option<u64>) -> u32 {
        let base = u64::from(self.base.max(1));
        let mut node = Node {
            r: h % base,
            m: base,
        };
        loop {
            let id = id_of(self.base, node);
            if !self.split_by(id, at_micros) {
                return id;
            }
            node.m *= 2;
            node.r = h % node.m;
        }
    }

    /// The live partitions (at `at_micros`, or now), in number order.
    pub fn leaves_at(&self, at_micros: Option<u64>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut todo: Vec<u32> = (0..self.base.max(1)).collect();
        while let Some(id) = todo.pop() {
            if self.split_by(id, at_micros) {
                todo.extend(children(self.base, id));
            } else {
                out.push(id);
            }
        }
        out.sort_unstable();
        out
    }

    pub fn leaves(&self) -> Vec<u32> {
        self.leaves_at(None)
    }

    /// Every partition that exists or has existed: the live ones and the
    /// sealed ones (whose logs and manifests followers still read).
    pub fn all(&self) -> Vec<u32> {
        let mut out = self.leaves();
        out.extend(self.splits.iter().map(|s| s.partition));
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Which keys of an SST a partition owns: an SST inherited from an
/// ancestor holds its sibling's keys too, which reads and merges skip.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub node: Node,
    pub hash_type: KeyType,
}

impl Owner {
    /// Whether the encoded key `key` ([`crate::keys::encode_key`]) is this
    /// partition's. A key that does not parse is kept (never hidden).
    pub fn owns(&self, key: &[u8]) -> bool {
        encoded_key_hash(key, self.hash_type).is_none_or(|h| h % self.node.m == self.node.r)
    }

    /// The share of an ancestor's keys this partition owns.
    pub fn share_of(&self, ancestor: Node) -> f64 {
        ancestor.m as f64 / self.node.m as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_round_trips_and_first_partitions_keep_their_numbers() {
        for base in [1u32, 3, 8] {
            for id in 0..200u32 {
                let n = node_of(base, id);
                assert!(n.r < n.m, "{base} {id} {n:?}");
                assert_eq!(id_of(base, n), id);
                if id < base {
                    assert_eq!(
                        n,
                        Node {
                            r: u64::from(id),
                            m: u64::from(base)
                        }
                    );
                    assert_eq!(parent(base, id), None);
                }
                for c in children(base, id) {
                    assert_eq!(parent(base, c), Some(id));
                    assert!(c > id, "a child is numbered after its parent");
                    assert_eq!(family(base, c), family(base, id));
                }
            }
        }
    }

    #[test]
    fn children_partition_their_parents_keys() {
        let splits: Vec<SplitRecord> = [2u32, 0, 5, 11]
            .iter()
            .enumerate()
            .map(|(i, p)| SplitRecord {
                partition: *p,
                seal_seq: 1,
                sealed_at_micros: (i as u64 + 1) * 10,
            })
            .collect();
        let map = PartitionMap {
            base: 3,
            splits: &splits,
        };
        let leaves = map.leaves();
        for h in 0..10_000u64 {
            let id = map.route_hash(h, None);
            assert!(leaves.contains(&id));
            let n = node_of(3, id);
            assert_eq!(h % n.m, n.r);
            // Before the second split, routing ignores it.
            let early = map.route_hash(h, Some(15));
            assert!(map.leaves_at(Some(15)).contains(&early));
        }
        assert_eq!(map.leaves_at(Some(0)), vec![0, 1, 2]);
    }
}

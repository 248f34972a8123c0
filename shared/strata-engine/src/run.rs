//! Sorted runs: the compacted, immutable form of a partition's data.
//!
//! ```text
//! [data block]… [meta block]
//! data block: frame "STDB" { count, (key, seq, ts, deleted, item)… }
//! meta block: frame "STRM" { blocks: (first key, last key, offset, len)…, bloom }
//! ```
//! Each block is framed with its own checksum. The meta block's offset is
//! recorded in the manifest, so a cold point read costs one ranged GET for
//! the meta block and one for the data block; a warm one at most the latter.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bloom::Bloom;
use crate::codec::{seal, unseal, DecodeError, Reader, Writer};
use crate::value::Item;

const BLOCK_MAGIC: &[u8; 4] = b"STDB";
const META_MAGIC: &[u8; 4] = b"STRM";
const VERSION: u8 = 2;

/// One version of one item: what the log or a run holds for a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub seq: u64,
    pub ts_micros: u64,
    /// The region that wrote this version (with `ts_micros`, its
    /// last-writer-wins stamp).
    pub origin: Arc<str>,
    pub deleted: bool,
    /// The item; for a tombstone, its key attributes.
    pub item: Arc<Item>,
}

/// An SST as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub size: u64,
    pub meta_offset: u64,
    pub entries: u64,
    /// Highest sequence number folded into this SST.
    pub max_seq: u64,
    /// Its first and last keys (hex). Empty in manifests written before
    /// levels: such an SST is taken to cover every key.
    #[serde(default, with = "hex_key")]
    pub first_key: Vec<u8>,
    #[serde(default, with = "hex_key")]
    pub last_key: Vec<u8>,
    /// The partition whose `runs/` holds the SST when it is not the one
    /// listing it: an SST a child inherited from an ancestor at a split
    /// (and holding the sibling's keys too). None: the lister's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<u32>,
    /// Its live items (entries that are not tombstones) and their
    /// DynamoDB size: what ItemCount and TableSizeBytes are estimated from.
    /// None in manifests written before SSTs counted them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveItems>,
    /// When its first live item expires by the table's TTL attribute as it
    /// was when the SST was written: what lets the expiry sweep skip it.
    /// None when TTL was off (or before SSTs recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Expiry>,
}

/// The earliest expiry among an SST's live items (see [`RunInfo::expiry`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    /// The TTL attribute the SST was written under.
    pub attr: String,
    /// The earliest expiry (epoch seconds) of a live item; None when no
    /// live item has one.
    pub first: Option<u64>,
}

/// The live items an SST holds (see [`RunInfo::live`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveItems {
    pub items: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for LiveItems {
    fn add_assign(&mut self, o: LiveItems) {
        self.items += o.items;
        self.bytes += o.bytes;
    }
}

impl RunInfo {
    /// Whether `key` lies within this SST's key range.
    pub fn covers(&self, key: &[u8]) -> bool {
        self.range_unknown()
            || (self.first_key.as_slice() <= key && key <= self.last_key.as_slice())
    }

    /// The ancestor whose `runs/` holds this SST when partition `part`
    /// lists it as inherited at a split; None when it is `part`'s own.
    pub fn inherited_from(&self, part: u32) -> Option<u32> {
        self.home.filter(|h| *h != part)
    }

    /// Its live items; for an SST from before they were counted, its
    /// entries, and its size less the meta block.
    pub fn live_items(&self) -> LiveItems {
        self.live.unwrap_or(LiveItems {
            items: self.entries,
            bytes: self.meta_offset,
        })
    }

    /// Written before SSTs recorded their key ranges.
    pub fn range_unknown(&self) -> bool {
        self.first_key.is_empty() && self.last_key.is_empty()
    }
}

/// Keys in the manifest's JSON as hex strings.
mod hex_key {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &[u8], s: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write;
        let mut out = String::with_capacity(key.len() * 2);
        for b in key {
            let _ = write!(out, "{b:02x}");
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(D::Error::custom("odd-length hex key"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| D::Error::custom("bad hex key"))
            })
            .collect()
    }
}

/// Where a data block is, and which keys it covers.
#[derive(Debug, Clone)]
pub struct BlockHandle {
    pub first_key: Vec<u8>,
    pub last_key: Vec<u8>,
    pub offset: u64,
    pub len: u64,
}

/// A run's block index and bloom filter.
#[derive(Debug)]
pub struct RunMeta {
    pub blocks: Vec<BlockHandle>,
    pub bloom: Bloom,
}

/// A decoded data block: entries sorted by key.
pub type Block = Vec<(Vec<u8>, Version)>;

/// Writes one SST from entries given in strictly increasing key order,
/// cutting data blocks at `block_size`. Holds the SST's bytes (what it has
/// written so far), one block being filled and 8 bytes a key for the bloom
/// filter: a compaction cuts SSTs by [`SstWriter::size`] to bound it.
pub struct SstWriter {
    id: String,
    block_size: usize,
    out: Vec<u8>,
    handles: Vec<BlockHandle>,
    block: Writer,
    count: u64,
    block_first: Vec<u8>,
    last: Vec<u8>,
    first: Vec<u8>,
    key_hashes: Vec<u64>,
    max_seq: u64,
    live: LiveItems,
    /// The TTL attribute and the earliest expiry seen (see `with_ttl`).
    expiry: Option<Expiry>,
    /// Expiries before this (epoch seconds) are too old ever to fall due
    /// (see `ttl::MAX_EXPIRED_AGE_SECS`) and are not recorded.
    expiry_floor: u64,
    /// The most `out` grows to by doubling (see `with_capacity_limit`).
    capacity_limit: usize,
}

impl SstWriter {
    pub fn new(id: String, block_size: usize) -> Self {
        Self {
            id,
            block_size: block_size.max(1),
            out: Vec::new(),
            handles: Vec::new(),
            block: Writer::default(),
            count: 0,
            block_first: Vec::new(),
            last: Vec::new(),
            first: Vec::new(),
            key_hashes: Vec::new(),
            max_seq: 0,
            live: LiveItems::default(),
            expiry: None,
            expiry_floor: 0,
            capacity_limit: usize::MAX,
        }
    }

    /// Records the earliest expiry of the SST's live items by TTL
    /// attribute `attr` (the table's, when TTL is on).
    pub fn with_ttl(mut self, attr: Option<String>) -> Self {
        self.expiry = attr.map(|attr| Expiry { attr, first: None });
        // A day's margin for clocks that disagree.
        self.expiry_floor = (crate::clock::now_ms() / 1000)
            .saturating_sub(crate::ttl::MAX_EXPIRED_AGE_SECS + 86_400);
        self
    }

    /// Grows the SST's buffer by doubling only up to `bytes` (an SST cut at
    /// a target size, plus its meta block), then by what each block needs:
    /// a buffer doubled past a 16 MB cut would hold 32 MB.
    pub fn with_capacity_limit(mut self, bytes: usize) -> Self {
        self.capacity_limit = bytes;
        self
    }

    pub fn push(&mut self, key: &[u8], v: &Version) {
        debug_assert!(self.key_hashes.is_empty() || key > self.last.as_slice());
        if self.key_hashes.is_empty() {
            self.first = key.to_vec();
        }
        if self.count == 0 {
            self.block_first = key.to_vec();
        }
        self.max_seq = self.max_seq.max(v.seq);
        if !v.deleted {
            self.live += LiveItems {
                items: 1,
                bytes: crate::value::item_size(&v.item) as u64,
            };
            if let Some(e) = self.expiry.as_mut() {
                let at = crate::ttl::expires_at(&v.item, &e.attr);
                if let Some(at) = at.filter(|at| *at >= self.expiry_floor) {
                    e.first = Some(e.first.map_or(at, |f| f.min(at)));
                }
            }
        }
        self.block.bytes(key);
        self.block.u64(v.seq);
        self.block.u64(v.ts_micros);
        self.block.str(&v.origin);
        self.block.u8(u8::from(v.deleted));
        self.block.item(&v.item);
        self.count += 1;
        self.key_hashes.push(crate::bloom::key_hash(key));
        self.last.clear();
        self.last.extend_from_slice(key);
        if self.block.buf.len() >= self.block_size {
            self.flush_block();
        }
    }

    fn flush_block(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut body = Writer::default();
        body.u64(self.count);
        body.buf.extend_from_slice(&self.block.buf);
        let framed = seal(BLOCK_MAGIC, VERSION, &body.buf);
        self.handles.push(BlockHandle {
            first_key: std::mem::take(&mut self.block_first),
            last_key: self.last.clone(),
            offset: self.out.len() as u64,
            len: framed.len() as u64,
        });
        self.reserve(framed.len());
        self.out.extend_from_slice(&framed);
        self.block.buf.clear();
        self.count = 0;
    }

    fn reserve(&mut self, more: usize) {
        let need = self.out.len() + more;
        if need > self.out.capacity() {
            let doubled = (self.out.capacity() * 2).min(self.capacity_limit);
            self.out.reserve_exact(doubled.max(need) - self.out.len());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.key_hashes.is_empty()
    }

    /// Bytes the SST would have if finished now (less its meta block).
    pub fn size(&self) -> usize {
        self.out.len() + self.block.buf.len()
    }

    /// The SST's bytes and how the manifest lists it.
    pub fn finish(mut self) -> (RunInfo, Vec<u8>) {
        self.flush_block();
        let bloom = Bloom::from_hashes(&self.key_hashes);
        let mut meta = Writer::default();
        meta.u64(self.handles.len() as u64);
        for h in &self.handles {
            meta.bytes(&h.first_key);
            meta.bytes(&h.last_key);
            meta.u64(h.offset);
            meta.u64(h.len);
        }
        bloom.write(&mut meta);
        let meta_offset = self.out.len() as u64;
        let meta = seal(META_MAGIC, VERSION, &meta.buf);
        self.reserve(meta.len());
        self.out.extend_from_slice(&meta);
        let info = RunInfo {
            id: self.id,
            size: self.out.len() as u64,
            meta_offset,
            entries: self.key_hashes.len() as u64,
            max_seq: self.max_seq,
            first_key: self.first,
            last_key: self.last,
            home: None,
            live: Some(self.live),
            expiry: self.expiry,
        };
        (info, self.out)
    }
}

/// Builds an SST from entries given in key order (tests, small runs).
pub fn build_run(
    id: String,
    entries: &[(Vec<u8>, Version)],
    block_size: usize,
) -> (RunInfo, Vec<u8>) {
    let mut w = SstWriter::new(id, block_size);
    for (k, v) in entries {
        w.push(k, v);
    }
    w.finish()
}

pub fn decode_meta(bytes: &[u8]) -> Result<RunMeta, DecodeError> {
    let (version, body) = unseal(META_MAGIC, bytes)?;
    if version != VERSION && version != 1 {
        return Err(DecodeError(format!(
            "SST format {version} found; this build reads formats 1 and {VERSION} (upgrade it)"
        )));
    }
    let mut r = Reader::new(body);
    let n = r.count()?;
    let mut blocks = Vec::with_capacity(n);
    for _ in 0..n {
        blocks.push(BlockHandle {
            first_key: r.bytes()?.to_vec(),
            last_key: r.bytes()?.to_vec(),
            offset: r.u64()?,
            len: r.u64()?,
        });
    }
    let bloom = Bloom::read(&mut r)?;
    Ok(RunMeta { blocks, bloom })
}

pub fn decode_block(bytes: &[u8]) -> Result<Block, DecodeError> {
    let (version, body) = unseal(BLOCK_MAGIC, bytes)?;
    if version != VERSION && version != 1 {
        return Err(DecodeError(format!(
            "SST block format {version} found; this build reads formats 1 and {VERSION} (upgrade it)"
        )));
    }
    let mut r = Reader::new(body);
    let n = r.count()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = r.bytes()?.to_vec();
        let seq = r.u64()?;
        let ts_micros = r.u64()?;
        let origin: Arc<str> = match version {
            1 => Arc::from(""),
            _ => Arc::from(r.str()?),
        };
        let deleted = r.u8()? != 0;
        let item = Arc::new(r.item()?);
        out.push((
            key,
            Version {
                seq,
                ts_micros,
                origin,
                deleted,
                item,
            },
        ));
    }
    if !out.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(DecodeError("block keys out of order".into()));
    }
    Ok(out)
}

impl Version {
    /// This version's last-writer-wins stamp.
    pub fn stamp(&self) -> crate::segment::Stamp {
        crate::segment::Stamp {
            ts_micros: self.ts_micros,
            region: Arc::clone(&self.origin),
        }
    }
}

impl RunMeta {
    /// Index of the first block whose last key is >= `key`.
    pub fn block_at_or_after(&self, key: &[u8]) -> usize {
        self.blocks.partition_point(|b| b.last_key.as_slice() < key)
    }

    /// Index of the last block whose first key is <= `key`, if any.
    pub fn block_at_or_before(&self, key: &[u8]) -> Option<usize> {
        self.blocks
            .partition_point(|b| b.first_key.as_slice() <= key)
            .checked_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn entries(n: u32) -> Vec<(Vec<u8>, Version)> {
        (0..n)
            .map(|i| {
                let item = Item::from([("v".to_string(), Value::S(format!("value-{i}")))]);
                (
                    i.to_be_bytes().to_vec(),
                    Version {
                        seq: u64::from(i),
                        ts_micros: 1,
                        origin: Arc::from("r"),
                        deleted: i % 7 == 0,
                        item: Arc::new(item),
                    },
                )
            })
            .collect()
    }

    /// The buffer stops doubling at its limit: an SST cut just past the
    /// target holds about the target, not twice it.
    #[test]
    fn the_buffer_grows_to_its_limit_not_past_it() {
        let limit = 64 << 10;
        let mut w = SstWriter::new("t".into(), 1024).with_capacity_limit(limit);
        for (k, v) in entries(20_000) {
            w.push(&k, &v);
            if w.size() >= limit - 2048 {
                break;
            }
        }
        assert!(w.size() >= limit - 2048);
        assert!(w.out.capacity() <= limit, "{}", w.out.capacity());
        let (info, bytes) = w.finish();
        assert_eq!(bytes.len() as u64, info.size);
        assert!(bytes.capacity() <= limit + 4096, "{}", bytes.capacity());
    }

    #[test]
    fn builds_blocks_that_decode_back() {
        let es = entries(1000);
        let (info, bytes) = build_run("r".into(), &es, 1024);
        assert_eq!(info.entries, 1000);
        assert_eq!(info.size as usize, bytes.len());
        let meta = decode_meta(&bytes[info.meta_offset as usize..]).unwrap();
        assert!(meta.blocks.len() > 10);
        let mut all = Vec::new();
        for h in &meta.blocks {
            all.extend(
                decode_block(&bytes[h.offset as usize..(h.offset + h.len) as usize]).unwrap(),
            );
        }
        assert_eq!(all, es);
        let key = 500u32.to_be_bytes();
        let b = meta.block_at_or_after(&key);
        assert!(
            meta.blocks[b].first_key.as_slice() <= &key[..]
                && &key[..] <= meta.blocks[b].last_key.as_slice()
        );
        assert!(meta.bloom.may_contain(&key));
    }

    #[test]
    fn corrupt_blocks_are_rejected() {
        let (info, mut bytes) = build_run("r".into(), &entries(10), 1 << 20);
        bytes[3] ^= 1;
        let meta = decode_meta(&bytes[info.meta_offset as usize..]).unwrap();
        let h = &meta.blocks[0];
        assert!(decode_block(&bytes[h.offset as usize..(h.offset + h.len) as usize]).is_err());
    }
}

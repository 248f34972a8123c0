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

/// A run as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    pub size: u64,
    pub meta_offset: u64,
    pub entries: u64,
    /// Highest sequence number folded into this run.
    pub max_seq: u64,
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

/// Builds a run from entries given in key order, cutting blocks at `block_size`.
pub fn build_run(
    id: String,
    entries: &[(Vec<u8>, Version)],
    block_size: usize,
) -> (RunInfo, Vec<u8>) {
    let mut out = Vec::new();
    let mut handles = Vec::new();
    let mut block = Writer::default();
    let mut count = 0u64;
    let mut first: Option<&[u8]> = None;
    let mut max_seq = 0;
    let flush = |out: &mut Vec<u8>,
                 block: &mut Writer,
                 count: &mut u64,
                 first: &mut Option<&[u8]>,
                 last: &[u8],
                 handles: &mut Vec<BlockHandle>| {
        let mut body = Writer::default();
        body.u64(*count);
        body.buf.extend_from_slice(&block.buf);
        let framed = seal(BLOCK_MAGIC, VERSION, &body.buf);
        handles.push(BlockHandle {
            first_key: first.unwrap_or_default().to_vec(),
            last_key: last.to_vec(),
            offset: out.len() as u64,
            len: framed.len() as u64,
        });
        out.extend_from_slice(&framed);
        block.buf.clear();
        *count = 0;
        *first = None;
    };
    for (i, (key, v)) in entries.iter().enumerate() {
        max_seq = max_seq.max(v.seq);
        if first.is_none() {
            first = Some(key);
        }
        block.bytes(key);
        block.u64(v.seq);
        block.u64(v.ts_micros);
        block.str(&v.origin);
        block.u8(u8::from(v.deleted));
        block.item(&v.item);
        count += 1;
        let last_entry = i + 1 == entries.len();
        if block.buf.len() >= block_size || last_entry {
            flush(
                &mut out,
                &mut block,
                &mut count,
                &mut first,
                key,
                &mut handles,
            );
        }
    }
    let bloom = Bloom::build(entries.iter().map(|(k, _)| k.as_slice()));
    let mut meta = Writer::default();
    meta.u64(handles.len() as u64);
    for h in &handles {
        meta.bytes(&h.first_key);
        meta.bytes(&h.last_key);
        meta.u64(h.offset);
        meta.u64(h.len);
    }
    bloom.write(&mut meta);
    let meta_offset = out.len() as u64;
    out.extend_from_slice(&seal(META_MAGIC, VERSION, &meta.buf));
    let info = RunInfo {
        id,
        size: out.len() as u64,
        meta_offset,
        entries: entries.len() as u64,
        max_seq,
    };
    (info, out)
}

pub fn decode_meta(bytes: &[u8]) -> Result<RunMeta, DecodeError> {
    let (version, body) = unseal(META_MAGIC, bytes)?;
    if version != VERSION && version != 1 {
        return Err(DecodeError(format!("unsupported run version {version}")));
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
        return Err(DecodeError(format!("unsupported block version {version}")));
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

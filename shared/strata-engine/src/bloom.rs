//! A bloom filter over encoded keys: lets a point read skip runs that cannot
//! hold the key without fetching any of their blocks.

use crate::codec::{DecodeError, Reader, Writer};

const BITS_PER_KEY: usize = 10;
const PROBES: u32 = 7;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bloom {
    bits: Vec<u8>,
}

/// A key's hash, what the filter is built from.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

fn hashes(h: u64) -> (u32, u32) {
    (h as u32, (h >> 32) as u32 | 1)
}

impl Bloom {
    pub fn build<'a>(keys: impl ExactSizeIterator<Item = &'a [u8]>) -> Bloom {
        let hashes: Vec<u64> = keys.map(key_hash).collect();
        Bloom::from_hashes(&hashes)
    }

    /// The filter of the keys with these [`key_hash`]es (8 bytes a key
    /// while an SST is written, instead of the keys).
    pub fn from_hashes(key_hashes: &[u64]) -> Bloom {
        let nbits = (key_hashes.len() * BITS_PER_KEY).max(64);
        let mut bits = vec![0u8; nbits.div_ceil(8)];
        let nbits = bits.len() * 8;
        for &kh in key_hashes {
            let (mut h, delta) = hashes(kh);
            for _ in 0..PROBES {
                let bit = h as usize % nbits;
                bits[bit / 8] |= 1 << (bit % 8);
                h = h.wrapping_add(delta);
            }
        }
        Bloom { bits }
    }

    /// False means the key is certainly absent.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        let nbits = self.bits.len() * 8;
        if nbits == 0 {
            return true;
        }
        let (mut h, delta) = hashes(key_hash(key));
        for _ in 0..PROBES {
            let bit = h as usize % nbits;
            if self.bits[bit / 8] & (1 << (bit % 8)) == 0 {
                return false;
            }
            h = h.wrapping_add(delta);
        }
        true
    }

    pub fn write(&self, w: &mut Writer) {
        w.bytes(&self.bits);
    }

    pub fn read(r: &mut Reader) -> Result<Bloom, DecodeError> {
        Ok(Bloom {
            bits: r.bytes()?.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let keys: Vec<Vec<u8>> = (0..10_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let bloom = Bloom::build(keys.iter().map(|k| k.as_slice()));
        assert!(keys.iter().all(|k| bloom.may_contain(k)));
        let fp = (10_000..20_000u32)
            .filter(|i| bloom.may_contain(&i.to_be_bytes()))
            .count();
        assert!(fp < 300, "false positive rate too high: {fp}/10000");
    }
}

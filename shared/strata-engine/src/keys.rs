//! Order-preserving byte encoding of primary keys.
//!
//! Inside a partition, items are kept sorted by `encode_key(key)`, compared
//! as plain bytes. The encoding orders the partition key first, then the sort
//! key the way DynamoDB orders it: strings and binaries by bytes, numbers
//! numerically. Each component is self-delimiting, so the encoded partition
//! key is a prefix of every encoded key with that partition key.

use crate::value::{ItemKey, KeyValue};

/// The encoded partition key followed by the encoded sort key, if any.
pub fn encode_key(key: &ItemKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    encode_component(&key.hash, &mut out);
    if let Some(r) = &key.range {
        encode_component(r, &mut out);
    }
    out
}

/// Appends one self-delimiting, order-preserving key component.
pub fn encode_component(v: &KeyValue, out: &mut Vec<u8>) {
    match v {
        KeyValue::S(s) => escaped(s.as_bytes(), out),
        KeyValue::B(b) => escaped(b, out),
        KeyValue::N(n) => {
            let (negative, digits, exp) = n.parts();
            if digits.is_empty() {
                out.push(0x80);
                return;
            }
            // exp is within -129..=126, so exp + 1000 fits a u16 comfortably.
            let e = (exp + 1000) as u16;
            if negative {
                // Larger magnitude sorts first: invert exponent and digits,
                // and end with a terminator above every digit byte.
                out.push(0x40);
                out.extend_from_slice(&(u16::MAX - e).to_be_bytes());
                out.extend(digits.iter().map(|d| 11 - d));
                out.push(0xff);
            } else {
                out.push(0xc0);
                out.extend_from_slice(&e.to_be_bytes());
                out.extend(digits.iter().map(|d| d + 1));
                out.push(0x00);
            }
        }
    }
}

/// Bytes with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x01: a shorter
/// string that is a prefix of a longer one sorts first.
fn escaped(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0x00, 0x01]);
}

/// The partition a partition-key value lives in: a stable hash of its
/// encoding modulo the partition count. Stable forever: it decides where
/// stored data is.
pub fn partition_of(hash: &KeyValue, partitions: u32) -> u32 {
    let mut enc = Vec::with_capacity(16);
    encode_component(hash, &mut enc);
    (xxhash_rust::xxh3::xxh3_64(&enc) % u64::from(partitions.max(1))) as u32
}

/// The encoded prefix shared by every S or B key component that begins
/// with `v` (the escaped bytes without their terminator).
pub fn begins_with_prefix(v: &KeyValue) -> Vec<u8> {
    let mut out = Vec::new();
    encode_component(v, &mut out);
    if matches!(v, KeyValue::S(_) | KeyValue::B(_)) {
        out.truncate(out.len() - 2);
    }
    out
}

/// The smallest byte string greater than every string starting with `prefix`
/// (`None` when there is none).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::number::Number;

    fn n(s: &str) -> KeyValue {
        KeyValue::N(Number::parse(s).unwrap())
    }

    fn enc(v: &KeyValue) -> Vec<u8> {
        let mut out = Vec::new();
        encode_component(v, &mut out);
        out
    }

    #[test]
    fn numbers_sort_numerically() {
        let vals = [
            "-1e100", "-10", "-2", "-1.5", "-1", "-0.5", "-0.0001", "0", "1e-130", "0.5", "1",
            "1.5", "2", "10", "10.5", "1e125",
        ];
        for w in vals.windows(2) {
            assert!(enc(&n(w[0])) < enc(&n(w[1])), "{} < {}", w[0], w[1]);
        }
    }

    #[test]
    fn strings_sort_by_utf8_bytes_and_prefixes_first() {
        let vals = ["", "\0", "\0\0", "a", "a\0", "a\u{1}", "ab", "b", "é", "中"];
        for w in vals.windows(2) {
            let a = enc(&KeyValue::S(w[0].into()));
            let b = enc(&KeyValue::S(w[1].into()));
            assert!(a < b, "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn composite_keys_order_by_hash_then_range() {
        let k = |h: &str, r: &str| {
            encode_key(&ItemKey {
                hash: KeyValue::S(h.into()),
                range: Some(n(r)),
            })
        };
        assert!(k("a", "10") < k("a", "9e1"));
        assert!(k("a", "-5") < k("a", "2"));
        assert!(k("a", "999") < k("ab", "-999"));
        let prefix = enc(&KeyValue::S("a".into()));
        assert!(k("a", "1").starts_with(&prefix));
        assert!(!k("ab", "1").starts_with(&prefix));
    }

    #[test]
    fn partitioning_is_stable() {
        // These values are load-bearing: they decide where existing data lives.
        assert_eq!(
            partition_of(&KeyValue::S("user#1".into()), 8),
            partition_of(&KeyValue::S("user#1".into()), 8)
        );
        let spread: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| partition_of(&KeyValue::S(format!("k{i}")), 8))
            .collect();
        assert_eq!(spread.len(), 8);
    }
}

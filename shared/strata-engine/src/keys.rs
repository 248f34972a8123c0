//! Order-preserving byte encoding of primary keys.
//!
//! Inside a partition, items are kept sorted by `encode_key(key)`, compared
//! as plain bytes. The encoding orders the partition key first, then the sort
//! key the way DynamoDB orders it: strings and binaries by bytes, numbers
//! numerically. Each component is self-delimiting, so the encoded partition
//! key is a prefix of every encoded key with that partition key.

use crate::value::{ItemKey, KeyType, KeyValue};

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

/// The first partition a partition-key value lives in (before any split):
/// a stable hash of its encoding modulo the partition count. Stable
/// forever: it decides where stored data is (see `partition_map`).
pub fn partition_of(hash: &KeyValue, partitions: u32) -> u32 {
    (crate::partition_map::key_hash(hash) % u64::from(partitions.max(1))) as u32
}

/// The length of the encoded partition key at the start of an encoded key
/// of a table whose partition key has type `t`; None when it does not
/// parse.
pub fn hash_component_len(key: &[u8], t: KeyType) -> Option<usize> {
    let find_end = |from: usize, end: u8| {
        key.get(from..)?
            .iter()
            .position(|b| *b == end)
            .map(|p| from + p + 1)
    };
    match t {
        KeyType::S | KeyType::B => {
            let mut i = 0;
            while i + 1 < key.len() {
                if key[i] == 0 {
                    match key[i + 1] {
                        0xff => i += 2,
                        0x01 => return Some(i + 2),
                        _ => return None,
                    }
                } else {
                    i += 1;
                }
            }
            None
        }
        KeyType::N => match key.first()? {
            0x80 => Some(1),
            // Tag, two exponent bytes, digits, terminator.
            0x40 => find_end(3, 0xff),
            0xc0 => find_end(3, 0x00),
            _ => None,
        },
    }
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
    fn the_partition_key_is_found_at_the_start_of_every_encoded_key() {
        let hashes = [
            (KeyValue::S("a\0b".into()), KeyType::S),
            (KeyValue::S(String::new()), KeyType::S),
            (KeyValue::B(vec![0, 0xff, 1, 0]), KeyType::B),
            (n("0"), KeyType::N),
            (n("-12.5e-3"), KeyType::N),
            (n("98765432109876543210"), KeyType::N),
            (n("-1e125"), KeyType::N),
        ];
        for (h, t) in hashes {
            for range in [None, Some(KeyValue::S("\0\u{1}".into())), Some(n("-7"))] {
                let key = encode_key(&ItemKey {
                    hash: h.clone(),
                    range,
                });
                assert_eq!(hash_component_len(&key, t), Some(enc(&h).len()), "{h:?}");
            }
        }
        assert_eq!(hash_component_len(b"abc", KeyType::S), None);
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

//! Strata's binary encoding of values and items, and the checksummed framing
//! every stored object uses.
//!
//! Framing: `magic (4) | version (1) | body | crc32 (4, little-endian, of all
//! that precedes it)`. A reader checks the checksum before it decodes a byte
//! of the body, so a torn or corrupted object is rejected, never served.
//! Decoding is total: any byte string yields a value or a [`DecodeError`].

use std::collections::BTreeMap;

use crate::number::Number;
use crate::value::{Item, Value};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

fn err<T>(what: &str) -> Result<T, DecodeError> {
    Err(DecodeError(what.to_string()))
}

/// Deepest nesting a decoder accepts (DynamoDB allows 32 levels).
const MAX_DEPTH: usize = 64;

/// Wraps `body` in a frame with magic, version and checksum.
pub fn seal(magic: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(magic);
    out.push(version);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a frame and returns its version and body.
pub fn unseal<'a>(magic: &[u8; 4], bytes: &'a [u8]) -> Result<(u8, &'a [u8]), DecodeError> {
    if bytes.len() < 9 {
        return err("object too short to be a Strata object (truncated?)");
    }
    let (framed, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(framed) != stored {
        return err("checksum mismatch (torn or corrupted object)");
    }
    if &framed[..4] != magic {
        return err("wrong magic bytes (not the expected kind of object)");
    }
    Ok((framed[4], &framed[5..]))
}

/// Appends encodings to a byte buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn u64(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(b);
                return;
            }
            self.buf.push(b | 0x80);
        }
    }

    pub fn fixed_u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::S(s) => {
                self.u8(0);
                self.str(s);
            }
            Value::N(n) => {
                self.u8(1);
                self.str(&n.to_string());
            }
            Value::B(b) => {
                self.u8(2);
                self.bytes(b);
            }
            Value::Bool(b) => self.u8(if *b { 4 } else { 3 }),
            Value::Null => self.u8(5),
            Value::M(m) => {
                self.u8(6);
                self.map(m);
            }
            Value::L(l) => {
                self.u8(7);
                self.u64(l.len() as u64);
                l.iter().for_each(|v| self.value(v));
            }
            Value::SS(v) => {
                self.u8(8);
                self.u64(v.len() as u64);
                v.iter().for_each(|s| self.str(s));
            }
            Value::NS(v) => {
                self.u8(9);
                self.u64(v.len() as u64);
                v.iter().for_each(|n| self.str(&n.to_string()));
            }
            Value::BS(v) => {
                self.u8(10);
                self.u64(v.len() as u64);
                v.iter().for_each(|b| self.bytes(b));
            }
        }
    }

    pub fn map(&mut self, m: &BTreeMap<String, Value>) {
        self.u64(m.len() as u64);
        for (k, v) in m {
            self.str(k);
            self.value(v);
        }
    }

    pub fn item(&mut self, item: &Item) {
        self.map(item);
    }
}

/// Reads encodings back, failing cleanly on anything malformed.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| DecodeError("unexpected end".into()))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint too long")
    }

    pub fn fixed_u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of elements that each take at least one byte: bounded by what
    /// is left, so a corrupt count cannot make us allocate wildly.
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n > self.remaining() as u64 {
            return err("element count larger than the data");
        }
        Ok(n as usize)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return err("length past the end of the data");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u64()?;
        if n > self.remaining() as u64 {
            return err("length past the end of the data");
        }
        self.take(n as usize)
    }

    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError("invalid UTF-8".into()))
    }

    fn number(&mut self) -> Result<Number, DecodeError> {
        Number::parse(self.str()?).map_err(|e| DecodeError(format!("bad number: {e}")))
    }

    pub fn value(&mut self) -> Result<Value, DecodeError> {
        self.value_at(0)
    }

    fn value_at(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return err("nesting too deep");
        }
        Ok(match self.u8()? {
            0 => Value::S(self.str()?.to_string()),
            1 => Value::N(self.number()?),
            2 => Value::B(self.bytes()?.to_vec()),
            3 => Value::Bool(false),
            4 => Value::Bool(true),
            5 => Value::Null,
            6 => Value::M(self.map_at(depth + 1)?),
            7 => {
                let n = self.count()?;
                let mut l = Vec::with_capacity(n);
                for _ in 0..n {
                    l.push(self.value_at(depth + 1)?);
                }
                Value::L(l)
            }
            8 => {
                let n = self.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.str()?.to_string());
                }
                Value::SS(v)
            }
            9 => {
                let n = self.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.number()?);
                }
                Value::NS(v)
            }
            10 => {
                let n = self.count()?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.bytes()?.to_vec());
                }
                Value::BS(v)
            }
            t => return Err(DecodeError(format!("unknown value tag {t}"))),
        })
    }

    fn map_at(&mut self, depth: usize) -> Result<BTreeMap<String, Value>, DecodeError> {
        let n = self.count()?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.str()?.to_string();
            let v = self.value_at(depth)?;
            m.insert(k, v);
        }
        Ok(m)
    }

    pub fn item(&mut self) -> Result<Item, DecodeError> {
        self.map_at(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Item {
        let mut m = BTreeMap::new();
        m.insert(
            "inner".to_string(),
            Value::L(vec![
                Value::Null,
                Value::Bool(true),
                Value::B(vec![0, 1, 2]),
            ]),
        );
        Item::from([
            ("s".to_string(), Value::S("héllo".into())),
            ("n".to_string(), Value::N(Number::parse("-12.5e3").unwrap())),
            ("m".to_string(), Value::M(m)),
            ("ss".to_string(), Value::SS(vec!["a".into(), "b".into()])),
            (
                "ns".to_string(),
                Value::NS(vec![Number::from_i64(1), Number::from_i64(2)]),
            ),
            ("bs".to_string(), Value::BS(vec![vec![9], vec![]])),
            ("f".to_string(), Value::Bool(false)),
        ])
    }

    #[test]
    fn items_round_trip() {
        let mut w = Writer::default();
        w.item(&sample());
        assert_eq!(Reader::new(&w.buf).item().unwrap(), sample());
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_detected() {
        let mut w = Writer::default();
        w.item(&sample());
        let sealed = seal(b"TEST", 1, &w.buf);
        assert!(unseal(b"TEST", &sealed).is_ok());
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(unseal(b"TEST", &bad).is_err(), "flip at {i}:{bit}");
            }
        }
        for len in 0..sealed.len() {
            assert!(
                unseal(b"TEST", &sealed[..len]).is_err(),
                "truncated to {len}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..20_000 {
            let len = rng.random_range(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = Reader::new(&bytes).item();
        }
    }
}

//! Encryption at rest for stores that have none of their own (the local
//! directory): every object is written encrypted with AES-256-GCM (`ring`)
//! under a deployment key, and read back decrypted, ranges included, so a
//! copied data directory reveals nothing.
//!
//! An object is a header and independently sealed chunks, so that a ranged
//! read (an SST block) decrypts only the chunks it covers:
//!
//! ```text
//! "STRATAE1" | key id (8 bytes) | object id (16, random) | then per 64 KiB
//!     of plaintext: nonce (12, random) | ciphertext | tag (16)
//! ```
//!
//! Each chunk's additional data is the key id, the object id, its index and
//! whether it is the last, so chunks cannot be reordered, dropped from the
//! end, moved between objects or between keys. The key id (the first 8 bytes of SHA-256 of the key) says
//! which key wrote an object: opening a store without that key fails on the
//! first read, with a clear error, rather than serving garbage. A store may
//! be opened with several keys ([`KeyRing`]): the first writes, all read,
//! which is how a key is rotated. The path is
//! not in the additional data, so a store-side copy (restores) stays
//! readable.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};

const MAGIC: &[u8; 8] = b"STRATAE1";
const HEADER: u64 = 32;
const CHUNK: u64 = 64 << 10;
const NONCE: u64 = 12;
const TAG: u64 = 16;
/// A whole chunk as stored.
const SEALED: u64 = NONCE + CHUNK + TAG;

/// A 256-bit key and its id.
#[derive(Clone)]
pub struct EncryptionKey {
    key: Arc<LessSafeKey>,
    id: [u8; 8],
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({})", self.id_hex())
    }
}

impl EncryptionKey {
    /// From 32 raw bytes, or 64 hex digits (surrounding whitespace ignored).
    pub fn from_bytes(raw: &[u8]) -> std::result::Result<EncryptionKey, String> {
        let text = std::str::from_utf8(raw).map(str::trim).unwrap_or("");
        let bytes: Vec<u8> = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect()
        } else if raw.len() == 32 {
            raw.to_vec()
        } else {
            return Err(
                "an encryption key is 32 bytes, or 64 hex digits (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "not an AES-256 key")?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest.as_ref()[..8]);
        Ok(EncryptionKey {
            key: Arc::new(LessSafeKey::new(unbound)),
            id,
        })
    }

    /// Reads a key file.
    pub fn load(path: &std::path::Path) -> std::result::Result<EncryptionKey, String> {
        let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_bytes(&raw).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The key's id, as the objects it wrote name it.
    pub fn id_hex(&self) -> String {
        self.id.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aad(&self, object: &[u8; 16], index: u64, last: bool) -> [u8; 33] {
        let mut a = [0u8; 33];
        a[..8].copy_from_slice(&self.id);
        a[8..24].copy_from_slice(object);
        a[24..32].copy_from_slice(&index.to_be_bytes());
        a[32] = u8::from(last);
        a
    }

    /// The stored form of `plain`.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let rng = SystemRandom::new();
        let chunks = plain.len().div_ceil(CHUNK as usize).max(1);
        let mut out = Vec::with_capacity(HEADER as usize + plain.len() + chunks * 28);
        let mut object = [0u8; 16];
        rng.fill(&mut object)
            .map_err(|_| generic("no randomness for an object id"))?;
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&object);
        for (i, chunk) in plain
            .chunks(CHUNK as usize)
            .chain(plain.is_empty().then_some(&[][..]))
            .enumerate()
        {
            let mut nonce = [0u8; 12];
            rng.fill(&mut nonce)
                .map_err(|_| generic("no randomness for a nonce"))?;
            let mut buf = chunk.to_vec();
            let tag = self
                .key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(self.aad(&object, i as u64, i + 1 == chunks)),
                    &mut buf,
                )
                .map_err(|_| generic("encryption failed"))?;
            out.extend_from_slice(&nonce);
            out.extend_from_slice(&buf);
            out.extend_from_slice(tag.as_ref());
        }
        Ok(out)
    }

    /// Opens sealed chunks starting at chunk `first`; `to_end`: the bytes
    /// run to the object's end (so the final chunk must be the last one).
    fn open_chunks(
        &self,
        path: &Path,
        object: &[u8; 16],
        first: u64,
        sealed: &[u8],
        to_end: bool,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(sealed.len());
        let pieces: Vec<&[u8]> = sealed.chunks(SEALED as usize).collect();
        for (n, piece) in pieces.iter().enumerate() {
            if piece.len() < (NONCE + TAG) as usize {
                return Err(corrupt(path, "a chunk is truncated"));
            }
            let index = first + n as u64;
            let final_piece = n + 1 == pieces.len();
            let mut nonce = [0u8; 12];
            nonce.copy_from_slice(&piece[..NONCE as usize]);
            let open = |last: bool| {
                let mut buf = piece[NONCE as usize..].to_vec();
                self.key
                    .open_in_place(
                        Nonce::assume_unique_for_key(nonce),
                        Aad::from(self.aad(object, index, last)),
                        &mut buf,
                    )
                    .map(|p| p.to_vec())
                    .ok()
            };
            // A chunk read to the object's end must be its last; one in the
            // middle of a range is not; the final chunk of a range that stops
            // short of the end may be either (a full last chunk).
            let plain = match (final_piece, to_end) {
                (true, true) => open(true),
                (false, _) => open(false),
                (true, false) => open(false).or_else(|| open(true)),
            };
            out.extend_from_slice(&plain.ok_or_else(|| corrupt(path, "a chunk does not decrypt"))?);
        }
        Ok(out)
    }
}

/// The keys a store is opened with: the first encrypts what is written,
/// every one reads what it wrote (each object names its key by id), so a
/// key is rotated by putting a new one first and keeping the old ones while
/// objects written with them remain.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<EncryptionKey>,
}

impl From<EncryptionKey> for KeyRing {
    fn from(key: EncryptionKey) -> Self {
        KeyRing { keys: vec![key] }
    }
}

impl KeyRing {
    /// A ring of `keys`, the first the current one.
    pub fn new(keys: Vec<EncryptionKey>) -> std::result::Result<KeyRing, String> {
        if keys.is_empty() {
            return Err("no encryption key".into());
        }
        Ok(KeyRing { keys })
    }

    /// A key file: 32 raw bytes, or one key of 64 hex digits per line (the
    /// first encrypts; the others only read; blank lines and lines starting
    /// with `#` are skipped).
    pub fn load(path: &std::path::Path) -> std::result::Result<KeyRing, String> {
        let raw = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&raw).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(raw: &[u8]) -> std::result::Result<KeyRing, String> {
        if raw.len() == 32 {
            // Raw bytes (which may happen to contain a newline).
            return EncryptionKey::from_bytes(raw).map(KeyRing::from);
        }
        let lines: Option<Vec<&str>> = std::str::from_utf8(raw).ok().map(|text| {
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect()
        });
        match lines {
            Some(lines) if !lines.is_empty() => KeyRing::new(
                lines
                    .iter()
                    .map(|l| EncryptionKey::from_bytes(l.as_bytes()))
                    .collect::<std::result::Result<_, _>>()?,
            ),
            _ => EncryptionKey::from_bytes(raw).map(KeyRing::from),
        }
    }

    /// The key new objects are written with.
    pub fn current(&self) -> &EncryptionKey {
        &self.keys[0]
    }

    /// Whether stored bytes are an encrypted object at all (any key's).
    pub fn is_sealed(stored: &[u8]) -> bool {
        stored.len() >= HEADER as usize && &stored[..8] == MAGIC
    }

    /// Whether a stored object (its header, at least) is the current key's.
    pub fn is_current(&self, stored: &[u8]) -> bool {
        stored.len() >= HEADER as usize
            && &stored[..8] == MAGIC
            && stored[8..16] == self.current().id
    }

    /// The key a stored object (its header, at least) was written with, and
    /// the object's id.
    fn of_object(&self, path: &Path, stored: &[u8]) -> Result<(&EncryptionKey, [u8; 16])> {
        if stored.len() < HEADER as usize || &stored[..8] != MAGIC {
            return Err(corrupt(
                path,
                "not an encrypted object (was the store written without --encryption-key?)",
            ));
        }
        let Some(key) = self.keys.iter().find(|k| stored[8..16] == k.id) else {
            let id: String = stored[8..16].iter().map(|b| format!("{b:02x}")).collect();
            let ours: Vec<String> = self.keys.iter().map(EncryptionKey::id_hex).collect();
            return Err(corrupt(
                path,
                &format!(
                    "written with key {id}, not with this key ({})",
                    ours.join(", ")
                ),
            ));
        };
        let mut object = [0u8; 16];
        object.copy_from_slice(&stored[16..32]);
        Ok((key, object))
    }

    /// The plaintext of a whole stored object.
    pub fn open(&self, path: &Path, stored: &[u8]) -> Result<Vec<u8>> {
        let (key, object) = self.of_object(path, stored)?;
        key.open_chunks(path, &object, 0, &stored[HEADER as usize..], true)
    }
}

/// The plaintext length of a stored object of `stored` bytes.
pub fn plain_len(stored: u64) -> u64 {
    let body = stored.saturating_sub(HEADER);
    let (whole, rest) = (body / SEALED, body % SEALED);
    whole * CHUNK + rest.saturating_sub(NONCE + TAG)
}

fn generic(msg: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "encrypted",
        source: msg.to_string().into(),
    }
}

fn corrupt(path: &Path, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "encrypted",
        source: format!("{path}: {what}").into(),
    }
}

/// A store whose objects are encrypted with its ring's current key and
/// read with whichever of its keys wrote them (see the module docs).
#[derive(Debug)]
pub struct EncryptedStore {
    inner: Arc<dyn ObjectStore>,
    keys: KeyRing,
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, keys: impl Into<KeyRing>) -> Self {
        Self {
            inner,
            keys: keys.into(),
        }
    }

    fn plain_meta(mut meta: ObjectMeta) -> ObjectMeta {
        meta.size = plain_len(meta.size);
        meta
    }

    /// Plaintext `range` of the object at `location`.
    async fn read_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let (first, last) = (range.start / CHUNK, (range.end - 1) / CHUNK);
        let stored = HEADER + first * SEALED..HEADER + (last + 1) * SEALED;
        let mut parts = self
            .inner
            .get_ranges(location, &[0..HEADER, stored.clone()])
            .await?
            .into_iter();
        let (header, sealed) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let (key, object) = self.keys.of_object(location, &header)?;
        let to_end = (sealed.len() as u64) < stored.end - stored.start;
        let plain = key.open_chunks(location, &object, first, &sealed, to_end)?;
        let from = (range.start - first * CHUNK) as usize;
        let until = ((range.end - first * CHUNK) as usize).min(plain.len());
        if from > until {
            return Err(object_store::Error::Generic {
                store: "encrypted",
                source: format!("{location}: range {range:?} is past the object's end").into(),
            });
        }
        Ok(Bytes::copy_from_slice(&plain[from..until]))
    }
}

impl fmt::Display for EncryptedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "encrypted({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for EncryptedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let mut plain = BytesMut::with_capacity(payload.content_length());
        for part in payload.iter() {
            plain.extend_from_slice(part);
        }
        let sealed = self.keys.current().seal(&plain)?;
        self.inner.put_opts(location, sealed.into(), opts).await
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotImplemented)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            // With the request's conditions (If-Match and the rest).
            let r = self.inner.get_opts(location, options).await?;
            let meta = Self::plain_meta(r.meta);
            return Ok(GetResult {
                range: 0..meta.size,
                payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
                meta,
                attributes: r.attributes,
            });
        }
        let range = options.range.clone();
        let whole = GetOptions {
            range: None,
            ..options
        };
        let result = self.inner.get_opts(location, whole).await?;
        let (meta, attributes) = (
            Self::plain_meta(result.meta.clone()),
            result.attributes.clone(),
        );
        let stored = result.bytes().await?;
        let plain = self.keys.open(location, &stored)?;
        let len = plain.len() as u64;
        let r = match range {
            None => 0..len,
            Some(r) => r.as_range(len).map_err(|e| generic(&e.to_string()))?,
        };
        let body = Bytes::copy_from_slice(&plain[r.start as usize..r.end as usize]);
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(body) }).boxed(),
            ),
            meta,
            range: r,
            attributes,
        })
    }

    async fn get_range(&self, location: &Path, range: Range<u64>) -> Result<Bytes> {
        self.read_range(location, range).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(self.read_range(location, r.clone()).await?);
        }
        Ok(out)
    }

    async fn head(&self, location: &Path) -> Result<ObjectMeta> {
        self.inner.head(location).await.map(Self::plain_meta)
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner
            .list(prefix)
            .map(|m| m.map(Self::plain_meta))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner
            .list_with_offset(prefix, offset)
            .map(|m| m.map(Self::plain_meta))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.inner.list_with_delimiter(prefix).await?;
        r.objects = r.objects.into_iter().map(Self::plain_meta).collect();
        Ok(r)
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    fn key(b: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[b; 32]).unwrap()
    }

    #[tokio::test]
    async fn objects_round_trip_whole_and_by_range_and_store_no_plaintext() {
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = EncryptedStore::new(Arc::clone(&raw), key(7));
        let plain: Vec<u8> = (0..(3 * CHUNK as usize + 100))
            .map(|i| (i % 251) as u8)
            .collect();
        for (name, data) in [
            ("a", plain.clone()),
            ("empty", vec![]),
            ("exact", plain[..2 * CHUNK as usize].to_vec()),
        ] {
            let p = Path::from(name);
            store.put(&p, data.clone().into()).await.unwrap();
            assert_eq!(
                store.get(&p).await.unwrap().bytes().await.unwrap(),
                data,
                "{name}"
            );
            assert_eq!(
                store.head(&p).await.unwrap().size,
                data.len() as u64,
                "{name}"
            );
            let len = data.len() as u64;
            for r in [
                0..1,
                5..CHUNK + 7,
                CHUNK - 1..CHUNK + 1,
                0..len,
                len.saturating_sub(3)..len,
                2 * CHUNK..len,
            ] {
                if r.start >= r.end || r.end > len {
                    continue;
                }
                let got = store.get_range(&p, r.clone()).await.unwrap();
                assert_eq!(
                    &got[..],
                    &data[r.start as usize..r.end as usize],
                    "{name} {r:?}"
                );
            }
        }
        let stored = raw
            .get(&Path::from("a"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let needle = &plain[1000..1032];
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "no plaintext at rest"
        );
        let listed: Vec<ObjectMeta> = store.list(None).map(|m| m.unwrap()).collect().await;
        assert!(listed
            .iter()
            .any(|m| m.location.as_ref() == "a" && m.size == plain.len() as u64));
    }

    #[tokio::test]
    async fn a_key_is_rotated_by_putting_a_new_one_first() {
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (old, new) = (Path::from("old"), Path::from("new"));
        EncryptedStore::new(Arc::clone(&raw), key(1))
            .put(&old, vec![1u8; 200_000].into())
            .await
            .unwrap();
        let hex = |b: u8| format!("{b:02x}").repeat(32);
        let ring =
            KeyRing::parse(format!("# rotated\n{}\n\n{}\n", hex(2), hex(1)).as_bytes()).unwrap();
        assert_eq!(ring.current().id_hex(), key(2).id_hex());
        let rotated = EncryptedStore::new(Arc::clone(&raw), ring);
        // What the old key wrote is read (ranges too); new objects take the new key.
        assert_eq!(
            rotated
                .get(&old)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .len(),
            200_000
        );
        assert_eq!(
            rotated
                .get_range(&old, 70_000..70_010)
                .await
                .unwrap()
                .as_ref(),
            &[1u8; 10]
        );
        rotated.put(&new, vec![2u8; 10].into()).await.unwrap();
        let stored = raw.get(&new).await.unwrap().bytes().await.unwrap();
        assert_eq!(&stored[8..16], &key(2).id[..]);
        // Once the old key is dropped, its objects are refused, by name.
        let only_new = EncryptedStore::new(Arc::clone(&raw), key(2));
        assert_eq!(
            only_new
                .get(&new)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .as_ref(),
            &[2u8; 10]
        );
        let e = only_new.get(&old).await.unwrap_err().to_string();
        assert!(e.contains(&key(1).id_hex()), "{e}");
        assert!(KeyRing::parse(b"# nothing\n\n").is_err());
        let one = KeyRing::parse(format!("# the key\n{}\n", hex(3)).as_bytes()).unwrap();
        assert_eq!(one.current().id_hex(), key(3).id_hex());
    }

    #[tokio::test]
    async fn another_key_or_a_tampered_byte_is_an_error_not_data() {
        let raw: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let p = Path::from("x");
        EncryptedStore::new(Arc::clone(&raw), key(1))
            .put(&p, vec![9u8; 1000].into())
            .await
            .unwrap();
        let other = EncryptedStore::new(Arc::clone(&raw), key(2));
        let e = other.get(&p).await.unwrap_err().to_string();
        assert!(e.contains("not with this key"), "{e}");
        let mut stored = raw.get(&p).await.unwrap().bytes().await.unwrap().to_vec();
        stored[40] ^= 1;
        raw.put(&p, stored.clone().into()).await.unwrap();
        let mine = EncryptedStore::new(Arc::clone(&raw), key(1));
        assert!(mine.get(&p).await.is_err());
        assert!(mine.get_range(&p, 0..10).await.is_err());
        // Truncated to a chunk boundary: the new last chunk was not sealed as last.
        // A chunk spliced in from another object of the same key: refused.
        let a = EncryptedStore::new(Arc::clone(&raw), key(1));
        a.put(&Path::from("s1"), vec![1u8; 100].into())
            .await
            .unwrap();
        a.put(&Path::from("s2"), vec![2u8; 100].into())
            .await
            .unwrap();
        let s1 = raw
            .get(&Path::from("s1"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let s2 = raw
            .get(&Path::from("s2"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let mut spliced = s1[..HEADER as usize].to_vec();
        spliced.extend_from_slice(&s2[HEADER as usize..]);
        raw.put(&Path::from("s1"), spliced.into()).await.unwrap();
        assert!(a.get(&Path::from("s1")).await.is_err());
        assert!(a.get_range(&Path::from("s1"), 0..10).await.is_err());
        let two = EncryptedStore::new(Arc::clone(&raw), key(1));
        two.put(&p, vec![1u8; 2 * CHUNK as usize + 5].into())
            .await
            .unwrap();
        let whole = raw.get(&p).await.unwrap().bytes().await.unwrap();
        raw.put(&p, whole.slice(..(HEADER + 2 * SEALED) as usize).into())
            .await
            .unwrap();
        assert!(two.get(&p).await.is_err());
    }

    #[test]
    fn keys_come_as_32_bytes_or_64_hex_digits() {
        assert!(EncryptionKey::from_bytes(&[0u8; 32]).is_ok());
        assert!(EncryptionKey::from_bytes(format!("{}\n", "ab".repeat(32)).as_bytes()).is_ok());
        assert!(EncryptionKey::from_bytes(b"short").is_err());
        assert_eq!(plain_len(HEADER + SEALED + NONCE + TAG + 5), CHUNK + 5);
    }
}

//! Compressed bodies, as DynamoDB takes and gives them.
//!
//! - A request body with `Content-Encoding: gzip` (several members too) or
//!   `deflate` (zlib) is decoded before anything reads it. One that does not
//!   decode (corrupt, truncated, empty) or names another encoding is refused
//!   as DynamoDB refuses it: HTTP 500, InternalServerError. A body that
//!   decodes past `MAX_BODY_BYTES` is refused at that size, never expanded
//!   further (a zip bomb costs its sender, not us).
//! - A response of 4 KB or more is compressed when the request's first
//!   `Accept-Encoding` header asks: the first of `gzip`, `deflate` or `*`
//!   (gzip) listed with a non-zero q-value wins; `identity`, `br` and the
//!   rest leave it plain. Its `x-amz-crc32` is of the compressed bytes, as
//!   DynamoDB's is and as botocore checks it.

use std::borrow::Cow;
use std::io::{Read, Write};

use flate2::read::{MultiGzDecoder, ZlibDecoder};
use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

use crate::error::{ApiError, ErrorCode};

/// Responses this large or larger are compressed when the client asks
/// (DynamoDB's threshold).
pub const COMPRESS_FROM_BYTES: usize = 4096;

/// A body encoding Strata reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
}

impl Coding {
    pub fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
        }
    }
}

/// The request body as sent, once its `Content-Encoding` is undone.
pub fn decode_body<'a>(
    content_encoding: Option<&str>,
    body: &'a [u8],
    max: usize,
) -> Result<Cow<'a, [u8]>, ApiError> {
    let coding = match content_encoding.map(str::trim) {
        None | Some("") => return Ok(Cow::Borrowed(body)),
        Some(c) if c.eq_ignore_ascii_case("identity") => return Ok(Cow::Borrowed(body)),
        Some(c) if c.eq_ignore_ascii_case("gzip") => Coding::Gzip,
        Some(c) if c.eq_ignore_ascii_case("deflate") => Coding::Deflate,
        Some(other) => {
            return Err(ApiError::internal(format!(
                "Unsupported Content-Encoding: {}",
                other.chars().take(64).collect::<String>()
            )))
        }
    };
    if body.is_empty() {
        return Err(undecodable(coding, "the body is empty"));
    }
    // One byte past the limit tells a body that is too large from one
    // that just fits, without expanding the rest.
    let limit = max as u64 + 1;
    let mut out = Vec::new();
    let read = match coding {
        Coding::Gzip => MultiGzDecoder::new(body).take(limit).read_to_end(&mut out),
        Coding::Deflate => ZlibDecoder::new(body).take(limit).read_to_end(&mut out),
    };
    if let Err(e) = read {
        return Err(undecodable(coding, &e.to_string()));
    }
    if out.len() > max {
        return Err(too_large(max));
    }
    Ok(Cow::Owned(out))
}

fn undecodable(coding: Coding, why: &str) -> ApiError {
    ApiError::internal(format!(
        "The request body is not valid {} content: {why}",
        coding.name()
    ))
}

/// A body larger than DynamoDB takes (before or after decoding).
pub fn too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::RequestEntityTooLarge,
        format!("Request body is larger than {max} bytes"),
    )
}

/// The coding a response should be sent in, from the request's first
/// `Accept-Encoding` header: the first supported coding listed with a
/// q-value above zero, `*` standing for gzip.
pub fn negotiate(accept_encoding: Option<&str>) -> Option<Coding> {
    for entry in accept_encoding?.split(',') {
        let mut parts = entry.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            let q = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="));
            q.is_some_and(|q| q.trim().parse::<f32>().map_or(true, |q| q <= 0.0))
        });
        if refused {
            continue;
        }
        if name.eq_ignore_ascii_case("gzip") || name == "*" {
            return Some(Coding::Gzip);
        }
        if name.eq_ignore_ascii_case("deflate") {
            return Some(Coding::Deflate);
        }
    }
    None
}

/// `body` compressed in `coding`, when it is large enough to be worth it
/// (fast compression: a response's latency matters more than its bytes).
pub fn encode_body(coding: Option<Coding>, body: Vec<u8>) -> (Vec<u8>, Option<Coding>) {
    let Some(coding) = coding.filter(|_| body.len() >= COMPRESS_FROM_BYTES) else {
        return (body, None);
    };
    let out = Vec::with_capacity(body.len() / 4);
    let done = match coding {
        Coding::Gzip => {
            let mut e = GzEncoder::new(out, Compression::fast());
            e.write_all(&body).and_then(|_| e.finish())
        }
        Coding::Deflate => {
            let mut e = ZlibEncoder::new(out, Compression::fast());
            e.write_all(&body).and_then(|_| e.finish())
        }
    };
    match done {
        Ok(compressed) => (compressed, Some(coding)),
        // Writing into a Vec does not fail; if it did, send it plain.
        Err(_) => (body, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decodes_gzip_members_and_deflate() {
        let mut two = gzip(b"{\"TableName\":");
        two.extend(gzip(b"\"t\"}"));
        let decoded = |enc: Option<&str>, b: &[u8]| decode_body(enc, b, 1 << 20).unwrap().to_vec();
        assert_eq!(decoded(Some("gzip"), &two), b"{\"TableName\":\"t\"}");
        assert_eq!(decoded(Some("Deflate"), &zlib(b"{}")), b"{}");
        assert_eq!(decoded(None, b"{}"), b"{}");
        assert_eq!(decoded(Some("identity"), b"{}"), b"{}");
    }

    #[test]
    fn refuses_what_does_not_decode() {
        let full = gzip(b"{\"TableName\":\"t\"}");
        for (enc, body) in [
            ("gzip", &b"{}"[..]),
            ("gzip", &b""[..]),
            ("gzip", &full[..full.len() - 4]),
            ("deflate", &full[..]),
            ("br", &b"{}"[..]),
        ] {
            let e = decode_body(Some(enc), body, 1 << 20).unwrap_err();
            assert_eq!(
                (e.code, e.status()),
                (ErrorCode::InternalServerError, 500),
                "{enc}"
            );
        }
    }

    /// A small body that would expand to 64 MB is refused at the limit.
    #[test]
    fn a_zip_bomb_is_refused_not_expanded() {
        let bomb = gzip(&vec![b' '; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        let e = decode_body(Some("gzip"), &bomb, 16 << 20).unwrap_err();
        assert_eq!(
            (e.code, e.status()),
            (ErrorCode::RequestEntityTooLarge, 413)
        );
        assert!(decode_body(Some("gzip"), &gzip(&[b' '; 1000]), 1000).is_ok());
    }

    #[test]
    fn negotiates_as_dynamodb_does() {
        for (header, want) in [
            (None, None),
            (Some(""), None),
            (Some("identity"), None),
            (Some("br, zstd"), None),
            (Some("x-gzip"), None),
            (Some("gzip"), Some(Coding::Gzip)),
            (Some("gzip, deflate"), Some(Coding::Gzip)),
            (Some("br, identity, deflate, gzip"), Some(Coding::Deflate)),
            (Some("*"), Some(Coding::Gzip)),
            (Some("gzip;q=0, deflate"), Some(Coding::Deflate)),
            (Some("gzip;q=0"), None),
            (Some("gzip; q=0.5"), Some(Coding::Gzip)),
        ] {
            assert_eq!(negotiate(header), want, "{header:?}");
        }
    }

    #[test]
    fn compresses_only_from_the_threshold() {
        let small = vec![b'a'; COMPRESS_FROM_BYTES - 1];
        assert_eq!(
            encode_body(Some(Coding::Gzip), small.clone()),
            (small, None)
        );
        let big = vec![b'a'; COMPRESS_FROM_BYTES];
        let (gz, c) = encode_body(Some(Coding::Gzip), big.clone());
        assert_eq!(c, Some(Coding::Gzip));
        assert_eq!(
            decode_body(Some("gzip"), &gz, 1 << 20).unwrap().as_ref(),
            &big[..]
        );
        let (z, c) = encode_body(Some(Coding::Deflate), big.clone());
        assert_eq!(c, Some(Coding::Deflate));
        assert_eq!(
            decode_body(Some("deflate"), &z, 1 << 20).unwrap().as_ref(),
            &big[..]
        );
        assert_eq!(encode_body(None, big.clone()), (big, None));
    }
}

//! SigV4 verification: the canonical request is rebuilt from what arrived,
//! exactly as the client built it from what it sent; the signing half (key
//! derivation and HMAC) is the `aws-sigv4` crate's; signatures are compared
//! in constant time. Both the Authorization header and presigned query
//! strings (`X-Amz-Signature=…`) are verified.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, ErrorCode};

/// How far a request's date may be from the server's clock, as AWS allows.
pub const SKEW: Duration = Duration::from_secs(15 * 60);
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service a DynamoDB (and DynamoDB Streams) request is signed for.
pub const SERVICE: &str = "dynamodb";

/// What a request says about its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub access_key: String,
    /// `YYYYMMDD/region/service/aws4_request`
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date`: `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    /// Presigned: seconds the signature is valid for (`X-Amz-Expires`).
    pub expires: Option<u64>,
}

/// The parts of an HTTP request that a signature covers.
pub struct Signed<'a> {
    pub method: &'a str,
    /// The path as it arrived (percent-encoded).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// Every header (lower-case names; repeated names in arrival order).
    pub headers: Vec<(&'a str, std::borrow::Cow<'a, str>)>,
    /// The body as sent (before any Content-Encoding is undone).
    pub body: &'a [u8],
}

impl<'a> Signed<'a> {
    /// The signed parts of an HTTP request, as it arrived.
    pub fn of(
        method: &'a axum::http::Method,
        uri: &'a axum::http::Uri,
        headers: &'a axum::http::HeaderMap,
        body: &'a [u8],
    ) -> Self {
        Signed {
            method: method.as_str(),
            path: uri.path(),
            query: uri.query(),
            // Header names are lower-case in a HeaderMap; values are
            // borrowed unless they are not UTF-8.
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_str(), String::from_utf8_lossy(v.as_bytes())))
                .collect(),
            body,
        }
    }
}

fn incomplete(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::IncompleteSignature, m)
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignature, m)
}

/// The signature a request claims, from its Authorization header or its
/// query string; `MissingAuthenticationToken` when it has neither.
pub fn claimed(req: &Signed<'_>) -> Result<Claimed, ApiError> {
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    };
    let query = query_pairs(req.query.unwrap_or_default());
    let q = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if let Some(auth) = header("authorization") {
        let Some(rest) = auth.strip_prefix(ALGORITHM) else {
            return Err(incomplete(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Only {ALGORITHM} is supported."
            )));
        };
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v);
            }
        }
        let missing: Vec<&str> = [
            ("Credential", credential.is_none()),
            ("Signature", signature.is_none()),
            ("SignedHeaders", signed.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            let list: Vec<String> = missing
                .iter()
                .map(|n| format!("Authorization header requires '{n}' parameter."))
                .collect();
            return Err(incomplete(format!(
                "{} Authorization={}",
                list.join(" "),
                crate::error::bounded(auth)
            )));
        }
        let amz_date = header("x-amz-date").ok_or_else(|| {
            incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        })?;
        return build(
            credential.unwrap_or_default(),
            signed.unwrap_or_default(),
            signature.unwrap_or_default(),
            amz_date,
            None,
        );
    }
    if let Some(sig) = q("X-Amz-Signature") {
        if q("X-Amz-Algorithm") != Some(ALGORITHM) {
            return Err(incomplete(format!("X-Amz-Algorithm must be {ALGORITHM}.")));
        }
        let (Some(credential), Some(signed), Some(date)) = (
            q("X-Amz-Credential"),
            q("X-Amz-SignedHeaders"),
            q("X-Amz-Date"),
        ) else {
            return Err(incomplete(
                "A presigned request requires X-Amz-Credential, X-Amz-SignedHeaders and X-Amz-Date.",
            ));
        };
        let expires = q("X-Amz-Expires")
            .map(|e| e.parse::<u64>())
            .transpose()
            .map_err(|_| incomplete("X-Amz-Expires must be a number of seconds."))?;
        return build(credential, signed, sig, date, Some(expires.unwrap_or(900)));
    }
    Err(ApiError::new(
        ErrorCode::MissingAuthenticationToken,
        "Request is missing Authentication Token",
    ))
}

fn build(
    credential: &str,
    signed: &str,
    signature: &str,
    amz_date: &str,
    expires: Option<u64>,
) -> Result<Claimed, ApiError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [key, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region, not a malformed credential scope: {}",
            crate::error::bounded(credential)
        )));
    };
    if terminator != "aws4_request" {
        return Err(incomplete(
            "Credential should be scoped with a valid terminator: 'aws4_request'.",
        ));
    }
    Ok(Claimed {
        access_key: key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_string).collect(),
        signature: signature.to_string(),
        amz_date: amz_date.to_string(),
        expires,
    })
}

/// The SigV4 signing key of `secret` for a day, region and service (the
/// `aws-sigv4` crate's derivation: four HMACs).
pub fn signing_key(secret: &str, at: SystemTime, region: &str, service: &str) -> Vec<u8> {
    aws_sigv4::sign::v4::generate_signing_key(secret, at, region, service)
        .as_ref()
        .to_vec()
}

/// Checks `claimed` against the request, signed for this server's `region`
/// at `now` with the key `key` derives for the request's day (a user keeps
/// it for the day: see `User::signing_key`).
pub fn verify(
    req: &Signed<'_>,
    c: &Claimed,
    key: impl FnOnce(SystemTime) -> Vec<u8>,
    region: &str,
    now: SystemTime,
) -> Result<(), ApiError> {
    let at = parse_amz_date(&c.amz_date).ok_or_else(|| {
        incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            crate::error::bounded(&c.amz_date)
        ))
    })?;
    if c.date != c.amz_date[..8] {
        return Err(invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            crate::error::bounded(&c.date),
            &c.amz_date[..8],
            c.amz_date
        )));
    }
    if c.service != SERVICE {
        return Err(invalid(format!(
            "Credential should be scoped to correct service: '{SERVICE}'. "
        )));
    }
    if c.region != region {
        return Err(invalid(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            crate::error::bounded(&c.region)
        )));
    }
    let stamp = |t: SystemTime| format_amz_date(t);
    match c.expires {
        None => {
            if at + SKEW < now {
                return Err(invalid(format!(
                    "Signature expired: {} is now earlier than {} ({} - 15 min.)",
                    c.amz_date,
                    stamp(now - SKEW),
                    stamp(now)
                )));
            }
            if at > now + SKEW {
                return Err(invalid(format!(
                    "Signature not yet current: {} is still later than {} ({} + 15 min.)",
                    c.amz_date,
                    stamp(now + SKEW),
                    stamp(now)
                )));
            }
        }
        Some(secs) => {
            if secs > 7 * 86_400 {
                return Err(invalid(
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                ));
            }
            if at + Duration::from_secs(secs) < now || at > now + SKEW {
                return Err(invalid("Signature expired or not yet current: the presigned request is used outside its validity."));
            }
        }
    }
    if !c.signed_headers.iter().any(|h| h == "host") {
        return Err(invalid(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    let canonical = canonical_request(req, c)?;
    let scope = format!("{}/{}/{}/aws4_request", c.date, c.region, c.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        c.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let expected = aws_sigv4::sign::v4::calculate_signature(key(at), string_to_sign.as_bytes());
    if expected.as_bytes().ct_eq(c.signature.as_bytes()).into() {
        Ok(())
    } else {
        Err(invalid(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ))
    }
}

/// The canonical request of SigV4: method, canonical URI, canonical query,
/// canonical headers, signed headers, payload hash.
fn canonical_request(req: &Signed<'_>, c: &Claimed) -> Result<String, ApiError> {
    use std::fmt::Write;
    let mut headers = String::with_capacity(256);
    for name in &c.signed_headers {
        headers.push_str(name);
        headers.push(':');
        let mut values = req.headers.iter().filter(|(n, _)| n == name).peekable();
        if values.peek().is_none() {
            return Err(invalid(format!(
                "The request signature we calculated does not match the signature you provided: signed header '{}' is missing.",
                crate::error::bounded(name)
            )));
        }
        // Values joined by commas, each trimmed with inner runs of spaces
        // made one.
        for (i, (_, v)) in values.enumerate() {
            if i > 0 {
                headers.push(',');
            }
            for (j, word) in v.split_whitespace().enumerate() {
                if j > 0 {
                    headers.push(' ');
                }
                headers.push_str(word);
            }
        }
        headers.push('\n');
    }
    let mut query: Vec<(String, String)> = query_pairs(req.query.unwrap_or_default())
        .into_iter()
        .filter(|(k, _)| !(c.expires.is_some() && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    query.sort();
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The body is always hashed: a client's X-Amz-Content-Sha256 must agree
    // (an unsigned payload is not accepted), never stand in for the body.
    let payload = hex::encode(Sha256::digest(req.body));
    if let Some((_, claimed)) = req
        .headers
        .iter()
        .find(|(n, _)| *n == "x-amz-content-sha256")
    {
        if !claimed.eq_ignore_ascii_case(&payload) {
            return Err(invalid(
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            ));
        }
    }
    let mut out = String::with_capacity(headers.len() + 256);
    let _ = write!(
        out,
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        uri_encode(req.path, false),
        query.join("&"),
        headers,
        c.signed_headers.join(";"),
        payload
    );
    Ok(out)
}

/// The query string's pairs, percent-decoded.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// SigV4's URI encoding: unreserved characters as they are, every other
/// byte as `%XY`; `/` kept in paths. A path is encoded as it arrived (so
/// an escape in it is encoded again, as clients of services other than S3
/// do).
fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out
}

/// `YYYYMMDDTHHMMSSZ` as a time.
pub fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if civil_from_days(days) != (y, mo, d) {
        return None; // February 30th and the like
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + Duration::from_secs(s))
}

pub fn format_amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for s in [
            "19700101T000000Z",
            "20240229T235959Z",
            "20241231T120000Z",
            "21000301T000000Z",
        ] {
            assert_eq!(parse_amz_date(s).map(format_amz_date).as_deref(), Some(s));
        }
        for bad in [
            "2026-01-01T00:00:00Z",
            "20261301T000000Z",
            "20260229T000000Z",
            "20260230T000000Z",
            "2026010T1000000Z",
            "",
            "20260101T000000",
        ] {
            assert!(parse_amz_date(bad).is_none(), "{bad}");
        }
    }

    /// AWS's published example (the IAM ListUsers GET of the SigV4 docs):
    /// the canonical request hash and the signature.
    #[test]
    fn the_aws_documentation_example_verifies() {
        let req = Signed {
            method: "GET",
            path: "/",
            query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: vec![
                (
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8".into(),
                ),
                ("host", "iam.amazonaws.com".into()),
                ("x-amz-date", "20150830T123600Z".into()),
            ],
            body: b"",
        };
        let c = Claimed {
            access_key: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "iam".into(),
            signed_headers: vec!["content-type".into(), "host".into(), "x-amz-date".into()],
            signature: "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
            amz_date: "20150830T123600Z".into(),
            expires: None,
        };
        let canonical = canonical_request(&req, &c).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let key = aws_sigv4::sign::v4::generate_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            parse_amz_date("20150830T123600Z").unwrap(),
            "us-east-1",
            "iam",
        );
        let sts = format!(
            "{ALGORITHM}\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(
            aws_sigv4::sign::v4::calculate_signature(key, sts.as_bytes()),
            c.signature
        );
    }
}

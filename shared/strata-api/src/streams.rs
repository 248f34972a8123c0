//! The DynamoDB Streams API (`X-Amz-Target: DynamoDBStreams_20120810.<Op>`)
//! over the partition logs.
//!
//! A table's stream has one shard per partition the table has had. A live
//! partition's shard is open; a split closes it (its log ends at the seal,
//! which is its EndingSequenceNumber) and the two children's shards name it
//! as ParentShardId, as DynamoDB's do. A child's log goes on from the seq
//! after its parent's seal, so a reader that finishes a parent before its
//! children (as DynamoDB asks) sees every key's changes in commit order.
//! A record is one mutation of one committed log segment; its sequence
//! number is the segment's sequence number and the mutation's index in it,
//! so records appear in commit order, each exactly once, for as long as GC
//! retains the segment (the log retention, 24 h by default).
//!
//! Shard iterators carry their position and the time they were issued, in
//! the clear: `<stream arn>|<partition>|<seq>|<index>|<issued ms>|<incarnation>`.
//! Like DynamoDB's they expire 15 minutes after being issued.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use serde_json::{json, Map, Value as Json};
use strata_engine::segment::{LogSegment, Mutation};
use strata_engine::value::item_size;
use strata_engine::{Item, TableDescriptor};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::json::item_to_json;
use crate::req::{missing, Req};
use crate::tables::{arn as table_arn, iso_time};
use crate::{Api, Caller};

/// How long a shard iterator stays valid.
const ITERATOR_TTL_MS: u64 = 15 * 60 * 1000;
/// Most records one GetRecords returns (DynamoDB's limit).
const MAX_RECORDS: usize = 1000;
/// Segments read per step of a GetRecords, and at most per call: a call
/// over a stretch of log with few records returns early with an advanced
/// iterator (as DynamoDB may return no records with a next iterator).
const SEGMENTS_PER_READ: usize = 100;
const MAX_SEGMENTS_PER_CALL: usize = 1000;
/// Digits of the mutation index in a sequence number.
const INDEX_DIGITS: usize = 7;

pub async fn dispatch(api: &Api, op: &str, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    match op {
        "ListStreams" => list_streams(api, req, caller).await,
        "DescribeStream" => describe_stream(api, req).await,
        "GetShardIterator" => get_shard_iterator(api, req).await,
        "GetRecords" => get_records(api, req).await,
        _ => Err(ApiError::unknown_operation()),
    }
}

use strata_engine::clock::now_ms;

/// A table's stream: its view type, when it was enabled (its label), the
/// commit time its records start at, the old-image generation whose log
/// it is, and when it was disabled (a disabled stream stays readable for
/// 24 hours, as DynamoDB keeps it).
struct StreamInfo {
    view_type: String,
    created_ms: u64,
    start_ms: u64,
    gen: u64,
    disabled_ms: Option<u64>,
    /// A disabled stream's end in each partition it had (its last
    /// sequence number there).
    ends: Option<Map<String, Json>>,
}

impl StreamInfo {
    /// Where a disabled stream ends in `part`; None while it is open.
    fn end(&self, part: u32) -> Option<u64> {
        self.ends
            .as_ref()
            .and_then(|e| e.get(&part.to_string()))
            .and_then(Json::as_u64)
    }
}

/// How long a disabled stream stays listed and readable.
const DISABLED_STREAM_MS: u64 = 24 * 3600 * 1000;

/// The table's enabled stream.
fn stream_info(d: &TableDescriptor) -> Option<StreamInfo> {
    let spec = d.meta.get("StreamSpecification")?;
    if spec.get("StreamEnabled") != Some(&Json::Bool(true)) {
        return None;
    }
    let created_ms = d
        .meta
        .get("StreamCreatedMs")
        .and_then(Json::as_u64)
        .unwrap_or(d.created_at_ms);
    Some(StreamInfo {
        view_type: spec.get("StreamViewType")?.as_str()?.to_string(),
        created_ms,
        start_ms: d
            .meta
            .get("StreamStartMs")
            .and_then(Json::as_u64)
            .unwrap_or(created_ms),
        gen: d.images_gen(),
        disabled_ms: None,
        ends: None,
    })
}

/// The table's streams: the enabled one, and the one disabled in the last
/// 24 hours.
fn streams_of(d: &TableDescriptor) -> Vec<StreamInfo> {
    let mut out: Vec<StreamInfo> = stream_info(d).into_iter().collect();
    let disabled = d.meta.get("DisabledStream").and_then(|s| {
        let disabled_ms = s.get("DisabledMs")?.as_u64()?;
        let created_ms = s.get("StreamCreatedMs")?.as_u64()?;
        (now_ms().saturating_sub(disabled_ms) < DISABLED_STREAM_MS).then(|| StreamInfo {
            view_type: s
                .get("StreamViewType")
                .and_then(Json::as_str)
                .unwrap_or("KEYS_ONLY")
                .to_string(),
            created_ms,
            start_ms: s
                .get("StreamStartMs")
                .and_then(Json::as_u64)
                .unwrap_or(created_ms),
            gen: s.get("Gen").and_then(Json::as_u64).unwrap_or(0),
            disabled_ms: Some(disabled_ms),
            ends: s.get("Ends").and_then(Json::as_object).cloned(),
        })
    });
    out.extend(disabled.filter(|s| out.iter().all(|e| e.created_ms != s.created_ms)));
    out
}

fn stream_arn(region: &str, d: &TableDescriptor, s: &StreamInfo) -> String {
    format!(
        "{}/stream/{}",
        table_arn(region, &d.name),
        iso_time(s.created_ms)
    )
}

fn stream_not_found(arn: &str) -> ApiError {
    ApiError::not_found(format!(
        "Requested resource not found: Stream: {arn} not found"
    ))
}

/// The table an ARN names and the stream label, validated against the
/// table's current stream.
async fn resolve(api: &Api, arn: &str) -> ApiResult<(TableDescriptor, StreamInfo, String)> {
    let parsed = arn
        .split_once(":table/")
        .and_then(|(_, rest)| rest.split_once("/stream/"));
    let Some((table, label)) = parsed else {
        return Err(ApiError::validation(format!("Invalid StreamArn: {arn}")));
    };
    let region = arn.split(':').nth(3).unwrap_or_default().to_string();
    let d = match api.engine.describe_table(table).await {
        Ok(d) => d,
        Err(strata_engine::Error::TableNotFound(_)) => return Err(stream_not_found(arn)),
        Err(e) => return Err(e.into()),
    };
    match streams_of(&d)
        .into_iter()
        .find(|s| iso_time(s.created_ms) == label)
    {
        Some(s) => Ok((d, s, region)),
        None => Err(stream_not_found(arn)),
    }
}

fn shard_id(s: &StreamInfo, part: u32) -> String {
    format!("shardId-{:020}-{part:08x}", s.created_ms)
}

fn parse_shard(s: &StreamInfo, d: &TableDescriptor, id: &str) -> Option<u32> {
    let rest = id.strip_prefix("shardId-")?;
    let (created, part) = rest.split_once('-')?;
    let part = u32::from_str_radix(part, 16).ok()?;
    let exists = d.map().all().binary_search(&part).is_ok();
    (created.parse::<u64>().ok()? == s.created_ms && exists).then_some(part)
}

/// Digits of the partition in a sequence number: five (as before splits)
/// below 100,000, nine above (split partitions' numbers grow past it).
fn part_digits(part: u32) -> usize {
    if part < 100_000 {
        5
    } else {
        9
    }
}

/// A record's sequence number: partition, segment, index in the segment.
/// Unique within the stream; in commit order within a shard.
fn sequence_number(part: u32, seq: u64, index: usize) -> String {
    let width = part_digits(part);
    format!("{part:0width$}{seq:020}{index:0INDEX_DIGITS$}")
}

fn parse_sequence_number(s: &str) -> Option<(u32, u64, usize)> {
    let width = [5, 9]
        .into_iter()
        .find(|w| s.len() == w + 20 + INDEX_DIGITS)?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part: u32 = s[..width].parse().ok()?;
    (part_digits(part) == width).then_some(())?;
    Some((
        part,
        s[width..width + 20].parse().ok()?,
        s[width + 20..].parse().ok()?,
    ))
}

async fn list_streams(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let limit = limit(req, 100)?;
    let only = req.str("TableName")?;
    let start = req.str("ExclusiveStartStreamArn")?;
    if let Some(a) = start {
        check_stream_arn("exclusiveStartStreamArn", a)?;
    }
    let names = match only {
        Some(t) => vec![t.to_string()],
        None => api.engine.list_tables().await?,
    };
    let mut streams = Vec::new();
    for name in names {
        let d = match api.engine.describe_table(&name).await {
            Ok(d) => d,
            Err(strata_engine::Error::TableNotFound(_)) if only.is_some() => {
                return Err(ApiError::not_found(format!(
                    "Requested resource not found: Table: {name} not found"
                )))
            }
            Err(strata_engine::Error::TableNotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        for s in streams_of(&d) {
            streams.push(json!({
                "StreamArn": stream_arn(&caller.region, &d, &s),
                "TableName": d.name,
                "StreamLabel": iso_time(s.created_ms),
            }));
        }
    }
    // In ARN order, each page starting after the last one's last ARN.
    streams.sort_by(|a, b| a["StreamArn"].as_str().cmp(&b["StreamArn"].as_str()));
    if let Some(start) = start {
        streams.retain(|s| s["StreamArn"].as_str().is_some_and(|a| a > start));
    }
    let mut out = Map::new();
    if streams.len() > limit {
        streams.truncate(limit);
        out.insert(
            "LastEvaluatedStreamArn".into(),
            streams[limit - 1]["StreamArn"].clone(),
        );
    }
    out.insert("Streams".into(), Json::Array(streams));
    Ok(Json::Object(out))
}

/// A stream ARN member: DynamoDB's length bounds, then its shape.
fn check_stream_arn(member: &str, arn: &str) -> ApiResult<()> {
    let len = arn.chars().count();
    if len < 37 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{arn}' at '{member}' failed to satisfy constraint: Member must have length greater than or equal to 37"
        )));
    }
    if len > 1024 {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{arn}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to 1024"
        )));
    }
    let shaped = arn.starts_with("arn:")
        && arn
            .split_once(":table/")
            .is_some_and(|(_, rest)| rest.split_once("/stream/").is_some());
    if !shaped {
        return Err(ApiError::validation(format!("Invalid StreamArn: {arn}")));
    }
    Ok(())
}

fn limit(req: &Req<'_>, max: usize) -> ApiResult<usize> {
    match req.int("Limit")? {
        None => Ok(max),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value between 1 and {max}"
        ))),
    }
}

async fn describe_stream(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let arn = req.req_str("StreamArn")?;
    let limit = limit(req, 100)?;
    // ShardFilter CHILD_SHARDS: the shards a split made of the one named.
    let parent_filter = match req.obj("ShardFilter")? {
        None => None,
        Some(f) => {
            let kind = f.get("Type").and_then(Json::as_str).unwrap_or("null");
            if kind != "CHILD_SHARDS" {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{kind}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [CHILD_SHARDS]"
                )));
            }
            let id = f
                .get("ShardId")
                .and_then(Json::as_str)
                .ok_or_else(|| missing("ShardFilter.ShardId"))?;
            Some(id.to_string())
        }
    };
    let (d, s, _) = resolve(api, arn).await?;
    let map = d.map();
    let mut all: Vec<u32> = match &parent_filter {
        None => map.all().to_vec(),
        Some(id) => {
            let parent = parse_shard(&s, &d, id);
            map.all()
                .iter()
                .copied()
                .filter(|&p| {
                    parent.is_some()
                        && strata_engine::partition_map::parent(d.partitions, p) == parent
                })
                .collect()
        }
    };
    // A disabled stream's shards are the partitions it had.
    if let Some(ends) = &s.ends {
        all.retain(|p| ends.contains_key(&p.to_string()));
    }
    let start = match req.str("ExclusiveStartShardId")? {
        Some(id) => parse_shard(&s, &d, id)
            .and_then(|p| all.iter().position(|&q| q == p))
            .map_or(all.len(), |i| i + 1),
        None => 0,
    };
    let end = all.len().min(start.saturating_add(limit));
    let mut shards = Vec::new();
    for &part in &all[start..end] {
        let (first, _) = api.engine.log_bounds(&d.name, part).await?;
        let mut range = json!({ "StartingSequenceNumber": sequence_number(part, first, 0) });
        if let Some(split) = map.split_of(part) {
            range["EndingSequenceNumber"] = json!(sequence_number(part, split.seal_seq, 0));
        } else if let Some(end) = s.end(part) {
            // A disabled stream's shards are closed where it ended.
            range["EndingSequenceNumber"] = json!(sequence_number(part, end, 0));
        }
        let mut shard = json!({
            "ShardId": shard_id(&s, part),
            "SequenceNumberRange": range,
        });
        if let Some(parent) = strata_engine::partition_map::parent(d.partitions, part) {
            shard["ParentShardId"] = json!(shard_id(&s, parent));
        }
        shards.push(shard);
    }
    let mut desc = json!({
        "StreamArn": arn,
        "StreamLabel": iso_time(s.created_ms),
        "StreamStatus": if s.disabled_ms.is_some() { "DISABLED" } else { "ENABLED" },
        "StreamViewType": s.view_type,
        "CreationRequestDateTime": s.created_ms as f64 / 1000.0,
        "TableName": d.name,
        "KeySchema": crate::tables::key_schema_json(&d),
        "Shards": shards,
    });
    if end < all.len() {
        desc["LastEvaluatedShardId"] = json!(shard_id(&s, all[end - 1]));
    }
    Ok(json!({ "StreamDescription": desc }))
}

/// The stream a shard iterator names (what authorization checks GetRecords
/// against; GetRecords then refuses an iterator whose MAC does not verify);
/// `None` for a token that is not an iterator.
pub(crate) fn iterator_stream_arn(token: &str) -> Option<String> {
    let it = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
    let (plain, _) = it.rsplit_once('|')?;
    Position::fields(plain).map(|(p, _)| p.arn)
}

/// Where a reader is: the next record is mutation `index` of segment `seq`.
struct Position {
    arn: String,
    part: u32,
    seq: u64,
    index: usize,
    incarnation: String,
}

impl Position {
    /// An opaque token, as DynamoDB's are, and authenticated: base64 of the
    /// position, when it was issued, and an HMAC-SHA256 of both with the
    /// deployment's key (so no field can be edited: another shard, an issue
    /// time that never expires).
    fn iterator(&self, key: &[u8]) -> String {
        let plain = format!(
            "{}|{}|{}|{}|{}|{}",
            self.arn,
            self.part,
            self.seq,
            self.index,
            now_ms(),
            self.incarnation
        );
        let mac = aws_sigv4::sign::v4::calculate_signature(key, plain.as_bytes());
        URL_SAFE_NO_PAD.encode(format!("{plain}|{mac}"))
    }

    /// The position a token holds, and when it was issued, if its MAC
    /// verifies under `key`.
    fn parse(token: &str, key: &[u8]) -> Option<(Position, u64)> {
        use subtle::ConstantTimeEq;
        let it = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (plain, mac) = it.rsplit_once('|')?;
        let expected = aws_sigv4::sign::v4::calculate_signature(key, plain.as_bytes());
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        Self::fields(plain)
    }

    fn fields(plain: &str) -> Option<(Position, u64)> {
        let mut fields = plain.rsplitn(6, '|');
        let incarnation = fields.next()?.to_string();
        let issued = fields.next()?.parse().ok()?;
        let index = fields.next()?.parse().ok()?;
        let seq = fields.next()?.parse().ok()?;
        let part = fields.next()?.parse().ok()?;
        let arn = fields.next()?.to_string();
        Some((
            Position {
                arn,
                part,
                seq,
                index,
                incarnation,
            },
            issued,
        ))
    }
}

fn trimmed(arn: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TrimmedDataAccess,
        format!("The operation attempted to read past the oldest stream record in a shard: {arn}"),
    )
}

async fn get_shard_iterator(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let arn = req.req_str("StreamArn")?;
    let shard = req.req_str("ShardId")?;
    let kind = req.req_str("ShardIteratorType")?;
    let (d, s, _) = resolve(api, arn).await?;
    let part = parse_shard(&s, &d, shard).ok_or_else(|| {
        ApiError::not_found(format!(
            "Requested resource not found: Shard does not exist: {shard}"
        ))
    })?;
    let (first, tail) = api.engine.log_bounds(&d.name, part).await?;
    let at_number = || -> ApiResult<(u64, usize)> {
        let n = req.req_str("SequenceNumber")?;
        parse_sequence_number(n)
            .filter(|(p, seq, _)| *p == part && *seq <= tail + 1)
            .map(|(_, seq, i)| (seq, i))
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "Invalid SequenceNumber: {n} is not a sequence number of shard {shard}"
                ))
            })
    };
    let with_number = matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER");
    match (with_number, req.has("SequenceNumber")) {
        (false, true) if matches!(kind, "TRIM_HORIZON" | "LATEST") => {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: SequenceNumber should not be passed for this iterator type",
            ))
        }
        (true, false) => {
            return Err(ApiError::validation(
                "One or more parameter values were invalid: Invalid SequenceNumber",
            ))
        }
        _ => {}
    }
    let (seq, index) = match kind {
        "TRIM_HORIZON" => (first, 0),
        "LATEST" => (tail + 1, 0),
        "AT_SEQUENCE_NUMBER" => at_number()?,
        "AFTER_SEQUENCE_NUMBER" => {
            let (seq, i) = at_number()?;
            (seq, i + 1)
        }
        other => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
            )))
        }
    };
    if seq < first && seq <= tail {
        return Err(trimmed(arn));
    }
    let pos = Position {
        arn: arn.to_string(),
        part,
        seq,
        index,
        incarnation: d.incarnation.clone(),
    };
    Ok(json!({ "ShardIterator": pos.iterator(&api.iterator_key().await?) }))
}

async fn get_records(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let it = req.req_str("ShardIterator")?;
    let limit = limit(req, MAX_RECORDS)?;
    let key = api.iterator_key().await?;
    let (mut pos, issued) =
        Position::parse(it, &key).ok_or_else(|| ApiError::validation("Invalid ShardIterator"))?;
    if now_ms().saturating_sub(issued) > ITERATOR_TTL_MS || issued > now_ms() + ITERATOR_TTL_MS {
        return Err(ApiError::new(
            ErrorCode::ExpiredIterator,
            format!("Iterator expired. The iterator was created at time {} while right now it is {}. The iterator is valid for 15 minutes.", iso_time(issued), iso_time(now_ms())),
        ));
    }
    let (d, s, region) = resolve(api, &pos.arn).await?;
    if d.incarnation != pos.incarnation || parse_shard(&s, &d, &shard_id(&s, pos.part)).is_none() {
        return Err(stream_not_found(&pos.arn));
    }
    // A split ends the shard at its seal, disabling the stream at its
    // recorded end: past either there is nothing more.
    let mut closed = d
        .map()
        .split_of(pos.part)
        .is_some_and(|split| pos.seq > split.seal_seq)
        || s.end(pos.part).is_some_and(|end| pos.seq > end);
    let mut records = Vec::new();
    let mut scanned = 0;
    'read: while records.len() < limit && scanned < MAX_SEGMENTS_PER_CALL {
        let (desc, read) = api
            .engine
            .read_log(&d.name, pos.part, pos.seq, SEGMENTS_PER_READ)
            .await?;
        if desc.incarnation != pos.incarnation {
            return Err(stream_not_found(&pos.arn));
        }
        if read.trimmed {
            return Err(trimmed(&pos.arn));
        }
        let n = read.segments.len();
        scanned += n;
        for seg in &read.segments {
            closed |= seg.seal;
            for (i, m) in seg.mutations.iter().enumerate().skip(pos.index) {
                if records.len() == limit {
                    pos.index = i;
                    break 'read;
                }
                if let Some(r) = record(&d, &s, &region, pos.part, seg, i, m) {
                    records.push(r);
                }
            }
            pos.seq = seg.seq + 1;
            pos.index = 0;
        }
        if n < SEGMENTS_PER_READ {
            // A disabled stream ends where its log ends.
            closed |= s.disabled_ms.is_some();
            break;
        }
    }
    let mut out = json!({ "Records": records });
    if !closed {
        out["NextShardIterator"] = json!(pos.iterator(&key));
    }
    Ok(out)
}

/// The stream record of mutation `i` of `seg`, or None when the mutation
/// changed nothing a stream reports: committed before the stream started,
/// a delete of an absent item, or a write of an identical item.
fn record(
    d: &TableDescriptor,
    s: &StreamInfo,
    region: &str,
    part: u32,
    seg: &LogSegment,
    i: usize,
    m: &Mutation,
) -> Option<Json> {
    // The stream is the segments of the old-image generation that enabling
    // it started (each carries every old image); segments written before
    // generations existed fall back to the start time.
    let in_stream = match seg.images_gen {
        Some(g) => g == s.gen,
        None => seg.commit_ts_micros >= s.start_ms * 1000,
    };
    if !in_stream {
        return None;
    }
    let old: Option<&Arc<Item>> = m.old_image.as_ref();
    let name = match (m.deleted, old) {
        (true, None) => return None,
        (true, Some(_)) => "REMOVE",
        (false, None) => "INSERT",
        (false, Some(o)) if **o == *m.image => return None,
        (false, Some(_)) => "MODIFY",
    };
    let keys: Item = d.key_schema.key_item(&d.key_schema.key_of(&m.image).ok()?);
    let mut size = item_size(&keys);
    let mut body = json!({
        "ApproximateCreationDateTime": (seg.commit_ts_micros / 1_000_000) as f64,
        "Keys": item_to_json(&keys),
        "SequenceNumber": sequence_number(part, seg.seq, i),
        "StreamViewType": s.view_type,
    });
    let new_wanted = s.view_type.contains("NEW");
    let old_wanted = s.view_type.contains("OLD");
    if new_wanted && !m.deleted {
        size += item_size(&m.image);
        body["NewImage"] = item_to_json(&m.image);
    }
    if let (true, Some(o)) = (old_wanted, old) {
        size += item_size(o);
        body["OldImage"] = item_to_json(o);
    }
    body["SizeBytes"] = json!(size);
    let mut record = json!({
        "eventID": format!("{part:x}-{:x}-{i:x}", seg.seq),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": body,
    });
    // Time to live's deletes are the service's own, as DynamoDB marks them.
    if m.expired {
        record["userIdentity"] = json!({
            "Type": "Service",
            "PrincipalId": "dynamodb.amazonaws.com",
        });
    }
    Some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_round_trip_and_sort_in_commit_order() {
        let a = sequence_number(3, 41, 9);
        let b = sequence_number(3, 42, 0);
        assert!(a < b);
        assert_eq!(parse_sequence_number(&a), Some((3, 41, 9)));
        assert_eq!(parse_sequence_number("12x"), None);
        assert_eq!(parse_sequence_number(&"9".repeat(40)), None);
    }

    #[test]
    fn iterators_round_trip_and_reject_garbage() {
        let p = Position {
            arn: "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-01-01T00:00:00.000"
                .into(),
            part: 3,
            seq: 17,
            index: 2,
            incarnation: "abc".into(),
        };
        let key = b"deployment key";
        let token = p.iterator(key);
        let (q, issued) = Position::parse(&token, key).unwrap();
        assert_eq!(
            (q.arn, q.part, q.seq, q.index, q.incarnation),
            (p.arn, 3, 17, 2, "abc".into())
        );
        assert!(issued > 0);
        assert!(Position::parse("nonsense", key).is_none());
        assert!(Position::parse("a|b|c|d|e|f", key).is_none());
        // Another deployment's key, or any field edited: not an iterator.
        assert!(Position::parse(&token, b"another key").is_none());
        let plain = String::from_utf8(URL_SAFE_NO_PAD.decode(&token).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(plain.replace("|3|17|", "|4|17|"));
        assert!(Position::parse(&forged, key).is_none());
        assert_eq!(
            iterator_stream_arn(&forged).as_deref(),
            Some("arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2026-01-01T00:00:00.000")
        );
    }
}

//! Stream records past log retention: DynamoDB's TrimmedDataAccessException.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use strata_api::Api;
use strata_engine::{Engine, EngineConfig};

mod common;
use common::call;

#[tokio::test]
async fn records_gc_has_deleted_are_trimmed() {
    // No retention and no grace: GC deletes compacted segments at once.
    let config = EngineConfig {
        default_partitions: 1,
        auto_compact: false,
        log_retention: Duration::ZERO,
        gc_grace: Duration::ZERO,
        clock_skew: Duration::ZERO,
        ..EngineConfig::default()
    };
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let engine = Arc::new(Engine::with_store(store, "memory", config).await.unwrap());
    let api = Api::new(Arc::clone(&engine), "us-east-1");
    let (s, body) = call(
        &api,
        "CreateTable",
        json!({
            "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
        }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (_, d) = call(&api, "DescribeTable", json!({"TableName": "tbl"})).await;
    let arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_string();
    for i in 0..3 {
        let (s, body) = call(
            &api,
            "PutItem",
            json!({"TableName": "tbl", "Item": {"k": {"S": format!("{i}")}}}),
        )
        .await;
        assert_eq!(s, 200, "{body}");
    }
    let (_, desc) = call(&api, "DescribeStream", json!({"StreamArn": arn})).await;
    let shard = desc["StreamDescription"]["Shards"][0]["ShardId"]
        .as_str()
        .unwrap()
        .to_string();
    let first = desc["StreamDescription"]["Shards"][0]["SequenceNumberRange"]
        ["StartingSequenceNumber"]
        .clone();
    let (_, it) = call(
        &api,
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let old_iterator = it["ShardIterator"].clone();
    let (_, page) = call(&api, "GetRecords", json!({"ShardIterator": old_iterator})).await;
    assert_eq!(page["Records"].as_array().unwrap().len(), 3);

    engine.compact("tbl").await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let gc = engine.gc("tbl").await.unwrap();
    assert_eq!(gc.segments, 3);

    let (s, e) = call(&api, "GetRecords", json!({"ShardIterator": old_iterator})).await;
    assert_eq!(
        (s, e["__type"].as_str().unwrap()),
        (
            400,
            "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException"
        )
    );
    let (s, e) = call(&api, "GetShardIterator", json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": first})).await;
    assert_eq!(
        (s, e["__type"].as_str().unwrap()),
        (
            400,
            "com.amazonaws.dynamodb.v20120810#TrimmedDataAccessException"
        )
    );
    // The trim horizon moved past what GC deleted: reading from it works,
    // and sees later writes.
    let (_, it) = call(
        &api,
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    call(
        &api,
        "PutItem",
        json!({"TableName": "tbl", "Item": {"k": {"S": "late"}}}),
    )
    .await;
    let (s, page) = call(
        &api,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let records = page["Records"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["dynamodb"]["Keys"]["k"]["S"], "late");
}

/// Streams never drop a REMOVE or call a MODIFY an INSERT: a writer whose
/// cached descriptor predates the stream still writes old images into it,
/// because each segment inherits the old-image generation of the one before.
#[tokio::test]
async fn a_stale_writer_cannot_leave_old_images_out_of_a_stream() {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        default_partitions: 1,
        auto_compact: false,
        ..EngineConfig::default()
    };
    let fresh = Arc::new(
        Engine::with_store(Arc::clone(&store), "memory", config.clone())
            .await
            .unwrap(),
    );
    // An instance that re-reads descriptors only every minute.
    let stale_engine = EngineConfig {
        catalog_staleness: Duration::from_secs(60),
        ..config
    };
    let stale = Arc::new(
        Engine::with_store(store, "memory", stale_engine)
            .await
            .unwrap(),
    );
    let api = Api::new(Arc::clone(&fresh), "us-east-1");
    let stale_api = Api::new(Arc::clone(&stale), "us-east-1");
    let (s, body) = call(
        &api,
        "CreateTable",
        json!({
            "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
        }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    for k in ["a", "b"] {
        let item = json!({"TableName": "tbl", "Item": {"k": {"S": k}, "v": {"N": "1"}}});
        assert_eq!(call(&api, "PutItem", item).await.0, 200);
    }
    let (s, _) = call(
        &stale_api,
        "GetItem",
        json!({"TableName": "tbl", "Key": {"k": {"S": "a"}}}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = call(
        &api,
        "UpdateTable",
        json!({"TableName": "tbl", "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let item = json!({"TableName": "tbl", "Item": {"k": {"S": "c"}, "v": {"N": "1"}}});
    assert_eq!(call(&api, "PutItem", item).await.0, 200);
    // The stale instance still believes the table has no stream.
    let item = json!({"TableName": "tbl", "Item": {"k": {"S": "a"}, "v": {"N": "2"}}});
    assert_eq!(call(&stale_api, "PutItem", item).await.0, 200);
    let del = json!({"TableName": "tbl", "Key": {"k": {"S": "b"}}});
    assert_eq!(call(&stale_api, "DeleteItem", del).await.0, 200);

    let (_, d) = call(&api, "DescribeTable", json!({"TableName": "tbl"})).await;
    let arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_string();
    let (_, desc) = call(&api, "DescribeStream", json!({"StreamArn": arn})).await;
    let shard = desc["StreamDescription"]["Shards"][0]["ShardId"].clone();
    let (_, it) = call(
        &api,
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    let (s, page) = call(
        &api,
        "GetRecords",
        json!({"ShardIterator": it["ShardIterator"]}),
    )
    .await;
    assert_eq!(s, 200, "{page}");
    let got: Vec<(String, String, Json)> = page["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["eventName"].as_str().unwrap().to_string(),
                r["dynamodb"]["Keys"]["k"]["S"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r["dynamodb"]["OldImage"]["v"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("INSERT".into(), "c".into(), Json::Null),
            ("MODIFY".into(), "a".into(), json!({"N": "1"})),
            ("REMOVE".into(), "b".into(), json!({"N": "1"})),
        ],
        "{page}"
    );
}

/// Every record of one shard from its trim horizon: until the shard ends
/// (no NextShardIterator) or a read comes back empty. Returns the records
/// and whether the shard ended.
async fn read_shard(api: &Api, arn: &str, shard: &str) -> (Vec<Json>, bool) {
    let (s, it) = call(
        api,
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    assert_eq!(s, 200, "{it}");
    let mut it = it["ShardIterator"].clone();
    let mut out = Vec::new();
    loop {
        let (s, page) = call(api, "GetRecords", json!({"ShardIterator": it})).await;
        assert_eq!(s, 200, "{page}");
        let records = page["Records"].as_array().unwrap().clone();
        let empty = records.is_empty();
        out.extend(records);
        match page.get("NextShardIterator") {
            None => return (out, true),
            Some(next) if !empty => it = next.clone(),
            Some(_) => return (out, false),
        }
    }
}

/// A split closes the parent's shard at its seal (EndingSequenceNumber, and
/// GetRecords ends it without a next iterator) and opens two children that
/// name it as ParentShardId. Reading parents before children returns every
/// change once, in commit order per key, old images included across the
/// split.
#[tokio::test]
async fn a_split_closes_the_parent_shard_and_its_children_name_it() {
    let config = EngineConfig {
        default_partitions: 1,
        auto_compact: false,
        ..EngineConfig::default()
    };
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let engine = Arc::new(Engine::with_store(store, "memory", config).await.unwrap());
    let api = Api::new(Arc::clone(&engine), "us-east-1");
    let (s, body) = call(
        &api,
        "CreateTable",
        json!({
            "TableName": "tbl", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let put = |k: usize, v: usize| {
        let api = &api;
        async move {
            let (s, body) = call(
                api,
                "PutItem",
                json!({"TableName": "tbl", "Item": {"k": {"S": format!("k{k}")}, "v": {"N": v.to_string()}}}),
            )
            .await;
            assert_eq!(s, 200, "{body}");
        }
    };
    for k in 0..20 {
        put(k, 0).await;
    }
    engine.split_partition("tbl", 0).await.unwrap();
    for k in 0..30 {
        put(k, 1).await;
    }
    let (_, d) = call(&api, "DescribeTable", json!({"TableName": "tbl"})).await;
    let arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_string();

    // Listed a page at a time, parents first.
    let mut shards = Vec::new();
    let mut start = None;
    loop {
        let mut req = json!({"StreamArn": arn, "Limit": 1});
        if let Some(s) = &start {
            req["ExclusiveStartShardId"] = json!(s);
        }
        let (s, desc) = call(&api, "DescribeStream", req).await;
        assert_eq!(s, 200, "{desc}");
        let desc = &desc["StreamDescription"];
        shards.extend(desc["Shards"].as_array().unwrap().clone());
        match desc.get("LastEvaluatedShardId") {
            Some(id) => start = Some(id.as_str().unwrap().to_string()),
            None => break,
        }
    }
    assert_eq!(shards.len(), 3, "{shards:?}");
    let parent = shards[0]["ShardId"].as_str().unwrap().to_string();
    assert!(shards[0].get("ParentShardId").is_none());
    assert!(shards[0]["SequenceNumberRange"]
        .get("EndingSequenceNumber")
        .is_some());
    for child in &shards[1..] {
        assert_eq!(child["ParentShardId"], json!(parent), "{child}");
        assert!(child["SequenceNumberRange"]
            .get("EndingSequenceNumber")
            .is_none());
    }

    let (records, ended) = read_shard(&api, &arn, &parent).await;
    assert!(ended, "the parent's shard ends at the seal");
    assert_eq!(records.len(), 20);
    assert!(records.iter().all(|r| r["eventName"] == "INSERT"));
    let mut after = Vec::new();
    for child in &shards[1..] {
        let (records, ended) = read_shard(&api, &arn, child["ShardId"].as_str().unwrap()).await;
        assert!(!ended, "a live partition's shard stays open");
        after.extend(records);
    }
    assert_eq!(after.len(), 30);
    let modified: Vec<&Json> = after
        .iter()
        .filter(|r| r["eventName"] == "MODIFY")
        .collect();
    assert_eq!(
        modified.len(),
        20,
        "keys written before the split are MODIFYs"
    );
    for r in modified {
        assert_eq!(r["dynamodb"]["OldImage"]["v"]["N"], "0", "{r}");
        assert_eq!(r["dynamodb"]["NewImage"]["v"]["N"], "1", "{r}");
    }
    let mut keys: Vec<String> = after
        .iter()
        .map(|r| {
            r["dynamodb"]["Keys"]["k"]["S"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 30, "each change once");
}

/// Iterators are authenticated with the deployment's key (in the store):
/// one that key signed 16 minutes ago has expired; one edited by anybody
/// else is not an iterator; a second API over the same store (another
/// instance) takes the first one's iterators.
#[tokio::test]
async fn iterators_expire_and_cannot_be_forged() {
    use base64::Engine as _;
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let engine = Arc::new(
        Engine::with_store(Arc::clone(&store), "memory", EngineConfig::default())
            .await
            .unwrap(),
    );
    let api = Api::new(Arc::clone(&engine), "us-east-1");
    let (s, _) = call(
        &api,
        "CreateTable",
        json!({
            "TableName": "itr", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"},
        }),
    )
    .await;
    assert_eq!(s, 200);
    let (_, d) = call(&api, "DescribeTable", json!({"TableName": "itr"})).await;
    let arn = d["Table"]["LatestStreamArn"].as_str().unwrap().to_string();
    let (_, st) = call(&api, "DescribeStream", json!({"StreamArn": arn})).await;
    let shard = st["StreamDescription"]["Shards"][0]["ShardId"].clone();
    let (s, it) = call(
        &api,
        "GetShardIterator",
        json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
    )
    .await;
    assert_eq!(s, 200, "{it}");
    let token = it["ShardIterator"].as_str().unwrap().to_string();
    // Another instance over the same store reads with it.
    let other = Api::new(Arc::clone(&engine), "us-east-1");
    let (s, r) = call(&other, "GetRecords", json!({"ShardIterator": token})).await;
    assert_eq!(s, 200, "{r}");
    // Re-signed with the deployment key, 16 minutes older: expired.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let plain = String::from_utf8(b64.decode(&token).unwrap()).unwrap();
    let (fields, signed_mac) = plain.rsplit_once('|').unwrap();
    let mut parts: Vec<String> = fields.split('|').map(str::to_string).collect();
    let issued = parts.len() - 2;
    parts[issued] = (parts[issued].parse::<u64>().unwrap() - 16 * 60 * 1000).to_string();
    let older = parts.join("|");
    let key = store
        .get(&strata_engine::paths::stream_iterator_key())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mac = aws_sigv4::sign::v4::calculate_signature(&key, older.as_bytes());
    let expired = b64.encode(format!("{older}|{mac}"));
    let (s, r) = call(&api, "GetRecords", json!({"ShardIterator": expired})).await;
    assert_eq!(
        (s, r["__type"].as_str()),
        (
            400,
            Some("com.amazonaws.dynamodb.v20120810#ExpiredIteratorException")
        ),
        "{r}"
    );
    // The same edit without the key: not an iterator.
    let forged = b64.encode(format!("{older}|{signed_mac}"));
    let (s, r) = call(&api, "GetRecords", json!({"ShardIterator": forged})).await;
    assert_eq!(s, 400);
    assert_eq!(r["message"], "Invalid ShardIterator");
}

//! Transactions meeting the rest of the API: a write to an item a
//! transaction in flight holds (TransactionConflictException for PutItem;
//! UnprocessedItems, never an error, in a BatchWriteItem whose other writes
//! committed), ReturnItemCollectionMetrics of a table with a local index,
//! and the 4 MB limit in DynamoDB Local's words.

use std::sync::Arc;

use serde_json::{json, Value as Json};
use strata_api::Api;
use strata_engine::*;

mod common;
use common::call;

async fn api() -> (Api, Arc<Engine>) {
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let config = EngineConfig {
        default_partitions: 4,
        ..Default::default()
    };
    let engine = Arc::new(Engine::with_store(store, "memory", config).await.unwrap());
    (Api::new(Arc::clone(&engine), "us-east-1"), engine)
}

async fn ok(api: &Api, op: &str, body: Json) -> Json {
    let (s, b) = call(api, op, body).await;
    assert_eq!(s, 200, "{op}: {b}");
    b
}

fn pk(v: &str) -> Json {
    json!({ "pk": { "S": v } })
}

#[tokio::test]
async fn writes_meeting_a_transaction_in_flight() {
    let (api, engine) = api().await;
    ok(
        &api,
        "CreateTable",
        json!({
            "TableName": "acct", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        }),
    )
    .await;
    // A coordinator that stops after its prepare leaves "held" locked.
    let held = ItemKey {
        hash: KeyValue::S("held".into()),
        range: None,
    };
    let item = Item::from([("pk".to_string(), Value::S("held".into()))]);
    let stopped = engine
        .transact_write(
            vec![TxnWrite {
                table: "acct".into(),
                op: WriteOp::put(held, item),
                check: false,
            }],
            TxnOptions {
                stop: Some(TxnStop::AfterPrepares(1)),
                ..Default::default()
            },
        )
        .await;
    assert!(stopped.is_err());
    let (s, b) = call(
        &api,
        "PutItem",
        json!({ "TableName": "acct", "Item": pk("held") }),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        b["__type"],
        "com.amazonaws.dynamodb.v20120810#TransactionConflictException"
    );
    assert_eq!(b["message"], "Transaction is ongoing for the item");
    // The batch's other writes commit; the held one is listed unprocessed.
    let b = ok(
        &api,
        "BatchWriteItem",
        json!({ "RequestItems": { "acct": [
            { "PutRequest": { "Item": pk("free-1") } },
            { "PutRequest": { "Item": pk("held") } },
            { "PutRequest": { "Item": pk("free-2") } },
        ]}}),
    )
    .await;
    assert_eq!(
        b["UnprocessedItems"]["acct"],
        json!([{ "PutRequest": { "Item": pk("held") } }])
    );
    for k in ["free-1", "free-2"] {
        let got = ok(
            &api,
            "GetItem",
            json!({ "TableName": "acct", "Key": pk(k), "ConsistentRead": true }),
        )
        .await;
        assert_eq!(got["Item"], pk(k));
    }
    let got = ok(
        &api,
        "GetItem",
        json!({ "TableName": "acct", "Key": pk("held"), "ConsistentRead": true }),
    )
    .await;
    assert!(got.get("Item").is_none(), "{got}");
    // A transaction on it is cancelled with TransactionConflict.
    let (s, b) = call(
        &api,
        "TransactWriteItems",
        json!({ "TransactItems": [
            { "Put": { "TableName": "acct", "Item": pk("free-3") } },
            { "Delete": { "TableName": "acct", "Key": pk("held") } },
        ]}),
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert_eq!(
        b["CancellationReasons"],
        json!([{ "Code": "None" }, { "Code": "TransactionConflict", "Message": "Transaction is ongoing for the item" }])
    );
}

#[tokio::test]
async fn item_collection_metrics_and_the_4_mb_limit() {
    let (api, _) = api().await;
    ok(&api, "CreateTable", json!({
        "TableName": "coll", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"}, {"AttributeName": "x", "AttributeType": "S"}],
        "LocalSecondaryIndexes": [{"IndexName": "by_x", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "x", "KeyType": "RANGE"}]}],
    }))
    .await;
    let b = ok(
        &api,
        "TransactWriteItems",
        json!({
            "TransactItems": [{ "Put": { "TableName": "coll",
                "Item": { "pk": {"S": "p"}, "sk": {"S": "1"}, "x": {"S": "x"} } } }],
            "ReturnItemCollectionMetrics": "SIZE",
        }),
    )
    .await;
    assert_eq!(
        b["ItemCollectionMetrics"]["coll"],
        json!([{ "ItemCollectionKey": { "pk": {"S": "p"} }, "SizeEstimateRangeGB": [0.0, 1.0] }])
    );
    let big = "x".repeat(390_000);
    let items: Vec<Json> = (0..11)
        .map(|i| {
            json!({ "Put": { "TableName": "coll", "Item": {
            "pk": {"S": format!("b{i}")}, "sk": {"S": "1"}, "v": {"S": big} } } })
        })
        .collect();
    let (s, b) = call(
        &api,
        "TransactWriteItems",
        json!({ "TransactItems": items }),
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .starts_with("Transaction payload size cannot exceed 4MB. Payload Size: 42900"),
        "{b}"
    );
}

//! Restores as DynamoDB does them, checked while the restore job is held
//! (a job runner that never runs it, so the target stays CREATING):
//! TableInUseException for a backup of a table being restored,
//! BackupInUseException for deleting a backup being restored, and what a
//! restored table keeps from its source (from a backup or to a point in
//! time): keys and billing (indexes are built once the items are in), but
//! not tags, stream, time to live, point-in-time recovery or deletion
//! protection.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value as Json};
use strata_api::Api;
use strata_engine::{Engine, EngineConfig};

mod common;
use common::call;

async fn ok(api: &Api, op: &str, body: Json) -> Json {
    let (s, b) = call(api, op, body).await;
    assert_eq!(s, 200, "{op}: {b}");
    b
}

async fn error(api: &Api, op: &str, body: Json) -> String {
    let (s, b) = call(api, op, body).await;
    assert_eq!(s, 400, "{op}: {b}");
    b["__type"]
        .as_str()
        .unwrap()
        .rsplit('#')
        .next()
        .unwrap()
        .to_string()
}

/// An API over a memory store whose restore jobs are kept, not run.
async fn api() -> (Api, Arc<Mutex<Vec<Json>>>) {
    let config = EngineConfig {
        default_partitions: 2,
        ..EngineConfig::default()
    };
    let store: Arc<dyn object_store::ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let engine = Arc::new(Engine::with_store(store, "memory", config).await.unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let jobs = Arc::clone(&held);
    let runner: strata_api::JobRunner = Arc::new(move |job| {
        jobs.lock().unwrap().push(job);
        Box::pin(async { Ok(()) })
    });
    (Api::new(engine, "us-east-1").with_jobs(runner), held)
}

/// A source table with everything a restore drops, and one item.
async fn source(api: &Api) {
    ok(
        api,
        "CreateTable",
        json!({
            "TableName": "src", "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"},
                                     {"AttributeName": "g", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": [{"IndexName": "byG",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"}}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
            "Tags": [{"Key": "team", "Value": "a"}],
            "DeletionProtectionEnabled": true,
        }),
    )
    .await;
    ok(
        api,
        "UpdateTimeToLive",
        json!({"TableName": "src",
        "TimeToLiveSpecification": {"Enabled": true, "AttributeName": "exp"}}),
    )
    .await;
    ok(
        api,
        "UpdateContinuousBackups",
        json!({"TableName": "src",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": true}}),
    )
    .await;
    ok(
        api,
        "PutItem",
        json!({"TableName": "src", "Item": {"k": {"S": "a"}, "g": {"S": "x"}}}),
    )
    .await;
}

/// What a restored table says of the settings a restore keeps or drops.
async fn assert_restored_as_dynamodb(api: &Api, target: &str) {
    let t = &ok(api, "DescribeTable", json!({"TableName": target})).await["Table"];
    assert_eq!(t["TableStatus"], "CREATING");
    assert_eq!(t["KeySchema"][0]["AttributeName"], "k");
    assert_eq!(t["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST");
    assert!(t.get("StreamSpecification").is_none(), "{t}");
    assert!(t.get("LatestStreamArn").is_none(), "{t}");
    assert_eq!(t["DeletionProtectionEnabled"], false, "{t}");
    let arn = t["TableArn"].as_str().unwrap();
    let tags = ok(api, "ListTagsOfResource", json!({"ResourceArn": arn})).await;
    assert_eq!(tags["Tags"], json!([]), "{tags}");
    let ttl = ok(api, "DescribeTimeToLive", json!({"TableName": target})).await;
    assert_eq!(
        ttl["TimeToLiveDescription"]["TimeToLiveStatus"], "DISABLED",
        "{ttl}"
    );
    let pitr = ok(
        api,
        "DescribeContinuousBackups",
        json!({"TableName": target}),
    )
    .await;
    assert_eq!(
        pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
            ["PointInTimeRecoveryStatus"],
        "DISABLED",
        "{pitr}"
    );
}

#[tokio::test]
async fn a_backup_being_restored_and_its_target_are_in_use() {
    let (api, held) = api().await;
    source(&api).await;
    let backup = ok(
        &api,
        "CreateBackup",
        json!({"TableName": "src", "BackupName": "first"}),
    )
    .await;
    let arn = backup["BackupDetails"]["BackupArn"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &api,
        "RestoreTableFromBackup",
        json!({"TargetTableName": "dst", "BackupArn": arn}),
    )
    .await;
    assert_eq!(held.lock().unwrap().len(), 1);
    assert_restored_as_dynamodb(&api, "dst").await;
    assert_eq!(
        error(
            &api,
            "CreateBackup",
            json!({"TableName": "dst", "BackupName": "second"})
        )
        .await,
        "TableInUseException"
    );
    assert_eq!(
        error(&api, "DeleteBackup", json!({"BackupArn": arn})).await,
        "BackupInUseException"
    );
    // An encryption override this store cannot honour is refused, and
    // creates nothing.
    assert_eq!(
        error(
            &api,
            "RestoreTableFromBackup",
            json!({"TargetTableName": "dst2", "BackupArn": arn,
            "SSESpecificationOverride": {"Enabled": true, "SSEType": "KMS"}})
        )
        .await,
        "ValidationException"
    );
    assert_eq!(
        error(&api, "DescribeTable", json!({"TableName": "dst2"})).await,
        "ResourceNotFoundException"
    );
    // The source is not in use: it can be backed up again.
    ok(
        &api,
        "CreateBackup",
        json!({"TableName": "src", "BackupName": "third"}),
    )
    .await;
}

#[tokio::test]
async fn a_point_in_time_restore_keeps_what_dynamodb_keeps() {
    let (api, held) = api().await;
    source(&api).await;
    ok(
        &api,
        "RestoreTableToPointInTime",
        json!({"SourceTableName": "src",
        "TargetTableName": "dst", "UseLatestRestorableTime": true}),
    )
    .await;
    assert_eq!(held.lock().unwrap().len(), 1);
    assert_restored_as_dynamodb(&api, "dst").await;
}

//! What the API tests share: one call of an operation, as a client makes it.

use serde_json::Value as Json;
use strata_api::{Api, Caller};

/// Calls `op` (DynamoDB's, or DynamoDB Streams' by name) with `body`; its
/// status and JSON answer (`Null` for an empty one).
pub async fn call(api: &Api, op: &str, body: Json) -> (u16, Json) {
    let streams = [
        "ListStreams",
        "DescribeStream",
        "GetShardIterator",
        "GetRecords",
    ]
    .contains(&op);
    let target = if streams {
        format!("DynamoDBStreams_20120810.{op}")
    } else {
        format!("DynamoDB_20120810.{op}")
    };
    let caller = Caller {
        region: "us-east-1".into(),
        access_key: None,
        host: None,
        user: None,
    };
    let r = api
        .handle(Some(&target), &caller, body.to_string().as_bytes())
        .await;
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Json::Null),
    )
}

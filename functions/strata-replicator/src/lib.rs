//! What the replicator does for one event, apart from Lambda so it can be
//! tested directly.
//!
//! - An SQS batch of S3 event notifications (`ObjectCreated` on
//!   `…/tables/<table>/<incarnation>/p<part>/log/<seq>.seg`): replicate the
//!   partitions those new log segments belong to. One invocation handles
//!   every segment of the batch; a partition named several times is read
//!   once, from its cursor to its tail.
//! - Anything else (the schedule, the backstop for lost notifications):
//!   replicate every partition of every global table.
//!
//! Either way, the secondary indexes of the tables named are brought up to
//! date with those partitions (the index follower, `strata_engine::index`).
//!
//! Failures fail the invocation, so SQS delivers the batch again; applying
//! a version twice is a no-op under last-writer-wins, so redelivery and any
//! number of concurrent replicators are safe.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use strata_engine::replication::{ReplicationReport, Replicator};

/// The (table, partition) a log segment's object key names, if it is one.
pub fn log_partition(key: &str) -> Option<(String, u32)> {
    strata_engine::paths::parse_log_object(key)
}

/// The partitions with new log segments named by an SQS batch of S3
/// notifications; None when the event is not such a batch.
pub fn partitions_in(event: &Value) -> Option<BTreeMap<String, BTreeSet<u32>>> {
    let records = event.get("Records")?.as_array()?;
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for r in records {
        if r.get("eventSource").and_then(Value::as_str) != Some("aws:sqs") {
            return None;
        }
        let body = r.get("body").and_then(Value::as_str).unwrap_or("{}");
        let s3: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        // S3 sends a test event when the notification is set up: nothing to do.
        for n in s3
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = n["s3"]["object"]["key"].as_str().unwrap_or_default();
            if let Some((table, part)) = log_partition(key) {
                out.entry(table).or_default().insert(part);
            }
        }
    }
    Some(out)
}

pub async fn handle(replicator: &Replicator, event: &Value) -> Result<Value, strata_engine::Error> {
    let mut total = ReplicationReport::default();
    let mut indexed = strata_engine::IndexReport::default();
    let mut tables = 0;
    match partitions_in(event) {
        Some(parts) => {
            for (table, parts) in parts {
                let parts: Vec<u32> = parts.into_iter().collect();
                match replicator.replicate_table(&table, Some(&parts)).await {
                    Ok(r) => total.add(&r),
                    // Deleted since: nothing left to send.
                    Err(strata_engine::Error::TableNotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                match replicator
                    .source()
                    .follow_table_indexes(&table, Some(&parts))
                    .await
                {
                    Ok(r) => indexed.add(&r),
                    Err(strata_engine::Error::TableNotFound(_)) => {}
                    // Retried by the schedule; it does not fail the
                    // batch's replication.
                    Err(e) => {
                        tracing::warn!(table = %table, error = %e, "index maintenance failed")
                    }
                }
                tables += 1;
            }
        }
        None => {
            total = replicator.run_once().await?;
            match replicator.source().follow_all_indexes().await {
                Ok(r) => indexed = r,
                Err(e) => tracing::warn!(error = %e, "index maintenance pass failed"),
            }
        }
    }
    Ok(json!({
        "tables": tables,
        "segments": total.segments,
        "sent": total.sent,
        "applied": total.applied,
        "backfills": total.backfills,
        "index_changes": indexed.sent,
        "index_applied": indexed.applied,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_log_partitions_in_keys() {
        assert_eq!(
            log_partition("strata/tables/orders/abc123/p0007/log/00000000000000000042.seg"),
            Some(("orders".into(), 7))
        );
        assert_eq!(
            log_partition("tables/t.1/x/p0000/log/00000000000000000001.seg"),
            Some(("t.1".into(), 0))
        );
        assert_eq!(log_partition("tables/t/x/p0000/runs/r.sst"), None);
        assert_eq!(log_partition("tables/t/schema/00000000000000000001"), None);
        assert_eq!(log_partition("replication/t/us-east-1/p0000"), None);
        // A table called "tables" is a table like any other.
        assert_eq!(
            log_partition("tables/tables/x/p0002/log/00000000000000000001.seg"),
            Some(("tables".into(), 2))
        );
    }

    #[test]
    fn reads_sqs_batches_of_s3_notifications() {
        let s3 = |key: &str| {
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                "s3": {"bucket": {"name": "b"}, "object": {"key": key}}}]})
            .to_string()
        };
        let event = json!({"Records": [
            {"eventSource": "aws:sqs", "body": s3("p/tables/a/i/p0001/log/00000000000000000001.seg")},
            {"eventSource": "aws:sqs", "body": s3("p/tables/a/i/p0001/log/00000000000000000002.seg")},
            {"eventSource": "aws:sqs", "body": s3("p/tables/b/i/p0003/log/00000000000000000009.seg")},
            {"eventSource": "aws:sqs", "body": "{\"Event\": \"s3:TestEvent\"}"},
        ]});
        let parts = partitions_in(&event).unwrap();
        assert_eq!(parts["a"], BTreeSet::from([1]));
        assert_eq!(parts["b"], BTreeSet::from([3]));
        assert!(partitions_in(&json!({"source": "aws.scheduler"})).is_none());
    }
}

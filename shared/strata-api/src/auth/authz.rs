//! What each operation asks to do, as IAM sees it: its action
//! (`dynamodb:<Operation>`; PartiQL's `dynamodb:PartiQLSelect` …), the
//! resources it acts on (table, index, stream, backup, export, import ARNs;
//! `*` for listings), and the condition keys it carries
//! (`dynamodb:LeadingKeys`: the partition-key values of the items it reads
//! or writes). Checked in `Api::dispatch` before the operation runs, so a
//! refused request reads and writes nothing.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value as Json;
use strata_engine::catalog::TableDescriptor;
use strata_engine::KeyValue;

use super::policy::{Decision, Request};
use super::User;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::req::Req;
use crate::{Api, Caller, ACCOUNT};

/// One (action, resource) a request needs, with its condition keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Access {
    pub action: String,
    pub resource: String,
    pub keys: BTreeMap<String, Vec<String>>,
    /// Condition keys the request has but Strata cannot tell (a PartiQL
    /// statement's partition keys): a condition on them counts as met by
    /// a Deny statement and unmet by an Allow, so not knowing never allows.
    pub unknown: Vec<&'static str>,
}

const LEADING_KEYS: &str = "dynamodb:leadingkeys";

fn table_arn(caller: &Caller, table: &str) -> String {
    crate::tables::arn(&caller.region, table)
}

fn key_string(v: &KeyValue) -> String {
    match v {
        KeyValue::S(s) => s.clone(),
        KeyValue::N(n) => n.to_string(),
        KeyValue::B(b) => base64::engine::general_purpose::STANDARD.encode(b),
    }
}

/// What a LeadingKeys condition sees for a key it cannot read: a value no
/// policy names, so the condition is not met.
const UNREADABLE: &str = "\u{0}unreadable key";

/// The table's descriptor, read once for all the condition keys that need
/// it (`None`: the operation answers ResourceNotFound itself).
async fn described(api: &Api, table: &str) -> Option<TableDescriptor> {
    api.engine().describe_table(table).await.ok()
}

/// The partition-key values of `items` (Keys or Items) of the table `d`, as
/// the operation will read them (numbers canonical, binaries re-encoded):
/// a key that is missing or malformed, or a table that cannot be described,
/// is [`UNREADABLE`].
fn leading_keys<'a>(
    d: Option<&TableDescriptor>,
    items: impl Iterator<Item = &'a Json>,
) -> Vec<String> {
    let Some(d) = d else {
        return vec![UNREADABLE.to_string()];
    };
    let hash = &d.key_schema.hash;
    let mut out: Vec<String> = items
        .map(|i| {
            i.get(hash.name.as_str())
                .and_then(|v| crate::json::value_from_json(v).ok())
                .and_then(|v| crate::reads::key_value(hash.key_type, &v).ok())
                .map_or_else(|| UNREADABLE.to_string(), |k| key_string(&k))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn access(action: impl Into<String>, resource: impl Into<String>) -> Access {
    Access {
        action: action.into(),
        resource: resource.into(),
        keys: BTreeMap::new(),
        unknown: Vec::new(),
    }
}

/// An access to items of table `t` (their keys or items given): with
/// their `dynamodb:LeadingKeys` when the policy names it, and the table's
/// descriptor when a condition key needs it (read once for both).
async fn on_items<'a>(
    api: &Api,
    a: Access,
    t: &str,
    items: impl Iterator<Item = &'a Json>,
    leading: bool,
    fine: bool,
) -> (Access, Option<TableDescriptor>) {
    let d = if leading || fine {
        described(api, t).await
    } else {
        None
    };
    let a = if leading {
        with_leading(a, leading_keys(d.as_ref(), items))
    } else {
        a
    };
    (a, d)
}

fn with_leading(mut a: Access, keys: Vec<String>) -> Access {
    a.keys.insert(LEADING_KEYS.into(), keys);
    a
}

/// The table's key attribute names (none when it cannot be described).
fn key_names(d: Option<&TableDescriptor>) -> Vec<String> {
    d.map(|d| d.key_schema.attributes().map(|a| a.name.clone()).collect())
        .unwrap_or_default()
}

/// `a` with the fine-grained keys of `keys` added.
fn with_keys(mut a: Access, keys: super::attributes::Keys) -> Access {
    a.keys.extend(keys.known);
    a.unknown.extend(keys.unknown);
    a
}

/// The stream ARN a request names, rebuilt from its table and label in
/// this region and account (the Streams handlers read only those two).
fn stream_resource(caller: &Caller, arn: &str) -> String {
    match arn
        .split_once(":table/")
        .and_then(|(_, r)| r.split_once("/stream/"))
    {
        Some((table, label)) => format!("{}/stream/{label}", table_arn(caller, table)),
        None => "*".into(),
    }
}

/// Everything `op` (with request `req`) needs to be allowed. Names and ARNs
/// are read with the functions the operation itself reads them with, and
/// resources rebuilt from what those return, so that what is authorized is
/// what the operation acts on; a request they refuse is refused here with
/// the same error.
pub(crate) async fn accesses(
    api: &Api,
    caller: &Caller,
    op: &str,
    req: &Req<'_>,
    streams: bool,
    policy: &super::Policy,
) -> ApiResult<Vec<Access>> {
    let s = |name: &str| req.0.get(name).and_then(Json::as_str);
    // Condition keys cost reads and parses: computed only when the policy
    // has a condition on them.
    let leading = policy.names_key(LEADING_KEYS);
    let fine = [
        "dynamodb:attributes",
        "dynamodb:select",
        "dynamodb:returnvalues",
    ]
    .iter()
    .any(|k| policy.names_key(k));
    let action = format!("dynamodb:{op}");
    let on_table = |t: &str| access(action.clone(), table_arn(caller, t));
    if streams {
        let arn = match op {
            "GetRecords" => s("ShardIterator").and_then(crate::streams::iterator_stream_arn),
            "ListStreams" => None,
            _ => s("StreamArn").map(str::to_string),
        };
        let resource = arn.map_or_else(|| "*".into(), |a| stream_resource(caller, &a));
        return Ok(vec![access(action, resource)]);
    }
    Ok(match op {
        "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" => {
            let t = crate::tables::table_name(req)?;
            let member = if op == "PutItem" { "Item" } else { "Key" };
            let (mut a, d) = on_items(
                api,
                on_table(t),
                t,
                req.0.get(member).into_iter(),
                leading,
                fine,
            )
            .await;
            if fine {
                a = with_keys(
                    a,
                    super::attributes::item_keys(op, req, &key_names(d.as_ref())),
                );
            }
            vec![a]
        }
        "Query" | "Scan" => {
            let t = crate::tables::table_name(req)?;
            let resource = match s("IndexName") {
                Some(ix) => format!("{}/index/{ix}", table_arn(caller, t)),
                None => table_arn(caller, t),
            };
            let mut a = access(action, resource);
            if fine {
                let d = described(api, t).await;
                a = with_keys(
                    a,
                    super::attributes::item_keys(op, req, &key_names(d.as_ref())),
                );
            }
            if op == "Query" && leading {
                let keys = crate::reads::query_partition_key(api, req)
                    .await
                    .map_or_else(|| vec![UNREADABLE.to_string()], |k| vec![key_string(&k)]);
                vec![with_leading(a, keys)]
            } else {
                vec![a]
            }
        }
        "BatchGetItem" | "BatchWriteItem" => {
            let mut out = Vec::new();
            let tables = req
                .0
                .get("RequestItems")
                .and_then(Json::as_object)
                .ok_or_else(|| crate::req::missing("RequestItems"))?;
            for (t, v) in tables {
                let items: Vec<&Json> = if op == "BatchGetItem" {
                    v.get("Keys")
                        .and_then(Json::as_array)
                        .map(|a| a.iter().collect())
                        .unwrap_or_default()
                } else {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|w| {
                                    w.pointer("/PutRequest/Item")
                                        .or_else(|| w.pointer("/DeleteRequest/Key"))
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                };
                let (a, d) = on_items(api, on_table(t), t, items.into_iter(), leading, fine).await;
                if !fine {
                    out.push(a);
                    continue;
                }
                let names = key_names(d.as_ref());
                let fine_keys = match (op, v) {
                    ("BatchGetItem", Json::Object(part)) => {
                        super::attributes::item_keys(op, &Req(part), &names)
                    }
                    (_, Json::Array(writes)) => super::attributes::batch_write_keys(writes, &names),
                    _ => super::attributes::Keys {
                        unknown: vec![super::attributes::ATTRIBUTES],
                        ..Default::default()
                    },
                };
                out.push(with_keys(a, fine_keys));
            }
            out
        }
        // Each action needs its single-item operation on its table
        // (ConditionCheckItem for a ConditionCheck), as in DynamoDB.
        "TransactWriteItems" | "TransactGetItems" => {
            let members = req
                .0
                .get("TransactItems")
                .and_then(Json::as_array)
                .ok_or_else(|| crate::req::missing("TransactItems"))?;
            let mut out = Vec::new();
            for m in members {
                let Some((kind, body)) = m.as_object().and_then(|m| {
                    ["Get", "Put", "Update", "Delete", "ConditionCheck"]
                        .into_iter()
                        .find_map(|k| Some((k, m.get(k)?.as_object()?)))
                }) else {
                    continue;
                };
                let Some(t) = body.get("TableName").and_then(Json::as_str) else {
                    continue;
                };
                let (op, member) = match kind {
                    "Get" => ("GetItem", "Key"),
                    "Put" => ("PutItem", "Item"),
                    "Update" => ("UpdateItem", "Key"),
                    "Delete" => ("DeleteItem", "Key"),
                    _ => ("ConditionCheckItem", "Key"),
                };
                let one = access(format!("dynamodb:{op}"), table_arn(caller, t));
                let (a, _) =
                    on_items(api, one, t, body.get(member).into_iter(), leading, fine).await;
                out.push(if fine {
                    // Attribute conditions are not worked out for transactions:
                    // a policy that sets them refuses them.
                    with_keys(
                        a,
                        super::attributes::Keys {
                            unknown: vec![super::attributes::ATTRIBUTES],
                            ..Default::default()
                        },
                    )
                } else {
                    a
                });
            }
            out
        }
        "ExecuteStatement" => vec![partiql(caller, req)?],
        "BatchExecuteStatement" => {
            let list = req
                .0
                .get("Statements")
                .and_then(Json::as_array)
                .ok_or_else(|| crate::req::missing("Statements"))?;
            let mut out = Vec::new();
            for st in list {
                let obj = st
                    .as_object()
                    .ok_or_else(|| ApiError::serialization("Unexpected value in Statements"))?;
                out.push(partiql(caller, &Req(obj))?);
            }
            out
        }
        "TagResource" | "UntagResource" | "ListTagsOfResource" => {
            vec![on_table(crate::tables::table_from_arn(req, caller)?)]
        }
        "DescribeBackup" | "DeleteBackup" => {
            vec![access(
                action,
                backup_resource(caller, req.req_str("BackupArn")?)?,
            )]
        }
        "DescribeExport" => {
            let (t, id) = crate::backups::parse_export_arn(req.req_str("ExportArn")?)?;
            vec![access(
                action,
                format!("{}/export/{id}", table_arn(caller, t)),
            )]
        }
        "DescribeImport" => vec![access(action, s("ImportArn").unwrap_or("*"))],
        "ExportTableToPointInTime" => {
            let t = crate::backups::table_of_arn(req.req_str("TableArn")?)?;
            let mut out = vec![on_table(t)];
            if let Some(bucket) = s("S3Bucket") {
                let prefix = s("S3Prefix").unwrap_or_default();
                out.push(access(
                    "s3:PutObject",
                    format!("arn:aws:s3:::{bucket}/{prefix}*"),
                ));
            }
            out
        }
        "RestoreTableFromBackup" => vec![
            access(
                action.clone(),
                backup_resource(caller, req.req_str("BackupArn")?)?,
            ),
            on_table(req.req_str("TargetTableName")?),
        ],
        "RestoreTableToPointInTime" => {
            let source = match s("SourceTableArn") {
                Some(arn) => crate::backups::table_of_arn(arn)?,
                None => req.req_str("SourceTableName")?,
            };
            vec![on_table(source), on_table(req.req_str("TargetTableName")?)]
        }
        "ImportTable" => {
            let t = req
                .0
                .get("TableCreationParameters")
                .and_then(|p| p.get("TableName"))
                .and_then(Json::as_str)
                .ok_or_else(|| crate::req::missing("TableCreationParameters.TableName"))?;
            let mut out = vec![on_table(t)];
            if let Some(src) = req.0.get("S3BucketSource") {
                let bucket = src.get("S3Bucket").and_then(Json::as_str).unwrap_or("*");
                let prefix = src
                    .get("S3KeyPrefix")
                    .and_then(Json::as_str)
                    .unwrap_or_default();
                out.push(access(
                    "s3:GetObject",
                    format!("arn:aws:s3:::{bucket}/{prefix}*"),
                ));
                out.push(access("s3:ListBucket", format!("arn:aws:s3:::{bucket}")));
            }
            out
        }
        "UpdateTable" => {
            let t = crate::tables::table_name(req)?;
            let mut out = vec![on_table(t)];
            for u in req
                .0
                .get("ReplicaUpdates")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                for (kind, replica_action) in [
                    ("Create", "CreateTableReplica"),
                    ("Delete", "DeleteTableReplica"),
                ] {
                    if let Some(region) = u
                        .pointer(&format!("/{kind}/RegionName"))
                        .and_then(Json::as_str)
                    {
                        out.push(access(
                            format!("dynamodb:{replica_action}"),
                            crate::tables::arn(region, t),
                        ));
                    }
                }
            }
            out
        }
        _ if req.0.contains_key("TableName") => vec![on_table(crate::tables::table_name(req)?)],
        _ => vec![access(action.clone(), "*")],
    })
}

/// A backup ARN as the backup operations read it: its id, under the table
/// it names (the handlers refuse an ARN whose table is not the backup's).
fn backup_resource(caller: &Caller, arn: &str) -> ApiResult<String> {
    let id = crate::on_demand_backups::backup_id(arn)?;
    let table = crate::backups::table_of_arn(arn)?;
    Ok(format!("{}/backup/{id}", table_arn(caller, table)))
}

/// PartiQL's action and table for one statement, parsed with its own
/// parameters as the statement will run; one that does not parse is
/// refused here with the error it would get.
fn partiql(caller: &Caller, req: &Req<'_>) -> ApiResult<Access> {
    use crate::partiql::parser::Statement;
    let (action, table, index) = match crate::partiql::statement(req)? {
        Statement::Select(s) => ("PartiQLSelect", s.table, s.index),
        Statement::Insert { table, .. } => ("PartiQLInsert", table, None),
        Statement::Update { table, .. } => ("PartiQLUpdate", table, None),
        Statement::Delete { table, .. } => ("PartiQLDelete", table, None),
    };
    let mut resource = table_arn(caller, &table);
    if let Some(ix) = index {
        resource = format!("{resource}/index/{ix}");
    }
    let mut a = access(format!("dynamodb:{action}"), resource);
    a.unknown.push(LEADING_KEYS);
    a.unknown.push(super::attributes::ATTRIBUTES);
    Ok(a)
}

/// Refuses the request unless `user`'s policy allows every access it needs.
pub(crate) async fn authorize(
    api: &Api,
    user: &User,
    caller: &Caller,
    op: &str,
    req: &Req<'_>,
    streams: bool,
) -> ApiResult<()> {
    let needed = accesses(api, caller, op, req, streams, &user.policy).await?;
    if needed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            format!(
                "User: arn:aws:iam::{ACCOUNT}:user/{} is not authorized to perform: dynamodb:{op}",
                user.name
            ),
        ));
    }
    for a in needed {
        let decision = user.policy.evaluate(&Request {
            action: &a.action,
            resource: &a.resource,
            keys: &a.keys,
            unknown: &a.unknown,
            username: &user.name,
        });
        let why = match decision {
            Decision::Allowed => continue,
            Decision::ExplicitDeny => {
                "with an explicit deny in an identity-based policy".to_string()
            }
            Decision::ImplicitDeny => format!(
                "because no identity-based policy allows the {} action",
                a.action
            ),
        };
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            format!(
                "User: arn:aws:iam::{ACCOUNT}:user/{} is not authorized to perform: {} on resource: {} {why}",
                user.name,
                a.action,
                crate::error::bounded(&a.resource)
            ),
        ));
    }
    Ok(())
}

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

/// A key attribute's value in a request (`{"S": "x"}` → `x`).
fn json_key_string(v: &Json) -> Option<String> {
    let (_, v) = v.as_object()?.iter().next()?;
    v.as_str().map(str::to_string)
}

/// The partition-key values of `items` (Keys or Items) of `table`.
async fn leading_keys<'a>(
    api: &Api,
    table: &str,
    items: impl Iterator<Item = &'a Json>,
) -> Vec<String> {
    let Ok(d) = api.engine().describe_table(table).await else {
        return Vec::new(); // the operation answers ResourceNotFound itself
    };
    let hash = &d.key_schema.hash.name;
    let mut out: Vec<String> = items
        .filter_map(|i| i.get(hash.as_str()).and_then(json_key_string))
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
    }
}

fn with_leading(mut a: Access, keys: Vec<String>) -> Access {
    a.keys.insert(LEADING_KEYS.into(), keys);
    a
}

/// Everything `op` (with request `req`) needs to be allowed.
pub(crate) async fn accesses(
    api: &Api,
    caller: &Caller,
    op: &str,
    req: &Req<'_>,
    streams: bool,
) -> Vec<Access> {
    let s = |name: &str| req.0.get(name).and_then(Json::as_str);
    let action = format!("dynamodb:{op}");
    let table = s("TableName");
    let on_table = |t: &str| access(action.clone(), table_arn(caller, t));
    if streams {
        let arn = match op {
            "GetRecords" => s("ShardIterator").and_then(crate::streams::iterator_stream_arn),
            "ListStreams" => None,
            _ => s("StreamArn").map(str::to_string),
        };
        return vec![access(action, arn.unwrap_or_else(|| "*".into()))];
    }
    match op {
        "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem" => {
            let Some(t) = table else {
                return vec![access(action, "*")];
            };
            let member = if op == "PutItem" { "Item" } else { "Key" };
            let keys = leading_keys(api, t, req.0.get(member).into_iter()).await;
            vec![with_leading(on_table(t), keys)]
        }
        "Query" | "Scan" => {
            let Some(t) = table else {
                return vec![access(action, "*")];
            };
            let resource = match s("IndexName") {
                Some(ix) => format!("{}/index/{ix}", table_arn(caller, t)),
                None => table_arn(caller, t),
            };
            let a = access(action, resource);
            if op == "Query" {
                let keys = crate::reads::query_partition_key(api, req)
                    .await
                    .map(|k| vec![key_string(&k)])
                    .unwrap_or_default();
                vec![with_leading(a, keys)]
            } else {
                vec![a]
            }
        }
        "BatchGetItem" | "BatchWriteItem" => {
            let mut out = Vec::new();
            let Some(tables) = req.0.get("RequestItems").and_then(Json::as_object) else {
                return vec![access(action, "*")];
            };
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
                let keys = leading_keys(api, t, items.into_iter()).await;
                out.push(with_leading(on_table(t), keys));
            }
            out
        }
        "ExecuteStatement" => partiql(caller, s("Statement")).into_iter().collect(),
        "BatchExecuteStatement" => req
            .0
            .get("Statements")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|st| partiql(caller, st.get("Statement").and_then(Json::as_str)))
                    .collect()
            })
            .unwrap_or_default(),
        "TagResource" | "UntagResource" | "ListTagsOfResource" => {
            vec![access(action, s("ResourceArn").unwrap_or("*"))]
        }
        "DescribeBackup" | "DeleteBackup" => vec![access(action, s("BackupArn").unwrap_or("*"))],
        "DescribeExport" => vec![access(action, s("ExportArn").unwrap_or("*"))],
        "DescribeImport" => vec![access(action, s("ImportArn").unwrap_or("*"))],
        "ExportTableToPointInTime" => vec![access(action, s("TableArn").unwrap_or("*"))],
        "RestoreTableFromBackup" => {
            let mut out = vec![access(action.clone(), s("BackupArn").unwrap_or("*"))];
            if let Some(t) = s("TargetTableName") {
                out.push(on_table(t));
            }
            out
        }
        "RestoreTableToPointInTime" => {
            let source = s("SourceTableArn")
                .map(str::to_string)
                .or_else(|| s("SourceTableName").map(|t| table_arn(caller, t)));
            let mut out = vec![access(action.clone(), source.unwrap_or_else(|| "*".into()))];
            if let Some(t) = s("TargetTableName") {
                out.push(on_table(t));
            }
            out
        }
        "ImportTable" => {
            let t = req
                .0
                .get("TableCreationParameters")
                .and_then(|p| p.get("TableName"))
                .and_then(Json::as_str);
            vec![t.map_or_else(|| access(action.clone(), "*"), on_table)]
        }
        _ => vec![table.map_or_else(|| access(action.clone(), "*"), on_table)],
    }
}

/// PartiQL's action and table for one statement (unparsable: nothing to
/// check; the statement is refused when it runs).
fn partiql(caller: &Caller, statement: Option<&str>) -> Option<Access> {
    use crate::partiql::parser::{parse, Statement};
    let src = statement?;
    let params = vec![Json::Null; crate::partiql::parser::count_params(src)];
    let (action, table, index) = match parse(src, &params).ok()? {
        Statement::Select(s) => ("PartiQLSelect", s.table, s.index),
        Statement::Insert { table, .. } => ("PartiQLInsert", table, None),
        Statement::Update { table, .. } => ("PartiQLUpdate", table, None),
        Statement::Delete { table, .. } => ("PartiQLDelete", table, None),
    };
    let mut resource = table_arn(caller, &table);
    if let Some(ix) = index {
        resource = format!("{resource}/index/{ix}");
    }
    Some(access(format!("dynamodb:{action}"), resource))
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
    for a in accesses(api, caller, op, req, streams).await {
        let decision = user.policy.evaluate(&Request {
            action: &a.action,
            resource: &a.resource,
            keys: &a.keys,
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

//! PartiQL: ExecuteStatement and BatchExecuteStatement. A statement is
//! parsed ([`parser`]), written out as DynamoDB expressions ([`render`])
//! and run as the JSON API operation it amounts to ([`exec`]), so PartiQL
//! and the JSON API can never disagree about what a write does.
//!
//! The parser is Strata's own: AWS's `partiql-parser` crate (0.15) parses
//! SELECT but neither INSERT, UPDATE, DELETE nor `?` parameters, which is
//! most of what DynamoDB's PartiQL is (see ARCHITECTURE.md).

mod exec;
mod lexer;
pub(crate) mod parser;
mod render;

use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value as Json};

use crate::choices::{ReturnCapacity, ReturnOnFailure};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::json::value_from_json;
use crate::req::{missing, Req};
use crate::Api;
use exec::{Options, Outcome};
use parser::Statement;

/// Longest statement DynamoDB takes, in characters.
const MAX_STATEMENT: usize = 8192;
/// Most statements in one BatchExecuteStatement.
const MAX_BATCH: usize = 25;

/// A statement and its parameters, checked as DynamoDB checks them.
pub(crate) fn statement(req: &Req) -> ApiResult<Statement> {
    let src = req.str("Statement")?.ok_or_else(|| missing("Statement"))?;
    if src.chars().count() > MAX_STATEMENT {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'statement' failed to satisfy constraint: \
             Member must have length less than or equal to {MAX_STATEMENT}"
        )));
    }
    let params = req.arr("Parameters")?.map_or(&[][..], Vec::as_slice);
    for p in params {
        value_from_json(p)?;
    }
    if params.len() < parser::count_params(src) {
        return Err(ApiError::validation(
            "Number of parameters in request and statement don't match.",
        ));
    }
    parser::parse(src, params)
}

fn options(req: &Req) -> ApiResult<Options> {
    req.choice::<ReturnCapacity>()?;
    req.choice::<ReturnOnFailure>()?;
    Ok(Options {
        consistent_read: req.bool("ConsistentRead")?,
        limit: req.get("Limit").cloned(),
        next_token: req.str("NextToken")?.map(str::to_string),
        return_capacity: req.get("ReturnConsumedCapacity").cloned(),
        return_on_failure: req.get("ReturnValuesOnConditionCheckFailure").cloned(),
    })
}

pub async fn execute_statement(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let opts = options(req)?;
    let stmt = statement(req)?;
    let Outcome {
        items,
        last_key,
        capacity,
    } = exec::run(api, stmt, &opts).await?;
    let mut out = Map::new();
    out.insert("Items".into(), Json::Array(items));
    if let Some(k) = last_key {
        out.insert("NextToken".into(), json!(exec::encode_token(&k)));
        out.insert("LastEvaluatedKey".into(), k);
    }
    if let Some(c) = capacity {
        out.insert("ConsumedCapacity".into(), c);
    }
    Ok(Json::Object(out))
}

/// Whether a statement reads (SELECT) or writes; `None` for one that is
/// neither, which fails on its own.
fn reads(src: &str) -> Option<bool> {
    let first = src
        .split(|c: char| !c.is_ascii_alphabetic())
        .find(|w| !w.is_empty())?;
    match first.to_ascii_uppercase().as_str() {
        "SELECT" => Some(true),
        "INSERT" | "UPDATE" | "DELETE" => Some(false),
        _ => None,
    }
}

pub async fn batch_execute_statement(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    req.choice::<ReturnCapacity>()?;
    let return_capacity = req.get("ReturnConsumedCapacity").cloned();
    // Capacity consumed, summed per table (DynamoDB reports a batch's so).
    let mut capacity: Vec<(String, f64)> = Vec::new();
    let list = req
        .arr("Statements")?
        .ok_or_else(|| missing("Statements"))?;
    if list.is_empty() {
        return Err(ApiError::validation("The statement was empty."));
    }
    let mut entries = Vec::with_capacity(list.len());
    for s in list {
        let obj = s
            .as_object()
            .ok_or_else(|| ApiError::serialization("Unexpected value in Statements"))?;
        entries.push(Req(obj));
    }
    let kinds: Vec<Option<bool>> = entries
        .iter()
        .map(|e| {
            Ok(reads(
                e.str("Statement")?.ok_or_else(|| missing("Statement"))?,
            ))
        })
        .collect::<ApiResult<_>>()?;
    let any_read = kinds.contains(&Some(true));
    if any_read && kinds.contains(&Some(false)) {
        return Err(ApiError::validation(
            "Read and write requests together in the same batch is not supported.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(ApiError::validation(if any_read {
            "BatchGetItem cannot fetch more than 25 items"
        } else {
            "Too many items requested for the BatchWriteItem call"
        }));
    }
    // Parse every statement first: a batch that names one item twice is
    // refused as a whole, as BatchWriteItem refuses it.
    let mut parsed = Vec::with_capacity(entries.len());
    let mut seen = HashSet::new();
    let mut schemas = HashMap::new();
    for (entry, kind) in entries.iter().zip(&kinds) {
        let p = match kind {
            None => Err(ApiError::validation(
                "Invalid operation. Only select, insert, update and delete operations are valid",
            )),
            Some(_) => statement(entry).and_then(|s| Ok((s, options(entry)?))),
        };
        if let Ok((stmt, _)) = &p {
            if let Some(id) = item_id(api, stmt, &mut schemas).await {
                if !seen.insert(id) {
                    return Err(ApiError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
            }
        }
        parsed.push(p);
    }
    let mut responses = Vec::with_capacity(parsed.len());
    for p in parsed {
        let (stmt, mut opts) = match p {
            Ok(p) => p,
            Err(e) => {
                responses.push(json!({ "Error": batch_error(&e) }));
                continue;
            }
        };
        let table = table_of(&stmt).to_string();
        opts.return_capacity = return_capacity.clone();
        let result = match stmt {
            Statement::Select(s) if !single_item(api, &s, &mut schemas).await => {
                Err(ApiError::validation("Only single item select is supported"))
            }
            stmt => exec::run(api, stmt, &opts).await,
        };
        if let Some(units) = result
            .as_ref()
            .ok()
            .and_then(|o| o.capacity.as_ref())
            .and_then(|c| c.get("CapacityUnits"))
            .and_then(Json::as_f64)
        {
            match capacity.iter_mut().find(|(t, _)| *t == table) {
                Some((_, u)) => *u += units,
                None => capacity.push((table.clone(), units)),
            }
        }
        responses.push(match result {
            Ok(out) => {
                let mut r = json!({ "TableName": table });
                if let Some(item) = out.items.into_iter().next().filter(|_| any_read) {
                    r["Item"] = item;
                }
                r
            }
            Err(e) => {
                let mut r = json!({ "Error": batch_error(&e) });
                if matches!(
                    e.code,
                    ErrorCode::ConditionalCheckFailed | ErrorCode::DuplicateItem
                ) {
                    r["TableName"] = json!(table);
                }
                r
            }
        });
    }
    let mut out = json!({ "Responses": responses });
    if !capacity.is_empty() {
        out["ConsumedCapacity"] = capacity
            .into_iter()
            .map(|(t, u)| json!({ "TableName": t, "CapacityUnits": u }))
            .collect();
    }
    Ok(out)
}

fn table_of(s: &Statement) -> &str {
    match s {
        Statement::Select(s) => &s.table,
        Statement::Insert { table, .. }
        | Statement::Update { table, .. }
        | Statement::Delete { table, .. } => table,
    }
}

/// A batch error as DynamoDB writes it: `Code` from
/// BatchStatementErrorCodeEnum, `Message`, and the item when asked.
fn batch_error(e: &ApiError) -> Json {
    let code = match e.code {
        ErrorCode::ConditionalCheckFailed => "ConditionalCheckFailed",
        ErrorCode::DuplicateItem => "DuplicateItem",
        ErrorCode::ResourceNotFound => "ResourceNotFound",
        ErrorCode::ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceeded",
        ErrorCode::ServiceUnavailable => "ThrottlingError",
        ErrorCode::InternalServerError => "InternalServerError",
        _ => "ValidationError",
    };
    let mut err = json!({ "Code": code, "Message": e.message });
    if let Some(item) = &e.item {
        err["Item"] = crate::json::item_to_json(item);
    }
    err
}

/// The key schemas of the tables a batch names, looked up once each.
type Schemas = HashMap<String, Option<strata_engine::KeySchema>>;

async fn schema_of<'s>(
    api: &Api,
    table: &str,
    schemas: &'s mut Schemas,
) -> Option<&'s strata_engine::KeySchema> {
    if !schemas.contains_key(table) {
        let s = exec::table(api, table).await.ok().map(|d| d.key_schema);
        schemas.insert(table.to_string(), s);
    }
    schemas.get(table).and_then(Option::as_ref)
}

/// The table and key of the one item a statement names, when it names one.
async fn item_id(api: &Api, s: &Statement, schemas: &mut Schemas) -> Option<String> {
    let schema = schema_of(api, table_of(s), schemas).await?;
    let terms = match s {
        Statement::Insert { item, .. } => {
            let mut id = vec![json!(table_of(s))];
            for attr in schema.attributes() {
                id.push(item["M"].get(&attr.name)?.clone());
            }
            return Some(Json::Array(id).to_string());
        }
        Statement::Update { filter, .. } | Statement::Delete { filter, .. } => {
            let mut terms = Vec::new();
            exec::conjuncts(filter.clone()?, &mut terms);
            terms
        }
        Statement::Select(_) => return None,
    };
    let mut id = vec![json!(table_of(s))];
    for attr in schema.attributes() {
        id.push(
            terms
                .iter()
                .find_map(|t| exec::equality(t, &attr.name))?
                .clone(),
        );
    }
    Some(Json::Array(id).to_string())
}

/// Whether a batch SELECT names exactly one item of a table: equality on
/// every key attribute and nothing else.
async fn single_item(api: &Api, s: &parser::Select, schemas: &mut Schemas) -> bool {
    if s.index.is_some() {
        return false;
    }
    let Some(schema) = schema_of(api, &s.table, schemas).await else {
        // A missing table answers for itself.
        return true;
    };
    let Some(filter) = &s.filter else {
        return false;
    };
    let mut terms = Vec::new();
    exec::conjuncts(filter.clone(), &mut terms);
    terms.len() == schema.attributes().count()
        && schema
            .attributes()
            .all(|a| terms.iter().any(|t| exec::equality(t, &a.name).is_some()))
}

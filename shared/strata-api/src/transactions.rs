//! TransactWriteItems and TransactGetItems: the request shapes, DynamoDB's
//! validation and cancellation answers, consumed capacity (twice a
//! single-item operation's units). The protocol is the engine's
//! (`Engine::transact_write`, ARCHITECTURE.md "Transactions").

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use strata_engine::value::item_size;
use strata_engine::{
    CancelReason, Change, Item, ItemKey, TableDescriptor, TxnOptions, TxnResult, TxnWrite, WriteOp,
    MAX_TXN_ACTIONS,
};

use crate::capacity::{read_units, write_units, Capacity};
use crate::choices::ReturnCapacity;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::expr::{self, parse_update, Cond};
use crate::items::{
    capacity_mode, check_key_paths, collection_metrics, condition, descriptor, engine_condition,
    placeholders, projection,
};
use crate::json::{item_from_json, item_to_json};
use crate::req::{missing, Req};
use crate::tables::table_name;
use crate::{Api, Caller};

/// Longest ClientRequestToken DynamoDB takes.
const MAX_TOKEN_LEN: usize = 36;
/// Largest transaction, in bytes of items and keys (DynamoDB's 4 MB).
const MAX_TXN_BYTES: usize = 4 << 20;

/// The TransactItems list: present, 1 to 100 members.
fn transact_items<'a>(req: &Req<'a>, empty_is_null: bool) -> ApiResult<&'a Vec<Json>> {
    let null = || {
        ApiError::validation(
            "Value null at 'transactItems' failed to satisfy constraint: Member must not be null",
        )
    };
    let items = req.arr("TransactItems")?.ok_or_else(null)?;
    if items.is_empty() {
        return Err(if empty_is_null {
            null()
        } else {
            ApiError::validation(
                "Value [] at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
            )
        });
    }
    if items.len() > MAX_TXN_ACTIONS {
        return Err(ApiError::validation(format!(
            "Member must have length less than or equal to {MAX_TXN_ACTIONS}"
        )));
    }
    Ok(items)
}

/// One action as planned: the engine's part, and what the answer needs.
struct Planned {
    write: TxnWrite,
    desc: TableDescriptor,
    item_on_failure: bool,
}

fn action_kind(member: &Map<String, Json>) -> ApiResult<(&'static str, Req<'_>)> {
    const KINDS: [&str; 4] = ["ConditionCheck", "Put", "Delete", "Update"];
    let present: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| member.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    match present.as_slice() {
        [kind] => match member.get(*kind) {
            Some(Json::Object(body)) => Ok((kind, Req(body))),
            _ => Err(ApiError::serialization(format!(
                "Unexpected value type for {kind}"
            ))),
        },
        [] => Err(ApiError::validation(
            "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request",
        )),
        _ => Err(ApiError::validation(
            "TransactItems can only contain one of Check, Put, Update or Delete",
        )),
    }
}

/// One TransactWriteItems member, checked as its single-item operation is.
async fn plan_write(api: &Api, index: usize, member: &Json) -> ApiResult<(Planned, usize)> {
    let member = member
        .as_object()
        .ok_or_else(|| ApiError::serialization("TransactItems members must be objects"))?;
    let (kind, req) = action_kind(member)?;
    let table = table_name(&req)?;
    let item_on_failure = match req.str("ReturnValuesOnConditionCheckFailure")? {
        None | Some("NONE") => false,
        Some("ALL_OLD") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'transactItems.{}.member.{}.returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]",
                index + 1,
                lower_first(kind)
            )))
        }
    };
    let fields: &[&str] = match kind {
        "Update" => &["UpdateExpression", "ConditionExpression"],
        _ => &["ConditionExpression"],
    };
    let ph = placeholders(&req, fields)?;
    if kind == "ConditionCheck" && !req.has("ConditionExpression") {
        return Err(ApiError::validation(format!(
            "Value null at 'transactItems.{}.member.conditionCheck.conditionExpression' failed to satisfy constraint: Member must not be null",
            index + 1
        )));
    }
    let actions = match kind {
        "Update" => Some(parse_update(
            req.str("UpdateExpression")?
                .ok_or_else(|| missing("UpdateExpression"))?,
            &ph,
        )?),
        _ => None,
    };
    let cond = condition(&req, &ph)?;
    ph.check_all_used()?;
    let d = descriptor(api, table).await.map_err(not_found)?;
    check_key_paths(
        &d,
        actions
            .iter()
            .flat_map(|a| expr::update_paths(a))
            .chain(cond.iter().flat_map(Cond::paths)),
    )?;
    let key_of = |v: Option<&Json>| -> ApiResult<(ItemKey, usize)> {
        let attrs = item_from_json(v.ok_or_else(|| missing("Key"))?)?;
        let size = item_size(&attrs);
        let key = d
            .key_schema
            .key_from_attributes(&attrs)
            .map_err(|e| ApiError::validation(e.to_string()))?;
        Ok((key, size))
    };
    let (key, change, bytes) = match kind {
        "Put" => {
            let item = req.item("Item")?.ok_or_else(|| missing("Item"))?;
            if d.key_schema
                .attributes()
                .any(|a| !item.contains_key(&a.name))
            {
                return Err(ApiError::validation(
                    "One of the required keys was not given a value",
                ));
            }
            let key = d
                .key_schema
                .key_of(&item)
                .map_err(|e| ApiError::validation(e.to_string()))?;
            let size = item_size(&item);
            if size > strata_engine::value::MAX_ITEM_SIZE {
                return Err(ApiError::validation(
                    "Item size has exceeded the maximum allowed size",
                ));
            }
            (key, Change::Put(item), size)
        }
        "Update" => {
            let (key, size) = key_of(req.get("Key"))?;
            let actions = Arc::new(actions.unwrap_or_default());
            let f: strata_engine::UpdateFn =
                Arc::new(move |cur: Option<&Item>| expr::apply_update(&actions, cur));
            (key, Change::Update(f), size)
        }
        _ => {
            let (key, size) = key_of(req.get("Key"))?;
            (key, Change::Delete, size)
        }
    };
    let op = WriteOp {
        key,
        change,
        condition: engine_condition(cond),
    };
    Ok((
        Planned {
            write: TxnWrite {
                table: d.name.clone(),
                op,
                check: kind == "ConditionCheck",
            },
            desc: d,
            item_on_failure,
        },
        bytes,
    ))
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

/// A table a transaction names that does not exist: DynamoDB's words.
fn not_found(e: ApiError) -> ApiError {
    if e.code == ErrorCode::ResourceNotFound {
        ApiError::not_found("Cannot do operations on a non-existent table")
    } else {
        e
    }
}

fn token(req: &Req) -> ApiResult<Option<String>> {
    let Some(t) = req.str("ClientRequestToken")? else {
        return Ok(None);
    };
    if t.is_empty() || t.chars().count() > MAX_TOKEN_LEN {
        return Err(ApiError::validation(format!(
            "Value {} at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to {MAX_TOKEN_LEN}",
            crate::error::bounded(t)
        )));
    }
    Ok(Some(t.to_string()))
}

pub async fn transact_write(api: &Api, req: &Req<'_>, caller: &Caller) -> ApiResult<Json> {
    let members = transact_items(req, false)?;
    let mode = capacity_mode(req)?;
    let metrics = req.choice::<crate::choices::ReturnCollectionMetrics>()?
        == Some(crate::choices::ReturnCollectionMetrics::Size);
    let token = token(req)?;
    let mut planned = Vec::with_capacity(members.len());
    let mut bytes = 0;
    for (i, m) in members.iter().enumerate() {
        let (p, size) = plan_write(api, i, m).await?;
        bytes += size;
        planned.push(p);
    }
    if bytes > MAX_TXN_BYTES {
        return Err(ApiError::validation(format!(
            "Transaction payload size cannot exceed 4MB. Payload Size: {bytes}"
        )));
    }
    // The request as a retry with the same token must repeat it.
    let params = strata_engine::txn::params_hash(
        serde_json::to_string(members)
            .unwrap_or_default()
            .as_bytes(),
    );
    let opts = TxnOptions {
        token: token.map(|t| (caller.access_key.clone().unwrap_or_default(), t)),
        params,
        ..Default::default()
    };
    let writes = planned.iter().map(|p| p.write.clone()).collect();
    match api.engine().transact_write(writes, opts).await {
        Ok(TxnResult::Committed { sizes, .. }) => {
            let mut out = Map::new();
            let mut units: BTreeMap<&str, f64> = BTreeMap::new();
            for (p, size) in planned.iter().zip(&sizes) {
                *units.entry(&p.desc.name).or_default() += 2.0 * write_units(*size);
            }
            if mode != ReturnCapacity::None {
                let list = units
                    .iter()
                    .filter_map(|(t, u)| Capacity::table(*u).json(t, mode))
                    .collect();
                out.insert("ConsumedCapacity".into(), Json::Array(list));
            }
            if metrics {
                let mut by_table: Map<String, Json> = Map::new();
                for p in planned.iter().filter(|p| !p.write.check) {
                    let hash = &p.write.op.key.hash;
                    if let Some(m) = collection_metrics(api, &p.desc, hash).await? {
                        if let Json::Array(a) = by_table
                            .entry(p.desc.name.clone())
                            .or_insert_with(|| json!([]))
                        {
                            a.push(m);
                        }
                    }
                }
                if !by_table.is_empty() {
                    out.insert("ItemCollectionMetrics".into(), Json::Object(by_table));
                }
            }
            Ok(Json::Object(out))
        }
        Ok(TxnResult::Canceled(reasons)) => Err(canceled(&planned, reasons)),
        Err(strata_engine::Error::IdempotentMismatch) => {
            Err(ApiError::new(ErrorCode::IdempotentParameterMismatch, ""))
        }
        Err(e) => Err(e.into()),
    }
}

/// TransactionCanceledException with DynamoDB's CancellationReasons. A
/// validation error found evaluating an action (an operand of the wrong
/// type) is the whole request's ValidationException, as DynamoDB Local
/// answers; an update of a key attribute is the action's ValidationError.
fn canceled(planned: &[Planned], reasons: Vec<CancelReason>) -> ApiError {
    for r in &reasons {
        if let CancelReason::ValidationError(m) = r {
            if !m.contains("This attribute is part of the key") {
                return ApiError::validation(m.clone());
            }
        }
    }
    let shaped = reasons
        .into_iter()
        .zip(planned)
        .map(|(r, p)| (r, p.write.check, p.item_on_failure))
        .collect();
    cancellation(shaped)
}

/// TransactionCanceledException: per action its reason, whether it is a
/// ConditionCheck and whether it asked for the item on a failed condition.
fn cancellation(reasons: Vec<(CancelReason, bool, bool)>) -> ApiError {
    let codes: Vec<&str> = reasons.iter().map(|(r, _, _)| r.code()).collect();
    let message = format!(
        "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
        codes.join(", ")
    );
    let list: Vec<Json> = reasons
        .into_iter()
        .map(|(r, check, item_on_failure)| match r {
            CancelReason::None => json!({ "Code": "None" }),
            CancelReason::ConditionalCheckFailed(item) => {
                // DynamoDB words a ConditionCheck's failure with a period.
                let message = if check {
                    "The conditional request failed."
                } else {
                    "The conditional request failed"
                };
                let mut o = json!({ "Code": "ConditionalCheckFailed", "Message": message });
                if let (true, Some(item)) = (item_on_failure, item) {
                    o["Item"] = item_to_json(&item);
                }
                o
            }
            CancelReason::TransactionConflict => json!({
                "Code": "TransactionConflict",
                "Message": "Transaction is ongoing for the item",
            }),
            CancelReason::ValidationError(m) => json!({ "Code": "ValidationError", "Message": m }),
        })
        .collect();
    let mut e = ApiError::new(ErrorCode::TransactionCanceled, message);
    e.reasons = Some(Box::new(Json::Array(list)));
    e
}

pub async fn transact_get(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let members = transact_items(req, true)?;
    let mode = capacity_mode(req)?;
    let mut gets = Vec::with_capacity(members.len());
    let mut shapes = Vec::with_capacity(members.len());
    for m in members {
        let get = m
            .as_object()
            .and_then(|m| m.get("Get"))
            .and_then(Json::as_object)
            .ok_or_else(|| {
                ApiError::validation(
                    "Value null at 'transactItems.1.member.get' failed to satisfy constraint: Member must not be null",
                )
            })?;
        let req = Req(get);
        let table = table_name(&req)?;
        let ph = placeholders(&req, &["ProjectionExpression"])?;
        let proj = projection(&req, &ph)?;
        ph.check_all_used()?;
        let d = descriptor(api, table).await.map_err(not_found)?;
        check_key_paths(&d, proj.iter().flatten())?;
        let attrs = item_from_json(req.get("Key").ok_or_else(|| missing("Key"))?)?;
        let key = d
            .key_schema
            .key_from_attributes(&attrs)
            .map_err(|e| ApiError::validation(e.to_string()))?;
        gets.push((d.name.clone(), key));
        shapes.push(proj);
    }
    let items = match api.engine().transact_get(&gets).await? {
        Ok(items) => items,
        Err(reasons) => {
            let shaped = reasons.into_iter().map(|r| (r, false, false)).collect();
            return Err(cancellation(shaped));
        }
    };
    let mut units: BTreeMap<&str, f64> = BTreeMap::new();
    let mut responses = Vec::with_capacity(items.len());
    for ((item, proj), (table, _)) in items.into_iter().zip(&shapes).zip(&gets) {
        let size = item.as_ref().map_or(0, |i| item_size(i));
        *units.entry(table).or_default() += 2.0 * read_units(size, true);
        responses.push(match item {
            Some(item) => {
                let item = match proj {
                    Some(paths) => expr::project(&item, paths),
                    None => (*item).clone(),
                };
                json!({ "Item": item_to_json(&item) })
            }
            None => json!({}),
        });
    }
    let mut out = json!({ "Responses": responses });
    if mode != ReturnCapacity::None {
        out["ConsumedCapacity"] = Json::Array(
            units
                .iter()
                .filter_map(|(t, u)| Capacity::table(*u).json(t, mode))
                .collect(),
        );
    }
    Ok(out)
}

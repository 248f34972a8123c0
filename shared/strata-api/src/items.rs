//! Item operations: PutItem, GetItem, UpdateItem, DeleteItem, BatchWriteItem.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use strata_engine::value::item_size;
use strata_engine::{
    Consistency, Item, ItemKey, KeySchema, TableDescriptor, WriteOp, WriteRequest,
};

use crate::capacity::Capacity;
use crate::choices::{ReturnCapacity, ReturnCollectionMetrics, ReturnOnFailure, ReturnValues};
use crate::error::{ApiError, ApiResult};
use crate::expr::{
    self, eval_condition, parse_condition, parse_projection, parse_update, Cond, DocPath, PathElem,
    Placeholders, UpdateAction,
};
use crate::json::{item_from_json, item_to_json};
use crate::legacy;
use crate::req::{missing, Req};
use crate::tables::table_name;
use crate::{consumed, read_units, Api};

/// Refuses a nested path (`pk.x`, `sk[0]`) into a key attribute of the
/// table or of one of its indexes: key attributes are scalars, and
/// DynamoDB says so before looking at any item.
pub(crate) fn check_key_paths<'a>(
    d: &TableDescriptor,
    paths: impl IntoIterator<Item = &'a DocPath>,
) -> ApiResult<()> {
    for p in paths {
        let (Some(PathElem::Key(top)), true) = (p.first(), p.len() > 1) else {
            continue;
        };
        let label = if d.key_schema.attributes().any(|a| &a.name == top) {
            "Key"
        } else if d
            .indexes
            .iter()
            .any(|ix| ix.key_schema.attributes().any(|a| &a.name == top))
        {
            "IndexKey"
        } else {
            continue;
        };
        return Err(ApiError::validation(format!(
            "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: {label}: {top}"
        )));
    }
    Ok(())
}

pub(crate) async fn descriptor(api: &Api, table: &str) -> ApiResult<TableDescriptor> {
    api.engine()
        .describe_table(table)
        .await
        .map_err(ApiError::from)
}

/// An item's key, with DynamoDB's messages for what is wrong with it.
pub(crate) fn item_key(schema: &KeySchema, item: &Item) -> ApiResult<ItemKey> {
    for attr in schema.attributes() {
        if !item.contains_key(&attr.name) {
            return Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Missing the key {} in the item",
                attr.name
            )));
        }
    }
    schema
        .key_of(item)
        .map_err(|e| ApiError::validation(e.to_string()))
}

/// A `Key` parameter: exactly the key attributes, of the right types.
pub(crate) fn key_param(schema: &KeySchema, v: &Json) -> ApiResult<ItemKey> {
    key_of_attrs(schema, &item_from_json(v)?)
}

/// A key already read from JSON, checked against the schema.
pub(crate) fn key_of_attrs(schema: &KeySchema, attrs: &Item) -> ApiResult<ItemKey> {
    schema
        .key_from_attributes(attrs)
        .map_err(|e| ApiError::validation(e.to_string()))
}

/// The request's condition: ConditionExpression or Expected.
pub(crate) fn condition(req: &Req, ph: &Placeholders) -> ApiResult<Option<Cond>> {
    legacy::refuse_mixing(
        req,
        &[(
            &["Expected", "ConditionalOperator"],
            &["ConditionExpression"],
        )],
    )?;
    legacy::refuse_lone_operator(req, "Expected")?;
    match req.str("ConditionExpression")? {
        Some(src) => Ok(Some(parse_condition("ConditionExpression", src, ph)?)),
        None => legacy::expected(req),
    }
}

/// DynamoDB refuses placeholders when the request has no expression.
pub(crate) fn placeholders(req: &Req, expression_fields: &[&str]) -> ApiResult<Placeholders> {
    // Expressions that can hold values; an operation with none (GetItem,
    // BatchGetItem) has no ExpressionAttributeValues member, and ignores
    // one, as DynamoDB ignores any member an operation does not have.
    let valued: Vec<&str> = expression_fields
        .iter()
        .copied()
        .filter(|f| *f != "ProjectionExpression")
        .collect();
    let values = if valued.is_empty() {
        Default::default()
    } else {
        req.values()?
    };
    let ph = Placeholders::new(req.names()?, values);
    if ph.has_names() && !expression_fields.iter().any(|f| req.has(f)) {
        return Err(ApiError::validation(
            "ExpressionAttributeNames can only be specified when using expressions",
        ));
    }
    if ph.has_values() && !valued.iter().any(|f| req.has(f)) {
        let verb = if valued.len() == 1 { "is" } else { "are" };
        return Err(ApiError::validation(format!(
            "ExpressionAttributeValues can only be specified when using expressions: {} {verb} null",
            valued.join(" and ")
        )));
    }
    Ok(ph)
}

/// The projection: ProjectionExpression or AttributesToGet.
pub(crate) fn projection(req: &Req, ph: &Placeholders) -> ApiResult<Option<Vec<DocPath>>> {
    legacy::refuse_mixing(req, &[(&["AttributesToGet"], &["ProjectionExpression"])])?;
    match req.str("ProjectionExpression")? {
        Some(src) => Ok(Some(parse_projection(src, ph)?)),
        None => legacy::attributes_to_get(req),
    }
}

pub(crate) fn engine_condition(c: Option<Cond>) -> Option<strata_engine::Condition> {
    c.map(|c| {
        Arc::new(move |cur: Option<&Item>| Ok(eval_condition(&c, cur))) as strata_engine::Condition
    })
}

fn return_on_failure(req: &Req) -> ApiResult<bool> {
    Ok(req.choice()? == Some(ReturnOnFailure::AllOld))
}

pub(crate) fn capacity_mode(req: &Req) -> ApiResult<ReturnCapacity> {
    Ok(req.choice()?.unwrap_or(ReturnCapacity::None))
}

/// What a write reports: its consumed capacity, and (a member of writes
/// only) whether ReturnItemCollectionMetrics asks for SIZE.
fn write_capacity_mode(req: &Req) -> ApiResult<(ReturnCapacity, bool)> {
    let size = req.choice::<ReturnCollectionMetrics>()? == Some(ReturnCollectionMetrics::Size);
    Ok((capacity_mode(req)?, size))
}

/// ItemCollectionMetrics of a write to the item collection of `hash`:
/// only tables with local indexes have item collections. The size
/// estimate's upper bound is the size of the partition holding the
/// collection (a collection never spans partitions), in whole GB, at
/// least 1, as DynamoDB reports small collections (`[0.0, 1.0]`).
pub(crate) async fn collection_metrics(
    api: &Api,
    d: &TableDescriptor,
    hash: &strata_engine::KeyValue,
) -> ApiResult<Option<Json>> {
    if !d
        .indexes
        .iter()
        .any(|i| i.kind == strata_engine::IndexKind::Local)
    {
        return Ok(None);
    }
    let bytes = api.engine().collection_size_bound(&d.name, hash).await?;
    let upper = (bytes as f64 / (1u64 << 30) as f64).ceil().max(1.0);
    let mut key = Map::new();
    key.insert(
        d.key_schema.hash.name.clone(),
        crate::json::value_to_json(&hash.to_value()),
    );
    Ok(Some(json!({
        "ItemCollectionKey": key,
        "SizeEstimateRangeGB": [0.0, upper],
    })))
}

fn return_values(req: &Req) -> ApiResult<ReturnValues> {
    Ok(req.choice()?.unwrap_or(ReturnValues::None))
}

/// Commits one operation, turning a failed condition into DynamoDB's error.
async fn write_one(
    api: &Api,
    table: &str,
    op: WriteOp,
    item_on_failure: bool,
) -> ApiResult<strata_engine::WriteOutcome> {
    match api.engine().write(table, WriteRequest::single(op)).await {
        Ok(mut c) => Ok(c.outcomes.pop().unwrap_or(strata_engine::WriteOutcome {
            old: None,
            new: None,
        })),
        Err(strata_engine::Error::ConditionFailed { item, .. }) => {
            Err(ApiError::condition_failed(if item_on_failure {
                item
            } else {
                None
            }))
        }
        Err(e) => Err(e.into()),
    }
}

fn finish(
    mut out: Map<String, Json>,
    attributes: Option<Item>,
    table: &str,
    units: Capacity,
    mode: ReturnCapacity,
    metrics: Option<Json>,
) -> Json {
    if let Some(a) = attributes.filter(|a| !a.is_empty()) {
        out.insert("Attributes".into(), item_to_json(&a));
    }
    if let Some(m) = metrics {
        out.insert("ItemCollectionMetrics".into(), m);
    }
    if let Some(c) = units.json(table, mode) {
        out.insert("ConsumedCapacity".into(), c);
    }
    Json::Object(out)
}

pub async fn put(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let item = req.item("Item")?.ok_or_else(|| missing("Item"))?;
    put_or_delete(api, req, Whole::Put(item)).await
}

/// What PutItem or DeleteItem acts on.
enum Whole {
    Put(Item),
    /// The key attributes of the item to delete.
    Delete(Item),
}

/// PutItem and DeleteItem: one request shape around a different change.
async fn put_or_delete(api: &Api, req: &Req<'_>, whole: Whole) -> ApiResult<Json> {
    let table = table_name(req)?;
    let rv = return_values(req)?;
    if !matches!(rv, ReturnValues::None | ReturnValues::AllOld) {
        return Err(ApiError::validation("Return values set to invalid value"));
    }
    let on_failure = return_on_failure(req)?;
    let (mode, metrics) = write_capacity_mode(req)?;
    let ph = placeholders(req, &["ConditionExpression"])?;
    let cond = condition(req, &ph)?;
    ph.check_all_used()?;
    let d = descriptor(api, table).await?;
    check_key_paths(&d, cond.iter().flat_map(Cond::paths))?;
    let (key, change) = match whole {
        Whole::Put(item) => (
            item_key(&d.key_schema, &item)?,
            strata_engine::Change::Put(item),
        ),
        Whole::Delete(attrs) => (
            key_of_attrs(&d.key_schema, &attrs)?,
            strata_engine::Change::Delete,
        ),
    };
    let hash = key.hash.clone();
    let op = WriteOp {
        key,
        change,
        condition: engine_condition(cond),
    };
    let o = write_one(api, table, op, on_failure).await?;
    let units = Capacity::of_write(&d, &o);
    let metrics = match metrics {
        true => collection_metrics(api, &d, &hash).await?,
        false => None,
    };
    Ok(finish(
        Map::new(),
        if rv == ReturnValues::AllOld {
            o.old
        } else {
            None
        },
        table,
        units,
        mode,
        metrics,
    ))
}

pub async fn get(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let table = table_name(req)?;
    // The whole request is read and checked before any table is looked at.
    let key_attrs = item_from_json(req.get("Key").ok_or_else(|| missing("Key"))?)?;
    let strong = req.bool("ConsistentRead")?.unwrap_or(false);
    let mode = capacity_mode(req)?;
    let ph = placeholders(req, &["ProjectionExpression"])?;
    let proj = projection(req, &ph)?;
    ph.check_all_used()?;
    let d = descriptor(api, table).await?;
    check_key_paths(&d, proj.iter().flatten())?;
    let key = key_of_attrs(&d.key_schema, &key_attrs)?;
    let consistency = if strong {
        Consistency::Strong
    } else {
        Consistency::Eventual
    };
    let found = api.engine().get(table, &key, consistency).await?;
    let mut out = Map::new();
    let size = found.as_ref().map_or(0, |i| item_size(i));
    if let Some(item) = found {
        let item = match &proj {
            Some(paths) => expr::project(&item, paths),
            None => (*item).clone(),
        };
        out.insert("Item".into(), item_to_json(&item));
    }
    if let Some(c) = consumed(table, read_units(size, strong), mode) {
        out.insert("ConsumedCapacity".into(), c);
    }
    Ok(Json::Object(out))
}

fn refuse_key_updates(schema: &KeySchema, actions: &[UpdateAction]) -> ApiResult<()> {
    for a in actions {
        if let Some(expr::PathElem::Key(k)) = a.path().first() {
            let is_key =
                *k == schema.hash.name || schema.range.as_ref().is_some_and(|r| r.name == *k);
            if is_key {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Cannot update attribute {k}. This attribute is part of the key"
                )));
            }
        }
    }
    Ok(())
}

pub async fn update(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let table = table_name(req)?;
    // The whole request is read and checked before any table is looked at.
    let key_attrs = item_from_json(req.get("Key").ok_or_else(|| missing("Key"))?)?;
    let rv = return_values(req)?;
    let on_failure = return_on_failure(req)?;
    let (mode, metrics) = write_capacity_mode(req)?;
    legacy::refuse_mixing(
        req,
        &[(
            &["AttributeUpdates", "Expected", "ConditionalOperator"],
            &["UpdateExpression", "ConditionExpression"],
        )],
    )?;
    let ph = placeholders(req, &["UpdateExpression", "ConditionExpression"])?;
    let legacy_updates = !req.has("UpdateExpression") && req.has("AttributeUpdates");
    // Legacy members: Expected is checked before AttributeUpdates, as
    // DynamoDB Local checks them.
    let early_cond = if legacy_updates {
        Some(condition(req, &ph)?)
    } else {
        None
    };
    let actions = match req.str("UpdateExpression")? {
        Some(src) => parse_update(src, &ph)?,
        None => legacy::attribute_updates(req)?.unwrap_or_default(),
    };
    let cond = match early_cond {
        Some(c) => c,
        None => condition(req, &ph)?,
    };
    ph.check_all_used()?;
    let d = descriptor(api, table).await?;
    refuse_key_updates(&d.key_schema, &actions)?;
    check_key_paths(
        &d,
        expr::update_paths(&actions)
            .into_iter()
            .chain(cond.iter().flat_map(Cond::paths)),
    )?;
    let key = key_of_attrs(&d.key_schema, &key_attrs)?;
    let paths = expr::updated_paths(&actions);
    let actions = Arc::new(actions);
    let f: strata_engine::UpdateFn = {
        let actions = Arc::clone(&actions);
        Arc::new(move |cur: Option<&Item>| expr::apply_update(&actions, cur))
    };
    let hash = key.hash.clone();
    let op = WriteOp {
        key,
        change: strata_engine::Change::Update(f),
        condition: engine_condition(cond),
    };
    let o = write_one(api, table, op, on_failure)
        .await
        .map_err(|mut e| {
            // AttributeUpdates words a type clash its own way.
            if legacy_updates && e.message == expr::BAD_TYPE {
                e.message = "Type mismatch for attribute to update".into();
            }
            e
        })?;
    let units = Capacity::of_write(&d, &o);
    let metrics = match metrics {
        true => collection_metrics(api, &d, &hash).await?,
        false => None,
    };
    let attributes = match rv {
        ReturnValues::AllOld => o.old,
        ReturnValues::AllNew => o.new,
        ReturnValues::UpdatedOld => o.old.map(|i| expr::project(&i, &paths)),
        ReturnValues::UpdatedNew => o.new.map(|i| expr::project(&i, &paths)),
        ReturnValues::None => None,
    };
    Ok(finish(Map::new(), attributes, table, units, mode, metrics))
}

pub async fn delete(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    // The whole request is read and checked before any table is looked at.
    let key_attrs = item_from_json(req.get("Key").ok_or_else(|| missing("Key"))?)?;
    put_or_delete(api, req, Whole::Delete(key_attrs)).await
}

/// Most write requests one BatchWriteItem may carry.
const MAX_BATCH_WRITES: usize = 25;

pub async fn batch_write(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let items = req
        .obj("RequestItems")?
        .ok_or_else(|| missing("RequestItems"))?;
    let (mode, metrics) = write_capacity_mode(req)?;
    if items.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    // Validate the whole batch before writing any of it.
    let mut planned: Vec<(String, Json, WriteOp)> = Vec::new();
    let mut descriptors: std::collections::HashMap<String, TableDescriptor> = Default::default();
    for (table, writes) in items {
        let writes = writes
            .as_array()
            .ok_or_else(|| ApiError::serialization("RequestItems values must be lists"))?;
        if writes.is_empty() {
            return Err(ApiError::validation(format!(
                "The batch write request list for a table cannot be null or empty: {table}"
            )));
        }
        let d = descriptor(api, table).await?;
        descriptors.insert(table.clone(), d.clone());
        let mut seen = HashSet::new();
        for w in writes {
            let (op, key) = match (w.get("PutRequest"), w.get("DeleteRequest")) {
                (Some(p), None) => {
                    let item = item_from_json(p.get("Item").ok_or_else(|| missing("Item"))?)?;
                    let key = item_key(&d.key_schema, &item)?;
                    // Every item's index keys are checked before any
                    // table is written: a refused batch writes nothing.
                    strata_engine::index::check_index_keys(&d.indexes, &item)
                        .map_err(ApiError::validation)?;
                    if item_size(&item) > strata_engine::value::MAX_ITEM_SIZE {
                        return Err(ApiError::validation("Item size has exceeded the maximum allowed size"));
                    }
                    (WriteOp::put(key.clone(), item), key)
                }
                (None, Some(del)) => {
                    let key = key_param(&d.key_schema, del.get("Key").ok_or_else(|| missing("Key"))?)?;
                    (WriteOp::delete(key.clone()), key)
                }
                _ => {
                    return Err(ApiError::validation(
                        "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                    ))
                }
            };
            if !seen.insert(key) {
                return Err(ApiError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            planned.push((table.clone(), w.clone(), op));
        }
    }
    if planned.len() > MAX_BATCH_WRITES {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Map value must satisfy constraint: [Member must have length less than or equal to {MAX_BATCH_WRITES}, Member must have length greater than or equal to 1]"
        )));
    }
    // Concurrent writes to one partition are group-committed by the engine.
    // Each carries a token, so that one whose outcome is unknown (the store
    // failed while it was settled) can be asked again without being applied
    // twice: UnprocessedItems must list only writes that were not applied.
    let batch = crate::request_id();
    let reqs: Vec<WriteRequest> = planned
        .iter()
        .enumerate()
        .map(|(i, (_, _, op))| WriteRequest::single(op.clone()).with_token(format!("{batch}-{i}")))
        .collect();
    let mut results = futures::future::join_all(
        planned
            .iter()
            .zip(&reqs)
            .map(|((t, _, _), req)| api.engine().write(t, req.clone())),
    )
    .await;
    // A write once unknown stays unknown until asked again answers Ok: a
    // retry that fails (even before sending) says nothing of the first try.
    let mut was_unknown = vec![false; results.len()];
    for attempt in 0..3u32 {
        let unknown: Vec<usize> = (0..results.len())
            .filter(|&i| {
                if matches!(results[i], Err(strata_engine::Error::OutcomeUnknown { .. })) {
                    was_unknown[i] = true;
                }
                was_unknown[i] && results[i].is_err()
            })
            .collect();
        if unknown.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        let again = futures::future::join_all(
            unknown
                .iter()
                .map(|&i| api.engine().write(&planned[i].0, reqs[i].clone())),
        )
        .await;
        for (i, r) in unknown.into_iter().zip(again) {
            results[i] = r;
        }
    }
    let mut unprocessed: Map<String, Json> = Map::new();
    let mut units: std::collections::BTreeMap<String, Capacity> = Default::default();
    let mut collections: Map<String, Json> = Map::new();
    // A write refused for good (a conflicting transaction, an item the
    // engine refused) is listed unprocessed once any other write of the
    // batch committed: the batch never answers an error for committed
    // writes. When none committed, the first such refusal is the answer.
    let any_committed = results.iter().any(Result::is_ok);
    for (i, ((table, raw, op), res)) in planned.into_iter().zip(results).enumerate() {
        let res = match res {
            Err(e)
                if was_unknown[i] && !matches!(e, strata_engine::Error::OutcomeUnknown { .. }) =>
            {
                Err(strata_engine::Error::OutcomeUnknown {
                    table: table.clone(),
                    cause: "asked again, the store failed".into(),
                })
            }
            res => res,
        };
        match res {
            Ok(c) => {
                let total = units.entry(table.clone()).or_default();
                if let Some(d) = descriptors.get(&table) {
                    for o in &c.outcomes {
                        total.add(&Capacity::of_write(d, o));
                    }
                    if metrics {
                        if let Some(m) = collection_metrics(api, d, &op.key.hash).await? {
                            if let Json::Array(a) = collections
                                .entry(table.clone())
                                .or_insert_with(|| json!([]))
                            {
                                a.push(m);
                            }
                        }
                    }
                }
            }
            // Still unknown: neither processed nor unprocessed can be said
            // of it, so the batch fails (retryable; its puts and deletes
            // may be sent again).
            Err(e @ strata_engine::Error::OutcomeUnknown { .. }) => return Err(e.into()),
            Err(e)
                if e.is_retryable()
                    || any_committed
                    || matches!(e, strata_engine::Error::TransactionConflict { .. }) =>
            {
                if !e.is_retryable() {
                    tracing::info!(table = %table, error = %e, "a batch write listed unprocessed");
                }
                if let Json::Array(a) = unprocessed.entry(table).or_insert_with(|| json!([])) {
                    a.push(raw);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut out = json!({ "UnprocessedItems": unprocessed });
    if metrics {
        out["ItemCollectionMetrics"] = Json::Object(collections);
    }
    if mode != ReturnCapacity::None {
        out["ConsumedCapacity"] =
            Json::Array(units.iter().filter_map(|(t, u)| u.json(t, mode)).collect());
    }
    Ok(out)
}

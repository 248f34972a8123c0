//! Query, Scan and BatchGetItem.

use std::collections::HashSet;

use serde_json::{json, Map, Value as Json};
use strata_engine::value::item_size;
use strata_engine::{
    Consistency, Item, ItemKey, KeySchema, KeyValue, Page, SortKeyCondition, Value,
};

use crate::capacity::Capacity;
use crate::choices::{wire, ReturnCapacity, Select};
use crate::error::{ApiError, ApiResult};
use crate::expr::{
    self, eval_condition, parse_condition, CmpOp, Cond, DocPath, Operand, PathElem, Placeholders,
};
use crate::index_reads::{self, index_read, IndexRead};
use crate::items::{
    capacity_mode, check_key_paths, descriptor, key_param, placeholders, projection,
};
use crate::json::item_to_json;
use crate::legacy;
use crate::req::{missing, Req};
use crate::tables::table_name;
use crate::{consumed, read_units, Api};

/// DynamoDB stops a Query or Scan page after reading this much data.
const PAGE_BYTES: usize = 1 << 20;

fn key_condition_error(m: impl Into<String>) -> ApiError {
    ApiError::validation(m)
}

pub(crate) fn key_value(schema_type: strata_engine::KeyType, v: &Value) -> ApiResult<KeyValue> {
    match (schema_type, v) {
        (strata_engine::KeyType::S, Value::S(s)) => Ok(KeyValue::S(s.clone())),
        (strata_engine::KeyType::N, Value::N(n)) => Ok(KeyValue::N(n.clone())),
        (strata_engine::KeyType::B, Value::B(b)) => Ok(KeyValue::B(b.clone())),
        _ => Err(ApiError::validation(
            "One or more parameter values were invalid: Condition parameter type does not match schema type",
        )),
    }
}

fn flatten_and(c: Cond, out: &mut Vec<Cond>) -> ApiResult<()> {
    match c {
        Cond::And(a, b) => {
            flatten_and(*a, out)?;
            flatten_and(*b, out)
        }
        Cond::Or(..) => Err(key_condition_error(
            "Invalid operator used in KeyConditionExpression: OR",
        )),
        Cond::Not(..) => Err(key_condition_error(
            "Invalid operator used in KeyConditionExpression: NOT",
        )),
        other => {
            out.push(other);
            Ok(())
        }
    }
}

fn top_attr(p: &DocPath) -> ApiResult<&str> {
    match p.as_slice() {
        [PathElem::Key(k)] => Ok(k),
        _ => Err(key_condition_error(
            "KeyConditionExpressions cannot contain nested attributes",
        )),
    }
}

/// Splits a key condition into the partition-key value and the sort-key
/// condition, refusing what DynamoDB refuses.
fn key_condition(schema: &KeySchema, cond: Cond) -> ApiResult<(KeyValue, SortKeyCondition)> {
    let mut parts = Vec::new();
    flatten_and(cond, &mut parts)?;
    let mut hash = None;
    let mut sort = None;
    /// One key-condition term, before it is matched to the schema.
    enum Term {
        Cmp(CmpOp, Value),
        Between(Value, Value),
        BeginsWith(Value),
    }
    for c in parts {
        let (attr, term) = match c {
            Cond::Cmp(Operand::Path(_), CmpOp::Ne, _) => {
                return Err(key_condition_error(
                    "Unsupported operator in KeyConditionExpression: <>",
                ))
            }
            Cond::Cmp(Operand::Path(p), op, Operand::Value(v)) => {
                (top_attr(&p)?.to_string(), Term::Cmp(op, v))
            }
            // (DynamoDB words the two orders' refusals differently.)
            Cond::Cmp(Operand::Value(_), CmpOp::Ne, Operand::Path(_)) => {
                return Err(key_condition_error(
                    "Invalid operator used in KeyConditionExpression: <>",
                ))
            }
            // The value may come first (`:v < sk`): the same term, mirrored.
            Cond::Cmp(Operand::Value(v), op, Operand::Path(p)) => {
                let mirrored = match op {
                    CmpOp::Lt => CmpOp::Gt,
                    CmpOp::Le => CmpOp::Ge,
                    CmpOp::Gt => CmpOp::Lt,
                    CmpOp::Ge => CmpOp::Le,
                    other => other,
                };
                (top_attr(&p)?.to_string(), Term::Cmp(mirrored, v))
            }
            Cond::Between(Operand::Path(p), Operand::Value(a), Operand::Value(b)) => {
                (top_attr(&p)?.to_string(), Term::Between(a, b))
            }
            Cond::BeginsWith(Operand::Path(p), Operand::Value(v)) => {
                (top_attr(&p)?.to_string(), Term::BeginsWith(v))
            }
            _ => return Err(key_condition_error("Query key condition not supported")),
        };
        if attr == schema.hash.name {
            let Term::Cmp(CmpOp::Eq, v) = term else {
                return Err(key_condition_error("Query key condition not supported"));
            };
            if hash.is_some() {
                return Err(key_condition_error(
                    "KeyConditionExpressions must only contain one condition per key",
                ));
            }
            hash = Some(key_value(schema.hash.key_type, &v)?);
        } else if let Some(r) = schema.range.as_ref().filter(|r| r.name == attr) {
            if sort.is_some() {
                return Err(key_condition_error(
                    "KeyConditionExpressions must only contain one condition per key",
                ));
            }
            let kv = |v: &Value| key_value(r.key_type, v);
            sort = Some(match term {
                Term::Between(a, b) => {
                    let (lo, hi) = (kv(&a)?, kv(&b)?);
                    if expr::compare(&a, &b).is_some_and(|o| o.is_gt()) {
                        return Err(key_condition_error(
                            "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound",
                        ));
                    }
                    SortKeyCondition::Between(lo, hi)
                }
                Term::BeginsWith(v) => {
                    if r.key_type == strata_engine::KeyType::N {
                        return Err(key_condition_error(
                            "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N",
                        ));
                    }
                    SortKeyCondition::BeginsWith(kv(&v)?)
                }
                Term::Cmp(CmpOp::Eq, v) => SortKeyCondition::Eq(kv(&v)?),
                Term::Cmp(CmpOp::Lt, v) => SortKeyCondition::Lt(kv(&v)?),
                Term::Cmp(CmpOp::Le, v) => SortKeyCondition::Le(kv(&v)?),
                Term::Cmp(CmpOp::Gt, v) => SortKeyCondition::Gt(kv(&v)?),
                Term::Cmp(CmpOp::Ge, v) => SortKeyCondition::Ge(kv(&v)?),
                Term::Cmp(CmpOp::Ne, _) => {
                    return Err(key_condition_error(
                        "Unsupported operator in KeyConditionExpression: <>",
                    ))
                }
            });
        } else {
            return Err(key_condition_error(format!(
                "Query condition missed key schema element: {}",
                schema.hash.name
            )));
        }
    }
    let hash = hash.ok_or_else(|| {
        key_condition_error(format!(
            "Query condition missed key schema element: {}",
            schema.hash.name
        ))
    })?;
    Ok((hash, sort.unwrap_or(SortKeyCondition::All)))
}

/// Select, checked against the projection as DynamoDB checks it.
fn select(req: &Req, proj: &Option<Vec<DocPath>>) -> ApiResult<Select> {
    let indexed = req.has("IndexName");
    let default = match (proj.is_some(), indexed) {
        (true, _) => Select::SpecificAttributes,
        (false, true) => Select::AllProjectedAttributes,
        (false, false) => Select::AllAttributes,
    };
    let s = req.choice()?.unwrap_or(default);
    match (s, proj.is_some()) {
        (Select::AllProjectedAttributes, true) => Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Cannot specify the AttributesToGet or ProjectionExpression when choosing to get {}",
            wire(s)
        ))),
        (Select::AllProjectedAttributes, false) if indexed => Ok(s),
        (Select::AllProjectedAttributes, _) => Err(ApiError::validation(
            "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES is supported only for index queries",
        )),
        (Select::AllAttributes | Select::Count, true) => Err(ApiError::validation(format!(
            "One or more parameter values were invalid: Cannot specify the AttributesToGet or ProjectionExpression when choosing to get {}",
            wire(s)
        ))),
        (Select::SpecificAttributes, false) => Err(ApiError::validation(
            "One or more parameter values were invalid: Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES",
        )),
        _ => Ok(s),
    }
}

fn limit(req: &Req) -> ApiResult<usize> {
    match req.int("Limit")? {
        None => Ok(usize::MAX),
        Some(n) if n >= 1 => Ok(n as usize),
        Some(n) => Err(ApiError::validation(format!(
            "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
        ))),
    }
}

type Groups = &'static [(&'static [&'static str], &'static [&'static str])];

/// The pairs of legacy and expression members a Query or Scan may not mix.
struct MixingRules {
    query: Groups,
    scan: Groups,
}

const FILTER_AND_PROJECTION: MixingRules = MixingRules {
    query: &[
        (
            &["QueryFilter", "ConditionalOperator"],
            &["FilterExpression"],
        ),
        (&["AttributesToGet"], &["ProjectionExpression"]),
    ],
    scan: &[
        (
            &["ScanFilter", "ConditionalOperator"],
            &["FilterExpression"],
        ),
        (&["AttributesToGet"], &["ProjectionExpression"]),
    ],
};

fn filter(req: &Req, ph: &Placeholders, legacy_field: &str) -> ApiResult<Option<Cond>> {
    legacy::refuse_lone_operator(req, legacy_field)?;
    match req.str("FilterExpression")? {
        Some(src) => Ok(Some(parse_condition("FilterExpression", src, ph)?)),
        None => legacy::filter(req, legacy_field),
    }
}

/// A Query filters what its key condition found: DynamoDB refuses a filter
/// on a key attribute.
fn refuse_key_filter(req: &Req, schema: &KeySchema, filter: Option<&Cond>) -> ApiResult<()> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let paths = filter.paths();
    let keys = std::iter::once(&schema.hash.name).chain(schema.range.as_ref().map(|r| &r.name));
    for k in keys {
        let named = paths
            .iter()
            .any(|p| matches!(p.first(), Some(PathElem::Key(n)) if n == k));
        if named {
            let what = if req.has("FilterExpression") {
                "Filter Expression"
            } else {
                "QueryFilter"
            };
            return Err(ApiError::validation(format!(
                "{what} can only contain non-primary key attributes: Primary key attribute: {k}"
            )));
        }
    }
    Ok(())
}

fn start_key(req: &Req, schema: &KeySchema) -> ApiResult<Option<ItemKey>> {
    match req.get("ExclusiveStartKey") {
        None => Ok(None),
        Some(v) => key_param(schema, v).map(Some).map_err(|_| {
            ApiError::validation("The provided starting key is invalid: The provided key element does not match the schema")
        }),
    }
}

/// An index read's ExclusiveStartKey: the table's and the index's keys
/// (checked by the engine against both).
fn index_start_key(req: &Req) -> ApiResult<Option<Item>> {
    req.get("ExclusiveStartKey")
        .map(|v| {
            crate::json::item_from_json(v)
                .map_err(|_| ApiError::validation("The provided starting key is invalid"))
        })
        .transpose()
}

/// Filters and projects a page and builds the response body.
fn respond(page: Page, table: &str, p: &ReadParams, index: Option<&IndexRead>) -> Json {
    let scanned = page.items.len();
    let bytes: usize = page.items.iter().map(|i| item_size(i)).sum();
    let mut items = Vec::new();
    for item in &page.items {
        if p.filter
            .as_ref()
            .is_some_and(|f| !eval_condition(f, Some(item)))
        {
            continue;
        }
        items.push(match &p.proj {
            Some(paths) => item_to_json(&expr::project(item, paths)),
            None => item_to_json(item),
        });
    }
    let mut out = Map::new();
    out.insert("Count".into(), json!(items.len()));
    out.insert("ScannedCount".into(), json!(scanned));
    if p.select != Select::Count {
        out.insert("Items".into(), Json::Array(items));
    }
    if let Some(k) = page.last_key {
        out.insert("LastEvaluatedKey".into(), item_to_json(&k));
    }
    // A read that met no item consumed nothing (DynamoDB Local's count).
    let units = if scanned == 0 {
        0.0
    } else {
        read_units(bytes, p.strong)
    };
    let capacity = match index {
        Some(ix) => Capacity::index(&ix.def, units).json(table, p.mode),
        None => consumed(table, units, p.mode),
    };
    if let Some(c) = capacity {
        out.insert("ConsumedCapacity".into(), c);
    }
    Json::Object(out)
}

/// What Query and Scan share: filter, projection, Select, Limit,
/// consistency and the capacity report.
struct ReadParams {
    filter: Option<Cond>,
    proj: Option<Vec<DocPath>>,
    select: Select,
    limit: usize,
    strong: bool,
    mode: ReturnCapacity,
}

impl ReadParams {
    fn read(req: &Req, ph: &Placeholders, legacy_filter: &str) -> ApiResult<ReadParams> {
        let filter = filter(req, ph, legacy_filter)?;
        let proj = projection(req, ph)?;
        let select = select(req, &proj)?;
        Ok(ReadParams {
            filter,
            proj,
            select,
            limit: limit(req)?,
            strong: req.bool("ConsistentRead")?.unwrap_or(false),
            mode: capacity_mode(req)?,
        })
    }

    fn consistency(&self) -> Consistency {
        if self.strong {
            Consistency::Strong
        } else {
            Consistency::Eventual
        }
    }
}

/// The partition-key value a Query asks for, as its own parsing finds it
/// (what `dynamodb:LeadingKeys` is checked against); `None` when the
/// request does not parse, which the Query itself then refuses.
pub(crate) async fn query_partition_key(api: &Api, req: &Req<'_>) -> Option<KeyValue> {
    let table = table_name(req).ok()?;
    let ph = placeholders(
        req,
        &[
            "KeyConditionExpression",
            "FilterExpression",
            "ProjectionExpression",
        ],
    )
    .ok()?;
    let cond = match req.str("KeyConditionExpression").ok()? {
        Some(src) => parse_condition("KeyConditionExpression", src, &ph).ok()?,
        None => legacy::filter(req, "KeyConditions").ok()??,
    };
    let d = descriptor(api, table).await.ok()?;
    let schema = match req.str("IndexName").ok()? {
        Some(name) => &d.indexes.iter().find(|i| i.name == name)?.key_schema,
        None => &d.key_schema,
    };
    key_condition(schema, cond).ok().map(|(hash, _)| hash)
}

pub async fn query(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let table = table_name(req)?;
    // Limit is checked before any expression, as DynamoDB Local does.
    limit(req)?;
    // A KeyConditionExpression takes no legacy member; KeyConditions may
    // come with a FilterExpression or a ProjectionExpression.
    let legacy_all: &[&str] = &[
        "KeyConditions",
        "QueryFilter",
        "AttributesToGet",
        "ConditionalOperator",
    ];
    let modern_all: &[&str] = &[
        "KeyConditionExpression",
        "FilterExpression",
        "ProjectionExpression",
    ];
    if req.has("KeyConditionExpression") {
        legacy::refuse_mixing(req, &[(legacy_all, modern_all)])?;
    }
    legacy::refuse_mixing(req, FILTER_AND_PROJECTION.query)?;
    let ph = placeholders(
        req,
        &[
            "KeyConditionExpression",
            "FilterExpression",
            "ProjectionExpression",
        ],
    )?;
    let key_cond = match req.str("KeyConditionExpression")? {
        Some(src) => parse_condition("KeyConditionExpression", src, &ph)?,
        None => legacy::filter(req, "KeyConditions")?.ok_or_else(|| {
            ApiError::validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
        })?,
    };
    let params = ReadParams::read(req, &ph, "QueryFilter")?;
    ph.check_all_used()?;
    let forward = req.bool("ScanIndexForward")?.unwrap_or(true);
    let d = descriptor(api, table).await?;
    check_key_paths(
        &d,
        key_cond
            .paths()
            .into_iter()
            .chain(params.filter.iter().flat_map(Cond::paths))
            .chain(params.proj.iter().flatten()),
    )?;
    if let Some(name) = req.str("IndexName")? {
        let ix = index_read(
            &d,
            name,
            params.select,
            params.proj.as_ref(),
            params.filter.as_ref(),
        )?;
        refuse_key_filter(req, &ix.def.key_schema, params.filter.as_ref())?;
        let (hash, sort) = key_condition(&ix.def.key_schema, key_cond)?;
        let start = index_start_key(req)?;
        let consistency = params.consistency();
        let mut page = api
            .engine()
            .query_index(
                table,
                name,
                &hash,
                &sort,
                forward,
                params.limit,
                start.as_ref(),
                PAGE_BYTES,
                consistency,
            )
            .await?;
        if ix.fetch {
            page.items = index_reads::fetch_items(api, &d, page.items, consistency).await?;
        }
        return Ok(respond(page, table, &params, Some(&ix)));
    }
    refuse_key_filter(req, &d.key_schema, params.filter.as_ref())?;
    let (hash, sort) = key_condition(&d.key_schema, key_cond)?;
    let start = start_key(req, &d.key_schema)?;
    if let Some(s) = &start {
        if s.hash != hash {
            return Err(ApiError::validation("The provided starting key is outside query boundaries based on provided conditions"));
        }
    }
    let consistency = params.consistency();
    let page = api
        .engine()
        .query(
            table,
            &hash,
            &sort,
            forward,
            params.limit,
            start.as_ref(),
            PAGE_BYTES,
            consistency,
        )
        .await?;
    Ok(respond(page, table, &params, None))
}

pub async fn scan(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let table = table_name(req)?;
    limit(req)?;
    legacy::refuse_mixing(req, FILTER_AND_PROJECTION.scan)?;
    let ph = placeholders(req, &["FilterExpression", "ProjectionExpression"])?;
    let params = ReadParams::read(req, &ph, "ScanFilter")?;
    ph.check_all_used()?;
    let segment = match (req.int("Segment")?, req.int("TotalSegments")?) {
        (None, None) => None,
        (Some(s), Some(t)) if (1..=1_000_000).contains(&t) && (0..t).contains(&s) => Some((s as u32, t as u32)),
        (Some(_), Some(t)) if !(1..=1_000_000).contains(&t) => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{t}' at 'totalSegments' failed to satisfy constraint: Member must have value between 1 and 1000000"
            )))
        }
        (Some(s), Some(t)) => {
            return Err(ApiError::validation(format!(
                "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {s} is not less than TotalSegments: {t}"
            )))
        }
        (Some(_), None) => return Err(ApiError::validation("The TotalSegments parameter is required but was not present in the request when Segment parameter is present")),
        (None, Some(_)) => return Err(ApiError::validation("The Segment parameter is required but was not present in the request when parameter TotalSegments is present")),
    };
    let d = descriptor(api, table).await?;
    check_key_paths(
        &d,
        params
            .filter
            .iter()
            .flat_map(Cond::paths)
            .chain(params.proj.iter().flatten()),
    )?;
    let consistency = params.consistency();
    if let Some(name) = req.str("IndexName")? {
        let ix = index_read(
            &d,
            name,
            params.select,
            params.proj.as_ref(),
            params.filter.as_ref(),
        )?;
        let start = index_start_key(req)?;
        let mut page = api
            .engine()
            .scan_index(
                table,
                name,
                segment,
                start.as_ref(),
                params.limit,
                PAGE_BYTES,
                consistency,
            )
            .await?;
        if ix.fetch {
            page.items = index_reads::fetch_items(api, &d, page.items, consistency).await?;
        }
        return Ok(respond(page, table, &params, Some(&ix)));
    }
    let start = start_key(req, &d.key_schema)?;
    let page = api
        .engine()
        .scan(
            table,
            segment,
            start.as_ref(),
            params.limit,
            PAGE_BYTES,
            consistency,
        )
        .await?;
    Ok(respond(page, table, &params, None))
}

/// Most keys one BatchGetItem may ask for, and most bytes it returns.
const MAX_BATCH_KEYS: usize = 100;
const MAX_BATCH_BYTES: usize = 16 << 20;

pub async fn batch_get(api: &Api, req: &Req<'_>) -> ApiResult<Json> {
    let tables = req
        .obj("RequestItems")?
        .ok_or_else(|| missing("RequestItems"))?;
    let mode = capacity_mode(req)?;
    if tables.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    struct Plan<'a> {
        table: String,
        spec: &'a Map<String, Json>,
        keys: Vec<(Json, ItemKey)>,
        proj: Option<Vec<DocPath>>,
        strong: bool,
    }
    let mut plans = Vec::new();
    let mut total = 0;
    for (table, spec) in tables {
        let spec = spec
            .as_object()
            .ok_or_else(|| ApiError::serialization("RequestItems values must be objects"))?;
        let r = Req(spec);
        let ph = placeholders(&r, &["ProjectionExpression"])?;
        let proj = projection(&r, &ph)?;
        ph.check_all_used()?;
        let d = descriptor(api, table).await?;
        let raw = r.arr("Keys")?.ok_or_else(|| missing("Keys"))?;
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        for k in raw {
            let key = key_param(&d.key_schema, k)?;
            if !seen.insert(key.clone()) {
                return Err(ApiError::validation(
                    "Provided list of item keys contains duplicates",
                ));
            }
            keys.push((k.clone(), key));
        }
        total += keys.len();
        plans.push(Plan {
            table: table.clone(),
            spec,
            keys,
            proj,
            strong: r.bool("ConsistentRead")?.unwrap_or(false),
        });
    }
    if total > MAX_BATCH_KEYS {
        return Err(ApiError::validation(
            "Too many items requested for the BatchGetItem call",
        ));
    }
    let mut responses = Map::new();
    let mut unprocessed = Map::new();
    let mut bytes = 0;
    let mut capacity = Vec::new();
    for plan in &plans {
        let consistency = if plan.strong {
            Consistency::Strong
        } else {
            Consistency::Eventual
        };
        let fetched = futures::future::join_all(
            plan.keys
                .iter()
                .map(|(_, k)| api.engine().get(&plan.table, k, consistency)),
        )
        .await;
        let mut found = Vec::new();
        let mut left = Vec::new();
        let mut read = 0.0;
        for ((raw, _), res) in plan.keys.iter().zip(fetched) {
            match res {
                Ok(Some(item)) if bytes < MAX_BATCH_BYTES => {
                    let size = item_size(&item);
                    bytes += size;
                    read += read_units(size, plan.strong);
                    let item: Item = match &plan.proj {
                        Some(p) => expr::project(&item, p),
                        None => (*item).clone(),
                    };
                    found.push(item_to_json(&item));
                }
                Ok(None) => read += read_units(0, plan.strong),
                Ok(Some(_)) => left.push(raw.clone()),
                Err(e) if e.is_retryable() => left.push(raw.clone()),
                Err(e) => return Err(e.into()),
            }
        }
        responses.insert(plan.table.clone(), Json::Array(found));
        if !left.is_empty() {
            let mut spec = plan.spec.clone();
            spec.insert("Keys".into(), Json::Array(left));
            unprocessed.insert(plan.table.clone(), Json::Object(spec));
        }
        capacity.extend(consumed(&plan.table, read, mode));
    }
    let mut out = json!({ "Responses": responses, "UnprocessedKeys": unprocessed });
    if mode != ReturnCapacity::None {
        out["ConsumedCapacity"] = Json::Array(capacity);
    }
    Ok(out)
}

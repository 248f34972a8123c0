//! The fine-grained condition keys of item operations, as IAM gives them
//! for DynamoDB: `dynamodb:Attributes` (the top-level attribute names a
//! request reads, writes or names in an expression, key attributes
//! included), `dynamodb:Select` (Query and Scan: the request's Select, or
//! the one DynamoDB takes when it gives none) and `dynamodb:ReturnValues`.
//!
//! A request that returns whole items (a read with no projection, a write
//! with ReturnValues ALL_OLD or ALL_NEW, or ReturnValuesOnConditionCheckFailure
//! ALL_OLD) returns attributes no request names: its `dynamodb:Attributes` is
//! *unknown*, so a condition
//! on it never satisfies an Allow (and always a Deny), the way IAM refuses
//! such a read under an attribute-limited policy. Expressions are parsed
//! with the functions the operation parses them with; one that does not
//! parse also leaves the key unknown (the operation then refuses it).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::expr::{parse_condition, parse_update, update_paths, Cond, DocPath, PathElem};
use crate::items::{placeholders, projection};
use crate::req::Req;

pub(crate) const ATTRIBUTES: &str = "dynamodb:attributes";
const SELECT: &str = "dynamodb:select";
const RETURN_VALUES: &str = "dynamodb:returnvalues";

/// Condition keys, and the keys whose values cannot be known.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    pub known: BTreeMap<String, Vec<String>>,
    pub unknown: Vec<&'static str>,
}

fn top(p: &DocPath) -> Option<String> {
    match p.first() {
        Some(PathElem::Key(k)) => Some(k.clone()),
        _ => None,
    }
}

/// Collects names into `names`; `false` when something does not parse.
struct Names {
    names: BTreeSet<String>,
    complete: bool,
}

impl Names {
    fn new(key_names: &[String]) -> Self {
        Self {
            names: key_names.iter().cloned().collect(),
            complete: true,
        }
    }

    fn paths<'a>(&mut self, ps: impl IntoIterator<Item = &'a DocPath>) {
        self.names.extend(ps.into_iter().filter_map(top));
    }

    fn condition(&mut self, req: &Req<'_>, field: &str, ph: &crate::expr::Placeholders) {
        match req.0.get(field).and_then(Json::as_str) {
            None => {}
            Some(src) => match parse_condition(field, src, ph) {
                Ok(c) => self.paths(Cond::paths(&c)),
                Err(_) => self.complete = false,
            },
        }
    }

    /// Legacy members keyed by attribute name (Expected, AttributeUpdates,
    /// KeyConditions, QueryFilter, ScanFilter).
    fn legacy(&mut self, req: &Req<'_>, field: &str) {
        if let Some(m) = req.0.get(field).and_then(Json::as_object) {
            self.names.extend(m.keys().cloned());
        }
    }

    fn item(&mut self, item: Option<&Json>) {
        match item.and_then(Json::as_object) {
            Some(m) => self.names.extend(m.keys().cloned()),
            None => self.complete = false,
        }
    }
}

/// The fine-grained keys of `op` on a table with key attributes
/// `key_names`, for its request `req` (for a batch: one table's part).
pub(crate) fn item_keys(op: &str, req: &Req<'_>, key_names: &[String]) -> Keys {
    let mut out = Keys::default();
    let mut n = Names::new(key_names);
    let exprs: &[&str] = &[
        "ProjectionExpression",
        "ConditionExpression",
        "FilterExpression",
        "KeyConditionExpression",
        "UpdateExpression",
    ];
    let ph = match placeholders(req, exprs) {
        Ok(ph) => ph,
        Err(_) => {
            out.unknown.push(ATTRIBUTES);
            return out;
        }
    };
    let mut returns_whole_items = false;
    match op {
        "GetItem" | "BatchGetItem" | "Query" | "Scan" => {
            match projection(req, &ph) {
                Ok(Some(paths)) => n.paths(&paths),
                Ok(None) => returns_whole_items = true,
                Err(_) => n.complete = false,
            }
            for field in ["KeyConditionExpression", "FilterExpression"] {
                n.condition(req, field, &ph);
            }
            for field in ["KeyConditions", "QueryFilter", "ScanFilter"] {
                n.legacy(req, field);
            }
            if op == "Query" || op == "Scan" {
                let select = req
                    .0
                    .get("Select")
                    .and_then(Json::as_str)
                    .map(str::to_string);
                // DynamoDB's default: the projection's attributes, else an
                // index's projected attributes, else every attribute.
                let on_index = req.0.contains_key("IndexName");
                let select = select.unwrap_or_else(|| {
                    match (returns_whole_items, on_index) {
                        (false, _) => "SPECIFIC_ATTRIBUTES",
                        (true, true) => "ALL_PROJECTED_ATTRIBUTES",
                        (true, false) => "ALL_ATTRIBUTES",
                    }
                    .to_string()
                });
                // A count returns no attributes at all.
                if select == "COUNT" {
                    returns_whole_items = false;
                }
                out.known.insert(SELECT.into(), vec![select]);
            }
        }
        "PutItem" => n.item(req.0.get("Item")),
        "UpdateItem" => match req.0.get("UpdateExpression").and_then(Json::as_str) {
            Some(src) => match parse_update(src, &ph) {
                Ok(actions) => n.paths(update_paths(&actions)),
                Err(_) => n.complete = false,
            },
            None => n.legacy(req, "AttributeUpdates"),
        },
        _ => {}
    }
    if matches!(op, "PutItem" | "UpdateItem" | "DeleteItem") {
        n.condition(req, "ConditionExpression", &ph);
        n.legacy(req, "Expected");
        if let Some(rv) = req.0.get("ReturnValues").and_then(Json::as_str) {
            out.known.insert(RETURN_VALUES.into(), vec![rv.to_string()]);
            // The whole item, old or new, comes back: attributes nobody named.
            if rv == "ALL_OLD" || rv == "ALL_NEW" {
                returns_whole_items = true;
            }
        }
        // So does the item a failed condition was checked against.
        let on_failure = req.0.get("ReturnValuesOnConditionCheckFailure");
        if on_failure.and_then(Json::as_str) == Some("ALL_OLD") {
            returns_whole_items = true;
        }
    }
    if returns_whole_items || !n.complete {
        out.unknown.push(ATTRIBUTES);
    } else {
        out.known
            .insert(ATTRIBUTES.into(), n.names.into_iter().collect());
    }
    out
}

/// A batch write's part for one table: the attributes of every item it
/// puts and the keys it deletes.
pub(crate) fn batch_write_keys(writes: &[Json], key_names: &[String]) -> Keys {
    let mut n = Names::new(key_names);
    for w in writes {
        if let Some(item) = w.pointer("/PutRequest/Item") {
            n.item(Some(item));
        } else if w.pointer("/DeleteRequest/Key").is_none() {
            n.complete = false;
        }
    }
    let mut out = Keys::default();
    if n.complete {
        out.known
            .insert(ATTRIBUTES.into(), n.names.into_iter().collect());
    } else {
        out.unknown.push(ATTRIBUTES);
    }
    out
}

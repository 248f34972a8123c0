//! Runs a parsed statement as the JSON API operation it amounts to: a
//! SELECT with an equality on the partition key is a Query (the sort-key
//! condition it can use as its key condition, the rest as filter), any
//! other SELECT a Scan; INSERT a PutItem that must not find the item;
//! UPDATE an UpdateItem that must; DELETE a DeleteItem. The WHERE clause
//! of a write names the whole key by equality, and what else it says is
//! the write's condition. Everything else (validation, conditions,
//! capacity, streams, indexes) is the operation's own.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Map, Value as Json};
use strata_engine::{KeyAttribute, KeySchema, KeyType, TableDescriptor};

use super::parser::{Action, Expr, Select, Statement};
use super::render::Render;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::expr::{DocPath, PathElem};
use crate::req::Req;
use crate::{items, reads, Api};

/// What the request says besides the statement.
#[derive(Default, Clone)]
pub struct Options {
    pub consistent_read: Option<bool>,
    pub limit: Option<Json>,
    pub next_token: Option<String>,
    pub return_capacity: Option<Json>,
    pub return_on_failure: Option<Json>,
}

/// What a statement returned: its items, where a SELECT stopped, and
/// the capacity it consumed when asked.
pub struct Outcome {
    pub items: Vec<Json>,
    pub last_key: Option<Json>,
    pub capacity: Option<Json>,
}

pub async fn run(api: &Api, stmt: Statement, opts: &Options) -> ApiResult<Outcome> {
    run_statement(api, stmt, opts).await.map_err(|mut e| {
        // The expressions are Strata's rendering of the statement: name
        // what is wrong without naming them.
        if e.code == ErrorCode::Validation {
            for field in [
                "KeyConditionExpression",
                "FilterExpression",
                "ConditionExpression",
                "UpdateExpression",
            ] {
                if let Some(rest) = e.message.strip_prefix(&format!("Invalid {field}: ")) {
                    e.message = rest.to_string();
                    break;
                }
            }
        }
        e
    })
}

async fn run_statement(api: &Api, stmt: Statement, opts: &Options) -> ApiResult<Outcome> {
    match stmt {
        Statement::Select(s) => select(api, s, opts).await,
        Statement::Insert { table, item } => insert(api, &table, item, opts).await,
        Statement::Update {
            table,
            actions,
            filter,
            returning,
        } => update(api, &table, actions, filter, returning, opts).await,
        Statement::Delete {
            table,
            filter,
            returning,
        } => delete(api, &table, filter, returning, opts).await,
    }
}

/// The table a statement names, with DynamoDB's PartiQL words for a bad
/// or missing one.
pub async fn table(api: &Api, name: &str) -> ApiResult<TableDescriptor> {
    if strata_engine::catalog::validate_table_name(name).is_err() {
        return Err(ApiError::validation(
            "Table name should be within the length [3, 255] and only contain 'a-z', 'A-Z', '0-9', '-', '_', '.'.",
        ));
    }
    match api.engine().describe_table(name).await {
        Err(strata_engine::Error::TableNotFound(_)) => Err(ApiError::not_found(
            "Cannot do operations on a non-existent table",
        )),
        r => r.map_err(ApiError::from),
    }
}

/// Refuses a key value of another type than the schema's.
fn check_key_type(attr: &KeyAttribute, v: &Json) -> ApiResult<()> {
    let want = match attr.key_type {
        KeyType::S => "S",
        KeyType::N => "N",
        KeyType::B => "B",
    };
    if v.get(want).is_none() {
        return Err(ApiError::validation(format!(
            "Key attribute's data type should match its data type in table's schema: Key {}",
            attr.name
        )));
    }
    Ok(())
}

/// The top-level AND terms of a condition.
pub(super) fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::And(a, b) => {
            conjuncts(*a, out);
            conjuncts(*b, out);
        }
        e => out.push(e),
    }
}

fn and_all(mut terms: Vec<Expr>) -> Option<Expr> {
    let first = if terms.is_empty() {
        return None;
    } else {
        terms.remove(0)
    };
    Some(
        terms
            .into_iter()
            .fold(first, |a, b| Expr::And(Box::new(a), Box::new(b))),
    )
}

fn is_attr(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Path(p) if p.len() == 1 && p[0] == PathElem::Key(name.to_string()))
}

/// `attr = value` (either way round): the value.
pub(super) fn equality<'e>(e: &'e Expr, attr: &str) -> Option<&'e Json> {
    match e {
        Expr::Cmp(a, "=", b) => match (a.as_ref(), b.as_ref()) {
            (l, Expr::Value(v)) if is_attr(l, attr) => Some(v),
            (Expr::Value(v), r) if is_attr(r, attr) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

/// Takes the equality on `attr` out of `terms`.
fn take_equality(terms: &mut Vec<Expr>, attr: &str) -> Option<Json> {
    let at = terms.iter().position(|t| equality(t, attr).is_some())?;
    let t = terms.remove(at);
    equality(&t, attr).cloned()
}

/// Whether a condition reads any of `names` (top-level attributes).
fn mentions(e: &Expr, names: &[&str]) -> bool {
    match e {
        Expr::Path(p) => matches!(p.first(), Some(PathElem::Key(k)) if names.contains(&k.as_str())),
        Expr::Value(_) => false,
        Expr::Cmp(a, _, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Arith(a, _, b) => {
            mentions(a, names) || mentions(b, names)
        }
        Expr::Not(a) | Expr::Is { e: a, .. } => mentions(a, names),
        Expr::Between(a, b, c) => [a, b, c].iter().any(|x| mentions(x, names)),
        Expr::In(a, list) => mentions(a, names) || list.iter().any(|x| mentions(x, names)),
        Expr::Call(_, args) => args.iter().any(|x| mentions(x, names)),
    }
}

/// A term the sort key can serve as a Query's key condition.
fn sort_key_term(e: &Expr, attr: &str) -> bool {
    match e {
        Expr::Cmp(a, op, b) if *op != "<>" => {
            (is_attr(a, attr) && matches!(**b, Expr::Value(_)))
                || (is_attr(b, attr) && matches!(**a, Expr::Value(_)))
        }
        Expr::Between(a, lo, hi) => {
            is_attr(a, attr) && matches!(**lo, Expr::Value(_)) && matches!(**hi, Expr::Value(_))
        }
        Expr::Call(f, args) if f == "begins_with" => {
            args.len() == 2 && is_attr(&args[0], attr) && matches!(args[1], Expr::Value(_))
        }
        _ => false,
    }
}

/// The item's key named by equalities in a write's WHERE clause; the
/// rest of the clause stays in `terms`.
fn write_key(
    schema: &KeySchema,
    filter: Option<Expr>,
    terms: &mut Vec<Expr>,
) -> ApiResult<Map<String, Json>> {
    if let Some(f) = filter {
        conjuncts(f, terms);
    }
    let mut key = Map::new();
    for attr in schema.attributes() {
        let v = take_equality(terms, &attr.name).ok_or_else(|| {
            ApiError::validation(
                "Where clause does not contain a mandatory equality on all key attributes",
            )
        })?;
        check_key_type(attr, &v)?;
        key.insert(attr.name.clone(), v);
    }
    Ok(key)
}

fn base_request(table: &str, opts: &Options) -> Map<String, Json> {
    let mut req = Map::new();
    req.insert("TableName".into(), json!(table));
    if let Some(c) = &opts.return_capacity {
        req.insert("ReturnConsumedCapacity".into(), c.clone());
    }
    req
}

/// What a write returns: its RETURNING clause, and the item on a failed
/// condition when the request asks.
fn returns(req: &mut Map<String, Json>, returning: Option<&'static str>, opts: &Options) {
    if let Some(rv) = returning {
        req.insert("ReturnValues".into(), json!(rv));
    }
    if let Some(f) = &opts.return_on_failure {
        req.insert("ReturnValuesOnConditionCheckFailure".into(), f.clone());
    }
}

fn write_outcome(resp: Json) -> Outcome {
    Outcome {
        items: resp.get("Attributes").cloned().into_iter().collect(),
        last_key: None,
        capacity: resp.get("ConsumedCapacity").cloned(),
    }
}

async fn select(api: &Api, s: Select, opts: &Options) -> ApiResult<Outcome> {
    let desc = table(api, &s.table).await?;
    let schema = match &s.index {
        Some(ix) => match desc.index(ix) {
            Some(def) => def.key_schema.clone(),
            None => {
                return Err(ApiError::validation(format!(
                    "The table does not have the specified index: {ix}"
                )))
            }
        },
        None => desc.key_schema.clone(),
    };
    let key_names: Vec<&str> = schema.attributes().map(|a| a.name.as_str()).collect();
    if let Some((path, _)) = &s.order {
        let name = match path.as_slice() {
            [PathElem::Key(k)] if key_names.contains(&k.as_str()) => None,
            _ => Some(crate::expr::show_path(path)),
        };
        if let Some(name) = name {
            let name = name.trim_matches(['[', ']']).to_string();
            return Err(ApiError::validation(format!(
                "Variable reference {name} in ORDER BY clause must be part of the primary key"
            )));
        }
    }

    let mut terms = Vec::new();
    if let Some(f) = s.filter {
        conjuncts(f, &mut terms);
    }
    let mut r = Render::default();
    let mut req = base_request(&s.table, opts);
    if let Some(ix) = &s.index {
        req.insert("IndexName".into(), json!(ix));
    }
    // A Query needs the partition key by equality, and its filter may not
    // read key attributes: then it is a Scan (the same items, more read).
    let hash_at = terms
        .iter()
        .position(|t| equality(t, &schema.hash.name).is_some());
    let query = hash_at.is_some_and(|at| {
        let mut rest: Vec<&Expr> = terms.iter().collect();
        rest.remove(at);
        let sort = schema.range.as_ref();
        if let Some(sk) = sort {
            if let Some(i) = rest.iter().position(|t| sort_key_term(t, &sk.name)) {
                rest.remove(i);
            }
        }
        if s.order.is_some() && rest.iter().any(|t| mentions(t, &key_names)) {
            return false;
        }
        !rest.iter().any(|t| mentions(t, &key_names))
    });
    let op = if query {
        let hash = take_equality(&mut terms, &schema.hash.name).unwrap_or(Json::Null);
        check_key_type(&schema.hash, &hash)?;
        let mut key_cond = format!(
            "{} = {}",
            r.path(&vec![PathElem::Key(schema.hash.name.clone())]),
            r.value(&hash)
        );
        if let Some(sk) = &schema.range {
            if let Some(i) = terms.iter().position(|t| sort_key_term(t, &sk.name)) {
                let t = terms.remove(i);
                let t = match t {
                    // The key condition wants the attribute first.
                    Expr::Cmp(a, op, b) if !is_attr(&a, &sk.name) => Expr::Cmp(b, flip(op), a),
                    t => t,
                };
                key_cond = format!("{key_cond} AND {}", r.condition(&t)?);
            }
        }
        req.insert("KeyConditionExpression".into(), json!(key_cond));
        if let Some((_, true)) = s.order {
            req.insert("ScanIndexForward".into(), json!(false));
        }
        "Query"
    } else {
        if s.order.is_some() {
            return Err(ApiError::validation(
                "ORDER BY needs an equality on the partition key, and at most one condition on \
                 the sort key, in the WHERE clause",
            ));
        }
        "Scan"
    };
    if let Some(filter) = and_all(terms) {
        req.insert("FilterExpression".into(), json!(r.condition(&filter)?));
    }
    r.finish(&mut req);
    if let Some(c) = opts.consistent_read {
        req.insert("ConsistentRead".into(), json!(c));
    }
    if let Some(l) = &opts.limit {
        req.insert("Limit".into(), l.clone());
    }
    if let Some(token) = &opts.next_token {
        req.insert("ExclusiveStartKey".into(), decode_token(token)?);
    }
    let resp = if op == "Query" {
        reads::query(api, &Req(&req)).await?
    } else {
        reads::scan(api, &Req(&req)).await?
    };
    let items = resp
        .get("Items")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let items = match &s.projection {
        None => items,
        Some(paths) => items.iter().map(|i| project(i, paths)).collect(),
    };
    Ok(Outcome {
        items,
        last_key: resp.get("LastEvaluatedKey").cloned(),
        capacity: resp.get("ConsumedCapacity").cloned(),
    })
}

fn flip(op: &'static str) -> &'static str {
    match op {
        "<" => ">",
        "<=" => ">=",
        ">" => "<",
        ">=" => "<=",
        op => op,
    }
}

/// A projected item as DynamoDB's PartiQL names its attributes: each path
/// under its last name, with the list indexes after it (`m.x` is `x`,
/// `l[1]` is `l[1]`).
fn project(item: &Json, paths: &[DocPath]) -> Json {
    let mut out = Map::new();
    for path in paths {
        let mut v = Some(item);
        for (i, e) in path.iter().enumerate() {
            v = match e {
                PathElem::Key(k) if i == 0 => v.and_then(|v| v.get(k)),
                PathElem::Key(k) => v.and_then(|v| v.get("M")).and_then(|m| m.get(k)),
                PathElem::Index(n) => v.and_then(|v| v.get("L")).and_then(|l| l.get(*n)),
            };
        }
        let Some(v) = v else { continue };
        let last = path
            .iter()
            .rposition(|e| matches!(e, PathElem::Key(_)))
            .unwrap_or(0);
        let mut name = String::new();
        for e in &path[last..] {
            match e {
                PathElem::Key(k) => name.push_str(k),
                PathElem::Index(n) => name.push_str(&format!("[{n}]")),
            }
        }
        out.insert(name, v.clone());
    }
    Json::Object(out)
}

pub fn encode_token(last_key: &Json) -> String {
    B64.encode(json!({ "k": last_key }).to_string())
}

fn decode_token(token: &str) -> ApiResult<Json> {
    B64.decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
        .and_then(|j| j.get("k").filter(|k| k.is_object()).cloned())
        .ok_or_else(|| ApiError::validation("Invalid NextToken"))
}

async fn insert(api: &Api, name: &str, item: Json, opts: &Options) -> ApiResult<Outcome> {
    let desc = table(api, name).await?;
    for attr in desc.key_schema.attributes() {
        let v = item["M"].get(&attr.name).ok_or_else(|| {
            ApiError::validation(format!(
                "Key attribute should be present in the item: Key {}",
                attr.name
            ))
        })?;
        check_key_type(attr, v)?;
    }
    let mut req = base_request(name, opts);
    req.insert("Item".into(), item["M"].clone());
    req.insert(
        "ConditionExpression".into(),
        json!("attribute_not_exists(#k)"),
    );
    req.insert(
        "ExpressionAttributeNames".into(),
        json!({ "#k": desc.key_schema.hash.name }),
    );
    match items::put(api, &Req(&req)).await {
        Err(e) if e.code == ErrorCode::ConditionalCheckFailed => Err(ApiError::new(
            ErrorCode::DuplicateItem,
            "Duplicate primary key exists in table",
        )),
        r => r.map(write_outcome),
    }
}

async fn update(
    api: &Api,
    name: &str,
    actions: Vec<Action>,
    filter: Option<Expr>,
    returning: Option<&'static str>,
    opts: &Options,
) -> ApiResult<Outcome> {
    let desc = table(api, name).await?;
    let mut terms = Vec::new();
    let key = write_key(&desc.key_schema, filter, &mut terms)?;
    let mut r = Render::default();
    let (mut set, mut remove, mut add, mut delete) = (vec![], vec![], vec![], vec![]);
    for a in &actions {
        match a {
            Action::Set(path, Expr::Call(f, args)) if f == "set_add" || f == "set_delete" => {
                let [Expr::Path(p), Expr::Value(v)] = args.as_slice() else {
                    return Err(ApiError::validation(format!(
                        "{f} takes the set's path and a set value"
                    )));
                };
                if p != path {
                    return Err(ApiError::validation(format!(
                        "{f} must name the attribute it sets: SET a = {f}(a, <<…>>)"
                    )));
                }
                let clause = format!("{} {}", r.path(path), r.value(v));
                if f == "set_add" {
                    &mut add
                } else {
                    &mut delete
                }
                .push(clause);
            }
            Action::Set(path, value) => {
                let target = r.path(path);
                set.push(format!("{target} = {}", r.set_value(value)?));
            }
            Action::Remove(path) => remove.push(r.path(path)),
        }
    }
    let mut expr = Vec::new();
    for (word, clauses) in [
        ("SET", set),
        ("REMOVE", remove),
        ("ADD", add),
        ("DELETE", delete),
    ] {
        if !clauses.is_empty() {
            expr.push(format!("{word} {}", clauses.join(", ")));
        }
    }
    // UPDATE changes an item that exists, and only if the rest of the
    // WHERE clause holds for it.
    let exists = format!(
        "attribute_exists({})",
        r.path(&vec![PathElem::Key(desc.key_schema.hash.name.clone())])
    );
    let cond = match and_all(terms) {
        Some(rest) => {
            let rest = r.condition(&rest)?;
            format!("{exists} AND ({rest})")
        }
        None => exists,
    };
    let mut req = base_request(name, opts);
    req.insert("Key".into(), Json::Object(key));
    req.insert("UpdateExpression".into(), json!(expr.join(" ")));
    req.insert("ConditionExpression".into(), json!(cond));
    returns(&mut req, returning, opts);
    r.finish(&mut req);
    items::update(api, &Req(&req)).await.map(write_outcome)
}

async fn delete(
    api: &Api,
    name: &str,
    filter: Option<Expr>,
    returning: Option<&'static str>,
    opts: &Options,
) -> ApiResult<Outcome> {
    let desc = table(api, name).await?;
    let mut terms = Vec::new();
    let key = write_key(&desc.key_schema, filter, &mut terms)?;
    let mut req = base_request(name, opts);
    req.insert("Key".into(), Json::Object(key));
    let mut r = Render::default();
    if let Some(rest) = and_all(terms) {
        req.insert("ConditionExpression".into(), json!(r.condition(&rest)?));
    }
    returns(&mut req, returning, opts);
    r.finish(&mut req);
    items::delete(api, &Req(&req)).await.map(write_outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_as_dynamodb_names_paths() {
        let item = json!({"a": {"S": "x"}, "m": {"M": {"x": {"S": "y"}}},
            "l": {"L": [{"N": "1"}, {"N": "2"}]}});
        let paths = vec![
            vec![PathElem::Key("a".into())],
            vec![PathElem::Key("m".into()), PathElem::Key("x".into())],
            vec![PathElem::Key("l".into()), PathElem::Index(1)],
            vec![PathElem::Key("nope".into())],
        ];
        assert_eq!(
            project(&item, &paths),
            json!({"a": {"S": "x"}, "x": {"S": "y"}, "l[1]": {"N": "2"}})
        );
    }

    #[test]
    fn next_tokens_round_trip_and_refuse_garbage() {
        let k = json!({"pk": {"S": "a"}});
        assert_eq!(decode_token(&encode_token(&k)).unwrap(), k);
        assert_eq!(
            decode_token("garbage").unwrap_err().message,
            "Invalid NextToken"
        );
    }
}

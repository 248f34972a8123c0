//! The pre-expression parameters real applications still send — Expected,
//! QueryFilter, ScanFilter, KeyConditions, AttributesToGet, AttributeUpdates
//! and ConditionalOperator — translated into the same expression trees.

use serde_json::{Map, Value as Json};
use strata_engine::Value;

use crate::choices::ConditionalOperator;
use crate::error::{ApiError, ApiResult};
use crate::expr::{
    long_type_name, CmpOp, Cond, DocPath, Operand, PathElem, SetValue, UpdateAction,
};
use crate::json::value_from_json;
use crate::req::Req;

fn path(name: &str) -> DocPath {
    vec![PathElem::Key(name.to_string())]
}

fn attr(name: &str) -> Operand {
    Operand::Path(path(name))
}

fn values(spec: &Map<String, Json>) -> ApiResult<Vec<Value>> {
    match spec.get("AttributeValueList") {
        // Expected may give the one value as `Value`.
        None | Some(Json::Null) => match spec.get("Value").filter(|v| !v.is_null()) {
            Some(v) => Ok(vec![value_from_json(v)?]),
            None => Ok(Vec::new()),
        },
        Some(Json::Array(a)) => a.iter().map(value_from_json).collect(),
        Some(_) => Err(ApiError::serialization("AttributeValueList must be a list")),
    }
}

/// One `{ComparisonOperator, AttributeValueList}` condition on attribute `name`.
pub fn comparison(name: &str, spec: &Map<String, Json>) -> ApiResult<Cond> {
    let op = spec
        .get("ComparisonOperator")
        .and_then(Json::as_str)
        .ok_or_else(|| {
            ApiError::validation(
                "One or more parameter values were invalid: ComparisonOperator is required",
            )
        })?;
    let vals = values(spec)?;
    let want = |n: usize| -> ApiResult<()> {
        if vals.len() != n {
            return Err(ApiError::validation(format!(
                "One or more parameter values were invalid: Invalid number of argument(s) for the {op} ComparisonOperator"
            )));
        }
        Ok(())
    };
    let v = |i: usize| Operand::Value(vals[i].clone());
    let cmp = |o: CmpOp| Cond::Cmp(attr(name), o, v(0));
    // The number of values first, then their types (DynamoDB Local's order).
    let cond = match op {
        "EQ" | "NE" | "LE" | "LT" | "GE" | "GT" => {
            want(1)?;
            cmp(match op {
                "EQ" => CmpOp::Eq,
                "NE" => CmpOp::Ne,
                "LE" => CmpOp::Le,
                "LT" => CmpOp::Lt,
                "GE" => CmpOp::Ge,
                _ => CmpOp::Gt,
            })
        }
        "NOT_NULL" => {
            want(0)?;
            Cond::Exists(path(name))
        }
        "NULL" => {
            want(0)?;
            Cond::NotExists(path(name))
        }
        "CONTAINS" => {
            want(1)?;
            Cond::Contains(attr(name), v(0))
        }
        "NOT_CONTAINS" => {
            want(1)?;
            Cond::And(Box::new(Cond::Exists(path(name))), Box::new(Cond::Not(Box::new(Cond::Contains(attr(name), v(0))))))
        }
        "BEGINS_WITH" => {
            want(1)?;
            Cond::BeginsWith(attr(name), v(0))
        }
        "IN" => {
            if vals.is_empty() {
                return Err(ApiError::validation(
                    "One or more parameter values were invalid: Invalid number of argument(s) for the IN ComparisonOperator",
                ));
            }
            Cond::In(attr(name), (0..vals.len()).map(v).collect())
        }
        "BETWEEN" => {
            want(2)?;
            if crate::expr::compare(&vals[0], &vals[1]).is_some_and(|o| o.is_gt()) {
                return Err(ApiError::validation(
                    "The BETWEEN condition was provided a range where the lower bound is greater than the upper bound",
                ));
            }
            Cond::Between(attr(name), v(0), v(1))
        }
        other => {
            return Err(ApiError::validation(format!(
                "1 validation error detected: Value '{other}' at 'comparisonOperator' failed to satisfy constraint: Member must satisfy enum value set"
            )))
        }
    };
    check_operand_types(op, &vals)?;
    Ok(cond)
}

/// The value types each ComparisonOperator takes (DynamoDB Local's
/// checks, which DynamoDB documents): ordering and BETWEEN, IN and
/// BEGINS_WITH only scalars, CONTAINS no documents or sets; IN and BETWEEN
/// values of one type.
fn check_operand_types(op: &str, vals: &[Value]) -> ApiResult<()> {
    let scalar = |v: &Value| matches!(v, Value::S(_) | Value::N(_) | Value::B(_));
    let allowed = |v: &Value| match op {
        "LE" | "LT" | "GE" | "GT" | "BETWEEN" | "IN" => scalar(v),
        "BEGINS_WITH" => matches!(v, Value::S(_) | Value::B(_)),
        "CONTAINS" | "NOT_CONTAINS" => scalar(v) || matches!(v, Value::Bool(_) | Value::Null),
        _ => true,
    };
    if let Some(v) = vals.iter().find(|v| !allowed(v)) {
        return Err(ApiError::validation(format!(
            "One or more parameter values were invalid: ComparisonOperator {op} is not valid for {} AttributeValue type",
            v.type_name()
        )));
    }
    if matches!(op, "IN" | "BETWEEN")
        && vals
            .windows(2)
            .any(|w| w[0].type_name() != w[1].type_name())
    {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: AttributeValues inside AttributeValueList must be of same type",
        ));
    }
    Ok(())
}

/// ConditionalOperator combines two or more conditions: DynamoDB refuses
/// it with fewer.
fn check_operator_use(req: &Req, entries: usize) -> ApiResult<()> {
    if req.has("ConditionalOperator") && entries < 2 {
        return Err(ApiError::validation(
            "ConditionalOperator can only be used when Filter or Expected has two or more elements",
        ));
    }
    Ok(())
}

fn combine(conds: Vec<Cond>, operator: ConditionalOperator) -> Option<Cond> {
    let or = operator == ConditionalOperator::Or;
    conds.into_iter().reduce(|a, b| {
        if or {
            Cond::Or(Box::new(a), Box::new(b))
        } else {
            Cond::And(Box::new(a), Box::new(b))
        }
    })
}

fn conditional_operator(req: &Req) -> ApiResult<ConditionalOperator> {
    Ok(req.choice()?.unwrap_or(ConditionalOperator::And))
}

/// `Expected` as a condition.
pub fn expected(req: &Req) -> ApiResult<Option<Cond>> {
    let Some(m) = req.obj("Expected")? else {
        return Ok(None);
    };
    let mut conds = Vec::new();
    for (name, spec) in m {
        let spec = spec
            .as_object()
            .ok_or_else(|| ApiError::serialization("Expected entries must be objects"))?;
        if spec.contains_key("ComparisonOperator") {
            if spec.contains_key("Exists") {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Exists and ComparisonOperator cannot be used together for Attribute: {name}"
                )));
            }
            let op = spec
                .get("ComparisonOperator")
                .and_then(Json::as_str)
                .unwrap_or_default();
            let takes_values = !matches!(op, "NULL" | "NOT_NULL");
            if takes_values
                && !spec.contains_key("AttributeValueList")
                && !spec.contains_key("Value")
            {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Value or AttributeValueList must be used with ComparisonOperator: {op} for Attribute: {name}"
                )));
            }
            conds.push(comparison(name, spec)?);
            continue;
        }
        let exists = spec.get("Exists").and_then(Json::as_bool);
        let value = spec
            .get("Value")
            .filter(|v| !v.is_null())
            .map(value_from_json)
            .transpose()?;
        conds.push(match (exists, value) {
            (Some(false), None) => Cond::NotExists(path(name)),
            (Some(false), Some(_)) => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Value cannot be used when Exists is false for Attribute: {name}"
                )))
            }
            (_, Some(v)) => Cond::Cmp(attr(name), CmpOp::Eq, Operand::Value(v)),
            (_, None) => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: Value must be provided when Exists is true for Attribute: {name}"
                )))
            }
        });
    }
    check_operator_use(req, conds.len())?;
    Ok(combine(conds, conditional_operator(req)?))
}

/// QueryFilter / ScanFilter (and KeyConditions, with AND) as a condition.
pub fn filter(req: &Req, field: &str) -> ApiResult<Option<Cond>> {
    let Some(m) = req.obj(field)? else {
        return Ok(None);
    };
    let mut conds = Vec::new();
    for (name, spec) in m {
        let spec = spec
            .as_object()
            .ok_or_else(|| ApiError::serialization(format!("{field} entries must be objects")))?;
        conds.push(comparison(name, spec)?);
    }
    let op = if field == "KeyConditions" {
        ConditionalOperator::And
    } else {
        check_operator_use(req, conds.len())?;
        conditional_operator(req)?
    };
    Ok(combine(conds, op))
}

/// AttributesToGet as projection paths.
pub fn attributes_to_get(req: &Req) -> ApiResult<Option<Vec<DocPath>>> {
    let Some(a) = req.arr("AttributesToGet")? else {
        return Ok(None);
    };
    // DynamoDB's constraint (DynamoDB Local reads an empty list as none).
    if a.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    let names: Vec<&str> = a
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| ApiError::serialization("AttributesToGet must be a list of strings"))
        })
        .collect::<ApiResult<_>>()?;
    let mut sorted = names.clone();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(ApiError::validation(
            "One or more parameter values were invalid: Duplicate value in attribute name",
        ));
    }
    Ok(Some(names.into_iter().map(path).collect()))
}

/// AttributeUpdates as update actions.
pub fn attribute_updates(req: &Req) -> ApiResult<Option<Vec<UpdateAction>>> {
    let Some(m) = req.obj("AttributeUpdates")? else {
        return Ok(None);
    };
    let mut actions = Vec::new();
    for (name, spec) in m {
        let spec = spec
            .as_object()
            .ok_or_else(|| ApiError::serialization("AttributeUpdates entries must be objects"))?;
        let action = spec.get("Action").and_then(Json::as_str).unwrap_or("PUT");
        let value = spec
            .get("Value")
            .filter(|v| !v.is_null())
            .map(value_from_json)
            .transpose()?;
        actions.push(match (action, value) {
            ("PUT", Some(v)) => UpdateAction::Set(path(name), SetValue::Operand(Operand::Value(v))),
            ("DELETE", None) => UpdateAction::Remove(path(name)),
            ("DELETE", Some(v @ (Value::SS(_) | Value::NS(_) | Value::BS(_)))) => UpdateAction::Delete(path(name), v),
            ("ADD", Some(Value::L(l))) => UpdateAction::Set(
                path(name),
                SetValue::ListAppend(
                    Box::new(SetValue::IfNotExists(path(name), Box::new(SetValue::Operand(Operand::Value(Value::L(vec![])))))),
                    Box::new(SetValue::Operand(Operand::Value(Value::L(l)))),
                ),
            ),
            ("ADD", Some(v @ (Value::N(_) | Value::SS(_) | Value::NS(_) | Value::BS(_)))) => UpdateAction::Add(path(name), v),
            ("PUT", None) => {
                return Err(ApiError::validation(
                    "One or more parameter values were invalid: Only DELETE action is allowed when no attribute value is specified",
                ))
            }
            ("ADD", Some(v)) => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: ADD action is not supported for the type {}",
                    long_type_name(&v)
                )))
            }
            ("DELETE", Some(v)) => {
                return Err(ApiError::validation(format!(
                    "One or more parameter values were invalid: DELETE action with value is not supported for the type {}",
                    long_type_name(&v)
                )))
            }
            (a, _) => {
                return Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{a}' at 'attributeUpdates.{name}.member.action' failed to satisfy constraint: Member must satisfy enum value set: [ADD, PUT, DELETE]"
                )))
            }
        });
    }
    Ok(Some(actions))
}

/// ConditionalOperator combines the entries of `partner` (Expected, or a
/// Query/Scan filter): DynamoDB refuses it alone.
pub fn refuse_lone_operator(req: &Req, partner: &str) -> ApiResult<()> {
    if req.has("ConditionalOperator") && !req.has(partner) {
        return Err(ApiError::validation(
            "ConditionalOperator cannot be used without Filter or Expected",
        ));
    }
    Ok(())
}

/// DynamoDB refuses a request that mixes the two styles within one of
/// `groups` (legacy members, expression members): a Query may take
/// KeyConditions with a FilterExpression, not a QueryFilter with one.
pub fn refuse_mixing(req: &Req, groups: &[(&[&str], &[&str])]) -> ApiResult<()> {
    for (legacy, modern) in groups {
        let l: Vec<&str> = legacy.iter().copied().filter(|k| req.has(k)).collect();
        let m: Vec<&str> = modern.iter().copied().filter(|k| req.has(k)).collect();
        if !l.is_empty() && !m.is_empty() {
            return Err(ApiError::validation(format!(
                "Can not use both expression and non-expression parameters in the same request: Non-expression parameters: {{{}}} Expression parameters: {{{}}}",
                l.join(", "),
                m.join(", ")
            )));
        }
    }
    Ok(())
}

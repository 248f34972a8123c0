//! DynamoDB's JSON for attribute values (`{"S": "x"}`, `{"N": "1"}`, …),
//! checked the way DynamoDB checks it.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{Map, Value as Json};
use strata_engine::value::{nesting_depth, MAX_NESTING};
use strata_engine::{Item, Number, Value};

use crate::error::{ApiError, ApiResult};

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError::validation(format!(
        "One or more parameter values were invalid: {}",
        m.into()
    ))
}

fn number(s: &str) -> ApiResult<Number> {
    if s.trim() != s {
        return Err(ApiError::validation(
            "A value provided cannot be converted into a number",
        ));
    }
    Number::parse(s).map_err(|e| ApiError::validation(e.to_string()))
}

fn string(v: &Json, what: &str) -> ApiResult<String> {
    v.as_str().map(str::to_string).ok_or_else(|| {
        ApiError::serialization(format!(
            "Unexpected value type in payload: {what} must be a string"
        ))
    })
}

fn binary(v: &Json) -> ApiResult<Vec<u8>> {
    let s = string(v, "B")?;
    B64.decode(s.as_bytes())
        .map_err(|e| ApiError::serialization(format!("Base64 encoded value is invalid: {e}")))
}

fn array<'a>(v: &'a Json, what: &str) -> ApiResult<&'a Vec<Json>> {
    v.as_array().ok_or_else(|| {
        ApiError::serialization(format!(
            "Unexpected value type in payload: {what} must be a list"
        ))
    })
}

/// One attribute value from DynamoDB JSON.
pub fn value_from_json(v: &Json) -> ApiResult<Value> {
    let obj = v.as_object().ok_or_else(|| {
        ApiError::serialization(
            "Unexpected value type in payload: an AttributeValue must be an object",
        )
    })?;
    // Members that name no type are ignored, as DynamoDB's framework
    // ignores unknown members: `{"Q": …}` is an empty AttributeValue.
    let mut entries = obj.iter().filter(|(k, _)| TYPES.contains(&k.as_str()));
    let (kind, inner) = match (entries.next(), entries.next()) {
        (Some(e), None) => e,
        (None, _) => return Err(ApiError::validation(EMPTY_VALUE)),
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
            ))
        }
    };
    Ok(match kind.as_str() {
        "S" => Value::S(string(inner, "S")?),
        "N" => Value::N(number(&string(inner, "N")?)?),
        "B" => Value::B(binary(inner)?),
        "BOOL" => Value::Bool(inner.as_bool().ok_or_else(|| {
            ApiError::serialization("Unexpected value type in payload: BOOL must be a boolean")
        })?),
        "NULL" => match inner.as_bool() {
            Some(true) => Value::Null,
            _ => {
                return Err(invalid(
                    "Null attribute value types must have the value of true",
                ))
            }
        },
        "M" => {
            let m = inner.as_object().ok_or_else(|| {
                ApiError::serialization("Unexpected value type in payload: M must be an object")
            })?;
            Value::M(map_from_json(m)?)
        }
        "L" => Value::L(
            array(inner, "L")?
                .iter()
                .map(value_from_json)
                .collect::<ApiResult<_>>()?,
        ),
        "SS" => {
            let v: Vec<String> = array(inner, "SS")?
                .iter()
                .map(|s| string(s, "SS"))
                .collect::<ApiResult<_>>()?;
            check_set(&v, "string", |s| s.clone())?;
            Value::SS(v)
        }
        "NS" => {
            let v: Vec<Number> = array(inner, "NS")?
                .iter()
                .map(|s| string(s, "NS").and_then(|s| number(&s)))
                .collect::<ApiResult<_>>()?;
            check_set(&v, "number", |n| n.to_string())?;
            Value::NS(v)
        }
        "BS" => {
            let v: Vec<Vec<u8>> = array(inner, "BS")?
                .iter()
                .map(binary)
                .collect::<ApiResult<_>>()?;
            check_set(&v, "binary", |b| B64.encode(b))?;
            Value::BS(v)
        }
        // (Not reached: `entries` holds only TYPES.)
        _ => return Err(ApiError::validation(EMPTY_VALUE)),
    })
}

const EMPTY_VALUE: &str =
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";

/// The AttributeValue members that name a type.
const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];

fn check_set<T: PartialEq + Ord + Clone>(
    v: &[T],
    kind: &str,
    show: impl Fn(&T) -> String,
) -> ApiResult<()> {
    if v.is_empty() {
        return Err(invalid(format!("An {kind} set  may not be empty")));
    }
    let mut sorted = v.to_vec();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        let shown: Vec<String> = v.iter().map(show).collect();
        return Err(invalid(format!(
            "Input collection [{}] contains duplicates",
            crate::error::bounded(&shown.join(", "))
        )));
    }
    Ok(())
}

pub fn map_from_json(m: &Map<String, Json>) -> ApiResult<BTreeMap<String, Value>> {
    m.iter()
        .map(|(k, v)| {
            check_name_size(k)?;
            Ok((k.clone(), value_from_json(v)?))
        })
        .collect()
}

/// Longest attribute name (or map key) DynamoDB stores, in bytes.
pub const MAX_NAME_BYTES: usize = 65_535;

/// Refuses an attribute name or map key over 65,535 bytes, in the
/// service's words.
pub fn check_name_size(name: &str) -> ApiResult<()> {
    if name.len() > MAX_NAME_BYTES {
        return Err(ApiError::validation(
            "1 validation error detected: Attribute name is too large, must be less than 65536 bytes",
        ));
    }
    Ok(())
}

/// An item from DynamoDB JSON, with DynamoDB's nesting limit.
pub fn item_from_json(v: &Json) -> ApiResult<Item> {
    let m = v.as_object().ok_or_else(|| {
        ApiError::serialization("Unexpected value type in payload: an item must be an object")
    })?;
    let item = map_from_json(m)?;
    if nesting_depth(&item) > MAX_NESTING {
        return Err(ApiError::validation(
            "Nesting Levels have exceeded supported limits: Nesting levels of document attributes cannot exceed 32",
        ));
    }
    for name in item.keys() {
        if name.is_empty() {
            return Err(invalid(
                "An AttributeValue may not contain an empty attribute name",
            ));
        }
    }
    Ok(item)
}

pub fn value_to_json(v: &Value) -> Json {
    let mut o = Map::with_capacity(1);
    let (k, inner) = match v {
        Value::S(s) => ("S", Json::String(s.clone())),
        Value::N(n) => ("N", Json::String(n.to_string())),
        Value::B(b) => ("B", Json::String(B64.encode(b))),
        Value::Bool(b) => ("BOOL", Json::Bool(*b)),
        Value::Null => ("NULL", Json::Bool(true)),
        Value::M(m) => ("M", map_to_json(m)),
        Value::L(l) => ("L", Json::Array(l.iter().map(value_to_json).collect())),
        Value::SS(v) => (
            "SS",
            Json::Array(v.iter().map(|s| Json::String(s.clone())).collect()),
        ),
        Value::NS(v) => (
            "NS",
            Json::Array(v.iter().map(|n| Json::String(n.to_string())).collect()),
        ),
        Value::BS(v) => (
            "BS",
            Json::Array(v.iter().map(|b| Json::String(B64.encode(b))).collect()),
        ),
    };
    o.insert(k.to_string(), inner);
    Json::Object(o)
}

pub fn map_to_json(m: &BTreeMap<String, Value>) -> Json {
    Json::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), value_to_json(v)))
            .collect(),
    )
}

pub fn item_to_json(item: &Item) -> Json {
    map_to_json(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn round_trips_every_type() {
        let j = json!({
            "s": {"S": "x"}, "n": {"N": "1.50"}, "b": {"B": "AAE="}, "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"a": {"L": [{"N": "1"}, {"S": "y"}]}}},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "bs": {"BS": ["AA=="]}
        });
        let item = item_from_json(&j).unwrap();
        assert_eq!(item["n"], Value::N(Number::parse("1.5").unwrap()));
        let back = item_to_json(&item);
        assert_eq!(back["n"], json!({"N": "1.5"}));
        assert_eq!(item_from_json(&back).unwrap(), item);
    }

    #[test]
    fn rejects_what_dynamodb_rejects() {
        let bad = |j: Json| value_from_json(&j).unwrap_err();
        assert_eq!(bad(json!({})).code, ErrorCode::Validation);
        assert_eq!(bad(json!({"S": "a", "N": "1"})).code, ErrorCode::Validation);
        assert!(bad(json!({"SS": []})).message.contains("may not be empty"));
        assert!(bad(json!({"NS": ["1", "1.0"]}))
            .message
            .contains("duplicates"));
        assert!(bad(json!({"NULL": false})).message.contains("true"));
        assert_eq!(bad(json!({"N": "abc"})).code, ErrorCode::Validation);
        assert_eq!(bad(json!({"N": 5})).code, ErrorCode::Serialization);
        assert_eq!(bad(json!({"B": "!!"})).code, ErrorCode::Serialization);
        assert_eq!(bad(json!({"X": 1})).code, ErrorCode::Validation);
        assert_eq!(bad(json!({"N": " 4"})).code, ErrorCode::Validation);
        assert_eq!(
            value_from_json(&json!({"S": "a", "X": 1})).unwrap(),
            Value::S("a".into())
        );
        let mut deep = json!({"S": "x"});
        for _ in 0..33 {
            deep = json!({"L": [deep]});
        }
        assert!(item_from_json(&json!({"d": deep}))
            .unwrap_err()
            .message
            .contains("Nesting"));
    }
}

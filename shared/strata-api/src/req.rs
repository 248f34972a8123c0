//! Typed, validated access to the fields of a request body.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};
use strata_engine::{Item, Value};

use crate::choices::Choice;
use crate::error::{ApiError, ApiResult};
use crate::json::{item_from_json, value_from_json};

/// A request body (a JSON object).
pub struct Req<'a>(pub &'a Map<String, Json>);

fn wrong_type(field: &str, want: &str) -> ApiError {
    ApiError::serialization(format!(
        "Unexpected value type in payload: {field} must be {want}"
    ))
}

/// A member as DynamoDB's validation messages name it (`tableName`).
fn member_name(field: &str) -> String {
    let mut c = field.chars();
    c.next()
        .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// DynamoDB's message for a missing required member.
pub fn missing(field: &str) -> ApiError {
    ApiError::validation(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        member_name(field)
    ))
}

impl<'a> Req<'a> {
    pub fn has(&self, k: &str) -> bool {
        self.0.get(k).is_some_and(|v| !v.is_null())
    }

    pub fn get(&self, k: &str) -> Option<&'a Json> {
        self.0.get(k).filter(|v| !v.is_null())
    }

    pub fn str(&self, k: &str) -> ApiResult<Option<&'a str>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| wrong_type(k, "a string")),
        }
    }

    pub fn req_str(&self, k: &str) -> ApiResult<&'a str> {
        self.str(k)?.ok_or_else(|| missing(k))
    }

    pub fn bool(&self, k: &str) -> ApiResult<Option<bool>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| wrong_type(k, "a boolean")),
        }
    }

    /// A member DynamoDB's model types as Integer: 32 bits.
    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => {
                let n = v.as_i64().ok_or_else(|| wrong_type(k, "an integer"))?;
                if i32::try_from(n).is_err() {
                    return Err(ApiError::serialization(format!(
                        "Numeric value ({n}) out of range of int"
                    )));
                }
                Ok(Some(n))
            }
        }
    }

    pub fn obj(&self, k: &str) -> ApiResult<Option<&'a Map<String, Json>>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_object()
                .map(Some)
                .ok_or_else(|| wrong_type(k, "an object")),
        }
    }

    pub fn arr(&self, k: &str) -> ApiResult<Option<&'a Vec<Json>>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| wrong_type(k, "a list")),
        }
    }

    pub fn item(&self, k: &str) -> ApiResult<Option<Item>> {
        self.get(k).map(item_from_json).transpose()
    }

    /// ExpressionAttributeNames.
    pub fn names(&self) -> ApiResult<HashMap<String, String>> {
        let Some(m) = self.obj("ExpressionAttributeNames")? else {
            return Ok(HashMap::new());
        };
        m.iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .ok_or_else(|| wrong_type("ExpressionAttributeNames", "a map of strings"))?;
                if v.is_empty() {
                    return Err(ApiError::validation(format!(
                        "ExpressionAttributeNames contains invalid value: Empty attribute name for key {k}"
                    )));
                }
                crate::json::check_name_size(v)?;
                Ok((k.clone(), v.to_string()))
            })
            .collect()
    }

    /// ExpressionAttributeValues.
    pub fn values(&self) -> ApiResult<HashMap<String, Value>> {
        let Some(m) = self.obj("ExpressionAttributeValues")? else {
            return Ok(HashMap::new());
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), value_from_json(v)?)))
            .collect()
    }

    /// A field restricted to a set of values (DynamoDB's enum check),
    /// parsed into its type; None when absent.
    pub fn choice<T: Choice>(&self) -> ApiResult<Option<T>> {
        let Some(v) = self.str(T::FIELD)? else {
            return Ok(None);
        };
        match T::VALUES.iter().find(|(w, _)| *w == v) {
            Some((_, t)) => Ok(Some(*t)),
            None => {
                let allowed: Vec<&str> = T::VALUES.iter().map(|(w, _)| *w).collect();
                Err(ApiError::validation(format!(
                    "1 validation error detected: Value '{v}' at '{}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    member_name(T::FIELD),
                    allowed.join(", ")
                )))
            }
        }
    }
}

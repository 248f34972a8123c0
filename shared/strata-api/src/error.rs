//! DynamoDB-style errors: `{"__type": "<namespace>#<Code>", "message": …}`
//! with the HTTP status DynamoDB uses.

use serde_json::{json, Value as Json};
use strata_engine::Item;

use crate::json::item_to_json;

#[derive(Debug, Clone)]
pub struct ApiError {
    /// DynamoDB's error code, e.g. `ValidationException`.
    pub code: &'static str,
    pub message: String,
    pub status: u16,
    /// The item a failed condition was evaluated against, when the request
    /// asked for it (ReturnValuesOnConditionCheckFailure = ALL_OLD).
    pub item: Option<Item>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
            item: None,
        }
    }

    /// Any other DynamoDB error code.
    pub fn custom(code: &'static str, status: u16, m: impl Into<String>) -> Self {
        Self::new(code, status, m)
    }

    pub fn validation(m: impl Into<String>) -> Self {
        Self::new("ValidationException", 400, m)
    }

    pub fn serialization(m: impl Into<String>) -> Self {
        Self::new("SerializationException", 400, m)
    }

    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new("ResourceNotFoundException", 400, m)
    }

    pub fn in_use(m: impl Into<String>) -> Self {
        Self::new("ResourceInUseException", 400, m)
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            "UnknownOperationException",
            400,
            "An unknown operation was requested.",
        )
    }

    pub fn condition_failed(item: Option<Item>) -> Self {
        Self {
            item,
            ..Self::new(
                "ConditionalCheckFailedException",
                400,
                "The conditional request failed",
            )
        }
    }

    pub fn internal(m: impl Into<String>) -> Self {
        Self::new("InternalServerError", 500, m)
    }

    /// Retryable trouble with the object store behind the table.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new("ServiceUnavailable", 503, m)
    }

    pub fn limit_exceeded(m: impl Into<String>) -> Self {
        Self::new("LimitExceededException", 400, m)
    }

    /// The `__type` DynamoDB sends: validation and protocol errors come from
    /// the Coral framework, the rest from the DynamoDB service namespace.
    pub fn type_name(&self) -> String {
        let ns = match self.code {
            "ValidationException" => "com.amazon.coral.validate",
            "SerializationException" | "UnknownOperationException" | "InternalFailure" => {
                "com.amazon.coral.service"
            }
            _ => "com.amazonaws.dynamodb.v20120810",
        };
        format!("{ns}#{}", self.code)
    }

    pub fn body(&self) -> Json {
        let mut body = json!({ "__type": self.type_name(), "message": self.message });
        if let Some(item) = &self.item {
            body["Item"] = item_to_json(item);
        }
        body
    }
}

impl From<strata_engine::Error> for ApiError {
    fn from(e: strata_engine::Error) -> Self {
        use strata_engine::Error as E;
        match e {
            E::TableNotFound(_) => ApiError::not_found("Requested resource not found"),
            E::TableExists(t) => ApiError::in_use(format!("Table already exists: {t}")),
            E::Validation(m) => ApiError::validation(m),
            E::ConditionFailed { .. } => ApiError::condition_failed(None),
            E::Corrupt { path, reason } => {
                ApiError::internal(format!("corrupt object {path}: {reason}"))
            }
            e if e.is_retryable() => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

//! DynamoDB-style errors: `{"__type": "<namespace>#<Code>", "message": …}`
//! with the HTTP status DynamoDB uses.

use serde_json::{json, Value as Json};
use strata_engine::Item;

use crate::json::item_to_json;

/// Every error code Strata answers with: its name on the wire, its HTTP
/// status and its `__type` namespace are decided here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Validation,
    Serialization,
    UnknownOperation,
    ResourceNotFound,
    ResourceInUse,
    ConditionalCheckFailed,
    /// A resource of another account, or a request a user's policy does
    /// not allow.
    AccessDenied,
    /// SigV4 authentication (`strata serve --auth`): an unknown access key,
    /// a signature that does not match (or a date outside the window), no
    /// authentication at all, a malformed Authorization header.
    UnrecognizedClient,
    InvalidSignature,
    MissingAuthenticationToken,
    IncompleteSignature,
    /// A PartiQL INSERT of an item that exists.
    DuplicateItem,
    /// A transaction that wrote nothing (CancellationReasons say why).
    TransactionCanceled,
    /// A write to an item a transaction in flight holds.
    TransactionConflict,
    /// A ClientRequestToken reused with other parameters.
    IdempotentParameterMismatch,
    LimitExceeded,
    ItemCollectionSizeLimitExceeded,
    TableNotFound,
    TableAlreadyExists,
    PointInTimeRecoveryUnavailable,
    InvalidRestoreTime,
    InvalidExportTime,
    ExportNotFound,
    BackupNotFound,
    BackupInUse,
    ImportNotFound,
    TableInUse,
    TrimmedDataAccess,
    ExpiredIterator,
    /// A body over the size DynamoDB takes (HTTP 413).
    RequestEntityTooLarge,
    /// A body that did not arrive in time (HTTP 408).
    RequestTimeout,
    /// More requests in flight than the server takes (HTTP 503; retryable).
    Throttling,
    InternalServerError,
    /// Retryable trouble with the object store behind the table.
    ServiceUnavailable,
}

impl ErrorCode {
    /// The code as DynamoDB spells it.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Validation => "ValidationException",
            Serialization => "SerializationException",
            UnknownOperation => "UnknownOperationException",
            ResourceNotFound => "ResourceNotFoundException",
            ResourceInUse => "ResourceInUseException",
            ConditionalCheckFailed => "ConditionalCheckFailedException",
            DuplicateItem => "DuplicateItemException",
            TransactionCanceled => "TransactionCanceledException",
            TransactionConflict => "TransactionConflictException",
            IdempotentParameterMismatch => "IdempotentParameterMismatchException",
            AccessDenied => "AccessDeniedException",
            UnrecognizedClient => "UnrecognizedClientException",
            InvalidSignature => "InvalidSignatureException",
            MissingAuthenticationToken => "MissingAuthenticationTokenException",
            IncompleteSignature => "IncompleteSignatureException",
            LimitExceeded => "LimitExceededException",
            ItemCollectionSizeLimitExceeded => "ItemCollectionSizeLimitExceededException",
            TableNotFound => "TableNotFoundException",
            TableAlreadyExists => "TableAlreadyExistsException",
            PointInTimeRecoveryUnavailable => "PointInTimeRecoveryUnavailableException",
            InvalidRestoreTime => "InvalidRestoreTimeException",
            InvalidExportTime => "InvalidExportTimeException",
            ExportNotFound => "ExportNotFoundException",
            BackupNotFound => "BackupNotFoundException",
            BackupInUse => "BackupInUseException",
            ImportNotFound => "ImportNotFoundException",
            TableInUse => "TableInUseException",
            TrimmedDataAccess => "TrimmedDataAccessException",
            ExpiredIterator => "ExpiredIteratorException",
            RequestEntityTooLarge => "RequestEntityTooLarge",
            RequestTimeout => "RequestTimeoutException",
            Throttling => "ThrottlingException",
            InternalServerError => "InternalServerError",
            ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status DynamoDB answers the code with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::RequestEntityTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::Throttling => 503,
            ErrorCode::InternalServerError => 500,
            ErrorCode::ServiceUnavailable => 503,
            _ => 400,
        }
    }

    /// The `__type` namespace: validation and protocol errors come from
    /// the Coral framework, the rest from the DynamoDB service.
    pub fn namespace(self) -> &'static str {
        match self {
            ErrorCode::Validation => "com.amazon.coral.validate",
            ErrorCode::Serialization
            | ErrorCode::UnknownOperation
            | ErrorCode::UnrecognizedClient
            | ErrorCode::InvalidSignature
            | ErrorCode::MissingAuthenticationToken
            | ErrorCode::IncompleteSignature
            | ErrorCode::RequestTimeout => "com.amazon.coral.service",
            ErrorCode::Throttling => "com.amazon.coral.availability",
            _ => "com.amazonaws.dynamodb.v20120810",
        }
    }
}

/// `s` for an error message: at most 256 characters of it, so that an error
/// never echoes a large input back.
pub fn bounded(s: &str) -> String {
    const MAX: usize = 256;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// The item a failed condition was evaluated against, when the request
    /// asked for it (ReturnValuesOnConditionCheckFailure = ALL_OLD).
    pub item: Option<Item>,
    /// A cancelled transaction's CancellationReasons.
    pub reasons: Option<Box<Json>>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            item: None,
            reasons: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn validation(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Validation, m)
    }

    pub fn serialization(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Serialization, m)
    }

    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceNotFound, m)
    }

    pub fn in_use(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::ResourceInUse, m)
    }

    pub fn unknown_operation() -> Self {
        Self::new(
            ErrorCode::UnknownOperation,
            "An unknown operation was requested.",
        )
    }

    pub fn condition_failed(item: Option<Item>) -> Self {
        Self {
            item,
            ..Self::new(
                ErrorCode::ConditionalCheckFailed,
                "The conditional request failed",
            )
        }
    }

    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalServerError, m)
    }

    /// Retryable trouble with the object store behind the table.
    pub fn unavailable(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, m)
    }

    pub fn limit_exceeded(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::LimitExceeded, m)
    }

    /// The `__type` DynamoDB sends.
    pub fn type_name(&self) -> String {
        format!("{}#{}", self.code.namespace(), self.code.name())
    }

    pub fn body(&self) -> Json {
        let mut body = json!({ "__type": self.type_name(), "message": self.message });
        if let Some(item) = &self.item {
            body["Item"] = item_to_json(item);
        }
        if let Some(r) = &self.reasons {
            body["CancellationReasons"] = (**r).clone();
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
            e @ E::IndexNotFound(_) => ApiError::validation(e.to_string()),
            e @ E::ItemCollectionTooLarge => {
                ApiError::new(ErrorCode::ItemCollectionSizeLimitExceeded, e.to_string())
            }
            E::ConditionFailed { .. } => ApiError::condition_failed(None),
            e @ E::TransactionConflict { .. } => {
                ApiError::new(ErrorCode::TransactionConflict, e.to_string())
            }
            E::IdempotentMismatch => ApiError::new(ErrorCode::IdempotentParameterMismatch, ""),
            E::Corrupt { path, reason } => {
                ApiError::internal(format!("corrupt object {path}: {reason}"))
            }
            e if e.is_retryable() => ApiError::unavailable(e.to_string()),
            e => ApiError::internal(e.to_string()),
        }
    }
}

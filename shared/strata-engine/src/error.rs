//! The engine's errors. Each says what happened and, where there is one,
//! what the caller can do; [`Error::is_retryable`] tells transient from final.

use crate::value::Item;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Requested resource not found: Table: {0} not found")]
    TableNotFound(String),

    #[error("Table already exists: {0}")]
    TableExists(String),

    /// Bad input: the message is DynamoDB's ValidationException wording.
    #[error("{0}")]
    Validation(String),

    /// A write would add to an item collection (a partition-key value's
    /// items, in a table with local indexes) past its size limit.
    #[error("Item collection size limit exceeded")]
    ItemCollectionTooLarge,

    /// The table has no index of this name (it may have just been
    /// dropped). DynamoDB answers a ValidationException.
    #[error("The table does not have the specified index: {0}")]
    IndexNotFound(String),

    /// A write's condition did not hold. `index` is the failing operation
    /// within its request; `item` is the item it was evaluated against.
    #[error("The conditional request failed")]
    ConditionFailed { index: usize, item: Option<Item> },

    /// A stored object failed its checksum or did not decode. Never served.
    #[error("corrupt object {path}: {reason}")]
    Corrupt { path: String, reason: String },

    /// The object store failed or could not be reached; retry later.
    #[error("object store request failed for {path} (retry later): {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },

    /// Too many concurrent writers kept winning the race for the next
    /// sequence number; retry later.
    #[error("too much contention on table {table} partition {partition}; retry later")]
    Contention { table: String, partition: u32 },

    /// A commit's outcome could not be determined (the store failed while
    /// confirming it). Retrying with the same request token is safe.
    #[error(
        "the outcome of a write to {table} is unknown ({cause}); retry with the same request token"
    )]
    OutcomeUnknown { table: String, cause: String },

    /// The partition was split: its keys are in its children now. The
    /// engine routes again (finishing the split first if need be); a
    /// caller only sees it if that keeps failing.
    /// A write to an item a transaction in flight holds.
    #[error("Transaction is ongoing for the item")]
    TransactionConflict { table: String },

    /// A transaction's request token was used with other parameters.
    #[error("Request parameters do not match the parameters of the original request with this ClientRequestToken")]
    IdempotentMismatch,

    #[error("partition {partition} of table {table} was split; retry")]
    Sealed { table: String, partition: u32 },

    #[error(transparent)]
    StoreRefused(#[from] strata_store::ProbeError),

    #[error(transparent)]
    Open(#[from] strata_store::OpenError),
}

impl Error {
    /// True when the same request may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { .. }
            | Error::Contention { .. }
            | Error::OutcomeUnknown { .. }
            | Error::Sealed { .. } => true,
            Error::StoreRefused(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The same error again, for telling every request of a failed group
    /// commit. Store errors are not `Clone`; their copy keeps the message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::TableNotFound(t) => Error::TableNotFound(t.clone()),
            Error::TableExists(t) => Error::TableExists(t.clone()),
            Error::Validation(m) => Error::Validation(m.clone()),
            Error::IndexNotFound(i) => Error::IndexNotFound(i.clone()),
            Error::ItemCollectionTooLarge => Error::ItemCollectionTooLarge,
            Error::ConditionFailed { index, item } => Error::ConditionFailed {
                index: *index,
                item: item.clone(),
            },
            Error::Corrupt { path, reason } => Error::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::Store { path, source } => Error::Store {
                path: path.clone(),
                source: object_store::Error::Generic {
                    store: "strata",
                    source: source.to_string().into(),
                },
            },
            Error::Contention { table, partition } => Error::Contention {
                table: table.clone(),
                partition: *partition,
            },
            Error::OutcomeUnknown { table, cause } => Error::OutcomeUnknown {
                table: table.clone(),
                cause: cause.clone(),
            },
            Error::TransactionConflict { table } => Error::TransactionConflict {
                table: table.clone(),
            },
            Error::IdempotentMismatch => Error::IdempotentMismatch,
            Error::Sealed { table, partition } => Error::Sealed {
                table: table.clone(),
                partition: *partition,
            },
            Error::StoreRefused(e) => Error::Validation(e.to_string()),
            Error::Open(e) => Error::Validation(e.to_string()),
        }
    }

    pub(crate) fn store(path: &object_store::path::Path, source: object_store::Error) -> Error {
        Error::Store {
            path: path.to_string(),
            source,
        }
    }

    /// A store-side failure Strata itself detected (no store error to wrap).
    pub(crate) fn store_msg(path: &object_store::path::Path, message: &'static str) -> Error {
        Error::store(
            path,
            object_store::Error::Generic {
                store: "strata",
                source: message.into(),
            },
        )
    }

    pub(crate) fn corrupt(path: &object_store::path::Path, reason: impl ToString) -> Error {
        Error::Corrupt {
            path: path.to_string(),
            reason: reason.to_string(),
        }
    }
}

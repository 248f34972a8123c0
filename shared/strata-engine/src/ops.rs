//! What callers ask the engine to write, and what they get back.

use std::sync::Arc;

use crate::value::{Item, ItemKey};

/// A condition on the item's current state (None when absent). `Err` is a
/// validation error found while evaluating (DynamoDB's ValidationException).
pub type Condition = Arc<dyn Fn(Option<&Item>) -> Result<bool, String> + Send + Sync>;

/// Computes an item's new state from its current one (None when absent):
/// `Ok(None)` leaves no item (an update that only removes attributes of an
/// absent item creates nothing, as in DynamoDB). `Err` is a validation
/// error (for example, adding a number to a string).
pub type UpdateFn = Arc<dyn Fn(Option<&Item>) -> Result<Option<Item>, String> + Send + Sync>;

/// The change one operation makes.
#[derive(Clone)]
pub enum Change {
    /// Replace the item with this one (its key must be the operation's key).
    Put(Item),
    Delete,
    /// Delete the item as the service's own expiry of it (time to live):
    /// a delete whose stream record names the service as its author.
    Expire,
    /// Compute the new item from the current one.
    Update(UpdateFn),
}

/// One operation on one item.
#[derive(Clone)]
pub struct WriteOp {
    pub key: ItemKey,
    pub change: Change,
    /// Evaluated against the latest committed state of the item, and again
    /// after every lost race, until the write commits or the condition fails.
    pub condition: Option<Condition>,
}

impl WriteOp {
    pub fn put(key: ItemKey, item: Item) -> Self {
        Self {
            key,
            change: Change::Put(item),
            condition: None,
        }
    }

    pub fn delete(key: ItemKey) -> Self {
        Self {
            key,
            change: Change::Delete,
            condition: None,
        }
    }

    /// An expiry by time to live: a delete stamped as the service's.
    pub fn expire(key: ItemKey) -> Self {
        Self {
            key,
            change: Change::Expire,
            condition: None,
        }
    }

    pub fn update(key: ItemKey, f: UpdateFn) -> Self {
        Self {
            key,
            change: Change::Update(f),
            condition: None,
        }
    }

    pub fn with_condition(mut self, c: Condition) -> Self {
        self.condition = Some(c);
        self
    }
}

/// Operations on items of one partition, committed atomically: all or none.
#[derive(Clone, Default)]
pub struct WriteRequest {
    pub ops: Vec<WriteOp>,
    /// A client request token: a retry with the same token within the
    /// idempotency window is not applied again.
    pub token: Option<String>,
}

impl WriteRequest {
    pub fn single(op: WriteOp) -> Self {
        Self {
            ops: vec![op],
            token: None,
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// The item before and after one operation.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub old: Option<Item>,
    pub new: Option<Item>,
}

/// A committed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The log sequence number it was committed at.
    pub seq: u64,
    /// Per operation; empty when `replayed`.
    pub outcomes: Vec<WriteOutcome>,
    /// True when the token had already been applied: nothing was written again.
    pub replayed: bool,
}

/// One page of a range read or scan.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Arc<Item>>,
    /// The key attributes of the last item returned, when the read stopped
    /// at its limit; pass it back as `start_after` to resume.
    pub last_key: Option<Item>,
}

/// A condition on the sort key of a range read (KeyConditionExpression).
#[derive(Debug, Clone, PartialEq)]
pub enum SortKeyCondition {
    All,
    Eq(crate::value::KeyValue),
    Lt(crate::value::KeyValue),
    Le(crate::value::KeyValue),
    Gt(crate::value::KeyValue),
    Ge(crate::value::KeyValue),
    Between(crate::value::KeyValue, crate::value::KeyValue),
    /// Only for S and B sort keys.
    BeginsWith(crate::value::KeyValue),
}

/// How to read: strongly consistent reads see every write acknowledged
/// before they started; eventual reads may be up to the staleness bound old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Strong,
    Eventual,
}

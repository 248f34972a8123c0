//! Strata's storage engine: DynamoDB-style tables stored as partitioned,
//! log-structured objects in an object store.
//!
//! The engine knows nothing of HTTP, JSON or Lambda. See ARCHITECTURE.md at
//! the repository root for the object layout, the commit protocol and the
//! invariants, and [`Engine`] for the entry point.

#[cfg(feature = "mimalloc")]
pub mod allocator;
mod bloom;
pub mod cache;
pub mod catalog;
pub mod clock;
pub mod codec;
pub mod config;
mod engine;
pub mod error;
pub mod index;
mod io;
pub mod jobs;
pub mod keys;
pub mod manifest;
pub mod number;
pub mod ops;
mod partition;
pub mod partition_map;
mod scan;
pub use strata_store::paths;
pub mod replication;
pub mod run;
pub mod segment;
pub mod ttl;
pub mod txn;
pub mod value;

pub use cache::CacheStats;
pub use catalog::{TableDescriptor, TableSpec};
pub use config::{CompactionHook, CompactionPolicy, EngineConfig};
pub use engine::{
    kms_key, BackupRecord, CancelReason, Engine, ExpiryReport, Ingested, PartitionStorage,
    PointInTime, RunStorage, TableStorage, TxnOptions, TxnResult, TxnStop, TxnWrite,
    MAX_TXN_ACTIONS,
};
pub use error::{Error, Result};
pub use index::follower::IndexReport;
pub use index::{IndexDef, IndexKind, IndexStatus, Projection};
pub use number::Number;
pub use ops::{
    Change, Committed, Condition, Consistency, Page, SortKeyCondition, UpdateFn, WriteOp,
    WriteOutcome, WriteRequest,
};
pub use partition::{CommitStats, CompactionOutcome, CompactionStats, GcReport, LogRead};
pub use run::LiveItems;
pub use segment::Stamp;
pub use value::{Item, ItemKey, KeyAttribute, KeySchema, KeyType, KeyValue, Value};

//! Object-store access for Strata.
//!
//! Strata's only durable home is an object store reached through the
//! [`object_store`] crate. This crate holds everything Strata does to a store
//! that is not storage-engine logic:
//!
//! - [`open_store`]: one constructor from a URL (`file://`, `memory://`, `s3://`);
//! - [`probe_atomic_create`]: the start-up check that conditional create is atomic;
//! - decorators layered over any store, each in its own module, all built on
//!   [`Intercepted`]: request counting ([`counting`]), latency injection
//!   ([`latency`]) and seeded fault injection ([`faults`]); and one-at-a-time
//!   scripted faults for protocol tests ([`script`]);
//! - [`attribution`]: which operation a store request counts for;
//! - [`encrypted`]: encryption at rest (AES-256-GCM) for stores without their own;
//! - [`tiered`]: one store made of several, by object kind (the log in S3
//!   Express One Zone, the rest in S3 Standard).

pub mod attribution;
pub mod counting;
pub mod encrypted;
pub mod faults;
pub mod intercept;
pub mod kms;
pub mod latency;
pub mod local;
mod open;
pub mod paths;
mod probe;
pub mod script;
pub mod tiered;

pub use intercept::{Intercepted, Interceptor, RequestKind};
pub use open::{is_directory_bucket, open_store, open_unchecked, AtRest, OpenError, OpenedStore};
pub use probe::{probe_atomic_create, ProbeError};

/// The store handle every Strata component uses.
pub type DynStore = std::sync::Arc<dyn object_store::ObjectStore>;

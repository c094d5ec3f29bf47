//! Baton's durable storage.
//!
//! Storage sits behind small role traits, one per role, so backends are swappable:
//! [`EnrollmentStore`] (check-in records), [`CertBindingStore`] (identity certificates),
//! [`CommandQueue`] (the queue), [`CommandResultStore`] (results and orphan reports),
//! [`PushCertStore`] (APNs certificates) and [`Keyspace`] (named collections for everything
//! later: directory, catalog, assignments, sessions, audit, outbox, CA serials). [`Store`] is
//! all of them together.
//!
//! [`SledStore`] is the embedded default (sled 0.34.7). Every backend must pass
//! [`conformance::run_all`], which pins the queue and check-in semantics.
//!
//! The traits are synchronous: calls that change state wait for an fsync (shared with
//! concurrent callers), at most [`SledConfig::commit_timeout`] before they fail with
//! [`StoreError::CommitTimeout`], so async servers call them from `spawn_blocking`.
//!
//! Not here: interpreting plists. Commands and reports are opaque bytes plus the few fields
//! the queue needs; decoding belongs to `baton-proto` and the server.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod cert_binding;
mod command_queue;
mod command_result;
pub mod conformance;
mod enrollment;
mod error;
mod keyspace;
mod push_cert;
mod sled_backend;
mod timestamp;

pub use cert_binding::{CertBindingStore, CertHash};
pub use command_queue::{
    CommandQueue, CommandState, Enqueue, NewCommand, Priority, QueuedCommand, Report,
    ReportOutcome, StoredCommand,
};
pub use command_result::{
    CommandResult, CommandResultStore, MAX_ORPHANS_PER_DEVICE, OrphanReport, PruneReport,
};
pub use enrollment::{
    AuthenticateRecord, Enrollment, EnrollmentStore, TokenUpdateOutcome, TokenUpdateRecord,
};
pub use error::{StoreError, StoreResult};
pub use keyspace::{
    CasOutcome, Collection, Keyspace, KeyspaceBatch, KeyspaceOp, MAX_COLLECTION_LEN,
};
pub use push_cert::{PushCertStore, PushCertificate};
pub use sled_backend::{
    DEFAULT_COMMIT_TIMEOUT, DurabilityStats, ExportSummary, SCHEMA_VERSION, SledConfig, SledStore,
};
pub use timestamp::{from_unix_millis, unix_millis};

/// Every storage role in one bound, for code that needs the whole store.
pub trait Store:
    EnrollmentStore
    + CertBindingStore
    + CommandQueue
    + CommandResultStore
    + PushCertStore
    + Keyspace
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: EnrollmentStore
        + CertBindingStore
        + CommandQueue
        + CommandResultStore
        + PushCertStore
        + Keyspace
        + Send
        + Sync
{
}

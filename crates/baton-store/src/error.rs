//! The one error type every storage role returns.

use baton_proto::{CommandUuid, EnrollmentId};

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The embedded sled database reported an error (IO, corruption detected by sled, ...).
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A file or stream operation (export, import) failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A stored row could not be decoded; the store may be damaged or from another version.
    #[error("corrupt row in {tree}: {reason}")]
    Corrupt {
        /// The tree or collection holding the row.
        tree: &'static str,
        /// What did not decode.
        reason: String,
    },
    /// A value could not be encoded for storage.
    #[error("cannot encode a {what}: {reason}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// The operation names an enrollment the store does not know.
    #[error("unknown enrollment {0}")]
    UnknownEnrollment(EnrollmentId),
    /// A command with this CommandUUID was already enqueued once.
    #[error("command {0} already exists")]
    DuplicateCommand(CommandUuid),
    /// The identity certificate is already bound to another enrollment.
    #[error("certificate already bound to enrollment {0}")]
    CertificateBoundElsewhere(EnrollmentId),
    /// A report with a status other than Idle carried no CommandUUID.
    #[error("a {0} report must carry a CommandUUID")]
    ReportWithoutCommand(&'static str),
    /// A keyspace collection name is empty, too long or has characters outside `[a-z0-9_.-]`.
    #[error("invalid collection name {0:?}")]
    InvalidCollection(String),
    /// The store was written by a newer Baton whose schema this build does not know.
    #[error("store schema version {found} is newer than the supported {supported}")]
    SchemaTooNew {
        /// Version found in the store.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// A schema migration step failed.
    #[error("migration from schema {from} failed: {reason}")]
    Migration {
        /// The version being migrated from.
        from: u32,
        /// What went wrong.
        reason: String,
    },
    /// An import file is malformed.
    #[error("import line {line}: {reason}")]
    Import {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Import is only allowed into an empty store.
    #[error("import target is not empty")]
    ImportTargetNotEmpty,
    /// A change was applied but its fsync did not finish in time (a stuck or very slow disk,
    /// e.g. a full one): the change is not known to be durable and may or may not survive.
    #[error("the disk did not confirm the write within {waited:?}")]
    CommitTimeout {
        /// How long the caller waited.
        waited: std::time::Duration,
    },
}

impl StoreError {
    /// True when the store cannot take writes right now for a reason that may pass (a flush
    /// that timed out, a full disk): callers answer "unavailable, retry later", not "broken".
    pub fn is_unavailable(&self) -> bool {
        fn out_of_space(e: &std::io::Error) -> bool {
            e.kind() == std::io::ErrorKind::StorageFull || e.raw_os_error() == Some(28)
        }
        match self {
            StoreError::CommitTimeout { .. } => true,
            StoreError::Io(e) | StoreError::Sled(sled::Error::Io(e)) => out_of_space(e),
            _ => false,
        }
    }
}

/// Shorthand for results of storage operations.
pub type StoreResult<T> = Result<T, StoreError>;

//! The sled backend, Baton's embedded default.
//!
//! Layout: see [`layout`] and docs/decisions/0002-storage-layout.md. Durability rules:
//! - one logical change is one atomic sled write: a single insert or a one-tree batch on the
//!   hot paths (enqueue, report, cancel), a multi-tree transaction only where a change spans
//!   trees (Authenticate, CheckOut, certificate bindings, keyspace batches);
//! - every queue, result, check-in, certificate and keyspace change is flushed (fsync) before
//!   the call returns, through [`group_commit`] so that concurrent callers share fsyncs;
//! - last-seen times are buffered and written in batches without an fsync of their own;
//! - sessions (begun on Idle) live in memory only: after a restart every channel is in a new
//!   session, so a NotNow'd command is at most offered once more.
//!
//! The queues are also indexed in memory ([`channel_index`]), rebuilt from the trees at open.

mod backup;
mod cert_binding;
mod channel_index;
mod command_queue;
mod disk_sync;
mod enrollment;
mod group_commit;
mod keyspace;
mod last_seen;
pub(crate) mod layout;
mod push_cert;
mod raw_body;
mod retention;
mod rows;
mod schema;
mod target_list;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};

use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use backup::ExportSummary;
pub use group_commit::DurabilityStats;
pub use schema::SCHEMA_VERSION;

use crate::{Collection, StoreError, StoreResult};
use channel_index::ChannelIndex;
use disk_sync::DiskSync;
use group_commit::GroupCommit;
use last_seen::LastSeenBuffer;
use layout::{META, read_u64_be};

/// How to open a [`SledStore`].
#[derive(Debug, Clone)]
pub struct SledConfig {
    /// Directory of the database; None for a temporary store deleted on drop.
    pub path: Option<PathBuf>,
    /// sled's page cache, bytes.
    pub cache_capacity: u64,
    /// Write buffered last-seen times once this many channels are pending.
    pub last_seen_batch: usize,
    /// sled's background flush interval (also persists written but unflushed last-seen times).
    pub flush_every_ms: Option<u64>,
    /// How long a durable write waits for its fsync before it fails with
    /// [`StoreError::CommitTimeout`] instead of blocking (docs/decisions/0012-full-disk.md).
    pub commit_timeout: std::time::Duration,
}

/// The default [`SledConfig::commit_timeout`].
pub const DEFAULT_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl SledConfig {
    /// Defaults for a store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::temporary()
        }
    }

    /// Defaults for a temporary store.
    pub fn temporary() -> Self {
        Self {
            path: None,
            cache_capacity: 64 * 1024 * 1024,
            last_seen_batch: 1024,
            flush_every_ms: Some(500),
            commit_timeout: DEFAULT_COMMIT_TIMEOUT,
        }
    }
}

/// The fixed trees.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) enrollments: sled::Tree,
    pub(crate) last_seen: sled::Tree,
    pub(crate) cert_by_hash: sled::Tree,
    pub(crate) cert_by_enrollment: sled::Tree,
    pub(crate) commands: sled::Tree,
    pub(crate) deliveries: sled::Tree,
    pub(crate) orphans: sled::Tree,
    pub(crate) push_certs: sled::Tree,
    pub(crate) meta: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> StoreResult<Self> {
        use layout::*;
        Ok(Self {
            enrollments: db.open_tree(ENROLLMENTS)?,
            last_seen: db.open_tree(LAST_SEEN)?,
            cert_by_hash: db.open_tree(CERT_BY_HASH)?,
            cert_by_enrollment: db.open_tree(CERT_BY_ENROLLMENT)?,
            commands: db.open_tree(COMMANDS)?,
            deliveries: db.open_tree(DELIVERIES)?,
            orphans: db.open_tree(ORPHANS)?,
            push_certs: db.open_tree(PUSH_CERTS)?,
            meta: db.open_tree(META)?,
        })
    }
}

/// The meta key of the sequence base (see [`SledStore::next_seq`]).
const SEQ_BASE_KEY: &[u8] = b"seq_base";

/// Baton's storage on sled. Implements every role trait; cheap to share behind an `Arc`.
pub struct SledStore {
    db: sled::Db,
    path: Option<PathBuf>,
    t: Trees,
    group: GroupCommit,
    commit_timeout: std::time::Duration,
    disk: std::sync::Arc<DiskSync>,
    last_seen: LastSeenBuffer,
    seq_base: AtomicU64,
    collections: RwLock<HashMap<Collection, sled::Tree>>,
    index: ChannelIndex,
    /// Serialises enqueues (the duplicate-CommandUUID check and the write).
    enqueue_lock: Mutex<()>,
    /// Serialises orphan writes (the insert and the per-device bound).
    orphan_lock: Mutex<()>,
    /// One retention call at a time.
    prune_lock: Mutex<()>,
    /// The sequence number retention continues from (see [`retention`]).
    prune_cursor: AtomicU64,
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(&SledConfig::new(path.as_ref()))
    }

    /// A temporary store, deleted on drop (tests).
    pub fn temporary() -> StoreResult<Self> {
        Self::open_with(&SledConfig::temporary())
    }

    /// Opens a store; brings its schema up to date.
    pub fn open_with(config: &SledConfig) -> StoreResult<Self> {
        let mut sc = sled::Config::new()
            .cache_capacity(config.cache_capacity)
            .flush_every_ms(config.flush_every_ms);
        sc = match &config.path {
            Some(p) => sc.path(p),
            None => sc.temporary(true),
        };
        let db = open_waiting_for_lock(&sc)?;
        schema::ensure(&db)?;
        let t = Trees::open(&db)?;
        let seq_base = match t.meta.get(SEQ_BASE_KEY)? {
            None => 0,
            Some(v) => read_u64_be(&v).ok_or_else(|| StoreError::Corrupt {
                tree: META,
                reason: "seq_base is not 8 bytes".into(),
            })?,
        };
        let store = Self {
            db,
            path: config.path.clone(),
            t,
            group: GroupCommit::default(),
            commit_timeout: config.commit_timeout,
            disk: std::sync::Arc::new(DiskSync::open(config.path.as_deref())?),
            last_seen: LastSeenBuffer::new(config.last_seen_batch),
            seq_base: AtomicU64::new(seq_base),
            collections: RwLock::new(HashMap::new()),
            index: ChannelIndex::default(),
            enqueue_lock: Mutex::new(()),
            orphan_lock: Mutex::new(()),
            prune_lock: Mutex::new(()),
            prune_cursor: AtomicU64::new(0),
        };
        store.index.replace(store.rebuild_index(true)?);
        Ok(store)
    }

    /// The directory, None for a temporary store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The schema version stored.
    pub fn schema_version(&self) -> StoreResult<u32> {
        schema::stored_version(&self.db)?.ok_or_else(|| StoreError::Corrupt {
            tree: META,
            reason: "schema_version missing".into(),
        })
    }

    /// Writes buffered last-seen times and fsyncs everything, waiting at most the commit
    /// timeout (so that closing a store whose disk is stuck does not hang either).
    pub fn flush(&self) -> StoreResult<()> {
        self.write_last_seen(self.last_seen.drain())?;
        self.commit()
    }

    /// sled's own idea of its on-disk size, bytes.
    pub fn size_on_disk(&self) -> StoreResult<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// Group-commit counters.
    pub fn durability_stats(&self) -> DurabilityStats {
        self.group.stats()
    }

    /// Checks that every tree can be read end to end, every row of the fixed trees decodes and
    /// refers to rows that exist, and that the in-memory queue index equals one rebuilt from
    /// disk. Returns the number of rows checked.
    pub fn verify(&self) -> StoreResult<u64> {
        command_queue::verify(self)
    }

    /// Waits until every write this caller made is on disk (shared fsync), at most the
    /// commit timeout.
    pub(crate) fn commit(&self) -> StoreResult<()> {
        let db = self.db.clone();
        let disk = std::sync::Arc::clone(&self.disk);
        // sled's flush, then the fsyncs it leaves out (see [`disk_sync`]).
        self.group.commit(
            move || {
                db.flush()?;
                disk.sync()
            },
            self.commit_timeout,
        )
    }

    /// A sequence number greater than every one handed out before, also across restarts and
    /// import: sled's monotonic id generator plus a base moved past imported data.
    pub(crate) fn next_seq(&self) -> StoreResult<u64> {
        Ok(self.seq_base.load(Ordering::SeqCst) + self.db.generate_id()?)
    }

    /// The tree of a keyspace collection.
    pub(crate) fn collection_tree(&self, c: &Collection) -> StoreResult<sled::Tree> {
        if let Some(t) = self
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(c)
        {
            return Ok(t.clone());
        }
        let tree = self
            .db
            .open_tree(format!("{}{}", layout::KEYSPACE_PREFIX, c.as_str()))?;
        self.collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(c.clone(), tree.clone());
        Ok(tree)
    }

    fn write_last_seen(&self, batch: Vec<(baton_proto::EnrollmentId, u64)>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut b = sled::Batch::default();
        for (id, ms) in batch {
            b.insert(id.as_str().as_bytes(), &layout::u64_be(ms));
        }
        self.t.last_seen.apply_batch(b)?;
        Ok(())
    }
}

/// How long [`open_waiting_for_lock`] waits for the directory's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Opens the database, waiting up to [`LOCK_WAIT`] while its lock file is held. sled 0.34 does
/// not join its flusher thread when the last `Db` is dropped, and that thread holds the
/// directory's `flock` until it exits: reopening at once (a restart in the same process) can
/// find the lock still taken for a few milliseconds. Another process holding the store gets
/// the same error after the wait.
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock") =>
            {
                if start.elapsed() >= LOCK_WAIT {
                    return Err(sled::Error::Io(e));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "flushing the store on close failed");
        }
    }
}

/// Aborts a transaction with a store error.
pub(crate) fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

/// A finished transaction's error as a store error.
pub(crate) fn tx_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

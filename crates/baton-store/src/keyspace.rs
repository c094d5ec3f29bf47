//! The generic keyspace: named collections of key -> bytes that later features (directory,
//! catalog, distributions, assignments, sessions, audit log, webhook outbox, CA serials) use
//! without touching the other roles.
//!
//! Writes are durable when they return. A [`KeyspaceBatch`] applies puts, deletes and
//! preconditions over several collections atomically, and
//! [`Keyspace::apply_with_enqueue`] combines such a batch with command enqueues in one
//! transaction (sign-in: "assignment change + enqueue").

use std::fmt;
use std::time::SystemTime;

use crate::{Enqueue, StoreError, StoreResult};

/// Longest collection name.
pub const MAX_COLLECTION_LEN: usize = 64;

/// A validated collection name: 1 to 64 characters from `[a-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Collection(String);

impl Collection {
    /// Validates a collection name.
    pub fn new(name: impl Into<String>) -> StoreResult<Self> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_COLLECTION_LEN
            && name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-')
            });
        if ok {
            Ok(Self(name))
        } else {
            Err(StoreError::InvalidCollection(name))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Collection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One step of a [`KeyspaceBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyspaceOp {
    /// Sets `key` to `value`.
    Put {
        /// Collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// Collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
    },
    /// Precondition: `key` currently holds `value` (None: is absent). Checked atomically with
    /// the writes; a failed check aborts the whole batch.
    Expect {
        /// Collection.
        collection: Collection,
        /// Key.
        key: Vec<u8>,
        /// Expected value, None for absent.
        value: Option<Vec<u8>>,
    },
}

impl KeyspaceOp {
    /// The collection this step touches.
    pub fn collection(&self) -> &Collection {
        match self {
            KeyspaceOp::Put { collection, .. }
            | KeyspaceOp::Delete { collection, .. }
            | KeyspaceOp::Expect { collection, .. } => collection,
        }
    }
}

/// Steps applied atomically, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyspaceBatch {
    /// The steps.
    pub ops: Vec<KeyspaceOp>,
}

impl KeyspaceBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, collection: &Collection, key: &[u8], value: &[u8]) -> &mut Self {
        self.ops.push(KeyspaceOp::Put {
            collection: collection.clone(),
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, collection: &Collection, key: &[u8]) -> &mut Self {
        self.ops.push(KeyspaceOp::Delete {
            collection: collection.clone(),
            key: key.to_vec(),
        });
        self
    }

    /// Adds a precondition.
    pub fn expect(
        &mut self,
        collection: &Collection,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> &mut Self {
        self.ops.push(KeyspaceOp::Expect {
            collection: collection.clone(),
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        });
        self
    }
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CasOutcome {
    /// Preconditions held; the writes are applied (and durable).
    Applied,
    /// A precondition failed; nothing was written.
    Conflict {
        /// The collection of the failed precondition.
        collection: Collection,
        /// Its key.
        key: Vec<u8>,
        /// The value found there.
        current: Option<Vec<u8>>,
    },
}

/// Named collections of key -> bytes.
pub trait Keyspace {
    /// The value under `key`.
    fn get(&self, collection: &Collection, key: &[u8]) -> StoreResult<Option<Vec<u8>>>;
    /// Sets `key` to `value`.
    fn put(&self, collection: &Collection, key: &[u8], value: &[u8]) -> StoreResult<()>;
    /// Removes `key`; true when it existed.
    fn delete(&self, collection: &Collection, key: &[u8]) -> StoreResult<bool>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(
        &self,
        collection: &Collection,
        prefix: &[u8],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The entry with the greatest key that starts with `prefix`, if any. Backends override
    /// this to read one entry instead of the whole range (the newest session of a device is
    /// read on every command result).
    fn last_with_prefix(
        &self,
        collection: &Collection,
        prefix: &[u8],
    ) -> StoreResult<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.scan_prefix(collection, prefix)?.pop())
    }
    /// At most `limit` entries whose key is greater than `after` (all entries when None), in
    /// key order: one page of a collection, so callers can walk a large collection (the
    /// webhook outbox, the session log) without holding it in memory. Continue with the last
    /// key of a page as the next `after`; a page shorter than `limit` is the last.
    fn scan_page(
        &self,
        collection: &Collection,
        after: Option<&[u8]>,
        limit: usize,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// The number of entries in a collection, counted without holding them in memory.
    fn count(&self, collection: &Collection) -> StoreResult<u64>;
    /// Sets `key` to `new` (None: removes it) only if it holds `expected` (None: absent).
    fn compare_and_swap(
        &self,
        collection: &Collection,
        key: &[u8],
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> StoreResult<CasOutcome>;
    /// Applies a batch atomically.
    fn apply(&self, batch: &KeyspaceBatch) -> StoreResult<CasOutcome>;
    /// Applies a batch and enqueues commands in one transaction: all of it or nothing.
    /// Enqueue errors (unknown channel, duplicate command) abort the batch too.
    fn apply_with_enqueue(
        &self,
        batch: &KeyspaceBatch,
        enqueues: &[Enqueue],
        now: SystemTime,
    ) -> StoreResult<CasOutcome>;
}

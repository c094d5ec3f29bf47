//! Row types private to the sled backend, and their postcard encoding.

use baton_proto::{CommandUuid, ErrorChainItem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CommandState, StoreError, StoreResult};

/// A QUEUE value: which command, and in which session it was last answered NotNow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueueEntryRow {
    pub(crate) uuid: CommandUuid,
    pub(crate) not_now_session: Option<u64>,
}

/// A DELIVERIES value: one command on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveryRow {
    pub(crate) priority: u8,
    pub(crate) seq: u64,
    pub(crate) state: CommandState,
    pub(crate) queued_at: u64,
    pub(crate) updated_at: u64,
    pub(crate) finished_at: Option<u64>,
    pub(crate) not_now_count: u32,
    pub(crate) first_not_now_at: Option<u64>,
    pub(crate) error_chain: Vec<ErrorChainItem>,
    pub(crate) raw_response: Option<Vec<u8>>,
}

/// Encodes a row.
pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> StoreResult<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// Decodes a row read from `tree`.
pub(crate) fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> StoreResult<T> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

/// A stored id (key bytes) back to its type.
pub(crate) fn decode_id<T: TryFrom<String>>(tree: &'static str, bytes: &[u8]) -> StoreResult<T>
where
    T::Error: std::fmt::Display,
{
    let s = String::from_utf8(bytes.to_vec()).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })?;
    T::try_from(s).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

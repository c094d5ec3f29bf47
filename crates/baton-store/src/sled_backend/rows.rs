//! Row types private to the sled backend, and their postcard encoding.

use baton_proto::ErrorChainItem;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CommandState, StoreError, StoreResult, StoredCommand};

/// A COMMANDS `'c'` row: the command and its enqueue sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CommandRow {
    pub(crate) command: StoredCommand,
    pub(crate) seq: u64,
}

/// A DELIVERIES value: one command on one channel once its state changed. Priority, order and
/// enqueue time are the command's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeliveryRow {
    pub(crate) state: CommandState,
    pub(crate) updated_at: u64,
    pub(crate) finished_at: Option<u64>,
    pub(crate) not_now_count: u32,
    pub(crate) first_not_now_at: Option<u64>,
    /// The session of the latest NotNow (queued states only).
    pub(crate) not_now_session: Option<u64>,
    pub(crate) error_chain: Vec<ErrorChainItem>,
    /// The latest report's raw body, packed by [`super::raw_body`] with the channel id and
    /// CommandUUID as context.
    pub(crate) raw_response: Option<Vec<u8>>,
}

impl DeliveryRow {
    /// The row a delivery implied by a target list stands for: queued, untouched since
    /// `queued_at`.
    pub(crate) fn implied(queued_at: u64) -> Self {
        Self {
            state: CommandState::Queued,
            updated_at: queued_at,
            finished_at: None,
            not_now_count: 0,
            first_not_now_at: None,
            not_now_session: None,
            error_chain: Vec::new(),
            raw_response: None,
        }
    }
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

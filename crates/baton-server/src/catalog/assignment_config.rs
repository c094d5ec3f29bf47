//! Assembles the engine's [`Config`] from the stored directory, catalog and distributions, and
//! reads/writes the JSON records these collections hold.

use baton_assign::Config;
use baton_store::{Collection, Keyspace, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DISTRIBUTIONS_COLLECTION, DistributionRecord, ITEMS_COLLECTION};
use crate::directory::{GROUPS_COLLECTION, USERS_COLLECTION, UserRecord};

/// Why stored records could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored record is not valid JSON of the expected shape.
    #[error("corrupt record in {collection}: {reason}")]
    Corrupt {
        /// The collection.
        collection: String,
        /// The decoder's message.
        reason: String,
    },
    /// A stored name is no longer valid.
    #[error("invalid name: {0}")]
    Name(#[from] baton_assign::NameError),
}

/// The collection named `name` (names used here are valid constants).
pub fn collection(name: &str) -> Result<Collection, RecordError> {
    Ok(Collection::new(name)?)
}

/// Decodes one JSON record.
pub fn decode<T: DeserializeOwned>(collection: &str, bytes: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::Corrupt {
        collection: collection.to_owned(),
        reason: e.to_string(),
    })
}

/// Encodes one JSON record.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, RecordError> {
    serde_json::to_vec(value).map_err(|e| RecordError::Corrupt {
        collection: String::new(),
        reason: e.to_string(),
    })
}

/// The record under `key`.
pub fn read_json<T: DeserializeOwned>(
    store: &dyn Keyspace,
    name: &str,
    key: &str,
) -> Result<Option<T>, RecordError> {
    store
        .get(&collection(name)?, key.as_bytes())?
        .map(|b| decode(name, &b))
        .transpose()
}

/// Every record whose key starts with `prefix`, with its key.
pub fn scan_json<T: DeserializeOwned>(
    store: &dyn Keyspace,
    name: &str,
    prefix: &str,
) -> Result<Vec<(String, T)>, RecordError> {
    store
        .scan_prefix(&collection(name)?, prefix.as_bytes())?
        .into_iter()
        .map(|(k, v)| decode_entry(name, &k, &v))
        .collect()
}

/// One stored entry of collection `name` as `(key, record)`.
pub fn decode_entry<T: DeserializeOwned>(
    name: &str,
    key: &[u8],
    value: &[u8],
) -> Result<(String, T), RecordError> {
    Ok((
        String::from_utf8_lossy(key).into_owned(),
        decode(name, value)?,
    ))
}

/// Every record of a collection.
pub fn all_json<T: DeserializeOwned>(
    store: &dyn Keyspace,
    name: &str,
) -> Result<Vec<T>, RecordError> {
    Ok(scan_json(store, name, "")?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// The engine configuration from the stored records.
pub fn load(store: &dyn Keyspace) -> Result<Config, RecordError> {
    let mut config = Config::default();
    config.directory.users = all_json::<UserRecord>(store, USERS_COLLECTION)?
        .into_iter()
        .map(|r| r.user)
        .collect();
    config.directory.groups = all_json(store, GROUPS_COLLECTION)?;
    config.catalog.items = all_json(store, ITEMS_COLLECTION)?;
    for record in all_json::<DistributionRecord>(store, DISTRIBUTIONS_COLLECTION)? {
        let (distribution, group) = record.to_engine()?;
        config.distributions.push(distribution);
        config.directory.groups.extend(group);
    }
    Ok(config)
}

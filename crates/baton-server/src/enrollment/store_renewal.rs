//! Renewal records on the store's keyspace: collection `enrollment_renewals`, key = the device
//! channel's id, value = a [`RenewalRecord`] as JSON. One record per device: the renewal of its
//! current (or last renewed) identity. The collection holds one entry per device that ever
//! needed a renewal, so the periodic pass reads all of it; the result hook and the admin view
//! read one key.
//!
//! Every write is conditional on the value read (compare-and-swap), so the periodic pass, the
//! result hook and the binding takeover never overwrite each other's transition.
//!
//! Entries that do not decode (the per-certificate records of earlier versions, keyed by the
//! certificate's SHA-256, which only said "queued") are returned as stale for the pass to drop:
//! the pass then queues a fresh renewal for any device whose identity still expires soon.

use baton_proto::EnrollmentId;
use baton_store::{CasOutcome, Collection, KeyspaceBatch, Store, StoreError};

use super::renewal_record::RenewalRecord;

/// Collection of renewal records.
pub const RENEWALS_COLLECTION: &str = "enrollment_renewals";

/// A record with the exact bytes it was read from (the precondition of its next write).
#[derive(Debug, Clone)]
pub struct StoredRenewal {
    /// The record.
    pub record: RenewalRecord,
    /// The stored bytes.
    pub raw: Vec<u8>,
}

/// Everything in the collection.
#[derive(Debug, Default)]
pub struct AllRenewals {
    /// Decoded records.
    pub records: Vec<StoredRenewal>,
    /// Keys of entries that do not decode.
    pub stale: Vec<Vec<u8>>,
}

/// The renewal records.
#[derive(Clone)]
pub struct RenewalRecords<'a> {
    store: &'a dyn Store,
    collection: Collection,
}

impl std::fmt::Debug for RenewalRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewalRecords").finish_non_exhaustive()
    }
}

fn encode(record: &RenewalRecord) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::Corrupt {
        tree: RENEWALS_COLLECTION,
        reason: format!("encoding a renewal record: {e}"),
    })
}

impl<'a> RenewalRecords<'a> {
    /// The records on `store`'s keyspace.
    pub fn new(store: &'a dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            store,
            collection: Collection::new(RENEWALS_COLLECTION)?,
        })
    }

    /// The collection (for batches that also enqueue).
    pub fn collection(&self) -> &Collection {
        &self.collection
    }

    /// The record of `device` (a user channel's id reads its device's). An entry that does not
    /// decode reads as none.
    pub fn get(&self, device: &EnrollmentId) -> Result<Option<StoredRenewal>, StoreError> {
        let key = device.parent();
        let Some(raw) = self.store.get(&self.collection, key.as_str().as_bytes())? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&raw)
            .ok()
            .map(|record| StoredRenewal { record, raw }))
    }

    /// Every record, in device order, and the keys of entries that do not decode.
    pub fn all(&self) -> Result<AllRenewals, StoreError> {
        let mut all = AllRenewals::default();
        for (key, raw) in self.store.scan_prefix(&self.collection, b"")? {
            match serde_json::from_slice(&raw) {
                Ok(record) => all.records.push(StoredRenewal { record, raw }),
                Err(_) => all.stale.push(key),
            }
        }
        Ok(all)
    }

    /// Adds "`record` replaces `previous`" (None: no record yet) to `batch`; returns the new
    /// bytes.
    pub fn stage(
        &self,
        batch: &mut KeyspaceBatch,
        previous: Option<&[u8]>,
        record: &RenewalRecord,
    ) -> Result<Vec<u8>, StoreError> {
        let key = record.device.parent();
        let value = encode(record)?;
        batch
            .expect(&self.collection, key.as_str().as_bytes(), previous)
            .put(&self.collection, key.as_str().as_bytes(), &value);
        Ok(value)
    }

    /// Writes `record` if the stored bytes are still `previous`.
    pub fn replace(
        &self,
        previous: Option<&[u8]>,
        record: &RenewalRecord,
    ) -> Result<CasOutcome, StoreError> {
        let key = record.device.parent();
        self.store.compare_and_swap(
            &self.collection,
            key.as_str().as_bytes(),
            previous,
            Some(&encode(record)?),
        )
    }

    /// Removes the entry under `key` if it still holds `previous`.
    pub fn remove(&self, key: &[u8], previous: &[u8]) -> Result<CasOutcome, StoreError> {
        self.store
            .compare_and_swap(&self.collection, key, Some(previous), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::renewal_record::{Attempt, ExpiringIdentity};
    use baton_proto::CommandUuid;
    use baton_store::{Keyspace, SledConfig, SledStore};
    use std::time::{Duration, SystemTime};

    #[test]
    fn records_are_written_conditionally_and_old_entries_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_with(&SledConfig::new(dir.path())).unwrap();
        let records = RenewalRecords::new(&store).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let record = RenewalRecord::first(
            EnrollmentId::device("UDID-1").unwrap(),
            &ExpiringIdentity {
                sha256: [1; 32],
                serial: 3,
                not_after: now + Duration::from_secs(3600),
            },
            Attempt {
                command_uuid: CommandUuid::new("C-1").unwrap(),
                challenge: None,
            },
            now,
        );
        assert_eq!(records.replace(None, &record).unwrap(), CasOutcome::Applied);
        assert!(matches!(
            records.replace(None, &record).unwrap(),
            CasOutcome::Conflict { .. }
        ));
        let user = EnrollmentId::parse("UDID-1:alice").unwrap();
        let stored = records.get(&user).unwrap().unwrap();
        assert_eq!(stored.record, record);
        Keyspace::put(&store, records.collection(), &[5; 32], br#"{"serial":1}"#).unwrap();
        let all = records.all().unwrap();
        assert_eq!(all.records.len(), 1);
        assert_eq!(all.stale, vec![vec![5u8; 32]]);
        assert_eq!(
            records.remove(&[5; 32], br#"{"serial":1}"#).unwrap(),
            CasOutcome::Applied
        );
    }
}

//! The [`CertificateRegistry`] the server runs with: issued certificates, serial numbers and
//! revocations kept in the store's [`Keyspace`], so they survive restarts.
//!
//! Collections:
//! - `ca_serials`: key `last` holds the last allocated serial (u64, big-endian). Allocation is a
//!   compare-and-swap loop, so two servers (or threads) never hand out the same serial.
//! - `ca_issued`: serial (u64, big-endian) -> the record as JSON.
//! - `ca_issued_sha256`: SHA-256 of the certificate DER -> serial (big-endian).
//! - `ca_revoked_sha256`: the same, for revoked certificates only, so the check-in path answers
//!   "is this certificate revoked?" with one lookup that misses for nearly every request.
//!
//! [`revoke_by_hash`] and [`revoked_serial`] serve the check-in path: a device's identity
//! certificate is revoked when the device checks out, and a revoked certificate is refused.

use std::sync::Arc;
use std::time::SystemTime;

use baton_store::{
    CasOutcome, CertHash, Collection, KeyspaceBatch, Store, StoreError, from_unix_millis,
    unix_millis,
};
use serde::{Deserialize, Serialize};

use super::registry::{
    CertificateKind, CertificateRegistry, IssuedCertificateRecord, RegistryError,
};

/// Collection holding the serial counter.
pub const SERIALS_COLLECTION: &str = "ca_serials";
/// Collection of issued certificates by serial.
pub const ISSUED_COLLECTION: &str = "ca_issued";
/// Collection mapping certificate hashes to serials.
pub const ISSUED_BY_HASH_COLLECTION: &str = "ca_issued_sha256";
/// Collection mapping revoked certificates' hashes to serials.
pub const REVOKED_BY_HASH_COLLECTION: &str = "ca_revoked_sha256";
/// Key of the serial counter.
const LAST_SERIAL_KEY: &[u8] = b"last";
/// Compare-and-swap attempts before giving up on a contended update.
const CAS_ATTEMPTS: usize = 64;

/// A [`CertificateRegistry`] on the store's keyspace.
#[derive(Clone)]
pub struct StoreCertificateRegistry {
    store: Arc<dyn Store>,
    serials: Collection,
    issued: Collection,
    by_hash: Collection,
    revoked_by_hash: Collection,
}

impl std::fmt::Debug for StoreCertificateRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCertificateRegistry")
            .finish_non_exhaustive()
    }
}

/// The stored form of an [`IssuedCertificateRecord`].
#[derive(Debug, Serialize, Deserialize)]
struct StoredRecord {
    serial: u64,
    subject: String,
    sha256: String,
    not_after_ms: u64,
    kind: String,
    enrollment_hint: Option<String>,
    revoked_at_ms: Option<u64>,
}

fn kind_name(kind: CertificateKind) -> &'static str {
    match kind {
        CertificateKind::DeviceIdentity => "device_identity",
        CertificateKind::TlsServer => "tls_server",
        CertificateKind::UserClient => "user_client",
    }
}

fn kind_from_name(name: &str) -> Result<CertificateKind, RegistryError> {
    Ok(match name {
        "device_identity" => CertificateKind::DeviceIdentity,
        "tls_server" => CertificateKind::TlsServer,
        "user_client" => CertificateKind::UserClient,
        other => {
            return Err(RegistryError::Backend(format!(
                "unknown certificate kind {other:?}"
            )));
        }
    })
}

impl StoredRecord {
    fn of(record: &IssuedCertificateRecord) -> Self {
        Self {
            serial: record.serial,
            subject: record.subject.clone(),
            sha256: hex::encode(record.sha256),
            not_after_ms: unix_millis(record.not_after),
            kind: kind_name(record.kind).to_owned(),
            enrollment_hint: record.enrollment_hint.clone(),
            revoked_at_ms: record.revoked_at.map(unix_millis),
        }
    }

    fn into_record(self) -> Result<IssuedCertificateRecord, RegistryError> {
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&self.sha256, &mut sha256)
            .map_err(|e| RegistryError::Backend(format!("stored certificate hash: {e}")))?;
        Ok(IssuedCertificateRecord {
            serial: self.serial,
            subject: self.subject,
            sha256,
            not_after: from_unix_millis(self.not_after_ms),
            kind: kind_from_name(&self.kind)?,
            enrollment_hint: self.enrollment_hint,
            revoked_at: self.revoked_at_ms.map(from_unix_millis),
        })
    }
}

fn backend(e: StoreError) -> RegistryError {
    RegistryError::Backend(e.to_string())
}

fn decode(bytes: &[u8]) -> Result<IssuedCertificateRecord, RegistryError> {
    serde_json::from_slice::<StoredRecord>(bytes)
        .map_err(|e| RegistryError::Backend(format!("stored certificate record: {e}")))?
        .into_record()
}

fn encode(record: &IssuedCertificateRecord) -> Result<Vec<u8>, RegistryError> {
    serde_json::to_vec(&StoredRecord::of(record))
        .map_err(|e| RegistryError::Backend(format!("encoding a certificate record: {e}")))
}

fn serial_from(bytes: &[u8]) -> Result<u64, RegistryError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| RegistryError::Backend("stored serial is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(array))
}

impl StoreCertificateRegistry {
    /// A registry on `store`'s keyspace.
    pub fn new(store: Arc<dyn Store>) -> Result<Self, RegistryError> {
        let collection = |name: &str| Collection::new(name).map_err(backend);
        Ok(Self {
            store,
            serials: collection(SERIALS_COLLECTION)?,
            issued: collection(ISSUED_COLLECTION)?,
            by_hash: collection(ISSUED_BY_HASH_COLLECTION)?,
            revoked_by_hash: collection(REVOKED_BY_HASH_COLLECTION)?,
        })
    }

    /// Revokes the certificate with this DER hash at `at`; returns its serial, or `None` when the
    /// certificate was not issued by this CA.
    pub fn revoke_by_hash(
        &self,
        sha256: &[u8; 32],
        at: SystemTime,
    ) -> Result<Option<u64>, RegistryError> {
        let Some(record) = self.by_sha256(sha256)? else {
            return Ok(None);
        };
        self.revoke(record.serial, at)?;
        Ok(Some(record.serial))
    }

    /// Every issued record, in serial order.
    pub fn all(&self) -> Result<Vec<IssuedCertificateRecord>, RegistryError> {
        self.store
            .scan_prefix(&self.issued, b"")
            .map_err(backend)?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }
}

impl CertificateRegistry for StoreCertificateRegistry {
    fn next_serial(&self) -> Result<u64, RegistryError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .store
                .get(&self.serials, LAST_SERIAL_KEY)
                .map_err(backend)?;
            let last = current
                .as_deref()
                .map(serial_from)
                .transpose()?
                .unwrap_or(0);
            let next = last
                .checked_add(1)
                .ok_or_else(|| RegistryError::Backend("serial numbers exhausted".into()))?;
            let outcome = self
                .store
                .compare_and_swap(
                    &self.serials,
                    LAST_SERIAL_KEY,
                    current.as_deref(),
                    Some(&next.to_be_bytes()),
                )
                .map_err(backend)?;
            if outcome == CasOutcome::Applied {
                return Ok(next);
            }
        }
        Err(RegistryError::Backend(
            "serial allocation kept conflicting".into(),
        ))
    }

    fn record_issued(&self, record: IssuedCertificateRecord) -> Result<(), RegistryError> {
        let key = record.serial.to_be_bytes();
        let mut batch = KeyspaceBatch::new();
        batch
            .expect(&self.issued, &key, None)
            .put(&self.issued, &key, &encode(&record)?)
            .put(&self.by_hash, &record.sha256, &key);
        match self.store.apply(&batch).map_err(backend)? {
            CasOutcome::Applied => Ok(()),
            _ => Err(RegistryError::DuplicateSerial(record.serial)),
        }
    }

    fn revoke(&self, serial: u64, at: SystemTime) -> Result<bool, RegistryError> {
        let key = serial.to_be_bytes();
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.store.get(&self.issued, &key).map_err(backend)? else {
                return Ok(false);
            };
            let mut record = decode(&current)?;
            if record.revoked_at.is_some() {
                return Ok(true);
            }
            record.revoked_at = Some(at);
            let mut batch = KeyspaceBatch::new();
            batch
                .expect(&self.issued, &key, Some(&current))
                .put(&self.issued, &key, &encode(&record)?)
                .put(&self.revoked_by_hash, &record.sha256, &key);
            let outcome = self.store.apply(&batch).map_err(backend)?;
            if outcome == CasOutcome::Applied {
                return Ok(true);
            }
        }
        Err(RegistryError::Backend("revocation kept conflicting".into()))
    }

    fn by_serial(&self, serial: u64) -> Result<Option<IssuedCertificateRecord>, RegistryError> {
        self.store
            .get(&self.issued, &serial.to_be_bytes())
            .map_err(backend)?
            .as_deref()
            .map(decode)
            .transpose()
    }

    fn by_sha256(
        &self,
        sha256: &[u8; 32],
    ) -> Result<Option<IssuedCertificateRecord>, RegistryError> {
        match self.store.get(&self.by_hash, sha256).map_err(backend)? {
            None => Ok(None),
            Some(serial) => self.by_serial(serial_from(&serial)?),
        }
    }

    fn revoked(&self) -> Result<Vec<IssuedCertificateRecord>, RegistryError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| r.revoked_at.is_some())
            .collect())
    }

    fn issued_count(&self) -> Result<usize, RegistryError> {
        Ok(self
            .store
            .scan_prefix(&self.issued, b"")
            .map_err(backend)?
            .len())
    }
}

/// Revokes the built-in CA's certificate with hash `hash` (a device's identity, at CheckOut).
/// Returns its serial, or `None` for a certificate this CA did not issue.
pub fn revoke_by_hash(
    store: &Arc<dyn Store>,
    hash: &CertHash,
    at: SystemTime,
) -> Result<Option<u64>, RegistryError> {
    StoreCertificateRegistry::new(Arc::clone(store))?.revoke_by_hash(&hash.0, at)
}

/// The serial of the certificate with hash `hash` when the built-in CA issued and revoked it.
pub fn revoked_serial(store: &dyn Store, hash: &CertHash) -> Result<Option<u64>, StoreError> {
    let collection = Collection::new(REVOKED_BY_HASH_COLLECTION)?;
    Ok(store
        .get(&collection, &hash.0)?
        .and_then(|serial| serial_from(&serial).ok()))
}

/// The built-in CA's record of the certificate with hash `hash`, or `None` for a certificate it
/// did not issue (one lookup that misses) or a record that does not decode.
pub fn issued_by_hash(
    store: &dyn Store,
    hash: &CertHash,
) -> Result<Option<IssuedCertificateRecord>, StoreError> {
    let by_hash = Collection::new(ISSUED_BY_HASH_COLLECTION)?;
    let Some(serial) = store.get(&by_hash, &hash.0)? else {
        return Ok(None);
    };
    let Ok(serial) = serial_from(&serial) else {
        return Ok(None);
    };
    let issued = Collection::new(ISSUED_COLLECTION)?;
    let Some(row) = store.get(&issued, &serial.to_be_bytes())? else {
        return Ok(None);
    };
    Ok(decode(&row).ok())
}

/// The device id a certificate was issued for through a renewal profile (its registry hint is
/// `renewal:<device id>`), or `None` for any other certificate. One lookup that misses for every
/// certificate the built-in CA did not issue.
pub fn renewal_device(store: &dyn Store, hash: &CertHash) -> Result<Option<String>, StoreError> {
    Ok(issued_by_hash(store, hash)?
        .and_then(|record| record.enrollment_hint)
        .and_then(|hint| {
            hint.strip_prefix(super::profile_issuer::RENEWAL_HINT_PREFIX)
                .map(str::to_owned)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_store::{SledConfig, SledStore};
    use std::time::Duration;

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SledStore::open_with(&SledConfig::new(dir)).unwrap())
    }

    fn record(serial: u64, hash_byte: u8) -> IssuedCertificateRecord {
        IssuedCertificateRecord {
            serial,
            subject: format!("CN=device {serial}"),
            sha256: [hash_byte; 32],
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            kind: CertificateKind::DeviceIdentity,
            enrollment_hint: Some("hint".into()),
            revoked_at: None,
        }
    }

    #[test]
    fn serials_records_and_revocations_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        {
            let store = open(dir.path());
            let registry = StoreCertificateRegistry::new(Arc::clone(&store)).unwrap();
            assert_eq!(registry.next_serial().unwrap(), 1);
            assert_eq!(registry.next_serial().unwrap(), 2);
            registry.record_issued(record(1, 7)).unwrap();
            registry.record_issued(record(2, 8)).unwrap();
            assert!(matches!(
                registry.record_issued(record(1, 9)),
                Err(RegistryError::DuplicateSerial(1))
            ));
            assert_eq!(registry.revoke_by_hash(&[7; 32], first).unwrap(), Some(1));
            assert_eq!(registry.revoke_by_hash(&[3; 32], first).unwrap(), None);
            assert!(registry.revoke(1, first + Duration::from_secs(9)).unwrap());
            assert!(!registry.revoke(99, first).unwrap());
        }
        let store = open(dir.path());
        let registry = StoreCertificateRegistry::new(Arc::clone(&store)).unwrap();
        assert_eq!(registry.next_serial().unwrap(), 3);
        assert_eq!(registry.issued_count().unwrap(), 2);
        let revoked = registry.revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].revoked_at, Some(first));
        assert_eq!(registry.by_sha256(&[8; 32]).unwrap().unwrap(), record(2, 8));
        assert_eq!(
            revoked_serial(store.as_ref(), &CertHash([7; 32])).unwrap(),
            Some(1)
        );
        assert_eq!(
            revoked_serial(store.as_ref(), &CertHash([8; 32])).unwrap(),
            None
        );
    }

    #[test]
    fn concurrent_allocation_never_repeats_a_serial() {
        let dir = tempfile::tempdir().unwrap();
        let registry = StoreCertificateRegistry::new(open(dir.path())).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let registry = registry.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| registry.next_serial().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 100);
        assert_eq!(all.first(), Some(&1));
    }
}

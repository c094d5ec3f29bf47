//! What the CA persists about the certificates it issued: serial numbers, fingerprints, expiry
//! and revocation. [`CertificateRegistry`] is the role trait; [`InMemoryCertificateRegistry`] is
//! the implementation used by tests and benchmarks (the server wires a store-backed one).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use thiserror::Error;

/// A registry (storage) failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The backing store failed.
    #[error("registry backend failure: {0}")]
    Backend(String),
    /// A record with this serial number already exists.
    #[error("serial number {0} already recorded")]
    DuplicateSerial(u64),
}

/// What a certificate was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertificateKind {
    /// A device identity certificate (SCEP).
    DeviceIdentity,
    /// A TLS server certificate.
    TlsServer,
    /// A per-user client certificate.
    UserClient,
}

/// One issued certificate as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificateRecord {
    /// The serial number.
    pub serial: u64,
    /// The subject, one line (`CN=..., O=...`).
    pub subject: String,
    /// SHA-256 of the certificate's DER.
    pub sha256: [u8; 32],
    /// End of validity.
    pub not_after: SystemTime,
    /// What it was issued for.
    pub kind: CertificateKind,
    /// A hint tying it to an enrollment (e.g. the one-time challenge's hint), if known.
    pub enrollment_hint: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<SystemTime>,
}

/// Persistence for issued certificates.
///
/// Calls are synchronous and short; the SCEP server calls them from a blocking task.
pub trait CertificateRegistry: Send + Sync + fmt::Debug {
    /// Reserves and returns the next unused serial number (never 0, never reused).
    fn next_serial(&self) -> Result<u64, RegistryError>;
    /// Records an issued certificate.
    fn record_issued(&self, record: IssuedCertificateRecord) -> Result<(), RegistryError>;
    /// Marks a certificate revoked; returns false when the serial is unknown. Revoking twice keeps
    /// the first revocation time.
    fn revoke(&self, serial: u64, at: SystemTime) -> Result<bool, RegistryError>;
    /// Looks a certificate up by serial number.
    fn by_serial(&self, serial: u64) -> Result<Option<IssuedCertificateRecord>, RegistryError>;
    /// Looks a certificate up by the SHA-256 of its DER.
    fn by_sha256(
        &self,
        sha256: &[u8; 32],
    ) -> Result<Option<IssuedCertificateRecord>, RegistryError>;
    /// Every revoked certificate (for the CRL).
    fn revoked(&self) -> Result<Vec<IssuedCertificateRecord>, RegistryError>;
    /// How many certificates were recorded.
    fn issued_count(&self) -> Result<usize, RegistryError>;
}

/// A [`CertificateRegistry`] in memory.
#[derive(Debug, Default)]
pub struct InMemoryCertificateRegistry {
    inner: Mutex<InMemoryState>,
}

#[derive(Debug, Default)]
struct InMemoryState {
    last_serial: u64,
    by_serial: HashMap<u64, IssuedCertificateRecord>,
    by_hash: HashMap<[u8; 32], u64>,
}

impl InMemoryCertificateRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, InMemoryState> {
        // A poisoned lock only means another thread panicked mid-update of plain maps; the data
        // is still consistent enough to keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CertificateRegistry for InMemoryCertificateRegistry {
    fn next_serial(&self) -> Result<u64, RegistryError> {
        let mut state = self.lock();
        state.last_serial += 1;
        Ok(state.last_serial)
    }

    fn record_issued(&self, record: IssuedCertificateRecord) -> Result<(), RegistryError> {
        let mut state = self.lock();
        if state.by_serial.contains_key(&record.serial) {
            return Err(RegistryError::DuplicateSerial(record.serial));
        }
        state.by_hash.insert(record.sha256, record.serial);
        state.by_serial.insert(record.serial, record);
        Ok(())
    }

    fn revoke(&self, serial: u64, at: SystemTime) -> Result<bool, RegistryError> {
        let mut state = self.lock();
        Ok(match state.by_serial.get_mut(&serial) {
            Some(record) => {
                record.revoked_at.get_or_insert(at);
                true
            }
            None => false,
        })
    }

    fn by_serial(&self, serial: u64) -> Result<Option<IssuedCertificateRecord>, RegistryError> {
        Ok(self.lock().by_serial.get(&serial).cloned())
    }

    fn by_sha256(
        &self,
        sha256: &[u8; 32],
    ) -> Result<Option<IssuedCertificateRecord>, RegistryError> {
        let state = self.lock();
        Ok(state
            .by_hash
            .get(sha256)
            .and_then(|serial| state.by_serial.get(serial))
            .cloned())
    }

    fn revoked(&self) -> Result<Vec<IssuedCertificateRecord>, RegistryError> {
        let mut revoked: Vec<_> = self
            .lock()
            .by_serial
            .values()
            .filter(|r| r.revoked_at.is_some())
            .cloned()
            .collect();
        revoked.sort_by_key(|r| r.serial);
        Ok(revoked)
    }

    fn issued_count(&self) -> Result<usize, RegistryError> {
        Ok(self.lock().by_serial.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(serial: u64, hash_byte: u8) -> IssuedCertificateRecord {
        IssuedCertificateRecord {
            serial,
            subject: format!("CN=device {serial}"),
            sha256: [hash_byte; 32],
            not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000),
            kind: CertificateKind::DeviceIdentity,
            enrollment_hint: None,
            revoked_at: None,
        }
    }

    #[test]
    fn serials_are_unique_and_nonzero() {
        let registry = InMemoryCertificateRegistry::new();
        let a = registry.next_serial().unwrap();
        let b = registry.next_serial().unwrap();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn records_are_found_and_revocation_sticks() {
        let registry = InMemoryCertificateRegistry::new();
        registry.record_issued(record(5, 1)).unwrap();
        registry.record_issued(record(6, 2)).unwrap();
        assert!(matches!(
            registry.record_issued(record(5, 3)),
            Err(RegistryError::DuplicateSerial(5))
        ));
        assert_eq!(registry.by_sha256(&[2; 32]).unwrap().unwrap().serial, 6);
        assert!(registry.by_sha256(&[9; 32]).unwrap().is_none());
        let first = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        assert!(registry.revoke(5, first).unwrap());
        assert!(registry.revoke(5, first + Duration::from_secs(5)).unwrap());
        assert!(!registry.revoke(99, first).unwrap());
        let revoked = registry.revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].revoked_at, Some(first));
        assert_eq!(registry.issued_count().unwrap(), 2);
    }
}

//! The certificate the listener serves, behind a rustls [`ResolvesServerCert`] that each new
//! handshake asks: replacing it swaps one `Arc`, so new connections get the new certificate
//! while established ones (HTTP/1.1 keep-alive, HTTP/2) carry on with the one they negotiated.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::server_identity::certificate_time;
use super::{TlsError, TlsIdentity};

/// One certificate as served: the rustls form, the PEM-level identity (for signing profiles),
/// and what the rotation and the metrics look at.
#[derive(Debug)]
pub struct ServedCertificate {
    certified: Arc<CertifiedKey>,
    identity: TlsIdentity,
    not_after: SystemTime,
    serial_hex: String,
}

impl ServedCertificate {
    /// Checks that the key belongs to the leaf and reads the leaf's dates and serial.
    pub fn new(identity: TlsIdentity) -> Result<Self, TlsError> {
        let certified = Arc::new(identity.certified_key()?);
        let leaf = identity.leaf()?;
        let not_after = certificate_time(leaf.not_after())?;
        let serial_hex = leaf.serial_number().to_bn()?.to_hex_str()?.to_string();
        Ok(Self {
            certified,
            identity,
            not_after,
            serial_hex,
        })
    }

    /// The chain and key.
    pub fn identity(&self) -> &TlsIdentity {
        &self.identity
    }

    /// The leaf's NotAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// The leaf's serial number, upper-case hex.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }
}

/// The certificate new handshakes get. Share it behind an `Arc`.
#[derive(Debug)]
pub struct RotatingCertificate {
    current: RwLock<Arc<ServedCertificate>>,
}

impl RotatingCertificate {
    /// Starts with `identity`.
    pub fn new(identity: TlsIdentity) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(Arc::new(ServedCertificate::new(identity)?)),
        })
    }

    /// The certificate being served.
    pub fn current(&self) -> Arc<ServedCertificate> {
        // The lock guards a single `Arc` assignment, which cannot leave it half-written: a
        // poisoned lock still holds a valid value.
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Serves `identity` to every handshake from now on; returns the new entry. Fails (and
    /// keeps the current certificate) when the key does not match the leaf.
    pub fn replace(&self, identity: TlsIdentity) -> Result<Arc<ServedCertificate>, TlsError> {
        let next = Arc::new(ServedCertificate::new(identity)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&next);
        Ok(next)
    }
}

impl ResolvesServerCert for RotatingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().certified))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn generate(dir: &std::path::Path) -> TlsIdentity {
        TlsIdentity::generate_self_signed(
            dir,
            &["localhost".to_owned()],
            Duration::from_secs(3600),
            SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn replace_swaps_and_a_mismatched_key_keeps_the_current_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let rotating = RotatingCertificate::new(generate(dir.path())).unwrap();
        let first = rotating.current();
        let second = rotating.replace(generate(dir.path())).unwrap();
        assert_ne!(first.serial_hex(), second.serial_hex());
        assert_eq!(rotating.current().serial_hex(), second.serial_hex());
        // The first handshake's entry is untouched: connections holding it carry on.
        assert_eq!(first.identity().cert_chain.len(), 1);

        let mut mismatched = generate(dir.path());
        mismatched.key = generate(dir.path()).key;
        assert!(rotating.replace(mismatched).is_err());
        assert_eq!(rotating.current().serial_hex(), second.serial_hex());
    }
}

//! The identity-certificate role: which enrollment an identity certificate belongs to.

use std::fmt;

use baton_proto::EnrollmentId;
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// SHA-256 of an identity certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CertHash(pub [u8; 32]);

impl fmt::Debug for CertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertHash(")?;
        for b in &self.0[..6] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Bindings between identity certificates and device channels.
///
/// A certificate is bound to one device channel; user channels of the device use the same
/// certificate, so callers check `cert_enrollment(hash) == Some(id.parent())`.
pub trait CertBindingStore {
    /// Binds `hash` to the device channel `id`, replacing the channel's previous certificate.
    /// Fails with [`StoreError::CertificateBoundElsewhere`](crate::StoreError) when the
    /// certificate is bound to another enrollment. Durable when it returns.
    fn bind_certificate(&self, id: &EnrollmentId, hash: &CertHash) -> StoreResult<()>;

    /// The enrollment a certificate is bound to.
    fn cert_enrollment(&self, hash: &CertHash) -> StoreResult<Option<EnrollmentId>>;

    /// The certificate bound to an enrollment (its device channel's).
    fn enrollment_cert(&self, id: &EnrollmentId) -> StoreResult<Option<CertHash>>;
}

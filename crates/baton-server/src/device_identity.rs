//! Who sent a device request, and may that sender speak for this enrollment?
//!
//! [`verify`] checks the `Mdm-Signature` (or the TLS client certificate) against the trusted
//! device CAs with the verifier's cached fast path. [`check_binding`] then applies the binding
//! rules: a certificate is bound to a device channel at Authenticate; every later message of that
//! device, and of its user channels (`device:user`), must come with the same certificate; a
//! certificate bound to one device is refused for any other.

use std::sync::Arc;
use std::time::SystemTime;

use baton_proto::EnrollmentId;
use baton_store::{CertHash, Store};
use bytes::Bytes;

use crate::error_response::DeviceError;
use crate::identity::{IdentityVerifier, VerifiedIdentity};

/// A device request as received: the raw body and the two possible identity proofs.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    /// The raw `Mdm-Signature` header value, if sent.
    pub signature: Option<Bytes>,
    /// The DER of the TLS client certificate, if the connection presented one.
    pub peer_certificate: Option<Arc<[u8]>>,
    /// The raw body.
    pub body: Bytes,
}

/// Verifies the request's identity proof.
pub fn verify(
    verifier: &IdentityVerifier,
    request: &DeviceRequest,
    now: SystemTime,
) -> Result<VerifiedIdentity, DeviceError> {
    Ok(verifier.verify_request(
        request.signature.as_deref(),
        request.peer_certificate.as_deref(),
        &request.body,
        now,
    )?)
}

/// The certificate hash as the store keys it.
pub fn cert_hash(identity: &VerifiedIdentity) -> CertHash {
    CertHash(identity.cert_sha256)
}

/// Fails when the built-in CA revoked the certificate (its device checked out).
pub fn check_not_revoked(
    store: &dyn Store,
    identity: &VerifiedIdentity,
) -> Result<(), DeviceError> {
    match crate::enrollment::store_registry::revoked_serial(store, &cert_hash(identity))? {
        Some(serial) => Err(DeviceError::CertificateRevoked { serial }),
        None => Ok(()),
    }
}

/// Fails unless the certificate may be bound to `channel`'s device at Authenticate: it is either
/// unbound or already bound to that same device, and not revoked.
pub fn check_bindable(
    store: &dyn Store,
    identity: &VerifiedIdentity,
    channel: &EnrollmentId,
) -> Result<(), DeviceError> {
    check_not_revoked(store, identity)?;
    let device = channel.parent();
    match store.cert_enrollment(&cert_hash(identity))? {
        Some(owner) if owner != device => {
            Err(DeviceError::CertificateBoundElsewhere { bound_to: owner })
        }
        _ => Ok(()),
    }
}

/// Fails unless the certificate is the one bound to `channel`'s device, and not revoked.
///
/// One exception binds a new certificate: an identity the built-in CA issued through a renewal
/// profile queued for this very device (its registry hint names the device). The renewal
/// profile reached the device over its authenticated channel, so only that device knew the
/// challenge; iOS may start signing with the renewed identity without a new Authenticate, and
/// refusing it would strand the device. The takeover completes the device's open renewal.
pub fn check_binding(
    store: &dyn Store,
    identity: &VerifiedIdentity,
    channel: &EnrollmentId,
    now: SystemTime,
) -> Result<(), DeviceError> {
    check_not_revoked(store, identity)?;
    let device = channel.parent();
    let hash = cert_hash(identity);
    match store.cert_enrollment(&hash)? {
        Some(owner) if owner == device => Ok(()),
        Some(owner) => Err(DeviceError::CertificateBoundElsewhere { bound_to: owner }),
        None => {
            let renewed_for = crate::enrollment::store_registry::renewal_device(store, &hash)?;
            if renewed_for.as_deref() == Some(device.as_str()) {
                store.bind_certificate(&device, &hash)?;
                tracing::info!(enrollment_id = %device, cert_sha256 = %identity.cert_sha256_hex(),
                    "renewed identity certificate bound");
                // The binding is what matters to the device; a record the periodic pass fixes
                // up later is not worth refusing the message for.
                if let Err(error) =
                    crate::enrollment::renewal::identity_replaced(store, &device, now)
                {
                    tracing::warn!(enrollment_id = %device, %error,
                        "marking the identity renewal completed failed");
                }
                Ok(())
            } else {
                Err(DeviceError::CertificateNotBound(device))
            }
        }
    }
}

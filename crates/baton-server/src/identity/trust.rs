//! The trusted device CAs, and the full (slow) path for a certificate seen for the first time:
//! parse it with openssl, build and verify its chain against the trust anchors, and keep what the
//! fast path needs afterwards (public key, subject, the chain's validity window).

use std::fmt;

use openssl::nid::Nid;
use openssl::pkey::{PKey, Public};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509, X509NameRef, X509Ref, X509StoreContext};

use super::asn1_time::openssl_unix_seconds;
use super::error::IdentityError;

/// The set of CAs whose device certificates Baton trusts: the built-in enrollment CA and any
/// `--device-ca` extras. Every anchor is trusted as is, even an intermediate (partial chains are
/// allowed), so an operator can name the issuing CA without its root.
pub struct TrustAnchors {
    store: X509Store,
    subjects: Vec<String>,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchors")
            .field("subjects", &self.subjects)
            .finish_non_exhaustive()
    }
}

impl TrustAnchors {
    /// Trust exactly these CA certificates.
    pub fn new(cas: impl IntoIterator<Item = X509>) -> Result<Self, IdentityError> {
        let mut builder = X509StoreBuilder::new()?;
        // Dates are checked by Baton itself (with the configured clock skew and an injected
        // `now`), so openssl's own time check against the system clock is turned off.
        builder.set_flags(X509VerifyFlags::PARTIAL_CHAIN | X509VerifyFlags::NO_CHECK_TIME)?;
        let mut subjects = Vec::new();
        for ca in cas {
            subjects.push(subject_text(ca.subject_name()));
            builder.add_cert(ca)?;
        }
        Ok(Self {
            store: builder.build(),
            subjects,
        })
    }

    /// Trust every certificate in these PEM documents (each may hold several certificates).
    pub fn from_pem<'a>(
        documents: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<Self, IdentityError> {
        let mut cas = Vec::new();
        for pem in documents {
            let certs = X509::stack_from_pem(pem).map_err(|_| IdentityError::BadCertificate)?;
            if certs.is_empty() {
                return Err(IdentityError::BadCertificate);
            }
            cas.extend(certs);
        }
        Self::new(cas)
    }

    /// One-line subjects of the anchors, for logs and diagnostics.
    pub fn subjects(&self) -> &[String] {
        &self.subjects
    }

    /// Parses `leaf_der`, verifies its chain (using `intermediates_der` as untrusted helpers) and
    /// returns the facts the fast path caches. Dates are not judged here, only collected.
    pub(crate) fn verify_certificate(
        &self,
        leaf_der: &[u8],
        intermediates_der: &[&[u8]],
    ) -> Result<CertificateFacts, IdentityError> {
        let leaf = X509::from_der(leaf_der).map_err(|_| IdentityError::BadCertificate)?;
        let mut intermediates = Stack::new()?;
        for der in intermediates_der {
            // An unreadable extra certificate is not fatal: the chain may not need it.
            if let Ok(cert) = X509::from_der(der) {
                intermediates.push(cert)?;
            }
        }
        let mut context = X509StoreContext::new()?;
        let window = context
            .init(&self.store, &leaf, &intermediates, |ctx| {
                if !ctx.verify_cert()? {
                    return Ok(Err(ctx.error().error_string().to_owned()));
                }
                let mut window = ValidityWindow::of(&leaf)?;
                if let Some(chain) = ctx.chain() {
                    for cert in chain {
                        window = window.intersect(ValidityWindow::of(cert)?);
                    }
                }
                Ok(Ok(window))
            })
            // A garbled certificate (unreadable times, key or extensions) fails inside openssl's
            // verification: the input's fault, not the server's.
            .map_err(|_| IdentityError::BadCertificate)?;
        let window = window.map_err(IdentityError::UntrustedCertificate)?;
        let leaf_window = ValidityWindow::of(&leaf).map_err(|_| IdentityError::BadCertificate)?;
        let public_key = leaf
            .public_key()
            .map_err(|_| IdentityError::BadCertificate)?;
        Ok(CertificateFacts {
            public_key,
            subject: subject_text(leaf.subject_name()),
            common_name: leaf
                .subject_name()
                .entries_by_nid(Nid::COMMONNAME)
                .next()
                .and_then(|entry| entry.data().to_string().ok()),
            chain_window: window,
            leaf_window,
        })
    }
}

/// A `[not_before, not_after]` interval in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValidityWindow {
    /// First second of validity.
    pub(crate) not_before: i64,
    /// Last second of validity.
    pub(crate) not_after: i64,
}

impl ValidityWindow {
    fn of(cert: &X509Ref) -> Result<Self, openssl::error::ErrorStack> {
        Ok(Self {
            not_before: openssl_unix_seconds(cert.not_before())?,
            not_after: openssl_unix_seconds(cert.not_after())?,
        })
    }

    fn intersect(self, other: Self) -> Self {
        Self {
            not_before: self.not_before.max(other.not_before),
            not_after: self.not_after.min(other.not_after),
        }
    }
}

/// What the fast path keeps about a certificate whose chain has been verified once.
#[derive(Debug)]
pub(crate) struct CertificateFacts {
    /// The certificate's public key, ready for signature verification.
    pub(crate) public_key: PKey<Public>,
    /// One-line subject (`CN=…, O=…`).
    pub(crate) subject: String,
    /// The subject's first common name, if any.
    pub(crate) common_name: Option<String>,
    /// The intersection of the validity of every certificate in the verified chain.
    pub(crate) chain_window: ValidityWindow,
    /// The certificate's own validity.
    pub(crate) leaf_window: ValidityWindow,
}

/// `CN=device, O=Baton` style text for a Name (attribute short names, in certificate order).
fn subject_text(name: &X509NameRef) -> String {
    let mut out = String::new();
    for entry in name.entries() {
        if !out.is_empty() {
            out.push_str(", ");
        }
        let key = entry.object().nid().short_name().unwrap_or("?");
        out.push_str(key);
        out.push('=');
        match entry.data().to_string() {
            Ok(value) => out.push_str(&value),
            Err(_) => out.push('?'),
        }
    }
    out
}

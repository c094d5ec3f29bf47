//! The MDM push certificate: loading it (PKCS#12 or PEM), reading its topic and validity, and
//! handing its chain and key to rustls for TLS client authentication towards APNs.
//!
//! OpenSSL does the parsing (PKCS#12 files exported by older Keychain Access or
//! `openssl pkcs12 -export` before OpenSSL 3 use RC2/3DES and need OpenSSL's legacy provider, which
//! is loaded on demand). rustls does the TLS: the certificate chain and key are converted to
//! `rustls::pki_types` once, here.

use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_proto::{IdError, Topic};
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::provider::Provider;
use openssl::x509::{X509, X509NameRef};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Every MDM push topic starts with this prefix (`com.apple.mgmt.External.<uuid>`).
pub const MDM_TOPIC_PREFIX: &str = "com.apple.mgmt.";

/// Why a push certificate could not be loaded or is not an MDM push certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a DER-encoded PKCS#12 file.
    #[error("not a PKCS#12 file: {0}")]
    NotPkcs12(#[source] ErrorStack),
    /// The PKCS#12 file could not be decrypted: a wrong password, or an encryption that no
    /// available OpenSSL provider supports (the legacy provider was tried).
    #[error("cannot decrypt the PKCS#12 file (wrong password or unsupported encryption): {0}")]
    Pkcs12Decrypt(#[source] ErrorStack),
    /// The PEM certificate could not be parsed.
    #[error("cannot parse the PEM certificate: {0}")]
    CertificatePem(#[source] ErrorStack),
    /// The PEM private key could not be parsed.
    #[error("cannot parse the PEM private key: {0}")]
    KeyPem(#[source] ErrorStack),
    /// The file holds no certificate.
    #[error("the file holds no certificate")]
    MissingCertificate,
    /// The file holds no private key.
    #[error("the file holds no private key")]
    MissingKey,
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The certificate subject has no UID attribute (OID 0.9.2342.19200300.100.1.1).
    #[error("the certificate subject has no UID attribute, so it names no APNs topic")]
    NoTopic,
    /// The subject UID is not a valid topic string.
    #[error("the certificate's UID is not a valid topic: {0}")]
    InvalidTopic(#[source] IdError),
    /// The subject UID does not start with `com.apple.mgmt.`: not an MDM push certificate.
    #[error(
        "topic {topic:?} does not start with {MDM_TOPIC_PREFIX:?}: not an MDM push certificate"
    )]
    NotMdmTopic {
        /// The topic the certificate names.
        topic: String,
    },
    /// Another OpenSSL failure (encoding the key or certificate, reading dates).
    #[error("OpenSSL: {0}")]
    Openssl(#[from] ErrorStack),
}

/// An Apple MDM push certificate with its private key.
///
/// The topic is the certificate subject's UID; only `com.apple.mgmt.*` topics are accepted.
#[derive(Clone)]
pub struct PushCertificate {
    topic: Topic,
    subject: String,
    not_before: SystemTime,
    not_after: SystemTime,
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

impl PushCertificate {
    /// Loads a certificate and key from a DER PKCS#12 file (`.p12`/`.pfx`), including files that
    /// use the legacy RC2/3DES encryption.
    pub fn from_pkcs12(der: &[u8], password: &str) -> Result<Self, CertificateError> {
        let p12 = Pkcs12::from_der(der).map_err(CertificateError::NotPkcs12)?;
        let parsed = match p12.parse2(password) {
            Ok(parsed) => parsed,
            Err(first) => {
                // Older files need the legacy provider; load it and try once more.
                if !load_legacy_provider() {
                    return Err(CertificateError::Pkcs12Decrypt(first));
                }
                let p12 = Pkcs12::from_der(der).map_err(CertificateError::NotPkcs12)?;
                p12.parse2(password)
                    .map_err(|_| CertificateError::Pkcs12Decrypt(first))?
            }
        };
        let cert = parsed.cert.ok_or(CertificateError::MissingCertificate)?;
        let key = parsed.pkey.ok_or(CertificateError::MissingKey)?;
        let extra = parsed
            .ca
            .map(|s| s.into_iter().collect())
            .unwrap_or_default();
        Self::from_parts(cert, extra, &key)
    }

    /// Loads a PEM certificate (leaf first, optionally followed by intermediates) and its PEM
    /// private key (PKCS#8 or traditional RSA/EC).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertificateError> {
        let mut certs = X509::stack_from_pem(cert_pem)
            .map_err(CertificateError::CertificatePem)?
            .into_iter();
        let leaf = certs.next().ok_or(CertificateError::MissingCertificate)?;
        let key = PKey::private_key_from_pem(key_pem).map_err(CertificateError::KeyPem)?;
        Self::from_parts(leaf, certs.collect(), &key)
    }

    fn from_parts(
        leaf: X509,
        intermediates: Vec<X509>,
        key: &PKey<Private>,
    ) -> Result<Self, CertificateError> {
        if !leaf.public_key()?.public_eq(key) {
            return Err(CertificateError::KeyMismatch);
        }
        let topic = topic_of(leaf.subject_name())?;
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(CertificateDer::from(leaf.to_der()?));
        for c in &intermediates {
            chain.push(CertificateDer::from(c.to_der()?));
        }
        Ok(Self {
            topic,
            subject: describe_name(leaf.subject_name()),
            not_before: system_time(leaf.not_before())?,
            not_after: system_time(leaf.not_after())?,
            chain,
            key_pkcs8: key.private_key_to_pkcs8()?,
        })
    }

    /// The APNs topic (`com.apple.mgmt.External.<uuid>`), read from the subject's UID.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// The subject as a one-line `key=value` string, for logs and the admin API.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The start of the validity period.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// The end of the validity period: renew before this date (Apple push certificates last a year).
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// True when `now` is outside the validity period.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now < self.not_before || now > self.not_after
    }

    /// The time left until expiry at `now` (zero once expired).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.not_after.duration_since(now).unwrap_or(Duration::ZERO)
    }

    /// The certificate chain (leaf first) in DER, for rustls.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key in PKCS#8 DER, for rustls.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }
}

impl fmt::Debug for PushCertificate {
    // The key is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushCertificate")
            .field("topic", &self.topic)
            .field("subject", &self.subject)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// The subject's UID attribute (OID 0.9.2342.19200300.100.1.1), if any.
pub(crate) fn subject_uid(name: &X509NameRef) -> Option<String> {
    let entry = name.entries_by_nid(Nid::USERID).next()?;
    entry.data().to_string().ok()
}

/// Reads the topic from a subject name and checks it is an MDM topic.
pub(crate) fn topic_of(name: &X509NameRef) -> Result<Topic, CertificateError> {
    let uid = subject_uid(name).ok_or(CertificateError::NoTopic)?;
    if !uid.starts_with(MDM_TOPIC_PREFIX) {
        return Err(CertificateError::NotMdmTopic { topic: uid });
    }
    Topic::new(uid).map_err(CertificateError::InvalidTopic)
}

/// A subject name as `UID=…, CN=…, O=…` (entries in certificate order).
pub(crate) fn describe_name(name: &X509NameRef) -> String {
    let mut out = String::new();
    for entry in name.entries() {
        let key = entry.object().nid().short_name().unwrap_or("?");
        let value = entry.data().to_string().unwrap_or_default();
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push_str(key);
        out.push('=');
        out.push_str(&value);
    }
    out
}

fn system_time(t: &Asn1TimeRef) -> Result<SystemTime, ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(t)?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    Ok(match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    })
}

/// Loads OpenSSL's legacy provider once (keeping the default provider); false if unavailable.
fn load_legacy_provider() -> bool {
    static LEGACY: OnceLock<Option<Provider>> = OnceLock::new();
    LEGACY
        .get_or_init(|| match Provider::try_load(None, "legacy", true) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(error = %e, "OpenSSL legacy provider unavailable");
                None
            }
        })
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPki;

    #[test]
    fn pem_certificate_yields_topic_and_dates() {
        let pki = TestPki::generate().unwrap();
        let cert = PushCertificate::from_pem(&pki.push_cert_pem, &pki.push_key_pem).unwrap();
        assert_eq!(cert.topic(), &pki.topic);
        assert!(
            cert.topic()
                .as_str()
                .starts_with("com.apple.mgmt.External.")
        );
        assert!(cert.subject().contains(pki.topic.as_str()));
        let now = SystemTime::now();
        assert!(!cert.is_expired(now));
        let left = cert.remaining(now);
        assert!(
            left > Duration::from_secs(300 * 86_400) && left < Duration::from_secs(367 * 86_400)
        );
        assert!(!format!("{cert:?}").contains("key_pkcs8"));
    }

    #[test]
    fn modern_pkcs12_loads_and_wrong_password_is_refused() {
        let pki = TestPki::generate().unwrap();
        let p12 = pki.push_pkcs12("s3cret").unwrap();
        let cert = PushCertificate::from_pkcs12(&p12, "s3cret").unwrap();
        assert_eq!(cert.topic(), &pki.topic);
        assert!(matches!(
            PushCertificate::from_pkcs12(&p12, "wrong"),
            Err(CertificateError::Pkcs12Decrypt(_))
        ));
        assert!(matches!(
            PushCertificate::from_pkcs12(b"not der", "x"),
            Err(CertificateError::NotPkcs12(_))
        ));
    }

    #[test]
    fn legacy_pkcs12_loads() {
        let pki = TestPki::generate().unwrap();
        let p12 = pki.push_pkcs12_legacy("legacy-pass").unwrap();
        let cert = PushCertificate::from_pkcs12(&p12, "legacy-pass").unwrap();
        assert_eq!(cert.topic(), &pki.topic);
        assert_eq!(cert.chain().len(), 1);
    }

    #[test]
    fn non_mdm_topic_is_refused() {
        let pki = TestPki::generate().unwrap();
        let (cert, key) = pki.client_cert_with_uid(Some("com.example.app")).unwrap();
        match PushCertificate::from_pem(&cert, &key) {
            Err(CertificateError::NotMdmTopic { topic }) => assert_eq!(topic, "com.example.app"),
            other => panic!("expected NotMdmTopic, got {other:?}"),
        }
        let (cert, key) = pki.client_cert_with_uid(None).unwrap();
        assert!(matches!(
            PushCertificate::from_pem(&cert, &key),
            Err(CertificateError::NoTopic)
        ));
    }

    #[test]
    fn mismatched_key_is_refused() {
        let pki = TestPki::generate().unwrap();
        assert!(matches!(
            PushCertificate::from_pem(&pki.push_cert_pem, &pki.ca_key_pem),
            Err(CertificateError::KeyMismatch)
        ));
    }
}

//! The push certificate as the server handles it: loaded from `--push-cert` files, from an
//! upload, or from the store's [`PushCertStore`](baton_store::PushCertStore); converted to PEM
//! for storage; and shown to operators ([`CertificateView`]) with its expiry, never its key.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use baton_apns::{CertificateError, PushCertificate};
use baton_store::unix_millis;
use openssl::error::ErrorStack;
use openssl::pkey::PKey;
use openssl::x509::X509;
use serde::Serialize;

use super::config::PushConfig;
use crate::timestamp::rfc3339;

/// Below this many days left the certificate is reported as expiring (warning logs).
pub const EXPIRY_WARNING_DAYS: u64 = 30;

const DAY: Duration = Duration::from_secs(86_400);

/// Why a push certificate could not be loaded or converted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushCertificateError {
    /// A certificate or key file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a usable MDM push certificate and key.
    #[error("push certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// Converting the certificate or key to PEM for storage failed.
    #[error("converting the push certificate to PEM: {0}")]
    Pem(#[from] ErrorStack),
}

/// Where the running push certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertificateSource {
    /// `--push-cert` (and `--push-key`) files, read at start.
    File,
    /// The store, where an earlier upload put it.
    Store,
    /// `PUT /api/v1/push-certificate` on this run.
    Upload,
}

/// How close the certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExpiryState {
    /// More than [`EXPIRY_WARNING_DAYS`] left.
    Valid,
    /// Fewer than [`EXPIRY_WARNING_DAYS`] left: renew it.
    Expiring,
    /// Expired (or not yet valid): APNs refuses it.
    Expired,
}

/// The expiry state of `cert` at `now`.
pub fn expiry_state(cert: &PushCertificate, now: SystemTime) -> ExpiryState {
    if cert.is_expired(now) {
        ExpiryState::Expired
    } else if cert.remaining(now) < DAY * u32::try_from(EXPIRY_WARNING_DAYS).unwrap_or(30) {
        ExpiryState::Expiring
    } else {
        ExpiryState::Valid
    }
}

/// Logs a warning when the certificate expires within [`EXPIRY_WARNING_DAYS`], an error when it
/// has expired.
pub fn log_expiry(cert: &PushCertificate, now: SystemTime) {
    let days_left = cert.remaining(now).as_secs() / DAY.as_secs();
    match expiry_state(cert, now) {
        ExpiryState::Valid => {}
        ExpiryState::Expiring => tracing::warn!(
            topic = %cert.topic(),
            days_left,
            not_after = %rfc3339(cert.not_after()),
            "the APNs push certificate expires soon: renew it and upload the new one"
        ),
        ExpiryState::Expired => tracing::error!(
            topic = %cert.topic(),
            not_after = %rfc3339(cert.not_after()),
            "the APNs push certificate is expired or not yet valid: pushes will fail"
        ),
    }
}

/// What `GET /api/v1/push-certificate` shows (never the key).
#[derive(Debug, Clone, Serialize)]
pub struct CertificateView {
    /// The APNs topic (the certificate's UID).
    pub topic: String,
    /// The certificate subject.
    pub subject: String,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Whole days left until `not_after` (0 once expired).
    pub days_left: u64,
    /// `valid`, `expiring` (fewer than 30 days left) or `expired`.
    pub expiry: ExpiryState,
    /// Where it was loaded from.
    pub source: CertificateSource,
}

impl CertificateView {
    /// The view of `cert` at `now`.
    pub fn of(cert: &PushCertificate, source: CertificateSource, now: SystemTime) -> Self {
        Self {
            topic: cert.topic().as_str().to_owned(),
            subject: cert.subject().to_owned(),
            not_before: rfc3339(cert.not_before()),
            not_after: rfc3339(cert.not_after()),
            days_left: cert.remaining(now).as_secs() / DAY.as_secs(),
            expiry: expiry_state(cert, now),
            source,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PushCertificateError> {
    std::fs::read(path).map_err(|source| PushCertificateError::Io {
        path: path.to_owned(),
        source,
    })
}

/// True when the bytes look like PEM text rather than DER.
fn is_pem(bytes: &[u8]) -> bool {
    bytes.trim_ascii_start().starts_with(b"-----BEGIN")
}

/// Loads certificate and key from PEM or PKCS#12 bytes: PEM with the key in `key_pem` (or in
/// the same text when `key_pem` is `None`), else PKCS#12 with `password` (empty when absent).
pub fn parse(
    cert: &[u8],
    key_pem: Option<&[u8]>,
    password: Option<&str>,
) -> Result<PushCertificate, PushCertificateError> {
    if let Some(key) = key_pem {
        return Ok(PushCertificate::from_pem(cert, key)?);
    }
    if is_pem(cert) {
        return Ok(PushCertificate::from_pem(cert, cert)?);
    }
    Ok(PushCertificate::from_pkcs12(
        cert,
        password.unwrap_or_default(),
    )?)
}

/// The certificate named by `--push-cert` / `--push-key` / `--push-cert-password`, if any.
pub fn load_configured(
    config: &PushConfig,
) -> Result<Option<PushCertificate>, PushCertificateError> {
    let Some(cert_path) = &config.cert_file else {
        return Ok(None);
    };
    let cert = read(cert_path)?;
    let key = config.key_file.as_deref().map(read).transpose()?;
    parse(&cert, key.as_deref(), config.cert_password.as_deref()).map(Some)
}

/// The stored form of `cert` (chain and key as PEM).
pub fn to_stored(
    cert: &PushCertificate,
    now: SystemTime,
) -> Result<baton_store::PushCertificate, PushCertificateError> {
    let mut cert_pem = Vec::new();
    for der in cert.chain() {
        cert_pem.extend(X509::from_der(der)?.to_pem()?);
    }
    let key = cert.private_key();
    let key_pem = PKey::private_key_from_pkcs8(key.secret_der())?.private_key_to_pem_pkcs8()?;
    Ok(baton_store::PushCertificate {
        topic: cert.topic().clone(),
        cert_pem,
        key_pem,
        not_after: Some(unix_millis(cert.not_after())),
        updated_at: unix_millis(now),
    })
}

/// Loads a stored certificate.
pub fn from_stored(
    stored: &baton_store::PushCertificate,
) -> Result<PushCertificate, PushCertificateError> {
    Ok(PushCertificate::from_pem(
        &stored.cert_pem,
        &stored.key_pem,
    )?)
}

#[cfg(test)]
mod tests {
    use baton_apns::testing::TestPki;

    use super::*;

    #[test]
    fn stored_form_round_trips_and_pkcs12_parses() {
        let pki = TestPki::generate().unwrap();
        let cert = pki.push_certificate().unwrap();
        let now = SystemTime::now();
        let stored = to_stored(&cert, now).unwrap();
        assert_eq!(&stored.topic, cert.topic());
        let back = from_stored(&stored).unwrap();
        assert_eq!(back.topic(), cert.topic());
        assert_eq!(back.chain(), cert.chain());

        let p12 = pki.push_pkcs12("pw").unwrap();
        assert_eq!(parse(&p12, None, Some("pw")).unwrap().topic(), &pki.topic);
        assert!(parse(&p12, None, Some("wrong")).is_err());
        let mut both = pki.push_cert_pem.clone();
        both.extend_from_slice(&pki.push_key_pem);
        assert_eq!(parse(&both, None, None).unwrap().topic(), &pki.topic);
    }

    #[test]
    fn view_reports_days_left_and_expiry() {
        let pki = TestPki::generate().unwrap();
        let cert = pki.push_certificate().unwrap();
        let now = SystemTime::now();
        let view = CertificateView::of(&cert, CertificateSource::File, now);
        assert!((363..=365).contains(&view.days_left), "{}", view.days_left);
        assert_eq!(view.expiry, ExpiryState::Valid);
        let late = cert.not_after() - DAY * 3;
        assert_eq!(expiry_state(&cert, late), ExpiryState::Expiring);
        assert_eq!(
            expiry_state(&cert, cert.not_after() + DAY),
            ExpiryState::Expired
        );
    }
}

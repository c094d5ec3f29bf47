//! The built-in certificate authority: created in the data directory on first start (or loaded
//! from an operator-supplied PEM certificate and key), it issues device identities, the server's
//! TLS certificate and per-user client certificates, records every serial in a
//! [`CertificateRegistry`], and produces a CRL of revoked certificates.
//!
//! The CA key must be RSA: SCEP clients encrypt their request to the CA certificate's key.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKey, PKeyRef, Private, Public};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Name, X509NameRef, X509Ref};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::certificate_profile::CertificateProfile;
use super::der;
use super::oid;
use super::registry::{CertificateRegistry, IssuedCertificateRecord, RegistryError};

/// File name of the CA certificate (PEM) in the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PEM, mode 0600) in the CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Issued certificates start this long before `now`, to tolerate clock skew.
const BACKDATE: Duration = Duration::from_secs(300);

/// A CA failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    /// Reading or writing the CA files failed.
    #[error("CA file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Only one of the certificate and the key exists; refusing to overwrite it.
    #[error("CA directory {0} holds a certificate or a key but not both")]
    Incomplete(PathBuf),
    /// The CA key is not RSA.
    #[error("the CA key must be RSA")]
    KeyNotRsa,
    /// The key does not belong to the certificate.
    #[error("the CA key does not match the CA certificate")]
    KeyMismatch,
    /// A request the CA cannot issue (e.g. a TLS profile without names).
    #[error("invalid issue request: {0}")]
    InvalidRequest(&'static str),
    /// A time outside what certificates can express.
    #[error("time out of range")]
    TimeOutOfRange,
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// OpenSSL failed (bad PEM, signing failure).
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// How a new CA is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaConfig {
    /// Subject common name of the CA.
    pub common_name: String,
    /// Subject organization, if any.
    pub organization: Option<String>,
    /// RSA key size.
    pub key_bits: u32,
    /// Validity of the CA certificate.
    pub validity: Duration,
}

impl Default for CaConfig {
    fn default() -> Self {
        Self {
            common_name: "Baton Device CA".to_owned(),
            organization: Some("Baton".to_owned()),
            key_bits: 2048,
            validity: Duration::from_secs(10 * 365 * 24 * 3600),
        }
    }
}

/// What to issue.
#[derive(Clone)]
pub struct IssueRequest<'a> {
    /// The subject's public key (RSA or EC).
    pub public_key: &'a PKeyRef<Public>,
    /// The subject name.
    pub subject: &'a X509NameRef,
    /// What kind of certificate.
    pub profile: CertificateProfile,
    /// How long it is valid (capped at the CA's own expiry).
    pub validity: Duration,
    /// Stored with the registry record.
    pub enrollment_hint: Option<String>,
}

impl std::fmt::Debug for IssueRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssueRequest")
            .field("subject", &name_one_line(self.subject))
            .field("profile", &self.profile)
            .field("validity", &self.validity)
            .field("enrollment_hint", &self.enrollment_hint)
            .finish_non_exhaustive()
    }
}

/// An issued certificate and its registry record.
#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    /// The certificate.
    pub certificate: X509,
    /// Its DER.
    pub der: Vec<u8>,
    /// What was recorded in the registry.
    pub record: IssuedCertificateRecord,
}

/// The certificate authority.
pub struct CertificateAuthority {
    cert: X509,
    key: PKey<Private>,
    cert_der: Vec<u8>,
    cert_sha256: [u8; 32],
    not_after_unix: i64,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("CertificateAuthority")
            .field("subject", &name_one_line(self.cert.subject_name()))
            .field("sha256", &hex::encode(self.cert_sha256))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Loads the CA from `dir` (files [`CA_CERT_FILE`] and [`CA_KEY_FILE`]), or creates one there
    /// with `config` when neither file exists.
    pub fn load_or_create(dir: &Path, config: &CaConfig, now: SystemTime) -> Result<Self, CaError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                let cert = read(&cert_path)?;
                let key = read(&key_path)?;
                Self::from_pem(&cert, &key)
            }
            (false, false) => {
                let ca = Self::generate(config, now)?;
                fs::create_dir_all(dir).map_err(|source| CaError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
                write_atomically(&key_path, &ca.key.private_key_to_pem_pkcs8()?, true)?;
                write_atomically(&cert_path, &ca.cert.to_pem()?, false)?;
                tracing::info!(dir = %dir.display(), "created a new enrollment CA");
                Ok(ca)
            }
            _ => Err(CaError::Incomplete(dir.to_owned())),
        }
    }

    /// A CA from an operator-supplied PEM certificate and PEM private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CaError> {
        let cert = X509::from_pem(cert_pem)?;
        let key = PKey::private_key_from_pem(key_pem)?;
        Self::from_parts(cert, key)
    }

    /// A CA from a certificate and its key.
    pub fn from_parts(cert: X509, key: PKey<Private>) -> Result<Self, CaError> {
        if key.id() != Id::RSA {
            return Err(CaError::KeyNotRsa);
        }
        if !cert.public_key()?.public_eq(&key) {
            return Err(CaError::KeyMismatch);
        }
        let cert_der = cert.to_der()?;
        let cert_sha256 = Sha256::digest(&cert_der).into();
        let epoch = Asn1Time::from_unix(0)?;
        let diff = epoch.diff(cert.not_after())?;
        let not_after_unix = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
        Ok(Self {
            cert,
            key,
            cert_der,
            cert_sha256,
            not_after_unix,
        })
    }

    /// Generates a new self-signed CA.
    pub fn generate(config: &CaConfig, now: SystemTime) -> Result<Self, CaError> {
        let key = PKey::from_rsa(Rsa::generate(config.key_bits)?)?;
        let mut name = X509Name::builder()?;
        name.append_entry_by_text("CN", &config.common_name)?;
        if let Some(org) = &config.organization {
            name.append_entry_by_text("O", org)?;
        }
        let name = name.build();
        let now_unix = unix(now)?;
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        let serial = random_serial()?;
        builder.set_serial_number(&serial)?;
        builder.set_subject_name(&name)?;
        builder.set_issuer_name(&name)?;
        builder.set_pubkey(&key)?;
        let not_before = Asn1Time::from_unix(now_unix - 3600)?;
        let not_after = Asn1Time::from_unix(add_secs(now_unix, config.validity)?)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .digital_signature()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(ski)?;
        builder.sign(&key, MessageDigest::sha256())?;
        Self::from_parts(builder.build(), key)
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &X509Ref {
        &self.cert
    }

    /// The CA certificate's DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA certificate's PEM.
    pub fn certificate_pem(&self) -> Result<Vec<u8>, CaError> {
        Ok(self.cert.to_pem()?)
    }

    /// SHA-256 of the CA certificate's DER.
    pub fn certificate_sha256(&self) -> &[u8; 32] {
        &self.cert_sha256
    }

    /// The CA private key (for decrypting SCEP requests and signing replies).
    pub(crate) fn private_key(&self) -> &PKeyRef<Private> {
        &self.key
    }

    /// True when `cert` carries a valid signature by this CA and names it as issuer.
    pub fn issued(&self, cert: &X509Ref) -> bool {
        let Ok(ca_key) = self.cert.public_key() else {
            return false;
        };
        self.cert.subject_name().try_cmp(cert.issuer_name()).ok() == Some(std::cmp::Ordering::Equal)
            && cert.verify(&ca_key).unwrap_or(false)
    }

    /// Issues a certificate, taking its serial from and recording it in `registry`.
    pub fn issue(
        &self,
        registry: &dyn CertificateRegistry,
        request: &IssueRequest<'_>,
        now: SystemTime,
    ) -> Result<IssuedCertificate, CaError> {
        let now_unix = unix(now)?;
        let not_after_unix = add_secs(now_unix, request.validity)?.min(self.not_after_unix);
        let serial = registry.next_serial()?;
        let mut builder = X509::builder()?;
        builder.set_version(2)?;
        let serial_bn = BigNum::from_slice(&serial.to_be_bytes())?;
        let serial_asn1 = Asn1Integer::from_bn(&serial_bn)?;
        builder.set_serial_number(&serial_asn1)?;
        builder.set_subject_name(request.subject)?;
        builder.set_issuer_name(self.cert.subject_name())?;
        builder.set_pubkey(request.public_key)?;
        let not_before = Asn1Time::from_unix(now_unix - BACKDATE.as_secs() as i64)?;
        let not_after = Asn1Time::from_unix(not_after_unix)?;
        builder.set_not_before(&not_before)?;
        builder.set_not_after(&not_after)?;
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if request.public_key.id() == Id::RSA {
            usage.key_encipherment();
        } else if matches!(
            request.profile,
            CertificateProfile::UserClient { email: Some(_) }
        ) {
            // S/MIME encryption to an EC key is key agreement (ECDH).
            usage.key_agreement();
        }
        builder.append_extension(usage.build()?)?;
        let mut eku = ExtendedKeyUsage::new();
        match &request.profile {
            CertificateProfile::DeviceIdentity => {
                eku.client_auth();
            }
            CertificateProfile::TlsServer { .. } => {
                eku.server_auth();
            }
            CertificateProfile::UserClient { email } => {
                eku.client_auth();
                if email.is_some() {
                    eku.email_protection();
                }
            }
        }
        builder.append_extension(eku.build()?)?;
        let ski =
            SubjectKeyIdentifier::new().build(&builder.x509v3_context(Some(&self.cert), None))?;
        builder.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&builder.x509v3_context(Some(&self.cert), None))?;
        builder.append_extension(aki)?;
        match &request.profile {
            CertificateProfile::DeviceIdentity => {}
            CertificateProfile::TlsServer {
                dns_names,
                ip_addresses,
            } => {
                if dns_names.is_empty() && ip_addresses.is_empty() {
                    return Err(CaError::InvalidRequest(
                        "a TLS server certificate needs a name",
                    ));
                }
                let mut san = SubjectAlternativeName::new();
                for name in dns_names {
                    san.dns(name);
                }
                for ip in ip_addresses {
                    san.ip(&ip.to_string());
                }
                let ext = san.build(&builder.x509v3_context(Some(&self.cert), None))?;
                builder.append_extension(ext)?;
            }
            CertificateProfile::UserClient { email } => {
                if let Some(email) = email {
                    let ext = SubjectAlternativeName::new()
                        .email(email)
                        .build(&builder.x509v3_context(Some(&self.cert), None))?;
                    builder.append_extension(ext)?;
                }
            }
        }
        builder.sign(&self.key, MessageDigest::sha256())?;
        let certificate = builder.build();
        let der = certificate.to_der()?;
        let record = IssuedCertificateRecord {
            serial,
            subject: name_one_line(request.subject),
            sha256: Sha256::digest(&der).into(),
            not_after: from_unix(not_after_unix),
            kind: request.profile.kind(),
            enrollment_hint: request.enrollment_hint.clone(),
            revoked_at: None,
        };
        registry.record_issued(record.clone())?;
        Ok(IssuedCertificate {
            certificate,
            der,
            record,
        })
    }

    /// A DER CRL (v2) listing every revoked certificate in `registry`, valid until
    /// `now + next_update`.
    pub fn crl_der(
        &self,
        registry: &dyn CertificateRegistry,
        now: SystemTime,
        next_update: Duration,
    ) -> Result<Vec<u8>, CaError> {
        let now_unix = unix(now)?;
        let algorithm = der::sequence(&[&der::oid(oid::SHA256_WITH_RSA), &der::null()]);
        let revoked: Vec<Vec<u8>> = registry
            .revoked()?
            .iter()
            .map(|r| {
                let at = r.revoked_at.map(unix).transpose()?.unwrap_or(now_unix);
                Ok(der::sequence(&[
                    &der::integer_u64(r.serial),
                    &der::time(at),
                ]))
            })
            .collect::<Result<_, CaError>>()?;
        let mut tbs_fields: Vec<Vec<u8>> = vec![
            der::integer_u64(1),
            algorithm.clone(),
            self.cert.subject_name().to_der()?,
            der::time(now_unix),
            der::time(add_secs(now_unix, next_update)?),
        ];
        if !revoked.is_empty() {
            let refs: Vec<&[u8]> = revoked.iter().map(Vec::as_slice).collect();
            tbs_fields.push(der::sequence(&refs));
        }
        let refs: Vec<&[u8]> = tbs_fields.iter().map(Vec::as_slice).collect();
        let tbs = der::sequence(&refs);
        let mut signer = Signer::new(MessageDigest::sha256(), &self.key)?;
        let signature = signer.sign_oneshot_to_vec(&tbs)?;
        Ok(der::sequence(&[
            &tbs,
            &algorithm,
            &der::bit_string(&signature),
        ]))
    }

    /// The CRL as PEM.
    pub fn crl_pem(
        &self,
        registry: &dyn CertificateRegistry,
        now: SystemTime,
        next_update: Duration,
    ) -> Result<String, CaError> {
        use base64::Engine as _;
        let der = self.crl_der(registry, now, next_update)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN X509 CRL-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END X509 CRL-----\n");
        Ok(pem)
    }
}

/// A subject as one line (`CN=..., O=...`).
pub fn name_one_line(name: &X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = e.data().to_string().unwrap_or_default();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn random_serial() -> Result<Asn1Integer, CaError> {
    let mut bn = BigNum::new()?;
    // 127 random bits with the top bit set to 0 keep the serial positive and under 20 octets.
    bn.rand(127, MsbOption::MAYBE_ZERO, false)?;
    Ok(Asn1Integer::from_bn(&bn)?)
}

fn unix(t: SystemTime) -> Result<i64, CaError> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CaError::TimeOutOfRange)?
        .as_secs();
    i64::try_from(secs).map_err(|_| CaError::TimeOutOfRange)
}

fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn add_secs(base: i64, d: Duration) -> Result<i64, CaError> {
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|s| base.checked_add(s))
        .ok_or(CaError::TimeOutOfRange)
}

fn read(path: &Path) -> Result<Vec<u8>, CaError> {
    fs::read(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

fn write_atomically(path: &Path, data: &[u8], secret: bool) -> Result<(), CaError> {
    let tmp = path.with_extension("tmp");
    let io = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(io)?;
    file.write_all(data).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::registry::{CertificateKind, InMemoryCertificateRegistry};
    use openssl::x509::X509Crl;

    fn small_config() -> CaConfig {
        CaConfig {
            key_bits: 2048,
            ..CaConfig::default()
        }
    }

    fn subject(cn: &str) -> X509Name {
        let mut b = X509Name::builder().unwrap();
        b.append_entry_by_text("CN", cn).unwrap();
        b.build()
    }

    fn public_key() -> PKey<Public> {
        let key = Rsa::generate(2048).unwrap();
        PKey::public_key_from_der(&PKey::from_rsa(key).unwrap().public_key_to_der().unwrap())
            .unwrap()
    }

    #[test]
    fn created_once_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let first = CertificateAuthority::load_or_create(dir.path(), &small_config(), now).unwrap();
        let second =
            CertificateAuthority::load_or_create(dir.path(), &small_config(), now).unwrap();
        assert_eq!(first.certificate_der(), second.certificate_der());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(CA_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::remove_file(dir.path().join(CA_KEY_FILE)).unwrap();
        assert!(matches!(
            CertificateAuthority::load_or_create(dir.path(), &small_config(), now),
            Err(CaError::Incomplete(_))
        ));
    }

    #[test]
    fn operator_pem_with_wrong_key_is_refused() {
        let now = SystemTime::now();
        let a = CertificateAuthority::generate(&small_config(), now).unwrap();
        let b = CertificateAuthority::generate(&small_config(), now).unwrap();
        let err = CertificateAuthority::from_pem(
            &a.certificate_pem().unwrap(),
            &b.key.private_key_to_pem_pkcs8().unwrap(),
        );
        assert!(matches!(err, Err(CaError::KeyMismatch)));
        let ok = CertificateAuthority::from_pem(
            &a.certificate_pem().unwrap(),
            &a.key.private_key_to_pem_pkcs8().unwrap(),
        )
        .unwrap();
        assert_eq!(ok.certificate_der(), a.certificate_der());
    }

    #[test]
    fn issues_device_and_tls_certificates_with_registry_records() {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate(&small_config(), now).unwrap();
        let registry = InMemoryCertificateRegistry::new();
        let key = public_key();
        let name = subject("iPhone of nobody");
        let device = ca
            .issue(
                &registry,
                &IssueRequest {
                    public_key: &key,
                    subject: &name,
                    profile: CertificateProfile::DeviceIdentity,
                    validity: Duration::from_secs(365 * 86_400),
                    enrollment_hint: Some("enr".into()),
                },
                now,
            )
            .unwrap();
        assert!(ca.issued(&device.certificate));
        let text = String::from_utf8(device.certificate.to_text().unwrap()).unwrap();
        assert!(text.contains("TLS Web Client Authentication"), "{text}");
        assert!(!text.contains("CA:TRUE"));
        assert_eq!(device.record.kind, CertificateKind::DeviceIdentity);
        assert_eq!(device.record.subject, "CN=iPhone of nobody");
        let looked_up = registry.by_sha256(&device.record.sha256).unwrap().unwrap();
        assert_eq!(looked_up.serial, device.record.serial);

        let tls = ca
            .issue(
                &registry,
                &IssueRequest {
                    public_key: &key,
                    subject: &subject("mdm.example.test"),
                    profile: CertificateProfile::TlsServer {
                        dns_names: vec!["mdm.example.test".into()],
                        ip_addresses: vec!["127.0.0.1".parse().unwrap()],
                    },
                    validity: Duration::from_secs(86_400),
                    enrollment_hint: None,
                },
                now,
            )
            .unwrap();
        let text = String::from_utf8(tls.certificate.to_text().unwrap()).unwrap();
        assert!(text.contains("TLS Web Server Authentication"), "{text}");
        assert!(text.contains("DNS:mdm.example.test"), "{text}");
        assert_ne!(tls.record.serial, device.record.serial);

        let err = ca.issue(
            &registry,
            &IssueRequest {
                public_key: &key,
                subject: &name,
                profile: CertificateProfile::TlsServer {
                    dns_names: vec![],
                    ip_addresses: vec![],
                },
                validity: Duration::from_secs(86_400),
                enrollment_hint: None,
            },
            now,
        );
        assert!(matches!(err, Err(CaError::InvalidRequest(_))));
    }

    #[test]
    fn validity_is_capped_at_the_ca_expiry() {
        let now = SystemTime::now();
        let config = CaConfig {
            validity: Duration::from_secs(10 * 86_400),
            ..small_config()
        };
        let ca = CertificateAuthority::generate(&config, now).unwrap();
        let registry = InMemoryCertificateRegistry::new();
        let issued = ca
            .issue(
                &registry,
                &IssueRequest {
                    public_key: &public_key(),
                    subject: &subject("d"),
                    profile: CertificateProfile::UserClient {
                        email: Some("a@example.test".into()),
                    },
                    validity: Duration::from_secs(365 * 86_400),
                    enrollment_hint: None,
                },
                now,
            )
            .unwrap();
        assert!(issued.certificate.not_after() <= ca.certificate().not_after());
        assert!(issued.record.not_after <= now + Duration::from_secs(10 * 86_400));
    }

    #[test]
    fn crl_lists_revoked_serials_and_verifies() {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate(&small_config(), now).unwrap();
        let registry = InMemoryCertificateRegistry::new();
        let mut serials = Vec::new();
        for cn in ["a", "b", "c"] {
            let issued = ca
                .issue(
                    &registry,
                    &IssueRequest {
                        public_key: &public_key(),
                        subject: &subject(cn),
                        profile: CertificateProfile::DeviceIdentity,
                        validity: Duration::from_secs(86_400),
                        enrollment_hint: None,
                    },
                    now,
                )
                .unwrap();
            serials.push(issued.record.serial);
        }
        registry.revoke(serials[1], now).unwrap();
        let crl = X509Crl::from_der(
            &ca.crl_der(&registry, now, Duration::from_secs(3600))
                .unwrap(),
        )
        .unwrap();
        assert!(crl.verify(&ca.certificate().public_key().unwrap()).unwrap());
        let revoked = crl.get_revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        let serial = revoked.get(0).unwrap().serial_number().to_bn().unwrap();
        assert_eq!(serial, BigNum::from_u32(serials[1] as u32).unwrap());
        let pem = ca
            .crl_pem(&registry, now, Duration::from_secs(3600))
            .unwrap();
        assert!(X509Crl::from_pem(pem.as_bytes()).is_ok());
    }
}

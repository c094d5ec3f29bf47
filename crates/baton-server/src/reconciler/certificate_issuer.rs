//! Issuing the certificates of certificate catalog items: [`CertificateIssuer`] is the role
//! trait the reconciler uses (so it can run, and be tested, without a CA); [`BuiltInCaIssuer`]
//! issues from Baton's built-in CA and records every serial in the CA's
//! [`CertificateRegistry`], where revocation is recorded too (the CRL lists it).
//!
//! An issued identity is a fresh key pair, a certificate from the CA with the rendered subject,
//! the rendered e-mail address as rfc822Name subjectAltName, clientAuth (+ emailProtection with
//! an address) extended key usage and the item's validity, wrapped in a PKCS#12 with a random
//! password (legacy 3DES/SHA-1 PBE, which every iOS version reads, as for the PKCS#12
//! enrollment identity).
//!
//! Keys are P-256 by default: the reconciler issues while planning a sign-in, under its
//! per-server lock, and a P-256 key takes well under a millisecond where an RSA-2048 key takes
//! tens to hundreds of milliseconds (random prime search). iOS installs EC identities from
//! PKCS#12 for client authentication (Wi-Fi EAP-TLS, VPN, Exchange) and S/MIME signing.
//! [`KeyAlgorithm::Rsa2048`] is there for relying parties that only take RSA.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;

use super::certificate_subject::{SubjectError, parse_email, parse_subject};
use crate::enrollment::ca::{CaError, CertificateAuthority, IssueRequest};
use crate::enrollment::certificate_profile::CertificateProfile;
use crate::enrollment::registry::{CertificateRegistry, RegistryError};

/// Longest validity accepted for an item certificate, in days (about 10 years; the CA also
/// caps every certificate at its own expiry).
pub const MAX_VALIDITY_DAYS: u32 = 3650;

/// Why an item certificate could not be issued or revoked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The rendered subject or e-mail address cannot go into a certificate.
    #[error("certificate subject: {0}")]
    Subject(#[from] SubjectError),
    /// The validity is 0 days or longer than [`MAX_VALIDITY_DAYS`].
    #[error("validity of {0} days is outside 1..={MAX_VALIDITY_DAYS}")]
    Validity(u32),
    /// The CA refused or failed.
    #[error("CA: {0}")]
    Ca(#[from] CaError),
    /// The CA's registry failed.
    #[error("certificate registry: {0}")]
    Registry(#[from] RegistryError),
    /// Key generation or PKCS#12 encoding failed.
    #[error("openssl: {0}")]
    Openssl(#[from] ErrorStack),
}

/// What to issue for one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCertificateRequest<'a> {
    /// Rendered subject, e.g. `CN=alice,O=Example`.
    pub subject: &'a str,
    /// Rendered e-mail address (rfc822Name), if the item has one.
    pub email: Option<&'a str>,
    /// Validity in days.
    pub validity_days: u32,
    /// Stored with the CA's record (which device and item it was issued for).
    pub hint: String,
    /// The PKCS#12 friendly name.
    pub friendly_name: &'a str,
}

/// An issued identity, ready for a `com.apple.security.pkcs12` payload.
#[derive(Clone)]
pub struct ItemIdentity {
    /// PKCS#12 DER (key, certificate and the CA certificate).
    pub pkcs12: Vec<u8>,
    /// The PKCS#12 password. A secret.
    pub password: String,
    /// The certificate's serial number in the CA's registry.
    pub serial: u64,
    /// The certificate's subject, one line.
    pub subject: String,
}

impl std::fmt::Debug for ItemIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password or the key material.
        f.debug_struct("ItemIdentity")
            .field("serial", &self.serial)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Issues and revokes item certificates.
pub trait CertificateIssuer: Send + Sync + std::fmt::Debug {
    /// Issues a new identity for `request` and records it.
    fn issue(
        &self,
        request: &ItemCertificateRequest<'_>,
        now: SystemTime,
    ) -> Result<ItemIdentity, IssueError>;

    /// Records `serial` as revoked at `now`; false when the serial is unknown. Revoking twice
    /// keeps the first time.
    fn revoke(&self, serial: u64, now: SystemTime) -> Result<bool, IssueError>;
}

/// The key type of issued identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 (the default; see the module docs).
    #[default]
    P256,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
}

impl KeyAlgorithm {
    fn generate(self) -> Result<PKey<Private>, ErrorStack> {
        match self {
            KeyAlgorithm::P256 => {
                let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
                PKey::from_ec_key(EcKey::generate(&group)?)
            }
            KeyAlgorithm::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?),
        }
    }
}

/// A [`CertificateIssuer`] on the built-in CA and its registry.
#[derive(Debug, Clone)]
pub struct BuiltInCaIssuer {
    ca: Arc<CertificateAuthority>,
    registry: Arc<dyn CertificateRegistry>,
    key_algorithm: KeyAlgorithm,
}

impl BuiltInCaIssuer {
    /// An issuer on `ca`, recording in `registry`, with P-256 keys.
    pub fn new(ca: Arc<CertificateAuthority>, registry: Arc<dyn CertificateRegistry>) -> Self {
        Self {
            ca,
            registry,
            key_algorithm: KeyAlgorithm::default(),
        }
    }

    /// The same issuer with another key type.
    pub fn with_key_algorithm(mut self, key_algorithm: KeyAlgorithm) -> Self {
        self.key_algorithm = key_algorithm;
        self
    }
}

fn random_password() -> Result<String, ErrorStack> {
    let mut raw = [0u8; 18];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

impl CertificateIssuer for BuiltInCaIssuer {
    fn issue(
        &self,
        request: &ItemCertificateRequest<'_>,
        now: SystemTime,
    ) -> Result<ItemIdentity, IssueError> {
        if request.validity_days == 0 || request.validity_days > MAX_VALIDITY_DAYS {
            return Err(IssueError::Validity(request.validity_days));
        }
        let subject = parse_subject(request.subject)?;
        let email = request.email.map(parse_email).transpose()?.flatten();
        let key = self.key_algorithm.generate()?;
        let public_key = PKey::public_key_from_der(&key.public_key_to_der()?)?;
        let issued = self.ca.issue(
            self.registry.as_ref(),
            &IssueRequest {
                public_key: &public_key,
                subject: &subject,
                profile: CertificateProfile::UserClient { email },
                validity: Duration::from_secs(u64::from(request.validity_days) * 86_400),
                enrollment_hint: Some(request.hint.clone()),
            },
            now,
        )?;
        let password = random_password()?;
        let mut chain = Stack::new()?;
        chain.push(self.ca.certificate().to_owned())?;
        let p12 = Pkcs12::builder()
            .name(request.friendly_name)
            .pkey(&key)
            .cert(&issued.certificate)
            .ca(chain)
            .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .mac_md(MessageDigest::sha1())
            .build2(&password)?;
        tracing::info!(serial = issued.record.serial, subject = %issued.record.subject,
            hint = %request.hint, "issued a certificate for a catalog item");
        Ok(ItemIdentity {
            pkcs12: p12.to_der()?,
            password,
            serial: issued.record.serial,
            subject: issued.record.subject,
        })
    }

    fn revoke(&self, serial: u64, now: SystemTime) -> Result<bool, IssueError> {
        let known = self.registry.revoke(serial, now)?;
        tracing::info!(serial, known, "revoked a catalog item certificate");
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::Command;

    use openssl::x509::{X509, X509Ref};

    use super::*;
    use crate::enrollment::ca::CaConfig;
    use crate::enrollment::registry::{CertificateKind, InMemoryCertificateRegistry};

    fn issuer() -> (BuiltInCaIssuer, Arc<InMemoryCertificateRegistry>) {
        let ca = CertificateAuthority::generate(&CaConfig::default(), SystemTime::now()).unwrap();
        let registry = Arc::new(InMemoryCertificateRegistry::new());
        (
            BuiltInCaIssuer::new(Arc::new(ca), Arc::clone(&registry) as _),
            registry,
        )
    }

    fn request<'a>(subject: &'a str, email: Option<&'a str>) -> ItemCertificateRequest<'a> {
        ItemCertificateRequest {
            subject,
            email,
            validity_days: 30,
            hint: "UDID-1 item:vpn".into(),
            friendly_name: "vpn",
        }
    }

    fn open(identity: &ItemIdentity) -> openssl::pkcs12::ParsedPkcs12_2 {
        Pkcs12::from_der(&identity.pkcs12)
            .unwrap()
            .parse2(&identity.password)
            .unwrap()
    }

    fn text(cert: &X509) -> String {
        String::from_utf8(cert.to_text().unwrap()).unwrap()
    }

    /// `openssl verify` (the command-line tool) accepts `cert` under `ca` for `purpose`.
    fn openssl_verify(ca: &X509Ref, cert: &X509Ref, purpose: &str) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, c: &X509Ref| {
            let path = dir.path().join(name);
            std::fs::File::create(&path)
                .unwrap()
                .write_all(&c.to_pem().unwrap())
                .unwrap();
            path
        };
        let ca_path = write("ca.pem", ca);
        let cert_path = write("cert.pem", cert);
        let out = Command::new("openssl")
            .arg("verify")
            .arg("-purpose")
            .arg(purpose)
            .arg("-CAfile")
            .arg(&ca_path)
            .arg(&cert_path)
            .output()
            .expect("the openssl command-line tool");
        out.status.success()
    }

    #[test]
    fn issued_identity_opens_chains_and_carries_the_names() {
        let (issuer, registry) = issuer();
        let now = SystemTime::now();
        let identity = issuer
            .issue(
                &request("CN=alice,O=Example,OU=Nurses", Some("alice@example.com")),
                now,
            )
            .unwrap();
        let parsed = open(&identity);
        let cert = parsed.cert.unwrap();
        let key = parsed.pkey.unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert_eq!(key.id(), openssl::pkey::Id::EC);
        assert!(issuer.ca.issued(&cert));
        assert!(openssl_verify(issuer.ca.certificate(), &cert, "sslclient"));
        assert!(openssl_verify(issuer.ca.certificate(), &cert, "smimesign"));
        assert_eq!(parsed.ca.unwrap().len(), 1);

        assert_eq!(
            crate::enrollment::ca::name_one_line(cert.subject_name()),
            "CN=alice, O=Example, OU=Nurses"
        );
        let t = text(&cert);
        assert!(t.contains("email:alice@example.com"), "{t}");
        assert!(t.contains("TLS Web Client Authentication"), "{t}");
        assert!(t.contains("E-mail Protection"), "{t}");
        assert!(t.contains("Digital Signature, Key Agreement"), "{t}");
        assert_eq!(identity.subject, "CN=alice, O=Example, OU=Nurses");

        let record = registry.by_serial(identity.serial).unwrap().unwrap();
        assert_eq!(record.kind, CertificateKind::UserClient);
        assert_eq!(record.enrollment_hint.as_deref(), Some("UDID-1 item:vpn"));
        let days = record
            .not_after
            .duration_since(now)
            .unwrap()
            .as_secs()
            .div_ceil(86_400);
        assert_eq!(days, 30);
        // The password is not the one of another issue.
        let other = issuer.issue(&request("CN=alice", None), now).unwrap();
        assert_ne!(other.password, identity.password);
        assert_ne!(other.serial, identity.serial);
        assert!(
            Pkcs12::from_der(&identity.pkcs12)
                .unwrap()
                .parse2("wrong")
                .is_err()
        );
        let t = text(&open(&other).cert.unwrap());
        assert!(!t.contains("E-mail Protection"), "{t}");
        assert!(!t.contains("email:"), "{t}");
        assert!(!t.contains("Key Agreement"), "{t}");
    }

    #[test]
    fn rsa_keys_on_request() {
        let (issuer, _) = issuer();
        let issuer = issuer.with_key_algorithm(KeyAlgorithm::Rsa2048);
        let identity = issuer
            .issue(&request("CN=bob", None), SystemTime::now())
            .unwrap();
        let parsed = open(&identity);
        assert_eq!(parsed.pkey.unwrap().id(), openssl::pkey::Id::RSA);
        assert!(openssl_verify(
            issuer.ca.certificate(),
            &parsed.cert.unwrap(),
            "sslclient"
        ));
    }

    #[test]
    fn bad_input_is_an_error_and_issues_nothing() {
        let (issuer, registry) = issuer();
        let now = SystemTime::now();
        for (subject, email) in [
            ("alice", None),
            ("CN=a\nb", None),
            ("CN=alice", Some("not an address")),
        ] {
            let err = issuer.issue(&request(subject, email), now).unwrap_err();
            assert!(matches!(err, IssueError::Subject(_)), "{err}");
        }
        let mut zero = request("CN=alice", None);
        zero.validity_days = 0;
        assert!(matches!(
            issuer.issue(&zero, now),
            Err(IssueError::Validity(0))
        ));
        assert_eq!(registry.issued_count().unwrap(), 0);
    }

    #[test]
    fn revocation_reaches_the_registry_and_the_crl() {
        let (issuer, registry) = issuer();
        let now = SystemTime::now();
        let identity = issuer.issue(&request("CN=alice", None), now).unwrap();
        assert!(issuer.revoke(identity.serial, now).unwrap());
        assert!(!issuer.revoke(9999, now).unwrap());
        let revoked = registry.revoked().unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].serial, identity.serial);
        let crl = openssl::x509::X509Crl::from_der(
            &issuer
                .ca
                .crl_der(registry.as_ref(), now, Duration::from_secs(3600))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(crl.get_revoked().unwrap().len(), 1);
    }

    #[test]
    fn debug_hides_the_password() {
        let (issuer, _) = issuer();
        let identity = issuer
            .issue(&request("CN=alice", None), SystemTime::now())
            .unwrap();
        let shown = format!("{identity:?}");
        assert!(!shown.contains(&identity.password));
        assert!(shown.contains("CN=alice"));
    }
}

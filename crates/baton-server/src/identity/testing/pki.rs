//! Throwaway PKI for tests: a CA (optionally with an intermediate) issuing device certificates.

use std::time::{Duration, SystemTime};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509Name, X509Ref};

use super::super::DigestAlgorithm;
use super::super::asn1_time::unix_seconds;
use super::cms_builder::{SignOptions, sign_message_with};

/// Which kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TestKeyKind {
    /// RSA, 2048 bits (what iOS SCEP enrollments use).
    #[default]
    Rsa2048,
    /// ECDSA on NIST P-256.
    EcP256,
}

/// Generates a fresh private key.
pub fn generate_key(kind: TestKeyKind) -> Result<PKey<Private>, ErrorStack> {
    match kind {
        TestKeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?),
        TestKeyKind::EcP256 => {
            let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            PKey::from_ec_key(EcKey::generate(&group)?)
        }
    }
}

fn name(common_name: &str) -> Result<X509Name, ErrorStack> {
    let mut builder = X509Name::builder()?;
    builder.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Baton Test")?;
    builder.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    Ok(builder.build())
}

fn random_serial() -> Result<Asn1Integer, ErrorStack> {
    let mut serial = BigNum::new()?;
    serial.rand(72, MsbOption::MAYBE_ZERO, false)?;
    serial.to_asn1_integer()
}

fn asn1_time(time: SystemTime) -> Result<Asn1Time, ErrorStack> {
    Asn1Time::from_unix(unix_seconds(time) as _)
}

/// A certificate authority for tests: its certificate, key, and the certificates between it and
/// its root (empty for a root).
#[derive(Debug, Clone)]
pub struct TestCa {
    /// The CA certificate.
    pub cert: X509,
    /// The CA's private key.
    pub key: PKey<Private>,
    /// Certificates above this CA up to (excluding) the root; devices embed these.
    pub chain: Vec<X509>,
}

impl TestCa {
    /// A self-signed RSA-2048 root CA valid from an hour ago for ten years.
    pub fn generate(common_name: &str) -> Result<Self, ErrorStack> {
        let key = generate_key(TestKeyKind::Rsa2048)?;
        let subject = name(common_name)?;
        let now = SystemTime::now();
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?;
        builder.set_serial_number(random_serial()?.as_ref())?;
        builder.set_subject_name(&subject)?;
        builder.set_issuer_name(&subject)?;
        builder.set_pubkey(&key)?;
        builder.set_not_before(asn1_time(now - Duration::from_secs(3600))?.as_ref())?;
        builder.set_not_after(asn1_time(now + Duration::from_secs(10 * 365 * 86_400))?.as_ref())?;
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&builder.x509v3_context(None, None))?;
        builder.append_extension(ski)?;
        builder.sign(&key, MessageDigest::sha256())?;
        Ok(Self {
            cert: builder.build(),
            key,
            chain: Vec::new(),
        })
    }

    /// An intermediate CA issued by this one (RSA-2048, same validity as a root).
    pub fn issue_intermediate(&self, common_name: &str) -> Result<Self, ErrorStack> {
        let key = generate_key(TestKeyKind::Rsa2048)?;
        let now = SystemTime::now();
        let mut builder = self.builder(
            common_name,
            &key,
            now - Duration::from_secs(3600),
            now + Duration::from_secs(5 * 365 * 86_400),
        )?;
        builder.append_extension(BasicConstraints::new().critical().ca().build()?)?;
        builder.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        builder.sign(&self.key, MessageDigest::sha256())?;
        let mut chain = vec![self.cert.clone()];
        chain.extend(self.chain.iter().cloned());
        chain.retain(|cert| !is_self_signed(cert));
        Ok(Self {
            cert: builder.build(),
            key,
            chain,
        })
    }

    /// A device identity certificate issued by this CA (clientAuth EKU, digitalSignature).
    pub fn issue_device(
        &self,
        common_name: &str,
        spec: &DeviceCertificateSpec,
    ) -> Result<DeviceIdentity, ErrorStack> {
        let key = generate_key(spec.key)?;
        let mut builder = self.builder(common_name, &key, spec.not_before, spec.not_after)?;
        builder.append_extension(BasicConstraints::new().critical().build()?)?;
        let mut usage = KeyUsage::new();
        usage.critical().digital_signature();
        if spec.key == TestKeyKind::Rsa2048 {
            usage.key_encipherment();
        }
        builder.append_extension(usage.build()?)?;
        builder.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        builder.sign(&self.key, MessageDigest::sha256())?;
        let mut chain = Vec::new();
        if !is_self_signed(&self.cert) {
            chain.push(self.cert.clone());
            chain.extend(self.chain.iter().cloned());
        }
        Ok(DeviceIdentity {
            cert: builder.build(),
            key,
            chain,
        })
    }

    /// The CA certificate as PEM (what `--device-ca` takes).
    pub fn cert_pem(&self) -> Result<Vec<u8>, ErrorStack> {
        self.cert.to_pem()
    }

    /// A builder for a certificate issued by this CA, with subject, key, dates, SKI and AKI set.
    fn builder(
        &self,
        common_name: &str,
        key: &PKey<Private>,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<X509Builder, ErrorStack> {
        let mut builder = X509Builder::new()?;
        builder.set_version(2)?;
        builder.set_serial_number(random_serial()?.as_ref())?;
        builder.set_subject_name(name(common_name)?.as_ref())?;
        builder.set_issuer_name(self.cert.subject_name())?;
        builder.set_pubkey(key)?;
        builder.set_not_before(asn1_time(not_before)?.as_ref())?;
        builder.set_not_after(asn1_time(not_after)?.as_ref())?;
        let ski =
            SubjectKeyIdentifier::new().build(&builder.x509v3_context(Some(&self.cert), None))?;
        builder.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&builder.x509v3_context(Some(&self.cert), None))?;
        builder.append_extension(aki)?;
        Ok(builder)
    }
}

fn is_self_signed(cert: &X509Ref) -> bool {
    cert.issued(cert) == openssl::x509::X509VerifyResult::OK
}

/// Key kind and validity of a device certificate to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificateSpec {
    /// Which key to generate.
    pub key: TestKeyKind,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl Default for DeviceCertificateSpec {
    /// RSA-2048, valid from an hour ago for a year.
    fn default() -> Self {
        let now = SystemTime::now();
        Self {
            key: TestKeyKind::Rsa2048,
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(365 * 86_400),
        }
    }
}

/// A device's identity: certificate, private key, and the intermediates it embeds when signing.
#[derive(Debug, Clone)]
pub struct DeviceIdentity {
    /// The device certificate.
    pub cert: X509,
    /// The device's private key.
    pub key: PKey<Private>,
    /// Intermediate CA certificates to include in signatures (empty under a root).
    pub chain: Vec<X509>,
}

impl DeviceIdentity {
    /// An `Mdm-Signature` value over `body` (with signed attributes, chain embedded).
    pub fn sign(&self, body: &[u8], digest: DigestAlgorithm) -> Result<String, ErrorStack> {
        let options = SignOptions {
            digest,
            ..SignOptions::default()
        };
        sign_message_with(body, &self.cert, &self.key, &self.chain, &options)
    }

    /// DER of the device certificate.
    pub fn cert_der(&self) -> Result<Vec<u8>, ErrorStack> {
        self.cert.to_der()
    }

    /// SHA-256 of the certificate's DER (what a verifier reports as `cert_sha256`).
    pub fn cert_sha256(&self) -> Result<[u8; 32], ErrorStack> {
        use sha2::Digest as _;
        Ok(sha2::Sha256::digest(self.cert.to_der()?).into())
    }
}

//! Test certificates for the mock APNs server, generated at run time with OpenSSL (no committed
//! secrets): a test CA, a server certificate for `127.0.0.1`/`localhost`, and a fake MDM push
//! certificate whose subject UID is `com.apple.mgmt.External.<uuid>`.
//!
//! For tests and manual runs only (this crate's, and the server's end-to-end tests); nothing here
//! is meant for production certificates.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use baton_proto::Topic;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509NameRef};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::certificate::{CertificateError, PushCertificate};

/// Why test certificates could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestPkiError {
    /// OpenSSL failed to build a key or certificate.
    #[error("OpenSSL: {0}")]
    Openssl(#[from] ErrorStack),
    /// Writing files or running the `openssl` command failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The `openssl` command exited with an error.
    #[error("openssl {args} failed: {stderr}")]
    Command {
        /// The arguments given.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The generated push certificate did not load (a bug in this module).
    #[error("generated push certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The generated topic is not a valid topic (a bug in this module).
    #[error("generated topic: {0}")]
    Topic(#[from] baton_proto::IdError),
}

/// A freshly generated test PKI, all in PEM.
#[derive(Clone)]
pub struct TestPki {
    /// The test CA certificate: it signs the server and push certificates, so trust it on both
    /// sides.
    pub ca_cert_pem: Vec<u8>,
    /// The test CA's private key.
    pub ca_key_pem: Vec<u8>,
    /// The mock server's certificate, for `localhost`, `127.0.0.1` and `::1`.
    pub server_cert_pem: Vec<u8>,
    /// The mock server's private key.
    pub server_key_pem: Vec<u8>,
    /// The fake MDM push certificate (RSA 2048, like Apple's).
    pub push_cert_pem: Vec<u8>,
    /// The push certificate's private key.
    pub push_key_pem: Vec<u8>,
    /// The push certificate's topic.
    pub topic: Topic,
    ca_cert: X509,
    ca_key: PKey<Private>,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Paths of a [`TestPki`] written to a directory by [`TestPki::write_to`].
#[derive(Debug, Clone)]
pub struct TestPkiFiles {
    /// `ca.pem`
    pub ca_cert: PathBuf,
    /// `server.pem`
    pub server_cert: PathBuf,
    /// `server.key`
    pub server_key: PathBuf,
    /// `push.pem`
    pub push_cert: PathBuf,
    /// `push.key`
    pub push_key: PathBuf,
}

impl TestPki {
    /// Generates a CA, a server certificate and a push certificate with a random topic.
    pub fn generate() -> Result<Self, TestPkiError> {
        let topic = Topic::new(format!("com.apple.mgmt.External.{}", uuid::Uuid::new_v4()))?;
        let ca_key = ec_key()?;
        let ca_cert = build_ca(&ca_key)?;
        let server_key = ec_key()?;
        let server_cert = build_leaf(&ca_cert, &ca_key, &server_key, LeafKind::Server)?;
        let push_key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let push_cert = build_leaf(
            &ca_cert,
            &ca_key,
            &push_key,
            LeafKind::Client(Some(topic.as_str())),
        )?;
        Ok(Self {
            ca_cert_pem: ca_cert.to_pem()?,
            ca_key_pem: ca_key.private_key_to_pem_pkcs8()?,
            server_cert_pem: server_cert.to_pem()?,
            server_key_pem: server_key.private_key_to_pem_pkcs8()?,
            push_cert_pem: push_cert.to_pem()?,
            push_key_pem: push_key.private_key_to_pem_pkcs8()?,
            topic,
            ca_cert,
            ca_key,
        })
    }

    /// The push certificate, loaded as production code would load it.
    pub fn push_certificate(&self) -> Result<PushCertificate, TestPkiError> {
        Ok(PushCertificate::from_pem(
            &self.push_cert_pem,
            &self.push_key_pem,
        )?)
    }

    /// The CA certificate in DER, to add to the client's trust roots or the mock's client CA.
    pub fn ca_der(&self) -> Result<CertificateDer<'static>, TestPkiError> {
        Ok(CertificateDer::from(self.ca_cert.to_der()?))
    }

    /// The server certificate chain and key in DER, for the mock server.
    pub fn server_identity(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TestPkiError> {
        let cert = X509::from_pem(&self.server_cert_pem)?;
        let key = PKey::private_key_from_pem(&self.server_key_pem)?;
        Ok((
            vec![CertificateDer::from(cert.to_der()?)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.private_key_to_pkcs8()?)),
        ))
    }

    /// The push certificate and key as a modern PKCS#12 file (AES-256, SHA-256 MAC).
    pub fn push_pkcs12(&self, password: &str) -> Result<Vec<u8>, TestPkiError> {
        let cert = X509::from_pem(&self.push_cert_pem)?;
        let key = PKey::private_key_from_pem(&self.push_key_pem)?;
        Ok(Pkcs12::builder()
            .name("push")
            .pkey(&key)
            .cert(&cert)
            .build2(password)?
            .to_der()?)
    }

    /// The push certificate and key as a legacy PKCS#12 file (RC2-40 certificate bag, 3DES key,
    /// SHA-1 MAC), made by `openssl pkcs12 -export -legacy` exactly as an operator's old tooling
    /// would. Needs the `openssl` command on `PATH`.
    pub fn push_pkcs12_legacy(&self, password: &str) -> Result<Vec<u8>, TestPkiError> {
        // openssl reads -in twice (key, then certificates), so it needs a real file.
        let dir = std::env::temp_dir().join(format!("baton-apns-p12-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir)?;
        let result = self.legacy_export(&dir, password);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn legacy_export(&self, dir: &Path, password: &str) -> Result<Vec<u8>, TestPkiError> {
        let cert = dir.join("push.pem");
        let key = dir.join("push.key");
        let out = dir.join("push.p12");
        std::fs::write(&cert, &self.push_cert_pem)?;
        std::fs::write(&key, &self.push_key_pem)?;
        let pass = format!("pass:{password}");
        let output = Command::new("openssl")
            .args(["pkcs12", "-export", "-legacy", "-passout", pass.as_str()])
            .arg("-in")
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-out")
            .arg(&out)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(TestPkiError::Command {
                args: "pkcs12 -export -legacy".to_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(std::fs::read(&out)?)
    }

    /// Another client certificate from the same CA whose subject UID is `uid` (or absent): for
    /// testing that non-MDM topics are refused. Returns (certificate PEM, key PEM).
    pub fn client_cert_with_uid(
        &self,
        uid: Option<&str>,
    ) -> Result<(Vec<u8>, Vec<u8>), TestPkiError> {
        let key = ec_key()?;
        let cert = build_leaf(&self.ca_cert, &self.ca_key, &key, LeafKind::Client(uid))?;
        Ok((cert.to_pem()?, key.private_key_to_pem_pkcs8()?))
    }

    /// Writes the CA, server and push certificates and keys as PEM files into `dir`.
    pub fn write_to(&self, dir: &Path) -> Result<TestPkiFiles, TestPkiError> {
        let files = TestPkiFiles {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            push_cert: dir.join("push.pem"),
            push_key: dir.join("push.key"),
        };
        std::fs::write(&files.ca_cert, &self.ca_cert_pem)?;
        std::fs::write(&files.server_cert, &self.server_cert_pem)?;
        std::fs::write(&files.server_key, &self.server_key_pem)?;
        std::fs::write(&files.push_cert, &self.push_cert_pem)?;
        std::fs::write(&files.push_key, &self.push_key_pem)?;
        Ok(files)
    }
}

enum LeafKind<'a> {
    Server,
    Client(Option<&'a str>),
}

fn ec_key() -> Result<PKey<Private>, ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    PKey::from_ec_key(EcKey::generate(&group)?)
}

fn serial() -> Result<Asn1Integer, ErrorStack> {
    let mut bn = BigNum::new()?;
    bn.rand(120, openssl::bn::MsbOption::MAYBE_ZERO, false)?;
    bn.to_asn1_integer()
}

fn base_builder(
    subject: &X509NameRef,
    issuer: &X509NameRef,
    key: &PKey<Private>,
) -> Result<X509Builder, ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let serial = serial()?;
    b.set_serial_number(&serial)?;
    b.set_subject_name(subject)?;
    b.set_issuer_name(issuer)?;
    b.set_pubkey(key)?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(365)?;
    b.set_not_before(&not_before)?;
    b.set_not_after(&not_after)?;
    Ok(b)
}

fn build_ca(key: &PKey<Private>) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "Baton test CA")?;
    let name = name.build();
    let mut b = base_builder(&name, &name, key)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    b.sign(key, MessageDigest::sha256())?;
    Ok(b.build())
}

fn build_leaf(
    ca: &X509,
    ca_key: &PKey<Private>,
    key: &PKey<Private>,
    kind: LeafKind<'_>,
) -> Result<X509, ErrorStack> {
    let mut name = X509NameBuilder::new()?;
    match kind {
        LeafKind::Server => name.append_entry_by_text("CN", "localhost")?,
        LeafKind::Client(uid) => {
            if let Some(uid) = uid {
                name.append_entry_by_nid(Nid::USERID, uid)?;
            }
            name.append_entry_by_text("CN", "APSP:baton-test")?;
            name.append_entry_by_text("C", "US")?;
        }
    }
    let name = name.build();
    let mut b = base_builder(&name, ca.subject_name(), key)?;
    b.append_extension(BasicConstraints::new().build()?)?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .digital_signature()
            .key_encipherment()
            .build()?,
    )?;
    match kind {
        LeafKind::Server => {
            b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .ip("::1")
                .build(&b.x509v3_context(Some(ca), None))?;
            b.append_extension(san)?;
        }
        LeafKind::Client(_) => {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build()?)?;
        }
    }
    b.sign(ca_key, MessageDigest::sha256())?;
    Ok(b.build())
}

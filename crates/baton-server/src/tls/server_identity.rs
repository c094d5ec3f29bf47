//! The server's certificate chain and private key: read from the operator's PEM files, or a
//! self-signed certificate generated into the data directory on first start and reused after.

use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509, X509Builder, X509Name};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{ClientAuth, SERVER_CERT_FILE, SERVER_KEY_FILE, TLS_DIR, TlsError};

/// Validity of the certificate [`TlsIdentity::load_or_generate`] makes: two years. (The server
/// generates its own with [`super::TlsSettings::certificate_validity`] and renews it.)
const GENERATED_VALIDITY: Duration = Duration::from_secs(730 * 24 * 3600);
/// The server's certificate chain and private key.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Leaf first, then intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            fs::read(path).map_err(|source| TlsError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let cert_chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::Pem {
                path: cert_path.to_owned(),
                reason: "unreadable PEM certificate",
            })?;
        if cert_chain.is_empty() {
            return Err(TlsError::Pem {
                path: cert_path.to_owned(),
                reason: "no certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
            path: key_path.to_owned(),
            reason: "no readable private key",
        })?;
        Ok(Self { cert_chain, key })
    }

    /// Loads `<dir>/tls/server.crt` and `<dir>/tls/server.key`, generating a self-signed
    /// certificate for `hosts` (DNS names or IP addresses) there first if they do not exist.
    /// Existing files are reused as they are, even if `hosts` changed; a running server renews
    /// them before they expire (see [`super::SelfSigned`]).
    pub fn load_or_generate(dir: &Path, hosts: &[String]) -> Result<Self, TlsError> {
        let tls_dir = dir.join(TLS_DIR);
        let cert_path = tls_dir.join(SERVER_CERT_FILE);
        let key_path = tls_dir.join(SERVER_KEY_FILE);
        if !(cert_path.exists() && key_path.exists()) {
            return Self::generate_self_signed(dir, hosts, GENERATED_VALIDITY, SystemTime::now());
        }
        Self::from_pem_files(&cert_path, &key_path)
    }

    /// Generates a self-signed P-256 certificate for `hosts` (SANs: IP addresses as IPs, the
    /// rest as DNS names; `localhost` if empty) valid from `now` for `validity`, and writes it
    /// to `<dir>/tls/server.crt` and `server.key` (replacing what is there).
    pub fn generate_self_signed(
        dir: &Path,
        hosts: &[String],
        validity: Duration,
        now: SystemTime,
    ) -> Result<Self, TlsError> {
        let tls_dir = dir.join(TLS_DIR);
        let cert_path = tls_dir.join(SERVER_CERT_FILE);
        let key_path = tls_dir.join(SERVER_KEY_FILE);
        let (cert_pem, key_pem) = self_signed_pem(hosts, validity, now)?;
        let io_error = |path: &Path| {
            let path = path.to_owned();
            move |source| TlsError::Io { path, source }
        };
        fs::create_dir_all(&tls_dir).map_err(io_error(&tls_dir))?;
        write_file(&key_path, &key_pem, 0o600).map_err(io_error(&key_path))?;
        write_file(&cert_path, &cert_pem, 0o644).map_err(io_error(&cert_path))?;
        tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
        Self::from_pem_files(&cert_path, &key_path)
    }

    /// A rustls server configuration for this certificate alone, asking for client
    /// certificates (as `--tls-client-auth optional`, with no CA names). The server itself uses
    /// [`super::server_config`] with a [`super::RotatingCertificate`].
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let certificate = Arc::new(super::RotatingCertificate::new(self.clone_identity())?);
        super::server_config(certificate, ClientAuth::Optional, Vec::new())
    }

    /// The chain and key as rustls serves them; fails when the key does not belong to the leaf.
    pub fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        Ok(CertifiedKey::from_der(
            self.cert_chain.clone(),
            self.key.clone_key(),
            &provider,
        )?)
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> Result<X509, TlsError> {
        let der = self.cert_chain.first().ok_or(TlsError::Pem {
            path: PathBuf::from("<certificate chain>"),
            reason: "no certificate",
        })?;
        Ok(X509::from_der(der.as_ref())?)
    }

    /// A copy (the key is copied too).
    pub fn clone_identity(&self) -> Self {
        Self {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The `SystemTime` of a certificate date.
pub(crate) fn certificate_time(time: &Asn1TimeRef) -> Result<SystemTime, ErrorStack> {
    let diff = Asn1Time::from_unix(0)?.diff(time)?;
    let secs = i64::from(diff.days) * 86_400 + i64::from(diff.secs);
    Ok(if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    })
}

/// The certificate date of a `SystemTime` (second precision).
fn asn1_time(time: SystemTime) -> Result<Asn1Time, ErrorStack> {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |s| -s),
    };
    Asn1Time::from_unix(secs as _)
}

/// Writes a file through a temporary name and a rename, with the given Unix permissions.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// A self-signed P-256 certificate for `hosts`, valid from `now` for `validity`. Returns
/// (certificate PEM, key PEM).
fn self_signed_pem(
    hosts: &[String],
    validity: Duration,
    now: SystemTime,
) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let default_hosts = ["localhost".to_owned()];
    let hosts = if hosts.is_empty() {
        &default_hosts[..]
    } else {
        hosts
    };
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Baton")?;
    name.append_entry_by_nid(
        Nid::COMMONNAME,
        hosts.first().map_or("localhost", String::as_str),
    )?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(120, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    let not_before = asn1_time(now)?;
    let not_after = asn1_time(now + validity)?;

    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for host in hosts {
        if host.parse::<IpAddr>().is_ok() {
            san.ip(host);
        } else {
            san.dns(host);
        }
    }
    let san = san.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();
    Ok((cert.to_pem()?, key.private_key_to_pem_pkcs8()?))
}

//! The server's own TLS certificate, issued by the built-in CA (instead of a self-signed one),
//! so the CA certificate in the enrollment profile's root payload is all a device needs to trust
//! the server.
//!
//! Files in `<data>/tls/`: `server.crt` (leaf, then the CA), `server.key` (P-256, mode 0600) and
//! `server.hosts` (the names it was issued for, one a line). They are reused on restart and
//! re-issued when the host list changed, when the leaf was not issued by this CA (e.g. an older
//! self-signed one), or when less than a third of its validity is left
//! ([`crate::tls::rotation::renewal_due`]). [`IssuedByBuiltInCa`] applies the same rule while the
//! server runs, so a server up for a year never serves an expired certificate.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509Name};
use thiserror::Error;

use super::ca::{CaError, CertificateAuthority, IssueRequest};
use super::certificate_profile::CertificateProfile;
use super::registry::CertificateRegistry;
use crate::tls::rotation::renewal_due;
use crate::tls::{
    CertificateSource, SERVER_CERT_FILE, SERVER_KEY_FILE, ServedCertificate, TlsError, TlsIdentity,
    certificate_time, write_file,
};

/// Sub-directory of the data directory holding the server certificate.
pub const TLS_DIR: &str = "tls";
/// File listing the hosts the certificate was issued for.
pub const HOSTS_FILE: &str = "server.hosts";

/// Why the server certificate could not be loaded or issued.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerCertificateError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The CA could not issue.
    #[error("issuing: {0}")]
    Ca(#[from] CaError),
    /// Key generation or encoding failed.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// The files could not be loaded as a TLS identity.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ServerCertificateError + '_ {
    move |source| ServerCertificateError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Normalised host list as written to [`HOSTS_FILE`].
fn hosts_text(hosts: &[String]) -> String {
    let mut list: Vec<&str> = hosts.iter().map(String::as_str).collect();
    if list.is_empty() {
        list.push("localhost");
    }
    let mut text = String::new();
    for h in list {
        text.push_str(h);
        text.push('\n');
    }
    text
}

/// True when the existing files can be reused for `hosts`.
fn reusable(
    dir: &Path,
    hosts: &str,
    ca: &CertificateAuthority,
    validity: Duration,
    now: SystemTime,
) -> bool {
    let Ok(stored_hosts) = fs::read_to_string(dir.join(HOSTS_FILE)) else {
        return false;
    };
    if stored_hosts != hosts || !dir.join(SERVER_KEY_FILE).exists() {
        return false;
    }
    let Ok(pem) = fs::read(dir.join(SERVER_CERT_FILE)) else {
        return false;
    };
    let Ok(leaf) = X509::from_pem(&pem) else {
        return false;
    };
    let fresh = certificate_time(leaf.not_after())
        .is_ok_and(|not_after| !renewal_due(not_after, validity, now));
    ca.issued(&leaf) && fresh
}

/// Loads `<data>/tls/server.crt` + `server.key` when they were issued by `ca` for `hosts` and
/// are not due for renewal, else issues a new certificate for `hosts` (DNS names and IP
/// addresses), valid for `validity`, and writes them.
pub fn load_or_issue(
    data_dir: &Path,
    hosts: &[String],
    ca: &CertificateAuthority,
    registry: &dyn CertificateRegistry,
    validity: Duration,
    now: SystemTime,
) -> Result<TlsIdentity, ServerCertificateError> {
    let dir = data_dir.join(TLS_DIR);
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    let hosts_list = hosts_text(hosts);
    if !reusable(&dir, &hosts_list, ca, validity, now) {
        let names: Vec<&str> = hosts_list.lines().collect();
        let (dns_names, ip_addresses): (Vec<&str>, Vec<&str>) =
            names.iter().partition(|h| h.parse::<IpAddr>().is_err());
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
        let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
        let public_key = PKey::public_key_from_der(&key.public_key_to_der()?)?;
        let mut subject = X509Name::builder()?;
        subject.append_entry_by_text("O", "Baton")?;
        subject.append_entry_by_text("CN", names.first().copied().unwrap_or("localhost"))?;
        let subject = subject.build();
        let issued = ca.issue(
            registry,
            &IssueRequest {
                public_key: &public_key,
                subject: &subject,
                profile: CertificateProfile::TlsServer {
                    dns_names: dns_names.iter().map(|s| (*s).to_owned()).collect(),
                    ip_addresses: ip_addresses.iter().filter_map(|s| s.parse().ok()).collect(),
                },
                validity,
                enrollment_hint: None,
            },
            now,
        )?;
        fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let mut chain = issued.certificate.to_pem()?;
        chain.extend_from_slice(&ca.certificate_pem()?);
        write_file(&key_path, &key.private_key_to_pem_pkcs8()?, 0o600)
            .map_err(io_error(&key_path))?;
        write_file(&cert_path, &chain, 0o644).map_err(io_error(&cert_path))?;
        let hosts_path = dir.join(HOSTS_FILE);
        write_file(&hosts_path, hosts_list.as_bytes(), 0o644).map_err(io_error(&hosts_path))?;
        tracing::info!(path = %cert_path.display(), serial = issued.record.serial,
            hosts = %hosts_list.trim_end().replace('\n', ","),
            "issued the server's TLS certificate from the built-in CA");
    }
    Ok(TlsIdentity::from_pem_files(&cert_path, &key_path)?)
}

/// The built-in CA as the source of the server's certificate while it runs: a new one is issued
/// (and written to `<data>/tls/`) when renewal is due, unless the CA itself ends first.
pub struct IssuedByBuiltInCa {
    data_dir: PathBuf,
    hosts: Vec<String>,
    ca: Arc<CertificateAuthority>,
    registry: Arc<dyn CertificateRegistry>,
    validity: Duration,
}

impl std::fmt::Debug for IssuedByBuiltInCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedByBuiltInCa")
            .field("data_dir", &self.data_dir)
            .field("hosts", &self.hosts)
            .field("validity", &self.validity)
            .finish_non_exhaustive()
    }
}

impl IssuedByBuiltInCa {
    /// Certificates for `hosts` from `ca`, valid for `validity`, recorded in `registry`.
    pub fn new(
        data_dir: &Path,
        hosts: &[String],
        ca: Arc<CertificateAuthority>,
        registry: Arc<dyn CertificateRegistry>,
        validity: Duration,
    ) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            hosts: hosts.to_vec(),
            ca,
            registry,
            validity,
        }
    }
}

impl CertificateSource for IssuedByBuiltInCa {
    type Error = ServerCertificateError;

    fn describe(&self) -> &'static str {
        "the built-in CA"
    }

    fn renews_itself(&self) -> bool {
        true
    }

    fn refresh(
        &self,
        current: &ServedCertificate,
        now: SystemTime,
    ) -> Result<Option<TlsIdentity>, ServerCertificateError> {
        if !renewal_due(current.not_after(), self.validity, now) {
            return Ok(None);
        }
        // A leaf never outlives its CA: once the CA ends before the current leaf would be
        // replaced by a longer-lived one, re-issuing gains nothing (the expiry warning says so).
        let ca_not_after = certificate_time(self.ca.certificate().not_after())?;
        if ca_not_after <= current.not_after() {
            return Ok(None);
        }
        load_or_issue(
            &self.data_dir,
            &self.hosts,
            &self.ca,
            self.registry.as_ref(),
            self.validity,
            now,
        )
        .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::CaConfig;
    use crate::enrollment::registry::InMemoryCertificateRegistry;

    const VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);

    fn leaf(dir: &Path) -> X509 {
        X509::from_pem(&fs::read(dir.join(TLS_DIR).join(SERVER_CERT_FILE)).unwrap()).unwrap()
    }

    #[test]
    fn issued_once_reused_and_reissued_when_hosts_change() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate(&CaConfig::default(), now).unwrap();
        let registry = InMemoryCertificateRegistry::new();
        let hosts = vec!["mdm.example".to_owned(), "127.0.0.1".to_owned()];
        let identity = load_or_issue(dir.path(), &hosts, &ca, &registry, VALIDITY, now).unwrap();
        assert_eq!(identity.cert_chain.len(), 2);
        let first = leaf(dir.path());
        assert!(ca.issued(&first));
        let sans: Vec<String> = first
            .subject_alt_names()
            .unwrap()
            .iter()
            .map(|n| {
                n.dnsname().map(str::to_owned).unwrap_or_else(|| {
                    n.ipaddress()
                        .map(|ip| format!("{ip:?}"))
                        .unwrap_or_default()
                })
            })
            .collect();
        assert_eq!(sans, ["mdm.example", "[127, 0, 0, 1]"]);
        load_or_issue(dir.path(), &hosts, &ca, &registry, VALIDITY, now).unwrap();
        assert_eq!(leaf(dir.path()).to_der().unwrap(), first.to_der().unwrap());
        assert_eq!(registry.issued_count().unwrap(), 1);
        let other = vec!["other.example".to_owned()];
        load_or_issue(dir.path(), &other, &ca, &registry, VALIDITY, now).unwrap();
        assert_ne!(leaf(dir.path()).to_der().unwrap(), first.to_der().unwrap());
        assert_eq!(registry.issued_count().unwrap(), 2);
        // A certificate from another CA (e.g. an old self-signed one) is replaced.
        let ca2 = CertificateAuthority::generate(&CaConfig::default(), now).unwrap();
        load_or_issue(dir.path(), &other, &ca2, &registry, VALIDITY, now).unwrap();
        assert!(ca2.issued(&leaf(dir.path())));
    }

    #[test]
    fn the_built_in_ca_renews_while_running_when_a_third_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let ca = Arc::new(CertificateAuthority::generate(&CaConfig::default(), now).unwrap());
        let registry: Arc<dyn CertificateRegistry> = Arc::new(InMemoryCertificateRegistry::new());
        let hosts = vec!["mdm.example".to_owned()];
        let validity = Duration::from_secs(30 * 24 * 3600);
        let first =
            load_or_issue(dir.path(), &hosts, &ca, registry.as_ref(), validity, now).unwrap();
        let current = ServedCertificate::new(first).unwrap();
        let source = IssuedByBuiltInCa::new(
            dir.path(),
            &hosts,
            Arc::clone(&ca),
            Arc::clone(&registry),
            validity,
        );
        let day = Duration::from_secs(24 * 3600);
        assert!(source.refresh(&current, now + 19 * day).unwrap().is_none());
        let renewed = source.refresh(&current, now + 21 * day).unwrap().unwrap();
        let renewed = ServedCertificate::new(renewed).unwrap();
        assert_ne!(renewed.serial_hex(), current.serial_hex());
        assert!(renewed.not_after() > current.not_after());
        assert!(ca.issued(&leaf(dir.path())));
        assert_eq!(
            leaf(dir.path()).to_der().unwrap(),
            renewed.identity().cert_chain[0].as_ref()
        );
        // At start the same rule applies: a leaf with less than a third left is not reused.
        let restarted = load_or_issue(
            dir.path(),
            &hosts,
            &ca,
            registry.as_ref(),
            validity,
            now + 42 * day,
        )
        .unwrap();
        assert_ne!(restarted.cert_chain[0], renewed.identity().cert_chain[0]);
        assert_eq!(registry.issued_count().unwrap(), 3);
    }
}

//! The server's own TLS certificate, issued by the built-in CA (instead of a self-signed one),
//! so the CA certificate in the enrollment profile's root payload is all a device needs to trust
//! the server.
//!
//! Files in `<data>/tls/`: `server.crt` (leaf, then the CA), `server.key` (P-256, mode 0600) and
//! `server.hosts` (the names it was issued for, one a line). They are reused on restart and
//! re-issued when the host list changed, when the leaf was not issued by this CA (e.g. an older
//! self-signed one), or when it expires within [`REISSUE_BEFORE`].

use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use openssl::asn1::Asn1Time;
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509, X509Name};
use thiserror::Error;

use super::ca::{CaError, CertificateAuthority, IssueRequest};
use super::certificate_profile::CertificateProfile;
use super::registry::CertificateRegistry;
use crate::tls::{SERVER_CERT_FILE, SERVER_KEY_FILE, TlsError, TlsIdentity};

/// Sub-directory of the data directory holding the server certificate.
pub const TLS_DIR: &str = "tls";
/// File listing the hosts the certificate was issued for.
pub const HOSTS_FILE: &str = "server.hosts";
/// Validity of an issued server certificate (under Apple's 398-day limit).
pub const VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// A certificate expiring sooner than this is re-issued at start.
pub const REISSUE_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

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
fn reusable(dir: &Path, hosts: &str, ca: &CertificateAuthority, now: SystemTime) -> bool {
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
    let horizon = now
        .checked_add(REISSUE_BEFORE)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|secs| Asn1Time::from_unix(secs).ok());
    ca.issued(&leaf) && horizon.is_some_and(|h| leaf.not_after() > h)
}

/// Loads `<data>/tls/server.crt` + `server.key` when they were issued by `ca` for `hosts`, else
/// issues a new certificate for `hosts` (DNS names and IP addresses) and writes them.
pub fn load_or_issue(
    data_dir: &Path,
    hosts: &[String],
    ca: &CertificateAuthority,
    registry: &dyn CertificateRegistry,
    now: SystemTime,
) -> Result<TlsIdentity, ServerCertificateError> {
    let dir = data_dir.join(TLS_DIR);
    let cert_path = dir.join(SERVER_CERT_FILE);
    let key_path = dir.join(SERVER_KEY_FILE);
    let hosts_list = hosts_text(hosts);
    if !reusable(&dir, &hosts_list, ca, now) {
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
                validity: VALIDITY,
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

/// Writes a file through a temporary name and a rename, with the given Unix permissions.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::CaConfig;
    use crate::enrollment::registry::InMemoryCertificateRegistry;

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
        let identity = load_or_issue(dir.path(), &hosts, &ca, &registry, now).unwrap();
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
        load_or_issue(dir.path(), &hosts, &ca, &registry, now).unwrap();
        assert_eq!(leaf(dir.path()).to_der().unwrap(), first.to_der().unwrap());
        assert_eq!(registry.issued_count().unwrap(), 1);
        let other = vec!["other.example".to_owned()];
        load_or_issue(dir.path(), &other, &ca, &registry, now).unwrap();
        assert_ne!(leaf(dir.path()).to_der().unwrap(), first.to_der().unwrap());
        assert_eq!(registry.issued_count().unwrap(), 2);
        // A certificate from another CA (e.g. an old self-signed one) is replaced.
        let ca2 = CertificateAuthority::generate(&CaConfig::default(), now).unwrap();
        load_or_issue(dir.path(), &other, &ca2, &registry, now).unwrap();
        assert!(ca2.issued(&leaf(dir.path())));
    }
}

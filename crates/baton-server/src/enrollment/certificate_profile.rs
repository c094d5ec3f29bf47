//! What kind of certificate the CA issues: the profile decides the key usages, extended key
//! usages and subject alternative names.

use std::net::IpAddr;

use super::registry::CertificateKind;

/// The kind of certificate to issue, with what that kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProfile {
    /// A device identity (SCEP): clientAuth, subject from the device's request.
    DeviceIdentity,
    /// The server's HTTPS certificate: serverAuth, with these names as subjectAltName.
    TlsServer {
        /// DNS names (at least one name or address is required).
        dns_names: Vec<String>,
        /// IP addresses.
        ip_addresses: Vec<IpAddr>,
    },
    /// A per-user client certificate: clientAuth (and emailProtection with an address).
    UserClient {
        /// The user's e-mail address, put in subjectAltName when given.
        email: Option<String>,
    },
}

impl CertificateProfile {
    /// The registry kind of this profile.
    pub fn kind(&self) -> CertificateKind {
        match self {
            Self::DeviceIdentity => CertificateKind::DeviceIdentity,
            Self::TlsServer { .. } => CertificateKind::TlsServer,
            Self::UserClient { .. } => CertificateKind::UserClient,
        }
    }
}

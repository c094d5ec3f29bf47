//! Enrollment: the built-in certificate authority and the SCEP server.
//!
//! - [`ca`]: the CA (created in the data directory or supplied by the operator), `issue` with a
//!   [`CertificateProfile`] (device identity, TLS server, per-user client), CRL.
//! - [`registry`] and [`challenge`]: role traits for what enrollment persists (issued
//!   certificates and revocation; one-time challenges), with in-memory implementations.
//! - [`scep`]: the SCEP server (RFC 8894) and a client for tests and simulated devices.
//!
//! CMS SignedData with SCEP's signed attributes is written and read with a small DER layer
//! ([`der`], [`cms`]) because the `openssl` crate cannot handle custom signed attributes; OpenSSL
//! still does all cryptography and the EnvelopedData layer. See [`cms`] for the reasoning.

pub mod ca;
pub mod certificate_profile;
pub mod certificate_request;
pub mod challenge;
pub mod cms;
pub mod der;
pub mod envelope;
pub mod oid;
pub mod registry;
pub mod scep;

pub use ca::{CaConfig, CaError, CertificateAuthority, IssueRequest, IssuedCertificate};
pub use certificate_profile::CertificateProfile;
pub use challenge::{ChallengePolicy, ChallengeStore, InMemoryChallengeStore};
pub use registry::{
    CertificateKind, CertificateRegistry, InMemoryCertificateRegistry, IssuedCertificateRecord,
    RegistryError,
};
pub use scep::{ScepConfig, ScepService, ScepState, router};

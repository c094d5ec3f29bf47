//! Enrollment: the built-in certificate authority and the SCEP server.
//!
//! - [`ca`]: the CA (created in the data directory or supplied by the operator), `issue` with a
//!   [`CertificateProfile`] (device identity, TLS server, per-user client), CRL.
//! - [`registry`] and [`challenge`]: role traits for what enrollment persists (issued
//!   certificates and revocation; one-time challenges), with in-memory implementations.
//! - [`scep`]: the SCEP server (RFC 8894) and a client for tests and simulated devices.
//! - [`store_registry`] and [`store_challenge`]: the registry and challenge store the server
//!   runs with, on the store's keyspace (they survive restarts).
//! - [`profile`], [`profile_issuer`] and [`enroll_route`]: the enrollment profile served at
//!   `GET /mdm/enroll` (SCEP or PKCS#12 identity, `com.apple.mdm`, private TLS root).
//! - [`token`] and [`store_token`]: enrollment tokens, which a profile download needs (unless
//!   `--open-enrollment`), and the token each device enrolled with.
//! - [`re_enrollment`] and [`store_re_enrollment`]: when a certificate may replace another's
//!   binding at Authenticate (decision 0010), operator approvals and refused attempts;
//!   [`admission`] applies it (and the token's rules) to an Authenticate.
//! - [`enrollment_terms`] and [`store_terms`]: what each device enrolled with (URLs, topic,
//!   access rights, capabilities), which its renewal profiles must keep (iOS refuses a changed
//!   MDM profile with 12012).
//! - [`renewal`]: re-sends a fresh enrollment profile to devices whose identity nears expiry,
//!   reads the result and retries failures ([`renewal_record`]: the state machine;
//!   [`store_renewal`]: its records).
//! - [`server_certificate`]: the server's TLS certificate, issued by the built-in CA.
//!
//! CMS SignedData with SCEP's signed attributes is written and read with a small DER layer
//! ([`der`], [`cms`]) because the `openssl` crate cannot handle custom signed attributes; OpenSSL
//! still does all cryptography and the EnvelopedData layer. See [`cms`] for the reasoning.

pub mod admission;
pub mod ca;
pub mod certificate_profile;
pub mod certificate_request;
pub mod challenge;
pub mod cms;
pub mod der;
pub mod enroll_route;
pub mod enrollment_terms;
pub mod envelope;
pub mod oid;
pub mod profile;
pub mod profile_issuer;
pub mod re_enrollment;
pub mod registry;
pub mod renewal;
pub mod renewal_record;
pub mod scep;
pub mod server_certificate;
pub mod settings;
pub mod startup;
pub mod store_challenge;
pub mod store_re_enrollment;
pub mod store_registry;
pub mod store_renewal;
pub mod store_terms;
pub mod store_token;
pub mod token;

pub use ca::{CaConfig, CaError, CertificateAuthority, IssueRequest, IssuedCertificate};
pub use certificate_profile::CertificateProfile;
pub use challenge::{ChallengePolicy, ChallengeStore, InMemoryChallengeStore};
pub use profile_issuer::{EnrollProfileError, EnrollmentProfiles, IdentityKind, ProfileSigner};
pub use registry::{
    CertificateKind, CertificateRegistry, InMemoryCertificateRegistry, IssuedCertificateRecord,
    RegistryError,
};
pub use scep::{ScepConfig, ScepService, ScepState, router};
pub use settings::EnrollmentSettings;
pub use store_challenge::StoreChallengeStore;
pub use store_registry::StoreCertificateRegistry;
pub use store_token::EnrollmentTokens;

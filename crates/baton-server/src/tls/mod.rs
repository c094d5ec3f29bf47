//! The HTTPS listener: a small rustls accept loop in front of an axum router, serving HTTP/1.1
//! and HTTP/2 (ALPN `h2`, `http/1.1`) on each connection, and exposing the peer's TLS client
//! certificate to handlers as a [`PeerCertificate`] request extension.
//!
//! - Client certificates ([`ClientAuth`]): off by default, so no CertificateRequest is sent and
//!   iOS never asks a person to pick an identity; devices are identified by `Mdm-Signature`.
//!   With [`ClientAuth::Optional`] the listener asks (naming the device CAs) and accepts any
//!   chain; whether it is trusted is decided by [`crate::identity`], which knows the device CAs
//!   and the clock-skew rules.
//! - The server certificate ([`TlsIdentity`]: the operator's PEM files, one issued by the
//!   built-in CA, or a self-signed one) is served through a [`RotatingCertificate`], and
//!   [`rotation::run`] renews or reloads it while the server runs: new handshakes get the new
//!   certificate, open connections keep theirs.
//! - [`serve_plain`] serves the same router without TLS, for deployments behind a
//!   TLS-terminating proxy.
//!
//! What this module does not do: decide whether a client certificate identifies a device, or
//! issue certificates from the built-in CA (that is [`crate::enrollment::server_certificate`]).

use std::io;
use std::path::PathBuf;

mod client_auth;
mod connection_limits;
mod listener;
mod rotating;
pub mod rotation;
mod server_identity;
mod settings;

pub use client_auth::{ClientAuth, ParseClientAuthError};
pub use connection_limits::{ConnectionCounters, ConnectionLimits, raise_file_limit};
pub use listener::{PeerCertificate, serve_plain, serve_tls, server_config};
pub use rotating::{RotatingCertificate, ServedCertificate};
pub use rotation::{CertificateSource, OperatorFiles, SelfSigned};
pub use server_identity::TlsIdentity;
pub(crate) use server_identity::{certificate_time, write_file};
pub use settings::TlsSettings;

/// Sub-directory of the data directory holding the generated certificate.
const TLS_DIR: &str = "tls";
/// File name of the server certificate chain (PEM).
pub const SERVER_CERT_FILE: &str = "server.crt";
/// File name of the server private key (PEM, mode 0600).
pub const SERVER_KEY_FILE: &str = "server.key";

/// Why the TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A PEM file holds no certificate, or no private key, or cannot be parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// rustls refused the certificate/key pair or configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// openssl failed while generating the self-signed certificate.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

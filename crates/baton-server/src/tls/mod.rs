//! The HTTPS listener: a small rustls accept loop in front of an axum router, serving HTTP/1.1
//! and HTTP/2 (ALPN `h2`, `http/1.1`) on each connection, and exposing the peer's TLS client
//! certificate to handlers as a [`PeerCertificate`] request extension.
//!
//! Client certificates are requested but optional. The TLS layer accepts any certificate chain
//! (it only checks that the client proved possession of the key, via the handshake signature);
//! whether the certificate is trusted is decided by [`crate::identity`], which knows the device
//! CAs and the clock-skew rules. [`serve_plain`] serves the same router without TLS, for
//! deployments behind a TLS-terminating proxy.
//!
//! [`TlsIdentity`] loads the server certificate and key from PEM files, or generates a
//! self-signed one on first start and reuses it afterwards.

use std::io;
use std::path::PathBuf;

mod client_auth;
mod listener;
mod server_identity;

pub use listener::{PeerCertificate, serve_plain, serve_tls};
pub use server_identity::TlsIdentity;

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

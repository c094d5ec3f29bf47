//! The simulator's error type.

use std::path::PathBuf;

/// Why a simulated device or fleet operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// OpenSSL failed (key generation, signing, PKCS#12, certificate parsing).
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// The HTTP request could not be sent or its answer not read.
    #[error("HTTP {method} {url}: {reason}")]
    Transport {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("{url} answered HTTP {status}: {body}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the body, as text.
        body: String,
    },
    /// A URL could not be used.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The enrollment profile is not usable.
    #[error("enrollment profile: {0}")]
    EnrollmentProfile(String),
    /// SCEP enrollment failed.
    #[error("SCEP: {0}")]
    Scep(String),
    /// The server sent a command the device could not even read (no CommandUUID).
    #[error("unreadable command from the server: {0}")]
    UnreadableCommand(String),
    /// A plist could not be built.
    #[error("plist encoding: {0}")]
    Encode(#[from] baton_proto::EncodeError),
    /// A protocol identifier was refused.
    #[error("identifier: {0}")]
    Id(#[from] baton_proto::IdError),
    /// A channel identity could not be built.
    #[error("channel identity: {0}")]
    Field(#[from] baton_proto::FieldError),
    /// The device has no such Shared iPad user.
    #[error("no user {0:?} on this device")]
    UnknownUser(String),
    /// The operation needs a Shared iPad.
    #[error("the device is not a Shared iPad")]
    NotSharedIpad,
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A saved device or fleet file is not valid.
    #[error("{path}: {reason}")]
    Saved {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The admin API refused a request or answered something unexpected.
    #[error("admin API: {0}")]
    Admin(String),
    /// A TLS setting could not be built.
    #[error("TLS: {0}")]
    Tls(String),
    /// A portal page was not what a person expects (no form, an error page, not ready in
    /// time).
    #[error("portal: {0}")]
    Portal(String),
}

impl SimError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SimError {
        let path = path.into();
        move |source| SimError::Io { path, source }
    }
}

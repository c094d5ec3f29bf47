//! Why a device's identity could not be verified.
//!
//! Every variant is the device's (or its certificate's) fault except [`IdentityError::Crypto`];
//! the server answers all of them with HTTP 400 and a logged reason, never 401 (a 401 makes iOS
//! unenroll).

use std::time::SystemTime;

use openssl::error::ErrorStack;

/// A failure to verify a device signature or client certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The request carried neither an `Mdm-Signature` header nor a TLS client certificate.
    #[error("no Mdm-Signature header and no TLS client certificate")]
    MissingIdentity,
    /// The `Mdm-Signature` header is longer than the configured limit.
    #[error("Mdm-Signature header is {len} bytes, more than the {max} allowed")]
    HeaderTooLarge {
        /// Length of the header value.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The `Mdm-Signature` header is not valid base64.
    #[error("Mdm-Signature header is not valid base64")]
    BadBase64,
    /// The decoded header is not a CMS SignedData structure this verifier can read.
    #[error("malformed CMS signature: {0}")]
    MalformedCms(&'static str),
    /// The SignedData has no certificate matching its signer.
    #[error("the signer's certificate is not included in the signature")]
    SignerCertificateMissing,
    /// The signature or digest algorithm is not one Baton accepts.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(&'static str),
    /// The body's digest differs from the signed messageDigest attribute (the body was altered).
    #[error("message digest does not match the request body")]
    DigestMismatch,
    /// The signature does not verify with the signer certificate's public key.
    #[error("signature does not verify")]
    BadSignature,
    /// A certificate could not be parsed.
    #[error("certificate cannot be parsed")]
    BadCertificate,
    /// The certificate does not chain to a trusted device CA.
    #[error("certificate is not trusted: {0}")]
    UntrustedCertificate(String),
    /// The certificate (or one above it in the chain) has expired.
    #[error("certificate expired (not after {not_after:?})")]
    Expired {
        /// End of the chain's validity.
        not_after: SystemTime,
    },
    /// The certificate (or one above it in the chain) is not valid yet, even allowing for clock skew.
    #[error("certificate not valid before {not_before:?}")]
    NotYetValid {
        /// Start of the chain's validity.
        not_before: SystemTime,
    },
    /// openssl failed in a way that is not the input's fault (allocation, library state).
    #[error("openssl: {0}")]
    Crypto(#[from] ErrorStack),
}

//! Device identity: who is this request from?
//!
//! A device proves its identity on every check-in and command-channel request either with an
//! `Mdm-Signature` header (base64 of a detached CMS SignedData over the raw body, signed with the
//! key of its SCEP-issued identity certificate) or with the TLS client certificate of the
//! connection. [`IdentityVerifier`] checks either against a set of [`TrustAnchors`] and returns a
//! [`VerifiedIdentity`] whose `cert_sha256` the server binds to an enrollment.
//!
//! The signature path is the check-in hot path, so it avoids openssl's PKCS#7 parser: a small
//! DER walker reads the CMS structure, and verified certificates are cached by hash (see
//! `verifier` for the steps). [`IdentityVerifier::verify_naive`] keeps the plain openssl path as a
//! cross-check and benchmark baseline. [`testing`] makes CAs, device certificates and real
//! signatures for tests and the simulator.
//!
//! Devices send BER (Apple's streaming CMS encoder); [`crate::ber`] converts it to DER before the
//! DER walker reads it, and the signature is checked over the DER of the signed attributes.
//!
//! Not here: binding a certificate to an enrollment (store), HTTP status mapping (server: every
//! [`IdentityError`] is a 400, never a 401).

mod algorithm;
mod asn1_time;
mod certificate_cache;
mod der;
mod error;
mod naive;
mod signed_data;
pub mod testing;
mod trust;
mod verifier;

pub use algorithm::{DigestAlgorithm, KeyAlgorithm};
pub use error::IdentityError;
pub use trust::TrustAnchors;
pub use verifier::{
    IdentityConfig, IdentitySource, IdentityVerifier, SIGNATURE_HEADER, VerifiedIdentity,
};

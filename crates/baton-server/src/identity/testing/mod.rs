//! Test support for everything that needs real device identities: a throwaway CA, device
//! certificates (RSA-2048 or P-256, clientAuth), and a signer that produces genuine
//! `Mdm-Signature` header values, in strict DER or in the BER form iOS sends
//! ([`ios_encoding`]).
//!
//! Used by this crate's tests and benchmark, the server's end-to-end tests and the device
//! simulator. It is ordinary library code (no `cfg(test)`) because those live in other crates;
//! nothing in the server's request path calls it.

mod cms_builder;
pub mod ios_encoding;
mod pki;

pub use cms_builder::{
    SignOptions, SignatureEncoding, sign_message, sign_message_openssl, sign_message_with,
};
pub use ios_encoding::{CmsEncoding, CmsEncodingError};
pub use pki::{DeviceCertificateSpec, DeviceIdentity, TestCa, TestKeyKind, generate_key};

//! `X-Baton-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body bytes with the shared secret.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Baton-Signature";

/// The header value for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> Result<String, openssl::error::ErrorStack> {
    let key = PKey::hmac(secret)?;
    let mut signer = Signer::new(MessageDigest::sha256(), &key)?;
    signer.update(body)?;
    Ok(format!("sha256={}", hex::encode(signer.sign_to_vec()?)))
}

/// True when `header` is the signature of `body` under `secret` (constant-time comparison).
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Ok(expected) = sign(secret, body) else {
        return false;
    };
    expected.len() == header.len() && openssl::memcmp::eq(expected.as_bytes(), header.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = sign(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
    }
}

//! Per-device portal tokens: an unguessable random token that the sign-in web clip's URL
//! carries (`$DEVICE.portal_token`), so the portal knows which device it runs on. Created at
//! the first TokenUpdate, rotated at every Authenticate (re-enrollment). Stored both ways:
//! [`TOKEN_TO_DEVICE`] and [`DEVICE_TO_TOKEN`]. Secrets: never logged.

use baton_proto::EnrollmentId;
use baton_store::{Collection, Keyspace, KeyspaceBatch, StoreError};

/// The device attribute the token is exposed as in templates.
pub const PORTAL_TOKEN_ATTRIBUTE: &str = "portal_token";
/// Keyspace collection: token -> device id.
pub const TOKEN_TO_DEVICE: &str = "portal_token_device";
/// Keyspace collection: device id -> token.
pub const DEVICE_TO_TOKEN: &str = "device_portal_token";

/// A fresh token: 32 random bytes, URL-safe base64 without padding.
pub fn new_token() -> Result<String, openssl::error::ErrorStack> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The device's current token.
pub fn token_of(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(
            &Collection::new(DEVICE_TO_TOKEN)?,
            device.as_str().as_bytes(),
        )?
        .and_then(|v| String::from_utf8(v).ok()))
}

/// The device a token belongs to (what the portal calls).
pub fn device_of(store: &dyn Keyspace, token: &str) -> Result<Option<EnrollmentId>, StoreError> {
    Ok(store
        .get(&Collection::new(TOKEN_TO_DEVICE)?, token.as_bytes())?
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| EnrollmentId::parse(&s).ok()))
}

/// Adds to `batch` the writes that give `device` the token `token` (dropping its old one).
pub fn assign(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    token: &str,
) -> Result<(), StoreError> {
    let by_token = Collection::new(TOKEN_TO_DEVICE)?;
    if let Some(old) = token_of(store, device)? {
        batch.delete(&by_token, old.as_bytes());
    }
    batch.put(&by_token, token.as_bytes(), device.as_str().as_bytes());
    batch.put(
        &Collection::new(DEVICE_TO_TOKEN)?,
        device.as_str().as_bytes(),
        token.as_bytes(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_url_safe() {
        let a = new_token().unwrap();
        let b = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}

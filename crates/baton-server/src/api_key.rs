//! The admin API key: only its SHA-256 is stored (keyspace collection `server_settings`), the key
//! itself is shown once when it is generated. Presented keys are compared in constant time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_store::{Collection, Keyspace, StoreError};
use sha2::{Digest as _, Sha256};

/// Keyspace collection holding server-wide settings.
pub const SETTINGS_COLLECTION: &str = "server_settings";
/// Key of the API key hash in [`SETTINGS_COLLECTION`].
const API_KEY_HASH_KEY: &[u8] = b"api_key_sha256";
/// Prefix of generated keys, so they are recognisable in secret scanners.
const KEY_PREFIX: &str = "baton_";

/// Why the API key could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiKeyError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored hash is not 32 bytes.
    #[error("stored API key hash is corrupt")]
    Corrupt,
    /// The configured key is empty or too short to be a secret.
    #[error("the API key must be at least 16 characters")]
    TooShort,
    /// No random bytes were available.
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

/// SHA-256 of the admin API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyHash([u8; 32]);

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(<redacted>)")
    }
}

impl ApiKeyHash {
    /// The hash of `key`.
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    /// True when `presented` is the key (constant-time comparison of the hashes).
    pub fn matches(&self, presented: &str) -> bool {
        let other = Self::of(presented);
        openssl::memcmp::eq(&self.0, &other.0)
    }
}

/// A fresh random key: `baton_` and 32 random bytes in URL-safe base64.
pub fn generate_api_key() -> Result<String, ApiKeyError> {
    let mut raw = [0u8; 32];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
}

/// Settles the API key at start-up. A configured key (`--api-key`, `--api-key-file`,
/// `BATON_API_KEY`) is stored when no key is stored yet (the first start); otherwise it is the
/// key of this run only and the stored hash is left as it is, so a one-off key given on one
/// start does not silently replace the key the operator keeps for the others.
/// Otherwise the stored hash is used; otherwise a key is generated, its hash stored, and the
/// key returned (to be printed once).
pub fn load_or_init(
    store: &dyn Keyspace,
    configured: Option<&str>,
) -> Result<(ApiKeyHash, Option<String>), ApiKeyError> {
    let collection = Collection::new(SETTINGS_COLLECTION)?;
    if let Some(key) = configured {
        if key.len() < 16 {
            return Err(ApiKeyError::TooShort);
        }
        let hash = ApiKeyHash::of(key);
        if store.get(&collection, API_KEY_HASH_KEY)?.is_none() {
            // The first start: the configured key becomes the stored one.
            store.put(&collection, API_KEY_HASH_KEY, &hash.0)?;
        }
        return Ok((hash, None));
    }
    if let Some(stored) = store.get(&collection, API_KEY_HASH_KEY)? {
        let bytes = <[u8; 32]>::try_from(stored.as_slice()).map_err(|_| ApiKeyError::Corrupt)?;
        return Ok((ApiKeyHash(bytes), None));
    }
    let key = generate_api_key()?;
    let hash = ApiKeyHash::of(&key);
    store.put(&collection, API_KEY_HASH_KEY, &hash.0)?;
    Ok((hash, Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_store::SledStore;

    #[test]
    fn generated_key_is_returned_once_then_only_its_hash_is_used() {
        let store = SledStore::temporary().unwrap();
        let (hash, key) = load_or_init(&store, None).unwrap();
        let key = key.unwrap();
        assert!(key.starts_with("baton_"));
        assert!(hash.matches(&key));
        assert!(!hash.matches("baton_wrong"));
        let (again, none) = load_or_init(&store, None).unwrap();
        assert!(none.is_none());
        assert!(again.matches(&key));
    }

    #[test]
    fn a_configured_key_on_the_first_start_is_stored() {
        let store = SledStore::temporary().unwrap();
        let (_, none) = load_or_init(&store, Some("operator-chosen-key-123")).unwrap();
        assert!(none.is_none());
        let (stored, none) = load_or_init(&store, None).unwrap();
        assert!(none.is_none(), "no new key is generated");
        assert!(stored.matches("operator-chosen-key-123"));
    }

    #[test]
    fn a_configured_key_serves_its_run_and_leaves_the_stored_one() {
        let store = SledStore::temporary().unwrap();
        let (_, generated) = load_or_init(&store, None).unwrap();
        let generated = generated.unwrap();
        let (hash, none) = load_or_init(&store, Some("operator-chosen-key-123")).unwrap();
        assert!(none.is_none());
        assert!(hash.matches("operator-chosen-key-123"));
        assert!(!hash.matches(&generated));
        // The next start without a configured key uses the stored (generated) key again.
        let (stored, none) = load_or_init(&store, None).unwrap();
        assert!(none.is_none());
        assert!(stored.matches(&generated));
        assert!(!stored.matches("operator-chosen-key-123"));
        assert!(matches!(
            load_or_init(&store, Some("short")),
            Err(ApiKeyError::TooShort)
        ));
    }
}

//! Enrollment tokens in the store's keyspace, and the token each device enrolled with.
//!
//! Collections:
//! - `enrollment_tokens`: token id -> [`EnrollmentToken`] JSON (the secret only as its
//!   SHA-256). Kept after expiry and revocation, so lists and devices keep naming them.
//! - `device_enrollment_tokens`: device id -> [`DeviceToken`] JSON, written at Authenticate.
//!
//! A use is taken by compare-and-swap on the record's bytes: of two downloads racing for the
//! last use exactly one gets it.

use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_proto::EnrollmentId;
use baton_store::{CasOutcome, Collection, KeyspaceBatch, Store, StoreError, unix_millis};
use serde::{Deserialize, Serialize};

use super::token::{
    EnrollmentToken, SECRET_SEPARATOR, TokenRefusal, TokenSpec, secret_sha256, split_token,
};

/// Collection of tokens by id.
pub const TOKENS_COLLECTION: &str = "enrollment_tokens";
/// Collection of the token each device enrolled with, by device id.
pub const DEVICE_TOKENS_COLLECTION: &str = "device_enrollment_tokens";
/// Compare-and-swap attempts before giving up.
const CAS_ATTEMPTS: usize = 16;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenStoreError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored record does not decode.
    #[error("stored enrollment token {id}: {reason}")]
    Corrupt {
        /// Its key.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The random generator failed.
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),
    /// Concurrent writers kept changing the record.
    #[error("enrollment token {0} kept changing; retry")]
    Contended(String),
}

/// The token a device enrolled with, shown on the device (`enrollment_token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceToken {
    /// The token's id.
    pub id: String,
    /// Its label when the device enrolled.
    pub label: String,
    /// Which use of the token the device's certificate came from.
    #[serde(default)]
    pub use_number: Option<u32>,
    /// When the device authenticated with it, Unix milliseconds.
    pub enrolled_at_ms: u64,
}

/// The enrollment tokens of one server.
#[derive(Clone)]
pub struct EnrollmentTokens {
    store: Arc<dyn Store>,
    public_url: String,
}

impl std::fmt::Debug for EnrollmentTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentTokens")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

fn tokens() -> Result<Collection, StoreError> {
    Collection::new(TOKENS_COLLECTION)
}

fn device_tokens() -> Result<Collection, StoreError> {
    Collection::new(DEVICE_TOKENS_COLLECTION)
}

fn decode(id: &str, bytes: &[u8]) -> Result<EnrollmentToken, TokenStoreError> {
    serde_json::from_slice(bytes).map_err(|e| TokenStoreError::Corrupt {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

fn encode(token: &EnrollmentToken) -> Result<Vec<u8>, TokenStoreError> {
    serde_json::to_vec(token).map_err(|e| TokenStoreError::Corrupt {
        id: token.id.clone(),
        reason: e.to_string(),
    })
}

fn random(bytes: usize) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let mut raw = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(raw)
}

impl EnrollmentTokens {
    /// Tokens in `store`; enrollment URLs start with `public_url`.
    pub fn new(store: Arc<dyn Store>, public_url: &str) -> Self {
        Self {
            store,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The public URL enrollment URLs (and profiles) start with.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The enrollment URL of a token string.
    pub fn url(&self, token: &str) -> String {
        format!("{}/mdm/enroll?token={token}", self.public_url)
    }

    /// Creates a token at `now`; returns its record and the token string (`<id>.<secret>`),
    /// which is never stored and cannot be shown again.
    pub fn create(
        &self,
        spec: TokenSpec,
        now: SystemTime,
    ) -> Result<(EnrollmentToken, String), TokenStoreError> {
        for _ in 0..CAS_ATTEMPTS {
            let id = hex::encode(random(6)?);
            let secret = URL_SAFE_NO_PAD.encode(random(24)?);
            let token =
                spec.clone()
                    .into_token(id.clone(), secret_sha256(&secret), unix_millis(now));
            let outcome = self.store.compare_and_swap(
                &tokens()?,
                id.as_bytes(),
                None,
                Some(&encode(&token)?),
            )?;
            if outcome == CasOutcome::Applied {
                return Ok((token, format!("{id}{SECRET_SEPARATOR}{secret}")));
            }
        }
        Err(TokenStoreError::Contended("new".into()))
    }

    /// Every token, by id.
    pub fn list(&self) -> Result<Vec<EnrollmentToken>, TokenStoreError> {
        self.store
            .scan_prefix(&tokens()?, b"")?
            .iter()
            .map(|(k, v)| decode(&String::from_utf8_lossy(k), v))
            .collect()
    }

    /// True when no token was ever created (first start).
    pub fn none_created(&self) -> Result<bool, TokenStoreError> {
        Ok(self.store.last_with_prefix(&tokens()?, b"")?.is_none())
    }

    /// The token with this id.
    pub fn get(&self, id: &str) -> Result<Option<EnrollmentToken>, TokenStoreError> {
        self.store
            .get(&tokens()?, id.as_bytes())?
            .map(|v| decode(id, &v))
            .transpose()
    }

    /// Revokes the token at `now` (a revoked token stays revoked); `None` for an unknown id.
    pub fn revoke(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Option<EnrollmentToken>, TokenStoreError> {
        self.update(id, |t| {
            if t.revoked_at_ms.is_none() {
                t.revoked_at_ms = Some(unix_millis(now));
            }
            Ok(())
        })
        .map(|r| r.and_then(Result::ok))
    }

    /// Takes one use of the token string `token` at `now`: the updated record and the use's
    /// number, or why it was refused.
    pub fn take_use(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Result<(EnrollmentToken, u32), TokenRefusal>, TokenStoreError> {
        let Some((id, secret)) = split_token(token) else {
            return Ok(Err(TokenRefusal::Invalid));
        };
        let mut number = 0;
        let updated = self.update(id, |t| {
            if !t.secret_matches(secret) {
                return Err(TokenRefusal::Invalid);
            }
            let (next, n) = t.take_use(unix_millis(now))?;
            *t = next;
            number = n;
            Ok(())
        })?;
        Ok(match updated {
            None => Err(TokenRefusal::Invalid),
            Some(Err(refusal)) => Err(refusal),
            Some(Ok(token)) => Ok((token, number)),
        })
    }

    /// Applies `change` to the stored record by compare-and-swap. `None`: no such token;
    /// `Some(Err)`: `change` refused (nothing written).
    fn update(
        &self,
        id: &str,
        mut change: impl FnMut(&mut EnrollmentToken) -> Result<(), TokenRefusal>,
    ) -> Result<Option<Result<EnrollmentToken, TokenRefusal>>, TokenStoreError> {
        let collection = tokens()?;
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.store.get(&collection, id.as_bytes())? else {
                return Ok(None);
            };
            let mut token = decode(id, &current)?;
            if let Err(refusal) = change(&mut token) {
                return Ok(Some(Err(refusal)));
            }
            let outcome = self.store.compare_and_swap(
                &collection,
                id.as_bytes(),
                Some(&current),
                Some(&encode(&token)?),
            )?;
            if outcome == CasOutcome::Applied {
                return Ok(Some(Ok(token)));
            }
        }
        Err(TokenStoreError::Contended(id.to_owned()))
    }
}

/// Adds to `batch` the record that `device` enrolled with `token` (use `use_number`) at `now`,
/// or, with no token, removes the device's record.
pub fn record_device_token(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    token: Option<(&EnrollmentToken, Option<u32>)>,
    now: SystemTime,
) -> Result<(), TokenStoreError> {
    let collection = device_tokens()?;
    let key = device.parent();
    match token {
        Some((token, use_number)) => {
            let record = DeviceToken {
                id: token.id.clone(),
                label: token.label.clone(),
                use_number,
                enrolled_at_ms: unix_millis(now),
            };
            let bytes = serde_json::to_vec(&record).map_err(|e| TokenStoreError::Corrupt {
                id: token.id.clone(),
                reason: e.to_string(),
            })?;
            batch.put(&collection, key.as_str().as_bytes(), &bytes);
        }
        None => {
            batch.delete(&collection, key.as_str().as_bytes());
        }
    }
    Ok(())
}

/// The token `device` enrolled with, if any (a record that does not decode reads as none).
pub fn device_token(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<Option<DeviceToken>, StoreError> {
    Ok(store
        .get(&device_tokens()?, device.parent().as_str().as_bytes())?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_store::{SledConfig, SledStore};

    use super::*;
    use crate::enrollment::token::TokenInput;

    fn tokens_in(dir: &std::path::Path) -> EnrollmentTokens {
        let store: Arc<dyn Store> = Arc::new(SledStore::open_with(&SledConfig::new(dir)).unwrap());
        EnrollmentTokens::new(store, "https://mdm.example/")
    }

    fn spec(uses: u32) -> TokenSpec {
        TokenInput {
            label: "cart".into(),
            uses: Some(uses),
            ..TokenInput::default()
        }
        .validate()
        .unwrap()
    }

    #[test]
    fn a_token_is_used_up_revoked_and_never_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens_in(dir.path());
        let now = SystemTime::now();
        assert!(t.none_created().unwrap());
        let (record, secret) = t.create(spec(2), now).unwrap();
        assert!(!t.none_created().unwrap());
        assert!(secret.starts_with(&format!("{}.", record.id)));
        assert_eq!(
            t.url(&secret),
            format!("https://mdm.example/mdm/enroll?token={secret}")
        );
        let stored = t.store.get(&tokens().unwrap(), record.id.as_bytes());
        let stored = String::from_utf8(stored.unwrap().unwrap()).unwrap();
        assert!(!stored.contains(secret.split('.').nth(1).unwrap()));

        let wrong = format!("{}.nope", record.id);
        assert_eq!(t.take_use(&wrong, now).unwrap(), Err(TokenRefusal::Invalid));
        assert_eq!(
            t.take_use("ffffffffffff.x", now).unwrap(),
            Err(TokenRefusal::Invalid)
        );
        assert_eq!(t.take_use(&secret, now).unwrap().unwrap().1, 1);
        assert_eq!(t.take_use(&secret, now).unwrap().unwrap().1, 2);
        assert_eq!(t.take_use(&secret, now).unwrap(), Err(TokenRefusal::UsedUp));
        assert_eq!(t.get(&record.id).unwrap().unwrap().uses, 2);

        let (other, other_secret) = t.create(spec(5), now).unwrap();
        let revoked = t
            .revoke(&other.id, now + Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert!(revoked.revoked_at_ms.is_some());
        assert_eq!(
            t.take_use(&other_secret, now).unwrap(),
            Err(TokenRefusal::Revoked)
        );
        assert!(t.revoke("ffffffffffff", now).unwrap().is_none());
        assert_eq!(t.list().unwrap().len(), 2);
    }

    #[test]
    fn concurrent_downloads_never_take_more_uses_than_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens_in(dir.path());
        let now = SystemTime::now();
        let (record, secret) = t.create(spec(5), now).unwrap();
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        (0..4)
                            .filter(|_| t.take_use(&secret, now).unwrap().is_ok())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(granted, 5);
        assert_eq!(t.get(&record.id).unwrap().unwrap().uses, 5);
    }
}

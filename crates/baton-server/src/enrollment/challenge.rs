//! SCEP challenge passwords: an optional static challenge, and one-time challenges with an
//! expiry (created per enrollment, consumed by the first request that presents them).
//!
//! One-time challenges are stored by the SHA-256 of the secret only, so a store dump does not
//! hand out usable challenges. Comparison of the static challenge is constant-time.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::registry::RegistryError;

/// SHA-256 of a challenge secret.
pub type ChallengeHash = [u8; 32];

/// Hashes a challenge secret for storage and lookup.
pub fn challenge_hash(secret: &str) -> ChallengeHash {
    Sha256::digest(secret.as_bytes()).into()
}

/// A stored one-time challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeChallenge {
    /// SHA-256 of the secret.
    pub hash: ChallengeHash,
    /// The challenge is refused from this instant on.
    pub expires_at: SystemTime,
    /// What the enrollment is about (e.g. an enrollment or device id), copied to the issued
    /// certificate's registry record.
    pub enrollment_hint: Option<String>,
}

/// The result of trying to consume a one-time challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumeOutcome {
    /// The challenge was valid and is now used up.
    Consumed(OneTimeChallenge),
    /// No such challenge.
    Unknown,
    /// The challenge exists but has expired.
    Expired,
    /// The challenge was already used.
    AlreadyUsed,
}

/// Persistence for one-time challenges.
pub trait ChallengeStore: Send + Sync + fmt::Debug {
    /// Stores a new challenge.
    fn insert(&self, challenge: OneTimeChallenge) -> Result<(), RegistryError>;
    /// Atomically checks and consumes the challenge with this hash.
    fn consume(
        &self,
        hash: &ChallengeHash,
        now: SystemTime,
    ) -> Result<ConsumeOutcome, RegistryError>;
}

/// How long past its expiry an entry is remembered by [`InMemoryChallengeStore`].
const PURGE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);

/// A [`ChallengeStore`] in memory. Entries are kept a while past expiry (so a reuse or a late
/// use is reported as such), then dropped on a later insert.
#[derive(Debug, Default)]
pub struct InMemoryChallengeStore {
    inner: Mutex<HashMap<ChallengeHash, (OneTimeChallenge, bool)>>,
}

impl InMemoryChallengeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChallengeHash, (OneTimeChallenge, bool)>> {
        // Poisoning only means a panic elsewhere; the map itself stays consistent.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ChallengeStore for InMemoryChallengeStore {
    fn insert(&self, challenge: OneTimeChallenge) -> Result<(), RegistryError> {
        let mut map = self.lock();
        // Forget challenges that expired long before this one was made (no clock read here).
        let horizon = challenge.expires_at.checked_sub(PURGE_AFTER);
        map.retain(|_, (c, _)| horizon.is_none_or(|h| c.expires_at > h));
        map.insert(challenge.hash, (challenge, false));
        Ok(())
    }

    fn consume(
        &self,
        hash: &ChallengeHash,
        now: SystemTime,
    ) -> Result<ConsumeOutcome, RegistryError> {
        let mut map = self.lock();
        Ok(match map.get_mut(hash) {
            None => ConsumeOutcome::Unknown,
            Some((_, true)) => ConsumeOutcome::AlreadyUsed,
            Some((c, _)) if c.expires_at <= now => ConsumeOutcome::Expired,
            Some((c, used)) => {
                *used = true;
                ConsumeOutcome::Consumed(c.clone())
            }
        })
    }
}

/// Why a challenge was refused (all map to SCEP failInfo badRequest).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChallengeRejection {
    /// The request carried no challengePassword.
    #[error("no challenge password")]
    Missing,
    /// The challenge matches neither the static nor any one-time challenge.
    #[error("unknown challenge password")]
    Unknown,
    /// A one-time challenge that has expired.
    #[error("challenge password expired")]
    Expired,
    /// A one-time challenge that was already used.
    #[error("challenge password already used")]
    AlreadyUsed,
}

/// What an accepted challenge grants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeGrant {
    /// The static challenge matched.
    Static,
    /// A one-time challenge was consumed.
    OneTime {
        /// The hint stored with the challenge.
        enrollment_hint: Option<String>,
    },
}

/// Which challenges the SCEP server accepts.
#[derive(Clone)]
pub struct ChallengePolicy {
    static_hash: Option<ChallengeHash>,
    store: Arc<dyn ChallengeStore>,
}

impl fmt::Debug for ChallengePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the challenge (or its hash).
        f.debug_struct("ChallengePolicy")
            .field("static_challenge", &self.static_hash.is_some())
            .field("store", &self.store)
            .finish()
    }
}

impl ChallengePolicy {
    /// A policy with an optional static challenge and a store for one-time challenges.
    pub fn new(static_challenge: Option<&str>, store: Arc<dyn ChallengeStore>) -> Self {
        Self {
            static_hash: static_challenge.map(challenge_hash),
            store,
        }
    }

    /// Creates a one-time challenge valid for `ttl` from `now` and returns its secret (to be put
    /// in the enrollment profile; it is not stored in clear).
    pub fn create_one_time(
        &self,
        ttl: Duration,
        enrollment_hint: Option<String>,
        now: SystemTime,
    ) -> Result<String, ChallengeError> {
        let mut raw = [0u8; 24];
        openssl::rand::rand_bytes(&mut raw)?;
        let secret = URL_SAFE_NO_PAD.encode(raw);
        self.store.insert(OneTimeChallenge {
            hash: challenge_hash(&secret),
            expires_at: now + ttl,
            enrollment_hint,
        })?;
        Ok(secret)
    }

    /// Uses up the one-time challenge with this hash without issuing anything (a renewal
    /// attempt replaced by the next one); unknown, used or expired challenges stay as they are.
    pub fn withdraw(&self, hash: &ChallengeHash, now: SystemTime) -> Result<(), RegistryError> {
        self.store.consume(hash, now).map(|_| ())
    }

    /// Checks (and for one-time challenges, consumes) the presented challenge.
    pub fn check(
        &self,
        presented: Option<&str>,
        now: SystemTime,
    ) -> Result<Result<ChallengeGrant, ChallengeRejection>, RegistryError> {
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return Ok(Err(ChallengeRejection::Missing));
        };
        let hash = challenge_hash(presented);
        if let Some(expected) = &self.static_hash
            && openssl::memcmp::eq(expected, &hash)
        {
            return Ok(Ok(ChallengeGrant::Static));
        }
        Ok(match self.store.consume(&hash, now)? {
            ConsumeOutcome::Consumed(c) => Ok(ChallengeGrant::OneTime {
                enrollment_hint: c.enrollment_hint,
            }),
            ConsumeOutcome::Unknown => Err(ChallengeRejection::Unknown),
            ConsumeOutcome::Expired => Err(ChallengeRejection::Expired),
            ConsumeOutcome::AlreadyUsed => Err(ChallengeRejection::AlreadyUsed),
        })
    }
}

/// Creating a one-time challenge failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The random generator failed.
    #[error("random generator: {0}")]
    Random(#[from] openssl::error::ErrorStack),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RegistryError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(static_challenge: Option<&str>) -> ChallengePolicy {
        ChallengePolicy::new(static_challenge, Arc::new(InMemoryChallengeStore::new()))
    }

    #[test]
    fn static_challenge_matches_exactly() {
        let p = policy(Some("s3cret"));
        let now = SystemTime::now();
        assert_eq!(
            p.check(Some("s3cret"), now).unwrap(),
            Ok(ChallengeGrant::Static)
        );
        assert_eq!(
            p.check(Some("s3cret"), now).unwrap(),
            Ok(ChallengeGrant::Static)
        );
        assert_eq!(
            p.check(Some("s3cre"), now).unwrap(),
            Err(ChallengeRejection::Unknown)
        );
        assert_eq!(
            p.check(None, now).unwrap(),
            Err(ChallengeRejection::Missing)
        );
        assert_eq!(
            p.check(Some(""), now).unwrap(),
            Err(ChallengeRejection::Missing)
        );
    }

    #[test]
    fn one_time_challenge_is_consumed_once_and_expires() {
        let p = policy(None);
        let now = SystemTime::now();
        let secret = p
            .create_one_time(Duration::from_secs(60), Some("enr-1".into()), now)
            .unwrap();
        assert_eq!(
            p.check(Some(&secret), now).unwrap(),
            Ok(ChallengeGrant::OneTime {
                enrollment_hint: Some("enr-1".into())
            })
        );
        assert_eq!(
            p.check(Some(&secret), now).unwrap(),
            Err(ChallengeRejection::AlreadyUsed)
        );
        let late = p
            .create_one_time(Duration::from_secs(60), None, now)
            .unwrap();
        assert_eq!(
            p.check(Some(&late), now + Duration::from_secs(61)).unwrap(),
            Err(ChallengeRejection::Expired)
        );
        let withdrawn = p
            .create_one_time(Duration::from_secs(60), None, now)
            .unwrap();
        p.withdraw(&challenge_hash(&withdrawn), now).unwrap();
        assert_eq!(
            p.check(Some(&withdrawn), now).unwrap(),
            Err(ChallengeRejection::AlreadyUsed)
        );
    }
}

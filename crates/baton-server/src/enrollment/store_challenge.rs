//! The [`ChallengeStore`] the server runs with: one-time SCEP challenges in the store's keyspace
//! (collection `scep_challenges`, key = SHA-256 of the secret), so a challenge handed out in an
//! enrollment profile stays valid, and stays used up, across restarts.
//!
//! Consuming is a compare-and-swap from the unused entry to the used one: of two concurrent
//! requests with the same challenge exactly one wins. Used and expired entries are kept (so a
//! replay is reported as such) and dropped by [`StoreChallengeStore::purge`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_store::{CasOutcome, Collection, Store, StoreError, from_unix_millis, unix_millis};
use serde::{Deserialize, Serialize};

use super::challenge::{ChallengeHash, ChallengeStore, ConsumeOutcome, OneTimeChallenge};
use super::registry::RegistryError;

/// Collection of one-time challenges.
pub const CHALLENGES_COLLECTION: &str = "scep_challenges";
/// Compare-and-swap attempts before giving up.
const CAS_ATTEMPTS: usize = 16;

/// A [`ChallengeStore`] on the store's keyspace.
#[derive(Clone)]
pub struct StoreChallengeStore {
    store: Arc<dyn Store>,
    collection: Collection,
}

impl std::fmt::Debug for StoreChallengeStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreChallengeStore")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredChallenge {
    expires_at_ms: u64,
    enrollment_hint: Option<String>,
    used: bool,
}

fn backend(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Backend(e.to_string())
}

impl StoreChallengeStore {
    /// A challenge store on `store`'s keyspace.
    pub fn new(store: Arc<dyn Store>) -> Result<Self, RegistryError> {
        Ok(Self {
            store,
            collection: Collection::new(CHALLENGES_COLLECTION).map_err(backend)?,
        })
    }

    /// Drops entries that expired more than `keep` before `now`; returns how many.
    pub fn purge(&self, now: SystemTime, keep: Duration) -> Result<usize, StoreError> {
        let horizon = unix_millis(now.checked_sub(keep).unwrap_or(SystemTime::UNIX_EPOCH));
        let mut purged = 0;
        for (key, value) in self.store.scan_prefix(&self.collection, b"")? {
            let stale = serde_json::from_slice::<StoredChallenge>(&value)
                .map_or(true, |c| c.expires_at_ms < horizon);
            if stale && self.store.delete(&self.collection, &key)? {
                purged += 1;
            }
        }
        Ok(purged)
    }
}

impl ChallengeStore for StoreChallengeStore {
    fn insert(&self, challenge: OneTimeChallenge) -> Result<(), RegistryError> {
        let value = serde_json::to_vec(&StoredChallenge {
            expires_at_ms: unix_millis(challenge.expires_at),
            enrollment_hint: challenge.enrollment_hint,
            used: false,
        })
        .map_err(backend)?;
        self.store
            .put(&self.collection, &challenge.hash, &value)
            .map_err(backend)
    }

    fn consume(
        &self,
        hash: &ChallengeHash,
        now: SystemTime,
    ) -> Result<ConsumeOutcome, RegistryError> {
        for _ in 0..CAS_ATTEMPTS {
            let Some(current) = self.store.get(&self.collection, hash).map_err(backend)? else {
                return Ok(ConsumeOutcome::Unknown);
            };
            let mut stored: StoredChallenge = serde_json::from_slice(&current).map_err(backend)?;
            if stored.used {
                return Ok(ConsumeOutcome::AlreadyUsed);
            }
            let expires_at = from_unix_millis(stored.expires_at_ms);
            if expires_at <= now {
                return Ok(ConsumeOutcome::Expired);
            }
            stored.used = true;
            let used = serde_json::to_vec(&stored).map_err(backend)?;
            let outcome = self
                .store
                .compare_and_swap(&self.collection, hash, Some(&current), Some(&used))
                .map_err(backend)?;
            if outcome == CasOutcome::Applied {
                return Ok(ConsumeOutcome::Consumed(OneTimeChallenge {
                    hash: *hash,
                    expires_at,
                    enrollment_hint: stored.enrollment_hint,
                }));
            }
        }
        Err(RegistryError::Backend(
            "challenge consumption kept conflicting".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::challenge::{ChallengeGrant, ChallengePolicy, ChallengeRejection};
    use baton_store::{SledConfig, SledStore};

    fn open(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SledStore::open_with(&SledConfig::new(dir)).unwrap())
    }

    #[test]
    fn one_time_challenges_survive_reopening_and_are_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let (secret, late) = {
            let policy = ChallengePolicy::new(
                None,
                Arc::new(StoreChallengeStore::new(open(dir.path())).unwrap()),
            );
            let secret = policy
                .create_one_time(Duration::from_secs(3600), Some("enroll-1".into()), now)
                .unwrap();
            let late = policy
                .create_one_time(Duration::from_secs(60), None, now)
                .unwrap();
            (secret, late)
        };
        let store = StoreChallengeStore::new(open(dir.path())).unwrap();
        let policy = ChallengePolicy::new(None, Arc::new(store.clone()));
        assert_eq!(
            policy.check(Some(&secret), now).unwrap(),
            Ok(ChallengeGrant::OneTime {
                enrollment_hint: Some("enroll-1".into())
            })
        );
        assert_eq!(
            policy.check(Some(&secret), now).unwrap(),
            Err(ChallengeRejection::AlreadyUsed)
        );
        assert_eq!(
            policy
                .check(Some(&late), now + Duration::from_secs(61))
                .unwrap(),
            Err(ChallengeRejection::Expired)
        );
        assert_eq!(
            policy.check(Some("never-issued"), now).unwrap(),
            Err(ChallengeRejection::Unknown)
        );
        // Purging a day later with no grace drops both entries.
        assert_eq!(
            store
                .purge(now + Duration::from_secs(86_400), Duration::ZERO)
                .unwrap(),
            2
        );
    }
}

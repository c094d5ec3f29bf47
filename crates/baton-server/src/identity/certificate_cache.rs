//! A bounded, sharded cache of verified device certificates keyed by the SHA-256 of their DER.
//!
//! Only certificates whose chain verified are stored, so a hit means "trusted, here is the key";
//! validity dates are still judged on every use from the cached window. Each shard is a
//! `RwLock<HashMap>`: check-ins from different devices mostly take read locks on different shards.
//! When a shard is full an arbitrary entry leaves to make room (a re-verification is the only cost).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use super::trust::CertificateFacts;

const SHARDS: usize = 16;

/// SHA-256 of a certificate's DER.
pub(crate) type CertificateHash = [u8; 32];

/// The cache. Cheap to share behind an `Arc`.
pub(crate) struct CertificateCache {
    shards: Vec<RwLock<HashMap<CertificateHash, Arc<CertificateFacts>>>>,
    per_shard_capacity: usize,
}

impl fmt::Debug for CertificateCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCache")
            .field("len", &self.len())
            .field("capacity", &(self.per_shard_capacity * SHARDS))
            .finish()
    }
}

impl CertificateCache {
    /// A cache holding at most about `capacity` certificates (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            per_shard_capacity: capacity.div_ceil(SHARDS).max(1),
        }
    }

    fn shard(
        &self,
        hash: &CertificateHash,
    ) -> &RwLock<HashMap<CertificateHash, Arc<CertificateFacts>>> {
        // The key is a SHA-256 output, so its first byte spreads evenly over the shards.
        &self.shards[usize::from(hash[0]) % SHARDS]
    }

    /// The cached facts for this certificate, if its chain was verified before.
    pub(crate) fn get(&self, hash: &CertificateHash) -> Option<Arc<CertificateFacts>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        let shard = self
            .shard(hash)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        shard.get(hash).cloned()
    }

    /// Remembers a verified certificate, evicting an arbitrary entry of a full shard.
    pub(crate) fn insert(&self, hash: CertificateHash, facts: Arc<CertificateFacts>) {
        let mut shard = self
            .shard(&hash)
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if shard.len() >= self.per_shard_capacity && !shard.contains_key(&hash) {
            let victim = shard.keys().next().copied();
            if let Some(victim) = victim {
                shard.remove(&victim);
            }
        }
        shard.insert(hash, facts);
    }

    /// Number of cached certificates.
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Forgets every certificate (e.g. after the trust anchors change).
    pub(crate) fn clear(&self) {
        for shard in &self.shards {
            shard
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }
}

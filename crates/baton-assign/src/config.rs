//! The whole assignment configuration as operators edit it (and the server stores as JSON).

use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::directory::Directory;
use crate::distribution::Distribution;
use crate::ids::{DistributionId, GroupId, ItemId, UnixTime};

/// Default prefix of the PayloadIdentifier of every profile Baton installs.
pub const DEFAULT_IDENTIFIER_PREFIX: &str = "com.baton";

/// How item-level failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// After this many failed attempts the item is given up (reported, not retried).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure.
    pub backoff_secs: u64,
    /// Upper bound of the wait.
    pub max_backoff_secs: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_secs: 60,
            max_backoff_secs: 3600,
        }
    }
}

/// The failure record of one item on one device, kept by the server: the number of failed
/// attempts (ErrorChain answers, failed app installs) since the last success and when the last
/// one happened. The server clears it when the item is seen installed (or removed) as wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemFailures {
    /// Failed attempts.
    pub attempts: u32,
    /// When the last attempt failed.
    pub last_failure: UnixTime,
}

impl RetryPolicy {
    /// When an item with `failures` may be tried again, or None when it has been given up.
    pub fn retry_at(&self, failures: &ItemFailures) -> Option<UnixTime> {
        if failures.attempts >= self.max_attempts {
            return None;
        }
        let shift = failures.attempts.saturating_sub(1).min(32);
        let wait = self
            .backoff_secs
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff_secs);
        Some(failures.last_failure.plus_secs(wait))
    }
}

/// Users, groups, catalog and distributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Prefix of Baton's PayloadIdentifiers: items are `<prefix>.item.<item id>`. Profiles
    /// outside `<prefix>.item.` are never removed.
    #[serde(default = "default_prefix")]
    pub identifier_prefix: String,
    /// Users and groups.
    #[serde(default)]
    pub directory: Directory,
    /// Items.
    #[serde(default)]
    pub catalog: Catalog,
    /// Distributions.
    #[serde(default)]
    pub distributions: Vec<Distribution>,
    /// Retry policy for item failures.
    #[serde(default)]
    pub retry: RetryPolicy,
}

fn default_prefix() -> String {
    DEFAULT_IDENTIFIER_PREFIX.to_owned()
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identifier_prefix: default_prefix(),
            directory: Directory::default(),
            catalog: Catalog::default(),
            distributions: Vec::new(),
            retry: RetryPolicy::default(),
        }
    }
}

/// Why a configuration cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CompileError {
    /// Two users share a username.
    #[error("duplicate user {username:?}")]
    DuplicateUser {
        /// The username.
        username: String,
    },
    /// Two groups share an id.
    #[error("duplicate group {id}")]
    DuplicateGroup {
        /// The id.
        id: GroupId,
    },
    /// Two items share an id.
    #[error("duplicate item {id}")]
    DuplicateItem {
        /// The id.
        id: ItemId,
    },
    /// Two distributions share an id.
    #[error("duplicate distribution {id}")]
    DuplicateDistribution {
        /// The id.
        id: DistributionId,
    },
    /// The identifier prefix is empty or not reverse-DNS-like.
    #[error("bad identifier prefix {prefix:?}")]
    BadPrefix {
        /// The prefix.
        prefix: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_then_gives_up() {
        let p = RetryPolicy::default();
        let f = |attempts| ItemFailures {
            attempts,
            last_failure: UnixTime(1000),
        };
        assert_eq!(p.retry_at(&f(1)), Some(UnixTime(1060)));
        assert_eq!(p.retry_at(&f(2)), Some(UnixTime(1120)));
        assert_eq!(p.retry_at(&f(3)), None);
        let c: Config = serde_json::from_str("{}").unwrap();
        assert_eq!(c.identifier_prefix, DEFAULT_IDENTIFIER_PREFIX);
    }
}

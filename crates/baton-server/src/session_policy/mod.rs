//! Session rules (issue 10): how long a sign-in holds a shared device and when Baton signs
//! people out by itself.
//!
//! - [`record`]: the stored policy (`GET`/`PUT /api/v1/session-policy`) and its validation.
//! - [`effective`]: the rules for one (device, user) sign-in, and the "Stay signed in?" rule.
//! - [`shift`]: shift end times (`"HH:MM"` UTC) and the next one after a moment.
//! - [`lease`]: the stored lease of each signed-in device (survives restarts).
//! - [`sign_in`]: sign-in and sign-out that write and delete the lease in the same transaction.
//! - [`sweeper`]: the background task that signs out expired leases and disabled users.
//!
//! [`SessionRules`] carries the server settings (`--default-lease`, `--lease-check-interval`)
//! and the sweeper's wake-up signal; handlers reach it through the shared state.
//!
//! Not here: the portal's prompt page, cookies and the sign-in log (they use this module).

pub mod effective;
#[cfg(test)]
pub(crate) mod fixture;
pub mod lease;
pub mod record;
pub mod shift;
pub mod sign_in;
pub mod sweeper;
pub mod zone;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

pub use effective::{EffectivePolicy, effective, prompt_allowed};
pub use lease::{Lease, lease_for_sign_in};
pub use record::{PersistentSessions, SessionPolicy};
pub use sweeper::{AutomaticSignOut, SignOutHook, SignOutReason};
pub use zone::{OperatorZone, ZoneError};

/// Default lease: 24 hours.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(86_400);
/// Default interval between two sweeps: 30 seconds.
pub const DEFAULT_LEASE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Shortest sweep interval accepted.
pub const MIN_LEASE_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Longest sweep interval accepted: 1 hour.
pub const MAX_LEASE_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Server settings for sessions (`baton serve --default-lease`, `--lease-check-interval`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// The lease of a non-persistent sign-in when no device group sets one.
    pub default_lease: Duration,
    /// How often the sweeper looks for ended leases (it also wakes up for the next known
    /// lease end, and when a user is disabled or the policy changes).
    pub lease_check_interval: Duration,
    /// The operator's time zone: shift ends are times of day in it, and the portal shows
    /// times in it.
    pub time_zone: OperatorZone,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            default_lease: DEFAULT_LEASE,
            lease_check_interval: DEFAULT_LEASE_CHECK_INTERVAL,
            time_zone: OperatorZone::utc(),
        }
    }
}

/// Why session settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionSettingsError {
    /// The default lease is outside [`record::MIN_LEASE`]..=[`record::MAX_LEASE`].
    #[error("the default lease must be between 1 second and 90 days, got {0} s")]
    DefaultLease(u64),
    /// The check interval is outside its bounds.
    #[error("the lease check interval must be between 1 and 3600 seconds, got {0} s")]
    CheckInterval(u64),
}

impl SessionSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), SessionSettingsError> {
        if !record::lease_in_bounds(self.default_lease) {
            return Err(SessionSettingsError::DefaultLease(
                self.default_lease.as_secs(),
            ));
        }
        if !(MIN_LEASE_CHECK_INTERVAL..=MAX_LEASE_CHECK_INTERVAL)
            .contains(&self.lease_check_interval)
        {
            return Err(SessionSettingsError::CheckInterval(
                self.lease_check_interval.as_secs(),
            ));
        }
        Ok(())
    }
}

/// The session settings plus the sweeper's wake-up signal. Shared by handlers and the sweeper.
#[derive(Debug, Default)]
pub struct SessionRules {
    settings: SessionSettings,
    wake: Notify,
    /// When the sweeper plans to run next, Unix milliseconds (0: unknown).
    planned_ms: AtomicU64,
}

impl SessionRules {
    /// Rules with these settings.
    pub fn new(settings: SessionSettings) -> Self {
        SessionRules {
            settings,
            wake: Notify::new(),
            planned_ms: AtomicU64::new(0),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &SessionSettings {
        &self.settings
    }

    /// The default lease.
    pub fn default_lease(&self) -> Duration {
        self.settings.default_lease
    }

    /// The operator's time zone.
    pub fn time_zone(&self) -> &OperatorZone {
        &self.settings.time_zone
    }

    /// Asks the sweeper to run now (after a user was disabled, the policy changed, or a lease
    /// shorter than the sweep interval was written). Never lost: a wake-up during a sweep
    /// makes the next one start at once.
    pub fn wake_sweeper(&self) {
        self.wake.notify_one();
    }

    /// After a lease was written: wakes the sweeper when the lease ends before the sweeper's
    /// next planned run (a lease shorter than the sweep interval then ends on time).
    pub fn lease_written(&self, lease: &Lease) {
        let planned = self.planned_ms.load(Ordering::Relaxed);
        if let Some(end) = lease.expires_at_ms
            && (planned == 0 || end < planned)
        {
            self.wake_sweeper();
        }
    }

    /// The sweeper's next planned run, Unix milliseconds.
    pub(crate) fn plan_next_run(&self, at_ms: u64) {
        self.planned_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Waits for [`Self::wake_sweeper`].
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lease_ending_before_the_planned_run_wakes_the_sweeper() {
        let rules = SessionRules::new(SessionSettings::default());
        let lease = |end: Option<u64>| Lease {
            username: "alice".into(),
            started_at_ms: 0,
            expires_at_ms: end,
            persistent: end.is_none(),
            shared_mode: false,
        };
        let woken = || async {
            tokio::time::timeout(Duration::from_millis(50), rules.woken())
                .await
                .is_ok()
        };
        rules.plan_next_run(10_000);
        rules.lease_written(&lease(Some(20_000)));
        rules.lease_written(&lease(None));
        assert!(!woken().await, "later and persistent leases do not wake it");
        rules.lease_written(&lease(Some(5_000)));
        assert!(woken().await);
        rules.plan_next_run(0);
        rules.lease_written(&lease(Some(u64::MAX)));
        assert!(woken().await, "an unknown plan always wakes it");
    }

    #[test]
    fn settings_bounds() {
        assert!(SessionSettings::default().validate().is_ok());
        let short = SessionSettings {
            default_lease: Duration::from_secs(1),
            lease_check_interval: Duration::from_secs(1),
            ..SessionSettings::default()
        };
        assert!(short.validate().is_ok());
        let zero = SessionSettings {
            default_lease: Duration::ZERO,
            ..short.clone()
        };
        assert_eq!(zero.validate(), Err(SessionSettingsError::DefaultLease(0)));
        let long = SessionSettings {
            default_lease: Duration::from_secs(91 * 86_400),
            ..short.clone()
        };
        assert!(long.validate().is_err());
        let slow = SessionSettings {
            lease_check_interval: Duration::from_secs(3601),
            ..short.clone()
        };
        assert_eq!(
            slow.validate(),
            Err(SessionSettingsError::CheckInterval(3601))
        );
    }
}

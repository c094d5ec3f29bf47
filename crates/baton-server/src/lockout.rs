//! Brute-force protection for the sign-in portal: failure counters per typed username (trimmed,
//! lowercased) and per device, a lockout when a counter reaches its threshold within the
//! window, and back-off: each further lockout of the same key lasts twice as long, up to a cap,
//! until the key has been quiet for [`LockoutSettings::reset_after`].
//!
//! Usernames are counted whether or not they exist, so the lockout does not tell which names
//! are real. State lives in keyspace collection [`LOCKOUTS_COLLECTION`] (keys
//! `user|<normalised name>` and `device|<enrollment id>`), so it survives a restart.
//!
//! The portal calls [`Lockout::begin`] before checking a password. It counts what it checks:
//! the attempt is reserved on both keys before the password is verified (argon2 takes tens of
//! milliseconds, long enough for a burst of concurrent guesses to pass a check-then-count), and
//! refused unchecked when the key is locked or when its failures plus the attempts being
//! checked already reach the threshold. So however many guesses arrive at once, no more
//! passwords are checked than the threshold allows. The [`Attempt`] then reports
//! [`Attempt::failed`] or [`Attempt::succeeded`]; dropped unreported (a disabled user, a busy
//! device, an error), it gives its reservation back. Reservations live in memory only: they
//! last as long as one password check. Not here: the HTTP answer and the sign-in log entry (the
//! caller writes both).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use baton_proto::EnrollmentId;
use baton_store::{KeyspaceBatch, Store, unix_millis};
use serde::{Deserialize, Serialize};

use crate::catalog::assignment_config::{RecordError, collection, decode, encode, scan_json};
use crate::sign_in_log::MAX_USERNAME_CHARS;

/// Keyspace collection of failure counters and lockouts.
pub const LOCKOUTS_COLLECTION: &str = "lockouts";

/// Most failure times kept per key.
const MAX_KEPT_FAILURES: usize = 256;

/// How far after "now" a kept failure may lie: concurrent requests take their time before the
/// password check and report in any order, so a failure reported with an earlier time than
/// the newest one is still counted (at the newest time). Larger jumps are a clock set back.
const OUT_OF_ORDER_MS: u64 = 5_000;

/// Largest doubling exponent (2^20 × the first lockout is far past any sensible cap).
const MAX_DOUBLINGS: u32 = 20;

/// Thresholds and durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutSettings {
    /// Failures of one username within `window` that lock it (default 5).
    pub user_threshold: u32,
    /// Failures on one device within `window` that lock it (default 10).
    pub device_threshold: u32,
    /// The counting window (default 15 minutes).
    pub window: Duration,
    /// The first lockout of a key (default 60 s).
    pub first_lockout: Duration,
    /// The longest lockout (default 1 hour).
    pub max_lockout: Duration,
    /// A key quiet for this long after its last lockout starts again at `first_lockout`
    /// (default 24 hours).
    pub reset_after: Duration,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        Self {
            user_threshold: 5,
            device_threshold: 10,
            window: Duration::from_secs(15 * 60),
            first_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(60 * 60),
            reset_after: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// Why lockout settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockoutSettingsError {
    /// A threshold is 0 or above 1000.
    #[error("a lockout threshold must be between 1 and 1000 failures, got {0}")]
    Threshold(u32),
    /// The first lockout is not between 1 second and the longest lockout (at most 1 day).
    #[error(
        "the lockout must be between 1 second and 1 day, and the first no longer than the longest (first {first} s, longest {max} s)"
    )]
    Duration {
        /// The first lockout, seconds.
        first: u64,
        /// The longest lockout, seconds.
        max: u64,
    },
}

impl LockoutSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), LockoutSettingsError> {
        for t in [self.user_threshold, self.device_threshold] {
            if !(1..=1000).contains(&t) {
                return Err(LockoutSettingsError::Threshold(t));
            }
        }
        let day = Duration::from_secs(86_400);
        let ok = Duration::from_secs(1) <= self.first_lockout
            && self.first_lockout <= self.max_lockout
            && self.max_lockout <= day;
        if !ok {
            return Err(LockoutSettingsError::Duration {
                first: self.first_lockout.as_secs(),
                max: self.max_lockout.as_secs(),
            });
        }
        Ok(())
    }
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockoutScope {
    /// The typed username.
    User,
    /// The device.
    Device,
}

impl LockoutScope {
    /// `user` or `device`.
    pub fn as_str(self) -> &'static str {
        match self {
            LockoutScope::User => "user",
            LockoutScope::Device => "device",
        }
    }
}

/// Is a key locked? ([`Lockout::check`], which reserves nothing.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Check the password.
    Allowed,
    /// Refuse without checking the password.
    LockedOut {
        /// When the lockout ends, Unix milliseconds (the later one when both are locked).
        until_ms: u64,
        /// What is locked.
        scope: LockoutScope,
    },
}

/// A lockout that a failure just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutStarted {
    /// What is locked (the longer lockout when both started at once).
    pub scope: LockoutScope,
    /// When it ends, Unix milliseconds.
    pub until_ms: u64,
    /// How long it lasts.
    pub duration: Duration,
    /// 1 for the first lockout of the key since it was last quiet, 2 for the next, …
    pub lockout_number: u32,
}

/// The stored state of one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    /// Failure times (Unix ms) within the window, oldest first.
    #[serde(default)]
    failures: Vec<u64>,
    /// The end of the latest lockout (kept after it passed, for back-off and risk).
    #[serde(default)]
    locked_until_ms: Option<u64>,
    /// Lockouts since the key was last quiet for `reset_after`.
    #[serde(default)]
    lockouts: u32,
}

impl Counter {
    fn locked_at(&self, now_ms: u64) -> Option<u64> {
        self.locked_until_ms.filter(|&until| until > now_ms)
    }

    fn failures_since(&self, from_ms: u64) -> usize {
        self.failures.iter().filter(|&&t| t >= from_ms).count()
    }

    /// The failures that count towards the next lockout at `now_ms`: within the window and
    /// after the latest lockout ended.
    fn counting(&self, now_ms: u64, settings: &LockoutSettings) -> usize {
        let window_start = now_ms.saturating_sub(millis(settings.window));
        let from = window_start.max(self.locked_until_ms.unwrap_or(0));
        self.failures
            .iter()
            .filter(|&&t| t >= from && t <= now_ms.saturating_add(OUT_OF_ORDER_MS))
            .count()
    }

    /// Adds a failure at `now_ms`; returns the lockout it starts, if any.
    fn fail(
        &mut self,
        now_ms: u64,
        threshold: u32,
        settings: &LockoutSettings,
    ) -> Option<(u64, Duration, u32)> {
        let window_start = now_ms.saturating_sub(millis(settings.window));
        let latest_kept = now_ms.saturating_add(OUT_OF_ORDER_MS);
        self.failures
            .retain(|&t| t >= window_start && t <= latest_kept);
        if self.locked_at(now_ms).is_some() {
            // Attempts while locked are refused unchecked; they do not extend the lockout.
            return None;
        }
        // Oldest first, even when an earlier request reports after a later one.
        let at = self
            .failures
            .last()
            .map_or(now_ms, |&last| last.max(now_ms));
        self.failures.push(at);
        if self.failures.len() > MAX_KEPT_FAILURES {
            let excess = self.failures.len() - MAX_KEPT_FAILURES;
            self.failures.drain(..excess);
        }
        // Only failures after the latest lockout ended count towards the next one.
        let from = window_start.max(self.locked_until_ms.unwrap_or(0));
        if self.failures_since(from) < threshold.max(1) as usize {
            return None;
        }
        if let Some(last_end) = self.locked_until_ms
            && now_ms.saturating_sub(last_end) >= millis(settings.reset_after)
        {
            self.lockouts = 0;
        }
        let doublings = self.lockouts.min(MAX_DOUBLINGS);
        let duration = settings
            .first_lockout
            .saturating_mul(1 << doublings)
            .min(settings.max_lockout);
        let until = now_ms.saturating_add(millis(duration));
        self.lockouts = self.lockouts.saturating_add(1);
        self.locked_until_ms = Some(until);
        Some((until, duration, self.lockouts))
    }

    /// True when nothing in the record matters any more at `now_ms`.
    fn is_idle(&self, now_ms: u64, settings: &LockoutSettings) -> bool {
        let window_start = now_ms.saturating_sub(millis(settings.window));
        let recent_failure = self.failures.iter().any(|&t| t >= window_start);
        let lock_matters = self
            .locked_until_ms
            .is_some_and(|end| now_ms.saturating_sub(end) < millis(settings.reset_after));
        !recent_failure && !lock_matters
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The form of a typed username the counters use: trimmed, lowercased, at most
/// [`MAX_USERNAME_CHARS`] characters.
pub fn normalise_username(typed: &str) -> String {
    typed
        .trim()
        .chars()
        .flat_map(char::to_lowercase)
        .take(MAX_USERNAME_CHARS)
        .collect()
}

/// The later of two lockout ends, with its scope.
fn locked(user: Option<u64>, device: Option<u64>) -> Option<(u64, LockoutScope)> {
    match (user, device) {
        (Some(u), Some(d)) if d > u => Some((d, LockoutScope::Device)),
        (Some(u), _) => Some((u, LockoutScope::User)),
        (None, Some(d)) => Some((d, LockoutScope::Device)),
        (None, None) => None,
    }
}

fn user_key(username: &str) -> String {
    format!("user|{}", normalise_username(username))
}

fn device_key(device: &EnrollmentId) -> String {
    format!("device|{}", device.parent().as_str())
}

/// May an attempt check its password? ([`Lockout::begin`])
#[derive(Debug)]
#[must_use = "an attempt reserves a password check until it is reported or dropped"]
#[non_exhaustive]
pub enum Admission<'a> {
    /// Check the password, then report the result on the attempt.
    Check(Attempt<'a>),
    /// A key is locked: refuse without checking the password.
    LockedOut {
        /// When the lockout ends, Unix milliseconds (the later one when both are locked).
        until_ms: u64,
        /// What is locked.
        scope: LockoutScope,
    },
    /// The key's failures plus the attempts being checked right now reach its threshold:
    /// refuse without checking the password (a burst of guesses).
    Busy {
        /// Which key is full.
        scope: LockoutScope,
    },
}

/// One reserved password check of a username on a device. Report it with [`Attempt::failed`]
/// or [`Attempt::succeeded`]; dropping it unreported gives the reservation back uncounted.
#[derive(Debug)]
pub struct Attempt<'a> {
    lockout: &'a Lockout,
    user: String,
    device: String,
    reported: bool,
}

impl Attempt<'_> {
    /// Bad credentials: counts the failure (and gives the reservation back in the same step);
    /// returns the lockout it started, if any (the longer one when both keys lock).
    pub fn failed(mut self, now: SystemTime) -> Result<Option<LockoutStarted>, RecordError> {
        self.reported = true;
        let mut in_flight = self.lockout.lock();
        in_flight.release(&self.user, &self.device);
        self.lockout
            .count_failure(&self.user, &self.device, unix_millis(now))
    }

    /// A good sign-in: clears the user's failure counter. The device's counter stays (one good
    /// account must not hide guessing at others on that device), and so does the back-off
    /// level. Call [`crate::sign_in_risk::assess`] first.
    pub fn succeeded(mut self) -> Result<(), RecordError> {
        self.reported = true;
        let mut in_flight = self.lockout.lock();
        in_flight.release(&self.user, &self.device);
        self.lockout.clear_user(&self.user)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.lockout.lock().release(&self.user, &self.device);
        }
    }
}

/// Password checks under way, per counter key.
#[derive(Debug, Default)]
struct InFlight(HashMap<String, u32>);

impl InFlight {
    fn of(&self, key: &str) -> usize {
        self.0.get(key).map_or(0, |&n| n as usize)
    }

    fn reserve(&mut self, user: &str, device: &str) {
        for key in [user, device] {
            *self.0.entry(key.to_owned()).or_default() += 1;
        }
    }

    fn release(&mut self, user: &str, device: &str) {
        for key in [user, device] {
            if let Some(n) = self.0.get_mut(key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.0.remove(key);
                }
            }
        }
    }
}

/// Failure counters and lockouts over a store.
pub struct Lockout {
    store: Arc<dyn Store>,
    settings: LockoutSettings,
    /// Serialises read-modify-write of counters (one server process owns the store) and holds
    /// the password checks under way.
    write: Mutex<InFlight>,
}

impl std::fmt::Debug for Lockout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lockout")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Lockout {
    /// Counters in `store` with `settings`.
    pub fn new(store: Arc<dyn Store>, settings: LockoutSettings) -> Self {
        Self {
            store,
            settings,
            write: Mutex::new(InFlight::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InFlight> {
        self.write.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The settings.
    pub fn settings(&self) -> &LockoutSettings {
        &self.settings
    }

    fn read(&self, key: &str) -> Result<Counter, RecordError> {
        let Some(bytes) = self
            .store
            .get(&collection(LOCKOUTS_COLLECTION)?, key.as_bytes())?
        else {
            return Ok(Counter::default());
        };
        match decode(LOCKOUTS_COLLECTION, &bytes) {
            Ok(counter) => Ok(counter),
            Err(error) => {
                // A damaged counter must neither lock everyone out nor stop sign-ins: start
                // it again (the next write replaces it).
                tracing::warn!(%error, "unreadable lockout counter; starting it again");
                Ok(Counter::default())
            }
        }
    }

    /// Reserves a password check of `username` on `device` at `now`, unless a key is locked or
    /// its failures plus the checks under way already reach its threshold.
    pub fn begin(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Admission<'_>, RecordError> {
        let now_ms = unix_millis(now);
        let (user, device) = (user_key(username), device_key(device));
        let mut in_flight = self.lock();
        let user_counter = self.read(&user)?;
        let device_counter = self.read(&device)?;
        if let Some((until_ms, scope)) = locked(
            user_counter.locked_at(now_ms),
            device_counter.locked_at(now_ms),
        ) {
            return Ok(Admission::LockedOut { until_ms, scope });
        }
        for (key, counter, scope, threshold) in [
            (
                &user,
                &user_counter,
                LockoutScope::User,
                self.settings.user_threshold,
            ),
            (
                &device,
                &device_counter,
                LockoutScope::Device,
                self.settings.device_threshold,
            ),
        ] {
            let used = counter.counting(now_ms, &self.settings) + in_flight.of(key);
            if used >= threshold.max(1) as usize {
                return Ok(Admission::Busy { scope });
            }
        }
        in_flight.reserve(&user, &device);
        Ok(Admission::Check(Attempt {
            lockout: self,
            user,
            device,
            reported: false,
        }))
    }

    /// Whether `username` may try a password on `device` at `now` (reserves nothing: the
    /// portal uses [`Self::begin`]).
    pub fn check(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Verdict, RecordError> {
        let now_ms = unix_millis(now);
        let user = self.read(&user_key(username))?.locked_at(now_ms);
        let device = self.read(&device_key(device))?.locked_at(now_ms);
        Ok(match locked(user, device) {
            Some((until_ms, scope)) => Verdict::LockedOut { until_ms, scope },
            None => Verdict::Allowed,
        })
    }

    /// Counts a failed password check of `username` on `device` at `now` without a
    /// reservation (tests; the portal reports through [`Attempt::failed`]); returns the lockout
    /// it started, if any (the longer one when both the user and the device lock).
    #[cfg(test)]
    pub(crate) fn record_failure(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Option<LockoutStarted>, RecordError> {
        let _guard = self.lock();
        self.count_failure(&user_key(username), &device_key(device), unix_millis(now))
    }

    /// Counts a failure on the `user` and `device` keys; the caller holds the lock.
    fn count_failure(
        &self,
        user: &str,
        device: &str,
        now_ms: u64,
    ) -> Result<Option<LockoutStarted>, RecordError> {
        let keys = [
            (user, LockoutScope::User, self.settings.user_threshold),
            (device, LockoutScope::Device, self.settings.device_threshold),
        ];
        let coll = collection(LOCKOUTS_COLLECTION)?;
        let mut batch = KeyspaceBatch::new();
        let mut started: Option<LockoutStarted> = None;
        for (key, scope, threshold) in keys {
            let mut counter = self.read(key)?;
            if let Some((until_ms, duration, lockout_number)) =
                counter.fail(now_ms, threshold, &self.settings)
            {
                tracing::warn!(
                    scope = scope.as_str(),
                    key = %key,
                    until_ms,
                    duration_secs = duration.as_secs(),
                    lockout_number,
                    "sign-in lockout started"
                );
                let this = LockoutStarted {
                    scope,
                    until_ms,
                    duration,
                    lockout_number,
                };
                if started.is_none_or(|s| this.until_ms > s.until_ms) {
                    started = Some(this);
                }
            }
            batch.put(&coll, key.as_bytes(), &encode(&counter)?);
        }
        self.store.apply(&batch)?;
        Ok(started)
    }

    /// A successful sign-in of `username` without a reservation (tests; the portal reports
    /// through [`Attempt::succeeded`]): clears the user's failure counter.
    #[cfg(test)]
    pub(crate) fn record_success(
        &self,
        username: &str,
        _device: &EnrollmentId,
        _now: SystemTime,
    ) -> Result<(), RecordError> {
        let _guard = self.lock();
        self.clear_user(&user_key(username))
    }

    /// Clears the failures of the `key` user counter; the caller holds the lock.
    fn clear_user(&self, key: &str) -> Result<(), RecordError> {
        let mut counter = self.read(key)?;
        if counter.failures.is_empty() {
            return Ok(());
        }
        counter.failures.clear();
        self.store.put(
            &collection(LOCKOUTS_COLLECTION)?,
            key.as_bytes(),
            &encode(&counter)?,
        )?;
        Ok(())
    }

    /// Failures of the user and of the device within `window` before `now`:
    /// `(user_count, device_count)`. Only failures within the settings' window are kept, so a
    /// longer `window` counts no further back than that.
    pub fn recent_failures(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
        window: Duration,
    ) -> Result<(usize, usize), RecordError> {
        let now_ms = unix_millis(now);
        let from = now_ms.saturating_sub(millis(window));
        let count = |c: &Counter| {
            c.failures
                .iter()
                .filter(|&&t| t >= from && t <= now_ms)
                .count()
        };
        Ok((
            count(&self.read(&user_key(username))?),
            count(&self.read(&device_key(device))?),
        ))
    }

    /// True when a lockout of the user or the device ended within `window` before `now`.
    pub fn lockout_ended_recently(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
        window: Duration,
    ) -> Result<bool, RecordError> {
        let now_ms = unix_millis(now);
        let from = now_ms.saturating_sub(millis(window));
        let ended = |c: &Counter| {
            c.locked_until_ms
                .is_some_and(|end| end <= now_ms && end >= from)
        };
        Ok(ended(&self.read(&user_key(username))?) || ended(&self.read(&device_key(device))?))
    }

    /// Removes counters that no longer matter at `now` (no failure in the window, no lockout
    /// within `reset_after`), so names typed once do not stay forever. Returns how many.
    pub fn prune(&self, now: SystemTime) -> Result<usize, RecordError> {
        let now_ms = unix_millis(now);
        let _guard = self.lock();
        let coll = collection(LOCKOUTS_COLLECTION)?;
        let mut batch = KeyspaceBatch::new();
        let mut removed = 0;
        for (key, bytes) in self.store.scan_prefix(&coll, b"")? {
            let idle = decode::<Counter>(LOCKOUTS_COLLECTION, &bytes)
                .map_or(true, |c| c.is_idle(now_ms, &self.settings));
            if idle {
                batch.delete(&coll, &key);
                removed += 1;
            }
        }
        if removed > 0 {
            self.store.apply(&batch)?;
        }
        Ok(removed)
    }

    /// Every stored counter key (`user|…`, `device|…`), for operators and tests.
    pub fn keys(&self) -> Result<Vec<String>, RecordError> {
        Ok(
            scan_json::<serde_json::Value>(self.store.as_ref(), LOCKOUTS_COLLECTION, "")?
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use baton_store::{SledConfig, SledStore};

    use super::*;

    const T0: Duration = Duration::from_secs(1_700_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    fn ms(secs: u64) -> u64 {
        (T0.as_secs() + secs) * 1000
    }

    fn lockout() -> Lockout {
        Lockout::new(
            Arc::new(SledStore::temporary().unwrap()),
            LockoutSettings::default(),
        )
    }

    fn dev(n: u32) -> EnrollmentId {
        EnrollmentId::device(&format!("UDID-{n}")).unwrap()
    }

    #[test]
    fn the_fifth_user_failure_locks_the_user_for_a_minute() {
        let l = lockout();
        for i in 0..4 {
            // Different devices, different spellings: one user counter.
            let typed = if i % 2 == 0 { " Alice " } else { "ALICE" };
            assert_eq!(
                l.record_failure(typed, &dev(i), at(i.into())).unwrap(),
                None
            );
            assert_eq!(
                l.check("alice", &dev(9), at(i.into())).unwrap(),
                Verdict::Allowed
            );
        }
        let started = l.record_failure("alice", &dev(4), at(4)).unwrap().unwrap();
        assert_eq!(started.scope, LockoutScope::User);
        assert_eq!(started.duration, Duration::from_secs(60));
        assert_eq!(started.until_ms, ms(64));
        assert_eq!(started.lockout_number, 1);
        assert_eq!(
            l.check("Alice", &dev(9), at(30)).unwrap(),
            Verdict::LockedOut {
                until_ms: ms(64),
                scope: LockoutScope::User
            }
        );
        // Another user on the same devices is not affected; the lockout expires.
        assert_eq!(l.check("bob", &dev(4), at(30)).unwrap(), Verdict::Allowed);
        assert_eq!(l.check("alice", &dev(4), at(64)).unwrap(), Verdict::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let l = lockout();
        for i in 0..4 {
            l.record_failure("carol", &dev(i), at(i.into())).unwrap();
        }
        // Failures at 0, 1, 2, 3 s; at 901 s the one at 0 is older than 15 min.
        assert_eq!(l.record_failure("carol", &dev(5), at(901)).unwrap(), None);
        assert!(
            l.record_failure("carol", &dev(5), at(901))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn ten_failures_on_one_device_lock_the_device_for_every_user() {
        let l = lockout();
        let d = dev(1);
        for i in 0..9 {
            // Ten different names: no user reaches five.
            assert_eq!(
                l.record_failure(&format!("user{i}"), &d, at(i)).unwrap(),
                None
            );
        }
        let started = l.record_failure("user9", &d, at(9)).unwrap().unwrap();
        assert_eq!(started.scope, LockoutScope::Device);
        assert!(matches!(
            l.check("someone-else", &d, at(10)).unwrap(),
            Verdict::LockedOut {
                scope: LockoutScope::Device,
                ..
            }
        ));
        assert_eq!(
            l.check("someone-else", &dev(2), at(10)).unwrap(),
            Verdict::Allowed
        );
    }

    #[test]
    fn each_further_lockout_doubles_up_to_the_cap_and_resets_after_a_quiet_day() {
        let l = lockout();
        let mut now = 0_u64;
        let mut durations = Vec::new();
        for _ in 0..9 {
            let mut started = None;
            for _ in 0..5 {
                started = l.record_failure("dave", &dev(1), at(now)).unwrap();
                now += 1;
            }
            let s = started.expect("five failures after the lockout ended lock again");
            durations.push(s.duration.as_secs());
            // Wait until the lockout is over.
            now = s.until_ms / 1000 - T0.as_secs();
        }
        assert_eq!(
            durations,
            vec![60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
        );
        // A quiet day later the back-off starts again at one minute.
        now += 24 * 3600;
        let mut started = None;
        for _ in 0..5 {
            started = l.record_failure("dave", &dev(2), at(now)).unwrap();
            now += 1;
        }
        let s = started.unwrap();
        assert_eq!((s.duration.as_secs(), s.lockout_number), (60, 1));
    }

    #[test]
    fn failures_while_locked_do_not_extend_the_lockout() {
        let l = lockout();
        for i in 0..5 {
            l.record_failure("erin", &dev(1), at(i)).unwrap();
        }
        for i in 5..20 {
            assert_eq!(
                l.record_failure("erin", &dev(i as u32), at(i)).unwrap(),
                None
            );
        }
        assert_eq!(
            l.check("erin", &dev(3), at(30)).unwrap(),
            Verdict::LockedOut {
                until_ms: ms(64),
                scope: LockoutScope::User
            }
        );
    }

    #[test]
    fn success_clears_the_user_counter_but_not_the_device_counter() {
        let l = lockout();
        for i in 0..4 {
            l.record_failure("frank", &dev(1), at(i)).unwrap();
        }
        assert_eq!(
            l.recent_failures("frank", &dev(1), at(5), Duration::from_secs(900))
                .unwrap(),
            (4, 4)
        );
        l.record_success("Frank", &dev(1), at(5)).unwrap();
        assert_eq!(
            l.recent_failures("frank", &dev(1), at(6), Duration::from_secs(900))
                .unwrap(),
            (0, 4)
        );
        // Four more failures do not lock: the count started again.
        for i in 6..10 {
            assert_eq!(l.record_failure("frank", &dev(2), at(i)).unwrap(), None);
        }
        // A narrower window counts fewer.
        assert_eq!(
            l.recent_failures("frank", &dev(1), at(10), Duration::from_secs(6))
                .unwrap(),
            (4, 0)
        );
    }

    #[test]
    fn lockout_ended_recently_covers_the_window_after_the_end_only() {
        let l = lockout();
        let w = Duration::from_secs(900);
        for i in 0..5 {
            l.record_failure("gina", &dev(1), at(i)).unwrap();
        }
        // Locked until 64 s: not "ended" while running.
        assert!(
            !l.lockout_ended_recently("gina", &dev(7), at(30), w)
                .unwrap()
        );
        assert!(
            l.lockout_ended_recently("gina", &dev(7), at(64), w)
                .unwrap()
        );
        assert!(
            l.lockout_ended_recently("gina", &dev(7), at(964), w)
                .unwrap()
        );
        assert!(
            !l.lockout_ended_recently("gina", &dev(7), at(965), w)
                .unwrap()
        );
        assert!(
            !l.lockout_ended_recently("other", &dev(7), at(100), w)
                .unwrap()
        );
    }

    #[test]
    fn counters_survive_reopening_the_store() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Arc::new(SledStore::open_with(&SledConfig::new(dir.path())).unwrap());
            let l = Lockout::new(store, LockoutSettings::default());
            for i in 0..5 {
                l.record_failure("hank", &dev(1), at(i)).unwrap();
            }
        }
        let store = Arc::new(SledStore::open_with(&SledConfig::new(dir.path())).unwrap());
        let l = Lockout::new(store, LockoutSettings::default());
        assert_eq!(
            l.check("hank", &dev(2), at(10)).unwrap(),
            Verdict::LockedOut {
                until_ms: ms(64),
                scope: LockoutScope::User
            }
        );
        let mut keys = l.keys().unwrap();
        keys.sort();
        assert_eq!(
            keys,
            vec!["device|UDID-1".to_owned(), "user|hank".to_owned()]
        );
    }

    #[test]
    fn unknown_and_long_names_are_counted_bounded_and_pruned() {
        let l = lockout();
        let long = "X".repeat(1000);
        l.record_failure(&long, &dev(1), at(0)).unwrap();
        let keys = l.keys().unwrap();
        let user = keys.iter().find(|k| k.starts_with("user|")).unwrap();
        assert_eq!(user.len(), "user|".len() + MAX_USERNAME_CHARS);
        assert!(user.ends_with('x'));
        // Still within the window: nothing pruned.
        assert_eq!(l.prune(at(60)).unwrap(), 0);
        assert_eq!(l.prune(at(901)).unwrap(), 2);
        assert!(l.keys().unwrap().is_empty());
    }

    fn admitted<'a>(l: &'a Lockout, user: &str, device: &EnrollmentId, now: u64) -> Attempt<'a> {
        match l.begin(user, device, at(now)).unwrap() {
            Admission::Check(a) => a,
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn attempts_under_way_count_against_the_threshold() {
        let l = lockout();
        // Five checks of one user at once use the whole budget; the sixth is refused unchecked.
        let held: Vec<_> = (0..5).map(|i| admitted(&l, "judy", &dev(i), 0)).collect();
        assert!(matches!(
            l.begin("Judy", &dev(9), at(0)).unwrap(),
            Admission::Busy {
                scope: LockoutScope::User
            }
        ));
        // Another user is not affected.
        drop(admitted(&l, "ken", &dev(9), 0));
        // A dropped attempt (no result) gives its place back uncounted.
        let mut held = held.into_iter();
        drop(held.next());
        let again = admitted(&l, "judy", &dev(9), 0);
        let mut started = None;
        for attempt in held.chain([again]) {
            started = attempt.failed(at(1)).unwrap().or(started);
        }
        assert_eq!(started.map(|s| s.scope), Some(LockoutScope::User));
        assert!(matches!(
            l.begin("judy", &dev(9), at(2)).unwrap(),
            Admission::LockedOut {
                scope: LockoutScope::User,
                ..
            }
        ));
        assert!(l.lock().0.is_empty(), "every reservation was given back");
    }

    #[test]
    fn attempts_under_way_on_one_device_count_for_every_user() {
        let l = lockout();
        let d = dev(1);
        let held: Vec<_> = (0..10)
            .map(|i| admitted(&l, &format!("user{i}"), &d, 0))
            .collect();
        assert!(matches!(
            l.begin("someone", &d, at(0)).unwrap(),
            Admission::Busy {
                scope: LockoutScope::Device
            }
        ));
        drop(admitted(&l, "someone", &dev(2), 0));
        // Successes give the places back and count nothing.
        for attempt in held {
            attempt.succeeded().unwrap();
        }
        drop(admitted(&l, "someone", &d, 0));
        assert_eq!(
            l.recent_failures("user0", &d, at(1), Duration::from_secs(60))
                .unwrap(),
            (0, 0)
        );
    }

    #[test]
    fn failures_reported_out_of_order_all_count() {
        let l = lockout();
        // Requests that started earlier finish their password check later.
        assert_eq!(l.record_failure("lena", &dev(1), at(10)).unwrap(), None);
        for _ in 0..3 {
            assert_eq!(l.record_failure("lena", &dev(1), at(9)).unwrap(), None);
        }
        assert!(l.record_failure("lena", &dev(1), at(8)).unwrap().is_some());
    }

    #[test]
    fn a_burst_of_concurrent_guesses_checks_at_most_the_threshold() {
        let l = Arc::new(lockout());
        let checked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads: Vec<_> = (0..60)
            .map(|_| {
                let (l, checked) = (Arc::clone(&l), Arc::clone(&checked));
                std::thread::spawn(move || {
                    let now = SystemTime::now();
                    if let Admission::Check(attempt) = l.begin("mallory", &dev(1), now).unwrap() {
                        checked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        // The password check.
                        std::thread::sleep(Duration::from_millis(20));
                        attempt.failed(now).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(checked.load(std::sync::atomic::Ordering::SeqCst) <= 5);
        assert!(matches!(
            l.begin("mallory", &dev(2), SystemTime::now()).unwrap(),
            Admission::LockedOut { .. }
        ));
    }

    #[test]
    fn a_damaged_counter_starts_again() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        store
            .put(
                &collection(LOCKOUTS_COLLECTION).unwrap(),
                b"user|ivy",
                b"not json",
            )
            .unwrap();
        let l = Lockout::new(Arc::clone(&store), LockoutSettings::default());
        assert_eq!(l.check("ivy", &dev(1), at(0)).unwrap(), Verdict::Allowed);
        assert_eq!(l.record_failure("ivy", &dev(1), at(0)).unwrap(), None);
        assert_eq!(
            l.recent_failures("ivy", &dev(1), at(1), Duration::from_secs(60))
                .unwrap(),
            (1, 1)
        );
    }
}

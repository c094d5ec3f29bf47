//! Brute-force protection for the sign-in portal: failure counters per typed username (trimmed,
//! lowercased) and per device, a lockout when a counter reaches its threshold within the
//! window, and back-off: each further lockout of the same key lasts twice as long, up to a cap,
//! until the key has been quiet for [`LockoutSettings::reset_after`].
//!
//! Usernames are counted whether or not they exist, so the lockout does not tell which names
//! are real. State lives in keyspace collection [`LOCKOUTS_COLLECTION`] (keys
//! `user|<normalised name>` and `device|<enrollment id>`), so it survives a restart.
//!
//! The portal calls [`Lockout::check`] before checking a password (a locked key means the
//! password is not checked), [`Lockout::record_failure`] after bad credentials and
//! [`Lockout::record_success`] after a good sign-in. Not here: the HTTP answer and the sign-in
//! log entry (the caller writes both).

use std::sync::{Arc, Mutex, PoisonError};
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

/// May an attempt go ahead?
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

    /// Adds a failure at `now_ms`; returns the lockout it starts, if any.
    fn fail(
        &mut self,
        now_ms: u64,
        threshold: u32,
        settings: &LockoutSettings,
    ) -> Option<(u64, Duration, u32)> {
        let window_start = now_ms.saturating_sub(millis(settings.window));
        self.failures.retain(|&t| t >= window_start && t <= now_ms);
        if self.locked_at(now_ms).is_some() {
            // Attempts while locked are refused unchecked; they do not extend the lockout.
            return None;
        }
        self.failures.push(now_ms);
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

fn user_key(username: &str) -> String {
    format!("user|{}", normalise_username(username))
}

fn device_key(device: &EnrollmentId) -> String {
    format!("device|{}", device.parent().as_str())
}

/// Failure counters and lockouts over a store.
pub struct Lockout {
    store: Arc<dyn Store>,
    settings: LockoutSettings,
    /// Serialises read-modify-write of counters (one server process owns the store).
    write: Mutex<()>,
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
            write: Mutex::new(()),
        }
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

    /// Whether `username` may try a password on `device` at `now`.
    pub fn check(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Verdict, RecordError> {
        let now_ms = unix_millis(now);
        let user = self.read(&user_key(username))?.locked_at(now_ms);
        let device = self.read(&device_key(device))?.locked_at(now_ms);
        Ok(match (user, device) {
            (Some(u), Some(d)) if d > u => Verdict::LockedOut {
                until_ms: d,
                scope: LockoutScope::Device,
            },
            (Some(u), _) => Verdict::LockedOut {
                until_ms: u,
                scope: LockoutScope::User,
            },
            (None, Some(d)) => Verdict::LockedOut {
                until_ms: d,
                scope: LockoutScope::Device,
            },
            (None, None) => Verdict::Allowed,
        })
    }

    /// Counts a failed password check of `username` on `device` at `now`; returns the
    /// lockout it started, if any (the longer one when both the user and the device lock).
    pub fn record_failure(
        &self,
        username: &str,
        device: &EnrollmentId,
        now: SystemTime,
    ) -> Result<Option<LockoutStarted>, RecordError> {
        let now_ms = unix_millis(now);
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let keys = [
            (
                user_key(username),
                LockoutScope::User,
                self.settings.user_threshold,
            ),
            (
                device_key(device),
                LockoutScope::Device,
                self.settings.device_threshold,
            ),
        ];
        let coll = collection(LOCKOUTS_COLLECTION)?;
        let mut batch = KeyspaceBatch::new();
        let mut started: Option<LockoutStarted> = None;
        for (key, scope, threshold) in keys {
            let mut counter = self.read(&key)?;
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

    /// A successful sign-in of `username`: clears the user's failure counter. The device's
    /// counter stays (one good account must not hide guessing at others on that device), and
    /// so does the back-off level. Call [`crate::sign_in_risk::assess`] first.
    pub fn record_success(
        &self,
        username: &str,
        _device: &EnrollmentId,
        _now: SystemTime,
    ) -> Result<(), RecordError> {
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let key = user_key(username);
        let mut counter = self.read(&key)?;
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
        let _guard = self.write.lock().unwrap_or_else(PoisonError::into_inner);
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

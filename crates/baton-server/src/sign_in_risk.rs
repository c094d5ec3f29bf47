//! Sign-in risk: is a successful credential check risky enough that the "Stay signed in?"
//! prompt must not be shown? High when the user or the device had failed attempts in the last
//! [`RISK_WINDOW`], when the user never had a session on the device, or when a lockout of the
//! user or the device ended within [`RISK_WINDOW`].
//!
//! Call [`assess`] after the password was accepted and before
//! [`crate::lockout::Attempt::succeeded`] (which clears the user's failure counter).

use std::time::{Duration, SystemTime};

use baton_proto::EnrollmentId;
use baton_store::Keyspace;
use serde::{Deserialize, Serialize};

use crate::catalog::assignment_config::RecordError;
use crate::lockout::{Lockout, normalise_username};
use crate::reconciler::session_log;

/// How far back failures and lockout ends make a sign-in risky.
pub const RISK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The risk level of a sign-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RiskLevel {
    /// Nothing unusual.
    #[default]
    Low,
    /// At least one risk signal: no "Stay signed in?" prompt.
    High,
}

impl RiskLevel {
    /// `low` or `high`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::High => "high",
        }
    }
}

/// One risk signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RiskReason {
    /// The typed username had failed attempts within the window.
    RecentFailuresUser,
    /// The device had failed attempts within the window.
    RecentFailuresDevice,
    /// The user has no session on this device in the session log.
    NewDeviceForUser,
    /// A lockout of the user or the device ended within the window.
    LockoutJustEnded,
}

impl RiskReason {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskReason::RecentFailuresUser => "recent_failures_user",
            RiskReason::RecentFailuresDevice => "recent_failures_device",
            RiskReason::NewDeviceForUser => "new_device_for_user",
            RiskReason::LockoutJustEnded => "lockout_just_ended",
        }
    }
}

/// The assessed risk of a sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Low when `reasons` is empty, else high.
    pub level: RiskLevel,
    /// The signals found, in a fixed order.
    pub reasons: Vec<RiskReason>,
}

impl Risk {
    /// The risk of these signals: high when there is any.
    pub fn from_reasons(reasons: Vec<RiskReason>) -> Self {
        let level = if reasons.is_empty() {
            RiskLevel::Low
        } else {
            RiskLevel::High
        };
        Self { level, reasons }
    }

    /// True for [`RiskLevel::High`].
    pub fn is_high(&self) -> bool {
        self.level == RiskLevel::High
    }

    /// The reasons as their codes (what the sign-in log stores).
    pub fn reason_codes(&self) -> Vec<String> {
        self.reasons.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

/// The risk of `username` (as accepted by the credential check) signing in on `device` at
/// `now`. `device` is the device channel (its parent is used for the session log).
pub fn assess(
    store: &dyn Keyspace,
    lockout: &Lockout,
    username: &str,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<Risk, RecordError> {
    let device = device.parent();
    let mut reasons = Vec::new();
    let (user_failures, device_failures) =
        lockout.recent_failures(username, &device, now, RISK_WINDOW)?;
    if user_failures > 0 {
        reasons.push(RiskReason::RecentFailuresUser);
    }
    if device_failures > 0 {
        reasons.push(RiskReason::RecentFailuresDevice);
    }
    let wanted = normalise_username(username);
    let known = session_log::sessions(store, &device)?
        .iter()
        .any(|(_, s)| normalise_username(&s.username) == wanted);
    if !known {
        reasons.push(RiskReason::NewDeviceForUser);
    }
    if lockout.lockout_ended_recently(username, &device, now, RISK_WINDOW)? {
        reasons.push(RiskReason::LockoutJustEnded);
    }
    Ok(Risk::from_reasons(reasons))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_store::{KeyspaceBatch, SledStore, Store};

    use super::*;
    use crate::lockout::LockoutSettings;
    use crate::reconciler::session_log::Session;

    const T0: Duration = Duration::from_secs(1_700_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + T0 + Duration::from_secs(secs)
    }

    fn setup() -> (Arc<dyn Store>, Lockout, EnrollmentId) {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let lockout = Lockout::new(Arc::clone(&store), LockoutSettings::default());
        (store, lockout, EnrollmentId::device("UDID-RISK").unwrap())
    }

    fn add_session(store: &dyn Store, device: &EnrollmentId, username: &str) {
        let mut batch = KeyspaceBatch::new();
        session_log::start(
            &mut batch,
            device,
            &Session {
                username: username.into(),
                started_at: 1,
                how: "portal".into(),
                ended_at: Some(2),
                ended_how: Some("portal".into()),
                clean_hand_off: Some(true),
                hand_off_remaining: Vec::new(),
                ready_at: None,
            },
        )
        .unwrap();
        store.apply(&batch).unwrap();
    }

    #[test]
    fn a_known_user_without_failures_is_low() {
        let (store, lockout, device) = setup();
        add_session(store.as_ref(), &device, "Alice");
        let risk = assess(store.as_ref(), &lockout, " alice ", &device, at(0)).unwrap();
        assert_eq!(risk, Risk::default());
        assert!(!risk.is_high());
    }

    #[test]
    fn a_user_never_seen_on_the_device_is_high() {
        let (store, lockout, device) = setup();
        add_session(store.as_ref(), &device, "bob");
        let risk = assess(store.as_ref(), &lockout, "alice", &device, at(0)).unwrap();
        assert_eq!(risk.level, RiskLevel::High);
        assert_eq!(risk.reasons, vec![RiskReason::NewDeviceForUser]);
        assert_eq!(risk.reason_codes(), vec!["new_device_for_user".to_owned()]);
    }

    #[test]
    fn recent_failures_of_the_user_or_device_are_high_until_the_window_passes() {
        let (store, lockout, device) = setup();
        add_session(store.as_ref(), &device, "alice");
        lockout.record_failure("alice", &device, at(0)).unwrap();
        let risk = assess(store.as_ref(), &lockout, "alice", &device, at(60)).unwrap();
        assert_eq!(
            risk.reasons,
            vec![
                RiskReason::RecentFailuresUser,
                RiskReason::RecentFailuresDevice
            ]
        );
        // Someone else failed on this device: only the device signal.
        let other = EnrollmentId::device("UDID-OTHER").unwrap();
        add_session(store.as_ref(), &other, "bob");
        lockout.record_failure("mallory", &other, at(0)).unwrap();
        let risk = assess(store.as_ref(), &lockout, "bob", &other, at(60)).unwrap();
        assert_eq!(risk.reasons, vec![RiskReason::RecentFailuresDevice]);
        // After the window nothing is left.
        let later = at(RISK_WINDOW.as_secs() + 1);
        let risk = assess(store.as_ref(), &lockout, "alice", &device, later).unwrap();
        assert_eq!(risk.level, RiskLevel::Low, "{risk:?}");
    }

    #[test]
    fn a_lockout_that_just_ended_is_high() {
        let (store, lockout, device) = setup();
        add_session(store.as_ref(), &device, "alice");
        // Five failures from different devices lock the user, not a device.
        let mut started = None;
        for i in 0..5 {
            let d = EnrollmentId::device(&format!("UDID-{i}")).unwrap();
            started = lockout.record_failure("alice", &d, at(i)).unwrap();
        }
        let started = started.expect("the fifth failure locks the user");
        let end_secs = started.until_ms / 1000 - T0.as_secs();
        // The success cleared the user's failures; just after the lockout end only the
        // lockout signal is left.
        lockout.record_success("alice", &device, at(4)).unwrap();
        let risk = assess(store.as_ref(), &lockout, "alice", &device, at(end_secs + 1)).unwrap();
        assert_eq!(risk.reasons, vec![RiskReason::LockoutJustEnded]);
        let much_later = at(end_secs + RISK_WINDOW.as_secs() + 1);
        let risk = assess(store.as_ref(), &lockout, "alice", &device, much_later).unwrap();
        assert_eq!(risk.level, RiskLevel::Low, "{risk:?}");
    }
}

//! Sign-in and sign-out with a lease: the one path every caller (admin API, portal) takes so
//! the lease is written in the same transaction as the assignment and deleted with it.
//!
//! [`policy_for`] computes the [`EffectivePolicy`] of a (device, user) pair from the stored
//! policy; [`sign_in`] refuses disabled users and persistent sessions the policy forbids,
//! then signs in with the lease; [`sign_out`] signs out and deletes the lease.

use std::time::SystemTime;

use baton_proto::EnrollmentId;
use baton_store::{KeyspaceBatch, Store};

use super::SessionRules;
use super::effective::{EffectivePolicy, effective};
use super::lease::{self, Lease, lease_for_sign_in, persistent_lease};
use super::record;
use crate::catalog::assignment_config::RecordError;
use crate::directory::user_record::is_disabled;
use crate::reconciler::{ReconcileError, ReconcileOutcome, Reconciler};
use crate::sign_in_log::{self, ReasonCode, SignInEntry, SignInHow, SignInResult};
use crate::webhook::EventSink;
use baton_assign::NOBODY_USERNAME;

/// Why a sign-in with a lease failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionSignInError {
    /// The reconciler failed (unknown user or device, store, concurrent change).
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    /// Stored records could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The user is disabled.
    #[error("user {0:?} is disabled")]
    DisabledUser(String),
    /// A persistent session was asked for where the policy forbids one.
    #[error("a persistent session is not allowed here: {0}")]
    PersistentRefused(&'static str),
}

/// What a sign-in did.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The reconcile (commands enqueued).
    pub outcome: ReconcileOutcome,
    /// The lease written with it.
    pub lease: Lease,
    /// The rules it was computed from (the portal applies the prompt rule to them).
    pub policy: EffectivePolicy,
}

/// The rules for `username` signing in on `device`, from the stored policy, the server's
/// default lease and the groups of the pair.
pub fn policy_for(
    store: &dyn Store,
    reconciler: &Reconciler,
    rules: &SessionRules,
    device: &EnrollmentId,
    username: &str,
) -> Result<EffectivePolicy, SessionSignInError> {
    let compiled = reconciler.compiled()?;
    let engine = reconciler
        .engine_device(device)?
        .ok_or_else(|| ReconcileError::UnknownDevice(device.parent()))?;
    let policy = record::load(store)?;
    Ok(
        effective(&policy, rules.default_lease(), &compiled, &engine, username)
            .in_zone(rules.time_zone()),
    )
}

/// Signs `username` in on `device` with a lease (`how`: `admin`, `portal`, goes into the
/// session log). `persistent` asks for a persistent session (operator sign-ins; the portal
/// signs in leased and calls [`lease::make_persistent`] after the prompt): refused in shared
/// mode and when a user group says never. Disabled users are refused. Tells the sweeper about
/// the lease ([`SessionRules::lease_written`]) so a lease shorter than the sweep interval ends
/// on time.
#[allow(clippy::too_many_arguments)]
pub fn sign_in(
    store: &dyn Store,
    reconciler: &Reconciler,
    rules: &SessionRules,
    device: &EnrollmentId,
    username: &str,
    how: &str,
    persistent: bool,
    now: SystemTime,
) -> Result<SignedIn, SessionSignInError> {
    sign_in_with(
        store,
        reconciler,
        rules,
        device,
        username,
        how,
        persistent,
        now,
        KeyspaceBatch::new(),
    )
}

/// [`sign_in`], also writing `extra` (e.g. a sign-in log entry, a pending prompt) in the same
/// transaction as the assignment and the lease.
#[allow(clippy::too_many_arguments)]
pub fn sign_in_with(
    store: &dyn Store,
    reconciler: &Reconciler,
    rules: &SessionRules,
    device: &EnrollmentId,
    username: &str,
    how: &str,
    persistent: bool,
    now: SystemTime,
    extra: KeyspaceBatch,
) -> Result<SignedIn, SessionSignInError> {
    if is_disabled(store, username)? {
        return Err(SessionSignInError::DisabledUser(username.to_owned()));
    }
    let policy = policy_for(store, reconciler, rules, device, username)?;
    let lease = if persistent {
        if policy.shared_mode {
            return Err(SessionSignInError::PersistentRefused(
                "the device is in shared mode",
            ));
        }
        if !policy.persistent_allowed {
            return Err(SessionSignInError::PersistentRefused(
                "a group of the user says persistent sessions: never",
            ));
        }
        persistent_lease(username, &policy, now)
    } else {
        lease_for_sign_in(username, &policy, now)
    };
    let mut batch = extra;
    lease::put(&mut batch, device, &lease)?;
    let outcome = reconciler.sign_in_with(device, username, how, now, batch)?;
    rules.lease_written(&lease);
    Ok(SignedIn {
        outcome,
        lease,
        policy,
    })
}

/// Signs `device` out (`how`: `admin`, `portal`, `expired`) and deletes its lease in the same
/// transaction.
pub fn sign_out(
    reconciler: &Reconciler,
    events: &EventSink,
    device: &EnrollmentId,
    how: SignInHow,
    now: SystemTime,
) -> Result<ReconcileOutcome, ReconcileError> {
    let mut batch = KeyspaceBatch::new();
    lease::delete(&mut batch, device)?;
    // The sign-in log entry goes in the sign-out's transaction (none when nobody was signed
    // in: the sign-out changes nothing then).
    let username = reconciler.assignee(device)?;
    let entry = (username != NOBODY_USERNAME).then(|| {
        SignInEntry::new(
            now,
            &username,
            device.as_str(),
            how,
            SignInResult::SignedOut,
            ReasonCode::SignOut,
        )
    });
    if let Some(entry) = &entry {
        sign_in_log::append_to_batch(&mut batch, entry)?;
    }
    let outcome = reconciler.sign_out_with(device, how.as_str(), now, batch)?;
    if let Some(entry) = &entry {
        sign_in_log::publish(events, entry);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baton_assign::{Membership, NOBODY_USERNAME};
    use baton_store::from_unix_millis;

    use super::*;
    use crate::error_response::ApiError;
    use crate::session_policy::SessionSettings;
    use crate::session_policy::fixture::Fixture;

    const T0: u64 = 1_709_251_200_000;

    fn set_policy(f: &Fixture, json: &str) {
        let policy: record::SessionPolicy = serde_json::from_str(json).unwrap();
        policy.validate(&f.reconciler.config().unwrap()).unwrap();
        record::save(f.store.as_ref(), &policy).unwrap();
    }

    fn fixture() -> (Fixture, EnrollmentId) {
        let f = Fixture::new(SessionSettings {
            default_lease: Duration::from_secs(3600),
            ..SessionSettings::default()
        });
        f.add_user("alice", false);
        f.add_user("bob", false);
        f.add_user("eve", true);
        let device = f.enroll("UDID-1", from_unix_millis(T0));
        (f, device)
    }

    fn try_sign_in(
        f: &Fixture,
        device: &EnrollmentId,
        user: &str,
        persistent: bool,
    ) -> Result<SignedIn, SessionSignInError> {
        sign_in(
            f.store.as_ref(),
            &f.reconciler,
            &f.rules,
            device,
            user,
            "admin",
            persistent,
            from_unix_millis(T0),
        )
    }

    #[test]
    fn leased_sign_in_writes_the_lease_and_sign_out_deletes_it() {
        let (f, device) = fixture();
        let done = try_sign_in(&f, &device, "alice", false).unwrap();
        assert!(done.policy.shared_mode, "devices are shared by default");
        assert_eq!(done.lease.expires_at_ms, Some(T0 + 3_600_000));
        assert_eq!(
            lease::get(f.store.as_ref(), &device).unwrap(),
            Some(done.lease)
        );
        assert_eq!(f.reconciler.assignee(&device).unwrap(), "alice");
        sign_out(
            &f.reconciler,
            &EventSink::disabled(),
            &device,
            SignInHow::Admin,
            from_unix_millis(T0 + 1000),
        )
        .unwrap();
        let logged = sign_in_log::list(f.store.as_ref(), &sign_in_log::Filter::default()).unwrap();
        assert!(
            logged.iter().any(|e| e.result == SignInResult::SignedOut
                && e.reason == ReasonCode::SignOut
                && e.how == SignInHow::Admin),
            "{logged:?}"
        );
        assert_eq!(lease::get(f.store.as_ref(), &device).unwrap(), None);
        assert_eq!(f.reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
    }

    #[test]
    fn persistent_is_refused_on_a_shared_device_whatever_the_toggle() {
        let (f, device) = fixture();
        for toggle in [true, false] {
            set_policy(&f, &format!(r#"{{"show_keep_signed_in":{toggle}}}"#));
            let err = try_sign_in(&f, &device, "alice", true).unwrap_err();
            assert!(
                matches!(err, SessionSignInError::PersistentRefused(m) if m.contains("shared")),
                "{err:?}"
            );
            let api = ApiError::from(err);
            assert_eq!(api.status(), axum::http::StatusCode::CONFLICT);
            // Nothing was written.
            assert_eq!(lease::get(f.store.as_ref(), &device).unwrap(), None);
            assert_eq!(f.reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
        }
    }

    #[test]
    fn persistent_follows_device_and_user_groups() {
        let (f, device) = fixture();
        f.add_group(
            "dedicated",
            Membership::Devices {
                devices: ["UDID-1".to_owned()].into_iter().collect(),
            },
        );
        f.add_group(
            "locums",
            Membership::Users {
                usernames: ["bob".to_owned()].into_iter().collect(),
            },
        );
        set_policy(
            &f,
            r#"{"device_groups":{"dedicated":{"shared_mode":false}},
                "user_groups":{"locums":{"persistent_sessions":"never"}}}"#,
        );
        let bob = try_sign_in(&f, &device, "bob", true).unwrap_err();
        assert!(
            matches!(bob, SessionSignInError::PersistentRefused(m) if m.contains("never")),
            "{bob:?}"
        );
        let alice = try_sign_in(&f, &device, "alice", true).unwrap();
        assert!(alice.lease.persistent);
        assert_eq!(alice.lease.expires_at_ms, None);
        assert!(!alice.lease.shared_mode);
        // bob may still sign in leased.
        let leased = try_sign_in(&f, &device, "bob", false).unwrap();
        assert!(!leased.lease.persistent);
        assert!(!leased.policy.persistent_allowed);
    }

    #[test]
    fn disabled_and_unknown_users_are_refused() {
        let (f, device) = fixture();
        let err = try_sign_in(&f, &device, "eve", false).unwrap_err();
        assert!(matches!(err, SessionSignInError::DisabledUser(_)));
        assert_eq!(
            ApiError::from(err).status(),
            axum::http::StatusCode::CONFLICT
        );
        let err = try_sign_in(&f, &device, "mallory", false).unwrap_err();
        assert_eq!(
            ApiError::from(err).status(),
            axum::http::StatusCode::NOT_FOUND
        );
        let err =
            try_sign_in(&f, &EnrollmentId::device("UDID-X").unwrap(), "alice", false).unwrap_err();
        assert_eq!(
            ApiError::from(err).status(),
            axum::http::StatusCode::NOT_FOUND
        );
        assert_eq!(lease::all(f.store.as_ref()).unwrap().len(), 0);
    }
}

//! Automatic sign-out: [`sweep_once`] looks at every signed-in device and signs out those
//! whose lease ended or whose user is disabled (or deleted), through the normal sign-out flow
//! (items removed, hand-off verified, session log `ended_how = "expired"`). [`run`] repeats it
//! on the blocking pool: at start-up (leases are stored, so they outlive restarts), every
//! `lease_check_interval`, at the next known lease end, and when woken
//! ([`SessionRules::wake_sweeper`]). Each automatic sign-out is handed to a [`SignOutHook`].
//!
//! A sweep also keeps leases in line with the current policy and assignments:
//! - a lease whose device is no longer assigned to its user is dropped (stale);
//! - a non-persistent lease the current policy would end earlier is shortened (policy
//!   changes never lengthen a session);
//! - a persistent lease the current policy no longer allows (shared mode turned on, a user
//!   group now says never) becomes a lease ending one lease period (or shift end) from now;
//! - a signed-in device without a lease (signed in before leases existed) gets one, counted
//!   from the start of its open session.
//!
//! Every write is conditional on the lease and assignee it was decided on, so a sweep racing a
//! sign-in never signs out the next person.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_assign::NOBODY_USERNAME;
use baton_proto::EnrollmentId;
use baton_store::{CasOutcome, Collection, KeyspaceBatch, Store, unix_millis};
use serde::Serialize;
use tokio::sync::watch;

use super::SessionRules;
use super::effective::{EffectivePolicy, effective};
use super::lease::{self, Lease, StoredLease, expiry_for};
use super::record::{self, SessionPolicy};
use super::zone::OperatorZone;
use crate::admin::devices::ASSIGNEE_COLLECTION;
use crate::catalog::assignment_config::{RecordError, all_json, collection};
use crate::directory::{USERS_COLLECTION, UserRecord};
use crate::reconciler::session_log;
use crate::reconciler::{ReconcileError, ReconcileOutcome, Reconciler};
use crate::sign_in_log::{self, ReasonCode, SignInEntry, SignInHow, SignInResult};

/// The session-log `ended_how` of an automatic sign-out.
pub const ENDED_HOW: &str = "expired";

/// Why Baton signed someone out by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignOutReason {
    /// The lease or shift ended.
    Expired,
    /// The user was disabled (or deleted).
    UserDisabled,
}

impl SignOutReason {
    /// The sign-in log reason code: `expired` or `disabled_user`.
    pub fn reason_code(self) -> &'static str {
        self.reason().as_str()
    }

    /// The sign-in log reason.
    pub fn reason(self) -> ReasonCode {
        match self {
            SignOutReason::Expired => ReasonCode::Expired,
            SignOutReason::UserDisabled => ReasonCode::DisabledUser,
        }
    }
}

/// One automatic sign-out.
#[derive(Debug, Clone, Serialize)]
pub struct AutomaticSignOut {
    /// The device (device-channel id).
    pub device: EnrollmentId,
    /// Who was signed out.
    pub username: String,
    /// Why.
    pub reason: SignOutReason,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The sign-out's reconcile (removals enqueued).
    pub outcome: ReconcileOutcome,
    /// The sign-in log entry written with the sign-out (result `signed_out`, reason
    /// `expired` or `disabled_user`, how `automatic`), for the webhook outbox.
    pub log_entry: SignInEntry,
}

/// Called for each automatic sign-out, on the blocking pool (it may write to the store).
pub type SignOutHook = Arc<dyn Fn(&AutomaticSignOut) + Send + Sync>;

/// A hook that only traces (the sign-in log entry is already stored with the sign-out).
pub fn log_only() -> SignOutHook {
    Arc::new(|s: &AutomaticSignOut| {
        tracing::info!(enrollment_id = %s.device, username = %s.username,
            reason = s.reason.reason_code(), "automatic sign-out");
    })
}

/// What one sweep did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// Devices signed out.
    pub signed_out: Vec<AutomaticSignOut>,
    /// Stale leases dropped (the device is no longer assigned to the lease's user).
    pub stale_dropped: usize,
    /// Leases shortened or made non-persistent by the current policy.
    pub tightened: usize,
    /// Leases created for signed-in devices that had none.
    pub adopted: usize,
    /// Devices that could not be handled this time (errors are logged; retried next sweep).
    pub failed: usize,
    /// The earliest end of a lease still running, Unix milliseconds.
    pub next_expiry_ms: Option<u64>,
}

/// Why a sweep could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// Stored records could not be read.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] baton_store::StoreError),
    /// The reconciler failed (e.g. the configuration does not compile).
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

/// What a sweep reads once.
struct Snapshot {
    policy: SessionPolicy,
    default_lease: Duration,
    time_zone: OperatorZone,
    /// Usernames of users that exist and are enabled.
    enabled: BTreeSet<String>,
    /// device -> assignee (not nobody).
    assignees: BTreeMap<EnrollmentId, String>,
}

/// One sweep at `now`. Per-device failures are logged and counted, never fatal.
pub fn sweep_once(
    store: &dyn Store,
    reconciler: &Reconciler,
    default_lease: Duration,
    time_zone: &OperatorZone,
    now: SystemTime,
) -> Result<SweepReport, SweepError> {
    let now_ms = unix_millis(now);
    let snapshot = Snapshot {
        policy: record::load(store)?,
        default_lease,
        time_zone: time_zone.clone(),
        enabled: all_json::<UserRecord>(store, USERS_COLLECTION)?
            .into_iter()
            .filter(|r| !r.disabled)
            .map(|r| r.user.username)
            .collect(),
        assignees: assignees(store)?,
    };
    let mut report = SweepReport::default();
    let mut leased = BTreeSet::new();
    for stored in lease::all(store)? {
        leased.insert(stored.device.clone());
        if let Err(error) = sweep_lease(store, reconciler, &snapshot, &stored, now, &mut report) {
            report.failed += 1;
            tracing::warn!(enrollment_id = %stored.device, %error, "session sweep: lease not handled");
        }
    }
    for (device, username) in &snapshot.assignees {
        if leased.contains(device) {
            continue;
        }
        if let Err(error) = sweep_unleased(
            store,
            reconciler,
            &snapshot,
            device,
            username,
            now,
            &mut report,
        ) {
            report.failed += 1;
            tracing::warn!(enrollment_id = %device, %error, "session sweep: device not handled");
        }
    }
    report.next_expiry_ms = report.next_expiry_ms.filter(|&end| end > now_ms);
    Ok(report)
}

fn assignees(store: &dyn Store) -> Result<BTreeMap<EnrollmentId, String>, SweepError> {
    let mut out = BTreeMap::new();
    for (k, v) in store.scan_prefix(&Collection::new(ASSIGNEE_COLLECTION)?, b"")? {
        let (Ok(key), Ok(user)) = (String::from_utf8(k), String::from_utf8(v)) else {
            continue;
        };
        if user == NOBODY_USERNAME {
            continue;
        }
        if let Ok(device) = EnrollmentId::device(&key) {
            out.insert(device, user);
        }
    }
    Ok(out)
}

fn note_expiry(report: &mut SweepReport, lease: &Lease) {
    if let Some(end) = lease.expires_at_ms {
        report.next_expiry_ms = Some(report.next_expiry_ms.map_or(end, |n| n.min(end)));
    }
}

/// The rules for the pair now, or None when the device is unknown or not enabled.
fn current_policy(
    reconciler: &Reconciler,
    snapshot: &Snapshot,
    device: &EnrollmentId,
    username: &str,
) -> Result<Option<EffectivePolicy>, ReconcileError> {
    let compiled = reconciler.compiled()?;
    Ok(reconciler.engine_device(device)?.map(|engine| {
        effective(
            &snapshot.policy,
            snapshot.default_lease,
            &compiled,
            &engine,
            username,
        )
        .in_zone(&snapshot.time_zone)
    }))
}

/// The lease as the current policy has it: shortened, or no longer persistent.
fn tightened(lease: &Lease, policy: &EffectivePolicy, now_ms: u64) -> Lease {
    if lease.persistent {
        if policy.persistent_allowed {
            return lease.clone();
        }
        return Lease {
            persistent: false,
            shared_mode: policy.shared_mode,
            expires_at_ms: Some(expiry_for(policy, now_ms)),
            ..lease.clone()
        };
    }
    let by_policy = expiry_for(policy, lease.started_at_ms);
    match lease.expires_at_ms {
        Some(end) if end <= by_policy => lease.clone(),
        _ => Lease {
            expires_at_ms: Some(by_policy),
            ..lease.clone()
        },
    }
}

fn guard_assignee(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    username: &str,
) -> Result<(), RecordError> {
    batch.expect(
        &collection(ASSIGNEE_COLLECTION)?,
        device.as_str().as_bytes(),
        Some(username.as_bytes()),
    );
    Ok(())
}

fn sign_out(
    reconciler: &Reconciler,
    device: &EnrollmentId,
    username: &str,
    reason: SignOutReason,
    mut batch: KeyspaceBatch,
    now: SystemTime,
    report: &mut SweepReport,
) -> Result<(), ReconcileError> {
    let log_entry = SignInEntry::new(
        now,
        username,
        device.as_str(),
        SignInHow::Automatic,
        SignInResult::SignedOut,
        reason.reason(),
    )
    .with_detail(match reason {
        SignOutReason::Expired => "the lease or shift ended",
        SignOutReason::UserDisabled => "the user was disabled or deleted",
    });
    sign_in_log::append_to_batch(&mut batch, &log_entry)?;
    let outcome = reconciler.sign_out_with(device, ENDED_HOW, now, batch)?;
    tracing::info!(enrollment_id = %device, username, reason = reason.reason_code(),
        removals = outcome.enqueued.iter().filter(|c| c.removal).count(),
        "automatic sign-out");
    report.signed_out.push(AutomaticSignOut {
        device: device.clone(),
        username: username.to_owned(),
        reason,
        at_ms: unix_millis(now),
        outcome,
        log_entry,
    });
    Ok(())
}

fn sweep_lease(
    store: &dyn Store,
    reconciler: &Reconciler,
    snapshot: &Snapshot,
    stored: &StoredLease,
    now: SystemTime,
    report: &mut SweepReport,
) -> Result<(), ReconcileError> {
    let now_ms = unix_millis(now);
    let (device, lease) = (&stored.device, &stored.lease);
    let mut guard = KeyspaceBatch::new();
    stored.expect_unchanged(&mut guard)?;
    if snapshot.assignees.get(device) != Some(&lease.username) {
        lease::delete(&mut guard, device)?;
        if store.apply(&guard)? == CasOutcome::Applied {
            report.stale_dropped += 1;
            tracing::debug!(enrollment_id = %device, username = %lease.username, "stale lease dropped");
        }
        return Ok(());
    }
    guard_assignee(&mut guard, device, &lease.username)?;
    let current = match current_policy(reconciler, snapshot, device, &lease.username)? {
        Some(policy) => tightened(lease, &policy, now_ms),
        None => lease.clone(),
    };
    let reason = if !snapshot.enabled.contains(&lease.username) {
        Some(SignOutReason::UserDisabled)
    } else if current.is_expired(now_ms) {
        Some(SignOutReason::Expired)
    } else {
        None
    };
    if let Some(reason) = reason {
        lease::delete(&mut guard, device)?;
        return match sign_out(
            reconciler,
            device,
            &lease.username,
            reason,
            guard,
            now,
            report,
        ) {
            Err(ReconcileError::UnknownDevice(_)) => {
                // The device left (checked out): nothing to sign out, drop the lease.
                let mut drop = KeyspaceBatch::new();
                stored.expect_unchanged(&mut drop)?;
                lease::delete(&mut drop, device)?;
                store.apply(&drop)?;
                Ok(())
            }
            other => other,
        };
    }
    if current != *lease {
        lease::put(&mut guard, device, &current)?;
        if store.apply(&guard)? == CasOutcome::Applied {
            report.tightened += 1;
            tracing::info!(enrollment_id = %device, username = %lease.username,
                expires_at_ms = current.expires_at_ms, "lease tightened by the session policy");
        }
    }
    note_expiry(report, &current);
    Ok(())
}

fn sweep_unleased(
    store: &dyn Store,
    reconciler: &Reconciler,
    snapshot: &Snapshot,
    device: &EnrollmentId,
    username: &str,
    now: SystemTime,
    report: &mut SweepReport,
) -> Result<(), ReconcileError> {
    let Some(policy) = current_policy(reconciler, snapshot, device, username)? else {
        // Not enrolled or not enabled: nothing can be signed out until it comes back.
        return Ok(());
    };
    let mut guard = KeyspaceBatch::new();
    lease::expect_absent(&mut guard, device)?;
    guard_assignee(&mut guard, device, username)?;
    if !snapshot.enabled.contains(username) {
        return sign_out(
            reconciler,
            device,
            username,
            SignOutReason::UserDisabled,
            guard,
            now,
            report,
        );
    }
    let now_ms = unix_millis(now);
    let started = session_log::open_session(store, device)?
        .map(|(_, s)| s)
        .filter(|s| s.username == username)
        .map_or(now_ms, |s| s.started_at);
    let adopted = Lease {
        username: username.to_owned(),
        started_at_ms: started,
        expires_at_ms: Some(expiry_for(&policy, started)),
        persistent: false,
        shared_mode: policy.shared_mode,
    };
    if adopted.is_expired(now_ms) {
        return sign_out(
            reconciler,
            device,
            username,
            SignOutReason::Expired,
            guard,
            now,
            report,
        );
    }
    lease::put(&mut guard, device, &adopted)?;
    if store.apply(&guard)? == CasOutcome::Applied {
        report.adopted += 1;
        tracing::info!(enrollment_id = %device, username, expires_at_ms = adopted.expires_at_ms,
            "lease created for a sign-in that had none");
        note_expiry(report, &adopted);
    }
    Ok(())
}

/// Smallest pause between two sweeps woken by a lease end (guards against a busy loop).
const MIN_PAUSE: Duration = Duration::from_millis(100);

/// Sweeps until `stop` turns true: at once, then every `lease_check_interval`, at the next
/// lease end, and on [`SessionRules::wake_sweeper`]. `hook` sees every automatic sign-out.
pub async fn run(
    store: Arc<dyn Store>,
    reconciler: Arc<Reconciler>,
    rules: Arc<SessionRules>,
    hook: SignOutHook,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let (s, r, h) = (
            Arc::clone(&store),
            Arc::clone(&reconciler),
            Arc::clone(&hook),
        );
        let default_lease = rules.default_lease();
        let time_zone = rules.time_zone().clone();
        let swept = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            match sweep_once(s.as_ref(), r.as_ref(), default_lease, &time_zone, now) {
                Ok(report) => {
                    for signed_out in &report.signed_out {
                        h(signed_out);
                    }
                    report.next_expiry_ms
                }
                Err(error) => {
                    tracing::warn!(%error, "session sweep failed");
                    None
                }
            }
        })
        .await;
        let next_expiry = match swept {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "session sweep worker failed");
                None
            }
        };
        let mut wait = rules.settings().lease_check_interval;
        let now_ms = unix_millis(SystemTime::now());
        if let Some(end) = next_expiry {
            let until = Duration::from_millis(end.saturating_sub(now_ms));
            wait = wait.min(until.max(MIN_PAUSE));
        }
        rules.plan_next_run(now_ms.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(0)));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = rules.woken() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use baton_assign::Membership;
    use baton_store::{SledConfig, SledStore, from_unix_millis};

    use super::*;
    use crate::session_policy::SessionSettings;
    use crate::session_policy::fixture::Fixture;
    use crate::session_policy::sign_in::{sign_in, sign_out as signed_out};

    const T0: u64 = 1_709_251_200_000;
    const SEC: u64 = 1000;

    fn at(ms: u64) -> SystemTime {
        from_unix_millis(T0 + ms)
    }

    fn settings(lease_secs: u64) -> SessionSettings {
        SessionSettings {
            default_lease: Duration::from_secs(lease_secs),
            ..SessionSettings::default()
        }
    }

    fn sign(f: &Fixture, device: &EnrollmentId, user: &str, persistent: bool, when: u64) -> Lease {
        sign_in(
            f.store.as_ref(),
            &f.reconciler,
            &f.rules,
            device,
            user,
            "portal",
            persistent,
            at(when),
        )
        .unwrap()
        .lease
    }

    fn sweep(f: &Fixture, when: u64) -> SweepReport {
        sweep_once(
            f.store.as_ref(),
            &f.reconciler,
            f.rules.default_lease(),
            f.rules.time_zone(),
            at(when),
        )
        .unwrap()
    }

    fn last_session(f: &Fixture, device: &EnrollmentId) -> session_log::Session {
        session_log::latest(f.store.as_ref(), device)
            .unwrap()
            .unwrap()
            .1
    }

    fn set_policy(f: &Fixture, json: &str) {
        let policy: SessionPolicy = serde_json::from_str(json).unwrap();
        policy.validate(&f.reconciler.config().unwrap()).unwrap();
        record::save(f.store.as_ref(), &policy).unwrap();
    }

    fn basic(lease_secs: u64) -> (Fixture, EnrollmentId) {
        let f = Fixture::new(settings(lease_secs));
        f.add_user("alice", false);
        f.add_user("bob", false);
        let device = f.enroll("UDID-1", at(0));
        (f, device)
    }

    #[test]
    fn an_expired_lease_is_signed_out_and_logged_as_expired() {
        let (f, device) = basic(60);
        sign(&f, &device, "alice", false, 0);
        let early = sweep(&f, 59 * SEC);
        assert!(early.signed_out.is_empty());
        assert_eq!(early.next_expiry_ms, Some(T0 + 60 * SEC));
        assert_eq!(f.reconciler.assignee(&device).unwrap(), "alice");

        let report = sweep(&f, 60 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        let out = &report.signed_out[0];
        assert_eq!(
            (out.device.as_str(), out.username.as_str(), out.reason),
            ("UDID-1", "alice", SignOutReason::Expired)
        );
        assert_eq!(out.reason.reason_code(), "expired");
        // The normal sign-out flow: hand-off check commands enqueued.
        assert!(
            out.outcome
                .enqueued
                .iter()
                .any(|c| c.request_type == "ProfileList")
        );
        assert_eq!(f.reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
        assert_eq!(lease::get(f.store.as_ref(), &device).unwrap(), None);
        let session = last_session(&f, &device);
        assert_eq!(session.ended_how.as_deref(), Some("expired"));
        assert_eq!(session.ended_at, Some(T0 + 60 * SEC));
        assert_eq!(report.next_expiry_ms, None);
        // Nothing left to do.
        assert!(sweep(&f, 61 * SEC).signed_out.is_empty());
    }

    #[test]
    fn persistent_leases_do_not_expire() {
        let f = Fixture::new(settings(60));
        f.add_user("alice", false);
        f.add_group(
            "dedicated",
            Membership::Devices {
                devices: ["UDID-1".to_owned()].into_iter().collect(),
            },
        );
        set_policy(
            &f,
            r#"{"device_groups":{"dedicated":{"shared_mode":false}}}"#,
        );
        let device = f.enroll("UDID-1", at(0));
        sign(&f, &device, "alice", true, 0);
        let report = sweep(&f, 30 * 86_400 * SEC);
        assert!(report.signed_out.is_empty());
        assert_eq!(report.next_expiry_ms, None);
        assert_eq!(f.reconciler.assignee(&device).unwrap(), "alice");

        // Shared mode turned on later: the session becomes leased from now, then ends.
        set_policy(
            &f,
            r#"{"device_groups":{"dedicated":{"shared_mode":true}}}"#,
        );
        let now = 30 * 86_400 * SEC;
        let report = sweep(&f, now);
        assert_eq!(report.tightened, 1);
        let l = lease::get(f.store.as_ref(), &device).unwrap().unwrap();
        assert!(!l.persistent && l.shared_mode);
        assert_eq!(l.expires_at_ms, Some(T0 + now + 60 * SEC));
        assert_eq!(sweep(&f, now + 60 * SEC).signed_out.len(), 1);
    }

    #[test]
    fn disabled_and_deleted_users_are_signed_out_at_once() {
        let (f, device) = basic(3600);
        let other = f.enroll("UDID-2", at(0));
        sign(&f, &device, "alice", false, 0);
        sign(&f, &other, "bob", false, 0);
        assert!(sweep(&f, SEC).signed_out.is_empty());
        f.add_user("alice", true);
        let report = sweep(&f, 2 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        assert_eq!(report.signed_out[0].reason, SignOutReason::UserDisabled);
        assert_eq!(report.signed_out[0].reason.reason_code(), "disabled_user");
        assert_eq!(report.signed_out[0].username, "alice");
        assert_eq!(f.reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
        assert_eq!(f.reconciler.assignee(&other).unwrap(), "bob");
        assert_eq!(
            last_session(&f, &device).ended_how.as_deref(),
            Some("expired")
        );
        // A deleted user counts as disabled.
        f.store
            .delete(&collection(USERS_COLLECTION).unwrap(), b"bob")
            .unwrap();
        let report = sweep(&f, 3 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        assert_eq!(report.signed_out[0].username, "bob");
    }

    #[test]
    fn stale_leases_are_dropped_and_unleased_sign_ins_adopted() {
        let (f, device) = basic(600);
        sign(&f, &device, "alice", false, 0);
        // A sign-in that bypassed leases (e.g. an older code path) hands the device to bob.
        f.reconciler
            .sign_in(&device, "bob", "admin", at(10 * SEC))
            .unwrap();
        let report = sweep(&f, 20 * SEC);
        assert_eq!(report.stale_dropped, 1);
        assert!(report.signed_out.is_empty());
        // bob had no lease: one is created, counted from his session's start.
        let report = sweep(&f, 21 * SEC);
        assert_eq!(report.adopted, 1);
        let l = lease::get(f.store.as_ref(), &device).unwrap().unwrap();
        assert_eq!(l.username, "bob");
        assert_eq!(l.started_at_ms, T0 + 10 * SEC);
        assert_eq!(l.expires_at_ms, Some(T0 + 610 * SEC));
        assert_eq!(report.next_expiry_ms, Some(T0 + 610 * SEC));
        let report = sweep(&f, 610 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        assert_eq!(report.signed_out[0].username, "bob");
        // A sign-out without the lease helper leaves a stale lease: dropped, no sign-out.
        sign(&f, &device, "alice", false, 700 * SEC);
        f.reconciler
            .sign_out(&device, "admin", at(701 * SEC))
            .unwrap();
        let report = sweep(&f, 702 * SEC);
        assert_eq!((report.stale_dropped, report.signed_out.len()), (1, 0));
        assert_eq!(lease::all(f.store.as_ref()).unwrap().len(), 0);
    }

    #[test]
    fn policy_changes_shorten_running_leases_never_lengthen() {
        let (f, device) = basic(86_400);
        f.add_group(
            "ward",
            Membership::Devices {
                devices: ["UDID-1".to_owned()].into_iter().collect(),
            },
        );
        sign(&f, &device, "alice", false, 0);
        set_policy(&f, r#"{"device_groups":{"ward":{"lease_seconds":120}}}"#);
        let report = sweep(&f, 60 * SEC);
        assert_eq!(report.tightened, 1);
        assert_eq!(report.next_expiry_ms, Some(T0 + 120 * SEC));
        // Longer again: the running lease keeps its earlier end.
        set_policy(&f, r#"{"device_groups":{"ward":{"lease_seconds":7200}}}"#);
        let report = sweep(&f, 90 * SEC);
        assert_eq!(report.tightened, 0);
        assert_eq!(report.next_expiry_ms, Some(T0 + 120 * SEC));
        assert_eq!(sweep(&f, 120 * SEC).signed_out.len(), 1);
        // A shift end added while signed in ends the session at that time. T0 is midnight UTC.
        sign(&f, &device, "bob", false, 3600 * SEC);
        set_policy(
            &f,
            r#"{"device_groups":{"ward":{"lease_seconds":86400,"shift_ends":["02:00"]}}}"#,
        );
        assert!(sweep(&f, 7199 * SEC).signed_out.is_empty());
        let report = sweep(&f, 7200 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        assert_eq!(report.signed_out[0].username, "bob");
    }

    #[test]
    fn a_sweep_never_signs_out_the_next_person() {
        let (f, device) = basic(60);
        sign(&f, &device, "alice", false, 0);
        let seen = lease::all(f.store.as_ref()).unwrap().remove(0);
        // bob signs in between the sweep's read and its write.
        sign(&f, &device, "bob", false, 61 * SEC);
        let snapshot = Snapshot {
            policy: SessionPolicy::default(),
            default_lease: Duration::from_secs(60),
            time_zone: OperatorZone::utc(),
            enabled: ["alice".to_owned(), "bob".to_owned()].into_iter().collect(),
            assignees: [(device.clone(), "alice".to_owned())].into_iter().collect(),
        };
        let mut report = SweepReport::default();
        let result = sweep_lease(
            f.store.as_ref(),
            &f.reconciler,
            &snapshot,
            &seen,
            at(62 * SEC),
            &mut report,
        );
        assert!(
            matches!(result, Err(ReconcileError::Conflict)),
            "{result:?}"
        );
        assert!(report.signed_out.is_empty());
        assert_eq!(f.reconciler.assignee(&device).unwrap(), "bob");
        assert_eq!(
            lease::get(f.store.as_ref(), &device)
                .unwrap()
                .unwrap()
                .username,
            "bob"
        );
    }

    #[test]
    fn a_checked_out_device_loses_its_lease_quietly() {
        let (f, device) = basic(60);
        sign(&f, &device, "alice", false, 0);
        f.store.check_out(&device, at(SEC)).unwrap();
        let report = sweep(&f, 30 * SEC);
        assert_eq!((report.signed_out.len(), report.failed), (0, 0));
        let report = sweep(&f, 60 * SEC);
        assert_eq!((report.signed_out.len(), report.failed), (0, 0));
        assert_eq!(lease::get(f.store.as_ref(), &device).unwrap(), None);
        // Its assignee stays until it enrolls again; no lease is invented for it.
        let report = sweep(&f, 61 * SEC);
        assert_eq!((report.adopted, report.failed), (0, 0));
    }

    fn open(path: &std::path::Path) -> Arc<dyn Store> {
        // sled releases its lock when the last handle's flusher exits: retry briefly.
        for _ in 0..100 {
            if let Ok(s) = SledStore::open_with(&SledConfig::new(path)) {
                return Arc::new(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("cannot reopen the store");
    }

    #[test]
    fn a_lease_survives_a_restart_and_expires_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let device = {
            let f = Fixture::over(open(&path), settings(5));
            f.add_user("alice", false);
            let device = f.enroll("UDID-1", at(0));
            sign(&f, &device, "alice", false, 0);
            f.store.flush_last_seen().unwrap();
            device
        };
        let f = Fixture::over(open(&path), settings(5));
        let lease = lease::get(f.store.as_ref(), &device).unwrap().unwrap();
        assert_eq!(lease.expires_at_ms, Some(T0 + 5 * SEC));
        assert!(sweep(&f, 4 * SEC).signed_out.is_empty());
        let report = sweep(&f, 5 * SEC);
        assert_eq!(report.signed_out.len(), 1);
        assert_eq!(
            last_session(&f, &device).ended_how.as_deref(),
            Some("expired")
        );
        drop(f);
        let f = Fixture::over(open(&path), settings(5));
        assert_eq!(lease::get(f.store.as_ref(), &device).unwrap(), None);
        assert_eq!(f.reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
    }

    #[test]
    fn admin_sign_out_helper_leaves_nothing_for_the_sweeper() {
        let (f, device) = basic(60);
        sign(&f, &device, "alice", false, 0);
        signed_out(
            &f.reconciler,
            &crate::webhook::EventSink::disabled(),
            &device,
            SignInHow::Admin,
            at(SEC),
        )
        .unwrap();
        let report = sweep(&f, 120 * SEC);
        assert_eq!(
            (
                report.signed_out.len(),
                report.stale_dropped,
                report.adopted
            ),
            (0, 0, 0)
        );
        assert_eq!(
            last_session(&f, &device).ended_how.as_deref(),
            Some("admin")
        );
    }

    /// Timing printout, run by hand:
    /// `cargo test -p baton-server --release --lib sweep_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing printout, run by hand"]
    fn sweep_timing_printout() {
        let f = Fixture::new(settings(86_400));
        f.add_group(
            "ward",
            Membership::Devices {
                devices: ["UDID-0".to_owned()].into_iter().collect(),
            },
        );
        set_policy(
            &f,
            r#"{"device_groups":{"ward":{"shared_mode":false,"shift_ends":["07:00"]}}}"#,
        );
        let n = 1000;
        for i in 0..n {
            f.add_user(&format!("user{i}"), false);
        }
        for i in 0..n {
            let device = f.enroll(&format!("UDID-{i}"), at(0));
            sign(&f, &device, &format!("user{i}"), false, 0);
        }
        let start = std::time::Instant::now();
        let rounds = 5;
        for _ in 0..rounds {
            let report = sweep(&f, SEC);
            assert_eq!(
                report.signed_out.len() + report.tightened + report.failed,
                0
            );
        }
        let per = start.elapsed() / rounds;
        println!("sweep of {n} signed-in devices, nothing to do: {per:?} per sweep");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_signs_out_a_disabled_user_when_woken() {
        let f = Fixture::new(SessionSettings {
            default_lease: Duration::from_secs(86_400),
            lease_check_interval: Duration::from_secs(3600),
            ..SessionSettings::default()
        });
        f.add_user("alice", false);
        let device = f.enroll("UDID-1", SystemTime::now());
        sign_in(
            f.store.as_ref(),
            &f.reconciler,
            &f.rules,
            &device,
            "alice",
            "portal",
            false,
            SystemTime::now(),
        )
        .unwrap();
        let Fixture {
            store,
            reconciler,
            rules,
        } = f;
        let (reconciler, rules) = (Arc::new(reconciler), Arc::new(rules));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let hook: SignOutHook = Arc::new(move |s: &AutomaticSignOut| {
            let _ = tx.send((s.username.clone(), s.reason));
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            Arc::clone(&store),
            Arc::clone(&reconciler),
            Arc::clone(&rules),
            hook,
            stop_rx,
        ));
        // Disable alice; the hourly interval would not notice for an hour, the wake-up does.
        let record = UserRecord {
            user: baton_assign::User::new("alice"),
            password_hash: None,
            created_at: 1,
            disabled: true,
        };
        store
            .put(
                &collection(USERS_COLLECTION).unwrap(),
                b"alice",
                &crate::catalog::assignment_config::encode(&record).unwrap(),
            )
            .unwrap();
        rules.wake_sweeper();
        let got = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("no automatic sign-out")
            .unwrap();
        assert_eq!(got, ("alice".to_owned(), SignOutReason::UserDisabled));
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(reconciler.assignee(&device).unwrap(), NOBODY_USERNAME);
    }
}

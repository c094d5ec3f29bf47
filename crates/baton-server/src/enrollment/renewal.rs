//! Device identity renewal: devices whose identity certificate (issued by the built-in CA)
//! expires within the renewal window get an `InstallProfile` with a fresh enrollment profile
//! (same identifier, ServerURL and topic, a new one-time SCEP challenge). Installing it replaces
//! the MDM profile and gives the device a new identity.
//!
//! Each device's renewal is a [`RenewalRecord`] (states and transitions in
//! [`super::renewal_record`], storage in [`super::store_renewal`]). The renewal profile's
//! challenge lives until the old identity expires, because a locked or switched-off device
//! installs the profile hours or days after it was queued. Three things move a record:
//!
//! - [`after_report`], called by the command channel for final results only: Acknowledged
//!   or Error for the current attempt's InstallProfile (one point read per final result; Idle
//!   and NotNow read nothing).
//! - [`identity_replaced`], called when a renewed identity takes over the device's binding.
//! - [`renew_expiring`], one periodic pass (synchronous, takes `now`): queues first attempts,
//!   notices completion, dropped commands, installs that never produced a new identity and
//!   expiry, retries failed attempts after their back-off with a fresh challenge and profile,
//!   and counts identities close to expiry. [`pass`] adds the side effects (metrics, webhook
//!   events, pushes) and [`run`] calls it periodically.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_proto::{
    Command, CommandReport, CommandRequest, CommandUuid, EnrollmentId, ErrorChainItem, Status,
};
use baton_store::{
    CasOutcome, CertHash, Enqueue, Enrollment, KeyspaceBatch, NewCommand, Priority, Store,
    StoreError, from_unix_millis,
};
use thiserror::Error;
use tokio::sync::watch;

use super::enrollment_terms::TermDrift;
use super::profile_issuer::{EnrollProfileError, EnrollmentProfiles};
use super::registry::RegistryError;
use super::renewal_record::{Attempt, ExpiringIdentity, RenewalRecord, RenewalState, Transition};
use super::store_challenge::StoreChallengeStore;
use super::store_renewal::{RenewalRecords, StoredRenewal};
use super::store_terms;
use crate::metrics::IdentityGauges;
use crate::state::{AppState, Services};
use crate::timestamp::rfc3339;
use crate::webhook::EventPayload;
use crate::webhook::event::RenewalEvent;

pub use super::store_renewal::RENEWALS_COLLECTION;

/// Used or expired one-time challenges are forgotten this long after their expiry.
pub const CHALLENGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Compare-and-swap attempts of the result hook before giving up.
const CAS_ATTEMPTS: usize = 8;

/// A renewal pass failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The certificate registry failed.
    #[error("registry: {0}")]
    Registry(#[from] RegistryError),
    /// The profile could not be built.
    #[error("profile: {0}")]
    Profile(#[from] EnrollProfileError),
    /// The command could not be encoded or named.
    #[error("command: {0}")]
    Command(String),
    /// Another writer kept changing the same record.
    #[error("renewal record of {0} kept changing")]
    Contended(EnrollmentId),
}

/// One queued attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRenewal {
    /// The device channel.
    pub enrollment_id: EnrollmentId,
    /// The InstallProfile command.
    pub command_uuid: CommandUuid,
    /// Serial of the expiring certificate.
    pub serial: u64,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
}

/// A renewal that changed state, with the record as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalChange {
    /// What happened.
    pub transition: Transition,
    /// The record after it.
    pub record: RenewalRecord,
}

/// What one [`renew_expiring`] pass did and saw.
#[derive(Debug, Clone, Default)]
pub struct RenewalPass {
    /// Attempts queued (first attempts and retries): push these devices.
    pub queued: Vec<QueuedRenewal>,
    /// State changes noticed by the pass.
    pub changes: Vec<RenewalChange>,
    /// Stale commands of finished renewals taken out of the queue.
    pub cancelled: usize,
    /// The identity gauges.
    pub gauges: IdentityGauges,
}

/// The record of a device's renewal, if it ever needed one.
pub fn record_of(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<Option<RenewalRecord>, StoreError> {
    Ok(RenewalRecords::new(store)?.get(device)?.map(|s| s.record))
}

/// Every renewal record (optionally only those in `state`), in device order.
pub fn records(
    store: &dyn Store,
    state: Option<RenewalState>,
) -> Result<Vec<RenewalRecord>, StoreError> {
    Ok(RenewalRecords::new(store)?
        .all()?
        .records
        .into_iter()
        .map(|s| s.record)
        .filter(|r| state.is_none_or(|s| r.state == s))
        .collect())
}

/// The result hook: a final report (Acknowledged, Error, CommandFormatError) of the current
/// attempt's InstallProfile moves the device's renewal. Other reports read nothing; reports
/// about other commands cost one point read.
pub fn after_report(
    store: &dyn Store,
    report: &CommandReport,
    now: SystemTime,
) -> Result<Option<RenewalChange>, RenewalError> {
    let final_status = matches!(
        report.status,
        Status::Acknowledged | Status::Error | Status::CommandFormatError
    );
    let (true, Some(uuid)) = (final_status, &report.command_uuid) else {
        return Ok(None);
    };
    let device = report.enrollment_id();
    if device.is_user_channel() {
        return Ok(None);
    }
    let chain = report.error_chain.as_deref().unwrap_or_default();
    update(store, device, |record| {
        record.on_result(uuid, report.status, chain, now)
    })
}

/// The binding hook: `device` now uses an identity other than the one it had; an open renewal
/// is completed.
pub fn identity_replaced(
    store: &dyn Store,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<Option<RenewalChange>, RenewalError> {
    update(store, device, |record| record.on_identity_replaced(now))
}

/// Applies `step` to the device's record with compare-and-swap, retrying on conflicts.
fn update(
    store: &dyn Store,
    device: &EnrollmentId,
    mut step: impl FnMut(&mut RenewalRecord) -> Option<Transition>,
) -> Result<Option<RenewalChange>, RenewalError> {
    let records = RenewalRecords::new(store)?;
    for _ in 0..CAS_ATTEMPTS {
        let Some(stored) = records.get(device)? else {
            return Ok(None);
        };
        let mut record = stored.record;
        let Some(transition) = step(&mut record) else {
            return Ok(None);
        };
        if records.replace(Some(&stored.raw), &record)? == CasOutcome::Applied {
            log_change(&transition, &record);
            return Ok(Some(RenewalChange { transition, record }));
        }
    }
    Err(RenewalError::Contended(device.parent()))
}

fn log_change(transition: &Transition, record: &RenewalRecord) {
    let device = &record.device;
    let uuid = &record.command_uuid;
    match transition {
        Transition::Acknowledged => tracing::info!(enrollment_id = %device, command_uuid = %uuid,
            attempt = record.attempts, "identity renewal profile installed"),
        Transition::Completed => tracing::info!(enrollment_id = %device,
            attempts = record.attempts, renewed_serial = record.serial,
            "identity renewal completed: the device uses its new identity"),
        Transition::Failed {
            error,
            replacement_refused: true,
            next_attempt_at,
        } => tracing::error!(enrollment_id = %device, command_uuid = %uuid,
            attempt = record.attempts, %error, next_attempt_at = %rfc3339(*next_attempt_at),
            "identity renewal refused by the device: its MDM profile cannot be replaced with \
             these values; it will be retried"),
        Transition::Failed {
            error,
            next_attempt_at,
            ..
        } => tracing::warn!(enrollment_id = %device, command_uuid = %uuid,
            attempt = record.attempts, %error, next_attempt_at = %rfc3339(*next_attempt_at),
            "identity renewal failed; it will be retried"),
        Transition::Expired => tracing::error!(enrollment_id = %device,
            attempts = record.attempts, serial = record.serial,
            error = record.last_error.as_deref().unwrap_or("none"),
            "device identity expired before its renewal completed: the device has left \
             management and must enroll again"),
    }
}

/// A fresh renewal profile for `enrollment` (challenge valid until `expires_at`) as an
/// InstallProfile enqueue.
fn new_attempt(
    profiles: &EnrollmentProfiles,
    enrollment: &Enrollment,
    expires_at: SystemTime,
    now: SystemTime,
) -> Result<(Attempt, Enqueue), RenewalError> {
    // The values the device enrolled with: iOS refuses a replacement that changes them (12012).
    // A device enrolled before they were recorded gets the current public URL and its topic.
    let kept = match store_terms::get(profiles.store().as_ref(), &enrollment.id)? {
        Some(terms) => terms,
        None => profiles.terms_now(enrollment.topic.as_ref().map(|t| t.as_str().to_owned()))?,
    };
    let profile = profiles.issue_renewal(&enrollment.id, kept, expires_at, now)?;
    let uuid = CommandUuid::new(uuid::Uuid::new_v4().to_string().to_uppercase())
        .map_err(|e| RenewalError::Command(e.to_string()))?;
    let command = Command::new(
        uuid.clone(),
        CommandRequest::InstallProfile {
            payload: profile.bytes,
        },
    );
    let new = NewCommand {
        uuid: uuid.clone(),
        request_type: command.request_type().to_owned(),
        body: command
            .encode()
            .map_err(|e| RenewalError::Command(e.to_string()))?,
        priority: Priority::NORMAL,
    };
    Ok((
        Attempt {
            command_uuid: uuid,
            challenge: profile.challenge,
        },
        Enqueue {
            command: new,
            to: vec![enrollment.id.clone()],
        },
    ))
}

/// One renewal pass at `now`: reviews every open renewal (completion, missed results, dropped
/// commands, stuck installs, expiry), retries failed ones whose back-off elapsed, queues a first
/// attempt for every enabled device whose identity expires before `now + renewal_window`, and
/// counts identities close to expiry (each logged as a warning).
pub fn renew_expiring(
    profiles: &EnrollmentProfiles,
    now: SystemTime,
) -> Result<RenewalPass, RenewalError> {
    let store = profiles.store().as_ref();
    let records = RenewalRecords::new(store)?;
    let mut pass = RenewalPass::default();
    let all = records.all()?;
    for key in all.stale {
        store.delete(records.collection(), &key)?;
        tracing::info!(
            "dropped a renewal record of an earlier version; the pass re-checks its device"
        );
    }
    let mut by_device: HashMap<EnrollmentId, RenewalRecord> = HashMap::new();
    for stored in all.records {
        let device = stored.record.device.clone();
        if let Some(record) = review(profiles, &records, stored, now, &mut pass)? {
            by_device.insert(device, record);
        }
    }

    let settings = profiles.settings();
    let registry = profiles.scep().registry();
    let horizon = now + settings.renewal_window;
    pass.gauges.warning = settings.expiry_warning;
    for enrollment in store.enrollments()? {
        if enrollment.id.is_user_channel() || !enrollment.enabled {
            continue;
        }
        let Some(hash) = store.enrollment_cert(&enrollment.id)? else {
            continue;
        };
        let Some(certificate) = registry.by_sha256(&hash.0)? else {
            continue; // not issued by the built-in CA: nothing to renew here
        };
        if certificate.revoked_at.is_some() {
            continue;
        }
        let existing = by_device.get(&enrollment.id);
        let Ok(left) = certificate.not_after.duration_since(now) else {
            pass.gauges.expired += 1;
            continue;
        };
        if left <= settings.expiry_warning {
            pass.gauges.expiring += 1;
            let renewal = existing.filter(|r| r.renews(&hash.0));
            tracing::warn!(enrollment_id = %enrollment.id, serial = certificate.serial,
                expires_in_hours = left.as_secs() / 3600,
                renewal = renewal.map_or("none", |r| r.state.as_str()),
                attempts = renewal.map_or(0, |r| r.attempts),
                last_error = renewal.and_then(|r| r.last_error.as_deref()).unwrap_or("none"),
                "device identity expires soon and is not renewed yet");
        }
        if certificate.not_after > horizon || existing.is_some_and(|r| r.renews(&hash.0)) {
            continue;
        }
        let previous = records.get(&enrollment.id)?;
        let (attempt, enqueue) = new_attempt(profiles, &enrollment, certificate.not_after, now)?;
        let identity = ExpiringIdentity {
            sha256: hash.0,
            serial: certificate.serial,
            not_after: certificate.not_after,
        };
        let record = RenewalRecord::first(enrollment.id.clone(), &identity, attempt, now);
        let mut batch = KeyspaceBatch::new();
        records.stage(
            &mut batch,
            previous.as_ref().map(|p| p.raw.as_slice()),
            &record,
        )?;
        if store.apply_with_enqueue(&batch, &[enqueue], now)? == CasOutcome::Applied {
            tracing::info!(enrollment_id = %enrollment.id, command_uuid = %record.command_uuid,
                serial = certificate.serial, expires_at = %rfc3339(certificate.not_after),
                "identity expires soon: renewal profile queued");
            pass.queued.push(QueuedRenewal {
                enrollment_id: enrollment.id.clone(),
                command_uuid: record.command_uuid.clone(),
                serial: certificate.serial,
                attempt: 1,
            });
            by_device.insert(enrollment.id, record);
        }
    }
    for record in by_device.values() {
        if let Some(i) = RenewalState::ALL.iter().position(|s| *s == record.state) {
            pass.gauges.renewals[i] += 1;
        }
    }
    Ok(pass)
}

/// Reviews one record: transitions, a retry when due, and tidying of a finished renewal (its
/// leftover challenge withdrawn, its still-queued command cancelled). Returns the record as it
/// now stands, or `None` when its device is gone.
fn review(
    profiles: &EnrollmentProfiles,
    records: &RenewalRecords<'_>,
    stored: StoredRenewal,
    now: SystemTime,
    pass: &mut RenewalPass,
) -> Result<Option<RenewalRecord>, RenewalError> {
    let store = profiles.store().as_ref();
    let mut record = stored.record.clone();
    let tidy = !record.state.is_open() && record.challenge_sha256.is_some();
    if !record.state.is_open() && !tidy {
        return Ok(Some(record));
    }
    let Some(enrollment) = store.enrollment(&record.device)? else {
        let key = record.device.parent();
        records.remove(key.as_str().as_bytes(), &stored.raw)?;
        return Ok(None);
    };
    if !enrollment.enabled {
        return Ok(Some(record)); // checked out: nothing to renew until it enrolls again
    }
    let bound = store.enrollment_cert(&record.device)?;
    let replaced = bound.is_some_and(|h: CertHash| !record.renews(&h.0));
    let result = match record.state {
        RenewalState::Queued => store.command_result(&record.device, &record.command_uuid)?,
        _ => None,
    };
    let command = result
        .as_ref()
        .map(|r| (r.state, r.error_chain.as_slice() as &[ErrorChainItem]));
    let transition = record.review(replaced, command, now);

    let mut withdraw = Vec::new();
    let mut cancel = None;
    let mut enqueue = Vec::new();
    let mut retried = false;
    if record.retry_due(now) {
        withdraw.extend(record.challenge());
        let (attempt, next) = new_attempt(profiles, &enrollment, record.expires_at(), now)?;
        record.retry(attempt, now);
        enqueue.push(next);
        retried = true;
    }
    if !record.state.is_open() && record.challenge_sha256.is_some() {
        withdraw.extend(record.challenge());
        record.challenge_sha256 = None;
        let queued = store
            .command_result(&record.device, &record.command_uuid)?
            .is_some_and(|r| r.state.is_queued());
        if queued {
            cancel = Some(record.command_uuid.clone());
        }
    }
    if transition.is_none() && !retried && withdraw.is_empty() {
        return Ok(Some(record));
    }
    let mut batch = KeyspaceBatch::new();
    records.stage(&mut batch, Some(&stored.raw), &record)?;
    if store.apply_with_enqueue(&batch, &enqueue, now)? != CasOutcome::Applied {
        // The result hook moved it meanwhile; the next pass looks again.
        return Ok(records.get(&record.device)?.map(|s| s.record));
    }
    if let Some(transition) = transition {
        log_change(&transition, &record);
        pass.changes.push(RenewalChange {
            transition,
            record: record.clone(),
        });
    }
    for hash in withdraw {
        if let Err(error) = profiles.scep().challenges().withdraw(&hash, now) {
            tracing::warn!(enrollment_id = %record.device, %error,
                "withdrawing a replaced renewal challenge failed");
        }
    }
    if let Some(uuid) = cancel
        && store.cancel(&record.device, &uuid, now)?
    {
        pass.cancelled += 1;
    }
    if retried {
        tracing::info!(enrollment_id = %record.device, command_uuid = %record.command_uuid,
            attempt = record.attempts, "identity renewal retried with a fresh profile");
        pass.queued.push(QueuedRenewal {
            enrollment_id: record.device.clone(),
            command_uuid: record.command_uuid.clone(),
            serial: record.serial,
            attempt: record.attempts,
        });
    }
    Ok(Some(record))
}

/// The webhook event of a change, if operators are told about it (failures and expiry).
pub fn event_of(change: &RenewalChange) -> Option<EventPayload> {
    let record = &change.record;
    let event = RenewalEvent {
        command_uuid: record.command_uuid.clone(),
        attempts: record.attempts,
        error: record.last_error.clone(),
        next_attempt_at: record
            .next_attempt_at_ms
            .map(|ms| rfc3339(from_unix_millis(ms))),
        identity_expires_at: rfc3339(record.expires_at()),
        reason: record
            .replacement_refused
            .then(|| REPLACEMENT_REFUSED_REASON.to_owned()),
    };
    match change.transition {
        Transition::Failed { .. } => Some(EventPayload::IdentityRenewalFailed(event)),
        Transition::Expired => Some(EventPayload::IdentityRenewalExpired(event)),
        _ => None,
    }
}

/// The `reason` of a failure event when iOS refused to replace the MDM profile (12012).
pub const REPLACEMENT_REFUSED_REASON: &str = "mdm_profile_replacement_refused";

/// Records the webhook event of a change, if any, and counts replacement refusals
/// (`baton_identity_renewal_refusals_total`).
pub fn publish(services: &Services, change: &RenewalChange, now: SystemTime) {
    if let Transition::Failed {
        replacement_refused: true,
        ..
    } = change.transition
    {
        services.metrics.identity_renewal_refused();
    }
    if let Some(event) = event_of(change) {
        services.events.record(&change.record.device, event, now);
    }
}

/// One pass with its side effects: forgets old challenges, runs [`renew_expiring`], sets the
/// identity gauges, records webhook events and pushes the devices that got an attempt.
pub fn pass(
    profiles: &EnrollmentProfiles,
    services: &Services,
    now: SystemTime,
) -> Result<RenewalPass, RenewalError> {
    match StoreChallengeStore::new(Arc::clone(profiles.store()))
        .map_err(RenewalError::from)
        .and_then(|c| Ok(c.purge(now, CHALLENGE_RETENTION)?))
    {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "old SCEP challenges forgotten"),
        Err(error) => tracing::warn!(%error, "forgetting old SCEP challenges failed"),
    }
    let done = renew_expiring(profiles, now)?;
    services.metrics.set_identity_gauges(&done.gauges);
    for change in &done.changes {
        publish(services, change, now);
    }
    let queued = i64::try_from(done.queued.len()).unwrap_or(i64::MAX);
    let cancelled = i64::try_from(done.cancelled).unwrap_or(i64::MAX);
    services.metrics.add_queue_depth(queued - cancelled);
    if !done.queued.is_empty() {
        let ids: Vec<EnrollmentId> = done
            .queued
            .iter()
            .map(|q| q.enrollment_id.clone())
            .collect();
        services.push.commands_enqueued(&ids);
    }
    Ok(done)
}

/// The start-up check: compares the terms every enabled device enrolled with
/// ([`store_terms`]) with what a profile issued now says, and logs each change that matters to
/// renewal with the way out. Renewal profiles keep the enrolled values (iOS refuses to change
/// them, 12012), so such devices keep talking to the old URL and topic until they enroll again.
pub fn check_terms(profiles: &EnrollmentProfiles) -> Result<store_terms::TermsDrift, RenewalError> {
    let current = match profiles.terms_now(None) {
        Ok(terms) => terms,
        Err(EnrollProfileError::NoPushCertificate) => return Ok(Default::default()),
        Err(error) => return Err(error.into()),
    };
    let drift = store_terms::drift(profiles.store().as_ref(), &current)?;
    for (field, devices) in &drift.by_field {
        let enrolled = drift.examples.get(field).cloned().unwrap_or_default();
        let now = match field {
            TermDrift::ServerUrl => current.server_url.clone(),
            TermDrift::CheckInUrl => current.check_in_url.clone(),
            TermDrift::Topic => current.topic.clone(),
            TermDrift::AccessRightsGrew => current.access_rights.to_string(),
            TermDrift::Capabilities => current.per_user_connections.to_string(),
        };
        tracing::warn!(field = field.field(), devices, enrolled = ?enrolled, now = %now,
            "devices enrolled with another {}: iOS refuses a renewal profile that changes it \
             (12012), so their renewal profiles keep the enrolled value and the devices keep \
             using it. Keep the enrolled URL served (and the push certificate of the enrolled \
             topic) until they are enrolled again, or re-enroll them \
             (GET /api/v1/identity-renewals shows each device's enrolled_with)",
            field.field());
    }
    if drift.unrecorded > 0 {
        tracing::info!(
            devices = drift.unrecorded,
            "devices enrolled before Baton recorded their enrollment terms: their renewal \
             profiles carry the current public URL, which they refuse (12012) if it changed \
             since they enrolled; such a refusal is reported as a failed renewal"
        );
    }
    Ok(drift)
}

/// Runs [`pass`] every `settings.renewal_check_every` (first pass right away) until `stop`;
/// [`check_terms`] once before.
pub async fn run(
    profiles: Arc<EnrollmentProfiles>,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    {
        let profiles = Arc::clone(&profiles);
        match tokio::task::spawn_blocking(move || check_terms(&profiles)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "checking the enrollment terms failed"),
            Err(error) => tracing::warn!(%error, "checking the enrollment terms failed"),
        }
    }
    let mut tick = tokio::time::interval(profiles.settings().renewal_check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let profiles = Arc::clone(&profiles);
        let services = Arc::clone(&state);
        let result =
            tokio::task::spawn_blocking(move || pass(&profiles, &services, SystemTime::now()))
                .await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(RenewalError::Profile(EnrollProfileError::NoPushCertificate))) => {
                tracing::debug!("identity renewal skipped: no push certificate");
            }
            Ok(Err(error)) => tracing::warn!(%error, "identity renewal pass failed"),
            Err(error) => tracing::warn!(%error, "identity renewal worker failed"),
        }
    }
}

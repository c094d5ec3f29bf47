//! Device identity renewal: devices whose identity certificate (issued by the built-in CA)
//! expires within the renewal window get an `InstallProfile` with a fresh enrollment profile
//! (same identifier, ServerURL and topic, a new one-time SCEP challenge). Installing it replaces
//! the MDM profile and gives the device a new identity.
//!
//! [`renew_expiring`] is one pass (synchronous, takes `now`); [`run`] calls it periodically. Each
//! expiring certificate is handled once: the collection `enrollment_renewals` (key = the
//! certificate's SHA-256) records the queued command, written in the same transaction as the
//! enqueue.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_proto::{Command, CommandRequest, CommandUuid, EnrollmentId};
use baton_store::{
    CasOutcome, Collection, Enqueue, KeyspaceBatch, NewCommand, Priority, StoreError, unix_millis,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::watch;

use super::profile_issuer::{EnrollProfileError, EnrollmentProfiles};
use super::registry::RegistryError;
use super::store_challenge::StoreChallengeStore;
use crate::state::AppState;

/// Used or expired one-time challenges are forgotten this long after their expiry.
pub const CHALLENGE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Collection remembering which certificates a renewal was queued for.
pub const RENEWALS_COLLECTION: &str = "enrollment_renewals";

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
}

/// What is remembered about a queued renewal.
#[derive(Debug, Serialize, Deserialize)]
struct RenewalRecord {
    enrollment_id: String,
    command_uuid: String,
    serial: u64,
    queued_at_ms: u64,
}

/// One queued renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedRenewal {
    /// The device channel.
    pub enrollment_id: EnrollmentId,
    /// The InstallProfile command.
    pub command_uuid: CommandUuid,
    /// Serial of the expiring certificate.
    pub serial: u64,
}

/// Queues a renewal profile to every enabled device channel whose identity certificate expires
/// before `now + window` and has no renewal queued yet.
pub fn renew_expiring(
    profiles: &EnrollmentProfiles,
    now: SystemTime,
) -> Result<Vec<QueuedRenewal>, RenewalError> {
    let store = profiles.store();
    let registry = profiles.scep().registry();
    let collection = Collection::new(RENEWALS_COLLECTION)?;
    let horizon = now + profiles.settings().renewal_window;
    let mut queued = Vec::new();
    for enrollment in store.enrollments()? {
        if enrollment.id.is_user_channel() || !enrollment.enabled {
            continue;
        }
        let Some(hash) = store.enrollment_cert(&enrollment.id)? else {
            continue;
        };
        let Some(record) = registry.by_sha256(&hash.0)? else {
            continue; // not issued by the built-in CA: nothing to renew here
        };
        if record.revoked_at.is_some() || record.not_after > horizon {
            continue;
        }
        if store.get(&collection, &hash.0)?.is_some() {
            continue;
        }
        let topic = enrollment.topic.as_ref().map(|t| t.as_str().to_owned());
        let profile = profiles.issue_renewal(&enrollment.id, topic, now)?;
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
        let remembered = serde_json::to_vec(&RenewalRecord {
            enrollment_id: enrollment.id.as_str().to_owned(),
            command_uuid: uuid.as_str().to_owned(),
            serial: record.serial,
            queued_at_ms: unix_millis(now),
        })
        .map_err(|e| RenewalError::Command(e.to_string()))?;
        let mut batch = KeyspaceBatch::new();
        batch
            .expect(&collection, &hash.0, None)
            .put(&collection, &hash.0, &remembered);
        let enqueue = Enqueue {
            command: new,
            to: vec![enrollment.id.clone()],
        };
        if store.apply_with_enqueue(&batch, &[enqueue], now)? == CasOutcome::Applied {
            tracing::info!(enrollment_id = %enrollment.id, command_uuid = %uuid,
                serial = record.serial, "identity expires soon: renewal profile queued");
            queued.push(QueuedRenewal {
                enrollment_id: enrollment.id,
                command_uuid: uuid,
                serial: record.serial,
            });
        }
    }
    Ok(queued)
}

/// Runs [`renew_expiring`] every `settings.renewal_check_every` (first pass right away) until
/// `stop`, pushing the devices that got a renewal, and forgets one-time challenges that expired
/// more than [`CHALLENGE_RETENTION`] ago.
pub async fn run(
    profiles: Arc<EnrollmentProfiles>,
    state: AppState,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(profiles.settings().renewal_check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let pass = Arc::clone(&profiles);
        let result = tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            match StoreChallengeStore::new(std::sync::Arc::clone(pass.store()))
                .map_err(RenewalError::from)
                .and_then(|c| Ok(c.purge(now, CHALLENGE_RETENTION)?))
            {
                Ok(0) => {}
                Ok(purged) => tracing::debug!(purged, "old SCEP challenges forgotten"),
                Err(error) => tracing::warn!(%error, "forgetting old SCEP challenges failed"),
            }
            renew_expiring(&pass, now)
        })
        .await;
        match result {
            Ok(Ok(queued)) if !queued.is_empty() => {
                let ids: Vec<EnrollmentId> = queued.into_iter().map(|q| q.enrollment_id).collect();
                state
                    .metrics
                    .add_queue_depth(i64::try_from(ids.len()).unwrap_or(i64::MAX));
                state.push.commands_enqueued(&ids);
            }
            Ok(Ok(_)) => {}
            Ok(Err(RenewalError::Profile(EnrollProfileError::NoPushCertificate))) => {
                tracing::debug!("identity renewal skipped: no push certificate");
            }
            Ok(Err(error)) => tracing::warn!(%error, "identity renewal pass failed"),
            Err(error) => tracing::warn!(%error, "identity renewal worker failed"),
        }
    }
}

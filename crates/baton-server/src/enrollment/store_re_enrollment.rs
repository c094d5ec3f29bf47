//! Per-device re-enrollment state in the store's keyspace (collection `re_enrollments`, key =
//! device id, JSON [`ReEnrollmentRecord`]): the operator's pending approval and the audit of
//! refused attempts (the last one in full, and how many there were). One small record per
//! enrolled device, however many attempts are refused.
//!
//! Every write is a compare-and-swap on the bytes read, so an approval is used exactly once.

use std::time::{Duration, SystemTime};

use baton_proto::EnrollmentId;
use baton_store::{CasOutcome, Collection, Store, StoreError, unix_millis};
use serde::{Deserialize, Serialize};

use super::re_enrollment::Refused;

/// Collection of re-enrollment records by device id.
pub const RE_ENROLLMENTS_COLLECTION: &str = "re_enrollments";
/// Longest approval window.
pub const MAX_APPROVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default approval window.
pub const DEFAULT_APPROVAL: Duration = Duration::from_secs(3600);
/// A refused attempt raises a webhook event at most this often per device.
pub const EVENT_INTERVAL: Duration = Duration::from_secs(60);
/// Compare-and-swap attempts before giving up.
const CAS_ATTEMPTS: usize = 16;

/// An operator's approval of one re-enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// When it was given, Unix milliseconds.
    pub approved_at_ms: u64,
    /// It is used by the first re-enrollment before this instant, Unix milliseconds.
    pub approved_until_ms: u64,
}

/// A refused Authenticate, as audited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Why.
    pub reason: Refused,
    /// SHA-256 of the refused certificate, hex.
    pub cert_sha256: String,
    /// Its serial at the built-in CA, when the built-in CA issued it.
    #[serde(default)]
    pub cert_serial: Option<u64>,
    /// The serial number the message reported.
    #[serde(default)]
    pub serial_number: Option<String>,
    /// The enrollment token the certificate was obtained with, if any.
    #[serde(default)]
    pub enrollment_token: Option<String>,
}

/// A device's re-enrollment state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReEnrollmentRecord {
    /// The pending approval, if any.
    #[serde(default)]
    pub approval: Option<Approval>,
    /// The last refused attempt.
    #[serde(default)]
    pub last_refusal: Option<Refusal>,
    /// Refused attempts so far.
    #[serde(default)]
    pub refusals: u64,
}

impl ReEnrollmentRecord {
    /// True when the approval is there and unexpired at `now_ms`.
    pub fn approved_at(&self, now_ms: u64) -> bool {
        self.approval
            .as_ref()
            .is_some_and(|a| now_ms < a.approved_until_ms)
    }
}

fn collection() -> Result<Collection, StoreError> {
    Collection::new(RE_ENROLLMENTS_COLLECTION)
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        tree: RE_ENROLLMENTS_COLLECTION,
        reason: e.to_string(),
    }
}

/// The device's record (a record that does not decode reads as empty).
pub fn get(store: &dyn Store, device: &EnrollmentId) -> Result<ReEnrollmentRecord, StoreError> {
    Ok(store
        .get(&collection()?, device.parent().as_str().as_bytes())?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

/// Applies `change` by compare-and-swap; returns the record written, or `None` when `change`
/// declined (returned false: nothing written).
fn update(
    store: &dyn Store,
    device: &EnrollmentId,
    mut change: impl FnMut(&mut ReEnrollmentRecord) -> bool,
) -> Result<Option<ReEnrollmentRecord>, StoreError> {
    let collection = collection()?;
    let key = device.parent();
    let key = key.as_str().as_bytes();
    for _ in 0..CAS_ATTEMPTS {
        let current = store.get(&collection, key)?;
        let mut record: ReEnrollmentRecord = current
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        if !change(&mut record) {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(&record).map_err(corrupt)?;
        if store.compare_and_swap(&collection, key, current.as_deref(), Some(&bytes))?
            == CasOutcome::Applied
        {
            return Ok(Some(record));
        }
    }
    Err(corrupt("kept changing"))
}

/// Approves one re-enrollment of `device` until `now + window`.
pub fn approve(
    store: &dyn Store,
    device: &EnrollmentId,
    window: Duration,
    now: SystemTime,
) -> Result<Approval, StoreError> {
    let approval = Approval {
        approved_at_ms: unix_millis(now),
        approved_until_ms: unix_millis(now + window),
    };
    update(store, device, |r| {
        r.approval = Some(approval.clone());
        true
    })?;
    Ok(approval)
}

/// Withdraws a pending approval; true when there was one.
pub fn withdraw(store: &dyn Store, device: &EnrollmentId) -> Result<bool, StoreError> {
    Ok(update(store, device, |r| r.approval.take().is_some())?.is_some())
}

/// Uses the pending approval of `device` at `now`: true when it was there and unexpired (it is
/// gone afterwards; an expired one is dropped too).
pub fn take_approval(
    store: &dyn Store,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<bool, StoreError> {
    let now_ms = unix_millis(now);
    let mut valid = false;
    update(store, device, |r| {
        valid = r.approved_at(now_ms);
        r.approval.take().is_some()
    })?;
    Ok(valid)
}

/// Records a refused attempt; returns the record and whether a webhook event is due (the
/// previous refusal was more than [`EVENT_INTERVAL`] ago, or there was none).
pub fn record_refusal(
    store: &dyn Store,
    device: &EnrollmentId,
    refusal: Refusal,
) -> Result<(ReEnrollmentRecord, bool), StoreError> {
    let mut due = false;
    let record = update(store, device, |r| {
        due = r.last_refusal.as_ref().is_none_or(|last| {
            refusal.at_ms.saturating_sub(last.at_ms) >= EVENT_INTERVAL.as_millis() as u64
        });
        r.last_refusal = Some(refusal.clone());
        r.refusals = r.refusals.saturating_add(1);
        true
    })?
    .unwrap_or_default();
    Ok((record, due))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_store::{SledConfig, SledStore};

    use super::*;

    fn refusal(at_ms: u64) -> Refusal {
        Refusal {
            at_ms,
            reason: Refused::ActiveBinding,
            cert_sha256: "ab".repeat(32),
            cert_serial: Some(7),
            serial_number: Some("SN1".into()),
            enrollment_token: None,
        }
    }

    #[test]
    fn an_approval_is_used_once_and_expires() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open_with(&SledConfig::new(dir.path())).unwrap());
        let device = EnrollmentId::device("UDID-1").unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(!take_approval(store.as_ref(), &device, t0).unwrap());
        approve(store.as_ref(), &device, Duration::from_secs(60), t0).unwrap();
        assert!(take_approval(store.as_ref(), &device, t0 + Duration::from_secs(59)).unwrap());
        assert!(!take_approval(store.as_ref(), &device, t0 + Duration::from_secs(59)).unwrap());
        approve(store.as_ref(), &device, Duration::from_secs(60), t0).unwrap();
        assert!(!take_approval(store.as_ref(), &device, t0 + Duration::from_secs(60)).unwrap());
        assert!(get(store.as_ref(), &device).unwrap().approval.is_none());
        approve(store.as_ref(), &device, Duration::from_secs(60), t0).unwrap();
        assert!(withdraw(store.as_ref(), &device).unwrap());
        assert!(!withdraw(store.as_ref(), &device).unwrap());
    }

    #[test]
    fn refusals_are_counted_and_events_throttled() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SledStore::open_with(&SledConfig::new(dir.path())).unwrap());
        let device = EnrollmentId::device("UDID-1").unwrap();
        let (_, due) = record_refusal(store.as_ref(), &device, refusal(1_000)).unwrap();
        assert!(due);
        let (_, due) = record_refusal(store.as_ref(), &device, refusal(30_000)).unwrap();
        assert!(!due, "within a minute of the last one");
        let (record, due) = record_refusal(store.as_ref(), &device, refusal(91_000)).unwrap();
        assert!(due);
        assert_eq!(record.refusals, 3);
        assert_eq!(record.last_refusal.unwrap().at_ms, 91_000);
    }
}

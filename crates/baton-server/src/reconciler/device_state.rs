//! What the reconciler remembers per device, as JSON in the keyspace: the [`Observed`]
//! inventory ([`OBSERVED_COLLECTION`], by device id), the intents of queued, unanswered
//! commands ([`IN_FLIGHT_COLLECTION`], by `device|command uuid`) and item failure records
//! ([`FAILURES_COLLECTION`], by `device|item`).

use std::collections::BTreeMap;

use baton_assign::{Intent, ItemFailures, ItemId, Observed, UnixTime};
use baton_proto::{CommandUuid, EnrollmentId};
use baton_store::Keyspace;
use serde::{Deserialize, Serialize};

use crate::catalog::assignment_config::{RecordError, read_json, scan_json};

/// Keyspace collection: device id -> [`Observed`].
pub const OBSERVED_COLLECTION: &str = "observed";
/// Keyspace collection: `device|uuid` -> [`InFlight`].
pub const IN_FLIGHT_COLLECTION: &str = "in_flight";
/// Keyspace collection: `device|item` -> [`ItemFailures`].
pub const FAILURES_COLLECTION: &str = "item_failures";

/// A command the reconciler queued and the device has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum InFlight {
    /// A planned intent.
    Intent {
        /// The intent.
        intent: Intent,
    },
    /// An inventory query (ProfileList, ManagedApplicationList).
    Inventory {
        /// The RequestType.
        request_type: String,
        /// True for the lists of a hand-off round (after a sign-out), whose answers decide
        /// whether the hand-off is clean ([`super::hand_off`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        hand_off: bool,
    },
}

/// An item failure record as stored: [`ItemFailures`] (the same JSON fields) plus why the last
/// attempt failed, for the operator and the portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Failed attempts.
    pub attempts: u32,
    /// When the last attempt failed.
    pub last_failure: UnixTime,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The device's item failure records with their reasons.
pub fn failure_records(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<BTreeMap<String, FailureRecord>, RecordError> {
    let prefix = key(device, "");
    Ok(
        scan_json::<FailureRecord>(store, FAILURES_COLLECTION, &prefix)?
            .into_iter()
            .filter_map(|(k, f)| Some((k.strip_prefix(&prefix)?.to_owned(), f)))
            .collect(),
    )
}

/// `device|suffix`.
pub fn key(device: &EnrollmentId, suffix: &str) -> String {
    format!("{}|{suffix}", device.as_str())
}

/// The in-flight key of a command.
pub fn in_flight_key(device: &EnrollmentId, uuid: &CommandUuid) -> String {
    key(device, uuid.as_str())
}

/// The observed inventory of a device (empty when nothing is known).
pub fn observed(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Observed, RecordError> {
    Ok(read_json(store, OBSERVED_COLLECTION, device.as_str())?.unwrap_or_default())
}

/// The intents of the device's queued, unanswered commands.
pub fn in_flight(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Vec<Intent>, RecordError> {
    Ok(
        scan_json::<InFlight>(store, IN_FLIGHT_COLLECTION, &key(device, ""))?
            .into_iter()
            .filter_map(|(_, f)| match f {
                InFlight::Intent { intent } => Some(intent),
                InFlight::Inventory { .. } => None,
            })
            .collect(),
    )
}

/// True when an inventory query of `request_type` is queued and unanswered for the device.
pub fn inventory_in_flight(
    store: &dyn Keyspace,
    device: &EnrollmentId,
    request_type: &str,
) -> Result<bool, RecordError> {
    Ok(
        scan_json::<InFlight>(store, IN_FLIGHT_COLLECTION, &key(device, ""))?
            .into_iter()
            .any(
                |(_, f)| matches!(f, InFlight::Inventory { request_type: t, .. } if t == request_type),
            ),
    )
}

/// Every in-flight key of a device.
pub fn in_flight_keys(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Vec<String>, RecordError> {
    Ok(
        scan_json::<InFlight>(store, IN_FLIGHT_COLLECTION, &key(device, ""))?
            .into_iter()
            .map(|(k, _)| k)
            .collect(),
    )
}

/// The device's item failure records.
pub fn failures(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<BTreeMap<ItemId, ItemFailures>, RecordError> {
    let prefix = key(device, "");
    let mut out = BTreeMap::new();
    for (k, f) in scan_json::<ItemFailures>(store, FAILURES_COLLECTION, &prefix)? {
        if let Some(item) = k.strip_prefix(&prefix).and_then(|s| ItemId::new(s).ok()) {
            out.insert(item, f);
        }
    }
    Ok(out)
}

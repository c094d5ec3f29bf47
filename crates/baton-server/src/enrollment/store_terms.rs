//! The terms each device enrolled with ([`EnrollmentTerms`]) on the store's keyspace:
//! collection `enrollment_terms`, key = the device channel's id, value = JSON. Written at
//! Authenticate when the device installed a profile this server issued then (a new enrollment or
//! re-enrollment; not a renewal, which keeps them); read by the renewal pass, the admin views
//! and the start-up check.

use std::collections::BTreeMap;

use baton_proto::EnrollmentId;
use baton_store::{Collection, Store, StoreError};

use super::enrollment_terms::{EnrollmentTerms, TermDrift};

/// Collection of enrollment terms.
pub const TERMS_COLLECTION: &str = "enrollment_terms";

fn collection() -> Result<Collection, StoreError> {
    Collection::new(TERMS_COLLECTION)
}

/// The terms `device` enrolled with (none: enrolled before Baton recorded them, or never).
pub fn get(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<Option<EnrollmentTerms>, StoreError> {
    let key = device.parent();
    Ok(store
        .get(&collection()?, key.as_str().as_bytes())?
        .and_then(|raw| serde_json::from_slice(&raw).ok()))
}

/// Records the terms `device` enrolled with.
pub fn put(
    store: &dyn Store,
    device: &EnrollmentId,
    terms: &EnrollmentTerms,
) -> Result<(), StoreError> {
    let key = device.parent();
    let value = serde_json::to_vec(terms).map_err(|e| StoreError::Corrupt {
        tree: TERMS_COLLECTION,
        reason: format!("encoding enrollment terms: {e}"),
    })?;
    store.put(&collection()?, key.as_str().as_bytes(), &value)
}

/// How the enabled devices' terms compare with what the server issues now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermsDrift {
    /// Devices per changed field (a device counts once per field).
    pub by_field: BTreeMap<TermDrift, u64>,
    /// Examples of enrolled values that differ (field, value), at most a few per field.
    pub examples: BTreeMap<TermDrift, Vec<String>>,
    /// Enabled devices without recorded terms (enrolled before Baton recorded them).
    pub unrecorded: u64,
    /// Enabled devices looked at.
    pub devices: u64,
}

/// Compares every enabled device channel's terms with `current`.
pub fn drift(store: &dyn Store, current: &EnrollmentTerms) -> Result<TermsDrift, StoreError> {
    let mut out = TermsDrift::default();
    let terms = collection()?;
    for enrollment in store.enrollments()? {
        if enrollment.id.is_user_channel() || !enrollment.enabled {
            continue;
        }
        out.devices += 1;
        let Some(raw) = store.get(&terms, enrollment.id.as_str().as_bytes())? else {
            out.unrecorded += 1;
            continue;
        };
        let Ok(enrolled) = serde_json::from_slice::<EnrollmentTerms>(&raw) else {
            out.unrecorded += 1;
            continue;
        };
        for field in enrolled.drift(current) {
            *out.by_field.entry(field).or_default() += 1;
            let value = match field {
                TermDrift::ServerUrl => enrolled.server_url.clone(),
                TermDrift::CheckInUrl => enrolled.check_in_url.clone(),
                TermDrift::Topic => enrolled.topic.clone(),
                TermDrift::AccessRightsGrew => enrolled.access_rights.to_string(),
                TermDrift::Capabilities => enrolled.per_user_connections.to_string(),
            };
            let examples = out.examples.entry(field).or_default();
            if examples.len() < 3 && !examples.contains(&value) {
                examples.push(value);
            }
        }
    }
    Ok(out)
}

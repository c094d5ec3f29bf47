//! Invalid push tokens: when APNs answers that a token is dead (410, BadDeviceToken,
//! Unregistered), the channel is marked in keyspace collection
//! [`INVALID_PUSH_TOKEN_COLLECTION`] (key: the channel id; value: a small JSON note with the
//! reason and time) and no push goes to it until a TokenUpdate clears the mark.

use std::time::SystemTime;

use baton_proto::EnrollmentId;
use baton_store::{Collection, Store, StoreResult};

pub use crate::admin::devices::INVALID_PUSH_TOKEN_COLLECTION;
use crate::timestamp::rfc3339;

fn collection() -> StoreResult<Collection> {
    Collection::new(INVALID_PUSH_TOKEN_COLLECTION)
}

/// Marks the channel's push token invalid, noting APNs' `status` and `reason`.
pub fn mark(
    store: &dyn Store,
    id: &EnrollmentId,
    status: u16,
    reason: Option<&str>,
    now: SystemTime,
) -> StoreResult<()> {
    let note = serde_json::json!({
        "status": status,
        "reason": reason,
        "marked_at": rfc3339(now),
    });
    store.put(
        &collection()?,
        id.as_str().as_bytes(),
        note.to_string().as_bytes(),
    )
}

/// True when the channel's push token is marked invalid.
pub fn is_marked(store: &dyn Store, id: &EnrollmentId) -> StoreResult<bool> {
    Ok(store.get(&collection()?, id.as_str().as_bytes())?.is_some())
}

/// Clears the mark (a TokenUpdate brought a token to try again); true when there was one.
pub fn clear(store: &dyn Store, id: &EnrollmentId) -> StoreResult<bool> {
    store.delete(&collection()?, id.as_str().as_bytes())
}

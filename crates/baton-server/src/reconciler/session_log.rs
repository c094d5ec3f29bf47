//! The per-device session log: who signed in, when and how, when and how the session ended,
//! and whether the hand-off was clean (the device's inventory after sign-out showed none of the
//! person's items). Keyspace collection [`SESSIONS_COLLECTION`], key `device|start millis`.

use baton_proto::EnrollmentId;
use baton_store::{Keyspace, KeyspaceBatch};
use serde::{Deserialize, Serialize};

use super::device_state::key;
use crate::catalog::assignment_config::{
    RecordError, collection, decode, decode_entry, encode, scan_json,
};

/// Keyspace collection of sessions.
pub const SESSIONS_COLLECTION: &str = "sessions";

/// One session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub username: String,
    /// Start, Unix milliseconds.
    pub started_at: u64,
    /// How it started (`admin`, `portal`).
    pub how: String,
    /// End, Unix milliseconds.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// How it ended (`admin`, `portal`, `expired`, `re_enrolled`).
    #[serde(default)]
    pub ended_how: Option<String>,
    /// After sign-out: true once the device's lists matched the nobody state exactly (proven,
    /// see [`super::hand_off`]); false while something remains; none before the device
    /// answered.
    #[serde(default)]
    pub clean_hand_off: Option<bool>,
    /// When not clean: what the latest check found left.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hand_off_remaining: Vec<super::hand_off::Remaining>,
    /// When the device first had every item of the person installed, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<u64>,
}

/// The sessions of a device, oldest first, with their keys.
pub fn sessions(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Vec<(String, Session)>, RecordError> {
    scan_json(store, SESSIONS_COLLECTION, &key(device, ""))
}

/// The device's newest session (open or ended), with its key: one read, however long the
/// device's history.
pub fn latest(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Option<(String, Session)>, RecordError> {
    store
        .last_with_prefix(
            &collection(SESSIONS_COLLECTION)?,
            key(device, "").as_bytes(),
        )?
        .map(|(k, v)| decode_entry(SESSIONS_COLLECTION, &k, &v))
        .transpose()
}

/// Adds the start of a session to `batch`.
pub fn start(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    session: &Session,
) -> Result<(), RecordError> {
    batch.put(
        &collection(SESSIONS_COLLECTION)?,
        key(device, &format!("{:020}", session.started_at)).as_bytes(),
        &encode(session)?,
    );
    Ok(())
}

/// Adds to `batch` the end of the device's open session, if any.
pub fn end(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    how: &str,
    now_ms: u64,
) -> Result<(), RecordError> {
    if let Some((k, mut s)) = latest(store, device)?
        && s.ended_at.is_none()
    {
        s.ended_at = Some(now_ms);
        s.ended_how = Some(how.to_owned());
        batch.put(
            &collection(SESSIONS_COLLECTION)?,
            k.as_bytes(),
            &encode(&s)?,
        );
    }
    Ok(())
}

/// The device's open session (not ended), with its key.
pub fn open_session(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Option<(String, Session)>, RecordError> {
    Ok(latest(store, device)?.filter(|(_, s)| s.ended_at.is_none()))
}

/// Records `now_ms` as the ready time of the open session, unless it has one. True when
/// recorded.
pub fn record_ready(
    store: &dyn Keyspace,
    device: &EnrollmentId,
    now_ms: u64,
) -> Result<bool, RecordError> {
    if let Some((k, mut s)) = open_session(store, device)?
        && s.ready_at.is_none()
    {
        s.ready_at = Some(now_ms);
        store.put(
            &collection(SESSIONS_COLLECTION)?,
            k.as_bytes(),
            &encode(&s)?,
        )?;
        return Ok(true);
    }
    Ok(false)
}

/// Adds to `batch` the hand-off result of the session stored under `key` (a round of its
/// hand-off ended): clean, or what remains.
pub fn record_hand_off_at(
    store: &dyn Keyspace,
    batch: &mut KeyspaceBatch,
    key: &str,
    clean: bool,
    remaining: &[super::hand_off::Remaining],
) -> Result<(), RecordError> {
    let sessions = collection(SESSIONS_COLLECTION)?;
    let Some(bytes) = store.get(&sessions, key.as_bytes())? else {
        return Ok(());
    };
    let mut s: Session = decode(SESSIONS_COLLECTION, &bytes)?;
    s.clean_hand_off = Some(clean);
    s.hand_off_remaining = remaining.to_vec();
    batch.put(&sessions, key.as_bytes(), &encode(&s)?);
    Ok(())
}

/// Retention: deletes every ended session that ended before `before_ms`, walking the log
/// `page` entries at a time (one read and at most one batch of deletes per page). Open
/// sessions are never deleted; an unreadable entry is left for an operator to look at.
/// Returns how many were deleted.
pub fn prune(store: &dyn Keyspace, before_ms: u64, page: usize) -> Result<usize, RecordError> {
    let sessions = collection(SESSIONS_COLLECTION)?;
    let page = page.max(1);
    let mut removed = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let entries = store.scan_page(&sessions, after.as_deref(), page)?;
        let mut batch = KeyspaceBatch::new();
        let mut n = 0;
        for (k, v) in &entries {
            let Ok(s) = decode::<Session>(SESSIONS_COLLECTION, v) else {
                continue;
            };
            if s.ended_at.is_some_and(|end| end < before_ms) {
                batch.delete(&sessions, k);
                n += 1;
            }
        }
        if n > 0 {
            store.apply(&batch)?;
            removed += n;
        }
        if entries.len() < page {
            return Ok(removed);
        }
        after = entries.last().map(|(k, _)| k.clone());
    }
}

//! The "Stay signed in?" prompt's pending state: shown after a successful portal sign-in when
//! the session rules allow a persistent session, and kept in the keyspace (collection
//! [`PROMPTS_COLLECTION`], key = device enrollment id) until the person answers or the prompt
//! times out. An unanswered prompt becomes an `interrupted` sign-in log entry; the sign-in
//! itself already happened (leased, non-persistent), so an abandoned prompt never leaves a
//! persistent session behind.

use baton_proto::EnrollmentId;
use baton_store::{Keyspace, KeyspaceBatch};
use serde::{Deserialize, Serialize};

use crate::catalog::assignment_config::{RecordError, collection, encode, read_json, scan_json};

/// Keyspace collection of pending prompts.
pub const PROMPTS_COLLECTION: &str = "stay_prompts";

/// A prompt shown and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingPrompt {
    /// Who signed in.
    pub username: String,
    /// When the prompt was shown, Unix milliseconds.
    pub shown_at_ms: u64,
    /// Where the sign-in came from.
    #[serde(default)]
    pub source_address: Option<String>,
    /// Risk reasons of the sign-in (empty: low risk, which a prompt requires).
    #[serde(default)]
    pub risk_reasons: Vec<String>,
    /// No longer written (older records may have it): only the browser holding the portal
    /// cookie of the session, whose value is the session's secret
    /// ([`crate::reconciler::portal_session`]), can answer the prompt.
    #[serde(default)]
    pub cookie_sha256: Option<String>,
}

/// Adds `prompt` for `device` to `batch` (replacing any older one).
pub fn put(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    prompt: &PendingPrompt,
) -> Result<(), RecordError> {
    batch.put(
        &collection(PROMPTS_COLLECTION)?,
        device.as_str().as_bytes(),
        &encode(prompt)?,
    );
    Ok(())
}

/// Adds the deletion of `device`'s prompt to `batch`.
pub fn delete(batch: &mut KeyspaceBatch, device: &EnrollmentId) -> Result<(), RecordError> {
    batch.delete(&collection(PROMPTS_COLLECTION)?, device.as_str().as_bytes());
    Ok(())
}

/// The pending prompt of `device`.
pub fn get(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Option<PendingPrompt>, RecordError> {
    read_json(store, PROMPTS_COLLECTION, device.as_str())
}

/// True when a prompt shown at `shown_at_ms` is still answerable at `now_ms`.
pub fn is_open(prompt: &PendingPrompt, now_ms: u64, timeout_ms: u64) -> bool {
    now_ms.saturating_sub(prompt.shown_at_ms) < timeout_ms
}

/// Every pending prompt older than `timeout_ms` at `now_ms`, with its device key.
pub fn timed_out(
    store: &dyn Keyspace,
    now_ms: u64,
    timeout_ms: u64,
) -> Result<Vec<(String, PendingPrompt)>, RecordError> {
    Ok(scan_json::<PendingPrompt>(store, PROMPTS_COLLECTION, "")?
        .into_iter()
        .filter(|(_, p)| !is_open(p, now_ms, timeout_ms))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_store::{SledConfig, SledStore};

    fn prompt(at: u64) -> PendingPrompt {
        PendingPrompt {
            username: "alice".into(),
            shown_at_ms: at,
            source_address: Some("10.0.0.7".into()),
            risk_reasons: vec![],
            cookie_sha256: None,
        }
    }

    #[test]
    fn prompts_time_out_and_are_listed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open_with(&SledConfig::new(dir.path())).unwrap();
        let a = EnrollmentId::device("DEVICE-A").unwrap();
        let b = EnrollmentId::device("DEVICE-B").unwrap();
        let mut batch = KeyspaceBatch::new();
        put(&mut batch, &a, &prompt(1_000)).unwrap();
        put(&mut batch, &b, &prompt(200_000)).unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(get(&store, &a).unwrap(), Some(prompt(1_000)));
        let stale = timed_out(&store, 301_000, 300_000).unwrap();
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].0, "DEVICE-A");
        assert!(is_open(&prompt(200_000), 301_000, 300_000));
        assert!(!is_open(&prompt(1_000), 301_000, 300_000));
        let mut batch = KeyspaceBatch::new();
        delete(&mut batch, &a).unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(get(&store, &a).unwrap(), None);
        assert!(timed_out(&store, 301_000, 300_000).unwrap().is_empty());
    }
}

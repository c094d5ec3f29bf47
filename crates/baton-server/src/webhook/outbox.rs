//! The durable webhook outbox: events keyed by a monotonically increasing 8-byte big-endian
//! sequence in a keyspace collection, so a scan returns them oldest first. [`EventSink`] is what
//! the device handlers call; it writes nothing when no webhook is configured.
//!
//! The outbox is only ever read a page at a time ([`Outbox::oldest`]), and its size is counted
//! at open and then kept in a counter, so a large backlog (a receiver down for days) costs disk,
//! not memory. Events the receiver refuses for good move to the dead-letter list
//! ([`super::dead_letter`]) in one atomic batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::SystemTime;

use baton_store::{Collection, KeyspaceBatch, Store, StoreError, StoreResult, unix_millis};
use tokio::sync::Notify;

use super::dead_letter::{DEAD_LETTER_COLLECTION, DeadLetter, DeadLetterHeader};
use super::event::{EventPayload, WebhookEvent};
use crate::metrics::Metrics;
use baton_proto::EnrollmentId;

/// The keyspace collection holding undelivered events.
pub const OUTBOX_COLLECTION: &str = "webhook_outbox";

/// The outbox over a store.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    collection: Collection,
    dead: Collection,
    next_seq: Arc<AtomicU64>,
    notify: Arc<Notify>,
    pending: Arc<AtomicI64>,
    dead_letters: Arc<AtomicI64>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("next_seq", &self.next_seq.load(Ordering::Relaxed))
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("dead_letters", &self.dead_letters.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The key of a sequence number.
fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The sequence number of a key (0 for a malformed one).
fn key_seq(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key).map_or(0, u64::from_be_bytes)
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Outbox {
    /// Opens the outbox; the next sequence number is past every stored event (dead letters
    /// included) and past the current time in microseconds (so it also grows across restarts
    /// with an empty outbox). Reads one entry of each collection and counts them; loads none.
    pub fn open(store: Arc<dyn Store>, now: SystemTime) -> StoreResult<Self> {
        let collection = Collection::new(OUTBOX_COLLECTION)?;
        let dead = Collection::new(DEAD_LETTER_COLLECTION)?;
        let mut last = 0;
        for c in [&collection, &dead] {
            if let Some((k, _)) = store.last_with_prefix(c, &[])? {
                last = last.max(key_seq(&k));
            }
        }
        let start = last
            .saturating_add(1)
            .max(unix_millis(now).saturating_mul(1000));
        let pending = gauge(store.count(&collection)?);
        let dead_letters = gauge(store.count(&dead)?);
        Ok(Self {
            store,
            collection,
            dead,
            next_seq: Arc::new(AtomicU64::new(start)),
            notify: Arc::new(Notify::new()),
            pending: Arc::new(AtomicI64::new(pending)),
            dead_letters: Arc::new(AtomicI64::new(dead_letters)),
            metrics: None,
        })
    }

    /// Keeps `metrics` (pending and dead-letter gauges, truncation counter) in step with the
    /// outbox from now on.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self.publish_gauges();
        self
    }

    fn publish_gauges(&self) {
        if let Some(m) = &self.metrics {
            m.set_webhook_pending(self.pending.load(Ordering::Relaxed));
            m.set_webhook_dead_letters(self.dead_letters.load(Ordering::Relaxed));
        }
    }

    fn adjust(&self, pending: i64, dead: i64) {
        self.pending.fetch_add(pending, Ordering::Relaxed);
        self.dead_letters.fetch_add(dead, Ordering::Relaxed);
        self.publish_gauges();
    }

    /// Appends an event durably (cut to [`super::event::MAX_EVENT_BYTES`] when larger) and
    /// wakes the delivery task.
    pub fn append(&self, event: &WebhookEvent) -> StoreResult<()> {
        let (body, truncated) = event.to_bounded_json().map_err(|e| StoreError::Encode {
            what: "webhook event",
            reason: e.to_string(),
        })?;
        if truncated {
            tracing::warn!(event_id = %event.id, kind = event.payload.kind(),
                "webhook event cut to the size bound");
            if let Some(m) = &self.metrics {
                m.webhook_truncated();
            }
        }
        self.append_body(&body)
    }

    fn append_body(&self, body: &[u8]) -> StoreResult<()> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.store.put(&self.collection, &seq_key(seq), body)?;
        self.adjust(1, 0);
        self.notify.notify_one();
        Ok(())
    }

    /// Up to `max` of the oldest events: (key, exact JSON body). Reads only those.
    pub fn oldest(&self, max: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.store.scan_page(&self.collection, None, max)
    }

    /// Number of events waiting (counted at open, then kept up to date).
    pub fn len(&self) -> usize {
        usize::try_from(self.pending.load(Ordering::Relaxed).max(0)).unwrap_or(usize::MAX)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of dead letters (counted at open, then kept up to date).
    pub fn dead_letter_count(&self) -> usize {
        usize::try_from(self.dead_letters.load(Ordering::Relaxed).max(0)).unwrap_or(usize::MAX)
    }

    /// Removes a delivered event.
    pub fn remove(&self, key: &[u8]) -> StoreResult<()> {
        if self.store.delete(&self.collection, key)? {
            self.adjust(-1, 0);
        }
        Ok(())
    }

    /// Moves an event from the outbox to the dead-letter list (one atomic batch; nothing
    /// happens when the event is no longer in the outbox).
    pub fn dead_letter(&self, key: &[u8], header: &DeadLetterHeader) -> StoreResult<bool> {
        let Some(body) = self.store.get(&self.collection, key)? else {
            return Ok(false);
        };
        let mut batch = KeyspaceBatch::new();
        batch
            .expect(&self.collection, key, Some(&body))
            .delete(&self.collection, key)
            .put(&self.dead, key, &DeadLetter::encode(header, &body));
        let moved = self.store.apply(&batch)? == baton_store::CasOutcome::Applied;
        if moved {
            self.adjust(-1, 1);
            if let Some(m) = &self.metrics {
                m.webhook_dead_lettered();
            }
        }
        Ok(moved)
    }

    /// Up to `limit` dead letters with ids greater than `after`, oldest first.
    pub fn dead_letters(&self, after: Option<u64>, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let after = after.map(seq_key);
        let page =
            self.store
                .scan_page(&self.dead, after.as_ref().map(<[u8; 8]>::as_slice), limit)?;
        Ok(page
            .iter()
            .filter_map(|(k, v)| {
                let d = DeadLetter::decode(k, v);
                if d.is_none() {
                    tracing::warn!(key = ?k, "skipping an unreadable webhook dead letter");
                }
                d
            })
            .collect())
    }

    /// Puts a dead letter back at the end of the outbox (the same body, a new sequence number)
    /// and wakes the delivery task. False when there is no such dead letter.
    pub fn retry_dead_letter(&self, id: u64) -> StoreResult<bool> {
        let key = seq_key(id);
        let Some(stored) = self.store.get(&self.dead, &key)? else {
            return Ok(false);
        };
        let Some(letter) = DeadLetter::decode(&key, &stored) else {
            return Err(StoreError::Corrupt {
                tree: "ks/webhook_dead_letters",
                reason: format!("dead letter {id} does not decode"),
            });
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut batch = KeyspaceBatch::new();
        batch
            .expect(&self.dead, &key, Some(&stored))
            .delete(&self.dead, &key)
            .put(&self.collection, &seq_key(seq), &letter.body);
        if self.store.apply(&batch)? != baton_store::CasOutcome::Applied {
            return Ok(false); // retried or discarded concurrently
        }
        self.adjust(1, -1);
        self.notify.notify_one();
        Ok(true)
    }

    /// Deletes a dead letter; false when there is none.
    pub fn discard_dead_letter(&self, id: u64) -> StoreResult<bool> {
        let removed = self.store.delete(&self.dead, &seq_key(id))?;
        if removed {
            self.adjust(0, -1);
        }
        Ok(removed)
    }

    /// Deletes up to `max` dead letters that failed before `before_ms` (retention), reading
    /// `max` at a time. Returns how many were deleted and whether the whole list was looked at.
    pub fn prune_dead_letters(&self, before_ms: u64, max: usize) -> StoreResult<(usize, bool)> {
        let mut removed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.store.scan_page(&self.dead, after.as_deref(), max)?;
            let mut batch = KeyspaceBatch::new();
            let mut n = 0;
            for (k, v) in &page {
                let old =
                    DeadLetter::decode(k, v).is_none_or(|d| d.header.failed_at_ms < before_ms);
                if old {
                    batch.delete(&self.dead, k);
                    n += 1;
                }
            }
            if n > 0 {
                self.store.apply(&batch)?;
                removed += n;
                self.adjust(0, -i64::try_from(n).unwrap_or(i64::MAX));
            }
            if page.len() < max || removed >= max {
                return Ok((removed, page.len() < max));
            }
            after = page.last().map(|(k, _)| k.clone());
        }
    }

    /// Woken on every append.
    pub fn notified(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

/// Where handlers record events: an [`Outbox`] when a webhook is configured, nothing otherwise.
///
/// Every sign-in log entry passes through it ([`crate::sign_in_log::publish`]), so it also
/// keeps their counts for `/metrics`, with or without a webhook.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    outbox: Option<Outbox>,
    sign_ins: std::sync::Arc<crate::sign_in_log::SignInCounters>,
}

impl EventSink {
    /// A sink that drops every event (no webhook configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// A sink writing to `outbox`.
    pub fn to_outbox(outbox: Outbox) -> Self {
        Self {
            outbox: Some(outbox),
            sign_ins: Default::default(),
        }
    }

    /// Sign-in log entries counted since start.
    pub fn sign_ins(&self) -> &crate::sign_in_log::SignInCounters {
        &self.sign_ins
    }

    /// The outbox, when a webhook is configured.
    pub fn outbox(&self) -> Option<&Outbox> {
        self.outbox.as_ref()
    }

    /// True when events are recorded.
    pub fn is_enabled(&self) -> bool {
        self.outbox.is_some()
    }

    /// Records an event. A failure is logged, not returned: the device's request already
    /// succeeded and must not be answered with an error because of the webhook.
    pub fn record(&self, enrollment_id: &EnrollmentId, payload: EventPayload, now: SystemTime) {
        let Some(outbox) = &self.outbox else {
            return;
        };
        let event = WebhookEvent::new(enrollment_id.clone(), payload, now);
        if let Err(error) = outbox.append(&event) {
            tracing::error!(%error, enrollment_id = %enrollment_id, event_id = %event.id,
                "could not write a webhook event to the outbox");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_store::SledStore;

    #[test]
    fn events_come_out_oldest_first_and_leave_when_removed() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let outbox = Outbox::open(Arc::clone(&store), SystemTime::now()).unwrap();
        let sink = EventSink::to_outbox(outbox.clone());
        let id = EnrollmentId::device("UDID-1").unwrap();
        for t in ["Authenticate", "TokenUpdate", "CheckOut"] {
            sink.record(
                &id,
                EventPayload::Checkin {
                    message_type: t.into(),
                    first_token_update: None,
                },
                SystemTime::now(),
            );
        }
        let batch = outbox.oldest(10).unwrap();
        assert_eq!(batch.len(), 3);
        let first: WebhookEvent = serde_json::from_slice(&batch[0].1).unwrap();
        assert!(
            matches!(first.payload, EventPayload::Checkin { ref message_type, .. } if message_type == "Authenticate")
        );
        outbox.remove(&batch[0].0).unwrap();
        assert_eq!(outbox.len(), 2);
        // A reopened outbox continues after the stored events.
        let reopened = Outbox::open(Arc::clone(&store), SystemTime::UNIX_EPOCH).unwrap();
        EventSink::to_outbox(reopened.clone()).record(
            &id,
            EventPayload::Checkin {
                message_type: "Later".into(),
                first_token_update: None,
            },
            SystemTime::now(),
        );
        let batch = reopened.oldest(10).unwrap();
        let last: WebhookEvent = serde_json::from_slice(&batch[2].1).unwrap();
        assert!(
            matches!(last.payload, EventPayload::Checkin { ref message_type, .. } if message_type == "Later")
        );
    }

    fn checkin(outbox: &Outbox, n: usize) {
        let sink = EventSink::to_outbox(outbox.clone());
        let id = EnrollmentId::device("UDID-1").unwrap();
        for i in 0..n {
            sink.record(
                &id,
                EventPayload::Checkin {
                    message_type: format!("M{i}"),
                    first_token_update: None,
                },
                SystemTime::now(),
            );
        }
    }

    /// A backlog is read a page at a time and counted, never loaded whole: after a restart
    /// the pending count is the true one, pages come oldest first without overlap, and the
    /// metric follows every change.
    #[test]
    fn a_large_backlog_is_read_in_pages_and_counted_across_a_restart() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let outbox = Outbox::open(Arc::clone(&store), SystemTime::now()).unwrap();
        checkin(&outbox, 2_000);
        assert_eq!(outbox.len(), 2_000);
        // "Restart": a new outbox over the same store.
        let metrics = Arc::new(Metrics::default());
        let reopened = Outbox::open(Arc::clone(&store), SystemTime::UNIX_EPOCH)
            .unwrap()
            .with_metrics(Arc::clone(&metrics));
        assert_eq!(reopened.len(), 2_000);
        assert_eq!(metrics.webhook_pending(), 2_000);
        let page = reopened.oldest(64).unwrap();
        assert_eq!(page.len(), 64, "one page, not the whole outbox");
        let first: WebhookEvent = serde_json::from_slice(&page[0].1).unwrap();
        assert!(
            matches!(first.payload, EventPayload::Checkin { ref message_type, .. } if message_type == "M0")
        );
        for (k, _) in &page {
            reopened.remove(k).unwrap();
        }
        let next = reopened.oldest(64).unwrap();
        let next_first: WebhookEvent = serde_json::from_slice(&next[0].1).unwrap();
        assert!(
            matches!(next_first.payload, EventPayload::Checkin { ref message_type, .. } if message_type == "M64")
        );
        assert_eq!(reopened.len(), 2_000 - 64);
        assert_eq!(metrics.webhook_pending(), 2_000 - 64);
        // Removing an event twice does not miscount.
        reopened.remove(&page[0].0).unwrap();
        assert_eq!(reopened.len(), 2_000 - 64);
        checkin(&reopened, 1);
        assert_eq!(metrics.webhook_pending(), 2_000 - 63);
        assert_eq!(
            Outbox::open(Arc::clone(&store), SystemTime::now())
                .unwrap()
                .len(),
            reopened.len()
        );
    }

    #[test]
    fn dead_letters_leave_the_outbox_and_can_be_retried_discarded_or_pruned() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let metrics = Arc::new(Metrics::default());
        let outbox = Outbox::open(Arc::clone(&store), SystemTime::now())
            .unwrap()
            .with_metrics(Arc::clone(&metrics));
        checkin(&outbox, 3);
        let events = outbox.oldest(10).unwrap();
        let header = |at| DeadLetterHeader {
            failed_at_ms: at,
            attempts: 1,
            reason: "receiver answered 413".into(),
            status: Some(413),
        };
        assert!(outbox.dead_letter(&events[0].0, &header(100)).unwrap());
        assert!(outbox.dead_letter(&events[1].0, &header(200)).unwrap());
        assert!(
            !outbox.dead_letter(&events[1].0, &header(200)).unwrap(),
            "already moved"
        );
        assert_eq!((outbox.len(), outbox.dead_letter_count()), (1, 2));
        let dead = outbox.dead_letters(None, 10).unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(dead[0].body, events[0].1, "the exact body is kept");
        assert_eq!(outbox.dead_letters(Some(dead[0].id), 10).unwrap().len(), 1);
        // Retry: back at the end of the outbox with the same body.
        assert!(outbox.retry_dead_letter(dead[0].id).unwrap());
        assert!(!outbox.retry_dead_letter(dead[0].id).unwrap());
        let queued = outbox.oldest(10).unwrap();
        assert_eq!(queued.len(), 2);
        assert_eq!(queued[1].1, events[0].1);
        // The sequence continues past dead letters after a restart.
        let reopened = Outbox::open(Arc::clone(&store), SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!((reopened.len(), reopened.dead_letter_count()), (2, 1));
        checkin(&reopened, 1);
        assert!(reopened.oldest(10).unwrap()[2].0.as_slice() > queued[1].0.as_slice());
        // Retention and discard.
        assert_eq!(outbox.prune_dead_letters(150, 10).unwrap(), (0, true));
        assert_eq!(outbox.prune_dead_letters(250, 10).unwrap(), (1, true));
        assert!(outbox.dead_letters(None, 10).unwrap().is_empty());
        let left = outbox.oldest(10).unwrap();
        outbox.dead_letter(&left[0].0, &header(300)).unwrap();
        let id = outbox.dead_letters(None, 1).unwrap()[0].id;
        assert!(outbox.discard_dead_letter(id).unwrap());
        assert!(!outbox.discard_dead_letter(id).unwrap());
        assert_eq!(outbox.dead_letter_count(), 0);
        assert_eq!(
            metrics.webhook_pending(),
            i64::try_from(outbox.len()).unwrap()
        );
    }
}

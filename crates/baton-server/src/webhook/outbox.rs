//! The durable webhook outbox: events keyed by a monotonically increasing 8-byte big-endian
//! sequence in a keyspace collection, so a scan returns them oldest first. [`EventSink`] is what
//! the device handlers call; it writes nothing when no webhook is configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use baton_store::{Collection, Store, StoreError, StoreResult, unix_millis};
use tokio::sync::Notify;

use super::event::{EventPayload, WebhookEvent};
use baton_proto::EnrollmentId;

/// The keyspace collection holding undelivered events.
pub const OUTBOX_COLLECTION: &str = "webhook_outbox";

/// The outbox over a store.
#[derive(Clone)]
pub struct Outbox {
    store: Arc<dyn Store>,
    collection: Collection,
    next_seq: Arc<AtomicU64>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("next_seq", &self.next_seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens the outbox; the next sequence number is past every stored event and past the
    /// current time in microseconds (so it also grows across restarts with an empty outbox).
    pub fn open(store: Arc<dyn Store>, now: SystemTime) -> StoreResult<Self> {
        let collection = Collection::new(OUTBOX_COLLECTION)?;
        let last = store
            .scan_prefix(&collection, &[])?
            .last()
            .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let start = last
            .saturating_add(1)
            .max(unix_millis(now).saturating_mul(1000));
        Ok(Self {
            store,
            collection,
            next_seq: Arc::new(AtomicU64::new(start)),
            notify: Arc::new(Notify::new()),
        })
    }

    /// Appends an event durably and wakes the delivery task.
    pub fn append(&self, event: &WebhookEvent) -> StoreResult<()> {
        let body = serde_json::to_vec(event).map_err(|e| StoreError::Encode {
            what: "webhook event",
            reason: e.to_string(),
        })?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.store
            .put(&self.collection, &seq.to_be_bytes(), &body)?;
        self.notify.notify_one();
        Ok(())
    }

    /// Up to `max` of the oldest events: (key, exact JSON body).
    pub fn oldest(&self, max: usize) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut all = self.store.scan_prefix(&self.collection, &[])?;
        all.truncate(max);
        Ok(all)
    }

    /// Number of events waiting.
    pub fn len(&self) -> StoreResult<usize> {
        Ok(self.store.scan_prefix(&self.collection, &[])?.len())
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> StoreResult<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes a delivered event.
    pub fn remove(&self, key: &[u8]) -> StoreResult<()> {
        self.store.delete(&self.collection, key)?;
        Ok(())
    }

    /// Woken on every append.
    pub fn notified(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

/// Where handlers record events: an [`Outbox`] when a webhook is configured, nothing otherwise.
#[derive(Debug, Clone, Default)]
pub struct EventSink {
    outbox: Option<Outbox>,
}

impl EventSink {
    /// A sink that drops every event (no webhook configured).
    pub fn disabled() -> Self {
        Self { outbox: None }
    }

    /// A sink writing to `outbox`.
    pub fn to_outbox(outbox: Outbox) -> Self {
        Self {
            outbox: Some(outbox),
        }
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
        assert_eq!(outbox.len().unwrap(), 2);
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
}

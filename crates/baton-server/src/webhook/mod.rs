//! Webhooks for operators: check-in events and command results, POSTed as JSON to a configured
//! URL and signed with HMAC-SHA256 (`X-Baton-Signature: sha256=<hex>`).
//!
//! Events are written to a durable outbox (keyspace collection [`outbox::OUTBOX_COLLECTION`])
//! by the device handlers, then delivered in order by one background task with retries and
//! exponential backoff. A slow or dead receiver delays only the outbox, never a device, and an
//! event leaves the outbox only after the receiver answered 2xx.
//!
//! Not sent: Idle reports (they would cost a durable write per Idle and carry no news).

pub mod dead_letter;
pub mod delivery;
pub mod event;
pub mod outbox;
pub mod signature;

pub use dead_letter::{DEAD_LETTER_COLLECTION, DeadLetter, DeadLetterHeader};
pub use delivery::WebhookDelivery;
pub use event::{
    EventPayload, HandOffEvent, MAX_EVENT_BYTES, ReEnrollmentRefusedEvent, WebhookEvent,
};
pub use outbox::{EventSink, Outbox};
pub use signature::{SIGNATURE_HEADER, sign, verify};

//! Dead letters: webhook events the receiver refused for good, or that ran out of tries. They
//! leave the outbox so later events are not held up, and wait in keyspace collection
//! [`DEAD_LETTER_COLLECTION`] (key: the event's outbox sequence number) until an operator
//! retries or discards them (`/api/v1/webhooks/dead-letters`), or retention deletes them.
//!
//! Stored form: one line of JSON ([`DeadLetterHeader`]), a newline, then the event body exactly
//! as it was POSTed, so a retry sends the same bytes.

use serde::{Deserialize, Serialize};

/// The keyspace collection of dead letters.
pub const DEAD_LETTER_COLLECTION: &str = "webhook_dead_letters";

/// Why and when an event was given up on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterHeader {
    /// When it was moved here, Unix milliseconds.
    pub failed_at_ms: u64,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The last failure, e.g. `receiver answered 413`.
    pub reason: String,
    /// The receiver's HTTP status of the last attempt, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A dead letter as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id: the event's outbox sequence number.
    pub id: u64,
    /// Why and when.
    pub header: DeadLetterHeader,
    /// The event body as POSTed.
    pub body: Vec<u8>,
}

impl DeadLetter {
    /// The stored value.
    pub fn encode(header: &DeadLetterHeader, body: &[u8]) -> Vec<u8> {
        // A struct of plain fields always serialises; compact JSON never contains a raw newline.
        let mut out = serde_json::to_vec(header).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    /// Reads a stored entry; None when the key or value is not a dead letter.
    pub fn decode(key: &[u8], value: &[u8]) -> Option<Self> {
        let id = u64::from_be_bytes(<[u8; 8]>::try_from(key).ok()?);
        let split = value.iter().position(|b| *b == b'\n')?;
        let header = serde_json::from_slice(&value[..split]).ok()?;
        Some(Self {
            id,
            header,
            body: value[split + 1..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_round_trip_with_the_exact_body() {
        let header = DeadLetterHeader {
            failed_at_ms: 5,
            attempts: 1,
            reason: "receiver answered 413\nwith a newline".into(),
            status: Some(413),
        };
        let body = b"{\"id\":\"e\",\n\"x\":1}";
        let stored = DeadLetter::encode(&header, body);
        let back = DeadLetter::decode(&7u64.to_be_bytes(), &stored).unwrap();
        assert_eq!(back.id, 7);
        assert_eq!(back.header, header);
        assert_eq!(back.body, body);
        assert!(DeadLetter::decode(b"short", &stored).is_none());
        assert!(DeadLetter::decode(&7u64.to_be_bytes(), b"no newline").is_none());
    }
}

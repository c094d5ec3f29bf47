//! What the mock records about every request it answers.

use bytes::Bytes;
use http::HeaderMap;

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct RecordedPush {
    /// The HTTP method.
    pub method: http::Method,
    /// The request path (`/3/device/<hex token>`).
    pub path: String,
    /// The device token from the path (lower-case hex), if the path had one.
    pub token: Option<String>,
    /// All request headers.
    pub headers: HeaderMap,
    /// The request body.
    pub body: Bytes,
    /// The client certificate's subject (`UID=…, CN=…, C=…`).
    pub client_subject: String,
    /// The client certificate's UID (its topic), if any.
    pub client_topic: Option<String>,
    /// Which TLS connection carried it (1 for the first one accepted).
    pub connection: u64,
    /// The status the mock answered (0 when it dropped the connection instead).
    pub status: u16,
    /// The `apns-id` the mock answered with.
    pub apns_id: String,
    /// When the request arrived.
    pub received_at: std::time::Instant,
}

impl RecordedPush {
    /// A header's value as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

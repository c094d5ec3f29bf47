//! The push-certificate role: APNs certificates and keys by topic.

use std::fmt;

use baton_proto::Topic;
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// An APNs push certificate with its private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushCertificate {
    /// The topic (the certificate's UID).
    pub topic: Topic,
    /// The certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// The private key, PEM. Secret: never logged.
    pub key_pem: Vec<u8>,
    /// The certificate's notAfter, Unix milliseconds, when known.
    pub not_after: Option<u64>,
    /// When it was stored, Unix milliseconds.
    pub updated_at: u64,
}

impl fmt::Debug for PushCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushCertificate")
            .field("topic", &self.topic)
            .field("cert_pem_len", &self.cert_pem.len())
            .field("key_pem", &"<redacted>")
            .field("not_after", &self.not_after)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Push certificates by topic.
pub trait PushCertStore {
    /// Stores (or replaces) the certificate for its topic. Durable when it returns.
    fn put_push_certificate(&self, cert: &PushCertificate) -> StoreResult<()>;
    /// The certificate for a topic.
    fn push_certificate(&self, topic: &Topic) -> StoreResult<Option<PushCertificate>>;
    /// Every stored certificate, in topic order.
    fn push_certificates(&self) -> StoreResult<Vec<PushCertificate>>;
    /// Deletes the certificate for a topic; true when one existed. Durable when it returns.
    fn delete_push_certificate(&self, topic: &Topic) -> StoreResult<bool>;
}

//! Pushes: after commands are enqueued the server tells a [`PushSink`] which channels have new
//! work. [`PushService`] is the APNs implementation: it looks up each channel's push token and
//! PushMagic, coalesces bursts, sends through [`baton_apns::ApnsClient`], records outcomes
//! (metrics, invalid tokens) and re-pushes devices that did not answer. [`LoggingPushSink`] only
//! logs. Handlers never know which sink is installed.
//!
//! - [`config`]: the typed push settings (`--push-cert`, `--apns-url`, …).
//! - [`certificate`]: loading the push certificate from files, uploads or the store, and its
//!   operator view (topic, expiry).
//! - [`invalid_token`]: the `push_token_invalid` marks.
//! - [`metrics`]: push counters for `/metrics`.
//! - [`service`]: the sender, coalescing and re-push policy.

pub mod certificate;
pub mod config;
pub mod invalid_token;
pub mod metrics;
pub mod service;

use std::fmt;

use baton_proto::EnrollmentId;

pub use certificate::{CertificateSource, CertificateView, PushCertificateError};
pub use config::PushConfig;
pub use service::{PushError, PushService};

/// Receives "these channels have new commands" notices. Must return quickly: an implementation
/// that does network work spawns it.
pub trait PushSink: Send + Sync + fmt::Debug {
    /// Commands were enqueued to `channels` (device or `device:user` ids).
    fn commands_enqueued(&self, channels: &[EnrollmentId]);
}

/// A sink that logs at debug level and sends nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingPushSink;

impl PushSink for LoggingPushSink {
    fn commands_enqueued(&self, channels: &[EnrollmentId]) {
        for id in channels {
            tracing::debug!(enrollment_id = %id, "push not sent: no push sender configured");
        }
    }
}

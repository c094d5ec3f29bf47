//! The push hook: after commands are enqueued the server tells a [`PushSink`] which channels have
//! new work. The APNs integration implements it (look up token and PushMagic, send the push);
//! until then [`LoggingPushSink`] only logs. Handlers never know which one is installed.

use std::fmt;

use baton_proto::EnrollmentId;

/// Receives "these channels have new commands" notices. Must return quickly: an implementation
/// that does network work spawns it.
pub trait PushSink: Send + Sync + fmt::Debug {
    /// Commands were enqueued to `channels` (device or `device:user` ids).
    fn commands_enqueued(&self, channels: &[EnrollmentId]);
}

/// The default sink: logs at debug level and sends nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoggingPushSink;

impl PushSink for LoggingPushSink {
    fn commands_enqueued(&self, channels: &[EnrollmentId]) {
        for id in channels {
            tracing::debug!(enrollment_id = %id, "push not sent: no push sender configured");
        }
    }
}

//! The result of one push after all retries: delivered, permanently refused, or failed.

use std::fmt;

use crate::reason::{ApnsReason, PermanentKind};

/// What happened to one push, after retries. The `apns_id` and reason are kept for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// APNs accepted the notification (200).
    Delivered {
        /// The `apns-id` APNs assigned (or echoed).
        apns_id: Option<String>,
        /// How many attempts it took (1 when the first one succeeded).
        attempts: u32,
    },
    /// APNs refused the notification in a way retrying cannot fix. Never retried.
    Permanent {
        /// What the refusal means for the caller.
        kind: PermanentKind,
        /// The HTTP status.
        status: u16,
        /// The reason from the response body, if any.
        reason: Option<ApnsReason>,
        /// The `apns-id` of the response.
        apns_id: Option<String>,
    },
    /// Every attempt failed with a retryable error, or the circuit breaker is open.
    Failed {
        /// The last failure.
        last: Failure,
        /// How many requests were sent (0 when the circuit breaker refused at once).
        attempts: u32,
    },
}

impl PushOutcome {
    /// True when APNs accepted the push.
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// True when the device token is dead and must not be pushed again until the device sends a
    /// new TokenUpdate.
    pub fn token_is_invalid(&self) -> bool {
        matches!(
            self,
            Self::Permanent {
                kind: PermanentKind::TokenInvalid,
                ..
            }
        )
    }

    /// True when the push certificate or topic is wrong (every push will fail alike).
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            Self::Permanent {
                kind: PermanentKind::Configuration,
                ..
            }
        )
    }

    /// The `apns-id` of the final response, if there was one.
    pub fn apns_id(&self) -> Option<&str> {
        match self {
            Self::Delivered { apns_id, .. } | Self::Permanent { apns_id, .. } => apns_id.as_deref(),
            Self::Failed {
                last: Failure::Status { apns_id, .. },
                ..
            } => apns_id.as_deref(),
            Self::Failed { .. } => None,
        }
    }
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delivered { attempts, .. } => write!(f, "delivered after {attempts} attempt(s)"),
            Self::Permanent {
                kind,
                status,
                reason,
                ..
            } => {
                write!(f, "refused ({kind:?}): {status}")?;
                if let Some(r) = reason {
                    write!(f, " {r}")?;
                }
                Ok(())
            }
            Self::Failed { last, attempts } => {
                write!(f, "failed after {attempts} attempt(s): {last}")
            }
        }
    }
}

/// One retryable failure.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// APNs answered with a retryable status (429, 5xx).
    Status {
        /// The HTTP status.
        status: u16,
        /// The reason from the body, if any.
        reason: Option<ApnsReason>,
        /// The `apns-id` of the response.
        apns_id: Option<String>,
    },
    /// The connection could not be made or broke (TLS, TCP, HTTP/2, GOAWAY).
    Transport(String),
    /// No response within the request timeout.
    Timeout,
    /// The circuit breaker is open: APNs has been failing, so nothing was sent.
    CircuitOpen,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, reason, .. } => {
                write!(f, "status {status}")?;
                if let Some(r) = reason {
                    write!(f, " {r}")?;
                }
                Ok(())
            }
            Self::Transport(e) => write!(f, "transport: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::CircuitOpen => f.write_str("circuit breaker open"),
        }
    }
}

//! APNs sender for Apple MDM pushes.
//!
//! An MDM push tells a device "check in now"; it carries no data but the device's PushMagic:
//! `POST /3/device/<token>` with body `{"mdm":"<PushMagic>"}`, `apns-push-type: mdm`,
//! `apns-topic: <the push certificate's UID>`, over HTTP/2 with TLS client authentication by the
//! MDM push certificate.
//!
//! - [`PushCertificate`] loads the certificate (PKCS#12, including legacy encryption, or PEM),
//!   reads its topic and refuses non-MDM certificates.
//! - [`ApnsClient`] multiplexes many pushes over a small pool of HTTP/2 connections (bounded
//!   streams, keep-alive pings, redial on GOAWAY or failure), classifies every answer
//!   ([`classify`]), retries 429/5xx/transport failures with backoff and jitter
//!   ([`RetryPolicy`]) and fails fast while APNs is down ([`CircuitBreaker`]).
//! - [`PushSender`] is the role trait the server depends on.
//! - [`mock`] is a real HTTP/2-over-TLS APNs stand-in that requires a client certificate, records
//!   pushes and can be told to fail; [`testing`] generates the certificates it needs.
//!
//! Not here: deciding whom to push and when (the server's reconciler and re-push policy), storing
//! tokens, or marking them invalid; [`PushOutcome::token_is_invalid`] tells the caller when to.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod backoff;
mod breaker;
mod certificate;
mod client;
mod config;
mod connection;
pub mod mock;
mod outcome;
mod reason;
mod sender;
pub mod testing;

pub use backoff::RetryPolicy;
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use certificate::{CertificateError, MDM_TOPIC_PREFIX, PushCertificate};
pub use client::{ApnsClient, ClientError, ClientStats, payload};
pub use config::{ApnsConfig, Expiration, PRODUCTION_URL, SANDBOX_URL};
pub use outcome::{Failure, PushOutcome};
pub use reason::{ApnsReason, PermanentKind, ResponseClass, classify};
pub use sender::PushSender;

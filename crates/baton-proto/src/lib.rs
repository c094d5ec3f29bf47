//! Apple MDM wire types for Baton.
//!
//! This crate owns the protocol's shapes: check-in messages, command reports, commands and
//! configuration profiles, plus the identifier newtypes every other Baton crate uses. It is pure:
//! it takes bytes and returns values (or typed errors). It does no IO, reads no clock and has no
//! async runtime, TLS, storage or OpenSSL dependency; signatures and transport belong to the server.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod ids;
mod status;

pub use ids::{
    CommandUuid, EnrollmentId, IdError, MAX_ID_LEN, PushMagic, PushToken, SHARED_IPAD_USER_ID,
    Topic, Udid,
};
pub use status::{ErrorChainItem, Status, UnknownStatus};

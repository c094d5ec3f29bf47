//! Baton's MDM server.
//!
//! Device identity (Mdm-Signature and TLS client certificates), the TLS listener, enrollment (the
//! built-in CA and SCEP), and, as they land, the check-in and command services, the portal and the
//! admin API. Configuration is passed in as typed values by the `baton` binary; nothing here reads
//! the environment.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod enrollment;
pub mod identity;
pub mod tls;

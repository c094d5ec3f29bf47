//! Baton's MDM server.
//!
//! Device identity (Mdm-Signature and TLS client certificates), the TLS listener, enrollment (the
//! built-in CA and SCEP), the check-in ([`checkin`]) and command-channel ([`command_channel`])
//! services, the admin API ([`admin`]), metrics, webhooks, and [`server::start`], which wires
//! them together from a [`config::ServerConfig`]. Configuration is passed in as typed values by
//! the `baton` binary; nothing here reads the environment.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod ber;
pub mod enrollment;
pub mod identity;
pub mod tls;

// The MDM server core: `baton serve`, check-in, command channel, admin API, metrics, webhooks.
pub mod admin;
pub mod api_key;
pub mod app;
pub mod capture;
pub mod catalog;
pub mod checkin;
pub mod client_origin;
pub mod command_channel;
pub mod config;
pub mod device_identity;
pub mod device_reply;
pub mod directory;
pub mod disk_floor;
pub mod error_response;
pub mod fleet_gauges;
pub mod gate;
pub mod lockout;
pub mod metrics;
pub mod portal;
pub mod push;
pub mod rate_limit;
pub mod reconciler;
pub mod report_bounds;
pub mod retention;
pub mod server;
pub mod session_policy;
pub mod sign_in_log;
pub mod sign_in_risk;
pub mod state;
pub mod timestamp;
pub mod webhook;

//! Shared harness for the end-to-end tests: a real Baton server on `127.0.0.1:0` (TLS or plain
//! HTTP) in a temporary data directory, simulated devices that sign every message with a real
//! CMS signature from a certificate under a test CA, an HTTP client that can present a TLS client
//! certificate, TLS probes (`openssl s_client`, raw handshakes, keep-alive connections), and the
//! replay runner for `fixtures/replay/*.yaml`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod chromium;
pub mod client;
pub mod device;
pub mod enrollment;
pub mod portal;
pub mod replay;
pub mod server;
pub mod tls;

pub use client::{HttpClient, Reply};
pub use device::{Pki, TestDevice};
pub use server::{ServerOptions, TestServer};

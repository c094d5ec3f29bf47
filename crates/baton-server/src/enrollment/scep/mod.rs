//! The SCEP server (RFC 8894) at `/scep`, and a SCEP client for tests and simulated devices.
//!
//! [`service::ScepService`] is the HTTP-free core (message in, CertRep out); [`http::router`]
//! mounts it; [`client`] builds PKCSReq/RenewalReq messages and reads CertReps.

use std::sync::Arc;

pub mod client;
pub mod http;
pub mod message;
pub mod service;

pub use http::router;
pub use message::{FailInfo, MessageType, PkiStatus};
pub use service::{CA_CAPS, PkiOperationError, PkiReply, ScepConfig, ScepService};

/// The state of the SCEP routes: a shared [`ScepService`].
#[derive(Debug, Clone)]
pub struct ScepState {
    service: Arc<ScepService>,
}

impl ScepState {
    /// State serving `service`.
    pub fn new(service: ScepService) -> Self {
        Self {
            service: Arc::new(service),
        }
    }

    /// The service.
    pub fn service(&self) -> &Arc<ScepService> {
        &self.service
    }
}

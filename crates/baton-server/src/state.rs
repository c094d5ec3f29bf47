//! The shared state every handler sees: the store, the identity verifier, metrics, the push hook,
//! the webhook event sink, the admin API key hash and the limits.

use std::sync::Arc;

use baton_proto::Limits;
use baton_store::Store;

use crate::api_key::ApiKeyHash;
use crate::config::BodyLimits;
use crate::enrollment::EnrollmentTokens;
use crate::identity::IdentityVerifier;
use crate::metrics::Metrics;
use crate::push::{PushService, PushSink};
use crate::rate_limit::RateLimiter;
use crate::reconciler::Reconciler;
use crate::webhook::EventSink;

/// The services behind the HTTP routes. Handlers get it as `State<AppState>`.
pub struct Services {
    /// Durable storage (call from `spawn_blocking`).
    pub store: Arc<dyn Store>,
    /// Device identity verification (signature and TLS client certificate).
    pub verifier: Arc<IdentityVerifier>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Told about new commands so it can push.
    pub push: Arc<dyn PushSink>,
    /// The APNs push service (certificate, manual pushes); unconfigured until a certificate is
    /// set or uploaded.
    pub push_service: Arc<PushService>,
    /// Webhook events.
    pub events: EventSink,
    /// The assignment reconciler (directory, catalog, distributions -> commands).
    pub reconciler: Arc<Reconciler>,
    /// Session settings (default lease) and the lease sweeper's wake-up signal.
    pub session: Arc<crate::session_policy::SessionRules>,
    /// Hash of the admin API key.
    pub api_key: ApiKeyHash,
    /// Request-body bounds per route kind.
    pub body_limits: BodyLimits,
    /// The password policy for local users.
    pub password_policy: crate::directory::PasswordPolicy,
    /// Plist limits for device messages.
    pub plist_limits: Limits,
    /// Enrollment tokens (admin API, enrollment profiles, Authenticate).
    pub enrollment_tokens: EnrollmentTokens,
    /// Per-source limits on the anonymous endpoints.
    pub rate_limits: Arc<RateLimiter>,
    /// The free-space floor on the data directory.
    pub disk_floor: Arc<crate::disk_floor::DiskFloor>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("verifier", &self.verifier)
            .field("push", &self.push)
            .field("events", &self.events)
            .field("body_limits", &self.body_limits)
            .field("password_policy", &self.password_policy)
            .finish_non_exhaustive()
    }
}

/// The router state: cheap to clone.
pub type AppState = Arc<Services>;

//! The sign-in portal: the server-rendered pages a person reaches by tapping the "Sign in" (or
//! "Sign out") web clip, whose URL carries the device's portal token.
//!
//! - `GET /portal/{token}`: the sign-in form (device assigned to nobody) or "Signed in as …"
//!   with a sign-out form; 404 for an unknown token.
//! - `POST /portal/{token}/sign-in`: one-time CSRF token, credentials checked every time,
//!   uniform error, device lock, [`crate::reconciler::Reconciler::sign_in`], 303 to progress.
//! - `GET /portal/{token}/progress`: the person's items, installed or pending, refreshing
//!   until ready (the ready time is recorded in the session log).
//! - `POST /portal/{token}/sign-out`, `GET /portal/{token}/signed-out`: sign-out and its
//!   progress until "Device is ready for the next person".
//!
//! No JavaScript; every page is escaped HTML ([`html`]). Form bodies are bounded by
//! [`MAX_FORM_BYTES`]. Passwords and tokens are never logged.
//! Not built yet: "Keep me signed in" (the cookie is a session cookie), sign-in risk signals.

pub mod branding;
pub mod cookie;
pub mod csrf;
pub mod device_lock;
pub mod html;
pub mod pages;
pub mod routes;
pub mod stay_prompt;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use branding::{AccentColor, BrandingError, PortalBranding};

use crate::state::AppState;

/// Largest accepted form body.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the portal handlers share.
#[derive(Debug)]
pub struct Portal {
    /// The server's services (store, reconciler).
    pub services: AppState,
    /// Branding shown on every page.
    pub branding: PortalBranding,
    /// Outstanding CSRF tokens.
    pub csrf: csrf::CsrfTokens,
    /// Per-device sign-in/out locks.
    pub locks: device_lock::DeviceLocks,
    /// Mark cookies `Secure` (the server speaks TLS).
    pub secure_cookies: bool,
}

/// The portal routes over `services`.
pub fn router(services: AppState, branding: PortalBranding, secure_cookies: bool) -> Router {
    let portal = Arc::new(Portal {
        services,
        branding,
        csrf: csrf::CsrfTokens::default(),
        locks: device_lock::DeviceLocks::default(),
        secure_cookies,
    });
    Router::new()
        .route("/portal/{token}", get(routes::device_page))
        .route("/portal/{token}/sign-in", post(routes::sign_in))
        .route("/portal/{token}/progress", get(routes::progress))
        .route("/portal/{token}/sign-out", post(routes::sign_out))
        .route("/portal/{token}/signed-out", get(routes::signed_out))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(portal)
}

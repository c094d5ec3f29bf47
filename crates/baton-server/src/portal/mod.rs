//! The sign-in portal: the server-rendered pages a person reaches by tapping the "Sign in"
//! web clip (whose URL carries the device's portal token) or the "Sign out" web clip (whose URL
//! carries the secret of the session that installed it, [`crate::reconciler::portal_session`]).
//!
//! Who may see what: the device token alone reaches only the sign-in form (and, while someone
//! is signed in, an "in use" page without their name). Everything about the signed-in person
//! needs a secret of their session: the portal cookie set in the web app where they signed in
//! (its value is the session secret) or the "Sign out" clip's URL. The secret ends with the
//! session; the device token rotates at each sign-out. See docs/decisions/0011.
//!
//! - `GET /portal/{token}`: the sign-in form (device assigned to nobody); with the session's
//!   cookie "Signed in as …" with a sign-out form; else "in use". 404 for an unknown token.
//! - `POST /portal/{token}/sign-in`: one-time CSRF token, credentials checked every time,
//!   uniform error, device lock, [`crate::reconciler::Reconciler::sign_in`], the cookie, 303
//!   to progress.
//! - `GET /portal/{token}/progress` (with the cookie): the person's items, installed or
//!   pending, refreshing until ready (the ready time is recorded in the session log).
//! - `POST /portal/{token}/sign-out` (with the cookie), `GET /portal/{token}/signed-out`:
//!   sign-out, then its progress (under the new token) until "Device is ready for the next
//!   person".
//! - `GET /portal/session/{secret}`, `GET …/progress`, `POST …/sign-out`: the same pages in
//!   the "Sign out" clip; "This session has ended" (404) once it did.
//!
//! - `GET/POST /portal/{token}/stay`: "Stay signed in?" after a sign-in the session rules
//!   allow to be persistent ([`crate::session_policy::prompt_allowed`]); unanswered prompts
//!   become `interrupted` sign-in log entries ([`routes::sweep_prompts`]).
//!
//! Every attempt goes to the sign-in log ([`crate::sign_in_log`]) with its risk
//! ([`crate::sign_in_risk`]); repeated failures lock the user or device out
//! ([`crate::lockout`]). Sign-ins are leased ([`crate::session_policy`]).
//!
//! No JavaScript; every page is escaped HTML ([`html`]). Form bodies are bounded by
//! [`MAX_FORM_BYTES`]. Passwords and tokens are never logged. The source address and the
//! scheme (for `Secure` cookies) are the client's as [`crate::client_origin`] decided: the TCP
//! peer, or what a trusted proxy forwarded.

pub mod branding;
pub mod cookie;
pub mod csrf;
pub mod device_lock;
pub mod html;
pub mod language;
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
    /// Always mark cookies `Secure` (the server speaks TLS); else only for requests a trusted
    /// proxy says came over HTTPS.
    pub secure_cookies: bool,
    /// Brute-force protection.
    pub lockout: crate::lockout::Lockout,
}

/// The portal routes over `services`, with the default lockout settings.
pub fn router(services: AppState, branding: PortalBranding, secure_cookies: bool) -> Router {
    router_with(&Arc::new(Portal::new(
        services,
        branding,
        secure_cookies,
        crate::lockout::LockoutSettings::default(),
    )))
}

impl Portal {
    /// The portal over `services`.
    pub fn new(
        services: AppState,
        branding: PortalBranding,
        secure_cookies: bool,
        lockout: crate::lockout::LockoutSettings,
    ) -> Self {
        let lockout = crate::lockout::Lockout::new(Arc::clone(&services.store), lockout);
        Portal {
            services,
            branding,
            csrf: csrf::CsrfTokens::default(),
            locks: device_lock::DeviceLocks::default(),
            secure_cookies,
            lockout,
        }
    }
}

/// The portal routes over a shared [`Portal`] (the server also hands it to the housekeeping
/// task, [`housekeeping`]).
pub fn router_with(portal: &Arc<Portal>) -> Router {
    let portal = Arc::clone(portal);
    Router::new()
        // The path is html::LIVE_SCRIPT_PATH (written out for the OpenAPI route check).
        .route("/portal/assets/live.js", get(routes::live_script))
        .route("/portal/{token}", get(routes::device_page))
        .route("/portal/{token}/sign-in", post(routes::sign_in))
        .route(
            "/portal/{token}/stay",
            get(routes::stay_page).post(routes::stay),
        )
        .route("/portal/{token}/progress", get(routes::progress))
        .route("/portal/{token}/sign-out", post(routes::sign_out))
        .route("/portal/{token}/signed-out", get(routes::signed_out))
        .route("/portal/session/{secret}", get(routes::session_page))
        .route(
            "/portal/session/{secret}/progress",
            get(routes::session_progress),
        )
        .route(
            "/portal/session/{secret}/sign-out",
            post(routes::session_sign_out),
        )
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(portal)
}

/// The portal's periodic chores, every `every` until `stop` turns true: unanswered
/// "Stay signed in?" prompts become `interrupted` entries, CSRF tokens and lockout records
/// that ended are dropped. (The sign-in log's retention is [`crate::retention`]'s.)
pub async fn housekeeping(
    portal: Arc<Portal>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let prune = last_prune.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(3600));
        if prune {
            last_prune = Some(std::time::Instant::now());
        }
        let p = Arc::clone(&portal);
        let result = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let now = std::time::SystemTime::now();
            routes::sweep_prompts(&p, now).map_err(|e| e.to_string())?;
            p.csrf.forget_expired(std::time::Instant::now());
            if prune {
                let dropped = p.lockout.prune(now).map_err(|e| e.to_string())?;
                tracing::debug!(dropped, "portal housekeeping");
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "portal housekeeping failed"),
            Err(error) => tracing::warn!(%error, "portal housekeeping task failed"),
        }
    }
}

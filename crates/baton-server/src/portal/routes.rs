//! The portal's HTTP handlers. Each resolves the device from the path's portal token on the
//! blocking pool, then renders a page; see the module docs of [`crate::portal`] for the flow.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_assign::NOBODY_USERNAME;
use baton_proto::EnrollmentId;
use serde::Deserialize;

use super::html::Page;
use super::{Portal, cookie, device_lock, pages};
use crate::catalog::assignment_config::read_json;
use crate::directory::{USERS_COLLECTION, UserRecord, hash_password, verify_password};
use crate::reconciler::portal_token;

/// A portal page with its status and extra headers.
struct Reply {
    status: StatusCode,
    page: Option<Page>,
    location: Option<String>,
    set_cookie: Option<String>,
}

impl Reply {
    fn page(status: StatusCode, page: Page) -> Self {
        Reply {
            status,
            page: Some(page),
            location: None,
            set_cookie: None,
        }
    }

    fn see_other(location: String) -> Self {
        Reply {
            status: StatusCode::SEE_OTHER,
            page: None,
            location: Some(location),
            set_cookie: None,
        }
    }

    fn not_found() -> Self {
        Reply::page(
            StatusCode::NOT_FOUND,
            pages::message("Page not found", "This link is not valid."),
        )
    }

    fn bad_request() -> Self {
        Reply::page(
            StatusCode::BAD_REQUEST,
            pages::message(
                "This form has expired",
                "Go back, reload the page and try again.",
            ),
        )
    }

    fn in_use() -> Self {
        Reply::page(
            StatusCode::CONFLICT,
            pages::message(
                pages::IN_USE_HEADING,
                "Someone is signed in on this device. They must sign out first.",
            ),
        )
    }

    fn failed() -> Self {
        Reply::page(
            StatusCode::INTERNAL_SERVER_ERROR,
            pages::message("Something went wrong", "Please try again in a moment."),
        )
    }

    fn render(self, portal: &Portal) -> Response {
        let mut response = match &self.page {
            Some(page) => (
                self.status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                )],
                page.render(&portal.branding),
            )
                .into_response(),
            None => self.status.into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; img-src https: http:; \
                 form-action 'self'; frame-ancestors 'none'",
            ),
        );
        for (name, value) in [
            (header::LOCATION, self.location),
            (header::SET_COOKIE, self.set_cookie),
        ] {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, v);
            }
        }
        response
    }
}

/// Why a portal request failed inside (logged, shown as a generic page).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortalError {
    /// The reconciler or store failed.
    #[error(transparent)]
    Reconcile(#[from] crate::reconciler::ReconcileError),
    /// A stored record could not be read.
    #[error(transparent)]
    Record(#[from] crate::catalog::assignment_config::RecordError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] baton_store::StoreError),
    /// Random bytes were not available.
    #[error("random: {0}")]
    Random(#[from] openssl::error::ErrorStack),
}

/// Runs `f` on the blocking pool and renders its reply (or a generic failure page).
async fn blocking(
    portal: Arc<Portal>,
    f: impl FnOnce(&Portal) -> Result<Reply, PortalError> + Send + 'static,
) -> Response {
    let p = Arc::clone(&portal);
    let reply = match tokio::task::spawn_blocking(move || f(&p)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => {
            tracing::error!(%error, "portal request failed");
            Reply::failed()
        }
        Err(error) => {
            tracing::error!(%error, "portal worker failed");
            Reply::failed()
        }
    };
    reply.render(&portal)
}

fn device_of(portal: &Portal, token: &str) -> Result<Option<EnrollmentId>, PortalError> {
    // Tokens are 43 URL-safe characters; anything else cannot match.
    if token.is_empty() || token.len() > 128 {
        return Ok(None);
    }
    Ok(portal_token::device_of(
        portal.services.store.as_ref(),
        token,
    )?)
}

fn display_name(portal: &Portal, username: &str) -> Result<String, PortalError> {
    let compiled = portal.services.reconciler.compiled()?;
    Ok(compiled
        .user(username)
        .and_then(|u| u.full_name.clone())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| username.to_owned()))
}

/// `GET /portal/{token}`.
pub async fn device_page(State(portal): State<Arc<Portal>>, Path(token): Path<String>) -> Response {
    blocking(portal, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        let assignee = portal.services.reconciler.assignee(&device)?;
        let csrf = portal.csrf.issue(&token, Instant::now())?;
        if assignee == NOBODY_USERNAME {
            return Ok(Reply::page(
                StatusCode::OK,
                pages::sign_in(&token, &csrf, None, ""),
            ));
        }
        let name = display_name(portal, &assignee)?;
        Ok(Reply::page(
            StatusCode::OK,
            pages::signed_in(&token, &name, &csrf, None),
        ))
    })
    .await
}

/// The sign-in form's fields. `Debug` hides the password.
#[derive(Deserialize, Default)]
pub struct SignInForm {
    /// Username as typed.
    #[serde(default)]
    pub username: String,
    /// Password (never logged).
    #[serde(default)]
    pub password: String,
    /// The form's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

impl std::fmt::Debug for SignInForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInForm")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The sign-out form's fields.
#[derive(Debug, Deserialize, Default)]
pub struct SignOutForm {
    /// The form's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// The page for a refused form body (too large: 413; malformed: 400).
fn rejected(rejection: &FormRejection) -> Reply {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Reply::page(
            StatusCode::PAYLOAD_TOO_LARGE,
            pages::message(
                "Too much input",
                "The form was too large. Please try again.",
            ),
        )
    } else {
        Reply::bad_request()
    }
}

/// A hash that nobody's password matches, checked for unknown users so that both failure
/// paths cost one argon2 verification.
fn decoy_hash() -> Option<&'static str> {
    static DECOY: OnceLock<Option<String>> = OnceLock::new();
    DECOY
        .get_or_init(|| hash_password("baton-portal-decoy").ok())
        .as_deref()
}

/// True when `username` exists, may sign in, and `password` is theirs.
fn credentials_ok(portal: &Portal, username: &str, password: &str) -> Result<bool, PortalError> {
    let record: Option<UserRecord> = if username.is_empty() || username == NOBODY_USERNAME {
        None
    } else {
        read_json(portal.services.store.as_ref(), USERS_COLLECTION, username)?
    };
    match record.and_then(|r| r.password_hash) {
        Some(hash) => Ok(verify_password(password, &hash)),
        None => {
            if let Some(decoy) = decoy_hash() {
                let _ = verify_password(password, decoy);
            }
            Ok(false)
        }
    }
}

/// `POST /portal/{token}/sign-in`.
pub async fn sign_in(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => {
            tracing::info!(status = %rejection.status(), "portal sign-in form refused");
            return rejected(&rejection).render(&portal);
        }
    };
    blocking(portal, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !portal.csrf.redeem(&form.csrf, &token, Instant::now()) {
            tracing::info!(enrollment_id = %device, "portal sign-in without a valid CSRF token");
            return Ok(Reply::bad_request());
        }
        let username = form.username.trim().to_owned();
        if !credentials_ok(portal, &username, &form.password)? {
            tracing::info!(enrollment_id = %device, username = %username, result = "wrong_credentials",
                "portal sign-in refused");
            let csrf = portal.csrf.issue(&token, Instant::now())?;
            return Ok(Reply::page(
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::sign_in(&token, &csrf, Some(pages::WRONG_CREDENTIALS), &username),
            ));
        }
        let lock = portal.locks.of(device.as_str());
        let Some(_held) = device_lock::try_hold(&lock) else {
            tracing::info!(enrollment_id = %device, username = %username, result = "busy",
                "portal sign-in refused");
            return Ok(Reply::in_use());
        };
        let reconciler = &portal.services.reconciler;
        if reconciler.assignee(&device)? != NOBODY_USERNAME {
            tracing::info!(enrollment_id = %device, username = %username, result = "in_use",
                "portal sign-in refused");
            return Ok(Reply::in_use());
        }
        let outcome = reconciler.sign_in(&device, &username, "portal", SystemTime::now())?;
        tracing::info!(enrollment_id = %device, username = %username, result = "signed_in",
            commands = outcome.enqueued.len(), "portal sign-in");
        let mut reply = Reply::see_other(format!("/portal/{token}/progress"));
        reply.set_cookie = Some(cookie::session_cookie(&token, portal.secure_cookies)?);
        Ok(reply)
    })
    .await
}

/// `GET /portal/{token}/progress`.
pub async fn progress(State(portal): State<Arc<Portal>>, Path(token): Path<String>) -> Response {
    blocking(portal, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        let reconciler = &portal.services.reconciler;
        let now = SystemTime::now();
        let progress = reconciler.progress(&device, now)?;
        if progress.assignee == NOBODY_USERNAME {
            return Ok(Reply::see_other(format!("/portal/{token}")));
        }
        if progress.ready {
            reconciler.note_ready(&device, now)?;
        }
        Ok(Reply::page(
            StatusCode::OK,
            pages::progress(&token, &progress, None),
        ))
    })
    .await
}

/// `POST /portal/{token}/sign-out`.
pub async fn sign_out(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return rejected(&rejection).render(&portal),
    };
    blocking(portal, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !portal.csrf.redeem(&form.csrf, &token, Instant::now()) {
            tracing::info!(enrollment_id = %device, "portal sign-out without a valid CSRF token");
            return Ok(Reply::bad_request());
        }
        let lock = portal.locks.of(device.as_str());
        let _held = device_lock::hold(&lock);
        let reconciler = &portal.services.reconciler;
        if reconciler.assignee(&device)? != NOBODY_USERNAME {
            let outcome = reconciler.sign_out(&device, "portal", SystemTime::now())?;
            tracing::info!(enrollment_id = %device, commands = outcome.enqueued.len(), "portal sign-out");
        }
        let mut reply = Reply::see_other(format!("/portal/{token}/signed-out"));
        reply.set_cookie = Some(cookie::cleared_cookie(&token, portal.secure_cookies));
        Ok(reply)
    })
    .await
}

/// `GET /portal/{token}/signed-out`.
pub async fn signed_out(State(portal): State<Arc<Portal>>, Path(token): Path<String>) -> Response {
    blocking(portal, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        let progress = portal
            .services
            .reconciler
            .progress(&device, SystemTime::now())?;
        if progress.assignee != NOBODY_USERNAME {
            return Ok(Reply::see_other(format!("/portal/{token}")));
        }
        Ok(Reply::page(StatusCode::OK, pages::signed_out(&progress)))
    })
    .await
}

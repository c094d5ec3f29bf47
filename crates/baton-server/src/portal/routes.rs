//! The portal's HTTP handlers. Each resolves the device on the blocking pool, from the path's
//! portal token (the "Sign in" clip) or session secret (the "Sign out" clip), then renders a
//! page; see the module docs of [`crate::portal`] for the flow and who may see what.

use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_assign::NOBODY_USERNAME;
use baton_proto::EnrollmentId;
use baton_store::{KeyspaceBatch, unix_millis};
use serde::Deserialize;

use super::html;
use super::html::Page;
use super::language::{Lang, fill, tr, with_lang};
use super::pages::SessionEnd;
use super::stay_prompt::{self, PendingPrompt};
use super::{Portal, cookie, device_lock, pages};
use crate::catalog::assignment_config::read_json;
use crate::client_origin::Client;
use crate::directory::user_record::is_disabled;
use crate::directory::{USERS_COLLECTION, UserRecord, hash_password, username, verify_password};
use crate::lockout::Admission;
use crate::reconciler::{portal_session, portal_token};
use crate::session_policy::sign_in::{SessionSignInError, policy_for};
use crate::session_policy::{lease, prompt_allowed, record as policy_record};
use crate::sign_in_log::{self, ReasonCode, SignInEntry, SignInHow, SignInResult};
use crate::sign_in_risk;

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
                 script-src 'self'; connect-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'",
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
    /// Signing in with a lease failed.
    #[error(transparent)]
    SignIn(#[from] SessionSignInError),
}

/// `Secure` on the portal cookie: the server speaks TLS, or a trusted proxy says the client
/// used HTTPS ([`crate::client_origin`]).
fn secure_cookie(portal: &Portal, client: &Client) -> bool {
    portal.secure_cookies || client.https
}

/// Runs `f` on the blocking pool with `lang` as the pages' language and renders its reply
/// (or a generic failure page).
async fn blocking(
    portal: Arc<Portal>,
    lang: Lang,
    f: impl FnOnce(&Portal) -> Result<Reply, PortalError> + Send + 'static,
) -> Response {
    let p = Arc::clone(&portal);
    let reply = match tokio::task::spawn_blocking(move || with_lang(lang, || f(&p))).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(error)) => {
            tracing::error!(%error, "portal request failed");
            with_lang(lang, Reply::failed)
        }
        Err(error) => {
            tracing::error!(%error, "portal worker failed");
            with_lang(lang, Reply::failed)
        }
    };
    reply.render(&portal)
}

/// `GET /portal/assets/live.js`: the script that updates progress pages in place.
pub async fn live_script() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("max-age=3600"),
            ),
        ],
        html::LIVE_SCRIPT,
    )
        .into_response()
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

/// True when `cookie` (the portal cookie a request on a device-token path carried) is the
/// secret of the device's current session: the browser that signed in. Without it the device
/// token alone shows the sign-in form and nothing about whoever is signed in.
fn holds_session(
    portal: &Portal,
    device: &EnrollmentId,
    cookie: Option<&str>,
) -> Result<bool, PortalError> {
    Ok(match cookie {
        Some(value) => portal_session::is_current(portal.services.store.as_ref(), device, value)?,
        None => false,
    })
}

/// The path prefix of a session's pages (the "Sign out" clip's URL).
fn session_base(secret: &str) -> String {
    format!("/portal/session/{secret}")
}

/// The CSRF key of a session's forms (distinct from any device token).
fn session_csrf_key(secret: &str) -> String {
    format!("session/{secret}")
}

/// The page for a session secret that is unknown or whose session ended.
fn session_ended() -> Reply {
    Reply::page(
        StatusCode::NOT_FOUND,
        pages::message(
            pages::SESSION_ENDED_HEADING,
            "This link belonged to a session that has ended.",
        ),
    )
}

/// The page a device-token path shows while someone is signed in, to any browser but theirs.
fn in_use_elsewhere() -> Reply {
    Reply::page(
        StatusCode::OK,
        pages::message(pages::IN_USE_HEADING, pages::SIGN_OUT_WITH_CLIP),
    )
}

/// The signed-in page (name, session end, sign-out form) of `device` reached under `base`.
fn signed_in_page(
    portal: &Portal,
    device: &EnrollmentId,
    assignee: &str,
    base: &str,
    csrf_key: &str,
) -> Result<Reply, PortalError> {
    let csrf = portal.csrf.issue(csrf_key, Instant::now())?;
    let name = display_name(portal, assignee)?;
    let end = session_end(portal, device, SystemTime::now())?;
    Ok(Reply::page(
        StatusCode::OK,
        pages::signed_in(base, &name, &csrf, end),
    ))
}

fn display_name(portal: &Portal, username: &str) -> Result<String, PortalError> {
    let compiled = portal.services.reconciler.compiled()?;
    Ok(compiled
        .user(username)
        .and_then(|u| u.full_name.clone())
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| username.to_owned()))
}

/// The device's hand-off when it is not clean (the next person must wait).
fn not_clean_hand_off(
    portal: &Portal,
    device: &EnrollmentId,
) -> Result<Option<crate::reconciler::hand_off::HandOff>, PortalError> {
    Ok(portal
        .services
        .reconciler
        .hand_off(device)?
        .filter(|h| h.state.is_not_clean()))
}

/// `GET /portal/{token}`: the sign-in form; while someone is signed in, their page only for
/// the browser holding their session's cookie, else "in use" without a name.
pub async fn device_page(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    headers: HeaderMap,
) -> Response {
    let cookie = cookie::value_in(&headers);
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        let assignee = portal.services.reconciler.assignee(&device)?;
        if assignee == NOBODY_USERNAME {
            if let Some(h) = not_clean_hand_off(portal, &device)? {
                return Ok(Reply::page(StatusCode::OK, pages::not_ready_for_next(&h)));
            }
            let csrf = portal.csrf.issue(&token, Instant::now())?;
            return Ok(Reply::page(
                StatusCode::OK,
                pages::sign_in(&token, &csrf, None, ""),
            ));
        }
        if !holds_session(portal, &device, cookie.as_deref())? {
            return Ok(in_use_elsewhere());
        }
        signed_in_page(
            portal,
            &device,
            &assignee,
            &format!("/portal/{token}"),
            &token,
        )
    })
    .await
}

/// `GET /portal/session/{secret}`: the "Sign out" clip: who is signed in, the session's end,
/// a link to the progress and the sign-out form; the "ended" page once the session is over.
pub async fn session_page(
    State(portal): State<Arc<Portal>>,
    Path(secret): Path<String>,
    lang: Lang,
) -> Response {
    blocking(portal, lang, move |portal| {
        let Some(device) = portal_session::device_of(portal.services.store.as_ref(), &secret)?
        else {
            return Ok(session_ended());
        };
        let assignee = portal.services.reconciler.assignee(&device)?;
        if assignee == NOBODY_USERNAME {
            return Ok(session_ended());
        }
        signed_in_page(
            portal,
            &device,
            &assignee,
            &session_base(&secret),
            &session_csrf_key(&secret),
        )
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

/// How the device's current session ends, for the pages.
fn session_end(
    portal: &Portal,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<Option<SessionEnd>, PortalError> {
    let store = portal.services.store.as_ref();
    let Some(lease) = lease::get(store, device)? else {
        return Ok(None);
    };
    let Some(end_ms) = lease.expires_at_ms else {
        return Ok(Some(SessionEnd::UntilSignOut));
    };
    let warn_before = policy_record::load(store)?.warn_before();
    let left_ms = end_ms.saturating_sub(unix_millis(now));
    Ok(Some(SessionEnd::At {
        at: portal.services.session.time_zone().format(end_ms),
        soon: lease::warning(&lease, now, warn_before).is_some(),
        minutes_left: left_ms.div_ceil(60_000),
    }))
}

/// The "Stay signed in?" form's fields.
#[derive(Debug, Deserialize, Default)]
pub struct StayForm {
    /// `yes` or `no`.
    #[serde(default)]
    pub answer: String,
    /// The form's CSRF token.
    #[serde(default)]
    pub csrf: String,
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

/// The stored username a person means by `typed` (trimmed, without case; see
/// [`crate::directory::username::resolve`]), from the compiled directory in memory.
fn known_user(portal: &Portal, typed: &str) -> Result<Option<String>, PortalError> {
    let compiled = portal.services.reconciler.compiled()?;
    let users = compiled.config().directory.users.iter();
    Ok(username::resolve(typed, users.map(|u| u.username.as_str())).map(str::to_owned))
}

/// True when `user` (a stored username, or `None` for an unknown name) may sign in with a
/// password and `password` is theirs.
fn credentials_ok(
    portal: &Portal,
    user: Option<&str>,
    password: &str,
) -> Result<bool, PortalError> {
    let record: Option<UserRecord> = match user {
        Some(name) if name != NOBODY_USERNAME => {
            read_json(portal.services.store.as_ref(), USERS_COLLECTION, name)?
        }
        _ => None,
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

/// A sign-in log entry for a portal attempt on `device`.
fn attempt(
    now: SystemTime,
    username: &str,
    device: &EnrollmentId,
    client: &Client,
    result: SignInResult,
    reason: ReasonCode,
) -> SignInEntry {
    SignInEntry::new(
        now,
        username,
        device.as_str(),
        SignInHow::Portal,
        result,
        reason,
    )
    .with_source_address(client.address.map(|a| a.to_string()))
}

/// Stores a refused attempt (and its webhook event).
fn log_refusal(portal: &Portal, entry: &SignInEntry) -> Result<(), PortalError> {
    sign_in_log::append(
        portal.services.store.as_ref(),
        &portal.services.events,
        entry,
    )?;
    Ok(())
}

/// The sign-in form again with `message`, a new CSRF token and `status`.
fn sign_in_again(
    portal: &Portal,
    token: &str,
    status: StatusCode,
    message: &str,
    username: &str,
) -> Result<Reply, PortalError> {
    let csrf = portal.csrf.issue(token, Instant::now())?;
    Ok(Reply::page(
        status,
        pages::sign_in(token, &csrf, Some(message), username),
    ))
}

/// The lockout message: when to try again.
fn locked_message(until_ms: u64, now: SystemTime) -> String {
    let minutes = until_ms
        .saturating_sub(unix_millis(now))
        .div_ceil(60_000)
        .max(1);
    fill(
        tr("Too many sign-in attempts. Try again in {minutes} min."),
        &[("minutes", &minutes.to_string())],
    )
}

/// `POST /portal/{token}/sign-in`: CSRF, lockout, credentials (checked every time), disabled
/// users, the device lock, then the sign-in with a lease; the "Stay signed in?" prompt when
/// the session rules allow it. Every attempt goes to the sign-in log.
pub async fn sign_in(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    client: Client,
    form: Result<Form<SignInForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => {
            tracing::info!(status = %rejection.status(), "portal sign-in form refused");
            return rejected(&rejection).render(&portal);
        }
    };
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !portal.csrf.redeem(&form.csrf, &token, Instant::now()) {
            tracing::info!(enrollment_id = %device, "portal sign-in without a valid CSRF token");
            return Ok(Reply::bad_request());
        }
        let now = SystemTime::now();
        // The stored name when the typed one matches a user (without case), else as typed.
        let known = known_user(portal, &form.username)?;
        let username = known
            .clone()
            .unwrap_or_else(|| form.username.trim().to_owned());
        let store = portal.services.store.as_ref();
        let entry = |result, reason| attempt(now, &username, &device, &client, result, reason);
        let attempt = match portal.lockout.begin(&username, &device, now)? {
            Admission::Check(attempt) => attempt,
            Admission::LockedOut { until_ms, scope } => {
                tracing::info!(enrollment_id = %device, username = %username, result = "locked_out",
                    scope = scope.as_str(), "portal sign-in refused");
                log_refusal(
                    portal,
                    &entry(SignInResult::Failure, ReasonCode::LockedOut).with_detail(format!(
                        "{} locked until {}",
                        scope.as_str(),
                        crate::timestamp::rfc3339_millis(until_ms)
                    )),
                )?;
                return sign_in_again(
                    portal,
                    &token,
                    StatusCode::TOO_MANY_REQUESTS,
                    &locked_message(until_ms, now),
                    &username,
                );
            }
            Admission::Busy { scope } => {
                tracing::info!(enrollment_id = %device, username = %username, result = "busy",
                    scope = scope.as_str(), "portal sign-in refused: too many attempts at once");
                log_refusal(
                    portal,
                    &entry(SignInResult::Failure, ReasonCode::LockedOut).with_detail(format!(
                        "{}: the attempts being checked reach the lockout threshold",
                        scope.as_str()
                    )),
                )?;
                return sign_in_again(
                    portal,
                    &token,
                    StatusCode::TOO_MANY_REQUESTS,
                    pages::TOO_MANY_AT_ONCE,
                    &username,
                );
            }
        };
        if !credentials_ok(portal, known.as_deref(), &form.password)? {
            tracing::info!(enrollment_id = %device, username = %username, result = "wrong_credentials",
                "portal sign-in refused");
            let started = attempt.failed(now)?;
            let mut failure = entry(SignInResult::Failure, ReasonCode::BadCredentials);
            if let Some(s) = &started {
                portal.services.events.sign_ins().lockout_started(s.scope);
                failure = failure.with_detail(format!(
                    "{} locked until {} (lockout {})",
                    s.scope.as_str(),
                    crate::timestamp::rfc3339_millis(s.until_ms),
                    s.lockout_number
                ));
            }
            log_refusal(portal, &failure)?;
            return match started {
                Some(s) => sign_in_again(
                    portal,
                    &token,
                    StatusCode::TOO_MANY_REQUESTS,
                    &locked_message(s.until_ms, now),
                    &username,
                ),
                None => sign_in_again(
                    portal,
                    &token,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    pages::WRONG_CREDENTIALS,
                    &username,
                ),
            };
        }
        if is_disabled(store, &username)? {
            tracing::info!(enrollment_id = %device, username = %username, result = "disabled_user",
                "portal sign-in refused");
            log_refusal(
                portal,
                &entry(SignInResult::Failure, ReasonCode::DisabledUser),
            )?;
            return sign_in_again(
                portal,
                &token,
                StatusCode::FORBIDDEN,
                pages::DISABLED_USER,
                &username,
            );
        }
        let lock = portal.locks.of(device.as_str());
        let Some(_held) = device_lock::try_hold(&lock) else {
            tracing::info!(enrollment_id = %device, username = %username, result = "busy",
                "portal sign-in refused");
            log_refusal(
                portal,
                &entry(SignInResult::Failure, ReasonCode::Policy)
                    .with_detail("another sign-in on this device was in progress"),
            )?;
            return Ok(Reply::in_use());
        };
        let reconciler = &portal.services.reconciler;
        let assignee = reconciler.assignee(&device)?;
        // The person holding the device signs in again (a second tap, a form kept open): tell
        // them so, not that someone else is signed in. Their password was just checked.
        if assignee != NOBODY_USERNAME && assignee.eq_ignore_ascii_case(&username) {
            tracing::info!(enrollment_id = %device, username = %username,
                result = "already_signed_in", "portal sign-in refused");
            log_refusal(
                portal,
                &entry(SignInResult::Failure, ReasonCode::Policy)
                    .with_detail("already signed in on this device"),
            )?;
            return Ok(Reply::page(
                StatusCode::CONFLICT,
                pages::message(pages::ALREADY_SIGNED_IN_HEADING, pages::ALREADY_SIGNED_IN),
            ));
        }
        if assignee != NOBODY_USERNAME {
            tracing::info!(enrollment_id = %device, username = %username, result = "in_use",
                "portal sign-in refused");
            log_refusal(
                portal,
                &entry(SignInResult::Failure, ReasonCode::Policy)
                    .with_detail("someone else is signed in on this device"),
            )?;
            return Ok(Reply::in_use());
        }
        // The previous session's items are still on the device: nobody signs in until it is
        // clean (docs/decisions/0023-hand-off-proven-clean.md).
        if let Some(h) = not_clean_hand_off(portal, &device)? {
            tracing::info!(enrollment_id = %device, username = %username, result = "not_clean",
                "portal sign-in refused");
            log_refusal(
                portal,
                &entry(SignInResult::Failure, ReasonCode::Policy).with_detail(format!(
                    "the previous session's hand-off is not clean: {}",
                    h.remaining_text()
                )),
            )?;
            return Ok(Reply::page(
                StatusCode::CONFLICT,
                pages::not_ready_for_next(&h),
            ));
        }
        let risk = sign_in_risk::assess(store, &portal.lockout, &username, &device, now)?;
        attempt.succeeded()?;
        let rules = &portal.services.session;
        let policy = policy_for(store, reconciler, rules, &device, &username)?;
        let prompt = prompt_allowed(&policy, !risk.is_high());
        let success = entry(SignInResult::Success, ReasonCode::Success).with_risk(&risk);
        let mut extra = KeyspaceBatch::new();
        // A prompt still pending from an earlier sign-in was never answered.
        let abandoned = stay_prompt::get(store, &device)?.map(|p| {
            interrupted_entry(&device, &p, now)
        });
        if let Some(e) = &abandoned {
            sign_in_log::append_to_batch(&mut extra, e)?;
        }
        if prompt {
            stay_prompt::put(
                &mut extra,
                &device,
                &PendingPrompt {
                    username: username.clone(),
                    shown_at_ms: unix_millis(now),
                    source_address: client.address.map(|a| a.to_string()),
                    risk_reasons: success.risk_reasons.clone(),
                    cookie_sha256: None,
                },
            )?;
        } else {
            stay_prompt::delete(&mut extra, &device)?;
        }
        // Logged when it happens: the sign-in, or (with the prompt) that it was prompted; the
        // answer or the timeout adds its own entry.
        let logged = if prompt {
            entry(SignInResult::Prompted, ReasonCode::StaySignedInPrompt)
                .with_risk(&risk)
                .with_kmsi(true, None)
        } else {
            success
        };
        sign_in_log::append_to_batch(&mut extra, &logged)?;
        let signed = crate::session_policy::sign_in::sign_in_with(
            store, reconciler, rules, &device, &username, "portal", false, now, extra,
        )?;
        let events = &portal.services.events;
        if let Some(e) = &abandoned {
            sign_in_log::publish(events, e);
        }
        sign_in_log::publish(events, &logged);
        tracing::info!(enrollment_id = %device, username = %username, result = "signed_in",
            commands = signed.outcome.enqueued.len(), risk = ?risk.level, prompt, "portal sign-in");
        // The portal cookie of this web app is the session's secret (the "Sign out" clip's URL
        // carries the same one): it dies when the session ends.
        let Some(secret) = portal_session::secret_of(store, &device)? else {
            return Ok(Reply::failed());
        };
        let next = if prompt { "stay" } else { "progress" };
        let mut reply = Reply::see_other(format!("/portal/{token}/{next}"));
        reply.set_cookie = Some(cookie::session_cookie(
            &token,
            &secret,
            secure_cookie(portal, &client),
        ));
        Ok(reply)
    })
    .await
}

/// The `interrupted` entry of a prompt nobody answered.
pub fn interrupted_entry(
    device: &EnrollmentId,
    prompt: &PendingPrompt,
    now: SystemTime,
) -> SignInEntry {
    let mut entry = SignInEntry::new(
        now,
        &prompt.username,
        device.as_str(),
        SignInHow::Portal,
        SignInResult::Interrupted,
        ReasonCode::Interrupted,
    )
    .with_source_address(prompt.source_address.clone())
    .with_kmsi(true, None)
    .with_detail(format!(
        "\"Stay signed in?\" shown at {} was not answered",
        crate::timestamp::rfc3339_millis(prompt.shown_at_ms)
    ));
    entry.risk_reasons = prompt.risk_reasons.clone();
    entry
}

/// `GET /portal/{token}/stay`: the prompt while it is pending for the device's assignee, to
/// the browser that signed in.
pub async fn stay_page(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    headers: HeaderMap,
) -> Response {
    let cookie = cookie::value_in(&headers);
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !holds_session(portal, &device, cookie.as_deref())? {
            return Ok(Reply::see_other(format!("/portal/{token}")));
        }
        let store = portal.services.store.as_ref();
        let now_ms = unix_millis(SystemTime::now());
        let timeout_ms = policy_timeout_ms(portal)?;
        let open = stay_prompt::get(store, &device)?
            .is_some_and(|p| stay_prompt::is_open(&p, now_ms, timeout_ms));
        if !open || portal.services.reconciler.assignee(&device)? == NOBODY_USERNAME {
            return Ok(Reply::see_other(format!("/portal/{token}/progress")));
        }
        let csrf = portal.csrf.issue(&token, Instant::now())?;
        Ok(Reply::page(
            StatusCode::OK,
            pages::stay_signed_in(&token, &csrf),
        ))
    })
    .await
}

fn policy_timeout_ms(portal: &Portal) -> Result<u64, PortalError> {
    let policy = policy_record::load(portal.services.store.as_ref())?;
    Ok(u64::try_from(policy.prompt_timeout().as_millis()).unwrap_or(u64::MAX))
}

/// `POST /portal/{token}/stay`: Yes makes the lease and the portal cookie persistent (only
/// when the session rules still allow it: never in shared mode); No keeps both leased.
/// Either answer completes the sign-in's log entry. A late answer (the prompt timed out) is
/// logged as interrupted and changes nothing. Only the browser that signed in (its portal
/// cookie, the session's secret) can answer: any other gets 403 and the prompt stays pending.
pub async fn stay(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<StayForm>, FormRejection>,
) -> Response {
    let cookie_value = cookie::value_in(&headers);
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return rejected(&rejection).render(&portal),
    };
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !portal.csrf.redeem(&form.csrf, &token, Instant::now()) {
            return Ok(Reply::bad_request());
        }
        let yes = match form.answer.as_str() {
            "yes" => true,
            "no" => false,
            _ => return Ok(Reply::bad_request()),
        };
        let lock = portal.locks.of(device.as_str());
        let _held = device_lock::hold(&lock);
        let store = portal.services.store.as_ref();
        let now = SystemTime::now();
        let progress = Reply::see_other(format!("/portal/{token}/progress"));
        let Some(prompt) = stay_prompt::get(store, &device)? else {
            return Ok(progress);
        };
        let same_browser = holds_session(portal, &device, cookie_value.as_deref())?;
        let Some(cookie_value) = cookie_value.filter(|_| same_browser) else {
            tracing::info!(enrollment_id = %device,
                "stay-signed-in answer without the sign-in's portal cookie refused");
            return Ok(Reply::page(
                StatusCode::FORBIDDEN,
                pages::message(
                    "Not your question",
                    "Only the browser that signed in can answer \"Stay signed in?\".",
                ),
            ));
        };
        let mut batch = KeyspaceBatch::new();
        stay_prompt::delete(&mut batch, &device)?;
        let reconciler = &portal.services.reconciler;
        let current = reconciler.assignee(&device)?;
        let entry = if !stay_prompt::is_open(&prompt, unix_millis(now), policy_timeout_ms(portal)?)
            || current != prompt.username
        {
            interrupted_entry(&device, &prompt, now)
        } else {
            let mut e = SignInEntry::new(
                now,
                &prompt.username,
                device.as_str(),
                SignInHow::Portal,
                SignInResult::Success,
                ReasonCode::Success,
            )
            .with_source_address(prompt.source_address.clone())
            .with_kmsi(true, Some(yes));
            e.risk_reasons = prompt.risk_reasons.clone();
            e
        };
        let answered = entry.result == SignInResult::Success;
        let mut persistent = false;
        if answered && yes {
            let policy = policy_for(
                store,
                reconciler,
                &portal.services.session,
                &device,
                &prompt.username,
            )?;
            persistent = policy.persistent_allowed
                && lease::make_persistent(
                    store,
                    &device,
                    &prompt.username,
                    policy.shared_mode,
                    now,
                )?;
        }
        let entry = if answered && yes && !persistent {
            entry.with_detail("a persistent session is not allowed on this device now")
        } else {
            entry
        };
        sign_in_log::append_to_batch(&mut batch, &entry)?;
        store.apply(&batch)?;
        sign_in_log::publish(&portal.services.events, &entry);
        tracing::info!(enrollment_id = %device, username = %prompt.username,
            answer = if yes { "yes" } else { "no" }, persistent, "stay signed in answered");
        let mut reply = progress;
        reply.set_cookie = Some(if persistent {
            cookie::persistent_cookie(&token, &cookie_value, secure_cookie(portal, &client))
        } else {
            cookie::session_cookie(&token, &cookie_value, secure_cookie(portal, &client))
        });
        Ok(reply)
    })
    .await
}

/// Logs every prompt that timed out as `interrupted` and forgets it. Returns how many.
pub fn sweep_prompts(portal: &Portal, now: SystemTime) -> Result<usize, PortalError> {
    let store = portal.services.store.as_ref();
    let timeout_ms = policy_timeout_ms(portal)?;
    let mut n = 0;
    for (key, prompt) in stay_prompt::timed_out(store, unix_millis(now), timeout_ms)? {
        let Ok(device) = EnrollmentId::parse(&key) else {
            continue;
        };
        let lock = portal.locks.of(device.as_str());
        let _held = device_lock::hold(&lock);
        // Answered (or replaced) meanwhile?
        if stay_prompt::get(store, &device)?.as_ref() != Some(&prompt) {
            continue;
        }
        let entry = interrupted_entry(&device, &prompt, now);
        let mut batch = KeyspaceBatch::new();
        stay_prompt::delete(&mut batch, &device)?;
        sign_in_log::append_to_batch(&mut batch, &entry)?;
        store.apply(&batch)?;
        sign_in_log::publish(&portal.services.events, &entry);
        tracing::info!(enrollment_id = %device, username = %prompt.username,
            "stay-signed-in prompt not answered: sign-in interrupted");
        n += 1;
    }
    Ok(n)
}

/// The progress page of `device`'s session, reached under `base`.
fn progress_page(portal: &Portal, device: &EnrollmentId, base: &str) -> Result<Reply, PortalError> {
    let reconciler = &portal.services.reconciler;
    let now = SystemTime::now();
    let progress = reconciler.progress(device, now)?;
    if progress.ready {
        reconciler.note_ready(device, now)?;
    }
    let end = session_end(portal, device, now)?;
    Ok(Reply::page(
        StatusCode::OK,
        pages::progress(base, &progress, end),
    ))
}

/// `GET /portal/{token}/progress`: to the browser that signed in (its cookie); others are sent
/// to `/portal/{token}`.
pub async fn progress(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    headers: HeaderMap,
) -> Response {
    let cookie = cookie::value_in(&headers);
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if portal.services.reconciler.assignee(&device)? == NOBODY_USERNAME
            || !holds_session(portal, &device, cookie.as_deref())?
        {
            return Ok(Reply::see_other(format!("/portal/{token}")));
        }
        progress_page(portal, &device, &format!("/portal/{token}"))
    })
    .await
}

/// `GET /portal/session/{secret}/progress`: the same progress in the "Sign out" clip (where the
/// person watches it when the "Sign in" clip is removed under them).
pub async fn session_progress(
    State(portal): State<Arc<Portal>>,
    Path(secret): Path<String>,
    lang: Lang,
) -> Response {
    blocking(portal, lang, move |portal| {
        let Some(device) = portal_session::device_of(portal.services.store.as_ref(), &secret)?
        else {
            return Ok(session_ended());
        };
        if portal.services.reconciler.assignee(&device)? == NOBODY_USERNAME {
            return Ok(session_ended());
        }
        progress_page(portal, &device, &session_base(&secret))
    })
    .await
}

/// Signs `device` out (if someone is) and sends the browser to the hand-off's progress under
/// the device's new portal token.
fn sign_out_device(portal: &Portal, device: &EnrollmentId) -> Result<Reply, PortalError> {
    let reconciler = &portal.services.reconciler;
    if reconciler.assignee(device)? != NOBODY_USERNAME {
        let outcome = crate::session_policy::sign_in::sign_out(
            reconciler,
            &portal.services.events,
            device,
            SignInHow::Portal,
            SystemTime::now(),
        )?;
        tracing::info!(enrollment_id = %device, commands = outcome.enqueued.len(), "portal sign-out");
    }
    let Some(token) = portal_token::token_of(portal.services.store.as_ref(), device)? else {
        return Ok(Reply::failed());
    };
    Ok(Reply::see_other(format!("/portal/{token}/signed-out")))
}

/// `POST /portal/{token}/sign-out`: only from the browser that signed in (its cookie); the
/// device's portal token alone signs nobody out (403).
pub async fn sign_out(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    let cookie = cookie::value_in(&headers);
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return rejected(&rejection).render(&portal),
    };
    blocking(portal, lang, move |portal| {
        let Some(device) = device_of(portal, &token)? else {
            return Ok(Reply::not_found());
        };
        if !portal.csrf.redeem(&form.csrf, &token, Instant::now()) {
            tracing::info!(enrollment_id = %device, "portal sign-out without a valid CSRF token");
            return Ok(Reply::bad_request());
        }
        let lock = portal.locks.of(device.as_str());
        let _held = device_lock::hold(&lock);
        if portal.services.reconciler.assignee(&device)? != NOBODY_USERNAME
            && !holds_session(portal, &device, cookie.as_deref())?
        {
            tracing::info!(enrollment_id = %device,
                "portal sign-out without the session's cookie refused");
            return Ok(Reply::page(
                StatusCode::FORBIDDEN,
                pages::message(pages::IN_USE_HEADING, pages::SIGN_OUT_WITH_CLIP),
            ));
        }
        let mut reply = sign_out_device(portal, &device)?;
        reply.set_cookie = Some(cookie::cleared_cookie(
            &token,
            secure_cookie(portal, &client),
        ));
        Ok(reply)
    })
    .await
}

/// `POST /portal/session/{secret}/sign-out`: the "Sign out" clip's form; the secret is the
/// session's, so it signs out only the session that installed the clip.
pub async fn session_sign_out(
    State(portal): State<Arc<Portal>>,
    Path(secret): Path<String>,
    lang: Lang,
    form: Result<Form<SignOutForm>, FormRejection>,
) -> Response {
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => return rejected(&rejection).render(&portal),
    };
    blocking(portal, lang, move |portal| {
        let store = portal.services.store.as_ref();
        let Some(device) = portal_session::device_of(store, &secret)? else {
            return Ok(session_ended());
        };
        if !portal
            .csrf
            .redeem(&form.csrf, &session_csrf_key(&secret), Instant::now())
        {
            tracing::info!(enrollment_id = %device, "portal sign-out without a valid CSRF token");
            return Ok(Reply::bad_request());
        }
        let lock = portal.locks.of(device.as_str());
        let _held = device_lock::hold(&lock);
        // Ended while this request waited for the lock?
        if !portal_session::is_current(store, &device, &secret)? {
            return Ok(session_ended());
        }
        sign_out_device(portal, &device)
    })
    .await
}

/// `GET /portal/{token}/signed-out`.
pub async fn signed_out(
    State(portal): State<Arc<Portal>>,
    Path(token): Path<String>,
    lang: Lang,
) -> Response {
    blocking(portal, lang, move |portal| {
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
        Ok(Reply::page(
            StatusCode::OK,
            pages::signed_out(&progress, &format!("/portal/{token}")),
        ))
    })
    .await
}

//! `GET /mdm/enroll?token=<token>`: the enrollment profile, opened in Safari on the device (or
//! fetched by a script). `&identity=pkcs12` serves the variant with a server-made identity
//! instead of SCEP.
//!
//! A download needs an enrollment token (`token=<id>.<secret>`, see [`super::token`]) and takes
//! one of its uses; the profile's one-time challenge (or PKCS#12 identity) is bound to that use.
//! With `--open-enrollment` a request without a token is served too (a token, when given, is
//! still used). The PKCS#12 variant's RSA key generation runs a few at a time
//! ([`KEY_GENERATION_PERMITS`]) and never without a valid token (or open enrollment).
//!
//! Answers: 200 `application/x-apple-aspen-config`; 403 JSON `enrollment_token_required`,
//! `enrollment_token_invalid`, `_expired`, `_used_up` or `_revoked`; 409 JSON when no push
//! certificate is stored yet (the profile needs its topic; no use is taken); 400 JSON for an
//! unknown `identity` value; 503 JSON (`Retry-After`) when PKCS#12 key generation stays busy;
//! 500 JSON on a server fault.
//!
//! `GET /mdm/trust`: the trust profile, the root of the server's TLS chain alone (signed like the
//! enrollment profile). 200 `application/x-apple-aspen-config`; 404 JSON `no_private_root` when
//! the chain is publicly trusted or the server speaks plain HTTP; 500 JSON on a server fault.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::profile_issuer::{
    EnrollProfileError, EnrollmentProfiles, IdentityKind, IssuedProfile, PROFILE_CONTENT_TYPE,
};
use super::store_token::EnrollmentTokens;
use super::token::{self, TokenRefusal};

/// PKCS#12 identities generated at once (RSA-2048 key generation: about 0.3 s of CPU each).
pub const KEY_GENERATION_PERMITS: usize = 2;
/// How long a PKCS#12 download waits for a key-generation slot before 503.
const KEY_GENERATION_WAIT: Duration = Duration::from_secs(20);

/// The route's query.
#[derive(Debug, Deserialize)]
struct EnrollQuery {
    identity: Option<String>,
    token: Option<String>,
}

/// What `/mdm/enroll` and `/mdm/trust` need.
#[derive(Debug, Clone)]
pub struct EnrollRoute {
    profiles: Arc<EnrollmentProfiles>,
    tokens: EnrollmentTokens,
    open_enrollment: bool,
    key_generation: Arc<Semaphore>,
}

impl EnrollRoute {
    /// Serves `profiles`; downloads need one of `tokens` unless `open_enrollment`.
    pub fn new(
        profiles: Arc<EnrollmentProfiles>,
        tokens: EnrollmentTokens,
        open_enrollment: bool,
    ) -> Self {
        Self {
            profiles,
            tokens,
            open_enrollment,
            key_generation: Arc::new(Semaphore::new(KEY_GENERATION_PERMITS)),
        }
    }
}

/// The `/mdm/enroll` and `/mdm/trust` routes.
pub fn router(route: EnrollRoute) -> Router {
    Router::new()
        .route("/mdm/enroll", get(enroll))
        .route("/mdm/trust", get(trust))
        .with_state(route)
}

/// A profile download; `disposition` is the Content-Disposition (with the file name).
fn profile_response(profile: IssuedProfile, disposition: &'static str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROFILE_CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static(disposition),
            ),
        ],
        profile.bytes,
    )
        .into_response()
}

async fn trust(State(route): State<EnrollRoute>) -> Response {
    let profiles = route.profiles;
    let built = tokio::task::spawn_blocking(move || profiles.trust_profile()).await;
    match built {
        Ok(Ok(Some(profile))) => {
            tracing::info!(signed = profile.signed, "trust profile served");
            profile_response(profile, "attachment; filename=\"trust.mobileconfig\"")
        }
        Ok(Ok(None)) => json_error(
            StatusCode::NOT_FOUND,
            "no_private_root",
            "the server's TLS certificate needs no extra root: it is publicly trusted, or TLS is \
             terminated in front of Baton"
                .into(),
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "serving the trust profile failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the trust profile could not be built".into(),
            )
        }
        Err(error) => {
            tracing::error!(%error, "trust profile worker failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the trust profile could not be built".into(),
            )
        }
    }
}

fn json_error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

fn token_refused(refusal: TokenRefusal) -> Response {
    json_error(StatusCode::FORBIDDEN, refusal.code(), refusal.to_string())
}

fn internal(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "{what}");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the enrollment profile could not be built".into(),
    )
}

async fn enroll(State(route): State<EnrollRoute>, Query(query): Query<EnrollQuery>) -> Response {
    let token = query.token.filter(|t| !t.is_empty());
    if token.is_none() && !route.open_enrollment {
        return token_refused(TokenRefusal::Required);
    }
    let kind = match query.identity.as_deref() {
        None | Some("scep") => IdentityKind::Scep,
        Some("pkcs12") => IdentityKind::Pkcs12,
        Some(other) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("identity must be scep or pkcs12, not {other:?}"),
            );
        }
    };
    // Key generation is the expensive part: wait for a slot before a use is taken.
    let _permit = match kind {
        IdentityKind::Pkcs12 => {
            let slot = tokio::time::timeout(
                KEY_GENERATION_WAIT,
                Arc::clone(&route.key_generation).acquire_owned(),
            )
            .await;
            match slot {
                Ok(Ok(permit)) => Some(permit),
                _ => {
                    let mut response = json_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "busy",
                        "identity generation is busy; retry shortly".into(),
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                    return response;
                }
            }
        }
        _ => None,
    };
    let issued = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        // No use is taken while no profile can be built.
        if route.profiles.default_topic()?.is_none() {
            return Err(EnrollProfileError::NoPushCertificate);
        }
        let hint = match token {
            None => None,
            Some(t) => match route.tokens.take_use(&t, now) {
                Ok(Ok((record, number))) => {
                    tracing::info!(token_id = %record.id, label = %record.label, use_number = number,
                        max_uses = record.max_uses, "enrollment token used");
                    Some(token::hint(&record.id, number))
                }
                Ok(Err(refusal)) => return Ok(Err(refusal)),
                Err(error) => return Err(EnrollProfileError::Token(error)),
            },
        };
        route.profiles.issue(kind, hint, now).map(Ok)
    })
    .await;
    match issued {
        Ok(Ok(Ok(profile))) => {
            tracing::info!(identity = ?kind, signed = profile.signed,
                "enrollment profile served");
            profile_response(profile, "attachment; filename=\"enroll.mobileconfig\"")
        }
        Ok(Ok(Err(refusal))) => {
            tracing::info!(reason = refusal.code(), "enrollment profile refused");
            token_refused(refusal)
        }
        Ok(Err(EnrollProfileError::NoPushCertificate)) => json_error(
            StatusCode::CONFLICT,
            "no_push_certificate",
            EnrollProfileError::NoPushCertificate.to_string(),
        ),
        Ok(Err(error)) => internal("serving the enrollment profile failed", error),
        Err(error) => internal("enrollment profile worker failed", error),
    }
}

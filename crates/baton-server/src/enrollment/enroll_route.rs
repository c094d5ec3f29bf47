//! `GET /mdm/enroll`: the enrollment profile, opened in Safari on the device (or fetched by a
//! script). `?identity=pkcs12` serves the variant with a server-made identity instead of SCEP.
//!
//! Answers: 200 `application/x-apple-aspen-config`; 409 JSON when no push certificate is stored
//! yet (the profile needs its topic); 400 JSON for an unknown `identity` value; 500 JSON on a
//! server fault.
//!
//! `GET /mdm/trust`: the trust profile, the root of the server's TLS chain alone (signed like the
//! enrollment profile). 200 `application/x-apple-aspen-config`; 404 JSON `no_private_root` when
//! the chain is publicly trusted or the server speaks plain HTTP; 500 JSON on a server fault.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::profile_issuer::{
    EnrollProfileError, EnrollmentProfiles, IdentityKind, IssuedProfile, PROFILE_CONTENT_TYPE,
};

/// The route's query.
#[derive(Debug, Deserialize)]
struct EnrollQuery {
    identity: Option<String>,
}

/// The `/mdm/enroll` and `/mdm/trust` routes.
pub fn router(profiles: Arc<EnrollmentProfiles>) -> Router {
    Router::new()
        .route("/mdm/enroll", get(enroll))
        .route("/mdm/trust", get(trust))
        .with_state(profiles)
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

async fn trust(State(profiles): State<Arc<EnrollmentProfiles>>) -> Response {
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

async fn enroll(
    State(profiles): State<Arc<EnrollmentProfiles>>,
    Query(query): Query<EnrollQuery>,
) -> Response {
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
    let issued =
        tokio::task::spawn_blocking(move || profiles.issue(kind, None, SystemTime::now())).await;
    match issued {
        Ok(Ok(profile)) => {
            tracing::info!(identity = ?kind, signed = profile.signed,
                "enrollment profile served");
            profile_response(profile, "attachment; filename=\"enroll.mobileconfig\"")
        }
        Ok(Err(EnrollProfileError::NoPushCertificate)) => json_error(
            StatusCode::CONFLICT,
            "no_push_certificate",
            EnrollProfileError::NoPushCertificate.to_string(),
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "serving the enrollment profile failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the enrollment profile could not be built".into(),
            )
        }
        Err(error) => {
            tracing::error!(%error, "enrollment profile worker failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the enrollment profile could not be built".into(),
            )
        }
    }
}

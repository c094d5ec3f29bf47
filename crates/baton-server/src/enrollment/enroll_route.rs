//! `GET /mdm/enroll`: the enrollment profile, opened in Safari on the device (or fetched by a
//! script). `?identity=pkcs12` serves the variant with a server-made identity instead of SCEP.
//!
//! Answers: 200 `application/x-apple-aspen-config`; 409 JSON when no push certificate is stored
//! yet (the profile needs its topic); 400 JSON for an unknown `identity` value; 500 JSON on a
//! server fault.

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
    EnrollProfileError, EnrollmentProfiles, IdentityKind, PROFILE_CONTENT_TYPE,
};

/// The route's query.
#[derive(Debug, Deserialize)]
struct EnrollQuery {
    identity: Option<String>,
}

/// The `/mdm/enroll` route.
pub fn router(profiles: Arc<EnrollmentProfiles>) -> Router {
    Router::new()
        .route("/mdm/enroll", get(enroll))
        .with_state(profiles)
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
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(PROFILE_CONTENT_TYPE),
                    ),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                    (
                        header::CONTENT_DISPOSITION,
                        HeaderValue::from_static("attachment; filename=\"enroll.mobileconfig\""),
                    ),
                ],
                profile.bytes,
            )
                .into_response()
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

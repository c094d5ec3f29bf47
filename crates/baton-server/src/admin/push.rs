//! The push admin API:
//!
//! - `GET /api/v1/push-certificate`: topic, subject, validity, days left and expiry state of the
//!   certificate in use (never the key); 404 when none.
//! - `PUT /api/v1/push-certificate[?force=true]`: upload or replace it, as JSON
//!   `{"pkcs12": "<base64 DER>", "password": "…"}` or `{"cert_pem": "…", "key_pem": "…"}`
//!   (`key_pem` may be left out when `cert_pem` holds both). Stored and hot-swapped into the
//!   running sender; 409 `topic_conflict` when devices are enrolled with another topic, unless
//!   forced.
//! - `POST /api/v1/devices/{id}/push`: push one channel now and return APNs' answer.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use baton_apns::PushOutcome;
use serde::Deserialize;

use super::devices::parse_id;
use crate::error_response::ApiError;
use crate::push::certificate;
use crate::push::metrics::result_label;
use crate::push::{CertificateView, PushError};
use crate::state::AppState;

/// An uploaded push certificate.
enum Upload {
    /// A DER PKCS#12 file, base64.
    Pkcs12 {
        pkcs12: String,
        password: Option<String>,
    },
    /// PEM certificate (chain) and key.
    Pem {
        cert_pem: String,
        key_pem: Option<String>,
    },
}

/// The upload body as sent: `{"pkcs12","password"?}` or `{"cert_pem","key_pem"?}`; unknown
/// fields refused (a misspelt `pasword` must not upload without a password).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    #[serde(default)]
    pkcs12: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    cert_pem: Option<String>,
    #[serde(default)]
    key_pem: Option<String>,
}

impl UploadBody {
    fn into_upload(self) -> Result<Upload, &'static str> {
        match self {
            UploadBody {
                pkcs12: Some(pkcs12),
                password,
                cert_pem: None,
                key_pem: None,
            } => Ok(Upload::Pkcs12 { pkcs12, password }),
            UploadBody {
                pkcs12: None,
                password: None,
                cert_pem: Some(cert_pem),
                key_pem,
            } => Ok(Upload::Pem { cert_pem, key_pem }),
            _ => Err("give either pkcs12 (and password) or cert_pem (and key_pem)"),
        }
    }
}

/// Query of the upload.
#[derive(Debug, Default, Deserialize)]
pub struct UploadQuery {
    /// Install even when devices are enrolled with another topic.
    #[serde(default)]
    pub force: bool,
}

fn error_json(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(serde_json::json!({ "error": code, "message": message })),
    )
        .into_response()
}

/// The one mapping of [`PushError`] to HTTP.
fn push_error(error: PushError) -> Response {
    let message = error.to_string();
    match error {
        PushError::NotConfigured => error_json(
            StatusCode::SERVICE_UNAVAILABLE,
            "push_not_configured",
            message,
        ),
        PushError::UnknownChannel(_) => error_json(StatusCode::NOT_FOUND, "not_found", message),
        PushError::NoToken(_) => error_json(StatusCode::CONFLICT, "no_push_token", message),
        PushError::TokenInvalid(_) => {
            error_json(StatusCode::CONFLICT, "push_token_invalid", message)
        }
        PushError::TopicConflict { enrolled, new } => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": "topic_conflict",
                "message": format!("{message}; upload with ?force=true to replace it anyway"),
                "enrolled_topics": enrolled,
                "new_topic": new.as_str(),
            })),
        )
            .into_response(),
        PushError::Certificate(_) | PushError::Client(_) => {
            error_json(StatusCode::BAD_REQUEST, "bad_certificate", message)
        }
        other => ApiError::Internal(other.to_string()).into_response(),
    }
}

/// `GET /api/v1/push-certificate`.
pub async fn show(State(state): State<AppState>) -> Result<Json<CertificateView>, ApiError> {
    state
        .push_service
        .certificate_view(SystemTime::now())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("no push certificate configured".into()))
}

/// `PUT /api/v1/push-certificate[?force=true]`.
pub async fn upload(
    State(state): State<AppState>,
    Query(query): Query<UploadQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let force = query.force;
    let body = match body {
        Ok(b) => b,
        Err(rejection) => return ApiError::BadRequest(rejection.body_text()).into_response(),
    };
    let upload = match serde_json::from_slice::<UploadBody>(&body)
        .map_err(|e| e.to_string())
        .and_then(|b| b.into_upload().map_err(str::to_owned))
    {
        Ok(u) => u,
        Err(e) => {
            return ApiError::BadRequest(format!(
                "expected {{\"pkcs12\", \"password\"}} or {{\"cert_pem\", \"key_pem\"}}: {e}"
            ))
            .into_response();
        }
    };
    let parsed = match upload {
        Upload::Pkcs12 { pkcs12, password } => {
            match base64::engine::general_purpose::STANDARD.decode(pkcs12.trim()) {
                Ok(der) => certificate::parse(&der, None, Some(password.as_deref().unwrap_or(""))),
                Err(e) => {
                    return ApiError::BadRequest(format!("pkcs12 is not base64: {e}"))
                        .into_response();
                }
            }
        }
        Upload::Pem { cert_pem, key_pem } => certificate::parse(
            cert_pem.as_bytes(),
            Some(key_pem.as_deref().unwrap_or(&cert_pem).as_bytes()),
            None,
        ),
    };
    let cert = match parsed {
        Ok(c) => c,
        Err(e) => return push_error(PushError::Certificate(e)),
    };
    match state.push_service.install_upload(cert, force).await {
        Ok(view) => {
            let mut body = serde_json::to_value(&view).unwrap_or_default();
            if state.push_service.has_configured_file()
                && let Some(map) = body.as_object_mut()
            {
                map.insert(
                    "warning".into(),
                    serde_json::Value::String(
                        "--push-cert is configured and wins at the next start".into(),
                    ),
                );
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => push_error(e),
    }
}

/// The JSON answer of a manual push.
fn outcome_json(id: &str, outcome: &PushOutcome) -> serde_json::Value {
    let mut v = serde_json::json!({
        "enrollment_id": id,
        "result": result_label(outcome),
        "apns_id": outcome.apns_id(),
        "message": outcome.to_string(),
    });
    if let (Some(map), PushOutcome::Permanent { status, reason, .. }) = (v.as_object_mut(), outcome)
    {
        map.insert("status".into(), (*status).into());
        map.insert(
            "reason".into(),
            reason
                .as_ref()
                .map(|r| serde_json::Value::String(r.as_str().to_owned()))
                .unwrap_or_default(),
        );
    }
    if let (Some(map), PushOutcome::Delivered { attempts, .. }) = (v.as_object_mut(), outcome) {
        map.insert("attempts".into(), (*attempts).into());
    }
    v
}

/// `POST /api/v1/devices/{id}/push`: 200 with the outcome when APNs was asked (whatever it
/// answered), 404/409/503 when no push could be sent.
pub async fn push_device(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    match state.push_service.push_now(&id).await {
        Ok(outcome) => (StatusCode::OK, Json(outcome_json(id.as_str(), &outcome))).into_response(),
        Err(e) => push_error(e),
    }
}

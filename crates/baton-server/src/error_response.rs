//! Every error a handler can return, and the one place that maps them to HTTP.
//!
//! Devices ([`DeviceError`]) never get a 401: iOS unenrolls on 401. Whatever the device did wrong
//! is a 400 with a short reason, logged with a structured reason code; an Authenticate the
//! enrollment rules refuse (another device's active binding, a token that does not allow it) is
//! a 403; server faults are 500.
//! Operators ([`ApiError`]) get JSON `{"error": code, "message": text}` with the usual statuses,
//! including 401 for a missing or wrong API key.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use baton_proto::{CheckinError, EnrollmentId, ReportError};
use baton_store::StoreError;

use crate::identity::IdentityError;

/// Why a check-in or command-channel request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The signature or client certificate did not verify.
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// The check-in body did not decode.
    #[error("check-in message: {0}")]
    Checkin(#[from] CheckinError),
    /// The command report did not decode.
    #[error("command report: {0}")]
    Report(#[from] ReportError),
    /// The body could not be read (too large, connection error).
    #[error("body rejected: {0}")]
    BodyRejected(String),
    /// The certificate is bound to another device.
    #[error("certificate is bound to another enrollment ({bound_to})")]
    CertificateBoundElsewhere {
        /// The enrollment that owns the certificate.
        bound_to: EnrollmentId,
    },
    /// The certificate was revoked (the device checked out with it).
    #[error("certificate serial {serial} is revoked")]
    CertificateRevoked {
        /// Its serial number at the built-in CA.
        serial: u64,
    },
    /// The certificate is not the one bound to this enrollment at Authenticate.
    #[error("certificate is not bound to enrollment {0}")]
    CertificateNotBound(EnrollmentId),
    /// The message names an enrollment the server does not know.
    #[error("unknown enrollment {0}")]
    UnknownEnrollment(EnrollmentId),
    /// The message is not valid on this kind of channel (e.g. Authenticate on a user channel).
    #[error("{0}")]
    InvalidChannel(&'static str),
    /// An Authenticate would replace the active binding of an enrolled device, and nothing
    /// allows it (decision 0010).
    #[error("re-enrollment of {device} refused: {reason}")]
    ReEnrollmentRefused {
        /// The device.
        device: EnrollmentId,
        /// The rule's reason code.
        reason: &'static str,
    },
    /// The certificate was obtained with an enrollment token that does not allow this
    /// enrollment (revoked, or the device's serial number is not in its allow-list).
    #[error("enrollment token {token}: {reason}")]
    EnrollmentTokenRefused {
        /// The token's id.
        token: String,
        /// Why.
        reason: &'static str,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// A server-side failure (a panicked worker, an encoding failure).
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for DeviceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownEnrollment(id) => DeviceError::UnknownEnrollment(id),
            StoreError::CertificateBoundElsewhere(bound_to) => {
                DeviceError::CertificateBoundElsewhere { bound_to }
            }
            other => DeviceError::Store(other),
        }
    }
}

impl DeviceError {
    /// The HTTP status: 400 for anything the device sent, 403 for an enrollment the rules
    /// refuse, 503 while the store cannot take writes (full or stuck disk), 500 for other
    /// server faults. Never 401.
    pub fn status(&self) -> StatusCode {
        match self {
            DeviceError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            DeviceError::Identity(IdentityError::Crypto(_))
            | DeviceError::Store(_)
            | DeviceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            DeviceError::ReEnrollmentRefused { .. }
            | DeviceError::EnrollmentTokenRefused { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// A stable reason code for logs and the refusal metric (see
    /// [`crate::metrics::REFUSAL_REASONS`]).
    pub fn reason_code(&self) -> &'static str {
        match self {
            DeviceError::Identity(IdentityError::Crypto(_)) => "internal",
            DeviceError::Identity(_) => "identity",
            DeviceError::Checkin(_) | DeviceError::Report(_) => "malformed_message",
            DeviceError::BodyRejected(_) => "body_rejected",
            DeviceError::CertificateBoundElsewhere { .. } => "certificate_bound_elsewhere",
            DeviceError::CertificateNotBound(_) => "certificate_not_bound",
            DeviceError::CertificateRevoked { .. } => "certificate_revoked",
            DeviceError::UnknownEnrollment(_) => "unknown_enrollment",
            DeviceError::InvalidChannel(_) => "invalid_channel",
            DeviceError::ReEnrollmentRefused { .. } => "re_enrollment_refused",
            DeviceError::EnrollmentTokenRefused { .. } => "enrollment_token_refused",
            DeviceError::Store(_) => "store",
            DeviceError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for DeviceError {
    fn into_response(self) -> Response {
        let status = self.status();
        let text = if status.is_client_error() {
            format!("{}\n", self.reason_code())
        } else {
            "internal error\n".to_owned()
        };
        (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            text,
        )
            .into_response()
    }
}

/// Why an admin API request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No or a wrong API key.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The named resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than allowed.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The Content-Type is not one this endpoint takes.
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// A server-side failure.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UnknownEnrollment(id) => ApiError::NotFound(format!("unknown device {id}")),
            StoreError::DuplicateCommand(uuid) => {
                ApiError::Conflict(format!("command {uuid} already exists"))
            }
            other => ApiError::Store(other),
        }
    }
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Store(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Store(e) if e.is_unavailable() => "storage_unavailable",
            ApiError::Store(_) | ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "admin API request failed: storage unavailable");
            format!("the store cannot take writes right now, retry later: {self}")
        } else if status.is_server_error() {
            tracing::error!(error = %self, "admin API request failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let body = Json(serde_json::json!({ "error": self.code(), "message": message }));
        let mut response = (status, body).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"baton\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_errors_are_never_401() {
        let errors = [
            DeviceError::Identity(IdentityError::MissingIdentity),
            DeviceError::Identity(IdentityError::BadSignature),
            DeviceError::BodyRejected("too large".into()),
            DeviceError::CertificateNotBound(EnrollmentId::device("X").unwrap()),
            DeviceError::UnknownEnrollment(EnrollmentId::device("X").unwrap()),
            DeviceError::ReEnrollmentRefused {
                device: EnrollmentId::device("X").unwrap(),
                reason: "active_binding",
            },
            DeviceError::EnrollmentTokenRefused {
                token: "0a".into(),
                reason: "revoked",
            },
            DeviceError::Internal("x".into()),
            DeviceError::Store(StoreError::CommitTimeout {
                waited: std::time::Duration::from_secs(1),
            }),
        ];
        for e in errors {
            let status = e.status();
            assert_ne!(status, StatusCode::UNAUTHORIZED);
            assert!(crate::metrics::REFUSAL_REASONS.contains(&e.reason_code()));
        }
        assert_eq!(
            DeviceError::Identity(IdentityError::DigestMismatch).status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn store_errors_map_to_api_statuses() {
        let id = EnrollmentId::device("X").unwrap();
        assert_eq!(
            ApiError::from(StoreError::UnknownEnrollment(id)).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(ApiError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
    }
}

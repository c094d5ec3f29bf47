//! Enrollment tokens and re-enrollment approvals:
//!
//! - `POST /api/v1/enrollment-tokens` (`{"label", "expires_in_seconds"?, "uses"?,
//!   "device_group"?, "serials"?, "re_enroll"?}`): 201 with the token string and its enrollment
//!   URL, shown this once (only the secret's hash is stored).
//! - `GET /api/v1/enrollment-tokens`, `GET /api/v1/enrollment-tokens/{id}`: the tokens, their
//!   state (`active`, `expired`, `used_up`, `revoked`) and uses; never the secret.
//! - `POST /api/v1/enrollment-tokens/{id}/revoke`: no more downloads, and certificates obtained
//!   with it but not yet used cannot enroll.
//! - `POST /api/v1/devices/{id}/re-enrollment` (`{"valid_for_seconds"?}`, default 3600, at most
//!   seven days): lets the next Authenticate with a new certificate replace the device's active
//!   binding (decision 0010); `DELETE` withdraws the approval.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use baton_store::unix_millis;
use serde::{Deserialize, Serialize};

use super::blocking;
use super::devices::parse_id;
use crate::directory::is_static_device_group;
use crate::enrollment::store_re_enrollment::{self, DEFAULT_APPROVAL, MAX_APPROVAL};
use crate::enrollment::store_token::TokenStoreError;
use crate::enrollment::token::{EnrollmentToken, TokenInput, TokenState, is_token_id};
use crate::error_response::ApiError;
use crate::state::AppState;
use crate::timestamp::rfc3339_millis;

/// A token as operators see it (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    /// The id.
    pub id: String,
    /// The label.
    pub label: String,
    /// `active`, `expired`, `used_up` or `revoked`.
    pub state: TokenState,
    /// Downloads so far.
    pub uses: u32,
    /// Downloads allowed.
    pub max_uses: u32,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// When it was last used (RFC 3339).
    pub last_used_at: Option<String>,
    /// When it was revoked (RFC 3339).
    pub revoked_at: Option<String>,
    /// The device group enrolled devices join.
    pub device_group: Option<String>,
    /// Serial numbers allowed to enroll (empty: any).
    pub serials: Vec<String>,
    /// Devices whose active enrollment it may replace.
    pub re_enroll: Vec<String>,
}

impl TokenView {
    fn of(t: &EnrollmentToken, now: SystemTime) -> Self {
        Self {
            id: t.id.clone(),
            label: t.label.clone(),
            state: t.state(unix_millis(now)),
            uses: t.uses,
            max_uses: t.max_uses,
            created_at: rfc3339_millis(t.created_at_ms),
            expires_at: rfc3339_millis(t.expires_at_ms),
            last_used_at: t.last_used_at_ms.map(rfc3339_millis),
            revoked_at: t.revoked_at_ms.map(rfc3339_millis),
            device_group: t.device_group.clone(),
            serials: t.serials.iter().cloned().collect(),
            re_enroll: t.re_enroll.iter().cloned().collect(),
        }
    }
}

/// A new token: its view, the token string and its enrollment URL.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub view: TokenView,
    /// The token string (`<id>.<secret>`), shown only in this answer.
    pub token: String,
    /// The enrollment URL to open on a device (or to encode in a QR code).
    pub url: String,
}

impl From<TokenStoreError> for ApiError {
    fn from(e: TokenStoreError) -> Self {
        match e {
            TokenStoreError::Store(e) => ApiError::from(e),
            TokenStoreError::Contended(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn checked_id(id: &str) -> Result<(), ApiError> {
    if is_token_id(id) {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("unknown enrollment token {id}")))
    }
}

/// `POST /api/v1/enrollment-tokens`.
pub async fn create(
    State(state): State<AppState>,
    Json(input): Json<TokenInput>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let spec = input.validate().map_err(ApiError::BadRequest)?;
    let created = blocking(move || {
        if let Some(group) = &spec.device_group
            && !is_static_device_group(state.store.as_ref(), group)?
        {
            return Err(ApiError::BadRequest(format!(
                "device_group {group:?} is not a device group with static members"
            )));
        }
        let now = SystemTime::now();
        let (record, token) = state.enrollment_tokens.create(spec, now)?;
        tracing::info!(token_id = %record.id, label = %record.label, uses = record.max_uses,
            device_group = record.device_group.as_deref().unwrap_or(""),
            "enrollment token created");
        Ok(CreatedToken {
            view: TokenView::of(&record, now),
            url: state.enrollment_tokens.url(&token),
            token,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/enrollment-tokens`: every token, newest first.
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let views = blocking(move || {
        let now = SystemTime::now();
        let mut tokens = state.enrollment_tokens.list()?;
        tokens.sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
        Ok(tokens
            .iter()
            .map(|t| TokenView::of(t, now))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(serde_json::json!({ "enrollment_tokens": views })))
}

/// `GET /api/v1/enrollment-tokens/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    checked_id(&id)?;
    let view = blocking(move || {
        state
            .enrollment_tokens
            .get(&id)?
            .map(|t| TokenView::of(&t, SystemTime::now()))
            .ok_or_else(|| ApiError::NotFound(format!("unknown enrollment token {id}")))
    })
    .await?;
    Ok(Json(view))
}

/// `POST /api/v1/enrollment-tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, ApiError> {
    checked_id(&id)?;
    let view = blocking(move || {
        let now = SystemTime::now();
        let token = state
            .enrollment_tokens
            .revoke(&id, now)?
            .ok_or_else(|| ApiError::NotFound(format!("unknown enrollment token {id}")))?;
        tracing::info!(token_id = %token.id, label = %token.label, "enrollment token revoked");
        Ok(TokenView::of(&token, now))
    })
    .await?;
    Ok(Json(view))
}

/// `POST /api/v1/devices/{id}/re-enrollment` body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// How long the approval waits for the device, in seconds (default 3600, at most 7 days).
    #[serde(default)]
    pub valid_for_seconds: Option<u64>,
}

/// `POST /api/v1/devices/{id}/re-enrollment`: approves one re-enrollment of the device.
pub async fn approve_re_enrollment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?.parent();
    let body = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let input: ApprovalInput = if body.iter().all(u8::is_ascii_whitespace) {
        ApprovalInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    };
    let window = input
        .valid_for_seconds
        .map_or(DEFAULT_APPROVAL, Duration::from_secs);
    if window.is_zero() || window > MAX_APPROVAL {
        return Err(ApiError::BadRequest(format!(
            "valid_for_seconds must be between 1 and {}",
            MAX_APPROVAL.as_secs()
        )));
    }
    let approval = blocking(move || {
        if state.store.enrollment(&id)?.is_none() {
            return Err(ApiError::NotFound(format!("unknown device {id}")));
        }
        let approval =
            store_re_enrollment::approve(state.store.as_ref(), &id, window, SystemTime::now())?;
        tracing::info!(enrollment_id = %id, approved_until_ms = approval.approved_until_ms,
            "re-enrollment approved");
        Ok((id, approval))
    })
    .await?;
    Ok(Json(serde_json::json!({
        "device": approval.0,
        "approved_at": rfc3339_millis(approval.1.approved_at_ms),
        "approved_until": rfc3339_millis(approval.1.approved_until_ms),
    })))
}

/// `DELETE /api/v1/devices/{id}/re-enrollment`: withdraws a pending approval.
pub async fn withdraw_re_enrollment(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?.parent();
    blocking(move || {
        if store_re_enrollment::withdraw(state.store.as_ref(), &id)? {
            tracing::info!(enrollment_id = %id, "re-enrollment approval withdrawn");
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound(format!(
                "no re-enrollment approval is pending for {id}"
            )))
        }
    })
    .await
}

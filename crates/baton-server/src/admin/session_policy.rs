//! Session rules over the admin API:
//! - `GET /api/v1/session-policy`: the stored policy, the defaults that apply where it says
//!   nothing (incl. the server's `default_lease_seconds`) and warnings about rules naming
//!   groups that no longer exist;
//! - `PUT /api/v1/session-policy`: replaces the policy. Refused with 400 when the JSON has
//!   unknown fields or bad values, a rule names an unknown group or one of the wrong kind, or a
//!   bound is exceeded. Applies to new sign-ins at once; running leases are tightened (never
//!   lengthened) by the sweeper, which is woken right away;
//! - `GET /api/v1/devices/{id}/session-policy?user=NAME`: the rules that apply to NAME (default:
//!   the current assignee) on the device, with the device's current lease.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use baton_assign::NOBODY_USERNAME;
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::devices::parse_id;
use crate::error_response::ApiError;
use crate::session_policy::record::{self, SessionPolicy};
use crate::session_policy::sign_in::{SessionSignInError, policy_for};
use crate::session_policy::{PersistentSessions, lease};
use crate::state::AppState;

impl From<SessionSignInError> for ApiError {
    fn from(e: SessionSignInError) -> Self {
        match e {
            SessionSignInError::Reconcile(r) => ApiError::from(r),
            SessionSignInError::Record(r) => ApiError::from(r),
            other @ (SessionSignInError::DisabledUser(_)
            | SessionSignInError::PersistentRefused(_)) => ApiError::Conflict(other.to_string()),
        }
    }
}

fn view(state: &AppState, policy: &SessionPolicy) -> Result<Value, ApiError> {
    let warnings = policy.dangling(&state.reconciler.config()?);
    let settings = state.session.settings();
    Ok(json!({
        "policy": policy,
        "defaults": {
            "show_keep_signed_in": true,
            "prompt_timeout_seconds": record::DEFAULT_PROMPT_TIMEOUT_SECONDS,
            "warn_before_seconds": record::DEFAULT_WARN_BEFORE_SECONDS,
            "shared_mode": true,
            "persistent_sessions": PersistentSessions::Allowed,
            "default_lease_seconds": settings.default_lease.as_secs(),
            "lease_check_interval_seconds": settings.lease_check_interval.as_secs(),
        },
        "warnings": warnings,
    }))
}

/// `GET /api/v1/session-policy`.
pub async fn show(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let policy = record::load(state.store.as_ref())?;
        Ok(Json(view(&state, &policy)?))
    })
    .await
}

/// `PUT /api/v1/session-policy`: the whole policy (absent fields take their defaults).
pub async fn replace(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let policy: SessionPolicy = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("session policy: {e}")))?;
    blocking(move || {
        policy
            .validate(&state.reconciler.config()?)
            .map_err(|e| ApiError::BadRequest(format!("session policy: {e}")))?;
        record::save(state.store.as_ref(), &policy)?;
        state.session.wake_sweeper();
        tracing::info!(
            device_rules = policy.device_groups.len(),
            user_rules = policy.user_groups.len(),
            show_keep_signed_in = policy.show_keep_signed_in,
            "session policy replaced"
        );
        Ok(Json(view(&state, &policy)?))
    })
    .await
}

/// `?user=NAME`.
#[derive(Debug, Deserialize)]
pub struct EffectiveQuery {
    /// Whose rules (default: the current assignee).
    pub user: Option<String>,
}

/// `GET /api/v1/devices/{id}/session-policy?user=NAME`.
pub async fn effective_for_device(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EffectiveQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?.parent();
    blocking(move || {
        let store = state.store.as_ref();
        let username = match q.user {
            Some(u) => u,
            None => state.reconciler.assignee(&id)?,
        };
        let current = lease::get(store, &id)?;
        let effective = if username == NOBODY_USERNAME {
            None
        } else {
            Some(policy_for(
                store,
                &state.reconciler,
                &state.session,
                &id,
                &username,
            )?)
        };
        let warning = match (&current, &effective) {
            (Some(l), Some(e)) => lease::warning(l, SystemTime::now(), e.warn_before),
            _ => None,
        };
        Ok(Json(json!({
            "device": id,
            "username": username,
            "effective": effective,
            "lease": current,
            "warning_seconds_left": warning.map(|d| d.as_secs()),
        })))
    })
    .await
}

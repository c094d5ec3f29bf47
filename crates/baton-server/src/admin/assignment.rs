//! Who has a device and what they would get: `POST /api/v1/devices/{id}/sign-in`
//! `{"username","persistent"?}` and `POST /api/v1/devices/{id}/sign-out` (operator actions;
//! the sign-in writes the session's lease in the same transaction, the sign-out deletes it),
//! `GET /api/v1/devices/{id}/preview?user=NAME` (engine explanation and plan; changes
//! nothing), `GET /api/v1/devices/{id}/sessions` (the session log) and `GET /api/v1/lint`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use baton_assign::{Preview, Severity};
use baton_store::KeyspaceBatch;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::blocking;
use super::devices::parse_id;
use super::json_body::AdminJson;
use crate::error_response::ApiError;
use crate::reconciler::ReconcileOutcome;
use crate::reconciler::session_log;
use crate::session_policy::{Lease, sign_in as session};
use crate::sign_in_log::{self, ReasonCode, SignInEntry, SignInHow, SignInResult};
use crate::state::AppState;

/// `POST /api/v1/devices/{id}/sign-in` body; unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// Who signs in.
    pub username: String,
    /// Ask for a persistent session (no lease end). Refused with 409 on a shared-mode device
    /// and when a user group of the user says `never`.
    #[serde(default)]
    pub persistent: bool,
}

/// `POST /api/v1/devices/{id}/sign-in` answer: the reconcile plus the lease.
#[derive(Debug, Serialize)]
pub struct SignInAnswer {
    /// The reconcile (assignee, commands enqueued, problems).
    #[serde(flatten)]
    pub outcome: ReconcileOutcome,
    /// The session's lease.
    pub lease: Lease,
}

/// `POST /api/v1/devices/{id}/sign-in`. A disabled user is refused with 409. Every attempt
/// goes to the sign-in log (`how: admin`): a success in the same transaction as the
/// assignment, a refusal (disabled user, persistent session not allowed) on its own.
pub async fn sign_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AdminJson(body): AdminJson<SignInBody>,
) -> Result<Json<SignInAnswer>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || {
        let now = SystemTime::now();
        let store = state.store.as_ref();
        // Trimmed and matched without case, as at the portal.
        let username = super::directory::stored_username(store, &body.username)?
            .unwrap_or_else(|| body.username.trim().to_owned());
        let entry = |result, reason| {
            SignInEntry::new(
                now,
                &username,
                id.as_str(),
                SignInHow::Admin,
                result,
                reason,
            )
            .with_kmsi(false, None)
        };
        let success =
            entry(SignInResult::Success, ReasonCode::Success).with_detail(if body.persistent {
                "operator sign-in, persistent"
            } else {
                "operator sign-in"
            });
        let mut extra = KeyspaceBatch::new();
        sign_in_log::append_to_batch(&mut extra, &success)?;
        let signed_in = match session::sign_in_with(
            store,
            &state.reconciler,
            &state.session,
            &id,
            &username,
            "admin",
            body.persistent,
            now,
            extra,
        ) {
            Ok(signed_in) => signed_in,
            Err(error) => {
                let refusal = match &error {
                    session::SessionSignInError::DisabledUser(_) => {
                        Some(entry(SignInResult::Failure, ReasonCode::DisabledUser))
                    }
                    session::SessionSignInError::PersistentRefused(why) => {
                        Some(entry(SignInResult::Failure, ReasonCode::Policy).with_detail(*why))
                    }
                    _ => None,
                };
                if let Some(refusal) = refusal {
                    sign_in_log::append(store, &state.events, &refusal)?;
                }
                return Err(error.into());
            }
        };
        sign_in_log::publish(&state.events, &success);
        Ok(Json(SignInAnswer {
            outcome: signed_in.outcome,
            lease: signed_in.lease,
        }))
    })
    .await
}

/// `POST /api/v1/devices/{id}/sign-out`.
pub async fn sign_out(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ReconcileOutcome>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || {
        Ok(Json(session::sign_out(
            &state.reconciler,
            &state.events,
            &id,
            crate::sign_in_log::SignInHow::Admin,
            SystemTime::now(),
        )?))
    })
    .await
}

/// `?user=NAME`.
#[derive(Debug, Deserialize)]
pub struct PreviewQuery {
    /// Whose view (default: the current assignee).
    pub user: Option<String>,
}

/// `GET /api/v1/devices/{id}/preview?user=NAME`.
pub async fn preview(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<Json<Preview>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || {
        let user = match q.user {
            Some(u) => u,
            None => state.reconciler.assignee(&id.parent())?,
        };
        Ok(Json(state.reconciler.preview(
            &id,
            &user,
            SystemTime::now(),
        )?))
    })
    .await
}

/// `GET /api/v1/devices/{id}/progress`: each item of the assignee's desired state (installed,
/// pending or failed, with the reason and whether Baton gave up), pending removals, ready.
pub async fn progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::reconciler::progress::DeviceProgress>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || Ok(Json(state.reconciler.progress(&id, SystemTime::now())?))).await
}

/// `POST /api/v1/devices/{id}/hand-off/retry`: a new round for a not-clean hand-off, with
/// the rounds counted from zero; 409 when there is none.
pub async fn retry_hand_off(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<crate::reconciler::hand_off::HandOff>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || {
        if state.reconciler.engine_device(&id)?.is_none() {
            return Err(ApiError::NotFound(format!("unknown device {id}")));
        }
        if !state.reconciler.restart_hand_off(&id, SystemTime::now())? {
            return Err(ApiError::Conflict(
                "the device has no hand-off that is not clean".to_owned(),
            ));
        }
        state
            .reconciler
            .hand_off(&id)?
            .map(Json)
            .ok_or_else(|| ApiError::Conflict("the device has no hand-off".to_owned()))
    })
    .await
}

/// `GET /api/v1/devices/{id}/sessions`.
pub async fn sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let list = blocking(move || {
        Ok(session_log::sessions(state.store.as_ref(), &id.parent())?
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "sessions": list })))
}

/// `GET /api/v1/lint`.
pub async fn lint(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let lints = blocking(move || Ok(state.reconciler.lint()?)).await?;
    let errors = lints
        .iter()
        .filter(|l| l.severity == Severity::Error)
        .count();
    Ok(Json(json!({ "lints": lints, "errors": errors })))
}

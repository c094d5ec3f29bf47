//! Who has a device and what they would get: `POST /api/v1/devices/{id}/sign-in`
//! `{"username"}` and `POST /api/v1/devices/{id}/sign-out` (operator actions),
//! `GET /api/v1/devices/{id}/preview?user=NAME` (engine explanation and plan; changes
//! nothing), `GET /api/v1/devices/{id}/sessions` (the session log) and `GET /api/v1/lint`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, Query, State};
use baton_assign::{Preview, Severity};
use serde::Deserialize;
use serde_json::{Value, json};

use super::blocking;
use super::devices::parse_id;
use crate::error_response::ApiError;
use crate::reconciler::ReconcileOutcome;
use crate::reconciler::session_log;
use crate::state::AppState;

/// `POST /api/v1/devices/{id}/sign-in` body.
#[derive(Debug, Deserialize)]
pub struct SignInBody {
    /// Who signs in.
    pub username: String,
}

/// `POST /api/v1/devices/{id}/sign-in`.
pub async fn sign_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SignInBody>,
) -> Result<Json<ReconcileOutcome>, ApiError> {
    let id = parse_id(&id)?;
    blocking(move || {
        Ok(Json(state.reconciler.sign_in(
            &id,
            &body.username,
            "admin",
            SystemTime::now(),
        )?))
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
        Ok(Json(state.reconciler.sign_out(
            &id,
            "admin",
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

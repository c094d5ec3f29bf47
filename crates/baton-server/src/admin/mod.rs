//! The admin API under `/api/v1/`: JSON, authenticated with `Authorization: Bearer <api key>`.
//!
//! - `GET /api/v1/devices`, `GET /api/v1/devices/{id}`: enrollments and their channels
//!   ([`devices`]).
//! - `POST /api/v1/devices/{id}/commands`, `POST /api/v1/commands`, `GET
//!   /api/v1/devices/{id}/commands[/{uuid}]`, `DELETE /api/v1/devices/{id}/commands/{uuid}`:
//!   the command queue ([`commands`], bodies parsed by [`command_body`]).
//! - Users, groups, items, distributions, sign-in/out, preview, sessions, lint:
//!   [`directory`], [`catalog`], [`assignment`].
//! - `GET`/`PUT /api/v1/push-certificate`, `POST /api/v1/devices/{id}/push`: pushes ([`push`]).
//! - `GET`/`PUT /api/v1/session-policy`, `GET /api/v1/devices/{id}/session-policy`: session
//!   rules ([`session_policy`]).
//! - `GET /api/v1/sign-in-log`: the sign-in log, JSON or CSV ([`sign_in_log`]).
//! - `GET /api/v1/identity-renewals`: device identity renewals ([`identity_renewals`]).
//! - `GET /api/v1/webhooks/dead-letters`, `POST .../{id}/retry`, `DELETE .../{id}`: webhook
//!   events given up on ([`webhooks`]).
//! - `GET`/`POST /api/v1/enrollment-tokens`, `GET /api/v1/enrollment-tokens/{id}`,
//!   `POST /api/v1/enrollment-tokens/{id}/revoke`, `POST`/`DELETE
//!   /api/v1/devices/{id}/re-enrollment`: who may enroll ([`enrollment_tokens`]).
//!
//! `{id}` is an enrollment id: the UDID (or EnrollmentID), or `UDID:user` for a user channel.
//! Errors are JSON (see [`crate::error_response::ApiError`]). Request bodies refuse unknown
//! fields with a 400 naming them ([`json_body`]). Store calls run on the blocking pool.

pub mod assignment;
pub mod catalog;
pub mod command_body;
pub mod commands;
pub mod devices;
pub mod directory;
pub mod enrollment_tokens;
pub mod group_members;
pub mod identity_renewals;
pub mod json_body;
pub mod push;
pub mod session_policy;
pub mod sign_in_log;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error_response::ApiError;
use crate::state::AppState;

/// The `/api/v1` routes (already nested under that prefix).
pub fn router(state: AppState) -> Router<AppState> {
    let limits = state.body_limits;
    Router::new()
        .route("/api/v1/devices", get(devices::list))
        .route("/api/v1/devices/{id}", get(devices::show))
        .route("/api/v1/identity-renewals", get(identity_renewals::list))
        .route("/api/v1/webhooks/dead-letters", get(webhooks::list))
        .route(
            "/api/v1/webhooks/dead-letters/{id}",
            axum::routing::delete(webhooks::discard),
        )
        .route(
            "/api/v1/webhooks/dead-letters/{id}/retry",
            post(webhooks::retry),
        )
        .route(
            "/api/v1/enrollment-tokens",
            get(enrollment_tokens::list).post(enrollment_tokens::create),
        )
        .route(
            "/api/v1/enrollment-tokens/{id}",
            get(enrollment_tokens::show),
        )
        .route(
            "/api/v1/enrollment-tokens/{id}/revoke",
            post(enrollment_tokens::revoke),
        )
        .route(
            "/api/v1/devices/{id}/re-enrollment",
            post(enrollment_tokens::approve_re_enrollment)
                .delete(enrollment_tokens::withdraw_re_enrollment),
        )
        .merge(assignment_routes(&state))
        .route("/api/v1/devices/{id}/push", post(push::push_device))
        .route(
            "/api/v1/push-certificate",
            get(push::show).put(push::upload),
        )
        .route(
            "/api/v1/devices/{id}/commands",
            get(commands::list)
                .post(commands::enqueue_one)
                .layer(DefaultBodyLimit::max(limits.admin_upload)),
        )
        .route(
            "/api/v1/devices/{id}/commands/{uuid}",
            get(commands::show).delete(commands::cancel),
        )
        .route(
            "/api/v1/commands",
            post(commands::enqueue_many).layer(DefaultBodyLimit::max(limits.admin_upload)),
        )
        .layer(DefaultBodyLimit::max(limits.admin_json))
        .route_layer(middleware::from_fn_with_state(state, require_api_key))
}

/// Users, groups, catalog, distributions, sign-in/out, preview, sessions and lint
/// ([`directory`], [`catalog`], [`assignment`]).
fn assignment_routes(state: &AppState) -> Router<AppState> {
    use axum::routing::{delete, put};
    Router::new()
        .route(
            "/api/v1/users",
            get(directory::list_users).post(directory::create_user),
        )
        .route("/api/v1/users/import", post(directory::import_users))
        .route(
            "/api/v1/users/{name}",
            get(directory::show_user)
                .patch(directory::patch_user)
                .delete(directory::delete_user),
        )
        .route(
            "/api/v1/groups",
            get(directory::list_groups).post(directory::create_group),
        )
        .route(
            "/api/v1/groups/{id}",
            put(directory::replace_group).delete(directory::delete_group),
        )
        .route("/api/v1/groups/{id}/members", get(group_members::list))
        .route(
            "/api/v1/items",
            get(catalog::list_items)
                .post(catalog::create_item)
                .layer(DefaultBodyLimit::max(state.body_limits.admin_upload)),
        )
        .route(
            "/api/v1/items/{id}",
            get(catalog::show_item)
                .put(catalog::replace_item)
                .delete(catalog::delete_item)
                .layer(DefaultBodyLimit::max(state.body_limits.admin_upload)),
        )
        .route(
            "/api/v1/distributions",
            get(catalog::list_distributions).post(catalog::create_distribution),
        )
        .route(
            "/api/v1/distributions/{id}",
            delete(catalog::delete_distribution),
        )
        .route("/api/v1/devices/{id}/sign-in", post(assignment::sign_in))
        .route("/api/v1/devices/{id}/sign-out", post(assignment::sign_out))
        .route("/api/v1/devices/{id}/preview", get(assignment::preview))
        .route("/api/v1/devices/{id}/sessions", get(assignment::sessions))
        .route("/api/v1/devices/{id}/progress", get(assignment::progress))
        .route(
            "/api/v1/devices/{id}/hand-off/retry",
            post(assignment::retry_hand_off),
        )
        .route("/api/v1/lint", get(assignment::lint))
        .route(
            "/api/v1/session-policy",
            get(session_policy::show).put(session_policy::replace),
        )
        .route(
            "/api/v1/devices/{id}/session-policy",
            get(session_policy::effective_for_device),
        )
        .route("/api/v1/sign-in-log", get(sign_in_log::list))
}

/// Rejects requests without the right bearer token (401 JSON).
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(key) if state.api_key.matches(key) => next.run(request).await,
        _ => {
            tracing::debug!(path = %request.uri().path(), "admin API request without a valid key");
            ApiError::Unauthorized.into_response()
        }
    }
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

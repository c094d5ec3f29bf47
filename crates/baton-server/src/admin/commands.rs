//! The command queue over the admin API: enqueue (one device or many), list, show, cancel.
//! After an enqueue the [`crate::push::PushSink`] is told which channels have new work.

use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, Limits};
use baton_store::{CommandResult, CommandState, NewCommand};
use serde::{Deserialize, Serialize};

use super::blocking;
use super::command_body::{self, CommandSpec};
use super::devices::parse_id;
use crate::error_response::ApiError;
use crate::state::AppState;
use crate::timestamp::rfc3339_millis;

/// A command's state on one channel, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CommandView {
    /// `CommandUUID`.
    pub command_uuid: CommandUuid,
    /// `RequestType`.
    pub request_type: String,
    /// `queued`, `not_now`, `acknowledged`, `error`, `command_format_error` or `cancelled`.
    pub status: &'static str,
    /// Queue priority.
    pub priority: u8,
    /// When enqueued (RFC 3339).
    pub queued_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// When the final answer arrived (RFC 3339).
    pub finished_at: Option<String>,
    /// How many times the device answered NotNow.
    pub not_now_count: u32,
    /// The ErrorChain of an Error answer.
    pub error_chain: Vec<ErrorChainItem>,
    /// The device's latest report about the command (XML plist text); only on the single view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
}

/// The API spelling of a command state.
pub fn status_name(state: CommandState) -> &'static str {
    match state {
        CommandState::Queued => "queued",
        CommandState::NotNow => "not_now",
        CommandState::Acknowledged => "acknowledged",
        CommandState::Error => "error",
        CommandState::CommandFormatError => "command_format_error",
        CommandState::Cancelled => "cancelled",
        _ => "unknown",
    }
}

impl CommandView {
    fn of(r: CommandResult, with_response: bool) -> Self {
        Self {
            command_uuid: r.uuid,
            request_type: r.request_type,
            status: status_name(r.state),
            priority: r.priority.0,
            queued_at: rfc3339_millis(r.queued_at),
            updated_at: rfc3339_millis(r.updated_at),
            finished_at: r.finished_at.map(rfc3339_millis),
            not_now_count: r.not_now_count,
            error_chain: r.error_chain,
            response: if with_response {
                r.raw_response
                    .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            } else {
                None
            },
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueued {
    /// The command's UUID.
    pub command_uuid: CommandUuid,
    /// Its RequestType.
    pub request_type: String,
    /// The channels it was queued to.
    pub devices: Vec<EnrollmentId>,
}

/// Body of `POST /api/v1/commands`; unknown fields refused (the command's own fields are
/// checked by [`super::command_body`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkEnqueue {
    /// Enrollment ids.
    pub devices: Vec<String>,
    /// The command, as in the single-device JSON form.
    pub command: CommandSpec,
}

fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest(rejection.body_text())
        }
    })
}

/// Parses a command body by its Content-Type (JSON or plist; sniffed when absent).
fn parse_command(
    headers: &HeaderMap,
    body: &[u8],
    limits: &Limits,
) -> Result<NewCommand, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match content_type.as_deref() {
        Some("application/json") => command_body::from_json(body),
        Some("application/x-apple-plist" | "application/xml" | "text/xml") => {
            command_body::from_plist(body, limits)
        }
        None => match body.trim_ascii_start().first() {
            Some(b'{') => command_body::from_json(body),
            Some(b'<') => command_body::from_plist(body, limits),
            _ => Err(ApiError::BadRequest(
                "body is neither JSON nor a plist".into(),
            )),
        },
        Some(other) => Err(ApiError::UnsupportedMediaType(other.to_owned())),
    }
}

async fn enqueue(
    state: AppState,
    command: NewCommand,
    to: Vec<EnrollmentId>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    if to.is_empty() {
        return Err(ApiError::BadRequest("no devices given".into()));
    }
    let store_state = state.clone();
    let (command, to) = blocking(move || {
        store_state
            .store
            .enqueue(&command, &to, SystemTime::now())?;
        Ok((command, to))
    })
    .await?;
    let mut unique = to.clone();
    unique.sort();
    unique.dedup();
    state
        .metrics
        .add_queue_depth(i64::try_from(unique.len()).unwrap_or(i64::MAX));
    tracing::info!(command_uuid = %command.uuid, request_type = %command.request_type,
        channels = unique.len(), "command enqueued");
    state.push.commands_enqueued(&unique);
    Ok((
        StatusCode::CREATED,
        Json(Enqueued {
            command_uuid: command.uuid,
            request_type: command.request_type,
            devices: unique,
        }),
    ))
}

/// `POST /api/v1/devices/{id}/commands`: queue one command (plist or JSON body).
pub async fn enqueue_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let id = parse_id(&id)?;
    let body = body_or_error(body)?;
    let limits = Limits::default().with_max_body_bytes(state.body_limits.admin_upload);
    let command = parse_command(&headers, &body, &limits)?;
    enqueue(state, command, vec![id]).await
}

/// `POST /api/v1/commands`: queue one command to several channels, atomically.
pub async fn enqueue_many(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let body = body_or_error(body)?;
    let bulk: BulkEnqueue =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("JSON: {e}")))?;
    let ids = bulk
        .devices
        .iter()
        .map(|d| parse_id(d))
        .collect::<Result<Vec<_>, _>>()?;
    let command = command_body::from_spec(bulk.command)?;
    enqueue(state, command, ids).await
}

/// `GET /api/v1/devices/{id}/commands`: every command ever queued to the channel.
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let shown = id.clone();
    let rows = blocking(move || {
        let store = state.store.as_ref();
        if store.enrollment(&id)?.is_none() {
            return Err(ApiError::NotFound(format!("unknown device {id}")));
        }
        Ok(store.list(&id)?)
    })
    .await?;
    let commands: Vec<CommandView> = rows
        .into_iter()
        .map(|r| CommandView::of(r, false))
        .collect();
    Ok(Json(
        serde_json::json!({ "enrollment_id": shown, "commands": commands }),
    ))
}

fn parse_uuid(raw: &str) -> Result<CommandUuid, ApiError> {
    CommandUuid::new(raw).map_err(|e| ApiError::BadRequest(format!("invalid command uuid: {e}")))
}

/// `GET /api/v1/devices/{id}/commands/{uuid}`: one command with the device's report.
pub async fn show(
    State(state): State<AppState>,
    Path((id, uuid)): Path<(String, String)>,
) -> Result<Json<CommandView>, ApiError> {
    let id = parse_id(&id)?;
    let uuid = parse_uuid(&uuid)?;
    let row = blocking(move || {
        state
            .store
            .command_result(&id, &uuid)?
            .ok_or_else(|| ApiError::NotFound(format!("command {uuid} not queued to {id}")))
    })
    .await?;
    Ok(Json(CommandView::of(row, true)))
}

/// `DELETE /api/v1/devices/{id}/commands/{uuid}`: removes a still-queued command (204); 404 when
/// unknown, 409 when the device already answered it finally or it was cancelled.
pub async fn cancel(
    State(state): State<AppState>,
    Path((id, uuid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let uuid = parse_uuid(&uuid)?;
    let metrics = state.metrics.clone();
    blocking(move || {
        let store = state.store.as_ref();
        if store.cancel(&id, &uuid, SystemTime::now())? {
            tracing::info!(enrollment_id = %id, command_uuid = %uuid, "command cancelled");
            return Ok(());
        }
        match store.command_result(&id, &uuid)? {
            None => Err(ApiError::NotFound(format!(
                "command {uuid} not queued to {id}"
            ))),
            Some(r) => Err(ApiError::Conflict(format!(
                "command {uuid} is {} and can no longer be cancelled",
                status_name(r.state)
            ))),
        }
    })
    .await?;
    metrics.add_queue_depth(-1);
    Ok(StatusCode::NO_CONTENT)
}

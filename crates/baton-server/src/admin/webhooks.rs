//! The webhook dead-letter list over the admin API:
//! `GET /api/v1/webhooks/dead-letters[?after=ID&limit=N]` (oldest first, a page at a time),
//! `POST /api/v1/webhooks/dead-letters/{id}/retry` (back to the end of the outbox, same body)
//! and `DELETE /api/v1/webhooks/dead-letters/{id}`. Without a configured webhook the list is
//! empty and every id is unknown.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::error_response::ApiError;
use crate::state::AppState;
use crate::timestamp::rfc3339_millis;
use crate::webhook::{DeadLetter, Outbox};

/// Dead letters per page when the query names no limit.
pub const DEFAULT_PAGE: usize = 100;
/// Most dead letters per page.
pub const MAX_PAGE: usize = 1000;

/// A dead letter as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterView {
    /// Its id (for retry and delete, and as `after` for the next page).
    pub id: String,
    /// The event's id (`X-Baton-Delivery`).
    pub event_id: Option<String>,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// When it was given up on (RFC 3339).
    pub failed_at: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// The last failure.
    pub reason: String,
    /// The receiver's last HTTP status, when it answered.
    pub status: Option<u16>,
    /// The event as it was POSTed.
    pub event: serde_json::Value,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        let event: serde_json::Value = serde_json::from_slice(&d.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&d.body).into_owned())
        });
        let field = |name: &str| event.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        Self {
            id: d.id.to_string(),
            event_id: field("id"),
            kind: field("type"),
            failed_at: rfc3339_millis(d.header.failed_at_ms),
            attempts: d.header.attempts,
            reason: d.header.reason,
            status: d.header.status,
            event,
        }
    }
}

/// `?after=ID&limit=N`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    /// Only dead letters after this id.
    pub after: Option<u64>,
    /// At most this many (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
}

fn outbox(state: &AppState) -> Option<Outbox> {
    state.events.outbox().cloned()
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::NotFound(format!("no dead letter {id:?}")))
}

/// `GET /api/v1/webhooks/dead-letters`.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<PageQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let Some(outbox) = outbox(&state) else {
        return Ok(Json(serde_json::json!({
            "dead_letters": [], "total": 0, "next_after": null
        })));
    };
    let (letters, total) = blocking(move || {
        let letters = outbox.dead_letters(q.after, limit)?;
        Ok((letters, outbox.dead_letter_count()))
    })
    .await?;
    let next_after = (letters.len() == limit)
        .then(|| letters.last().map(|d| d.id.to_string()))
        .flatten();
    let views: Vec<DeadLetterView> = letters.into_iter().map(DeadLetterView::from).collect();
    Ok(Json(serde_json::json!({
        "dead_letters": views,
        "total": total,
        "next_after": next_after,
    })))
}

/// `POST /api/v1/webhooks/dead-letters/{id}/retry`: 202, the event is back in the outbox.
pub async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let seq = parse_id(&id)?;
    let Some(outbox) = outbox(&state) else {
        return Err(ApiError::NotFound(format!("no dead letter {id:?}")));
    };
    let moved = blocking(move || Ok(outbox.retry_dead_letter(seq)?)).await?;
    if !moved {
        return Err(ApiError::NotFound(format!("no dead letter {id:?}")));
    }
    tracing::info!(dead_letter = seq, "webhook dead letter queued again");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": id, "requeued": true })),
    ))
}

/// `DELETE /api/v1/webhooks/dead-letters/{id}`: 204.
pub async fn discard(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let seq = parse_id(&id)?;
    let Some(outbox) = outbox(&state) else {
        return Err(ApiError::NotFound(format!("no dead letter {id:?}")));
    };
    if blocking(move || Ok(outbox.discard_dead_letter(seq)?)).await? {
        tracing::info!(dead_letter = seq, "webhook dead letter discarded");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no dead letter {id:?}")))
    }
}

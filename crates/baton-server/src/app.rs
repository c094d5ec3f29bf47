//! The HTTP surface: device routes (`PUT /mdm/checkin`, `PUT /mdm/connect`), the admin API,
//! `/healthz`, `/readyz` and `/metrics` (open, or behind the API key: [`MetricsAuth`]), with
//! per-route body limits, request counting and the free-space floor ([`crate::disk_floor`]). The device
//! handlers are thin: they collect the body and identity proofs and run the synchronous
//! [`crate::checkin`] / [`crate::command_channel`] cores on the blocking pool.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use baton_store::Collection;

use crate::admin;
use crate::client_origin::Edge;
use crate::config::MetricsAuth;
use crate::device_identity::DeviceRequest;
use crate::device_reply::DeviceReply;
use crate::error_response::DeviceError;
use crate::gate::{Gate, GateLayer};
use crate::identity::SIGNATURE_HEADER;
use crate::metrics::Endpoint;
use crate::state::{AppState, Services};
use crate::tls::PeerCertificate;
use crate::{checkin, command_channel};

/// Content type of check-in messages.
pub const CHECKIN_CONTENT_TYPE: &str = "application/x-apple-aspen-mdm-checkin";

/// The full router for `state`.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The full router for `state` plus `extra` feature routes (SCEP, portal), all counted in the
/// request metrics, with `/metrics` open to anyone (see [`router_for`]); the anonymous ones
/// rate-limited per source ([`rate_limit`]).
pub fn router_with(state: AppState, extra: Router) -> Router {
    router_for(state, extra, MetricsAuth::None, None)
}

/// [`router_with`], with `/metrics` readable as `metrics_auth` says, behind the [`gate`] (client
/// origin from `edge`, rate limits, free-space floor, request counting).
pub fn router_for(
    state: AppState,
    extra: Router,
    metrics_auth: MetricsAuth,
    edge: Option<Edge>,
) -> Router {
    let device_limit = DefaultBodyLimit::max(state.body_limits.device);
    let device = Router::new()
        .route("/mdm/checkin", put(checkin_route))
        .route("/mdm/connect", put(connect_route))
        .layer(device_limit);
    Router::new()
        .merge(device)
        .merge(admin::router(state.clone()))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(metrics_route).route_layer(middleware::from_fn_with_state(
                (state.clone(), metrics_auth),
                metrics_access,
            )),
        )
        .with_state(state.clone())
        .merge(extra)
        .layer(GateLayer::new(Gate {
            edge,
            rate_limits: Arc::clone(&state.rate_limits),
            disk_floor: Arc::clone(&state.disk_floor),
            metrics: Arc::clone(&state.metrics),
        }))
}

/// `/metrics` as `--metrics-auth` says: open, or behind the admin API key.
async fn metrics_access(
    State((state, auth)): State<(AppState, MetricsAuth)>,
    request: Request,
    next: Next,
) -> Response {
    match auth {
        MetricsAuth::ApiKey => admin::require_api_key(State(state), request, next).await,
        _ => next.run(request).await,
    }
}

/// How long the `/healthz` and `/readyz` write probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Writes (and fsyncs) one small row, within [`PROBE_TIMEOUT`].
async fn probe_store(state: &AppState) -> Result<(), String> {
    let store = Arc::clone(&state.store);
    let write = tokio::task::spawn_blocking(move || {
        let collection = Collection::new("health").map_err(|e| e.to_string())?;
        let now = baton_store::unix_millis(SystemTime::now());
        store
            .put(&collection, b"probe", &now.to_be_bytes())
            .map_err(|e| e.to_string())
    });
    match tokio::time::timeout(PROBE_TIMEOUT, write).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("probe worker failed: {e}")),
        Err(_) => Err(format!(
            "store write did not finish within {PROBE_TIMEOUT:?}"
        )),
    }
}

/// The store is writable and free space is above the floor, or why not.
async fn store_status(state: &AppState) -> Result<(), String> {
    probe_store(state)
        .await
        .map_err(|e| format!("store: {e}"))?;
    state.disk_floor.check().map_err(|e| format!("disk: {e}"))
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        text,
    )
        .into_response()
}

/// `ok`, or 503 with the reason (store write probe failed or timed out, disk below the floor).
async fn healthz(State(state): State<AppState>) -> Response {
    match store_status(&state).await {
        Ok(()) => plain(StatusCode::OK, "ok\n".into()),
        Err(reason) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {reason}\n"),
        ),
    }
}

/// `ready` when the store takes writes and free space is above the floor; 503 with the reason.
async fn readyz(State(state): State<AppState>) -> Response {
    match store_status(&state).await {
        Ok(()) => plain(StatusCode::OK, "ready\n".into()),
        Err(reason) => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics_route(State(state): State<AppState>) -> impl IntoResponse {
    let store = Arc::clone(&state.store);
    let fleet =
        tokio::task::spawn_blocking(move || crate::fleet_gauges::FleetGauges::read(store.as_ref()))
            .await;
    let mut text = state.metrics.render();
    state.push_service.metrics().render(&mut text);
    state.events.sign_ins().render(&mut text);
    match fleet {
        Ok(Ok(gauges)) => gauges.render(&mut text),
        // The other metrics are still worth serving; the gap shows as absent gauges.
        Ok(Err(error)) => tracing::warn!(%error, "fleet gauges not read"),
        Err(error) => tracing::warn!(%error, "fleet gauges task failed"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
}

async fn checkin_route(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    device_route(
        state,
        Endpoint::Checkin,
        peer,
        &headers,
        body,
        checkin::handle,
    )
    .await
}

async fn connect_route(
    State(state): State<AppState>,
    peer: Option<Extension<PeerCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    device_route(
        state,
        Endpoint::Connect,
        peer,
        &headers,
        body,
        command_channel::handle,
    )
    .await
}

type DeviceHandler = fn(&Services, &DeviceRequest, SystemTime) -> Result<DeviceReply, DeviceError>;

async fn device_route(
    state: AppState,
    endpoint: Endpoint,
    peer: Option<Extension<PeerCertificate>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    handler: DeviceHandler,
) -> Response {
    let started = Instant::now();
    let result = match body {
        Err(rejection) => Err(DeviceError::BodyRejected(rejection.body_text())),
        Ok(body) => {
            let request = DeviceRequest {
                signature: headers
                    .get(SIGNATURE_HEADER)
                    .map(|v| Bytes::copy_from_slice(v.as_bytes())),
                peer_certificate: peer.and_then(|Extension(PeerCertificate(cert))| cert),
                body,
            };
            let services = state.clone();
            tokio::task::spawn_blocking(move || handler(&services, &request, SystemTime::now()))
                .await
                .unwrap_or_else(|e| Err(DeviceError::Internal(format!("worker failed: {e}"))))
        }
    };
    state
        .metrics
        .observe_device_latency(endpoint, started.elapsed());
    match result {
        Ok(reply) => reply.into_response(),
        Err(error) => {
            let reason = error.reason_code();
            state.metrics.record_refusal(reason);
            if error.status() == StatusCode::INTERNAL_SERVER_ERROR {
                tracing::error!(endpoint = endpoint.label(), reason, %error, "device request failed");
            } else {
                tracing::warn!(endpoint = endpoint.label(), reason, %error, "device request refused");
            }
            error.into_response()
        }
    }
}

//! The one middleware every request passes through, in this order: decide the client's origin
//! ([`crate::client_origin::Edge`]), refuse a source over its rate limit
//! ([`crate::rate_limit::refusal`]), refuse a write below the free-space floor
//! ([`crate::disk_floor::refusal`]), run the route, then count the answer by endpoint and status
//! and add `Strict-Transport-Security` to an HTTPS answer.
//!
//! These checks were four `axum::middleware::from_fn` layers; each boxed a future and a clone
//! of the inner service per request, which on the check-in path cost more than the checks
//! themselves (docs/benchmarks.md, "Check-in, side by side"). As one hand-written
//! [`tower::Service`] they allocate nothing on the way through.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::client_origin::{Edge, HSTS};
use crate::disk_floor::DiskFloor;
use crate::metrics::{Endpoint, Metrics};
use crate::rate_limit::RateLimiter;

/// What the gate checks against.
#[derive(Debug)]
pub struct Gate {
    /// The listener's transport and trusted proxies; `None` leaves the origin to
    /// [`crate::client_origin::Client::of`]'s fallback (the TCP peer).
    pub edge: Option<Edge>,
    /// Per-source limits on the anonymous endpoints.
    pub rate_limits: Arc<RateLimiter>,
    /// The free-space floor.
    pub disk_floor: Arc<DiskFloor>,
    /// Where answers are counted.
    pub metrics: Arc<Metrics>,
}

/// [`Layer`] wrapping a router in the [`Gate`].
#[derive(Debug, Clone)]
pub struct GateLayer(Arc<Gate>);

impl GateLayer {
    /// A layer checking against `gate`.
    pub fn new(gate: Gate) -> Self {
        Self(Arc::new(gate))
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated {
            gate: Arc::clone(&self.0),
            inner,
        }
    }
}

/// The service [`GateLayer`] makes.
#[derive(Debug, Clone)]
pub struct Gated<S> {
    gate: Arc<Gate>,
    inner: S,
}

impl<S> Service<Request> for Gated<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone,
{
    type Response = Response;
    type Error = Infallible;
    type Future = GateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let gate = &self.gate;
        let endpoint = Endpoint::of_path(request.uri().path());
        let origin = gate.edge.as_ref().and_then(|edge| edge.origin(&request));
        let https = match (origin, &gate.edge) {
            (Some(origin), _) => origin.https,
            (None, Some(edge)) => edge.tls,
            (None, None) => false,
        };
        if let Some(origin) = origin {
            request.extensions_mut().insert(origin);
        }
        let refused = crate::rate_limit::refusal(&gate.rate_limits, &request)
            .or_else(|| crate::disk_floor::refusal(&gate.disk_floor, &request));
        let state = match refused {
            Some(response) => State::Refused {
                response: Some(response),
            },
            None => {
                // The service that was polled ready serves this request; a clone waits for the
                // next one (tower's usual swap).
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                State::Running {
                    future: ready.call(request),
                }
            }
        };
        GateFuture {
            state,
            gate: Arc::clone(gate),
            endpoint,
            https,
        }
    }
}

pin_project! {
    /// The answer of a [`Gated`] service.
    pub struct GateFuture<F> {
        #[pin]
        state: State<F>,
        gate: Arc<Gate>,
        endpoint: Endpoint,
        https: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Refused { response: Option<Response> },
        Running { #[pin] future: F },
    }
}

impl<F> Future for GateFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            // Polled again after it answered (a caller's bug): nothing left to give.
            StateProj::Refused { response } => response
                .take()
                .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
            StateProj::Running { future } => match ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        this.gate
            .metrics
            .record_request(*this.endpoint, response.status().as_u16());
        if *this.https {
            response.headers_mut().insert(
                axum::http::header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static(HSTS),
            );
        }
        Poll::Ready(Ok(response))
    }
}

//! The APNs client: sends `{"mdm":"<PushMagic>"}` to `/3/device/<token>` over pooled HTTP/2
//! connections, classifies the answer, retries what is retryable with backoff and jitter, and
//! fails fast through the circuit breaker while APNs is down.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use baton_proto::{PushMagic, PushToken, Topic};
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use rand::Rng;
use rustls::{ClientConfig, RootCertStore};
use tokio::sync::Semaphore;

use crate::breaker::{BreakerState, CircuitBreaker};
use crate::certificate::PushCertificate;
use crate::config::ApnsConfig;
use crate::connection::{Dialer, Endpoint, Slot};
use crate::outcome::{Failure, PushOutcome};
use crate::reason::{ApnsReason, ResponseClass, classify};

/// Largest error body read from APNs (real ones are under 100 bytes).
const MAX_ERROR_BODY: usize = 4096;

/// Why an [`ApnsClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not `https://host[:port]`.
    #[error("bad APNs base URL {url:?}: {reason}")]
    BaseUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An extra trust root could not be used.
    #[error("bad trust root: {0}")]
    TrustRoot(#[source] rustls::Error),
    /// Neither public roots nor extra roots: nothing could ever be trusted.
    #[error("no trust roots configured")]
    NoTrustRoots,
    /// rustls refused the TLS setup (for example an unsupported key type).
    #[error("TLS client setup: {0}")]
    Tls(#[source] rustls::Error),
    /// The topic cannot be sent as an HTTP header value.
    #[error("the topic cannot be sent as an HTTP header")]
    TopicHeader,
}

/// Counters of one client since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Connections opened (the first one plus every reconnect).
    pub connections_opened: u64,
    /// Requests sent (attempts, including retries).
    pub requests: u64,
    /// Pushes delivered.
    pub delivered: u64,
    /// Pushes refused permanently.
    pub permanent: u64,
    /// Pushes failed after retries or refused by the open circuit breaker.
    pub failed: u64,
}

/// An APNs sender for MDM pushes. Cheap to clone; clones share connections and limits.
#[derive(Debug, Clone)]
pub struct ApnsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ApnsConfig,
    topic: Topic,
    origin: String,
    headers: HeaderMap,
    dialer: Dialer,
    slots: Vec<Slot>,
    next_slot: AtomicUsize,
    streams: Semaphore,
    breaker: Mutex<CircuitBreaker>,
    requests: AtomicU64,
    delivered: AtomicU64,
    permanent: AtomicU64,
    failed: AtomicU64,
}

/// What one request produced.
enum Attempt {
    Response {
        status: u16,
        reason: Option<ApnsReason>,
        apns_id: Option<String>,
    },
    Failure(Failure),
}

impl ApnsClient {
    /// Builds a client. No connection is opened until the first push.
    pub fn new(config: ApnsConfig, certificate: PushCertificate) -> Result<Self, ClientError> {
        let endpoint = Endpoint::parse(&config.base_url)?;
        let tls = tls_config(&config, &certificate)?;
        let mut headers = HeaderMap::new();
        headers.insert("apns-push-type", HeaderValue::from_static("mdm"));
        headers.insert(
            "apns-topic",
            HeaderValue::from_str(certificate.topic().as_str())
                .map_err(|_| ClientError::TopicHeader)?,
        );
        headers.insert("apns-priority", HeaderValue::from_static("10"));
        let connections = config.connections.max(1);
        let streams = connections.saturating_mul(config.max_streams_per_connection.max(1));
        let dialer = Dialer::new(
            endpoint.clone(),
            tls,
            config.connect_timeout,
            config.keep_alive_interval,
            config.keep_alive_timeout,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                topic: certificate.topic().clone(),
                origin: endpoint.origin,
                headers,
                dialer,
                slots: (0..connections).map(|_| Slot::default()).collect(),
                next_slot: AtomicUsize::new(0),
                streams: Semaphore::new(streams),
                breaker: Mutex::new(CircuitBreaker::new(config.breaker.clone())),
                requests: AtomicU64::new(0),
                delivered: AtomicU64::new(0),
                permanent: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                config,
            }),
        })
    }

    /// The topic every push is sent on (the certificate's UID).
    pub fn topic(&self) -> &Topic {
        &self.inner.topic
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> ClientStats {
        let i = &self.inner;
        ClientStats {
            connections_opened: i.dialer.opened(),
            requests: i.requests.load(Ordering::Relaxed),
            delivered: i.delivered.load(Ordering::Relaxed),
            permanent: i.permanent.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
        }
    }

    /// The circuit breaker's state.
    pub fn breaker_state(&self) -> BreakerState {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .state()
    }

    /// Sends one MDM push and retries it as the policy allows.
    pub async fn push(&self, token: &PushToken, magic: &PushMagic) -> PushOutcome {
        let outcome = self.push_inner(token, magic).await;
        let i = &self.inner;
        match &outcome {
            PushOutcome::Delivered { apns_id, attempts } => {
                i.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::trace!(
                    ?token,
                    apns_id = apns_id.as_deref(),
                    attempts,
                    "push delivered"
                );
            }
            PushOutcome::Permanent {
                kind,
                status,
                reason,
                apns_id,
            } => {
                i.permanent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    ?token,
                    ?kind,
                    status,
                    reason = reason.as_ref().map(ApnsReason::as_str),
                    apns_id = apns_id.as_deref(),
                    "push refused permanently"
                );
            }
            PushOutcome::Failed { last, attempts } => {
                i.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?token, attempts, error = %last, "push failed");
            }
        }
        outcome
    }

    /// Sends many pushes concurrently (bounded by the pool's stream limit) and returns each
    /// key with its outcome, in completion order.
    pub async fn push_many<K, I>(&self, pushes: I) -> Vec<(K, PushOutcome)>
    where
        I: IntoIterator<Item = (K, PushToken, PushMagic)>,
    {
        let i = &self.inner;
        // Twice the stream limit: pushes sleeping in backoff hold no stream, so let others run.
        let width = i
            .slots
            .len()
            .saturating_mul(i.config.max_streams_per_connection.max(1))
            .saturating_mul(2);
        futures::stream::iter(pushes)
            .map(|(key, token, magic)| async move {
                let outcome = self.push(&token, &magic).await;
                (key, outcome)
            })
            .buffer_unordered(width)
            .collect()
            .await
    }

    async fn push_inner(&self, token: &PushToken, magic: &PushMagic) -> PushOutcome {
        let i = &self.inner;
        let uri = format!("{}/3/device/{}", i.origin, token.to_hex());
        let body = payload(magic);
        let mut attempts = 0u32;
        loop {
            if !self.admit() {
                return PushOutcome::Failed {
                    last: Failure::CircuitOpen,
                    attempts,
                };
            }
            attempts += 1;
            let last = match self.attempt(&uri, body.clone()).await {
                Attempt::Response {
                    status,
                    reason,
                    apns_id,
                } => {
                    // Any answer but a 5xx shows the service is up.
                    if status >= 500 {
                        self.record_failure();
                    } else {
                        self.record_success();
                    }
                    match classify(status, reason.as_ref()) {
                        ResponseClass::Delivered => {
                            return PushOutcome::Delivered { apns_id, attempts };
                        }
                        ResponseClass::Permanent(kind) => {
                            return PushOutcome::Permanent {
                                kind,
                                status,
                                reason,
                                apns_id,
                            };
                        }
                        _ => Failure::Status {
                            status,
                            reason,
                            apns_id,
                        },
                    }
                }
                Attempt::Failure(failure) => {
                    self.record_failure();
                    failure
                }
            };
            if !i.config.retry.may_retry(attempts) {
                return PushOutcome::Failed { last, attempts };
            }
            let jitter: f64 = rand::rng().random();
            let wait = i.config.retry.backoff(attempts, jitter);
            tracing::debug!(?token, attempts, error = %last, ?wait, "retrying push");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt(&self, uri: &str, body: Bytes) -> Attempt {
        let i = &self.inner;
        // The semaphore is never closed, so acquire only fails if that invariant breaks.
        let Ok(_stream) = i.streams.acquire().await else {
            return Attempt::Failure(Failure::Transport("client shut down".to_owned()));
        };
        let slot_index = i.next_slot.fetch_add(1, Ordering::Relaxed) % i.slots.len();
        let Some(slot) = i.slots.get(slot_index) else {
            return Attempt::Failure(Failure::Transport("no connection slot".to_owned()));
        };
        let (generation, mut sender) = match slot.sender(&i.dialer).await {
            Ok(s) => s,
            Err(e) => return Attempt::Failure(Failure::Transport(e)),
        };
        let request = match self.request(uri, body) {
            Ok(r) => r,
            Err(e) => return Attempt::Failure(Failure::Transport(e.to_string())),
        };
        i.requests.fetch_add(1, Ordering::Relaxed);
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let apns_id = response
                .headers()
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let reason = if status == 200 {
                None
            } else {
                Limited::new(response.into_body(), MAX_ERROR_BODY)
                    .collect()
                    .await
                    .ok()
                    .and_then(|b| ApnsReason::from_body(&b.to_bytes()))
            };
            Ok::<_, hyper::Error>(Attempt::Response {
                status,
                reason,
                apns_id,
            })
        };
        match tokio::time::timeout(i.config.request_timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                // GOAWAY, reset or a dead socket: redial for the next attempt.
                slot.discard(generation);
                Attempt::Failure(Failure::Transport(e.to_string()))
            }
            Err(_) => Attempt::Failure(Failure::Timeout),
        }
    }

    fn request(&self, uri: &str, body: Bytes) -> Result<Request<Full<Bytes>>, http::Error> {
        let i = &self.inner;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .version(http::Version::HTTP_2)
            .header("apns-expiration", i.config.expiration.header_value(now));
        if let Some(h) = builder.headers_mut() {
            h.extend(i.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        builder.body(Full::new(body))
    }

    fn admit(&self) -> bool {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(Instant::now())
    }

    fn record_success(&self) {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record_success();
    }

    fn record_failure(&self) {
        self.inner
            .breaker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record_failure(Instant::now());
    }
}

/// The push body: exactly `{"mdm":"<PushMagic>"}` (the value JSON-escaped, though real PushMagic
/// values are UUIDs and need none).
pub fn payload(magic: &PushMagic) -> Bytes {
    let value = serde_json::Value::String(magic.as_str().to_owned()).to_string();
    let mut s = String::with_capacity(value.len() + 8);
    s.push_str("{\"mdm\":");
    s.push_str(&value);
    s.push('}');
    Bytes::from(s)
}

fn tls_config(
    config: &ApnsConfig,
    certificate: &PushCertificate,
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    if config.public_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    for root in &config.extra_roots {
        roots.add(root.clone()).map_err(ClientError::TrustRoot)?;
    }
    if roots.is_empty() {
        return Err(ClientError::NoTrustRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificate.chain().to_vec(), certificate.private_key())
        .map_err(ClientError::Tls)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_exact_and_escaped() {
        let m = PushMagic::new("8E2E8A1C-6A4B-4B8E-9C1F-0D3E5A7B9C2D").unwrap();
        assert_eq!(
            &payload(&m)[..],
            br#"{"mdm":"8E2E8A1C-6A4B-4B8E-9C1F-0D3E5A7B9C2D"}"#
        );
        let odd = PushMagic::new(r#"a"b\c"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload(&odd)).unwrap();
        assert_eq!(v["mdm"], r#"a"b\c"#);
    }
}

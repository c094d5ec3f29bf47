//! The delivery task: takes the oldest events from the [`Outbox`] a page at a time, POSTs each
//! to the receiver (in order) and removes it on a 2xx answer. A permanent refusal
//! ([`PERMANENT_STATUSES`]) moves the event to the dead-letter list at once; any other failure
//! waits with exponential backoff and jitter and tries the same event again, up to
//! [`WebhookConfig::max_attempts`] attempts, then dead-letters it. So one event can hold up
//! the ones behind it for a bounded time only. It runs until shut down; nothing it does blocks
//! a device request.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_store::unix_millis;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use super::dead_letter::DeadLetterHeader;
use super::outbox::Outbox;
use super::signature::{SIGNATURE_HEADER, sign};
use crate::config::WebhookConfig;
use crate::metrics::Metrics;

/// Events read from the outbox per round.
const BATCH: usize = 64;

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The URL or request could not be built.
    #[error("bad request: {0}")]
    Request(String),
    /// Connecting or sending failed.
    #[error("transport: {0}")]
    Transport(String),
    /// The attempt took longer than the configured timeout.
    #[error("timed out")]
    Timeout,
    /// The receiver answered with a non-2xx status.
    #[error("receiver answered {0}")]
    Status(u16),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(#[from] openssl::error::ErrorStack),
}

/// Receiver answers that refuse this event for good: sending the same bytes again cannot
/// succeed (malformed for the receiver, nothing there, gone, too large, wrong type,
/// unprocessable). The event moves to the dead-letter list at once. Every other failure
/// (timeouts, connection errors, 401/403/408/429, 5xx, ...) is retried with backoff up to
/// [`WebhookConfig::max_attempts`] times.
pub const PERMANENT_STATUSES: [u16; 6] = [400, 404, 410, 413, 415, 422];

impl DeliveryError {
    /// True when retrying the same event cannot help (see [`PERMANENT_STATUSES`]).
    pub fn is_permanent(&self) -> bool {
        match self {
            DeliveryError::Status(s) => PERMANENT_STATUSES.contains(s),
            DeliveryError::Request(_) => true,
            _ => false,
        }
    }

    /// The receiver's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DeliveryError::Status(s) => Some(*s),
            _ => None,
        }
    }
}

/// Delivers webhook events from an outbox.
pub struct WebhookDelivery {
    outbox: Outbox,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for WebhookDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDelivery")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WebhookDelivery {
    /// A delivery task for `outbox` to the configured receiver (HTTPS verified against the
    /// public web PKI roots, or plain HTTP).
    pub fn new(
        outbox: Outbox,
        config: WebhookConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Self {
            outbox,
            config,
            metrics,
            client,
        })
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let notify = self.outbox.notified();
        // Consecutive failed attempts, over events: how unwell the receiver is (the backoff).
        let mut failures: u32 = 0;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let outbox = self.outbox.clone();
            let batch = tokio::task::spawn_blocking(move || outbox.oldest(BATCH)).await;
            let batch = match batch {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    tracing::error!(%error, "cannot read the webhook outbox");
                    if sleep_or_stop(&mut shutdown, Duration::from_secs(5)).await {
                        return;
                    }
                    continue;
                }
                Err(error) => {
                    tracing::error!(%error, "webhook outbox reader failed");
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = notify.notified() => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
            for (key, body) in batch {
                let mut attempts: u32 = 0;
                loop {
                    attempts = attempts.saturating_add(1);
                    let error = match self.deliver(&body).await {
                        Ok(()) => {
                            failures = 0;
                            self.metrics.webhook_delivered();
                            self.settle(key, None).await;
                            break;
                        }
                        Err(error) => error,
                    };
                    failures = failures.saturating_add(1);
                    self.metrics.webhook_attempt_failed();
                    let permanent = error.is_permanent();
                    if permanent || attempts >= self.config.max_attempts {
                        tracing::warn!(%error, attempts, permanent,
                            "webhook event moved to the dead-letter list");
                        let header = DeadLetterHeader {
                            failed_at_ms: unix_millis(SystemTime::now()),
                            attempts,
                            reason: error.to_string(),
                            status: error.status(),
                        };
                        self.settle(key, Some(header)).await;
                        // A refusal of one event says nothing about the next one.
                        if permanent {
                            failures = 0;
                        }
                        break;
                    }
                    let wait = backoff(&self.config, failures);
                    tracing::warn!(%error, attempt = attempts, retry_in_ms = wait.as_millis() as u64,
                        "webhook delivery failed");
                    if sleep_or_stop(&mut shutdown, wait).await {
                        return;
                    }
                }
            }
        }
    }

    /// Removes a delivered event, or moves a failed one to the dead-letter list.
    async fn settle(&self, key: Vec<u8>, dead: Option<DeadLetterHeader>) {
        let outbox = self.outbox.clone();
        let result = tokio::task::spawn_blocking(move || match dead {
            None => outbox.remove(&key),
            Some(header) => outbox.dead_letter(&key, &header).map(|_| ()),
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot update the webhook outbox"),
            Err(error) => tracing::error!(%error, "webhook outbox writer failed"),
        }
    }

    /// One attempt to POST `body`.
    async fn deliver(&self, body: &[u8]) -> Result<(), DeliveryError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(&self.config.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::USER_AGENT, "baton-webhook/1");
        if let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) {
            if let Some(id) = event.get("id").and_then(|v| v.as_str()) {
                request = request.header("X-Baton-Delivery", id);
            }
            if let Some(kind) = event.get("type").and_then(|v| v.as_str()) {
                request = request.header("X-Baton-Event", kind);
            }
        }
        if let Some(secret) = &self.config.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret.as_bytes(), body)?);
        }
        let request = request
            .body(Full::new(Bytes::copy_from_slice(body)))
            .map_err(|e| DeliveryError::Request(e.to_string()))?;
        let response = tokio::time::timeout(self.config.timeout, self.client.request(request))
            .await
            .map_err(|_| DeliveryError::Timeout)?
            .map_err(|e| DeliveryError::Transport(e.to_string()))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status(response.status().as_u16()))
        }
    }
}

/// Exponential backoff from the configured initial delay, capped, with up to 25% jitter.
fn backoff(config: &WebhookConfig, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = config
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(config.max_backoff);
    let mut random = [0u8; 2];
    let jitter = if openssl::rand::rand_bytes(&mut random).is_ok() {
        f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * 0.25
    } else {
        0.0
    };
    base.mul_f64(1.0 + jitter).min(config.max_backoff)
}

/// Sleeps for `wait`; true when shutdown was requested meanwhile.
async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut config = WebhookConfig::new("http://127.0.0.1:1/", None);
        config.initial_backoff = Duration::from_millis(100);
        config.max_backoff = Duration::from_secs(1);
        let first = backoff(&config, 1);
        assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(125));
        let third = backoff(&config, 3);
        assert!(third >= Duration::from_millis(400) && third <= Duration::from_millis(500));
        assert_eq!(backoff(&config, 30), Duration::from_secs(1));
    }

    #[test]
    fn refusals_of_the_event_are_permanent_and_outages_are_not() {
        for s in PERMANENT_STATUSES {
            assert!(DeliveryError::Status(s).is_permanent(), "{s}");
        }
        for s in [401, 403, 408, 429, 500, 502, 503] {
            assert!(!DeliveryError::Status(s).is_permanent(), "{s}");
        }
        assert!(!DeliveryError::Timeout.is_permanent());
        assert!(!DeliveryError::Transport("refused".into()).is_permanent());
        assert_eq!(DeliveryError::Status(413).status(), Some(413));
    }
}

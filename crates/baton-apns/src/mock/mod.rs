//! A mock APNs server for tests and manual runs: real HTTP/2 over TLS (tokio-rustls + hyper) on
//! a local address, that requires a client certificate issued by a given CA, checks the request
//! the way APNs does (method, path, topic against the certificate's UID, payload), records every
//! request, and can be scripted to answer errors, delay, drop connections or send GOAWAY.
//!
//! Not a model of APNs' delivery: nothing is forwarded anywhere.

mod record;
mod script;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use openssl::x509::X509;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;

pub use record::RecordedPush;
pub use script::{Action, Reply};

use crate::certificate::{describe_name, subject_uid};
use crate::testing::{TestPki, TestPkiError};
use script::Script;

/// Largest payload APNs accepts for a regular push.
const MAX_PAYLOAD: usize = 4096;

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MockError {
    /// Binding the listening socket failed.
    #[error("bind: {0}")]
    Bind(#[source] std::io::Error),
    /// The client CA could not be used.
    #[error("client CA: {0}")]
    ClientCa(String),
    /// rustls refused the server certificate or settings.
    #[error("TLS server setup: {0}")]
    Tls(#[source] rustls::Error),
    /// Test certificates could not be made.
    #[error("test PKI: {0}")]
    Pki(#[from] TestPkiError),
}

/// How to start the mock.
#[derive(Debug)]
pub struct MockConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The server certificate chain (must cover the host the client dials).
    pub server_chain: Vec<CertificateDer<'static>>,
    /// The server key.
    pub server_key: PrivateKeyDer<'static>,
    /// CAs that client certificates must chain to.
    pub client_cas: Vec<CertificateDer<'static>>,
    /// SETTINGS_MAX_CONCURRENT_STREAMS announced to clients (APNs uses 1,000).
    pub max_concurrent_streams: u32,
    /// Keep every request in memory for [`MockApns::pushes`]; counters are kept either way.
    pub record: bool,
}

impl MockConfig {
    /// A configuration on `127.0.0.1:0` using a test PKI's server certificate and CA.
    pub fn from_pki(pki: &TestPki) -> Result<Self, MockError> {
        let (server_chain, server_key) = pki.server_identity()?;
        Ok(Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            server_chain,
            server_key,
            client_cas: vec![pki.ca_der()?],
            max_concurrent_streams: 1000,
            record: true,
        })
    }
}

#[derive(Debug, Default)]
struct State {
    script: Mutex<Script>,
    pushes: Mutex<Vec<RecordedPush>>,
    record: bool,
    delay_micros: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    connections: AtomicU64,
    handshake_failures: AtomicU64,
}

impl State {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What one connection knows about its client and how the service tells it to drop or GOAWAY.
#[derive(Debug)]
struct Peer {
    id: u64,
    subject: String,
    topic: Option<String>,
    drop: Notify,
    goaway: Notify,
}

/// A running mock APNs server. Dropping it stops the server.
#[derive(Debug)]
pub struct MockApns {
    addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl MockApns {
    /// Starts the mock.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        let tls = server_tls(&config)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(MockError::Bind)?;
        let addr = listener.local_addr().map_err(MockError::Bind)?;
        let state = Arc::new(State {
            record: config.record,
            ..State::default()
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(
            listener,
            TlsAcceptor::from(tls),
            Arc::clone(&state),
            config.max_concurrent_streams,
            stopped,
        ));
        Ok(Self { addr, state, stop })
    }

    /// Starts the mock on `127.0.0.1:0` with a test PKI's certificates.
    pub async fn start_with_pki(pki: &TestPki) -> Result<Self, MockError> {
        Self::start(MockConfig::from_pki(pki)?).await
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL for [`ApnsConfig::base_url`](crate::ApnsConfig::base_url).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Every request recorded so far (empty when recording is off).
    pub fn pushes(&self) -> Vec<RecordedPush> {
        self.state
            .pushes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Requests received so far (answered or dropped).
    pub fn request_count(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The most requests that were being answered at the same moment.
    pub fn max_in_flight(&self) -> u64 {
        self.state.max_in_flight.load(Ordering::Relaxed)
    }

    /// TLS connections accepted so far (client certificate verified).
    pub fn connections_accepted(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed (for example: no or untrusted client certificate).
    pub fn handshake_failures(&self) -> u64 {
        self.state.handshake_failures.load(Ordering::Relaxed)
    }

    /// Answers every request for `token_hex` with `reply` (until [`MockApns::clear`]).
    pub fn fail_token(&self, token_hex: &str, reply: Reply) {
        self.state.script().fail_token(token_hex, reply, None);
    }

    /// Answers the next `times` requests for `token_hex` with `reply`, then accepts it again.
    pub fn fail_token_times(&self, token_hex: &str, reply: Reply, times: usize) {
        self.state
            .script()
            .fail_token(token_hex, reply, Some(times));
    }

    /// Answers the next `n` requests (for tokens without a rule) with `reply`.
    pub fn fail_next(&self, n: usize, reply: Reply) {
        self.state.script().push_next(n, Action::Fail(reply));
    }

    /// Drops the connection carrying each of the next `n` requests, without answering.
    pub fn drop_next(&self, n: usize) {
        self.state.script().push_next(n, Action::Drop);
    }

    /// Answers the next request, then sends GOAWAY on its connection.
    pub fn goaway_next(&self) {
        self.state.script().push_next(1, Action::GoAway);
    }

    /// Delays every answer by `delay` (zero for none).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// Forgets all scripted behaviour (recorded pushes are kept).
    pub fn clear(&self) {
        self.state.script().clear();
        self.set_delay(Duration::ZERO);
    }

    /// Stops accepting and closes every connection.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

impl Drop for MockApns {
    fn drop(&mut self) {
        self.stop();
    }
}

fn server_tls(config: &MockConfig) -> Result<Arc<ServerConfig>, MockError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in &config.client_cas {
        roots
            .add(ca.clone())
            .map_err(|e| MockError::ClientCa(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| MockError::ClientCa(e.to_string()))?;
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(MockError::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(config.server_chain.clone(), config.server_key.clone_key())
        .map_err(MockError::Tls)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(tls))
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    max_streams: u32,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "mock APNs accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        tokio::spawn(serve_connection(
            tcp,
            acceptor.clone(),
            Arc::clone(&state),
            max_streams,
            stopped.clone(),
        ));
    }
}

async fn serve_connection(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    max_streams: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            state.handshake_failures.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, "mock APNs TLS handshake failed");
            return;
        }
        Err(_) => {
            state.handshake_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let (subject, topic) = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| X509::from_der(der).ok())
        .map(|c| {
            (
                describe_name(c.subject_name()),
                subject_uid(c.subject_name()),
            )
        })
        .unwrap_or_default();
    let peer = Arc::new(Peer {
        id: state.connections.fetch_add(1, Ordering::Relaxed) + 1,
        subject,
        topic,
        drop: Notify::new(),
        goaway: Notify::new(),
    });
    let service = {
        let state = Arc::clone(&state);
        let peer = Arc::clone(&peer);
        service_fn(move |req| answer(Arc::clone(&state), Arc::clone(&peer), req))
    };
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(max_streams)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut goaway_sent = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, connection = peer.id, "mock APNs connection ended");
                }
                return;
            }
            () = peer.drop.notified() => return,
            () = peer.goaway.notified(), if !goaway_sent => {
                goaway_sent = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = stopped.changed() => return,
        }
    }
}

async fn answer(
    state: Arc<State>,
    peer: Arc<Peer>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let received_at = std::time::Instant::now();
    state.requests.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight::enter(&state);
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_PAYLOAD + 1).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let path = parts.uri.path().to_owned();
    let token = path
        .strip_prefix("/3/device/")
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase);
    let apns_id = parts
        .headers
        .get("apns-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string().to_uppercase());

    let action = if parts.method != Method::POST {
        Action::Fail(Reply::new(405, "MethodNotAllowed"))
    } else if token.is_none() {
        Action::Fail(Reply::new(404, "BadPath"))
    } else if parts
        .headers
        .get("apns-topic")
        .and_then(|v| v.to_str().ok())
        != peer.topic.as_deref()
    {
        Action::Fail(Reply::new(400, "BadTopic"))
    } else if body.is_empty() {
        Action::Fail(Reply::new(400, "PayloadEmpty"))
    } else if body.len() > MAX_PAYLOAD {
        Action::Fail(Reply::new(413, "PayloadTooLarge"))
    } else {
        state
            .script()
            .action_for(token.as_deref().unwrap_or_default())
    };

    let delay = state.delay_micros.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_micros(delay)).await;
    }

    let status = match &action {
        Action::Accept | Action::GoAway => 200,
        Action::Fail(reply) => reply.status,
        Action::Drop => 0,
    };
    if state.record {
        let pushed = RecordedPush {
            method: parts.method.clone(),
            path,
            token,
            headers: parts.headers.clone(),
            body,
            client_subject: peer.subject.clone(),
            client_topic: peer.topic.clone(),
            connection: peer.id,
            status,
            apns_id: apns_id.clone(),
            received_at,
        };
        state
            .pushes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(pushed);
    }

    let reply = match action {
        Action::Drop => {
            peer.drop.notify_one();
            // The connection is closed under this stream; never answer.
            std::future::pending::<()>().await;
            return Ok(plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                &apns_id,
                Bytes::new(),
            ));
        }
        Action::GoAway => {
            peer.goaway.notify_one();
            None
        }
        Action::Accept => None,
        Action::Fail(reply) => Some(reply),
    };
    Ok(match reply {
        None => plain(StatusCode::OK, &apns_id, Bytes::new()),
        Some(reply) => {
            let status =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = match reply.reason {
                Some(reason) => Bytes::from(serde_json::json!({ "reason": reason }).to_string()),
                None => Bytes::new(),
            };
            plain(status, &apns_id, body)
        }
    })
}

/// Counts a request as in flight until dropped (also when its stream is cancelled).
struct InFlight<'a>(&'a State);

impl<'a> InFlight<'a> {
    fn enter(state: &'a State) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        state.max_in_flight.fetch_max(now, Ordering::Relaxed);
        Self(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn plain(status: StatusCode, apns_id: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(apns_id) {
        response.headers_mut().insert("apns-id", v);
    }
    response
}

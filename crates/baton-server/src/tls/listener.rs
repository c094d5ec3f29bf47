//! The accept loop: TLS (or plain HTTP) in front of an axum router, HTTP/1.1 and HTTP/2 on each
//! connection, the peer's TLS client certificate and address inserted into every request, and a
//! graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use rustls::server::ResolvesServerCert;
use rustls::{DistinguishedName, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::TlsError;
use super::client_auth::{ClientAuth, OptionalClientCertificate};
use super::connection_limits::{Activity, ActivityStream, ConnectionLimits, OpenConnection};

/// Time open connections get to finish in-flight requests after shutdown is signalled.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The DER of the TLS client certificate the peer presented, if any, inserted into every request
/// served over TLS (always `None` over plain HTTP). It has *not* been checked against the device
/// CAs: pass it to [`crate::identity::IdentityVerifier::verify_request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate(pub Option<Arc<[u8]>>);

/// The listener's rustls configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the
/// certificate `certificates` resolves at each handshake (so a renewed certificate is served to
/// new connections while established ones keep theirs), and a CertificateRequest naming
/// `device_ca_subjects` (DER `Name`s) only with [`ClientAuth::Optional`].
pub fn server_config(
    certificates: Arc<dyn ResolvesServerCert>,
    client_auth: ClientAuth,
    device_ca_subjects: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let mut config = match client_auth {
        ClientAuth::Off => builder
            .with_no_client_auth()
            .with_cert_resolver(certificates),
        ClientAuth::Optional => builder
            .with_client_cert_verifier(Arc::new(OptionalClientCertificate {
                algorithms: provider.signature_verification_algorithms,
                hints: device_ca_subjects,
            }))
            .with_cert_resolver(certificates),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` completes, then stops accepting,
/// lets every open connection finish its in-flight requests (for at most 30 s), and returns.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    tls: Arc<ServerConfig>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let connection_limits = limits.clone();
    accept_loop(
        listener,
        limits,
        shutdown,
        move |tcp, remote, slot, connections, stop| {
            let acceptor = acceptor.clone();
            let router = router.clone();
            let limits = connection_limits.clone();
            connections.spawn(async move {
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%remote, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                let peer = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| Arc::<[u8]>::from(cert.as_ref()));
                serve_connection(stream, router, PeerCertificate(peer), remote, &limits, stop)
                    .await;
                drop(slot);
            });
        },
    )
    .await
}

/// Serves `router` over plain HTTP (for use behind a TLS-terminating proxy), with the same
/// shutdown behaviour as [`serve_tls`]. Requests carry `PeerCertificate(None)`.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let connection_limits = limits.clone();
    accept_loop(
        listener,
        limits,
        shutdown,
        move |tcp, remote, slot, connections, stop| {
            let router = router.clone();
            let limits = connection_limits.clone();
            connections.spawn(async move {
                serve_connection(tcp, router, PeerCertificate(None), remote, &limits, stop).await;
                drop(slot);
            });
        },
    )
    .await
}

/// Accepts connections and hands each to `spawn` with its slot until `shutdown`; a connection
/// beyond `limits.max_connections` is closed at once (and counted). Then signals every connection
/// to shut down gracefully and waits for them.
async fn accept_loop<F>(
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
    mut spawn: F,
) -> io::Result<()>
where
    F: FnMut(
        tokio::net::TcpStream,
        SocketAddr,
        OpenConnection,
        &mut JoinSet<()>,
        watch::Receiver<bool>,
    ),
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let Some(slot) = limits.counters.try_open(limits.max_connections) else {
                        tracing::debug!(%remote, max = limits.max_connections,
                            "connection refused: too many open connections");
                        drop(tcp);
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    spawn(tcp, remote, slot, &mut connections, stop_rx.clone());
                }
                Err(error) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(GRACEFUL_SHUTDOWN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "connections still open after the graceful shutdown period; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Serves HTTP/1.1 or HTTP/2 (auto-detected) on one connection, inserting `peer` and the remote
/// address into every request, until the client closes, `stop` asks for a graceful shutdown, the
/// headers take longer than `limits.header_read_timeout`, or nothing moves for
/// `limits.idle_timeout`.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    peer: PeerCertificate,
    remote: SocketAddr,
    limits: &ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(peer.clone());
        request.extensions_mut().insert(ConnectInfo(remote));
        let mut router = router.clone();
        tower::Service::call(&mut router, request)
    });
    let mut builder = ConnectionBuilder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let activity = Activity::new();
    let stream = ActivityStream::new(stream, Arc::clone(&activity));
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let idle = async {
        loop {
            let deadline = activity.deadline(limits.idle_timeout);
            if std::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The flag only ever goes from false to true (or the sender is dropped): any change stops.
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = idle => {
            tracing::debug!(%remote, "connection closed: idle");
            limits.counters.count_timeout();
            return;
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}

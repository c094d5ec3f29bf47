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
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    accept_loop(listener, shutdown, move |tcp, remote, connections, stop| {
        let acceptor = acceptor.clone();
        let router = router.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
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
            serve_connection(stream, router, PeerCertificate(peer), remote, stop).await;
        });
    })
    .await
}

/// Serves `router` over plain HTTP (for use behind a TLS-terminating proxy), with the same
/// shutdown behaviour as [`serve_tls`]. Requests carry `PeerCertificate(None)`.
pub async fn serve_plain(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    accept_loop(listener, shutdown, move |tcp, remote, connections, stop| {
        let router = router.clone();
        connections.spawn(serve_connection(
            tcp,
            router,
            PeerCertificate(None),
            remote,
            stop,
        ));
    })
    .await
}

/// Accepts connections and hands each to `spawn` until `shutdown`; then signals every
/// connection to shut down gracefully and waits for them.
async fn accept_loop<F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    mut spawn: F,
) -> io::Result<()>
where
    F: FnMut(tokio::net::TcpStream, SocketAddr, &mut JoinSet<()>, watch::Receiver<bool>),
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote)) => {
                    let _ = tcp.set_nodelay(true);
                    spawn(tcp, remote, &mut connections, stop_rx.clone());
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
/// address into every request, until the client closes or `stop` asks for a graceful shutdown.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    peer: PeerCertificate,
    remote: SocketAddr,
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
    let builder = ConnectionBuilder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // The flag only ever goes from false to true (or the sender is dropped): any change stops.
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%remote, %error, "connection ended with an error");
    }
}

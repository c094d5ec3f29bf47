//! The HTTPS listener: a small rustls accept loop in front of an axum router, serving HTTP/1.1
//! and HTTP/2 (ALPN `h2`, `http/1.1`) on each connection, and exposing the peer's TLS client
//! certificate to handlers as a [`PeerCertificate`] request extension.
//!
//! Client certificates are requested but optional. The TLS layer accepts any certificate chain
//! (it only checks that the client proved possession of the key, via the handshake signature);
//! whether the certificate is trusted is decided by [`crate::identity`], which knows the device
//! CAs and the clock-skew rules. [`serve_plain`] serves the same router without TLS, for
//! deployments behind a TLS-terminating proxy.
//!
//! [`TlsIdentity`] loads the server certificate and key from PEM files, or generates a
//! self-signed one on first start and reuses it afterwards.

use std::fs;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509Name};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Sub-directory of the data directory holding the generated certificate.
const TLS_DIR: &str = "tls";
/// File name of the server certificate chain (PEM).
pub const SERVER_CERT_FILE: &str = "server.crt";
/// File name of the server private key (PEM, mode 0600).
pub const SERVER_KEY_FILE: &str = "server.key";
/// Validity of a generated self-signed certificate.
const GENERATED_VALIDITY_DAYS: u32 = 730;
/// Time open connections get to finish in-flight requests after shutdown is signalled.
const GRACEFUL_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for a TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The DER of the TLS client certificate the peer presented, if any, inserted into every request
/// served over TLS (always `None` over plain HTTP). It has *not* been checked against the device
/// CAs: pass it to [`crate::identity::IdentityVerifier::verify_request`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate(pub Option<Arc<[u8]>>);

/// Why the TLS listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A PEM file holds no certificate, or no private key, or cannot be parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file (or a description of the in-memory source).
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// rustls refused the certificate/key pair or configuration.
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// openssl failed while generating the self-signed certificate.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// The server's certificate chain and private key.
#[derive(Debug)]
pub struct TlsIdentity {
    /// Leaf first, then intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// Reads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            fs::read(path).map_err(|source| TlsError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let cert_chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| TlsError::Pem {
                path: cert_path.to_owned(),
                reason: "unreadable PEM certificate",
            })?;
        if cert_chain.is_empty() {
            return Err(TlsError::Pem {
                path: cert_path.to_owned(),
                reason: "no certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::Pem {
            path: key_path.to_owned(),
            reason: "no readable private key",
        })?;
        Ok(Self { cert_chain, key })
    }

    /// Loads `<dir>/tls/server.crt` and `<dir>/tls/server.key`, generating a self-signed
    /// certificate for `hosts` (DNS names or IP addresses) there first if they do not exist.
    /// Existing files are reused as they are, even if `hosts` changed.
    pub fn load_or_generate(dir: &Path, hosts: &[String]) -> Result<Self, TlsError> {
        let tls_dir = dir.join(TLS_DIR);
        let cert_path = tls_dir.join(SERVER_CERT_FILE);
        let key_path = tls_dir.join(SERVER_KEY_FILE);
        if !(cert_path.exists() && key_path.exists()) {
            let (cert_pem, key_pem) = generate_self_signed(hosts)?;
            let io_error = |path: &Path| {
                let path = path.to_owned();
                move |source| TlsError::Io { path, source }
            };
            fs::create_dir_all(&tls_dir).map_err(io_error(&tls_dir))?;
            write_file(&key_path, &key_pem, 0o600).map_err(io_error(&key_path))?;
            write_file(&cert_path, &cert_pem, 0o644).map_err(io_error(&cert_path))?;
            tracing::info!(path = %cert_path.display(), "generated a self-signed TLS certificate");
        }
        Self::from_pem_files(&cert_path, &key_path)
    }

    /// A rustls server configuration: ALPN `h2` then `http/1.1`, TLS 1.2 and 1.3, client
    /// certificates requested but optional (see [`PeerCertificate`]).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(OptionalClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Writes a file through a temporary name and a rename, with the given Unix permissions.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temporary = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

/// A self-signed P-256 certificate for `hosts` (SANs: IP addresses as IPs, the rest as DNS
/// names; `localhost` if empty), valid for two years. Returns (certificate PEM, key PEM).
fn generate_self_signed(hosts: &[String]) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let default_hosts = ["localhost".to_owned()];
    let hosts = if hosts.is_empty() {
        &default_hosts[..]
    } else {
        hosts
    };
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Baton")?;
    name.append_entry_by_nid(
        Nid::COMMONNAME,
        hosts.first().map_or("localhost", String::as_str),
    )?;
    let name = name.build();
    let mut serial = BigNum::new()?;
    serial.rand(120, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    let not_before = Asn1Time::days_from_now(0)?;
    let not_after = Asn1Time::days_from_now(GENERATED_VALIDITY_DAYS)?;

    let mut builder = X509Builder::new()?;
    builder.set_version(2)?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(&key)?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.append_extension(BasicConstraints::new().critical().build()?)?;
    builder.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
    builder.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
    let mut san = SubjectAlternativeName::new();
    for host in hosts {
        if host.parse::<IpAddr>().is_ok() {
            san.ip(host);
        } else {
            san.dns(host);
        }
    }
    let san = san.build(&builder.x509v3_context(None, None))?;
    builder.append_extension(san)?;
    builder.sign(&key, MessageDigest::sha256())?;
    let cert = builder.build();
    Ok((cert.to_pem()?, key.private_key_to_pem_pkcs8()?))
}

/// Requests a client certificate, accepts any chain, and checks only the handshake signature
/// (proof that the client holds the certificate's key). Trust is decided by the identity module.
#[derive(Debug)]
struct OptionalClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for OptionalClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
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

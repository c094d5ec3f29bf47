//! The TLS listener end to end on 127.0.0.1:0: HTTP/1.1 and HTTP/2 over TLS, with and without a
//! client certificate (and the identity module judging it), plain HTTP, graceful shutdown, and
//! reuse of the generated self-signed certificate.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::routing::get;
use axum::{Extension, Router};
use baton_server::identity::testing::{DeviceCertificateSpec, DeviceIdentity, TestCa};
use baton_server::identity::{IdentityConfig, IdentityVerifier, TrustAnchors};
use baton_server::tls::{ConnectionLimits, PeerCertificate, TlsIdentity, serve_plain, serve_tls};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

struct Pki {
    ca: TestCa,
    device: DeviceIdentity,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = TestCa::generate("TLS Test Device CA").unwrap();
        let device = ca
            .issue_device("tls-device", &DeviceCertificateSpec::default())
            .unwrap();
        Pki { ca, device }
    })
}

/// Answers `<http version> <peer certificate verdict>`.
fn router() -> Router {
    let verifier = Arc::new(IdentityVerifier::new(
        TrustAnchors::new([pki().ca.cert.clone()]).unwrap(),
        IdentityConfig::default(),
    ));
    Router::new().route(
        "/",
        get(
            move |Extension(peer): Extension<PeerCertificate>, version: http::Version| async move {
                let verdict = match peer.0 {
                    None => "no-cert".to_owned(),
                    Some(der) => {
                        match verifier.verify_client_certificate(&der, &[], SystemTime::now()) {
                            Ok(identity) => format!("trusted:{}", identity.cert_sha256_hex()),
                            Err(error) => format!("untrusted:{error}"),
                        }
                    }
                };
                format!("{version:?} {verdict}")
            },
        ),
    )
}

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    server_cert: CertificateDer<'static>,
}

async fn start_tls(dir: &std::path::Path) -> Server {
    let identity =
        TlsIdentity::load_or_generate(dir, &["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let server_cert = identity.cert_chain[0].clone();
    let config = identity.server_config().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls(
        listener,
        router(),
        config,
        ConnectionLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop,
        task,
        server_cert,
    }
}

impl Server {
    async fn shut_down(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops after the shutdown signal")
            .unwrap()
            .unwrap();
    }
}

fn client_config(
    server_cert: &CertificateDer<'static>,
    alpn: &[u8],
    client: Option<&DeviceIdentity>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some(device) => {
            let cert = CertificateDer::from(device.cert_der().unwrap());
            let key = PrivateKeyDer::Pkcs8(device.key.private_key_to_pkcs8().unwrap().into());
            builder.with_client_auth_cert(vec![cert], key).unwrap()
        }
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// GET / over TLS with the given ALPN protocol; returns the response body.
async fn get_tls(server: &Server, alpn: &[u8], client: Option<&DeviceIdentity>) -> String {
    let connector = TlsConnector::from(client_config(&server.server_cert, alpn, client));
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    let io = TokioIo::new(tls);
    let request = hyper::Request::get(format!("https://localhost:{}/", server.addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if alpn == b"h2" {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(connection);
        sender.send_request(request).await.unwrap()
    };
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn http1_and_http2_with_and_without_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_tls(dir.path()).await;
    let device = &pki().device;
    let expected_hash = hex::encode(device.cert_sha256().unwrap());

    assert_eq!(
        get_tls(&server, b"http/1.1", None).await,
        "HTTP/1.1 no-cert"
    );
    assert_eq!(get_tls(&server, b"h2", None).await, "HTTP/2.0 no-cert");
    assert_eq!(
        get_tls(&server, b"http/1.1", Some(device)).await,
        format!("HTTP/1.1 trusted:{expected_hash}")
    );
    assert_eq!(
        get_tls(&server, b"h2", Some(device)).await,
        format!("HTTP/2.0 trusted:{expected_hash}")
    );

    // A certificate from a CA the identity module does not trust still completes the handshake
    // (the TLS layer only checks key possession); the handler sees it and the verifier refuses it.
    let stranger = TestCa::generate("Stranger CA")
        .unwrap()
        .issue_device("stranger", &DeviceCertificateSpec::default())
        .unwrap();
    let answer = get_tls(&server, b"h2", Some(&stranger)).await;
    assert!(answer.starts_with("HTTP/2.0 untrusted:"), "{answer}");

    server.shut_down().await;
}

#[tokio::test]
async fn generated_certificate_is_reused_with_private_key_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = ["baton.example".to_owned(), "10.0.0.7".to_owned()];
    let first = TlsIdentity::load_or_generate(dir.path(), &hosts).unwrap();
    let second = TlsIdentity::load_or_generate(dir.path(), &hosts).unwrap();
    assert_eq!(first.cert_chain, second.cert_chain);
    assert_eq!(first.key.secret_der(), second.key.secret_der());

    let key_path = dir.path().join("tls").join("server.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let cert = openssl::x509::X509::from_der(&first.cert_chain[0]).unwrap();
    let names = cert.subject_alt_names().unwrap();
    assert!(names.iter().any(|n| n.dnsname() == Some("baton.example")));
    assert!(
        names
            .iter()
            .any(|n| n.ipaddress() == Some(&[10, 0, 0, 7][..]))
    );
    let days = openssl::asn1::Asn1Time::days_from_now(0)
        .unwrap()
        .diff(cert.not_after())
        .unwrap()
        .days;
    assert!((729..=730).contains(&days), "{days}");

    // A different directory gets a different certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other = TlsIdentity::load_or_generate(other_dir.path(), &hosts).unwrap();
    assert_ne!(other.cert_chain, first.cert_chain);
}

#[tokio::test]
async fn pem_files_that_are_not_pem_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("c.pem");
    let key = dir.path().join("k.pem");
    std::fs::write(&cert, b"nothing here").unwrap();
    std::fs::write(&key, b"nothing here").unwrap();
    assert!(TlsIdentity::from_pem_files(&cert, &key).is_err());
    assert!(TlsIdentity::from_pem_files(&dir.path().join("missing"), &key).is_err());
}

#[tokio::test]
async fn plain_http_serves_without_a_peer_certificate() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_plain(
        listener,
        router(),
        ConnectionLimits::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get("/")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"HTTP/1.1 no-cert");

    // Shutdown closes the idle keep-alive connection and returns.
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), connection)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

//! TLS probes for the listener tests: `openssl s_client` runs, handshakes that report the
//! certificate a new connection gets, and HTTP/1.1 keep-alive or HTTP/2 connections held open
//! across a certificate renewal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Runs `openssl s_client -connect <addr> -servername <sni> -msg <extra...>` with stdin closed
/// (so it hangs up after the handshake) and returns what it printed (stdout and stderr).
pub async fn s_client(addr: SocketAddr, sni: &str, extra: &[&str]) -> String {
    let mut command = tokio::process::Command::new("openssl");
    command
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            sni,
            "-msg",
        ])
        .args(extra)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("openssl s_client finishes")
        .expect("openssl is installed");
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    text
}

/// Accepts any server certificate: the renewal tests look at what was served, not at trust.
#[derive(Debug)]
struct AnyServerCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A client configuration offering `alpn`, trusting `roots` only (with host-name checks), or
/// anything when `roots` is `None`. Never presents a client certificate.
pub fn client_config(alpn: &[u8], roots: Option<RootCertStore>) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let mut config = match roots {
        Some(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A TLS handshake with `addr`, naming `sni`.
pub async fn handshake(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// Upper-case hex serial of a DER certificate (as `ServedCertificate::serial_hex`).
pub fn serial_hex(der: &[u8]) -> String {
    let cert = openssl::x509::X509::from_der(der).unwrap();
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_hex_str()
        .unwrap()
        .to_string()
}

/// The serial of the leaf certificate a new connection to `addr` is served.
pub async fn served_serial(addr: SocketAddr) -> String {
    let stream = handshake(addr, "localhost", client_config(b"http/1.1", None))
        .await
        .unwrap();
    serial_hex(stream.get_ref().1.peer_certificates().unwrap()[0].as_ref())
}

/// The request sender of an open HTTP/1.1 or HTTP/2 connection.
#[derive(Debug)]
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

/// One TLS connection that carries several requests (HTTP/1.1 keep-alive or HTTP/2).
#[derive(Debug)]
pub struct Connection {
    sender: Sender,
    /// Serial of the certificate the connection was served at its handshake.
    pub serial: String,
}

impl Connection {
    /// Opens a connection to `addr` speaking HTTP/2 (`http2`) or HTTP/1.1, accepting any server
    /// certificate.
    pub async fn open(addr: SocketAddr, http2: bool) -> Self {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        let stream = handshake(addr, "localhost", client_config(alpn, None))
            .await
            .unwrap();
        Self::over(stream, http2).await
    }

    /// HTTP/2 (`http2`, which ALPN must have chosen) or HTTP/1.1 over an established stream.
    pub async fn over(stream: TlsStream<TcpStream>, http2: bool) -> Self {
        let alpn: &[u8] = if http2 { b"h2" } else { b"http/1.1" };
        let (_, session) = stream.get_ref();
        assert_eq!(session.alpn_protocol(), Some(alpn));
        let serial = serial_hex(session.peer_certificates().unwrap()[0].as_ref());
        let io = TokioIo::new(stream);
        let sender = if http2 {
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            Sender::Http2(sender)
        } else {
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            Sender::Http1(sender)
        };
        Self { sender, serial }
    }

    /// GETs `path` on this connection; the status, or the error if the connection is gone.
    pub async fn get(&mut self, path: &str) -> Result<StatusCode, hyper::Error> {
        match &mut self.sender {
            Sender::Http1(sender) => {
                let request = Request::get(path)
                    .header(http::header::HOST, "localhost")
                    .body(Empty::new())
                    .unwrap();
                sender.ready().await?;
                Ok(sender.send_request(request).await?.status())
            }
            Sender::Http2(sender) => {
                let request = Request::get(format!("https://localhost{path}"))
                    .body(Empty::new())
                    .unwrap();
                sender.ready().await?;
                Ok(sender.send_request(request).await?.status())
            }
        }
    }
}

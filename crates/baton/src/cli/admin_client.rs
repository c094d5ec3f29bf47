//! The operator CLI's HTTP client for the admin API: bearer API key, JSON in and out, HTTPS
//! trusting a given CA file (`--ca-file`, e.g. `<data>/ca/ca.crt`), the web PKI roots, or with
//! `--insecure` any certificate (signatures are still checked).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How to reach the admin API.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the server, e.g. `https://mdm.example:8443`.
    #[arg(
        long,
        global = true,
        env = "BATON_SERVER",
        default_value = "https://localhost:8443"
    )]
    pub server: String,
    /// Admin API key (required).
    #[arg(long, global = true, env = "BATON_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// PEM file of the CA that issued the server's TLS certificate.
    #[arg(long, global = true, env = "BATON_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long, global = true)]
    pub insecure: bool,
}

/// An admin API answer.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body (JSON for the admin API).
    pub body: Bytes,
}

/// Accepts any server certificate but still checks the handshake signatures.
#[derive(Debug)]
struct AnyServer(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyServer {
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

/// The client.
#[derive(Debug)]
pub struct AdminClient {
    base: String,
    api_key: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl AdminClient {
    /// A client for `conn`.
    pub fn new(conn: &Connection) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?;
        let tls = if conn.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyServer(
                    provider.signature_verification_algorithms,
                )))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &conn.ca_file {
                Some(path) => {
                    let pem = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                        roots.add(cert.context("bad PEM certificate")?)?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(AdminClient {
            base: conn.server.trim_end_matches('/').to_owned(),
            api_key: conn
                .api_key
                .clone()
                .ok_or_else(|| anyhow!("no API key: pass --api-key or set BATON_API_KEY"))?,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `method path` with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}/api/v1{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.api_key));
        let bytes = match body {
            Some(json) => {
                request = request.header("Content-Type", "application/json");
                serde_json::to_vec(json)?
            }
            None => Vec::new(),
        };
        let request = request.body(Full::new(Bytes::from(bytes)))?;
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| anyhow!("timed out"))?
            .map_err(|e| anyhow!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok(Answer { status, body })
    }
}

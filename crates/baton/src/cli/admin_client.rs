//! The operator CLI's HTTP client for the admin API: bearer API key, JSON in and out, HTTPS
//! trusting a given CA file (`--ca-file`, e.g. `<data>/ca/ca.pem`), the web PKI roots, or with
//! `--insecure` any certificate (signatures are still checked). A request that fails before an
//! answer is explained for a person ([`Unreachable`]): an unknown CA names `--ca-file`, a wrong
//! host name the names to use, a refused connection the address tried.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
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
    /// Admin API key. Prefer `BATON_API_KEY` or `--api-key-file`: a key on the command line is
    /// visible to every user of the machine in `ps`.
    #[arg(long, global = true, env = "BATON_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// File holding the admin API key (first line; e.g. mode 0600 in the operator's home).
    #[arg(
        long,
        global = true,
        env = "BATON_API_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "api_key"
    )]
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA that issued the server's TLS certificate.
    #[arg(long, global = true, env = "BATON_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (testing only).
    #[arg(long, global = true)]
    pub insecure: bool,
}

/// The API key: `--api-key`/`BATON_API_KEY`, else the first line of `--api-key-file`.
fn api_key(conn: &Connection) -> anyhow::Result<String> {
    if let Some(key) = &conn.api_key {
        return Ok(key.clone());
    }
    let Some(path) = &conn.api_key_file else {
        bail!(
            "no API key: set BATON_API_KEY or pass --api-key-file FILE (the key `baton serve` \
             printed at its first start)"
        );
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API key file {}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        bail!("the API key file {} is empty", path.display());
    }
    Ok(key.to_owned())
}

/// `path` with the bytes a URI cannot hold percent-encoded (a username with a space, a
/// non-ASCII name); the structure characters `/ ? & = %` are kept.
fn uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/?&=%:@!$'()*+,;".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The server could not be reached, or TLS failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

/// A person's explanation of a request that got no answer, from the error's causes.
pub fn explain(base: &str, error: &(dyn std::error::Error + 'static)) -> String {
    let mut tls = None;
    let mut io_kind = None;
    let mut texts = Vec::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            tls.get_or_insert_with(|| t.clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                tls.get_or_insert_with(|| t.clone());
            }
        }
        let text = e.to_string();
        if !texts.iter().any(|t: &String| t.contains(&text)) {
            texts.push(text);
        }
        cause = e.source();
    }
    let detail = texts.last().cloned().unwrap_or_default();
    use rustls::CertificateError as C;
    match tls {
        Some(rustls::Error::InvalidCertificate(C::UnknownIssuer)) => format!(
            "TLS: the certificate of {base} is not signed by a CA this command trusts. Pass the \
             server's CA with --ca-file PEM (or BATON_CA_FILE): for the certificate `baton serve` \
             makes itself that is <data>/ca/ca.pem on the server, whose SHA-256 the start banner \
             prints as \"device CA SHA-256\". (--insecure skips the check; for tests only.)"
        ),
        Some(rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        )) => format!(
            "TLS: the server's certificate is not valid for the host name in {base}. Use the \
             host name devices use (the server's --public-url), or restart `baton serve` with \
             --public-url naming this host so its certificate covers it ({detail})"
        ),
        Some(rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. })) => {
            format!("TLS: the certificate of {base} has expired: renew it on the server ({detail})")
        }
        Some(rustls::Error::InvalidMessage(_)) => format!(
            "TLS: {base} did not answer TLS. If the server runs with --plain-http, use an \
             http:// URL in --server ({detail})"
        ),
        Some(other) => format!("TLS with {base} failed: {other}"),
        None if detail.contains("corrupt message") || detail.contains("InvalidContentType") => {
            format!(
                "TLS: {base} did not answer TLS. If the server runs with --plain-http, use an \
                 http:// URL in --server ({detail})"
            )
        }
        None if detail.contains("UnknownIssuer") => format!(
            "TLS: the certificate of {base} is not signed by a CA this command trusts. Pass the \
             server's CA with --ca-file PEM (or BATON_CA_FILE): <data>/ca/ca.pem on the server"
        ),
        None => match io_kind {
            Some(std::io::ErrorKind::ConnectionRefused) => format!(
                "nothing listens at {base} (connection refused): is `baton serve` running, and \
                 are the host and port in --server (BATON_SERVER) right?"
            ),
            _ if detail.contains("dns error") || detail.contains("failed to lookup") => {
                format!("cannot resolve the host name in {base}: check --server ({detail})")
            }
            _ if detail.contains("invalid URL") || detail.contains("scheme") => format!(
                "--server {base} is not a usable URL: give https://HOST:PORT or http://HOST:PORT"
            ),
            _ => format!("cannot reach {base}: {detail}"),
        },
    }
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
            api_key: api_key(conn)?,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends `method path` with a body of another type (a CSV upload).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}/api/v1{}", self.base, uri_path(path)))
            .header("Authorization", format!("Bearer {}", self.api_key))
            .header("Content-Type", content_type)
            .body(Full::new(Bytes::from(body)))?;
        self.send(request).await
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
            .uri(format!("{}/api/v1{}", self.base, uri_path(path)))
            .header("Authorization", format!("Bearer {}", self.api_key));
        let bytes = match body {
            Some(json) => {
                request = request.header("Content-Type", "application/json");
                serde_json::to_vec(json)?
            }
            None => Vec::new(),
        };
        let request = request.body(Full::new(Bytes::from(bytes)))?;
        self.send(request).await
    }

    async fn send(&self, request: Request<Full<Bytes>>) -> anyhow::Result<Answer> {
        let response = tokio::time::timeout(Duration::from_secs(60), self.client.request(request))
            .await
            .map_err(|_| {
                Unreachable(format!(
                    "{} did not answer within 60 s (is it overloaded, or behind a firewall that \
                     drops packets?)",
                    self.base
                ))
            })?
            .map_err(|e| Unreachable(explain(&self.base, &e)))?;
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

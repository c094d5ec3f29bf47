//! HTTP(S) transport for simulated devices: one pooled HTTP/1.1 keep-alive client (rustls or
//! plain HTTP) shared by every device of a process, and the server-certificate trust it uses.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
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

use crate::SimError;

/// How a simulated device decides to trust the server's TLS certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerTrust {
    /// Accept any certificate (handshake signatures are still checked). For local test servers
    /// with generated self-signed certificates.
    #[default]
    AcceptAny,
    /// Accept exactly this certificate (DER).
    Pinned(Vec<u8>),
}

/// A verifier for [`ServerTrust`].
#[derive(Debug)]
struct TrustVerifier {
    pinned: Option<Vec<u8>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(der) if end_entity.as_ref() != der.as_slice() => Err(rustls::Error::General(
                "server certificate is not the pinned one".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
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

/// A rustls client configuration for `trust` (no client certificate).
pub fn client_tls_config(trust: &ServerTrust) -> Result<rustls::ClientConfig, SimError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustVerifier {
            pinned: match trust {
                ServerTrust::AcceptAny => None,
                ServerTrust::Pinned(der) => Some(der.clone()),
            },
            algorithms: provider.signature_verification_algorithms,
        }))
        .with_no_client_auth();
    Ok(config)
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpReply {
    /// The body as (lossy) text, cut to 300 bytes, for error messages.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// The pooled client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl Transport {
    /// A client trusting servers per `trust`, with a 30 s timeout per request.
    pub fn new(trust: &ServerTrust) -> Result<Self, SimError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(client_tls_config(trust)?)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(Self {
            client,
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends one request.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<HttpReply, SimError> {
        let failed = |reason: String| SimError::Transport {
            method: method.to_string(),
            url: url.to_owned(),
            reason,
        };
        let mut request = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| failed(e.to_string()))?;
        let response = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(format!("{e:?}")))?;
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        Ok(HttpReply {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// GET `url`; any status other than 200 is an error.
    pub async fn get_ok(&self, url: &str) -> Result<Bytes, SimError> {
        let reply = self.send(Method::GET, url, &[], Bytes::new()).await?;
        if reply.status != 200 {
            return Err(SimError::HttpStatus {
                url: url.to_owned(),
                status: reply.status,
                body: reply.body_excerpt(),
            });
        }
        Ok(reply.body)
    }
}

/// `scheme://host:port` of a URL (no path), for joining server paths.
pub fn origin_of(url: &str) -> Result<String, SimError> {
    let bad = |reason: &str| SimError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("scheme must be http or https"));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    Ok(format!("{scheme}://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_strips_the_path_and_refuses_other_schemes() {
        assert_eq!(
            origin_of("https://127.0.0.1:8443/mdm/enroll").unwrap(),
            "https://127.0.0.1:8443"
        );
        assert_eq!(origin_of("http://h").unwrap(), "http://h");
        assert!(origin_of("ftp://h/x").is_err());
        assert!(origin_of("https:///x").is_err());
    }
}

//! HTTP/2-over-TLS connections to APNs: dialing one (TCP, TLS with the push certificate as the
//! client certificate, ALPN `h2`, HTTP/2 handshake with keep-alive pings) and the slot that keeps
//! the live connection, hands out senders for it and redials after GOAWAY or a failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::ClientError;

/// The request body type sent on APNs connections.
pub(crate) type Body = Full<Bytes>;

/// Where APNs is: parsed once from the base URL.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    /// `https://host[:port]`, the prefix of every request URI.
    pub(crate) origin: String,
}

impl Endpoint {
    /// Parses `https://host[:port]` (a trailing `/` is allowed, no other path).
    pub(crate) fn parse(base_url: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BaseUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: http::Uri = base_url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("the URL must have no path or query"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name =
            ServerName::try_from(host.clone()).map_err(|_| bad("the host is not a valid name"))?;
        Ok(Self {
            origin: format!("https://{}", authority.as_str()),
            host,
            port,
            server_name,
        })
    }
}

/// Opens connections.
pub(crate) struct Dialer {
    endpoint: Endpoint,
    tls: TlsConnector,
    connect_timeout: Duration,
    keep_alive_interval: Duration,
    keep_alive_timeout: Duration,
    opened: AtomicU64,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("origin", &self.endpoint.origin)
            .field("opened", &self.opened())
            .finish_non_exhaustive()
    }
}

impl Dialer {
    pub(crate) fn new(
        endpoint: Endpoint,
        tls: Arc<ClientConfig>,
        connect_timeout: Duration,
        keep_alive_interval: Duration,
        keep_alive_timeout: Duration,
    ) -> Self {
        Self {
            endpoint,
            tls: TlsConnector::from(tls),
            connect_timeout,
            keep_alive_interval,
            keep_alive_timeout,
            opened: AtomicU64::new(0),
        }
    }

    /// Connections opened so far.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Opens one connection and spawns its driver task.
    async fn dial(&self) -> Result<SendRequest<Body>, String> {
        let connect = async {
            let tcp = TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
                .await
                .map_err(|e| format!("connect {}: {e}", self.endpoint.origin))?;
            // Latency matters more than packet count for small pushes.
            tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
            let tls = self
                .tls
                .connect(self.endpoint.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            if tls.get_ref().1.alpn_protocol() != Some(b"h2".as_slice()) {
                return Err("the server did not negotiate HTTP/2 (ALPN h2)".to_owned());
            }
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .keep_alive_interval(self.keep_alive_interval)
                .keep_alive_timeout(self.keep_alive_timeout)
                .keep_alive_while_idle(true)
                .handshake(TokioIo::new(tls))
                .await
                .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "APNs connection ended with an error");
                }
            });
            Ok(sender)
        };
        let sender = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| format!("connect {}: timed out", self.endpoint.origin))??;
        let n = self.opened.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(origin = %self.endpoint.origin, connection = n, "APNs connection opened");
        Ok(sender)
    }
}

/// One pooled connection: the live sender (if any) and the generation it belongs to, so a
/// failure on an old connection never discards its replacement.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    live: Mutex<Option<(u64, SendRequest<Body>)>>,
    dialing: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl Slot {
    fn current(&self) -> Option<(u64, SendRequest<Body>)> {
        let live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        match &*live {
            Some((generation, sender)) if !sender.is_closed() => {
                Some((*generation, sender.clone()))
            }
            _ => None,
        }
    }

    /// A sender on the live connection, dialing one first if there is none (one dial at a time).
    pub(crate) async fn sender(&self, dialer: &Dialer) -> Result<(u64, SendRequest<Body>), String> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let _dialing = self.dialing.lock().await;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let sender = dialer.dial().await?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        *self.live.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((generation, sender.clone()));
        Ok((generation, sender))
    }

    /// Forgets connection `generation` after it failed, so the next push redials.
    pub(crate) fn discard(&self, generation: u64) {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(&*live, Some((g, _)) if *g == generation) {
            *live = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("https://api.push.apple.com").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("api.push.apple.com", 443));
        assert_eq!(e.origin, "https://api.push.apple.com");
        let e = Endpoint::parse("https://127.0.0.1:8443/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8443));
        assert_eq!(e.origin, "https://127.0.0.1:8443");
        let e = Endpoint::parse("https://[::1]:9000").unwrap();
        assert_eq!(e.host, "::1");
        assert!(Endpoint::parse("http://api.push.apple.com").is_err());
        assert!(Endpoint::parse("https://api.push.apple.com/3/device").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }
}

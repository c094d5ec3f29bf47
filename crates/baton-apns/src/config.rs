//! Client configuration: where APNs is, whom to trust, and the limits of the sender.

use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::backoff::RetryPolicy;
use crate::breaker::BreakerConfig;

/// APNs production: MDM pushes always go here (MDM push certificates are production-only).
pub const PRODUCTION_URL: &str = "https://api.push.apple.com";

/// APNs development environment (not used by MDM; for completeness).
pub const SANDBOX_URL: &str = "https://api.sandbox.push.apple.com";

/// The `apns-expiration` header: how long APNs stores a push for an offline device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expiration {
    /// `0`: deliver now or never (APNs does not store it).
    Immediate,
    /// Store it for this long after the send (sent as a UNIX time).
    After(Duration),
}

impl Default for Expiration {
    /// One day: a device that comes back on line within a day still gets the nudge; the
    /// server's own re-push policy covers longer absences.
    fn default() -> Self {
        Self::After(Duration::from_secs(86_400))
    }
}

impl Expiration {
    /// The header value for a push sent at `now_unix` (seconds since the UNIX epoch).
    pub fn header_value(self, now_unix: u64) -> String {
        match self {
            Self::Immediate => "0".to_owned(),
            Self::After(d) => now_unix.saturating_add(d.as_secs()).to_string(),
        }
    }
}

/// Configuration of an [`ApnsClient`](crate::ApnsClient). Start from `Default` and override.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// Base URL, `https://host[:port]`, no path. Default [`PRODUCTION_URL`].
    pub base_url: String,
    /// Trust the public web PKI (Mozilla's roots), which APNs' server certificates chain to.
    /// Default true; tests against the mock turn it off.
    pub public_roots: bool,
    /// Extra trust roots (DER), e.g. the mock's test CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// The `apns-expiration` header.
    pub expiration: Expiration,
    /// HTTP/2 connections in the pool; pushes are spread round-robin. Default 1.
    pub connections: usize,
    /// Streams in flight per connection; further pushes wait. Default 500 (APNs allows about
    /// 1,000 concurrent streams per connection once the certificate is accepted).
    pub max_streams_per_connection: usize,
    /// Time allowed for one request, from send to response end. Default 10 s.
    pub request_timeout: Duration,
    /// Time allowed to open a connection (TCP + TLS + HTTP/2 preface). Default 10 s.
    pub connect_timeout: Duration,
    /// HTTP/2 PING interval on a connection (also when idle). Default 60 s.
    pub keep_alive_interval: Duration,
    /// How long to wait for a PING answer before the connection is closed. Default 20 s.
    pub keep_alive_timeout: Duration,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// The circuit breaker over the whole service.
    pub breaker: BreakerConfig,
}

impl Default for ApnsConfig {
    fn default() -> Self {
        Self {
            base_url: PRODUCTION_URL.to_owned(),
            public_roots: true,
            extra_roots: Vec::new(),
            expiration: Expiration::default(),
            connections: 1,
            max_streams_per_connection: 500,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            keep_alive_interval: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl ApnsConfig {
    /// A configuration for a local mock: its base URL, trusting only `ca`, with short backoffs.
    pub fn for_mock(base_url: impl Into<String>, ca: CertificateDer<'static>) -> Self {
        Self {
            base_url: base_url.into(),
            public_roots: false,
            extra_roots: vec![ca],
            retry: RetryPolicy {
                max_attempts: 4,
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(200),
            },
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_header() {
        assert_eq!(Expiration::Immediate.header_value(1_700_000_000), "0");
        assert_eq!(
            Expiration::After(Duration::from_secs(3600)).header_value(1_700_000_000),
            "1700003600"
        );
    }
}

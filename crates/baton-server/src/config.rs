//! The server's typed configuration, built once by the `baton` binary (flags, `BATON_*`
//! variables, config file) and passed in. Nothing in this crate reads the environment.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use baton_proto::DEFAULT_MAX_BODY_BYTES;

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

/// How the listener speaks to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// TLS with a certificate generated into `<data>/tls/` on first start for these hosts.
    SelfSignedTls {
        /// DNS names and IP addresses the generated certificate names.
        hosts: Vec<String>,
    },
    /// TLS with the operator's certificate chain and key (PEM files).
    TlsFiles {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Plain HTTP, for deployments where a proxy terminates TLS.
    PlainHttp,
}

/// Where check-in events and command results are POSTed.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The receiver's URL (`http://` or `https://`).
    pub url: String,
    /// The HMAC-SHA256 key for `X-Baton-Signature`. Secret: never logged.
    pub secret: Option<String>,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// First retry delay; doubles per failed attempt.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Attempts per event before it moves to the dead-letter list (a permanent refusal, e.g.
    /// 413, moves it at once).
    pub max_attempts: u32,
}

impl WebhookConfig {
    /// A webhook to `url` with default timeouts and backoff.
    pub fn new(url: impl Into<String>, secret: Option<String>) -> Self {
        Self {
            url: url.into(),
            secret,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricsAuth {
    /// Anyone who can reach the listener (the default, so scrapers need no credentials; keep
    /// the listener off the internet or choose [`MetricsAuth::ApiKey`]).
    #[default]
    None,
    /// The admin API key, as `Authorization: Bearer <key>` (401 without it).
    ApiKey,
}

/// Request-body bounds per kind of route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Check-in and command-channel bodies (default 4 MiB).
    pub device: usize,
    /// Admin API JSON bodies (default 1 MiB).
    pub admin_json: usize,
    /// Admin API command uploads (raw plists, InstallProfile payloads; default 8 MiB).
    pub admin_upload: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            device: DEFAULT_MAX_BODY_BYTES,
            admin_json: 1024 * 1024,
            admin_upload: 8 * 1024 * 1024,
        }
    }
}

/// Everything `baton serve` needs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Data directory: database, CA, generated TLS certificate.
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:0` in tests).
    pub listen: SocketAddr,
    /// The URL devices and operators reach the server at (used in messages and profiles).
    pub public_url: String,
    /// TLS or plain HTTP.
    pub transport: Transport,
    /// TLS client authentication, and validity and renewal checks of the server certificate.
    pub tls: crate::tls::TlsSettings,
    /// The admin API key of this run (the stored hash is not changed by it). When absent, the
    /// stored hash is used, or a key is generated on first start and returned once in
    /// [`crate::server::RunningServer::generated_api_key`]. Secret.
    pub api_key: Option<String>,
    /// Extra CA certificate files (PEM) that device identity certificates may chain to.
    pub device_ca_files: Vec<PathBuf>,
    /// Trust the built-in enrollment CA (`<data>/ca`) for device identities. Default true.
    pub trust_builtin_ca: bool,
    /// Static SCEP challenge accepted by `/scep`, for SCEP clients that are not given an
    /// enrollment profile (served profiles always carry a one-time challenge). Secret.
    pub scep_challenge: Option<String>,
    /// Serve enrollment profiles without an enrollment token (labs only).
    pub open_enrollment: bool,
    /// Per-source limits on the anonymous endpoints (profiles, SCEP, portal sign-in).
    pub rate_limit: crate::rate_limit::RateLimitSettings,
    /// Webhook receiver, when configured.
    pub webhook: Option<WebhookConfig>,
    /// Request-body bounds.
    pub body_limits: BodyLimits,
    /// The password policy for local users (minimum length, default 8).
    pub password_policy: crate::directory::PasswordPolicy,
    /// How far ahead of the server's clock a device certificate's NotBefore may be.
    pub clock_skew: Duration,
    /// How often buffered last-seen times are written.
    pub last_seen_flush_every: Duration,
    /// APNs pushes: push certificate, APNs URL and trust, coalescing and re-push timings.
    pub push: crate::push::PushConfig,
    /// Enrollment profiles, device identity validity and renewal.
    pub enrollment: crate::enrollment::EnrollmentSettings,
    /// Multi-user assignment: the default sign-in web clip.
    pub assignment: crate::reconciler::AssignmentSettings,
    /// Branding of the sign-in portal pages.
    pub portal: crate::portal::PortalBranding,
    /// Sessions: default lease, how often leases are checked.
    pub session: crate::session_policy::SessionSettings,
    /// Portal brute-force protection: thresholds and lockout durations.
    pub lockout: crate::lockout::LockoutSettings,
    /// Capture device requests to disk for fixtures (off unless set).
    pub capture: Option<crate::capture::CaptureSettings>,
    /// Client connections open at once (default 10,000; lowered to fit the open file limit).
    pub max_connections: usize,
    /// Time a client has to send a request's headers (default 10 s).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed (default 60 s).
    pub idle_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For`/`-Proto` are believed (default: none).
    pub trusted_proxies: crate::client_origin::TrustedProxies,
    /// Who may read `/metrics` (default: anyone).
    pub metrics_auth: MetricsAuth,
    /// How long finished commands, session and sign-in logs and dead letters are kept.
    pub retention: crate::retention::RetentionSettings,
    /// Free space kept on the data directory's filesystem: below it writes are refused
    /// (`--min-free-disk-mb`).
    pub min_free_disk: crate::disk_floor::MinFreeDisk,
}

impl ServerConfig {
    /// Defaults for a server keeping its data in `data_dir`: listen on [`DEFAULT_LISTEN`], a
    /// self-signed certificate for `localhost`, the built-in CA trusted, no webhook.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let listen = DEFAULT_LISTEN
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 8443)));
        Self {
            data_dir: data_dir.into(),
            listen,
            public_url: "https://localhost:8443".to_owned(),
            transport: Transport::SelfSignedTls {
                hosts: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            },
            tls: crate::tls::TlsSettings::default(),
            api_key: None,
            device_ca_files: Vec::new(),
            trust_builtin_ca: true,
            scep_challenge: None,
            open_enrollment: false,
            rate_limit: crate::rate_limit::RateLimitSettings::default(),
            webhook: None,
            body_limits: BodyLimits::default(),
            password_policy: crate::directory::PasswordPolicy::default(),
            clock_skew: Duration::from_secs(5 * 60),
            last_seen_flush_every: Duration::from_secs(5),
            push: crate::push::PushConfig::default(),
            enrollment: crate::enrollment::EnrollmentSettings::default(),
            assignment: crate::reconciler::AssignmentSettings::default(),
            portal: crate::portal::PortalBranding::default(),
            session: crate::session_policy::SessionSettings::default(),
            lockout: crate::lockout::LockoutSettings::default(),
            capture: None,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            trusted_proxies: crate::client_origin::TrustedProxies::default(),
            metrics_auth: MetricsAuth::None,
            retention: crate::retention::RetentionSettings::default(),
            min_free_disk: crate::disk_floor::MinFreeDisk::Default,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("transport", &self.transport)
            .field("tls", &self.tls)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("device_ca_files", &self.device_ca_files)
            .field("trust_builtin_ca", &self.trust_builtin_ca)
            .field(
                "scep_challenge",
                &self.scep_challenge.as_ref().map(|_| "<redacted>"),
            )
            .field("open_enrollment", &self.open_enrollment)
            .field("rate_limit", &self.rate_limit)
            .field("webhook", &self.webhook)
            .field("body_limits", &self.body_limits)
            .field("password_policy", &self.password_policy)
            .field("clock_skew", &self.clock_skew)
            .field("last_seen_flush_every", &self.last_seen_flush_every)
            .field("push", &self.push)
            .field("enrollment", &self.enrollment)
            .field("assignment", &self.assignment)
            .field("portal", &self.portal)
            .field("session", &self.session)
            .field("lockout", &self.lockout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("metrics_auth", &self.metrics_auth)
            .field("retention", &self.retention)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_secrets() {
        let mut config = ServerConfig::new("/tmp/x");
        config.api_key = Some("super-secret-key".into());
        config.scep_challenge = Some("challenge-secret".into());
        config.webhook = Some(WebhookConfig::new(
            "https://hooks.example",
            Some("hmac-key".into()),
        ));
        let text = format!("{config:?}");
        assert!(!text.contains("super-secret-key"));
        assert!(!text.contains("challenge-secret"));
        assert!(!text.contains("hmac-key"));
        assert!(text.contains("hooks.example"));
    }
}

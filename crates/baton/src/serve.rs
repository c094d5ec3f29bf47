//! `baton serve`: runs the MDM server.
//!
//! Settings come from flags, `BATON_*` environment variables (clap `env`) and an optional TOML
//! file (`--config`), in that order of precedence, then defaults. They are merged here into one
//! typed [`ServerConfig`]; the server library never reads the environment. With no settings at
//! all the server starts on `0.0.0.0:8443` with a self-signed certificate and a generated API
//! key, keeping everything in `./baton-data`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use baton_server::client_origin::{IpNet, TrustedProxies};
use baton_server::config::{MetricsAuth, ServerConfig, Transport, WebhookConfig};
use baton_server::disk_floor::MinFreeDisk;
use baton_server::session_policy::OperatorZone;
use baton_server::tls::ClientAuth;
use clap::Args;
use serde::Deserialize;

/// Default data directory.
const DEFAULT_DATA: &str = "./baton-data";
/// Default port, used in the default public URL.
const DEFAULT_PORT: u16 = 8443;
/// Accepted `lockout-threshold` values: a device locks after twice as many failures, and no
/// threshold may exceed 1000 ([`baton_server::lockout::LockoutSettings::validate`]).
const LOCKOUT_THRESHOLDS: std::ops::RangeInclusive<i64> = 1..=500;
/// Accepted `lockout-seconds` values.
const LOCKOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=3600;

/// Arguments of `baton serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file with the same settings: every flag's long name (without `--`) is a key,
    /// e.g. `listen = "0.0.0.0:8443"`, `portal-title = "Ward 7"`, `device-ca = ["a.pem"]`
    /// (repeatable flags take a list). Flags and BATON_* variables override it.
    #[arg(long, env = "BATON_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (database, CA, generated TLS certificate) [default: ./baton-data].
    #[arg(long, env = "BATON_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8443].
    #[arg(long, env = "BATON_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// URL devices reach the server at [default: https://<hostname>:8443].
    #[arg(long, env = "BATON_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Serve plain HTTP (a proxy in front terminates TLS).
    #[arg(long, env = "BATON_PLAIN_HTTP", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    plain_http: Option<bool>,
    /// TLS certificate chain (PEM); without it one is issued by the built-in CA (self-signed
    /// when the built-in CA is disabled).
    #[arg(long, env = "BATON_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "BATON_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ask TLS clients for a certificate: `off` (no CertificateRequest; devices are identified by
    /// their Mdm-Signature) or `optional` (asked, naming the device CAs; not required)
    /// [default: off].
    #[arg(long, env = "BATON_TLS_CLIENT_AUTH", value_name = "off|optional")]
    tls_client_auth: Option<ClientAuth>,
    /// Admin API key (at least 16 characters): stored on the first start; later, the key of
    /// this run only (the stored key is not replaced). Without it, the stored one is used, or one
    /// is generated and printed once. Prefer BATON_API_KEY or --api-key-file: `ps` shows
    /// command lines to every user.
    #[arg(
        long,
        env = "BATON_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// File holding the admin API key for this run (its first line), e.g. a systemd credential.
    #[arg(
        long,
        env = "BATON_API_KEY_FILE",
        value_name = "FILE",
        conflicts_with = "api_key"
    )]
    api_key_file: Option<PathBuf>,
    /// Extra CA (PEM) that device identity certificates may chain to; repeatable
    /// (comma-separated in BATON_DEVICE_CA). The built-in enrollment CA is always trusted.
    #[arg(
        long,
        env = "BATON_DEVICE_CA",
        value_name = "PEM",
        value_delimiter = ','
    )]
    device_ca: Vec<PathBuf>,
    /// Static SCEP challenge for SCEP clients that are not given an enrollment profile
    /// (scripts, test rigs). Never put into served profiles, which carry one-time challenges.
    #[arg(
        long,
        env = "BATON_SCEP_CHALLENGE",
        value_name = "SECRET",
        hide_env_values = true
    )]
    scep_challenge: Option<String>,
    /// Serve enrollment profiles at /mdm/enroll without an enrollment token: anyone who
    /// reaches the server can enroll a device. For labs; a warning is logged at start.
    #[arg(long, env = "BATON_OPEN_ENROLLMENT", num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    open_enrollment: Option<bool>,
    /// Requests one address may make at once to each anonymous endpoint (profile downloads,
    /// SCEP requests, portal sign-ins) before it is answered 429 [default: 60].
    #[arg(long, env = "BATON_RATE_LIMIT_BURST", value_name = "REQUESTS")]
    rate_limit_burst: Option<u32>,
    /// Requests per minute one address gets back for each anonymous endpoint; 0 turns the
    /// limits off [default: 60].
    #[arg(long, env = "BATON_RATE_LIMIT_PER_MINUTE", value_name = "REQUESTS")]
    rate_limit_per_minute: Option<u32>,
    /// URL that receives check-in events and command results as JSON POSTs.
    #[arg(long, env = "BATON_WEBHOOK_URL", value_name = "URL")]
    webhook_url: Option<String>,
    /// HMAC-SHA256 key for the X-Baton-Signature header of webhook POSTs.
    #[arg(
        long,
        env = "BATON_WEBHOOK_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    webhook_secret: Option<String>,
    /// How long a sign-in holds a device when no device group sets a lease, in seconds
    /// (1 to 7776000) [default: 86400].
    #[arg(long, env = "BATON_DEFAULT_LEASE", value_name = "SECONDS")]
    default_lease: Option<u64>,
    /// How often ended leases and disabled users are looked for, in seconds (1 to 3600)
    /// [default: 30]. Known lease ends are also acted on when they come.
    #[arg(long, env = "BATON_LEASE_CHECK_INTERVAL", value_name = "SECONDS")]
    lease_check_interval: Option<u64>,
    /// The operator's time zone, an IANA name (`Asia/Tokyo`, `Europe/Berlin`): shift ends
    /// are times of day in it (daylight saving applied), and the portal shows dates and times
    /// in it [default: UTC].
    #[arg(long, env = "BATON_TIME_ZONE", value_name = "IANA-NAME",
        value_parser = OperatorZone::parse)]
    time_zone: Option<OperatorZone>,
    /// While an accepted app install has not shown Managed in the device's
    /// ManagedApplicationList, ask for that list and push this often, in seconds (1 to 3600)
    /// [default: 30]. It is also asked at the start of each session of the device.
    #[arg(
        long,
        env = "BATON_APP_INSTALL_POLL_INTERVAL",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    app_install_poll_interval: Option<u64>,
    /// An accepted app install still not Managed after this many seconds counts as a failed
    /// attempt (60 to 86400) [default: 1800].
    #[arg(
        long,
        env = "BATON_APP_INSTALL_TIMEOUT",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(60..=86400)
    )]
    app_install_timeout: Option<u64>,
    /// Failed portal sign-ins of one username within 15 minutes that lock it (1 to 500)
    /// [default: 5]. A device locks after twice as many.
    #[arg(
        long,
        env = "BATON_LOCKOUT_THRESHOLD",
        value_name = "FAILURES",
        value_parser = clap::value_parser!(u32).range(LOCKOUT_THRESHOLDS)
    )]
    lockout_threshold: Option<u32>,
    /// The first lockout, in seconds (1 to 3600) [default: 60]; each further lockout of the same
    /// username or device lasts twice as long, up to 1 hour.
    #[arg(
        long,
        env = "BATON_LOCKOUT_SECONDS",
        value_name = "SECONDS",
        value_parser = clap::value_parser!(u64).range(LOCKOUT_SECONDS)
    )]
    lockout_seconds: Option<u64>,
    /// Write the first device requests (check-in, command channel, SCEP PKIOperation) to this
    /// directory exactly as received, for fixtures from a real device. The files hold device
    /// secrets (push token, PushMagic): review them before they leave the machine [default: off].
    #[arg(long, env = "BATON_CAPTURE_DEVICE_REQUESTS", value_name = "DIR")]
    capture_device_requests: Option<PathBuf>,
    /// How many device requests `--capture-device-requests` writes before it stops (1 to 100000)
    /// [default: 200].
    #[arg(long, env = "BATON_CAPTURE_MAX_REQUESTS", value_name = "COUNT")]
    capture_max_requests: Option<usize>,
    /// Client connections open at once (16 to 1000000) [default: 10000]; lowered to 80% of the
    /// open file limit when that is smaller. Connections beyond it are closed at once.
    #[arg(long, env = "BATON_MAX_CONNECTIONS", value_name = "COUNT")]
    max_connections: Option<usize>,
    /// Free space (MiB) kept on the data directory's filesystem: below it writes are refused
    /// (devices get 503, the admin API 507) until space is freed; 0 turns the floor off
    /// [default: 256, or 5% of the filesystem when that is smaller].
    #[arg(long, env = "BATON_MIN_FREE_DISK_MB", value_name = "MIB")]
    min_free_disk_mb: Option<u64>,
    /// A reverse proxy (IP address or CIDR network, e.g. 10.0.0.0/8) whose X-Forwarded-For and
    /// X-Forwarded-Proto headers are believed; repeatable (comma-separated in
    /// BATON_TRUSTED_PROXY). Without it no proxy header is believed.
    #[arg(
        long,
        env = "BATON_TRUSTED_PROXY",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxy: Vec<IpNet>,
    /// Who may read /metrics: `none` (anyone who reaches the listener) or `api-key` (the admin
    /// API key as a bearer token) [default: none].
    #[arg(long, env = "BATON_METRICS_AUTH", value_name = "AUTH", value_enum)]
    metrics_auth: Option<MetricsAuthArg>,
    /// Log lines on stderr: `text` (coloured only on a terminal) or `json` (one object per
    /// line) [default: text].
    #[arg(long, env = "BATON_LOG_FORMAT", value_name = "FORMAT", value_enum)]
    log_format: Option<crate::logging::LogFormat>,
    /// Fewest characters a local user's password may have (1 to 128) [default: 8]; applies to
    /// new users, imports and password changes (existing passwords keep working).
    #[arg(
        long,
        env = "BATON_MIN_PASSWORD_LENGTH",
        value_name = "CHARS",
        value_parser = clap::value_parser!(u16).range(1..=128)
    )]
    min_password_length: Option<u16>,
    /// APNs push settings.
    #[command(flatten)]
    push: crate::push_flags::PushArgs,
    /// Enrollment profile and device identity settings.
    #[command(flatten)]
    enrollment: crate::enrollment_flags::EnrollmentArgs,
    /// Sign-in portal branding.
    #[command(flatten)]
    portal: crate::portal_flags::PortalArgs,
    /// How long history is kept.
    #[command(flatten)]
    retention: crate::retention_flags::RetentionArgs,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    listen: Option<SocketAddr>,
    public_url: Option<String>,
    plain_http: Option<bool>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_auth: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
    #[serde(default)]
    device_ca: Vec<PathBuf>,
    scep_challenge: Option<String>,
    open_enrollment: Option<bool>,
    rate_limit_burst: Option<u32>,
    rate_limit_per_minute: Option<u32>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    push_cert: Option<PathBuf>,
    push_key: Option<PathBuf>,
    push_cert_password: Option<String>,
    apns_url: Option<String>,
    #[serde(default)]
    apns_ca: Vec<PathBuf>,
    repush_interval: Option<u64>,
    #[serde(alias = "default_lease")]
    default_lease: Option<u64>,
    #[serde(alias = "lease_check_interval")]
    lease_check_interval: Option<u64>,
    #[serde(alias = "time_zone")]
    time_zone: Option<String>,
    #[serde(alias = "app_install_poll_interval")]
    app_install_poll_interval: Option<u64>,
    #[serde(alias = "app_install_timeout")]
    app_install_timeout: Option<u64>,
    #[serde(alias = "lockout_threshold")]
    lockout_threshold: Option<u32>,
    #[serde(alias = "lockout_seconds")]
    lockout_seconds: Option<u64>,
    capture_device_requests: Option<PathBuf>,
    capture_max_requests: Option<usize>,
    max_connections: Option<usize>,
    #[serde(alias = "min_free_disk_mb")]
    min_free_disk_mb: Option<u64>,
    #[serde(default, alias = "trusted_proxy")]
    trusted_proxy: Vec<String>,
    #[serde(alias = "metrics_auth")]
    metrics_auth: Option<MetricsAuthArg>,
    command_retention_days: Option<u64>,
    session_log_retention_days: Option<u64>,
    sign_in_log_retention_days: Option<u64>,
    dead_letter_retention_days: Option<u64>,
    retention_interval: Option<u64>,
    log_format: Option<crate::logging::LogFormat>,
    sign_enrollment_profile: Option<bool>,
    enrollment_push_topic: Option<String>,
    profile_identifier_prefix: Option<String>,
    enrollment_challenge_ttl: Option<u64>,
    device_identity_days: Option<u64>,
    identity_renewal_days: Option<u64>,
    identity_renewal_check: Option<u64>,
    identity_expiry_warning_days: Option<u64>,
    portal_title: Option<String>,
    portal_logo_url: Option<String>,
    portal_accent_color: Option<String>,
    portal_reminder: Option<String>,
    min_password_length: Option<u16>,
}

/// `--metrics-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum MetricsAuthArg {
    /// Anyone who reaches the listener.
    None,
    /// The admin API key.
    ApiKey,
}

fn read_file_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// The first line of an API key file.
fn read_key_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API key file {}", path.display()))?;
    let key = text.lines().next().unwrap_or("").trim();
    if key.is_empty() {
        bail!("the API key file {} is empty", path.display());
    }
    Ok(key.to_owned())
}

/// The machine's host name, for the default public URL and the self-signed certificate.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Host part of a URL (`https://host:port/path` -> `host`).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// Merges flags/env over the file over the defaults.
fn build_config(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    let file = match &args.config {
        Some(path) => read_file_config(path)?,
        None => FileConfig::default(),
    };
    let data = args
        .data
        .or(file.data)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    let mut config = ServerConfig::new(data);
    if let Some(listen) = args.listen.or(file.listen) {
        config.listen = listen;
    }
    let host = hostname();
    let port = if config.listen.port() == 0 {
        DEFAULT_PORT
    } else {
        config.listen.port()
    };
    config.public_url = args
        .public_url
        .or(file.public_url)
        .unwrap_or_else(|| format!("https://{host}:{port}"));
    let plain = args.plain_http.or(file.plain_http).unwrap_or(false);
    let tls_cert = args.tls_cert.or(file.tls_cert);
    let tls_key = args.tls_key.or(file.tls_key);
    config.transport = match (plain, tls_cert, tls_key) {
        (true, None, None) => Transport::PlainHttp,
        (true, _, _) => bail!("--plain-http cannot be combined with --tls-cert/--tls-key"),
        (false, Some(cert), Some(key)) => Transport::TlsFiles { cert, key },
        (false, None, None) => {
            let mut hosts = vec![host, "localhost".to_owned(), "127.0.0.1".to_owned()];
            if let Some(public) = url_host(&config.public_url) {
                hosts.insert(0, public);
            }
            hosts.dedup();
            let mut unique = Vec::new();
            for h in hosts {
                if !unique.contains(&h) {
                    unique.push(h);
                }
            }
            Transport::SelfSignedTls { hosts: unique }
        }
        _ => bail!("--tls-cert and --tls-key must be given together"),
    };
    config.tls.client_auth = match (args.tls_client_auth, file.tls_client_auth) {
        (Some(flag), _) => flag,
        (None, Some(text)) => text.parse().context("tls-client-auth in the config file")?,
        (None, None) => ClientAuth::Off,
    };
    if plain && config.tls.client_auth != ClientAuth::Off {
        bail!("--tls-client-auth needs TLS: it cannot be combined with --plain-http");
    }
    config.api_key = match (
        args.api_key,
        args.api_key_file,
        file.api_key,
        file.api_key_file,
    ) {
        (Some(key), ..) => Some(key),
        (None, Some(path), ..) | (None, None, None, Some(path)) => Some(read_key_file(&path)?),
        (None, None, key, _) => key,
    };
    config.device_ca_files = if args.device_ca.is_empty() {
        file.device_ca
    } else {
        args.device_ca
    };
    config.scep_challenge = args.scep_challenge.or(file.scep_challenge);
    config.open_enrollment = args
        .open_enrollment
        .or(file.open_enrollment)
        .unwrap_or(false);
    if let Some(burst) = args.rate_limit_burst.or(file.rate_limit_burst) {
        config.rate_limit.burst = burst;
    }
    if let Some(rate) = args.rate_limit_per_minute.or(file.rate_limit_per_minute) {
        config.rate_limit.per_minute = rate;
    }
    config.rate_limit.validate()?;
    let webhook_secret = args.webhook_secret.or(file.webhook_secret);
    config.webhook = match args.webhook_url.or(file.webhook_url) {
        Some(url) => Some(WebhookConfig::new(url, webhook_secret)),
        None if webhook_secret.is_some() => bail!("--webhook-secret needs --webhook-url"),
        None => None,
    };
    config.push = args.push.into_config(crate::push_flags::PushFileValues {
        push_cert: file.push_cert,
        push_key: file.push_key,
        push_cert_password: file.push_cert_password,
        apns_url: file.apns_url,
        apns_ca: file.apns_ca,
        repush_interval: file.repush_interval,
    })?;
    if let Some(secs) = args.default_lease.or(file.default_lease) {
        config.session.default_lease = Duration::from_secs(secs);
    }
    if let Some(secs) = args.lease_check_interval.or(file.lease_check_interval) {
        config.session.lease_check_interval = Duration::from_secs(secs);
    }
    config.session.time_zone = match (args.time_zone, file.time_zone) {
        (Some(zone), _) => zone,
        (None, Some(name)) => OperatorZone::parse(&name).context("time-zone in the config file")?,
        (None, None) => OperatorZone::utc(),
    };
    // Flags are range-checked by clap; the file's values here, with the same bounds.
    if let Some(secs) = args
        .app_install_poll_interval
        .or(file.app_install_poll_interval)
    {
        if !(1..=3600).contains(&secs) {
            bail!("app-install-poll-interval must be between 1 and 3600 seconds, got {secs}");
        }
        config.assignment.app_install_poll_interval = Duration::from_secs(secs);
    }
    if let Some(secs) = args.app_install_timeout.or(file.app_install_timeout) {
        if !(60..=86_400).contains(&secs) {
            bail!("app-install-timeout must be between 60 and 86400 seconds, got {secs}");
        }
        config.assignment.app_install_timeout = Duration::from_secs(secs);
    }
    config.session.validate()?;
    // Flags and variables are range-checked by clap; the file's values here, with the same
    // bounds and message.
    if let Some(n) = args.lockout_threshold.or(file.lockout_threshold) {
        if !LOCKOUT_THRESHOLDS.contains(&i64::from(n)) {
            bail!("lockout-threshold must be between 1 and 500 failures, got {n}");
        }
        config.lockout.user_threshold = n;
        config.lockout.device_threshold = n.saturating_mul(2);
    }
    if let Some(secs) = args.lockout_seconds.or(file.lockout_seconds) {
        if !LOCKOUT_SECONDS.contains(&secs) {
            bail!("lockout-seconds must be between 1 and 3600, got {secs}");
        }
        config.lockout.first_lockout = Duration::from_secs(secs);
    }
    config.lockout.validate()?;
    let capture_max = args
        .capture_max_requests
        .or(file.capture_max_requests)
        .unwrap_or(200);
    if !(1..=100_000).contains(&capture_max) {
        bail!("--capture-max-requests must be between 1 and 100000, got {capture_max}");
    }
    config.capture = args
        .capture_device_requests
        .or(file.capture_device_requests)
        .map(|dir| baton_server::capture::CaptureSettings {
            dir,
            max_requests: capture_max,
        });
    if let Some(max) = args.max_connections.or(file.max_connections) {
        if !(16..=1_000_000).contains(&max) {
            bail!("--max-connections must be between 16 and 1000000, got {max}");
        }
        config.max_connections = max;
    }
    if let Some(mib) = args.min_free_disk_mb.or(file.min_free_disk_mb) {
        config.min_free_disk = MinFreeDisk::Bytes(mib.saturating_mul(1024 * 1024));
    }
    let proxies = if args.trusted_proxy.is_empty() {
        file.trusted_proxy
            .iter()
            .map(|p| {
                p.parse::<IpNet>()
                    .context("trusted-proxy in the config file")
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        args.trusted_proxy
    };
    config.trusted_proxies = TrustedProxies::new(proxies);
    config.metrics_auth = match args.metrics_auth.or(file.metrics_auth) {
        Some(MetricsAuthArg::ApiKey) => MetricsAuth::ApiKey,
        Some(MetricsAuthArg::None) | None => MetricsAuth::None,
    };
    if let Some(n) = args.min_password_length.or(file.min_password_length) {
        if !(1..=128).contains(&n) {
            bail!("min-password-length must be between 1 and 128, got {n}");
        }
        config.password_policy.min_length = usize::from(n);
    }
    config.enrollment = args
        .enrollment
        .with_file(crate::enrollment_flags::EnrollmentFileValues {
            sign_enrollment_profile: file.sign_enrollment_profile,
            enrollment_push_topic: file.enrollment_push_topic,
            profile_identifier_prefix: file.profile_identifier_prefix,
            enrollment_challenge_ttl: file.enrollment_challenge_ttl,
            device_identity_days: file.device_identity_days,
            identity_renewal_days: file.identity_renewal_days,
            identity_renewal_check: file.identity_renewal_check,
            identity_expiry_warning_days: file.identity_expiry_warning_days,
        })
        .into_settings()?;
    config.portal = args
        .portal
        .with_file(crate::portal_flags::PortalFileValues {
            portal_title: file.portal_title,
            portal_logo_url: file.portal_logo_url,
            portal_accent_color: file.portal_accent_color,
            portal_reminder: file.portal_reminder,
        })?
        .into_branding()?;
    config.retention =
        args.retention
            .into_settings(crate::retention_flags::RetentionFileValues {
                command_retention_days: file.command_retention_days,
                session_log_retention_days: file.session_log_retention_days,
                sign_in_log_retention_days: file.sign_in_log_retention_days,
                dead_letter_retention_days: file.dead_letter_retention_days,
                retention_interval: file.retention_interval,
            })?;
    Ok(config)
}

/// Runs the server until Ctrl-C or SIGTERM; exit code 0 after a clean shutdown.
///
/// The data directory is locked first ([`crate::data_lock`]): a second server on it exits at
/// once with a message. A start that fails removes what it created in the data directory.
pub fn run(args: ServeArgs) -> ExitCode {
    let format = match log_format(&args) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("baton serve: {}", crate::logging::cause_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    crate::logging::init(format);
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = crate::logging::cause_chain(&e);
            tracing::error!(error = %message, "baton serve failed");
            // Also on stderr in plain words when the log is JSON (an operator at a terminal).
            if format == crate::logging::LogFormat::Json {
                eprintln!("baton serve: {message}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `--log-format`, else the config file's `log-format` (the file is read again, in full, by
/// [`build_config`]).
fn log_format(args: &ServeArgs) -> anyhow::Result<crate::logging::LogFormat> {
    if let Some(format) = args.log_format {
        return Ok(format);
    }
    Ok(match &args.config {
        Some(path) => read_file_config(path)?.log_format.unwrap_or_default(),
        None => crate::logging::LogFormat::default(),
    })
}

/// The top-level entries of `dir` now (none when it does not exist).
fn entries(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Removes what a failed start created in the data directory: the directory itself when it
/// did not exist before, else the entries that were not there.
fn remove_half_made(dir: &Path, existed: bool, before: &[std::ffi::OsString]) {
    let result = if existed {
        entries(dir)
            .into_iter()
            .filter(|name| !before.contains(name))
            .try_for_each(|name| {
                let path = dir.join(name);
                if path.is_dir() {
                    std::fs::remove_dir_all(path)
                } else {
                    std::fs::remove_file(path)
                }
            })
    } else {
        std::fs::remove_dir_all(dir)
    };
    match result {
        Ok(()) => tracing::info!(data = %dir.display(),
            "removed what the failed start had created in the data directory"),
        Err(error) => tracing::warn!(data = %dir.display(), %error,
            "could not remove what the failed start created in the data directory"),
    }
}

fn run_inner(args: ServeArgs) -> anyhow::Result<()> {
    let config = build_config(args)?;
    let data = config.data_dir.clone();
    let existed = data.exists();
    let before = entries(&data);
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let lock = match crate::data_lock::DataLock::acquire(&data, "baton serve") {
        Ok(lock) => lock,
        Err(e) => {
            if !existed {
                let _ = std::fs::remove_dir_all(&data);
            }
            return Err(e.into());
        }
    };
    let data_dir = data.clone();
    tracing::info!(version = env!("CARGO_PKG_VERSION"), data = %data.display(),
        listen = %config.listen, "baton starting");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcome = runtime.block_on(async move {
        let public_url = config.public_url.clone();
        let transport = config.transport.clone();
        let push_topic_flag = config.enrollment.push_topic.clone();
        let restart_config = config.clone();
        let server = match baton_server::server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                return Err((
                    anyhow::Error::new(e).context("cannot start the server"),
                    true,
                ));
            }
        };
        print_banner(
            &server,
            &Banner {
                public_url: &public_url,
                data: &data,
                transport: &transport,
                push_topic_flag: push_topic_flag.as_deref(),
            },
        );
        let mut signals = Signals::new();
        let mut server = server;
        let mut restart = restart_config;
        restart.listen = server.local_addr();
        let signal = loop {
            match signals.next(&server).await {
                Wake::Stop(signal) => break signal,
                Wake::Backup => {
                    server = crate::backup::serve_backup_request(server, &restart)
                        .await
                        .map_err(|e| (e, false))?;
                }
            }
        };
        tracing::info!(signal, "shutting down: finishing requests in flight");
        println!("shutting down…");
        server
            .shutdown()
            .await
            .context("shutdown")
            .map_err(|e| (e, false))?;
        tracing::info!("baton stopped");
        Ok(())
    });
    drop(runtime);
    drop(lock);
    match outcome {
        Ok(()) => Ok(()),
        Err((error, failed_start)) => {
            if failed_start {
                remove_half_made(&data_dir, existed, &before);
            }
            Err(error)
        }
    }
}
/// What the banner needs besides the running server.
struct Banner<'a> {
    public_url: &'a str,
    data: &'a Path,
    transport: &'a Transport,
    /// `--enrollment-push-topic`, when given.
    push_topic_flag: Option<&'a str>,
}

/// Prints where the server listens, what an operator needs once (API key, first enrollment
/// URL) and what is still missing before a device can enroll, with the commands that fix it.
fn print_banner(server: &baton_server::server::RunningServer, b: &Banner<'_>) {
    let Banner {
        public_url,
        data,
        transport,
        push_topic_flag,
    } = *b;
    let addr = server.local_addr();
    let local = if addr.ip().is_unspecified() {
        format!(
            "{}://127.0.0.1:{}",
            if server.is_tls() { "https" } else { "http" },
            addr.port()
        )
    } else {
        server.local_url()
    };
    // The connection flags of the operator CLI for this server, as printed in the commands.
    let conn = match transport {
        Transport::SelfSignedTls { .. } if server.builtin_ca_pem().is_some() => format!(
            "--server {local} --ca-file {}",
            data.join("ca").join("ca.pem").display()
        ),
        Transport::SelfSignedTls { .. } => format!("--server {local} --insecure"),
        // The operator's certificate names the public host, not 127.0.0.1.
        Transport::TlsFiles { .. } => format!("--server {public_url}"),
        _ => format!("--server {local}"),
    };
    println!("Baton is listening on {} ({addr})", server.local_url());
    match transport {
        Transport::SelfSignedTls { .. } => println!(
            "  TLS: certificate {} (issued by the built-in CA when it is enabled)",
            data.join("tls").join("server.crt").display()
        ),
        Transport::TlsFiles { cert, .. } => println!(
            "  TLS: {} (re-read when it changes, or on SIGHUP)",
            cert.display()
        ),
        _ => println!("  plain HTTP: put a TLS-terminating proxy in front"),
    }
    println!("  public URL: {public_url}");
    println!("  data: {}", data.display());
    if let Some(key) = server.generated_api_key() {
        println!();
        println!("  Admin API key (shown only this once; only its hash is stored):");
        println!("    {key}");
        println!("  export BATON_API_KEY=<that key> for the commands below");
    }
    // What enrollment still needs, each with the command that fixes it.
    let push = &server.services().push_service;
    let topic = push.topic().map(|t| t.as_str().to_owned());
    let mut missing = 0;
    println!();
    match (&topic, push_topic_flag) {
        (Some(topic), _) => println!("  push certificate: {topic} (baton push-cert show)"),
        (None, Some(flag)) => println!(
            "  push certificate: none; enrollment profiles use --enrollment-push-topic {flag}, \
             but no push reaches a device until one is uploaded (baton push-cert upload)"
        ),
        (None, None) => {
            missing += 1;
            println!(
                "  MISSING push certificate: devices cannot enroll (/mdm/enroll answers 409) \
                 until one is uploaded. With your MDM vendor certificate:"
            );
            println!(
                "    baton push-cert csr --vendor-cert vendor.pem --vendor-key vendor.key \
                 --out-dir push"
            );
            println!(
                "    (upload push/push-request.b64 at https://identity.apple.com/pushcert, \
                 download the certificate)"
            );
            println!(
                "    baton push-cert upload {conn} --cert MDM_Certificate.pem --key push/push.key"
            );
            println!("  (a lab without pushes: restart with --enrollment-push-topic TOPIC)");
        }
    }
    if server.builtin_ca_pem().is_some() {
        println!(
            "  device CA: {} (SCEP at {public_url}/scep)",
            data.join("ca").join("ca.pem").display()
        );
        if let Some(fingerprint) = server.builtin_ca_sha256() {
            println!("  device CA SHA-256: {fingerprint}");
        }
        let enrollable = topic.is_some() || push_topic_flag.is_some();
        let after = if enrollable {
            ""
        } else {
            " (works once the push certificate is uploaded)"
        };
        if server.open_enrollment() {
            println!("  enroll a device: open {public_url}/mdm/enroll on it{after}");
            println!(
                "  WARNING: open enrollment is on: anyone who reaches this server can enroll a \
                 device (no enrollment token needed)"
            );
        } else if let Some(url) = server.first_enrollment_url() {
            println!("  enroll a device: open this URL on it (one device, valid 7 days){after}:");
            println!("    {url}");
        } else {
            missing += 1;
            println!(
                "  MISSING enrollment token: make one and open the URL it prints on the device:"
            );
            println!("    baton enrollment-token create {conn} --label NAME --uses 1");
        }
    } else {
        println!("  the built-in CA is off: devices enroll through your own SCEP/PKI");
    }
    let k = if server.is_tls() { "-k " } else { "" };
    println!();
    if missing > 0 {
        println!("Before the first device ({missing} step(s) above), then:");
    } else {
        println!("Next:");
    }
    println!("  curl {k}{local}/healthz");
    println!("  baton device list {conn}");
    println!("  docs/operations.md walks through the first day; Ctrl-C stops the server");
}

/// What woke `baton serve` up.
enum Wake {
    /// SIGINT or SIGTERM: stop.
    Stop(&'static str),
    /// SIGUSR1: `baton backup` asked for a backup ([`crate::backup::serve_backup_request`]).
    Backup,
}

/// The signals `baton serve` listens to, registered once for the whole run.
struct Signals {
    #[cfg(unix)]
    streams: Option<[tokio::signal::unix::Signal; 3]>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
                signal(SignalKind::user_defined1()),
            ) {
                (Ok(term), Ok(hangup), Ok(usr1)) => Some([term, hangup, usr1]),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for Ctrl-C, SIGTERM or SIGUSR1; on SIGHUP, has the server re-read its TLS
    /// certificate and waits on.
    async fn next(&mut self, server: &baton_server::server::RunningServer) -> Wake {
        #[cfg(unix)]
        if let Some([term, hangup, usr1]) = &mut self.streams {
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Wake::Stop("SIGINT"),
                    _ = term.recv() => return Wake::Stop("SIGTERM"),
                    _ = usr1.recv() => return Wake::Backup,
                    _ = hangup.recv() => {
                        tracing::info!("SIGHUP: checking the TLS certificate");
                        server.reload_tls();
                    }
                }
            }
        }
        let _ = server;
        let _ = tokio::signal::ctrl_c().await;
        Wake::Stop("Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(argv: &[&str]) -> ServeArgs {
        Wrapper::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn defaults_give_self_signed_tls_on_8443() {
        let config = build_config(parse(&[])).unwrap();
        assert_eq!(config.listen.port(), 8443);
        assert!(config.public_url.ends_with(":8443"));
        assert!(matches!(config.transport, Transport::SelfSignedTls { .. }));
        assert!(config.webhook.is_none());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "data = \"/from/file\"\nlisten = \"127.0.0.1:9000\"\nplain-http = true\nwebhook-url = \"http://hooks.example/x\"\n",
        )
        .unwrap();
        let config = build_config(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:9100",
        ]))
        .unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/file"));
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.transport, Transport::PlainHttp);
        assert_eq!(config.webhook.unwrap().url, "http://hooks.example/x");
    }

    #[test]
    fn unknown_file_keys_and_conflicts_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        assert!(build_config(parse(&["--config", file.to_str().unwrap()])).is_err());
        assert!(
            build_config(parse(&[
                "--plain-http",
                "--tls-cert",
                "a",
                "--tls-key",
                "b"
            ]))
            .is_err()
        );
        assert!(build_config(parse(&["--webhook-secret", "s"])).is_err());
    }

    #[test]
    fn session_flags_and_file_keys() {
        let config = build_config(parse(&[])).unwrap();
        assert_eq!(config.session.default_lease, Duration::from_secs(86_400));
        assert_eq!(config.session.lease_check_interval, Duration::from_secs(30));
        let config = build_config(parse(&[
            "--default-lease",
            "5",
            "--lease-check-interval",
            "2",
        ]))
        .unwrap();
        assert_eq!(config.session.default_lease, Duration::from_secs(5));
        assert_eq!(config.session.lease_check_interval, Duration::from_secs(2));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "default_lease = 600
lease-check-interval = 10
",
        )
        .unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(config.session.default_lease, Duration::from_secs(600));
        assert_eq!(config.session.lease_check_interval, Duration::from_secs(10));
        assert!(build_config(parse(&["--default-lease", "0"])).is_err());
        assert!(build_config(parse(&["--lease-check-interval", "0"])).is_err());
    }

    #[test]
    fn lockout_flags() {
        let config = build_config(parse(&[])).unwrap();
        assert_eq!(config.lockout.user_threshold, 5);
        assert_eq!(config.lockout.first_lockout, Duration::from_secs(60));
        let config = build_config(parse(&[
            "--lockout-threshold",
            "3",
            "--lockout-seconds",
            "2",
        ]))
        .unwrap();
        assert_eq!(config.lockout.user_threshold, 3);
        assert_eq!(config.lockout.device_threshold, 6);
        assert_eq!(config.lockout.first_lockout, Duration::from_secs(2));
        let config = build_config(parse(&["--lockout-threshold", "500"])).unwrap();
        assert_eq!(config.lockout.device_threshold, 1000);
        // Out-of-range values are refused while parsing, naming the flag and the range.
        for argv in [
            ["--lockout-threshold", "0"],
            ["--lockout-threshold", "501"],
            ["--lockout-threshold", "4000000000"],
            ["--lockout-seconds", "0"],
            ["--lockout-seconds", "3601"],
        ] {
            let error = Wrapper::try_parse_from(std::iter::once("serve").chain(argv))
                .expect_err(argv[1])
                .to_string();
            assert!(error.contains(argv[0]), "{error}");
            assert!(
                error.contains("1..=") || error.contains("out of range"),
                "{error}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "lockout-threshold = 600\n").unwrap();
        let error = build_config(parse(&["--config", file.to_str().unwrap()]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("between 1 and 500"), "{error}");
    }

    #[test]
    fn proxy_and_metrics_flags_env_and_file_keys() {
        let config = build_config(parse(&[])).unwrap();
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.metrics_auth, MetricsAuth::None);
        let config = build_config(parse(&[
            "--trusted-proxy",
            "10.0.0.0/8",
            "--trusted-proxy",
            "192.0.2.7,fd00::/8",
            "--metrics-auth",
            "api-key",
        ]))
        .unwrap();
        for ip in ["10.1.2.3", "192.0.2.7", "fd00::1"] {
            assert!(config.trusted_proxies.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!(
            !config
                .trusted_proxies
                .contains("192.0.2.8".parse().unwrap())
        );
        assert_eq!(config.metrics_auth, MetricsAuth::ApiKey);
        for argv in [
            ["--trusted-proxy", "10.0.0.0/33"],
            ["--trusted-proxy", "proxy.example"],
            ["--metrics-auth", "basic"],
        ] {
            let error = Wrapper::try_parse_from(std::iter::once("serve").chain(argv))
                .expect_err(argv[1])
                .to_string();
            assert!(error.contains(argv[0]), "{error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "trusted-proxy = [\"127.0.0.1\"]\nmetrics_auth = \"api-key\"\n",
        )
        .unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert!(
            config
                .trusted_proxies
                .contains("127.0.0.1".parse().unwrap())
        );
        assert_eq!(config.metrics_auth, MetricsAuth::ApiKey);
        // The flag wins over the file.
        let config = build_config(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--metrics-auth",
            "none",
        ]))
        .unwrap();
        assert_eq!(config.metrics_auth, MetricsAuth::None);
        std::fs::write(&file, "trusted-proxy = [\"nope\"]\n").unwrap();
        let error = format!(
            "{:#}",
            build_config(parse(&["--config", file.to_str().unwrap()])).unwrap_err()
        );
        assert!(
            error.contains("trusted-proxy") && error.contains("nope"),
            "{error}"
        );
    }

    #[test]
    fn tls_client_auth_flag_and_file_key() {
        assert_eq!(
            build_config(parse(&[])).unwrap().tls.client_auth,
            ClientAuth::Off
        );
        let config = build_config(parse(&["--tls-client-auth", "optional"])).unwrap();
        assert_eq!(config.tls.client_auth, ClientAuth::Optional);
        assert!(
            Wrapper::try_parse_from(["serve", "--tls-client-auth", "required"]).is_err(),
            "only off and optional"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "tls-client-auth = \"optional\"\n").unwrap();
        let from_file = parse(&["--config", file.to_str().unwrap()]);
        assert_eq!(
            build_config(from_file).unwrap().tls.client_auth,
            ClientAuth::Optional
        );
        std::fs::write(&file, "tls-client-auth = \"maybe\"\n").unwrap();
        assert!(build_config(parse(&["--config", file.to_str().unwrap()])).is_err());
        assert!(build_config(parse(&["--plain-http", "--tls-client-auth", "optional"])).is_err());
    }

    #[test]
    fn retention_flags_variables_and_file_keys() {
        const DAY: Duration = Duration::from_secs(86_400);
        let config = build_config(parse(&[])).unwrap();
        assert_eq!(config.retention.commands, Some(30 * DAY));
        assert_eq!(config.retention.session_log, Some(180 * DAY));
        assert_eq!(config.retention.sign_in_log, Some(365 * DAY));
        assert_eq!(config.retention.dead_letters, Some(30 * DAY));
        assert_eq!(config.retention.interval, Duration::from_secs(3600));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "command-retention-days = 7\nsession-log-retention-days = 0\n\
             sign-in-log-retention-days = 400\nretention-interval = 600\n",
        )
        .unwrap();
        let config = build_config(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--sign-in-log-retention-days",
            "90",
            "--dead-letter-retention-days",
            "3",
        ]))
        .unwrap();
        assert_eq!(config.retention.commands, Some(7 * DAY));
        assert_eq!(config.retention.session_log, None, "0 keeps forever");
        assert_eq!(
            config.retention.sign_in_log,
            Some(90 * DAY),
            "the flag wins"
        );
        assert_eq!(config.retention.dead_letters, Some(3 * DAY));
        assert_eq!(config.retention.interval, Duration::from_secs(600));
        assert!(build_config(parse(&["--command-retention-days", "36501"])).is_err());
        assert!(build_config(parse(&["--retention-interval", "5"])).is_err());
    }

    /// Every retention setting is also a `BATON_*` variable (read by clap in a child process
    /// so this test's environment stays untouched).
    #[test]
    fn retention_variables() {
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("BATON_RETENTION_CHILD").is_some() {
            let config = build_config(parse(&[])).unwrap();
            assert_eq!(
                config.retention.commands,
                Some(Duration::from_secs(2 * 86_400))
            );
            assert_eq!(config.retention.dead_letters, None);
            assert_eq!(config.retention.interval, Duration::from_secs(120));
            return;
        }
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "serve::tests::retention_variables",
                "--nocapture",
            ])
            .env("BATON_RETENTION_CHILD", "1")
            .env("BATON_COMMAND_RETENTION_DAYS", "2")
            .env("BATON_DEAD_LETTER_RETENTION_DAYS", "0")
            .env("BATON_RETENTION_INTERVAL", "120")
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// `--min-free-disk-mb`, its file key and its variable (read in a child process).
    #[test]
    fn min_free_disk_flag_file_key_and_variable() {
        const MIB: u64 = 1024 * 1024;
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("BATON_MIN_FREE_CHILD").is_some() {
            let config = build_config(parse(&[])).unwrap();
            assert_eq!(config.min_free_disk, MinFreeDisk::Bytes(7 * MIB));
            return;
        }
        assert_eq!(
            build_config(parse(&[])).unwrap().min_free_disk,
            MinFreeDisk::Default
        );
        let config = build_config(parse(&["--min-free-disk-mb", "4"])).unwrap();
        assert_eq!(config.min_free_disk, MinFreeDisk::Bytes(4 * MIB));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "min-free-disk-mb = 0\n").unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(config.min_free_disk, MinFreeDisk::Bytes(0));
        let status = std::process::Command::new(exe)
            .args([
                "--exact",
                "serve::tests::min_free_disk_flag_file_key_and_variable",
                "--nocapture",
            ])
            .env("BATON_MIN_FREE_CHILD", "1")
            .env("BATON_MIN_FREE_DISK_MB", "7")
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn rate_limit_flags_and_file_keys() {
        let config = build_config(parse(&[])).unwrap();
        assert_eq!(config.rate_limit.burst, 60);
        assert_eq!(config.rate_limit.per_minute, 60);
        let config = build_config(parse(&[
            "--rate-limit-burst",
            "5",
            "--rate-limit-per-minute",
            "0",
        ]))
        .unwrap();
        assert_eq!(config.rate_limit.burst, 5);
        assert!(!config.rate_limit.enabled());
        assert!(build_config(parse(&["--rate-limit-burst", "0"])).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "rate-limit-per-minute = 120\n").unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(config.rate_limit.per_minute, 120);
    }

    #[test]
    fn open_enrollment_flag_and_file_key() {
        assert!(
            !build_config(parse(&[])).unwrap().open_enrollment,
            "tokens are required by default"
        );
        assert!(
            build_config(parse(&["--open-enrollment"]))
                .unwrap()
                .open_enrollment
        );
        assert!(
            !build_config(parse(&["--open-enrollment", "false"]))
                .unwrap()
                .open_enrollment
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "open-enrollment = true\n").unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert!(config.open_enrollment);
    }

    #[test]
    fn log_format_flag_and_file_key() {
        use crate::logging::LogFormat;
        assert_eq!(log_format(&parse(&[])).unwrap(), LogFormat::Text);
        assert_eq!(
            log_format(&parse(&["--log-format", "json"])).unwrap(),
            LogFormat::Json
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(&file, "log-format = \"json\"\n").unwrap();
        let path = file.to_str().unwrap();
        assert_eq!(
            log_format(&parse(&["--config", path])).unwrap(),
            LogFormat::Json
        );
        assert!(build_config(parse(&["--config", path])).is_ok());
        assert_eq!(
            log_format(&parse(&["--config", path, "--log-format", "text"])).unwrap(),
            LogFormat::Text,
            "the flag wins"
        );
        std::fs::write(&file, "log-format = \"xml\"\n").unwrap();
        assert!(log_format(&parse(&["--config", path])).is_err());
    }

    #[test]
    fn url_host_handles_ports_and_ipv6() {
        assert_eq!(
            url_host("https://mdm.example:8443/x").as_deref(),
            Some("mdm.example")
        );
        assert_eq!(url_host("https://[::1]:8443").as_deref(), Some("::1"));
    }

    /// Every `baton serve` flag (but `--config` itself) is a config file key: a key the file
    /// does not know is refused as "unknown field", so a string value for each flag's name
    /// may fail on its type, never as unknown.
    #[test]
    fn every_flag_is_a_config_file_key() {
        use clap::CommandFactory;
        let command = Wrapper::command();
        let flags: Vec<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .filter(|long| long != "config" && long != "help")
            .collect();
        assert!(flags.len() > 40, "{flags:?}");
        for flag in &flags {
            let text = format!("{flag} = \"x\"\n");
            if let Err(e) = toml::from_str::<FileConfig>(&text) {
                let message = e.to_string();
                assert!(
                    !message.contains("unknown field"),
                    "--{flag} is not a config file key: {message}"
                );
            }
        }
        // The check can fail: a name the file does not know is refused as unknown.
        let e = toml::from_str::<FileConfig>("portal-titel = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        // And the values are used.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("baton.toml");
        std::fs::write(
            &file,
            "portal-title = \"Ward 7\"\nportal-accent-color = \"#aa0011\"\n\
             device-identity-days = 100\nenrollment-push-topic = \"com.apple.mgmt.x\"\n",
        )
        .unwrap();
        let config = build_config(parse(&["--config", file.to_str().unwrap()])).unwrap();
        assert_eq!(config.portal.title, "Ward 7");
        assert_eq!(config.portal.accent.to_string(), "#aa0011");
        assert_eq!(
            config.enrollment.device_validity,
            Duration::from_secs(100 * 24 * 3600)
        );
        assert_eq!(
            config.enrollment.push_topic.as_deref(),
            Some("com.apple.mgmt.x")
        );
        let config = build_config(parse(&[
            "--config",
            file.to_str().unwrap(),
            "--portal-title",
            "Ward 8",
        ]))
        .unwrap();
        assert_eq!(config.portal.title, "Ward 8", "a flag overrides the file");
        std::fs::write(&file, "portal-accent-color = \"red\"\n").unwrap();
        assert!(build_config(parse(&["--config", file.to_str().unwrap()])).is_err());
    }
}

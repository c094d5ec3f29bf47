//! A real server in a temporary data directory, restartable on the same data.

use std::path::PathBuf;

use baton_server::config::{ServerConfig, Transport, WebhookConfig};
use baton_server::server::RunningServer;
use http::Method;
use tempfile::TempDir;

use crate::client::{HttpClient, Reply};
use crate::device::{Pki, TestDevice};

/// The API key the test servers are configured with.
pub const API_KEY: &str = "e2e-test-api-key-0123456789";

/// How to start the test server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Serve TLS with a generated self-signed certificate (else plain HTTP).
    pub tls: bool,
    /// Webhook receiver.
    pub webhook: Option<WebhookConfig>,
    /// Configure [`API_KEY`] (else let the server generate one).
    pub fixed_api_key: bool,
    /// APNs push settings (push certificate, mock APNs URL and CA, timings).
    pub push: baton_server::push::PushConfig,
    /// Enrollment settings (profiles, device identity validity, renewal).
    pub enrollment: baton_server::enrollment::EnrollmentSettings,
    /// Multi-user assignment. The harness default creates no sign-in web clip, so devices get
    /// no commands of their own; the sign-in tests turn it on.
    pub assignment: baton_server::reconciler::AssignmentSettings,
    /// Session settings (default lease, how often leases and prompts are checked).
    pub session: baton_server::session_policy::SessionSettings,
    /// Portal lockout thresholds and durations.
    pub lockout: baton_server::lockout::LockoutSettings,
    /// TLS client authentication, validity of the certificates the server makes, check interval.
    pub tls_settings: baton_server::tls::TlsSettings,
    /// Serve these (certificate chain, key) PEM files instead of a generated certificate.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// The host name devices use: public URL `https://<host>`, and the first name of the
    /// generated certificate (default `127.0.0.1`).
    pub public_host: Option<String>,
    /// Capture device requests to disk (`--capture-device-requests`).
    pub capture: Option<baton_server::capture::CaptureSettings>,
    /// (connection cap, header read timeout, idle timeout) instead of the defaults.
    pub connections: Option<(usize, std::time::Duration, std::time::Duration)>,
    /// Reverse proxies whose forwarding headers are believed.
    pub trusted_proxies: baton_server::client_origin::TrustedProxies,
    /// Who may read `/metrics`.
    pub metrics_auth: baton_server::config::MetricsAuth,
    /// Serve enrollment profiles without a token (`--open-enrollment`).
    pub open_enrollment: bool,
    /// Per-source limits on the anonymous endpoints.
    pub rate_limit: baton_server::rate_limit::RateLimitSettings,
    /// The data directory (default: `data` in the server's temporary directory).
    pub data_dir: Option<PathBuf>,
    /// The free-space floor (`--min-free-disk-mb`).
    pub min_free_disk: baton_server::disk_floor::MinFreeDisk,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            tls: true,
            webhook: None,
            fixed_api_key: true,
            push: baton_server::push::PushConfig::default(),
            enrollment: baton_server::enrollment::EnrollmentSettings::default(),
            assignment: baton_server::reconciler::AssignmentSettings {
                sign_in_clip_label: None,
                ..Default::default()
            },
            session: baton_server::session_policy::SessionSettings::default(),
            lockout: baton_server::lockout::LockoutSettings::default(),
            tls_settings: baton_server::tls::TlsSettings::default(),
            tls_files: None,
            public_host: None,
            capture: None,
            connections: None,
            trusted_proxies: Default::default(),
            metrics_auth: Default::default(),
            open_enrollment: false,
            rate_limit: baton_server::rate_limit::RateLimitSettings::default(),
            data_dir: None,
            min_free_disk: baton_server::disk_floor::MinFreeDisk::Default,
        }
    }
}

/// A running test server.
#[derive(Debug)]
pub struct TestServer {
    dir: TempDir,
    config: ServerConfig,
    running: Option<RunningServer>,
    /// The admin API key.
    pub api_key: String,
    /// A client without a client certificate.
    pub client: HttpClient,
}

impl TestServer {
    /// Starts a server trusting `pki.trusted` for device identities.
    pub async fn start(pki: &Pki, options: ServerOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("device-ca.pem");
        std::fs::write(&ca_path, pki.trusted.cert_pem().unwrap()).unwrap();
        let mut config = ServerConfig::new(
            options
                .data_dir
                .clone()
                .unwrap_or_else(|| dir.path().join("data")),
        );
        config.min_free_disk = options.min_free_disk;
        // The end-to-end tests use short passwords (`pw`); the policy has its own tests
        // (unit tests and crates/baton/tests/cli.rs, which runs the binary's default of 8).
        config.password_policy.min_length = 1;
        config.listen = "127.0.0.1:0".parse().unwrap();
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        config.public_url = match &options.public_host {
            Some(host) => {
                hosts.insert(0, host.clone());
                format!("https://{host}")
            }
            None => "https://127.0.0.1".into(),
        };
        config.transport = match (options.tls, options.tls_files) {
            (false, _) => Transport::PlainHttp,
            (true, Some((cert, key))) => Transport::TlsFiles { cert, key },
            (true, None) => Transport::SelfSignedTls { hosts },
        };
        config.tls = options.tls_settings;
        config.device_ca_files = vec![ca_path];
        config.webhook = options.webhook;
        config.push = options.push;
        config.enrollment = options.enrollment;
        config.assignment = options.assignment;
        // Pending app installs are checked every 30 s in production; tests poll faster.
        if config.assignment.app_install_poll_interval
            == baton_server::reconciler::AssignmentSettings::default().app_install_poll_interval
        {
            config.assignment.app_install_poll_interval = std::time::Duration::from_millis(200);
        }
        config.session = options.session;
        config.lockout = options.lockout;
        config.capture = options.capture;
        if let Some((max, header, idle)) = options.connections {
            config.max_connections = max;
            config.header_read_timeout = header;
            config.idle_timeout = idle;
        }
        config.trusted_proxies = options.trusted_proxies;
        config.metrics_auth = options.metrics_auth;
        config.open_enrollment = options.open_enrollment;
        config.rate_limit = options.rate_limit;
        if options.fixed_api_key {
            config.api_key = Some(API_KEY.to_owned());
        }
        let running = baton_server::server::start(config.clone()).await.unwrap();
        let api_key = running
            .generated_api_key()
            .map_or_else(|| API_KEY.to_owned(), str::to_owned);
        let client = Self::client_for(&running, None);
        Self {
            dir,
            config,
            running: Some(running),
            api_key,
            client,
        }
    }

    fn client_for(running: &RunningServer, identity: Option<(Vec<u8>, Vec<u8>)>) -> HttpClient {
        let server_cert = running
            .tls_certificate()
            .map(|served| served.identity().cert_chain[0].to_vec());
        HttpClient::new(&running.local_url(), server_cert, identity)
    }

    /// The running server.
    pub fn running(&self) -> &RunningServer {
        self.running.as_ref().unwrap()
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// The temporary directory holding everything.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Stops the server and starts it again on the same data directory (new port).
    pub async fn restart(&mut self) -> Option<String> {
        self.stop_running().await;
        self.start_again().await
    }

    /// Stops the server but keeps its data directory ([`Self::start_again`] starts it).
    pub async fn stop_running(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    /// The configuration the server runs with (change it before [`Self::start_again`]).
    pub fn config_mut(&mut self) -> &mut ServerConfig {
        &mut self.config
    }

    /// Starts the server again on the same data directory (new port) after
    /// [`Self::stop_running`]; returns the generated API key, if any.
    pub async fn start_again(&mut self) -> Option<String> {
        assert!(self.running.is_none(), "the server is still running");
        let mut config = self.config.clone();
        config.api_key = None;
        let running = baton_server::server::start(config).await.unwrap();
        let generated = running.generated_api_key().map(str::to_owned);
        self.client = Self::client_for(&running, None);
        self.running = Some(running);
        generated
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    /// A client presenting `device`'s certificate as TLS client certificate.
    pub fn client_with_certificate(&self, device: &TestDevice) -> HttpClient {
        Self::client_for(self.running(), Some(device.tls_identity()))
    }

    /// PUTs `body` to `path` with an optional `Mdm-Signature`.
    pub async fn put_device(&self, path: &str, body: Vec<u8>, signature: Option<String>) -> Reply {
        let mut headers = vec![(
            "Content-Type",
            "application/x-apple-aspen-mdm-checkin".to_owned(),
        )];
        if let Some(signature) = signature {
            headers.push(("Mdm-Signature", signature));
        }
        self.client
            .send(Method::PUT, path, &headers, body)
            .await
            .unwrap()
    }

    /// A check-in message signed by `device`.
    pub async fn checkin(&self, device: &TestDevice, body: Vec<u8>) -> Reply {
        let signature = device.sign(&body);
        self.put_device("/mdm/checkin", body, Some(signature)).await
    }

    /// A command-channel report signed by `device`.
    pub async fn connect(&self, device: &TestDevice, body: Vec<u8>) -> Reply {
        let signature = device.sign(&body);
        self.put_device("/mdm/connect", body, Some(signature)).await
    }

    /// Authenticate + TokenUpdate, both expected to succeed, then the answer to the
    /// DeviceInformation query Baton queues after enrollment (so the queue holds what the
    /// assignment engine planned, nothing is delivered yet).
    pub async fn enroll(&self, device: &TestDevice) {
        self.enroll_checkins(device).await;
        self.answer_device_information(device).await;
    }

    /// Authenticate + TokenUpdate only.
    pub async fn enroll_checkins(&self, device: &TestDevice) {
        let r = self.checkin(device, device.authenticate()).await;
        assert_eq!(r.status, 200, "authenticate: {}", r.text());
        let r = self.checkin(device, device.token_update()).await;
        assert_eq!(r.status, 200, "token update: {}", r.text());
    }

    /// Answers the queued DeviceInformation query, looked up through the admin API (the
    /// command-channel reply to the answer is dropped: the next Idle gets it again).
    pub async fn answer_device_information(&self, device: &TestDevice) {
        let queued = self.commands(&device.udid).await;
        let uuid = queued
            .iter()
            .find(|c| c["request_type"] == "DeviceInformation" && c["status"] == "queued")
            .and_then(|c| c["command_uuid"].as_str())
            .unwrap_or_else(|| panic!("no DeviceInformation query queued: {queued:?}"))
            .to_owned();
        let r = self
            .connect(device, device.device_information_answer(&uuid))
            .await;
        assert_eq!(r.status, 200, "device information: {}", r.text());
    }

    /// An admin API call with the API key; `body` is sent as JSON when given.
    pub async fn api(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Reply {
        let mut headers = vec![("Authorization", format!("Bearer {}", self.api_key))];
        let bytes = match body {
            Some(json) => {
                headers.push(("Content-Type", "application/json".to_owned()));
                serde_json::to_vec(&json).unwrap()
            }
            None => Vec::new(),
        };
        self.client
            .send(method, path, &headers, bytes)
            .await
            .unwrap()
    }

    /// An admin API call with a raw body and content type.
    pub async fn api_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Reply {
        let headers = vec![
            ("Authorization", format!("Bearer {}", self.api_key)),
            ("Content-Type", content_type.to_owned()),
        ];
        self.client
            .send(method, path, &headers, body)
            .await
            .unwrap()
    }

    /// Queues a JSON command to `id`; returns its CommandUUID.
    pub async fn queue(&self, id: &str, command: serde_json::Value) -> String {
        let r = self
            .api(
                Method::POST,
                &format!("/api/v1/devices/{id}/commands"),
                Some(command),
            )
            .await;
        assert_eq!(r.status, 201, "enqueue: {}", r.text());
        r.json()["command_uuid"].as_str().unwrap().to_owned()
    }

    /// The command list of `id`.
    pub async fn commands(&self, id: &str) -> Vec<serde_json::Value> {
        let r = self
            .api(Method::GET, &format!("/api/v1/devices/{id}/commands"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["commands"].as_array().unwrap().clone()
    }

    /// [`Self::commands`] without Baton's own DeviceInformation query after enrollment.
    pub async fn operator_commands(&self, id: &str) -> Vec<serde_json::Value> {
        let mut listed = self.commands(id).await;
        listed.retain(|c| c["request_type"] != "DeviceInformation");
        listed
    }

    /// Creates an enrollment token through the admin API with `body` (at least `label`);
    /// returns the answer's JSON (`id`, `token`, `url`, ...).
    pub async fn create_enrollment_token(&self, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .api(Method::POST, "/api/v1/enrollment-tokens", Some(body))
            .await;
        assert_eq!(r.status, 201, "enrollment token: {}", r.text());
        r.json()
    }

    /// The path and query of a fresh enrollment token's URL good for `uses` downloads
    /// (`/mdm/enroll?token=...`).
    pub async fn enroll_path(&self, uses: u32) -> String {
        let created = self
            .create_enrollment_token(serde_json::json!({"label": "e2e", "uses": uses}))
            .await;
        format!(
            "/mdm/enroll?token={}",
            created["token"].as_str().expect("token")
        )
    }

    /// `/healthz` answers ok.
    pub async fn assert_healthy(&self) {
        let r = self.client.get("/healthz").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "ok\n");
    }
}

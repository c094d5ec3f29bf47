//! Starting and stopping a whole server from a [`ServerConfig`]: open the store in the data
//! directory, settle the API key, load the built-in CA and extra device CAs as trust anchors,
//! build the router (device routes, admin API, SCEP), bind the listener (TLS or plain HTTP), and
//! run the background tasks (last-seen flushing, webhook delivery, push dispatch and re-push,
//! the session sweeper, TLS certificate renewal and reload).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_proto::Limits;
use baton_store::{SledConfig, SledStore, Store, StoreError};
use openssl::x509::X509;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::api_key::{self, ApiKeyError};
use crate::config::{ServerConfig, Transport};
use crate::enrollment::server_certificate::ServerCertificateError;
use crate::enrollment::store_token::TokenStoreError;
use crate::enrollment::token::TokenInput;
use crate::enrollment::{
    CaConfig, CaError, CertificateAuthority, EnrollmentTokens, startup as enrollment_startup,
};
use crate::identity::{IdentityConfig, IdentityError, IdentityVerifier, TrustAnchors};
use crate::metrics::Metrics;
use crate::push::{PushError, PushService, PushSink};
use crate::rate_limit::RateLimiter;
use crate::state::{AppState, Services};
use crate::tls::rotation::Rotation;
use crate::tls::{self, OperatorFiles, RotatingCertificate, TlsError, TlsIdentity};
use crate::webhook::{EventSink, Outbox, WebhookDelivery};

/// Sub-directory of the data directory holding the database.
pub const DB_DIR: &str = "db";
/// Sub-directory of the data directory holding the built-in CA.
pub const CA_DIR: &str = "ca";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A directory or file could not be created or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The store could not be opened or read.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The API key could not be settled.
    #[error("API key: {0}")]
    ApiKey(#[from] ApiKeyError),
    /// The built-in CA could not be loaded or created.
    #[error("enrollment CA: {0}")]
    Ca(#[from] CaError),
    /// A `--device-ca` file holds no usable certificate.
    #[error("device CA {path}: {reason}")]
    DeviceCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The trust anchors could not be built.
    #[error("trust anchors: {0}")]
    Identity(#[from] IdentityError),
    /// The TLS certificate could not be loaded or generated.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The server certificate could not be issued by the built-in CA.
    #[error("server certificate: {0}")]
    ServerCertificate(#[from] ServerCertificateError),
    /// The webhook client could not be built.
    #[error("webhook client: {0}")]
    Webhook(#[from] rustls::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The push service could not start (push certificate, APNs CA).
    #[error("push: {0}")]
    Push(#[from] PushError),
    /// A start-up worker failed.
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// A running server. Dropping it does not stop it; call [`RunningServer::shutdown`].
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    tls: bool,
    generated_api_key: Option<String>,
    first_enrollment_url: Option<String>,
    open_enrollment: bool,
    builtin_ca_pem: Option<Vec<u8>>,
    builtin_ca_sha256: Option<String>,
    state: AppState,
    certificate: Option<Arc<RotatingCertificate>>,
    reload_tls: Arc<Notify>,
    stop: watch::Sender<bool>,
    serve: JoinHandle<io::Result<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningServer {
    /// The bound address (with the real port when the config said `:0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// True when serving TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// `https://ip:port` or `http://ip:port` of the bound socket.
    pub fn local_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The API key generated on this start (first start without `--api-key`); show it once.
    pub fn generated_api_key(&self) -> Option<&str> {
        self.generated_api_key.as_deref()
    }

    /// The enrollment URL of the token created on this start (the first start of a data
    /// directory, enrollment tokens required): one device may enroll with it. Show it once.
    pub fn first_enrollment_url(&self) -> Option<&str> {
        self.first_enrollment_url.as_deref()
    }

    /// True when profiles are served without an enrollment token (`--open-enrollment`).
    pub fn open_enrollment(&self) -> bool {
        self.open_enrollment
    }

    /// PEM of the built-in enrollment CA, when it is trusted.
    pub fn builtin_ca_pem(&self) -> Option<&[u8]> {
        self.builtin_ca_pem.as_deref()
    }

    /// SHA-256 fingerprint of the built-in CA certificate, as iOS shows it in a profile's
    /// certificate details (upper-case hex pairs separated by spaces).
    pub fn builtin_ca_sha256(&self) -> Option<&str> {
        self.builtin_ca_sha256.as_deref()
    }

    /// The shared services (tests and embedding code).
    pub fn services(&self) -> &AppState {
        &self.state
    }

    /// The TLS certificate new connections get (`None` over plain HTTP).
    pub fn tls_certificate(&self) -> Option<Arc<tls::ServedCertificate>> {
        self.certificate.as_ref().map(|c| c.current())
    }

    /// Checks the TLS certificate at once instead of at the next interval: re-reads the
    /// operator's files, or renews a certificate Baton made when that is due (`baton serve`
    /// calls it on SIGHUP). Returns before the check is done.
    pub fn reload_tls(&self) {
        self.reload_tls.notify_one();
    }

    /// Stops accepting, lets in-flight requests finish, stops the background tasks and flushes
    /// the store. When it returns the data directory can be opened again.
    pub async fn shutdown(self) -> io::Result<()> {
        let RunningServer {
            state,
            stop,
            serve,
            tasks,
            ..
        } = self;
        let _ = stop.send(true);
        let served = serve.await.unwrap_or_else(|e| Err(io::Error::other(e)));
        for task in tasks {
            let _ = task.await;
        }
        let store = Arc::clone(&state.store);
        drop(state);
        tokio::task::spawn_blocking(move || {
            if let Err(error) = store.flush_last_seen() {
                tracing::warn!(%error, "flushing last-seen times at shutdown failed");
            }
            drop(store);
        })
        .await
        .map_err(io::Error::other)?;
        served
    }
}

/// Starts a server that pushes through its APNs [`PushService`] (which only logs while no push
/// certificate is configured).
pub async fn start(config: ServerConfig) -> Result<RunningServer, StartError> {
    start_inner(config, None).await
}

fn io_error(path: &std::path::Path) -> impl FnOnce(io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens the store, retrying briefly while a previous instance in this process releases it.
fn open_store(path: &std::path::Path) -> Result<SledStore, StoreError> {
    let mut attempts = 0;
    loop {
        match SledStore::open_with(&SledConfig::new(path)) {
            Ok(store) => return Ok(store),
            // sled refuses a database another handle in this process still holds (its lock is
            // released when the last handle's background flusher exits): retry for about a second.
            Err(StoreError::Sled(_)) if attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Starts a server that tells `push` (instead of its APNs push service) about new commands.
pub async fn start_with_push(
    config: ServerConfig,
    push: Arc<dyn PushSink>,
) -> Result<RunningServer, StartError> {
    start_inner(config, Some(push)).await
}

async fn start_inner(
    config: ServerConfig,
    push: Option<Arc<dyn PushSink>>,
) -> Result<RunningServer, StartError> {
    let now = SystemTime::now();
    std::fs::create_dir_all(&config.data_dir).map_err(io_error(&config.data_dir))?;
    let db_path = config.data_dir.join(DB_DIR);
    let configured_key = config.api_key.clone();
    let (store, api_key, generated_api_key, queue_depth) = tokio::task::spawn_blocking(move || {
        let store: Arc<dyn Store> = Arc::new(open_store(&db_path)?);
        let (hash, generated) = api_key::load_or_init(store.as_ref(), configured_key.as_deref())?;
        if configured_key.is_some() {
            tracing::info!(
                "admin API key: the configured one (stored if no key was; an existing stored key is kept for starts without it)"
            );
        }
        let mut depth = 0i64;
        for e in store.enrollments()? {
            depth += store
                .list(&e.id)?
                .iter()
                .filter(|r| r.state.is_queued())
                .count() as i64;
        }
        Ok::<_, StartError>((store, hash, generated, depth))
    })
    .await
    .map_err(|e| StartError::Task(e.to_string()))??;

    // Trust anchors: the built-in CA (also serving SCEP) and any extra device CAs.
    let mut anchors: Vec<X509> = Vec::new();
    let mut builtin_ca_pem = None;
    let mut builtin_ca_sha256 = None;
    let mut scep = None;
    if config.trust_builtin_ca {
        let ca = CertificateAuthority::load_or_create(
            &config.data_dir.join(CA_DIR),
            &CaConfig::default(),
            now,
        )?;
        anchors.push(ca.certificate().to_owned());
        builtin_ca_pem = Some(ca.certificate_pem()?);
        let pairs: Vec<String> = ca
            .certificate_sha256()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        builtin_ca_sha256 = Some(pairs.join(" "));
        scep = Some(enrollment_startup::scep_state(
            Arc::new(ca),
            &store,
            &config,
        )?);
    }
    for path in &config.device_ca_files {
        let pem = std::fs::read(path).map_err(io_error(path))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| StartError::DeviceCa {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if certs.is_empty() {
            return Err(StartError::DeviceCa {
                path: path.clone(),
                reason: "no certificate in the file".into(),
            });
        }
        anchors.extend(certs);
    }
    // Named in the CertificateRequest when TLS client authentication is on.
    let device_ca_subjects = anchors
        .iter()
        .map(|ca| {
            ca.subject_name()
                .to_der()
                .map(rustls::DistinguishedName::from)
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::from)?;
    let verifier = IdentityVerifier::new(
        TrustAnchors::new(anchors)?,
        IdentityConfig {
            clock_skew: config.clock_skew,
            ..IdentityConfig::default()
        },
    );

    let metrics = Arc::new(Metrics::default());
    metrics.set_queue_depth(queue_depth);
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let events = match &config.webhook {
        None => EventSink::disabled(),
        Some(webhook) => {
            let outbox = Outbox::open(Arc::clone(&store), now)?.with_metrics(Arc::clone(&metrics));
            let delivery =
                WebhookDelivery::new(outbox.clone(), webhook.clone(), Arc::clone(&metrics))?;
            tasks.push(tokio::spawn(delivery.run(stop_rx.clone())));
            EventSink::to_outbox(outbox)
        }
    };

    let push_service = Arc::new(PushService::new(Arc::clone(&store), config.push.clone())?);
    tasks.push(tokio::spawn(
        Arc::clone(&push_service).run_dispatch(stop_rx.clone()),
    ));
    tasks.push(tokio::spawn(
        Arc::clone(&push_service).run_repush(stop_rx.clone()),
    ));
    let push = push.unwrap_or_else(|| Arc::clone(&push_service) as Arc<dyn PushSink>);

    let mut reconciler = crate::reconciler::Reconciler::new(
        Arc::clone(&store),
        Arc::clone(&push),
        Arc::clone(&metrics),
        config.assignment.clone(),
    )
    .with_events(events.clone());
    // Certificate items are issued by the built-in CA (none: they are reported not built).
    if let Some(scep) = &scep {
        reconciler =
            reconciler.with_certificate_issuer(Arc::new(crate::reconciler::BuiltInCaIssuer::new(
                Arc::clone(scep.service().ca()),
                Arc::clone(scep.service().registry()),
            )));
    }
    let reconciler = Arc::new(reconciler);
    {
        let store = Arc::clone(&store);
        let public_url = config.public_url.clone();
        let label = config.assignment.sign_in_clip_label.clone();
        let now_secs = baton_store::unix_millis(now) / 1000;
        tokio::task::spawn_blocking(move || {
            crate::catalog::defaults::seed(store.as_ref(), &public_url, label.as_deref(), now_secs)
        })
        .await
        .map_err(|e| StartError::Task(e.to_string()))?
        .map_err(|e| StartError::Task(format!("seeding the directory: {e}")))?;
    }

    let state: AppState = Arc::new(Services {
        store: Arc::clone(&store),
        verifier: Arc::new(verifier),
        metrics,
        push,
        push_service,
        events,
        reconciler,
        session: Arc::new(crate::session_policy::SessionRules::new(
            config.session.clone(),
        )),
        api_key,
        body_limits: config.body_limits,
        password_policy: config.password_policy,
        plist_limits: Limits::default().with_max_body_bytes(config.body_limits.device),
        enrollment_tokens: EnrollmentTokens::new(Arc::clone(&store), &config.public_url),
        rate_limits: Arc::new(RateLimiter::new(config.rate_limit)),
        disk_floor: Arc::new(crate::disk_floor::DiskFloor::new(
            config.data_dir.clone(),
            config.min_free_disk,
        )),
    });
    let first_enrollment_url = if scep.is_some() && !config.open_enrollment {
        let tokens = state.enrollment_tokens.clone();
        tokio::task::spawn_blocking(move || first_token(&tokens, now))
            .await
            .map_err(|e| StartError::Task(e.to_string()))??
    } else {
        None
    };

    // Automatic sign-out: sweeps at once (leases outlive restarts), then on its schedule. The
    // sign-in log entry is stored with each sign-out; the hook sends its webhook event.
    let sign_out_hook: crate::session_policy::SignOutHook = {
        let events = state.events.clone();
        Arc::new(move |s: &crate::session_policy::AutomaticSignOut| {
            tracing::info!(enrollment_id = %s.device, username = %s.username,
                reason = s.reason.reason_code(), "automatic sign-out");
            crate::sign_in_log::publish(&events, &s.log_entry);
        })
    };
    tasks.push(tokio::spawn(crate::session_policy::sweeper::run(
        Arc::clone(&store),
        Arc::clone(&state.reconciler),
        Arc::clone(&state.session),
        sign_out_hook,
        stop_rx.clone(),
    )));

    // Acknowledged app installs are checked with ManagedApplicationList until they settle.
    tasks.push(tokio::spawn(crate::reconciler::poll_app_installs(
        Arc::clone(&state.reconciler),
        state.reconciler.settings().app_install_poll_interval,
        stop_rx.clone(),
    )));

    tasks.push(tokio::spawn(crate::retention::run(
        Arc::clone(&store),
        state.events.outbox().cloned(),
        config.retention,
        Arc::clone(&state.metrics),
        stop_rx.clone(),
    )));

    tasks.push(tokio::spawn(flush_last_seen(
        Arc::clone(&store),
        config.last_seen_flush_every,
        stop_rx.clone(),
    )));

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut shutdown_rx = stop_rx.clone();
    let shutdown = async move {
        let _ = shutdown_rx.wait_for(|stop| *stop).await;
    };
    let reload_tls = Arc::new(Notify::new());
    let rotation = Rotation {
        check_every: config.tls.check_every,
        metrics: Arc::clone(&state.metrics),
        reload: Arc::clone(&reload_tls),
        stop: stop_rx.clone(),
    };
    let certificate = match &config.transport {
        Transport::PlainHttp => None,
        Transport::TlsFiles { cert, key } => {
            let identity = TlsIdentity::from_pem_files(cert, key)?;
            let (served, task) = rotation.start(identity, OperatorFiles::new(cert, key))?;
            tasks.push(task);
            Some(served)
        }
        Transport::SelfSignedTls { hosts } => {
            let (served, task) = enrollment_startup::server_certificate(
                &config,
                hosts,
                scep.as_ref(),
                &rotation,
                now,
            )?;
            tasks.push(task);
            Some(served)
        }
    };
    let extra = enrollment_startup::routes(
        scep,
        certificate.as_ref(),
        &config,
        &state,
        &stop_rx,
        &mut tasks,
    )?;
    let tls_enabled = certificate.is_some();
    let portal = Arc::new(crate::portal::Portal::new(
        Arc::clone(&state),
        config.portal.clone(),
        tls_enabled,
        config.lockout,
    ));
    // Unanswered "Stay signed in?" prompts become `interrupted` entries; expired CSRF tokens,
    // lockouts and old sign-in log entries are dropped. Same cadence as the lease sweeper.
    tasks.push(tokio::spawn(crate::portal::housekeeping(
        Arc::clone(&portal),
        config.session.lease_check_interval,
        stop_rx.clone(),
    )));
    let extra = extra.merge(crate::portal::router_with(&portal));
    let edge = crate::client_origin::Edge {
        tls: tls_enabled,
        trusted: config.trusted_proxies.clone(),
    };
    let mut router =
        crate::app::router_for(Arc::clone(&state), extra, config.metrics_auth, Some(edge));
    if let Some(settings) = &config.capture {
        let capture = crate::capture::DeviceCapture::new(settings.clone())
            .map_err(io_error(&settings.dir))?;
        router = router.layer(axum::middleware::from_fn_with_state(
            capture,
            crate::capture::record,
        ));
    }
    // The cap, not the kernel's descriptor limit, is what refuses connections.
    let file_limit = match tls::raise_file_limit() {
        Ok((soft, hard)) => {
            tracing::info!(soft, hard, "open file limit");
            soft
        }
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open file limit");
            1024
        }
    };
    let limits = tls::ConnectionLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        idle_timeout: config.idle_timeout,
        counters: state.metrics.connection_counters(),
    }
    .fit_file_limit(file_limit);
    if limits.max_connections < config.max_connections {
        tracing::warn!(
            max_connections = limits.max_connections,
            requested = config.max_connections,
            file_limit,
            "connection cap lowered to fit the open file limit"
        );
    }
    let serve = match &certificate {
        None => tokio::spawn(tls::serve_plain(listener, router, limits, shutdown)),
        Some(certificate) => {
            let tls_config = tls::server_config(
                Arc::clone(certificate) as Arc<dyn rustls::server::ResolvesServerCert>,
                config.tls.client_auth,
                device_ca_subjects,
            )?;
            tokio::spawn(tls::serve_tls(
                listener, router, tls_config, limits, shutdown,
            ))
        }
    };
    tracing::info!(addr = %local_addr, tls = tls_enabled, client_auth = %config.tls.client_auth,
        data = %config.data_dir.display(), "baton server listening");
    Ok(RunningServer {
        local_addr,
        tls: tls_enabled,
        generated_api_key,
        first_enrollment_url,
        open_enrollment: config.open_enrollment,
        builtin_ca_pem,
        builtin_ca_sha256,
        state,
        certificate,
        reload_tls,
        stop,
        serve,
        tasks,
    })
}

/// Label of the token created on a data directory's first start.
pub const FIRST_TOKEN_LABEL: &str = "first device";

/// On the first start (no enrollment token was ever created), a token for one device, valid
/// seven days; returns its URL.
fn first_token(tokens: &EnrollmentTokens, now: SystemTime) -> Result<Option<String>, StartError> {
    let failed = |e: TokenStoreError| StartError::Task(format!("first enrollment token: {e}"));
    if !tokens.none_created().map_err(failed)? {
        return Ok(None);
    }
    let spec = TokenInput {
        label: FIRST_TOKEN_LABEL.to_owned(),
        uses: Some(1),
        ..TokenInput::default()
    }
    .validate()
    .map_err(StartError::Task)?;
    let (record, token) = tokens.create(spec, now).map_err(failed)?;
    tracing::info!(token_id = %record.id, label = %record.label, "first enrollment token created");
    Ok(Some(tokens.url(&token)))
}

/// Writes buffered last-seen times periodically, and once more on shutdown.
async fn flush_last_seen(store: Arc<dyn Store>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let store = Arc::clone(&store);
        let result = tokio::task::spawn_blocking(move || store.flush_last_seen()).await;
        if let Ok(Err(error)) = result {
            tracing::warn!(%error, "writing last-seen times failed");
        }
    }
}

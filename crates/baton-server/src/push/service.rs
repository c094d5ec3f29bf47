//! The APNs push service: holds the running push certificate and its [`ApnsClient`]
//! (hot-swapped on upload), turns "commands were enqueued" notices into coalesced pushes, records
//! outcomes (metrics, logs, invalid-token marks) and re-pushes devices that have queued commands
//! but did not check in after their last push.
//!
//! Policy:
//! - Coalescing: notices go into a pending set; a dispatcher wakes, waits the debounce window
//!   ([`PushConfig::debounce`]), takes the whole set and sends it with
//!   [`ApnsClient::push_many`]. Batches are sent one after another, so at most one push per
//!   channel is in flight and requests arriving meanwhile are merged into the next batch.
//! - A channel that was pushed and has not connected since is not pushed again for new
//!   commands ([`push_outstanding`]): when it connects it fetches everything queued, so another
//!   push adds nothing. Only the re-push below (after a full interval) pushes it again, which
//!   covers a push APNs lost. This keeps bursts of enqueues (a sign-in queues dozens of
//!   commands, a shift change thousands) to one push per channel, whatever their timing.
//! - A channel is pushed on its own token (a `device:user` channel has its own). Disabled
//!   channels, channels without a token and channels whose token is marked invalid are skipped.
//! - Re-push: every [`PushConfig::repush_interval`] channels with queued or NotNow commands are
//!   pushed again when their last push is at least one interval old and they have not been seen
//!   since it (never pushed on this run: not seen for an interval). Last-push times are kept in
//!   memory only.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use baton_apns::{ApnsClient, ApnsConfig, ClientError, PushCertificate, PushOutcome};
use baton_proto::{EnrollmentId, PushMagic, PushToken, Topic};
use baton_store::{Store, StoreError, unix_millis};
use openssl::x509::X509;
use rustls::pki_types::CertificateDer;
use tokio::sync::{Notify, watch};

use super::PushSink;
use super::certificate::{self, CertificateSource, CertificateView, PushCertificateError};
use super::config::PushConfig;
use super::invalid_token;
use super::metrics::{PushMetrics, result_label};

/// How often at most the expiry warning is repeated.
const EXPIRY_LOG_EVERY: Duration = Duration::from_secs(86_400);

/// Why a push service could not start, a push was not sent, or a certificate not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// No push certificate is configured or uploaded.
    #[error("no push certificate is configured")]
    NotConfigured,
    /// The channel is not enrolled.
    #[error("unknown device {0}")]
    UnknownChannel(EnrollmentId),
    /// The channel has no push token (no TokenUpdate yet) or is disabled.
    #[error("{0} has no usable push token (no TokenUpdate yet, or checked out)")]
    NoToken(EnrollmentId),
    /// APNs reported the channel's token invalid; waiting for a new TokenUpdate.
    #[error("the push token of {0} is marked invalid until the device sends a TokenUpdate")]
    TokenInvalid(EnrollmentId),
    /// Devices enrolled with other topics than the new certificate's.
    #[error("devices are enrolled with topic(s) {enrolled:?}, the new certificate has {new}")]
    TopicConflict {
        /// Topics stored on enrollments that differ from the new one.
        enrolled: Vec<String>,
        /// The new certificate's topic.
        new: Topic,
    },
    /// The certificate could not be loaded or converted.
    #[error("{0}")]
    Certificate(#[from] PushCertificateError),
    /// The APNs client could not be built from the certificate and settings.
    #[error("APNs client: {0}")]
    Client(#[from] ClientError),
    /// An `--apns-ca` file could not be read or holds no certificate.
    #[error("APNs CA {path}: {reason}")]
    ApnsCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A blocking worker failed.
    #[error("worker failed: {0}")]
    Task(String),
}

/// The certificate in use and the client built from it.
struct Active {
    client: ApnsClient,
    certificate: PushCertificate,
    source: CertificateSource,
}

/// A channel ready to be pushed.
struct Target {
    id: EnrollmentId,
    token: PushToken,
    magic: PushMagic,
    /// When the channel last connected (unix ms), if ever.
    last_seen: Option<u64>,
}

/// Why a channel is not pushed.
enum Skip {
    Unknown,
    NoToken,
    Invalid,
}

/// The APNs push service. Share it behind an `Arc`; start [`PushService::run_dispatch`] and
/// [`PushService::run_repush`] as tasks.
pub struct PushService {
    store: Arc<dyn Store>,
    config: PushConfig,
    apns: ApnsConfig,
    active: RwLock<Option<Arc<Active>>>,
    pending: Mutex<HashSet<EnrollmentId>>,
    wake: Notify,
    last_push: Mutex<HashMap<EnrollmentId, SystemTime>>,
    last_expiry_log: Mutex<Option<SystemTime>>,
    metrics: PushMetrics,
}

impl fmt::Debug for PushService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushService")
            .field("topic", &self.topic())
            .field("apns_url", &self.config.apns_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `--apns-ca` PEM files as DER trust roots.
fn read_roots(files: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, PushError> {
    let mut roots = Vec::new();
    for path in files {
        let bad = |reason: String| PushError::ApnsCa {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        for c in certs {
            roots.push(CertificateDer::from(
                c.to_der().map_err(|e| bad(e.to_string()))?,
            ));
        }
    }
    Ok(roots)
}

/// True when a channel is due a re-push at `now`: its last push (on this run) is at least
/// `interval` old and it was not seen since; or, never pushed, it was not seen for `interval`.
pub fn repush_due(
    last_push: Option<SystemTime>,
    last_seen_ms: Option<u64>,
    now: SystemTime,
    interval: Duration,
) -> bool {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let now_ms = unix_millis(now);
    match last_push {
        Some(pushed) => {
            let pushed_ms = unix_millis(pushed);
            now_ms.saturating_sub(pushed_ms) >= interval_ms
                && last_seen_ms.is_none_or(|seen| seen < pushed_ms)
        }
        None => last_seen_ms.is_none_or(|seen| now_ms.saturating_sub(seen) >= interval_ms),
    }
}

/// True when an earlier push to a channel is still unanswered: it was pushed less than
/// `interval` ago and has not been seen since. A new enqueue does not push such a channel again.
pub fn push_outstanding(
    last_push: Option<SystemTime>,
    last_seen_ms: Option<u64>,
    now: SystemTime,
    interval: Duration,
) -> bool {
    let Some(pushed) = last_push else {
        return false;
    };
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let pushed_ms = unix_millis(pushed);
    unix_millis(now).saturating_sub(pushed_ms) < interval_ms
        && last_seen_ms.is_none_or(|seen| seen < pushed_ms)
}

fn lookup(store: &dyn Store, id: &EnrollmentId) -> Result<Result<Target, Skip>, StoreError> {
    let Some(e) = store.enrollment(id)? else {
        return Ok(Err(Skip::Unknown));
    };
    let (true, Some(token), Some(magic)) = (e.enabled, e.push_token, e.push_magic) else {
        return Ok(Err(Skip::NoToken));
    };
    if invalid_token::is_marked(store, id)? {
        return Ok(Err(Skip::Invalid));
    }
    Ok(Ok(Target {
        id: id.clone(),
        token,
        magic,
        last_seen: e.last_seen,
    }))
}

impl PushService {
    /// Builds the service: reads the `--apns-ca` roots and loads the push certificate, from
    /// `--push-cert` when configured (it wins), else the newest one in the store. Without any it
    /// starts unconfigured (pushes are skipped with a debug log) until one is uploaded.
    pub fn new(store: Arc<dyn Store>, config: PushConfig) -> Result<Self, PushError> {
        let apns = ApnsConfig {
            base_url: config.apns_url.clone(),
            public_roots: config.apns_public_roots,
            extra_roots: read_roots(&config.apns_ca_files)?,
            ..ApnsConfig::default()
        };
        let loaded = match certificate::load_configured(&config)? {
            Some(cert) => Some((cert, CertificateSource::File)),
            None => {
                let newest = store
                    .push_certificates()?
                    .into_iter()
                    .max_by_key(|c| c.updated_at);
                match newest {
                    Some(stored) => {
                        Some((certificate::from_stored(&stored)?, CertificateSource::Store))
                    }
                    None => None,
                }
            }
        };
        let service = Self {
            store,
            config,
            apns,
            active: RwLock::new(None),
            pending: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            last_push: Mutex::new(HashMap::new()),
            last_expiry_log: Mutex::new(None),
            metrics: PushMetrics::default(),
        };
        match loaded {
            Some((cert, source)) => service.install(cert, source)?,
            None => tracing::info!("no APNs push certificate configured: pushes are skipped"),
        }
        Ok(service)
    }

    fn install(
        &self,
        certificate: PushCertificate,
        source: CertificateSource,
    ) -> Result<(), PushError> {
        let client = ApnsClient::new(self.apns.clone(), certificate.clone())?;
        let now = SystemTime::now();
        tracing::info!(topic = %certificate.topic(), subject = certificate.subject(), ?source,
            apns_url = %self.apns.base_url, "APNs push certificate in use");
        certificate::log_expiry(&certificate, now);
        *lock(&self.last_expiry_log) = Some(now);
        self.update_days_left(&certificate, now);
        *self.active.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(Active {
            client,
            certificate,
            source,
        }));
        Ok(())
    }

    fn update_days_left(&self, cert: &PushCertificate, now: SystemTime) {
        let days = cert.remaining(now).as_secs() / 86_400;
        self.metrics
            .set_certificate_days_left(i64::try_from(days).unwrap_or(i64::MAX));
    }

    fn active(&self) -> Option<Arc<Active>> {
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The topic pushes go out on, when a certificate is in use.
    pub fn topic(&self) -> Option<Topic> {
        self.active().map(|a| a.certificate.topic().clone())
    }

    /// The operator view of the certificate in use.
    pub fn certificate_view(&self, now: SystemTime) -> Option<CertificateView> {
        self.active()
            .map(|a| CertificateView::of(&a.certificate, a.source, now))
    }

    /// True when `--push-cert` is configured (it wins over uploads at the next start).
    pub fn has_configured_file(&self) -> bool {
        self.config.cert_file.is_some()
    }

    /// The push counters.
    pub fn metrics(&self) -> &PushMetrics {
        &self.metrics
    }

    /// Installs an uploaded certificate: refused with [`PushError::TopicConflict`] when devices
    /// are enrolled with another topic (unless `force`), then stored (replacing any other stored
    /// certificate) and swapped into the running sender.
    pub async fn install_upload(
        &self,
        certificate: PushCertificate,
        force: bool,
    ) -> Result<CertificateView, PushError> {
        let store = Arc::clone(&self.store);
        let now = SystemTime::now();
        let cert = certificate.clone();
        tokio::task::spawn_blocking(move || {
            let new = cert.topic().clone();
            let enrolled: BTreeSet<String> = store
                .enrollments()?
                .into_iter()
                .filter_map(|e| e.topic)
                .filter(|t| *t != new)
                .map(|t| t.as_str().to_owned())
                .collect();
            if !enrolled.is_empty() {
                if !force {
                    return Err(PushError::TopicConflict {
                        enrolled: enrolled.into_iter().collect(),
                        new,
                    });
                }
                tracing::warn!(new_topic = %new, enrolled_topics = ?enrolled,
                    "push certificate with another topic installed by force: devices enrolled with the old topic can no longer be pushed");
            }
            store.put_push_certificate(&certificate::to_stored(&cert, now)?)?;
            for other in store.push_certificates()? {
                if other.topic != new {
                    store.delete_push_certificate(&other.topic)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| PushError::Task(e.to_string()))??;
        self.install(certificate, CertificateSource::Upload)?;
        self.certificate_view(now).ok_or(PushError::NotConfigured)
    }

    /// Pushes one channel now (no debounce) and returns the outcome.
    pub async fn push_now(&self, id: &EnrollmentId) -> Result<PushOutcome, PushError> {
        let active = self.active().ok_or(PushError::NotConfigured)?;
        let store = Arc::clone(&self.store);
        let lookup_id = id.clone();
        let target = tokio::task::spawn_blocking(move || lookup(store.as_ref(), &lookup_id))
            .await
            .map_err(|e| PushError::Task(e.to_string()))??;
        let target = match target {
            Ok(t) => t,
            Err(Skip::Unknown) => return Err(PushError::UnknownChannel(id.clone())),
            Err(Skip::NoToken) => return Err(PushError::NoToken(id.clone())),
            Err(Skip::Invalid) => {
                self.metrics.record("skipped_invalid_token");
                return Err(PushError::TokenInvalid(id.clone()));
            }
        };
        let sent_at = SystemTime::now();
        let outcome = active.client.push(&target.token, &target.magic).await;
        lock(&self.last_push).insert(target.id.clone(), sent_at);
        self.record_outcomes(vec![((target.id, target.token), outcome.clone())])
            .await;
        Ok(outcome)
    }

    /// Pushes the given channels (skipping those without a usable token) in one batch.
    async fn send(&self, ids: Vec<EnrollmentId>) -> usize {
        let Some(active) = self.active() else {
            for id in &ids {
                tracing::debug!(enrollment_id = %id, "push not sent: no push certificate configured");
            }
            return 0;
        };
        let store = Arc::clone(&self.store);
        let looked_up = tokio::task::spawn_blocking(move || {
            ids.into_iter()
                .map(|id| {
                    let found = lookup(store.as_ref(), &id);
                    (id, found)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let looked_up = match looked_up {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "push lookup worker failed");
                return 0;
            }
        };
        let mut targets = Vec::new();
        let now = SystemTime::now();
        let last_push = lock(&self.last_push).clone();
        let mut outstanding = 0u64;
        for (id, found) in looked_up {
            match found {
                Ok(Ok(t))
                    if push_outstanding(
                        last_push.get(&t.id).copied(),
                        t.last_seen,
                        now,
                        self.config.repush_interval,
                    ) =>
                {
                    outstanding += 1;
                    tracing::debug!(enrollment_id = %id, "push skipped: the last one is unanswered");
                }
                Ok(Ok(t)) => targets.push(t),
                Ok(Err(Skip::Invalid)) => {
                    self.metrics.record("skipped_invalid_token");
                    tracing::debug!(enrollment_id = %id, "push skipped: token marked invalid");
                }
                Ok(Err(_)) => {
                    tracing::debug!(enrollment_id = %id, "push skipped: no usable push token");
                }
                Err(error) => {
                    tracing::warn!(enrollment_id = %id, %error, "push skipped: store lookup failed");
                }
            }
        }
        if outstanding > 0 {
            self.metrics.coalesced(outstanding);
        }
        if targets.is_empty() {
            return 0;
        }
        let sent_at = SystemTime::now();
        {
            let mut last = lock(&self.last_push);
            for t in &targets {
                last.insert(t.id.clone(), sent_at);
            }
        }
        let n = targets.len();
        let outcomes = active
            .client
            .push_many(
                targets
                    .into_iter()
                    .map(|t| ((t.id, t.token.clone()), t.token, t.magic)),
            )
            .await;
        self.record_outcomes(outcomes).await;
        n
    }

    /// Counts, logs, and marks dead tokens (unless a TokenUpdate replaced the token meanwhile).
    async fn record_outcomes(&self, outcomes: Vec<((EnrollmentId, PushToken), PushOutcome)>) {
        let now = SystemTime::now();
        let mut dead = Vec::new();
        for ((id, token), outcome) in outcomes {
            self.metrics.record(result_label(&outcome));
            match &outcome {
                PushOutcome::Delivered { apns_id, attempts } => {
                    tracing::debug!(enrollment_id = %id, apns_id = apns_id.as_deref(), attempts,
                        "push delivered");
                }
                PushOutcome::Permanent {
                    status,
                    reason,
                    apns_id,
                    ..
                } => {
                    let reason = reason.as_ref().map(|r| r.as_str().to_owned());
                    tracing::info!(enrollment_id = %id, apns_id = apns_id.as_deref(), status,
                        reason = reason.as_deref(), token_invalid = outcome.token_is_invalid(),
                        "push refused by APNs");
                    if outcome.token_is_invalid() {
                        dead.push((id, token, *status, reason));
                    } else if outcome.is_configuration_error() {
                        tracing::error!(
                            status,
                            reason = reason.as_deref(),
                            "APNs refuses the push certificate or topic: check the push certificate"
                        );
                    }
                }
                other => {
                    tracing::warn!(enrollment_id = %id, apns_id = other.apns_id(), outcome = %other,
                        "push failed");
                }
            }
        }
        if dead.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        let marked = tokio::task::spawn_blocking(move || {
            for (id, token, status, reason) in dead {
                let current = store.enrollment(&id)?.and_then(|e| e.push_token);
                if current.as_ref() == Some(&token) {
                    invalid_token::mark(store.as_ref(), &id, status, reason.as_deref(), now)?;
                    tracing::info!(enrollment_id = %id,
                        "push token marked invalid: no pushes until the next TokenUpdate");
                }
            }
            Ok::<_, StoreError>(())
        })
        .await;
        match marked {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "marking a push token invalid failed"),
            Err(error) => tracing::error!(%error, "marking a push token invalid failed"),
        }
    }

    /// Sends coalesced pushes until `stop` turns true.
    pub async fn run_dispatch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                _ = stop.changed() => return,
            }
            tokio::time::sleep(self.config.debounce).await;
            let ids: Vec<EnrollmentId> = lock(&self.pending).drain().collect();
            if !ids.is_empty() {
                self.send(ids).await;
            }
        }
    }

    /// Re-pushes channels that did not answer (see the module docs) every
    /// [`PushConfig::repush_interval`], and repeats the certificate expiry warning daily, until
    /// `stop` turns true.
    pub async fn run_repush(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // `interval` panics on zero; a configured zero means "as often as is sane".
        let every = self.config.repush_interval.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let now = SystemTime::now();
            self.check_expiry(now);
            let n = self.repush_once(now).await;
            if n > 0 {
                tracing::info!(channels = n, "re-pushed channels with unanswered commands");
            }
        }
    }

    fn check_expiry(&self, now: SystemTime) {
        let Some(active) = self.active() else {
            return;
        };
        self.update_days_left(&active.certificate, now);
        let mut last = lock(&self.last_expiry_log);
        let due =
            last.is_none_or(|t| now.duration_since(t).unwrap_or_default() >= EXPIRY_LOG_EVERY);
        if due {
            certificate::log_expiry(&active.certificate, now);
            *last = Some(now);
        }
    }

    /// One re-push round at `now`; returns how many channels were pushed.
    pub async fn repush_once(&self, now: SystemTime) -> usize {
        if self.active().is_none() {
            return 0;
        }
        let last_push = lock(&self.last_push).clone();
        let interval = self.config.repush_interval;
        let store = Arc::clone(&self.store);
        let due = tokio::task::spawn_blocking(move || {
            let mut due = Vec::new();
            for e in store.enrollments()? {
                if !e.enabled || e.push_token.is_none() {
                    continue;
                }
                if !repush_due(last_push.get(&e.id).copied(), e.last_seen, now, interval) {
                    continue;
                }
                if store.list(&e.id)?.iter().any(|r| r.state.is_queued()) {
                    due.push(e.id);
                }
            }
            Ok::<_, StoreError>(due)
        })
        .await;
        let due = match due {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => {
                tracing::warn!(%error, "re-push scan failed");
                return 0;
            }
            Err(error) => {
                tracing::warn!(%error, "re-push worker failed");
                return 0;
            }
        };
        if due.is_empty() {
            return 0;
        }
        let n = self.send(due).await;
        self.metrics.repushed(u64::try_from(n).unwrap_or(u64::MAX));
        n
    }
}

impl PushSink for PushService {
    fn commands_enqueued(&self, channels: &[EnrollmentId]) {
        if self.active().is_none() {
            for id in channels {
                tracing::debug!(enrollment_id = %id, "push not sent: no push certificate configured");
            }
            return;
        }
        let merged = {
            let mut pending = lock(&self.pending);
            channels
                .iter()
                .filter(|id| !pending.insert((*id).clone()))
                .count()
        };
        if merged > 0 {
            self.metrics
                .coalesced(u64::try_from(merged).unwrap_or(u64::MAX));
        }
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn an_unanswered_push_suppresses_new_pushes_until_seen_or_an_interval_passes() {
        let interval = Duration::from_secs(300);
        // Never pushed: push.
        assert!(!push_outstanding(None, None, at(1_000), interval));
        // Pushed at 1 s, never seen: outstanding until the interval has passed.
        assert!(push_outstanding(Some(at(1_000)), None, at(2_000), interval));
        assert!(!push_outstanding(
            Some(at(1_000)),
            None,
            at(301_000),
            interval
        ));
        // Seen before the push: still outstanding; seen after it: answered, push again.
        assert!(push_outstanding(
            Some(at(1_000)),
            Some(500),
            at(2_000),
            interval
        ));
        assert!(!push_outstanding(
            Some(at(1_000)),
            Some(1_500),
            at(2_000),
            interval
        ));
    }

    #[test]
    fn repush_only_when_unanswered_for_an_interval() {
        let every = Duration::from_secs(60);
        // Pushed at 100 s, not seen since: due after one interval, not before.
        assert!(!repush_due(
            Some(at(100_000)),
            Some(50_000),
            at(130_000),
            every
        ));
        assert!(repush_due(
            Some(at(100_000)),
            Some(50_000),
            at(160_000),
            every
        ));
        // Seen after the push: the device checked in, no re-push.
        assert!(!repush_due(
            Some(at(100_000)),
            Some(101_000),
            at(500_000),
            every
        ));
        // Never pushed on this run: due once not seen for an interval.
        assert!(repush_due(None, Some(0), at(60_000), every));
        assert!(!repush_due(None, Some(30_000), at(60_000), every));
        assert!(repush_due(None, None, at(1), every));
    }
}

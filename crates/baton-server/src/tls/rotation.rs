//! Keeping the served certificate valid while the server runs.
//!
//! The decisions are plain functions of the certificate and `now`: [`renewal_due`] (a
//! certificate Baton makes is renewed when less than a third of its validity remains) and
//! [`ExpiryReporter`] (when to warn that the served certificate is about to expire). Where a new
//! certificate comes from is a [`CertificateSource`]: the built-in CA
//! (`crate::enrollment::server_certificate::IssuedByBuiltInCa`), a self-signed certificate
//! ([`SelfSigned`]), or the operator's PEM files ([`OperatorFiles`], re-read when they change;
//! Baton cannot renew those, it only warns). [`run`] drives them: every check interval, and at
//! once when asked to reload (SIGHUP in `baton serve`), it asks the source and swaps the
//! [`RotatingCertificate`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::{RotatingCertificate, ServedCertificate, TlsError, TlsIdentity};
use crate::metrics::Metrics;

/// A served certificate with less than this left is warned about (daily, and on every change).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often an unchanged expiry warning is repeated.
const WARNING_REPEAT: Duration = Duration::from_secs(24 * 3600);

/// True when a certificate Baton made with `validity`, expiring at `not_after`, should be
/// replaced at `now`: less than a third of the validity is left (or it has expired).
pub fn renewal_due(not_after: SystemTime, validity: Duration, now: SystemTime) -> bool {
    match not_after.duration_since(now) {
        Ok(left) => left < validity / 3,
        Err(_) => true,
    }
}

/// Where new server certificates come from.
pub trait CertificateSource: Send + Sync + 'static {
    /// Why a refresh failed.
    type Error: std::error::Error + Send + Sync + 'static;

    /// What the source is, for logs.
    fn describe(&self) -> &'static str;

    /// True when Baton renews this certificate itself; false when only the operator can.
    fn renews_itself(&self) -> bool;

    /// The certificate to serve instead of `current` from `now` on, if any: a renewal when one
    /// is due, or the operator's files when they changed. Blocking (files, key generation).
    fn refresh(
        &self,
        current: &ServedCertificate,
        now: SystemTime,
    ) -> Result<Option<TlsIdentity>, Self::Error>;
}

/// The operator's certificate chain and key files (`--tls-cert`, `--tls-key`): served again
/// whenever their content changes. Baton cannot renew them.
#[derive(Debug, Clone)]
pub struct OperatorFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl OperatorFiles {
    /// The two PEM files.
    pub fn new(cert: &Path, key: &Path) -> Self {
        Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }
    }
}

impl CertificateSource for OperatorFiles {
    type Error = TlsError;

    fn describe(&self) -> &'static str {
        "the operator's certificate files"
    }

    fn renews_itself(&self) -> bool {
        false
    }

    fn refresh(
        &self,
        current: &ServedCertificate,
        _now: SystemTime,
    ) -> Result<Option<TlsIdentity>, TlsError> {
        let files = TlsIdentity::from_pem_files(&self.cert, &self.key)?;
        let served = current.identity();
        let unchanged = files.cert_chain == served.cert_chain
            && files.key.secret_der() == served.key.secret_der();
        Ok((!unchanged).then_some(files))
    }
}

/// A self-signed certificate in `<data>/tls/` (no built-in CA and no operator files),
/// generated again when renewal is due.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    data_dir: PathBuf,
    hosts: Vec<String>,
    validity: Duration,
}

impl SelfSigned {
    /// Certificates for `hosts`, valid for `validity`, kept in `<data_dir>/tls/`.
    pub fn new(data_dir: &Path, hosts: &[String], validity: Duration) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            hosts: hosts.to_vec(),
            validity,
        }
    }
}

impl CertificateSource for SelfSigned {
    type Error = TlsError;

    fn describe(&self) -> &'static str {
        "a self-signed certificate"
    }

    fn renews_itself(&self) -> bool {
        true
    }

    fn refresh(
        &self,
        current: &ServedCertificate,
        now: SystemTime,
    ) -> Result<Option<TlsIdentity>, TlsError> {
        if !renewal_due(current.not_after(), self.validity, now) {
            return Ok(None);
        }
        let identity =
            TlsIdentity::generate_self_signed(&self.data_dir, &self.hosts, self.validity, now)?;
        tracing::warn!(
            "the self-signed TLS certificate was renewed: clients that trusted or pinned the old \
             one must trust the new one (a built-in CA avoids this)"
        );
        Ok(Some(identity))
    }
}

/// How close the served certificate is to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryNotice {
    /// Past its NotAfter: clients refuse it.
    Expired,
    /// Within [`EXPIRY_WARNING`] of its NotAfter; the time left.
    ExpiresSoon(Duration),
}

/// Decides when to report the served certificate's expiry: at the first check, whenever the
/// certificate changed or expired, and otherwise once a day.
#[derive(Debug, Default)]
pub struct ExpiryReporter {
    /// Serial, notice and time of the last report.
    last: Option<(String, ExpiryNotice, SystemTime)>,
}

impl ExpiryReporter {
    /// The notice to log for `served` at `now`, if any.
    pub fn check(&mut self, served: &ServedCertificate, now: SystemTime) -> Option<ExpiryNotice> {
        let notice = match served.not_after().duration_since(now) {
            Err(_) => ExpiryNotice::Expired,
            Ok(left) if left < EXPIRY_WARNING => ExpiryNotice::ExpiresSoon(left),
            Ok(_) => return None,
        };
        if let Some((serial, last_notice, at)) = &self.last {
            let recent = now
                .duration_since(*at)
                .is_ok_and(|since| since < WARNING_REPEAT);
            let newly_expired =
                notice == ExpiryNotice::Expired && *last_notice != ExpiryNotice::Expired;
            if serial == served.serial_hex() && recent && !newly_expired {
                return None;
            }
        }
        self.last = Some((served.serial_hex().to_owned(), notice, now));
        Some(notice)
    }
}

/// What every rotation task shares: how often to check, where to record the NotAfter, the
/// reload signal and the server's stop signal.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// How often to check.
    pub check_every: Duration,
    /// Gets the served certificate's NotAfter.
    pub metrics: Arc<Metrics>,
    /// Notified to check at once (SIGHUP).
    pub reload: Arc<Notify>,
    /// The server's stop signal.
    pub stop: watch::Receiver<bool>,
}

impl Rotation {
    /// Serves `identity` and spawns [`run`] with `source`; returns the certificate the listener
    /// should resolve and the task.
    pub fn start<S: CertificateSource>(
        &self,
        identity: TlsIdentity,
        source: S,
    ) -> Result<(Arc<RotatingCertificate>, JoinHandle<()>), TlsError> {
        let served = Arc::new(RotatingCertificate::new(identity)?);
        self.metrics
            .set_tls_certificate_not_after(Some(served.current().not_after()));
        let task = tokio::spawn(run(source, Arc::clone(&served), self.clone()));
        Ok((served, task))
    }
}

/// Checks `served` every `rotation.check_every` (the first check at once) and whenever
/// `rotation.reload` is notified, until the stop signal: swaps in what `source` offers, keeps
/// the old certificate when that fails, records the NotAfter in the metrics, and warns as the
/// certificate nears its end.
pub async fn run<S: CertificateSource>(
    source: S,
    served: Arc<RotatingCertificate>,
    rotation: Rotation,
) {
    let Rotation {
        check_every,
        metrics,
        reload,
        mut stop,
    } = rotation;
    let source = Arc::new(source);
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reporter = ExpiryReporter::default();
    loop {
        let reload_requested = tokio::select! {
            _ = tick.tick() => false,
            () = reload.notified() => true,
            _ = stop.changed() => return,
        };
        let now = SystemTime::now();
        let current = served.current();
        let refreshed = {
            let source = Arc::clone(&source);
            let current = Arc::clone(&current);
            tokio::task::spawn_blocking(move || source.refresh(&current, now)).await
        };
        match refreshed {
            Ok(Ok(Some(identity))) => match served.replace(identity) {
                Ok(next) => tracing::info!(source = source.describe(),
                    serial = next.serial_hex(), previous_serial = current.serial_hex(),
                    not_after = %crate::timestamp::rfc3339(next.not_after()),
                    "serving a new TLS certificate to new connections"),
                Err(error) => tracing::warn!(source = source.describe(), %error,
                    serial = current.serial_hex(),
                    "the new TLS certificate cannot be served; keeping the current one"),
            },
            Ok(Ok(None)) if reload_requested => tracing::info!(
                source = source.describe(),
                serial = current.serial_hex(),
                "TLS reload: the certificate is unchanged"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::warn!(source = source.describe(), %error,
                serial = current.serial_hex(),
                "checking the TLS certificate failed; keeping the current one"),
            Err(error) => tracing::warn!(%error, "the TLS certificate check did not finish"),
        }
        let serving = served.current();
        metrics.set_tls_certificate_not_after(Some(serving.not_after()));
        let what_to_do = if source.renews_itself() {
            "Baton renews it itself, so renewal is failing: see the warnings above"
        } else {
            "Baton cannot renew it: replace the files, then send SIGHUP or wait for the next check"
        };
        match reporter.check(&serving, now) {
            Some(ExpiryNotice::Expired) => tracing::error!(source = source.describe(),
                serial = serving.serial_hex(),
                not_after = %crate::timestamp::rfc3339(serving.not_after()),
                "the served TLS certificate has expired: devices cannot connect. {what_to_do}"),
            Some(ExpiryNotice::ExpiresSoon(left)) => tracing::warn!(source = source.describe(),
                serial = serving.serial_hex(), days_left = left.as_secs() / 86_400,
                not_after = %crate::timestamp::rfc3339(serving.not_after()),
                "the served TLS certificate expires soon. {what_to_do}"),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn hosts() -> Vec<String> {
        vec!["mdm.example".to_owned(), "127.0.0.1".to_owned()]
    }

    fn self_signed(dir: &Path, validity: Duration, now: SystemTime) -> ServedCertificate {
        ServedCertificate::new(
            TlsIdentity::generate_self_signed(dir, &hosts(), validity, now).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn renewal_is_due_when_a_third_of_the_validity_is_left() {
        let now = SystemTime::UNIX_EPOCH + 1_000 * DAY;
        let validity = 300 * DAY;
        assert!(!renewal_due(now + 101 * DAY, validity, now));
        assert!(!renewal_due(now + 100 * DAY, validity, now));
        assert!(renewal_due(now + 99 * DAY, validity, now));
        assert!(renewal_due(now, validity, now));
        assert!(renewal_due(now - DAY, validity, now), "expired");
    }

    #[test]
    fn expiry_is_reported_on_change_and_daily() {
        let dir = tempfile::tempdir().unwrap();
        let start = SystemTime::now();
        let long = self_signed(dir.path(), 90 * DAY, start);
        let mut reporter = ExpiryReporter::default();
        assert_eq!(reporter.check(&long, start), None, "90 days left");
        let at = long.not_after() - 10 * DAY;
        assert_eq!(
            reporter.check(&long, at),
            Some(ExpiryNotice::ExpiresSoon(10 * DAY))
        );
        assert_eq!(reporter.check(&long, at + Duration::from_secs(3600)), None);
        assert!(matches!(
            reporter.check(&long, at + DAY),
            Some(ExpiryNotice::ExpiresSoon(_))
        ));
        let last_hour = long.not_after() - Duration::from_secs(3600);
        assert!(reporter.check(&long, last_hour).is_some());
        let expired = long.not_after() + Duration::from_secs(1);
        assert_eq!(
            reporter.check(&long, expired),
            Some(ExpiryNotice::Expired),
            "expiry is news even an hour after the last warning"
        );
        assert_eq!(
            reporter.check(&long, expired + Duration::from_secs(60)),
            None
        );
        assert_eq!(
            reporter.check(&long, expired + DAY),
            Some(ExpiryNotice::Expired)
        );
        let later = expired + DAY;
        // Another certificate is reported at once.
        let other = self_signed(dir.path(), 20 * DAY, start);
        assert!(matches!(
            reporter.check(&other, later + DAY),
            Some(ExpiryNotice::Expired)
        ));
    }

    #[test]
    fn operator_files_are_served_again_only_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let current = self_signed(dir.path(), 30 * DAY, now);
        let cert = dir.path().join("tls").join(super::super::SERVER_CERT_FILE);
        let key = dir.path().join("tls").join(super::super::SERVER_KEY_FILE);
        let files = OperatorFiles::new(&cert, &key);
        assert!(!files.renews_itself());
        assert!(files.refresh(&current, now).unwrap().is_none());
        // The operator installs a new certificate (written where the files are).
        let renewed = self_signed(dir.path(), 90 * DAY, now);
        let offered = files.refresh(&current, now).unwrap().unwrap();
        assert_eq!(offered.cert_chain, renewed.identity().cert_chain);
        // A half-written file is an error; the caller keeps serving what it has.
        std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nAAAA").unwrap();
        assert!(files.refresh(&renewed, now).is_err());
    }

    #[test]
    fn self_signed_certificates_are_renewed_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let validity = 30 * DAY;
        let current = self_signed(dir.path(), validity, now);
        let source = SelfSigned::new(dir.path(), &hosts(), validity);
        assert!(source.refresh(&current, now + 19 * DAY).unwrap().is_none());
        let renewed = source.refresh(&current, now + 21 * DAY).unwrap().unwrap();
        let renewed = ServedCertificate::new(renewed).unwrap();
        assert_ne!(renewed.serial_hex(), current.serial_hex());
        assert!(renewed.not_after() > current.not_after());
        let on_disk = TlsIdentity::from_pem_files(
            &dir.path().join("tls").join(super::super::SERVER_CERT_FILE),
            &dir.path().join("tls").join(super::super::SERVER_KEY_FILE),
        )
        .unwrap();
        assert_eq!(on_disk.cert_chain, renewed.identity().cert_chain);
    }
}

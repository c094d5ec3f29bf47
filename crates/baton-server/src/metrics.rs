//! Prometheus metrics from plain atomics: requests by endpoint and status, device refusals by
//! reason, check-in latency histograms, queue depth, webhook counters, the device identity
//! gauges the renewal pass sets (identities expiring soon or expired, renewals by state) and the
//! TLS certificate's remaining lifetime. Recording is a few relaxed atomic adds;
//! [`Metrics::render`] writes the text exposition format on scrape.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::enrollment::renewal_record::RenewalState;

/// The endpoints requests are counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `PUT /mdm/checkin`.
    Checkin,
    /// `PUT /mdm/connect`.
    Connect,
    /// `/api/v1/...`.
    Api,
    /// `/healthz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// `/scep`.
    Scep,
    /// `GET /mdm/enroll` and `/mdm/trust`.
    Enroll,
    /// The portal's pages: `/portal/{token}`, `/portal/session/{secret}`, `…/stay` (GET).
    PortalPage,
    /// `POST /portal/{token}/sign-in`.
    PortalSignIn,
    /// `/portal/{token}/stay` (the prompt and its answer).
    PortalStay,
    /// `…/progress` and `…/signed-out`.
    PortalProgress,
    /// `POST …/sign-out`.
    PortalSignOut,
    /// `/portal/assets/…`.
    PortalAsset,
    /// Anything else (including unknown paths).
    Other,
}

impl Endpoint {
    const ALL: [Endpoint; 14] = [
        Endpoint::Checkin,
        Endpoint::Connect,
        Endpoint::Api,
        Endpoint::Health,
        Endpoint::Metrics,
        Endpoint::Scep,
        Endpoint::Enroll,
        Endpoint::PortalPage,
        Endpoint::PortalSignIn,
        Endpoint::PortalStay,
        Endpoint::PortalProgress,
        Endpoint::PortalSignOut,
        Endpoint::PortalAsset,
        Endpoint::Other,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Checkin => "checkin",
            Endpoint::Connect => "connect",
            Endpoint::Api => "api",
            Endpoint::Health => "healthz",
            Endpoint::Metrics => "metrics",
            Endpoint::Scep => "scep",
            Endpoint::Enroll => "enroll",
            Endpoint::PortalPage => "portal_page",
            Endpoint::PortalSignIn => "portal_sign_in",
            Endpoint::PortalStay => "portal_stay",
            Endpoint::PortalProgress => "portal_progress",
            Endpoint::PortalSignOut => "portal_sign_out",
            Endpoint::PortalAsset => "portal_asset",
            Endpoint::Other => "other",
        }
    }

    /// The endpoint of a request path.
    pub fn of_path(path: &str) -> Self {
        match path {
            "/mdm/checkin" => Endpoint::Checkin,
            "/mdm/connect" => Endpoint::Connect,
            "/healthz" | "/readyz" => Endpoint::Health,
            "/metrics" => Endpoint::Metrics,
            p if p.starts_with("/api/") => Endpoint::Api,
            p if p.starts_with("/scep") => Endpoint::Scep,
            "/mdm/enroll" | "/mdm/trust" => Endpoint::Enroll,
            p if p.starts_with("/portal/") => Self::of_portal_path(p),
            _ => Endpoint::Other,
        }
    }

    /// A `/portal/...` path by its last segment (tokens and secrets are never labels).
    fn of_portal_path(path: &str) -> Self {
        let rest = &path["/portal/".len()..];
        if rest.starts_with("assets/") {
            return Endpoint::PortalAsset;
        }
        let rest = rest.strip_prefix("session/").unwrap_or(rest);
        match rest.split_once('/').map(|(_, tail)| tail) {
            None if !rest.is_empty() => Endpoint::PortalPage,
            Some("sign-in") => Endpoint::PortalSignIn,
            Some("stay") => Endpoint::PortalStay,
            Some("progress" | "signed-out") => Endpoint::PortalProgress,
            Some("sign-out") => Endpoint::PortalSignOut,
            _ => Endpoint::Other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Status codes counted individually; everything else is counted as `other`.
const STATUSES: [u16; 16] = [
    200, 201, 204, 400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 500, 503,
];
const STATUS_SLOTS: usize = STATUSES.len() + 1;

/// Upper bounds of the latency histogram buckets, in microseconds.
const LATENCY_BOUNDS_US: [u64; 12] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000, 5_000_000,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = LATENCY_BOUNDS_US.iter().position(|bound| us <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, label: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BOUNDS_US.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{{label},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{label},le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{label}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{label}}} {count}");
    }
}

/// Why a device request was refused, for the refusal counter.
pub const REFUSAL_REASONS: [&str; 12] = [
    "identity",
    "re_enrollment_refused",
    "enrollment_token_refused",
    "malformed_message",
    "certificate_not_bound",
    "certificate_bound_elsewhere",
    "certificate_revoked",
    "unknown_enrollment",
    "body_rejected",
    "invalid_channel",
    "store",
    "internal",
];

/// What the retention task prunes, for `baton_retention_pruned_total{kind}`.
pub const RETENTION_KINDS: [&str; 5] = [
    "command_results",
    "commands",
    "session_log",
    "sign_in_log",
    "webhook_dead_letters",
];

/// All server metrics. Share one behind an `Arc`.
#[derive(Debug)]
pub struct Metrics {
    requests: [[AtomicU64; STATUS_SLOTS]; Endpoint::ALL.len()],
    refusals: [AtomicU64; REFUSAL_REASONS.len()],
    checkin_latency: Histogram,
    connect_latency: Histogram,
    queue_depth: AtomicI64,
    webhook_delivered: AtomicU64,
    webhook_failed_attempts: AtomicU64,
    webhook_pending: AtomicI64,
    webhook_dead_lettered: AtomicU64,
    webhook_dead_letters: AtomicI64,
    webhook_truncated: AtomicU64,
    orphan_reports: AtomicU64,
    orphan_reports_dropped: AtomicU64,
    reports_truncated: AtomicU64,
    retention_pruned: [AtomicU64; RETENTION_KINDS.len()],
    identity_warning_days: AtomicU64,
    identities_expiring: AtomicI64,
    identities_expired: AtomicI64,
    renewals: [AtomicI64; RenewalState::ALL.len()],
    identity_renewal_refusals: AtomicU64,
    /// Unix seconds of the served TLS certificate's NotAfter; `i64::MIN` without TLS.
    tls_not_after: AtomicI64,
    /// Open, refused and timed-out connections, kept by the listener.
    connections: Arc<crate::tls::ConnectionCounters>,
}

/// What the identity-renewal pass saw, for the gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdentityGauges {
    /// The warning window.
    pub warning: Duration,
    /// Enabled devices whose identity expires within the window.
    pub expiring: usize,
    /// Enabled devices whose identity has expired.
    pub expired: usize,
    /// Renewal records by state, in [`RenewalState::ALL`] order.
    pub renewals: [usize; RenewalState::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            refusals: std::array::from_fn(|_| AtomicU64::new(0)),
            checkin_latency: Histogram::default(),
            connect_latency: Histogram::default(),
            queue_depth: AtomicI64::new(0),
            webhook_delivered: AtomicU64::new(0),
            webhook_failed_attempts: AtomicU64::new(0),
            webhook_pending: AtomicI64::new(0),
            webhook_dead_lettered: AtomicU64::new(0),
            webhook_dead_letters: AtomicI64::new(0),
            webhook_truncated: AtomicU64::new(0),
            orphan_reports: AtomicU64::new(0),
            orphan_reports_dropped: AtomicU64::new(0),
            reports_truncated: AtomicU64::new(0),
            retention_pruned: std::array::from_fn(|_| AtomicU64::new(0)),
            identity_warning_days: AtomicU64::new(7),
            identities_expiring: AtomicI64::new(0),
            identities_expired: AtomicI64::new(0),
            renewals: std::array::from_fn(|_| AtomicI64::new(0)),
            identity_renewal_refusals: AtomicU64::new(0),
            tls_not_after: AtomicI64::new(i64::MIN),
            connections: Arc::default(),
        }
    }
}

impl Metrics {
    /// The connection counters the listener keeps (shared, for the metrics).
    pub fn connection_counters(&self) -> Arc<crate::tls::ConnectionCounters> {
        Arc::clone(&self.connections)
    }

    /// Counts one answered request.
    pub fn record_request(&self, endpoint: Endpoint, status: u16) {
        let slot = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        self.requests[endpoint.index()][slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted so far for an endpoint and status (tests, diagnostics).
    pub fn requests(&self, endpoint: Endpoint, status: u16) -> u64 {
        STATUSES
            .iter()
            .position(|s| *s == status)
            .map_or(0, |slot| {
                self.requests[endpoint.index()][slot].load(Ordering::Relaxed)
            })
    }

    /// Counts one refused device request; `reason` is one of [`REFUSAL_REASONS`].
    pub fn record_refusal(&self, reason: &'static str) {
        if let Some(i) = REFUSAL_REASONS.iter().position(|r| *r == reason) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records the handling time of a device request on `endpoint`.
    pub fn observe_device_latency(&self, endpoint: Endpoint, elapsed: Duration) {
        match endpoint {
            Endpoint::Checkin => self.checkin_latency.observe(elapsed),
            Endpoint::Connect => self.connect_latency.observe(elapsed),
            _ => {}
        }
    }

    /// Sets the number of queued commands (at start-up, from the store).
    pub fn set_queue_depth(&self, depth: i64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    /// Adjusts the number of queued commands.
    pub fn add_queue_depth(&self, delta: i64) {
        self.queue_depth.fetch_add(delta, Ordering::Relaxed);
    }

    /// The current queue depth.
    pub fn queue_depth(&self) -> i64 {
        self.queue_depth.load(Ordering::Relaxed)
    }

    /// Counts a delivered webhook event.
    pub fn webhook_delivered(&self) {
        self.webhook_delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed webhook delivery attempt.
    pub fn webhook_attempt_failed(&self) {
        self.webhook_failed_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of webhook events waiting in the outbox.
    pub fn set_webhook_pending(&self, pending: i64) {
        self.webhook_pending.store(pending, Ordering::Relaxed);
    }

    /// The number of webhook events waiting in the outbox, as last set.
    pub fn webhook_pending(&self) -> i64 {
        self.webhook_pending.load(Ordering::Relaxed)
    }

    /// Counts an event moved to the dead-letter list.
    pub fn webhook_dead_lettered(&self) {
        self.webhook_dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of events in the dead-letter list.
    pub fn set_webhook_dead_letters(&self, n: i64) {
        self.webhook_dead_letters.store(n, Ordering::Relaxed);
    }

    /// Counts an event whose payload was cut to the size bound.
    pub fn webhook_truncated(&self) {
        self.webhook_truncated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stored orphan report and the older ones of its device it pushed out.
    pub fn orphan_report_stored(&self, dropped: u32) {
        self.orphan_reports.fetch_add(1, Ordering::Relaxed);
        self.orphan_reports_dropped
            .fetch_add(u64::from(dropped), Ordering::Relaxed);
    }

    /// Counts a report whose ErrorChain or stored body was cut to its bound.
    pub fn report_truncated(&self) {
        self.reports_truncated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts rows the retention task deleted; `kind` is one of [`RETENTION_KINDS`].
    pub fn retention_pruned(&self, kind: &'static str, n: u64) {
        if let Some(i) = RETENTION_KINDS.iter().position(|k| *k == kind) {
            self.retention_pruned[i].fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Counts a renewal profile a device refused to install in place of its MDM profile (12012).
    pub fn identity_renewal_refused(&self) {
        self.identity_renewal_refusals
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the device identity gauges (after each renewal pass).
    pub fn set_identity_gauges(&self, gauges: &IdentityGauges) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.identity_warning_days
            .store(gauges.warning.as_secs() / 86_400, Ordering::Relaxed);
        self.identities_expiring
            .store(gauge(gauges.expiring), Ordering::Relaxed);
        self.identities_expired
            .store(gauge(gauges.expired), Ordering::Relaxed);
        for (slot, n) in self.renewals.iter().zip(gauges.renewals) {
            slot.store(gauge(n), Ordering::Relaxed);
        }
    }

    /// Records the NotAfter of the TLS certificate being served (`None`: no TLS).
    pub fn set_tls_certificate_not_after(&self, not_after: Option<SystemTime>) {
        let unix = not_after.map_or(i64::MIN, |t| match t.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        });
        self.tls_not_after.store(unix, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str(
            "# HELP baton_http_requests_total HTTP requests answered, by endpoint and status.\n",
        );
        out.push_str("# TYPE baton_http_requests_total counter\n");
        for endpoint in Endpoint::ALL {
            let row = &self.requests[endpoint.index()];
            for (slot, counter) in row.iter().enumerate() {
                let value = counter.load(Ordering::Relaxed);
                if value == 0 {
                    continue;
                }
                let status = STATUSES
                    .get(slot)
                    .map_or_else(|| "other".to_owned(), u16::to_string);
                let _ = writeln!(
                    out,
                    "baton_http_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {value}",
                    endpoint.label()
                );
            }
        }
        out.push_str("# HELP baton_device_refusals_total Device requests refused, by reason.\n");
        out.push_str("# TYPE baton_device_refusals_total counter\n");
        for (reason, counter) in REFUSAL_REASONS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "baton_device_refusals_total{{reason=\"{reason}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP baton_device_request_duration_seconds Time to handle a check-in or command-channel request.\n",
        );
        out.push_str("# TYPE baton_device_request_duration_seconds histogram\n");
        self.checkin_latency.render(
            &mut out,
            "baton_device_request_duration_seconds",
            "endpoint=\"checkin\"",
        );
        self.connect_latency.render(
            &mut out,
            "baton_device_request_duration_seconds",
            "endpoint=\"connect\"",
        );
        out.push_str(
            "# HELP baton_command_queue_depth Commands queued and not yet answered finally.\n",
        );
        out.push_str("# TYPE baton_command_queue_depth gauge\n");
        let _ = writeln!(out, "baton_command_queue_depth {}", self.queue_depth());
        out.push_str("# HELP baton_webhook_events_delivered_total Webhook events delivered.\n");
        out.push_str("# TYPE baton_webhook_events_delivered_total counter\n");
        let _ = writeln!(
            out,
            "baton_webhook_events_delivered_total {}",
            self.webhook_delivered.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_webhook_failed_attempts_total Failed webhook delivery attempts.\n",
        );
        out.push_str("# TYPE baton_webhook_failed_attempts_total counter\n");
        let _ = writeln!(
            out,
            "baton_webhook_failed_attempts_total {}",
            self.webhook_failed_attempts.load(Ordering::Relaxed)
        );
        out.push_str("# HELP baton_webhook_outbox_pending Webhook events waiting for delivery.\n");
        out.push_str("# TYPE baton_webhook_outbox_pending gauge\n");
        let _ = writeln!(
            out,
            "baton_webhook_outbox_pending {}",
            self.webhook_pending.load(Ordering::Relaxed)
        );
        let counters = [
            (
                "baton_webhook_events_dead_lettered_total",
                "Webhook events moved to the dead-letter list (refused or out of tries).",
                self.webhook_dead_lettered.load(Ordering::Relaxed),
            ),
            (
                "baton_webhook_events_truncated_total",
                "Webhook events whose payload was cut to the size bound.",
                self.webhook_truncated.load(Ordering::Relaxed),
            ),
            (
                "baton_orphan_reports_total",
                "Reports about commands the device was never sent, stored as orphans.",
                self.orphan_reports.load(Ordering::Relaxed),
            ),
            (
                "baton_orphan_reports_dropped_total",
                "Older orphan reports deleted to keep each device within its bound.",
                self.orphan_reports_dropped.load(Ordering::Relaxed),
            ),
            (
                "baton_device_reports_truncated_total",
                "Device reports whose ErrorChain or stored body was cut to its bound.",
                self.reports_truncated.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out.push_str("# HELP baton_webhook_dead_letters Webhook events in the dead-letter list.\n");
        out.push_str("# TYPE baton_webhook_dead_letters gauge\n");
        let _ = writeln!(
            out,
            "baton_webhook_dead_letters {}",
            self.webhook_dead_letters.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_retention_pruned_total Rows deleted by the retention task, by kind.\n",
        );
        out.push_str("# TYPE baton_retention_pruned_total counter\n");
        for (kind, n) in RETENTION_KINDS.iter().zip(&self.retention_pruned) {
            let _ = writeln!(
                out,
                "baton_retention_pruned_total{{kind=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP baton_device_identities_expiring Enabled devices whose identity certificate \
             (built-in CA) expires within the warning window.\n",
        );
        out.push_str("# TYPE baton_device_identities_expiring gauge\n");
        let _ = writeln!(
            out,
            "baton_device_identities_expiring{{within=\"{}d\"}} {}",
            self.identity_warning_days.load(Ordering::Relaxed),
            self.identities_expiring.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_device_identities_expired Enabled devices whose identity certificate \
             (built-in CA) has expired: they can no longer reach the server.\n",
        );
        out.push_str("# TYPE baton_device_identities_expired gauge\n");
        let _ = writeln!(
            out,
            "baton_device_identities_expired {}",
            self.identities_expired.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_identity_renewals Devices by the state of their identity renewal.\n",
        );
        out.push_str("# TYPE baton_identity_renewals gauge\n");
        for (state, n) in RenewalState::ALL.iter().zip(&self.renewals) {
            let _ = writeln!(
                out,
                "baton_identity_renewals{{state=\"{state}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP baton_identity_renewal_refusals_total Renewal profiles devices refused to \
             install in place of their MDM profile (iOS 12012: it differs from the profile they \
             enrolled with).\n",
        );
        out.push_str("# TYPE baton_identity_renewal_refusals_total counter\n");
        let _ = writeln!(
            out,
            "baton_identity_renewal_refusals_total {}",
            self.identity_renewal_refusals.load(Ordering::Relaxed)
        );
        out.push_str("# HELP baton_connections_open Client connections open now.\n");
        out.push_str("# TYPE baton_connections_open gauge\n");
        let _ = writeln!(out, "baton_connections_open {}", self.connections.open());
        out.push_str(
            "# HELP baton_connections_refused_total Connections closed at accept because the connection cap was reached.\n",
        );
        out.push_str("# TYPE baton_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "baton_connections_refused_total {}",
            self.connections.refused()
        );
        out.push_str(
            "# HELP baton_connections_idle_closed_total Connections closed after moving no byte for the idle timeout.\n",
        );
        out.push_str("# TYPE baton_connections_idle_closed_total counter\n");
        let _ = writeln!(
            out,
            "baton_connections_idle_closed_total {}",
            self.connections.timed_out()
        );
        let not_after = self.tls_not_after.load(Ordering::Relaxed);
        if not_after != i64::MIN {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            out.push_str(
                "# HELP baton_tls_certificate_expiry_seconds Seconds until the served TLS certificate expires (negative once expired).\n",
            );
            out.push_str("# TYPE baton_tls_certificate_expiry_seconds gauge\n");
            let _ = writeln!(
                out,
                "baton_tls_certificate_expiry_seconds {}",
                not_after.saturating_sub(now)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn portal_and_enrollment_paths_have_their_own_labels() {
        for (path, label) in [
            ("/portal/tok", "portal_page"),
            ("/portal/session/sec", "portal_page"),
            ("/portal/tok/sign-in", "portal_sign_in"),
            ("/portal/tok/stay", "portal_stay"),
            ("/portal/tok/progress", "portal_progress"),
            ("/portal/session/sec/progress", "portal_progress"),
            ("/portal/tok/signed-out", "portal_progress"),
            ("/portal/tok/sign-out", "portal_sign_out"),
            ("/portal/session/sec/sign-out", "portal_sign_out"),
            ("/portal/assets/live.js", "portal_asset"),
            ("/portal/tok/unknown", "other"),
            ("/portal/", "other"),
            ("/mdm/enroll", "enroll"),
            ("/mdm/trust", "enroll"),
            ("/nope", "other"),
        ] {
            assert_eq!(Endpoint::of_path(path).label(), label, "{path}");
        }
    }

    use super::*;

    #[test]
    fn requests_are_counted_by_endpoint_and_status() {
        let m = Metrics::default();
        m.record_request(Endpoint::Checkin, 200);
        m.record_request(Endpoint::Checkin, 200);
        m.record_request(Endpoint::Connect, 400);
        m.record_request(Endpoint::Api, 418);
        assert_eq!(m.requests(Endpoint::Checkin, 200), 2);
        assert_eq!(m.requests(Endpoint::Connect, 400), 1);
        let text = m.render();
        assert!(text.contains("baton_http_requests_total{endpoint=\"checkin\",status=\"200\"} 2"));
        assert!(text.contains("baton_http_requests_total{endpoint=\"api\",status=\"other\"} 1"));
    }

    #[test]
    fn tls_certificate_expiry_is_rendered_only_with_tls() {
        let m = Metrics::default();
        assert!(!m.render().contains("baton_tls_certificate_expiry_seconds"));
        m.set_tls_certificate_not_after(Some(SystemTime::now() + Duration::from_secs(7200)));
        let text = m.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("baton_tls_certificate_expiry_seconds "))
            .unwrap();
        let left: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((7190..=7200).contains(&left), "{line}");
        m.set_tls_certificate_not_after(Some(SystemTime::now() - Duration::from_secs(60)));
        assert!(
            m.render()
                .contains("baton_tls_certificate_expiry_seconds -6")
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe_device_latency(Endpoint::Checkin, Duration::from_micros(100));
        m.observe_device_latency(Endpoint::Checkin, Duration::from_millis(3));
        m.observe_device_latency(Endpoint::Checkin, Duration::from_secs(60));
        let text = m.render();
        assert!(text.contains(
            "baton_device_request_duration_seconds_bucket{endpoint=\"checkin\",le=\"0.00025\"} 1"
        ));
        assert!(text.contains(
            "baton_device_request_duration_seconds_bucket{endpoint=\"checkin\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "baton_device_request_duration_seconds_bucket{endpoint=\"checkin\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("baton_device_request_duration_seconds_count{endpoint=\"checkin\"} 3")
        );
    }

    #[test]
    fn identity_gauges_are_rendered_with_the_window_and_states() {
        let m = Metrics::default();
        m.set_identity_gauges(&IdentityGauges {
            warning: Duration::from_secs(14 * 86_400),
            expiring: 3,
            expired: 1,
            renewals: [2, 0, 1, 5, 1],
        });
        let text = m.render();
        assert!(text.contains("baton_device_identities_expiring{within=\"14d\"} 3"));
        assert!(text.contains("baton_device_identities_expired 1"));
        assert!(text.contains("baton_identity_renewals{state=\"queued\"} 2"));
        assert!(text.contains("baton_identity_renewals{state=\"completed\"} 5"));
    }

    #[test]
    fn endpoints_are_classified_by_path() {
        assert_eq!(Endpoint::of_path("/mdm/checkin"), Endpoint::Checkin);
        assert_eq!(Endpoint::of_path("/api/v1/devices"), Endpoint::Api);
        assert_eq!(Endpoint::of_path("/scep/pkiclient.exe"), Endpoint::Scep);
        assert_eq!(Endpoint::of_path("/nope"), Endpoint::Other);
    }
}

//! The load benchmark behind `baton-sim bench`: named scenarios run against any MDM server URL
//! that speaks the protocol, each producing a [`ScenarioReport`] (printed as a table and saved
//! as JSON).
//!
//! - [`checkin`]: pre-signed Idle reports on the command channel over many keep-alive
//!   connections (requests/s, latency percentiles, errors).
//! - [`command_cycle`]: one command queued to every device through the admin API, then every
//!   device fetches and acknowledges it: time to 100%.
//! - [`enroll`]: SCEP enrollments per second (keys and requests prepared before the clock).
//! - [`sign_in_to_ready`]: N people sign in on N devices through the portal; per-device time
//!   from the sign-in POST until the progress page says ready.
//! - [`shift_change`]: every device signed in, then each person signs out and the next one
//!   signs in: time until every device is ready for its new person, and until every sign-out
//!   was verified clean.
//! - [`sign_in_flow`] and [`population`]: the person-and-device portal flows and the users and
//!   catalog the two sign-in scenarios create.
//! - [`not_available`]: the report of a scenario a server cannot run.
//!
//! CPU is read from `/proc/<pid>/stat` (user + system time) for the simulator itself and,
//! when given, the server process, so each report states CPU per request for both.

pub mod checkin;
pub mod command_cycle;
pub mod cpu;
pub mod enroll;
pub mod latency;
pub mod population;
pub mod shift_change;
pub mod sign_in_flow;
pub mod sign_in_to_ready;

use std::time::Duration;

use serde::Serialize;

pub use cpu::{CpuSample, load_average};
pub use latency::LatencySummary;

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// `ok` or `not_available`.
    pub status: String,
    /// Server origin.
    pub server: String,
    /// Devices taking part.
    pub devices: usize,
    /// Concurrent connections or operations.
    pub concurrency: usize,
    /// Requests (or operations) completed, successful or not.
    pub requests: u64,
    /// Failed requests or operations.
    pub errors: u64,
    /// Measured wall-clock time, seconds.
    pub duration_s: f64,
    /// Successful requests (operations) per second.
    pub throughput_per_s: f64,
    /// Latency of one request or operation.
    pub latency: LatencySummary,
    /// CPU seconds the simulator used during the measurement.
    pub client_cpu_s: f64,
    /// CPU seconds the server process used, when its PID was given.
    pub server_cpu_s: Option<f64>,
    /// Simulator CPU per request, microseconds.
    pub client_cpu_per_request_us: f64,
    /// Server CPU per request, microseconds.
    pub server_cpu_per_request_us: Option<f64>,
    /// Client CPU divided by server CPU.
    pub client_to_server_cpu_ratio: Option<f64>,
    /// `/proc/loadavg` at the end (1, 5, 15 minutes).
    pub load_average: [f64; 3],
    /// Scenario-specific figures and remarks.
    pub notes: Vec<String>,
}

impl ScenarioReport {
    /// A report with CPU figures filled in from two samples.
    #[allow(clippy::too_many_arguments)]
    pub fn measured(
        scenario: &str,
        server: &str,
        devices: usize,
        concurrency: usize,
        requests: u64,
        errors: u64,
        elapsed: Duration,
        latency: LatencySummary,
        cpu_before: &CpuSample,
        cpu_after: &CpuSample,
    ) -> Self {
        let duration_s = elapsed.as_secs_f64();
        let ok = requests.saturating_sub(errors);
        let per_request = |cpu: f64| {
            if requests == 0 {
                0.0
            } else {
                cpu * 1e6 / requests as f64
            }
        };
        let client_cpu_s = cpu_after.client_s - cpu_before.client_s;
        let server_cpu_s = match (cpu_before.server_s, cpu_after.server_s) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Self {
            scenario: scenario.to_owned(),
            status: "ok".to_owned(),
            server: server.to_owned(),
            devices,
            concurrency,
            requests,
            errors,
            duration_s,
            throughput_per_s: if duration_s > 0.0 {
                ok as f64 / duration_s
            } else {
                0.0
            },
            latency,
            client_cpu_s,
            server_cpu_s,
            client_cpu_per_request_us: per_request(client_cpu_s),
            server_cpu_per_request_us: server_cpu_s.map(per_request),
            client_to_server_cpu_ratio: server_cpu_s.filter(|s| *s > 0.0).map(|s| client_cpu_s / s),
            load_average: load_average(),
            notes: Vec::new(),
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("scenario".into(), self.scenario.clone()),
            ("status".into(), self.status.clone()),
            ("server".into(), self.server.clone()),
        ];
        if self.status == "ok" {
            let opt = |v: Option<f64>, unit: &str| {
                v.map_or_else(
                    || "n/a (no --server-pid)".to_owned(),
                    |x| format!("{x:.2}{unit}"),
                )
            };
            rows.extend([
                ("devices".into(), self.devices.to_string()),
                ("concurrency".into(), self.concurrency.to_string()),
                ("requests".into(), self.requests.to_string()),
                ("errors".into(), self.errors.to_string()),
                ("duration".into(), format!("{:.2} s", self.duration_s)),
                (
                    "throughput".into(),
                    format!("{:.1} /s", self.throughput_per_s),
                ),
                (
                    "latency p50".into(),
                    format!("{:.2} ms", self.latency.p50_ms),
                ),
                (
                    "latency p99".into(),
                    format!("{:.2} ms", self.latency.p99_ms),
                ),
                (
                    "latency max".into(),
                    format!("{:.2} ms", self.latency.max_ms),
                ),
                ("client CPU".into(), format!("{:.2} s", self.client_cpu_s)),
                ("server CPU".into(), opt(self.server_cpu_s, " s")),
                (
                    "client CPU/req".into(),
                    format!("{:.1} us", self.client_cpu_per_request_us),
                ),
                (
                    "server CPU/req".into(),
                    opt(self.server_cpu_per_request_us, " us"),
                ),
                (
                    "client/server CPU".into(),
                    opt(self.client_to_server_cpu_ratio, ""),
                ),
                (
                    "load average".into(),
                    format!(
                        "{:.2} {:.2} {:.2}",
                        self.load_average[0], self.load_average[1], self.load_average[2]
                    ),
                ),
            ]);
        }
        for n in &self.notes {
            rows.push(("note".into(), n.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            out.push_str(&format!("  {k:<width$}  {v}\n"));
        }
        out
    }
}

/// The report of a scenario that cannot run yet, saying why.
pub fn not_available(scenario: &str, server: &str, why: &str) -> ScenarioReport {
    ScenarioReport {
        scenario: scenario.to_owned(),
        status: "not_available".to_owned(),
        server: server.to_owned(),
        devices: 0,
        concurrency: 0,
        requests: 0,
        errors: 0,
        duration_s: 0.0,
        throughput_per_s: 0.0,
        latency: LatencySummary::default(),
        client_cpu_s: 0.0,
        server_cpu_s: None,
        client_cpu_per_request_us: 0.0,
        server_cpu_per_request_us: None,
        client_to_server_cpu_ratio: None,
        load_average: load_average(),
        notes: vec![why.to_owned()],
    }
}

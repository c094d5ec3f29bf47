//! The `sign-in-to-ready` scenario: N people sign in on N signed-out devices through the
//! portal at once (bounded concurrency), each device processes what the server queued, and
//! each person's progress page reports ready. Reported per device: time from sending the
//! sign-in POST to the progress page saying ready (p50/p99/max), sign-ins per second, the POST
//! alone (credentials check included), and the server's own record of each session's
//! sign-in-to-ready time (`ready_at - started_at` in the session log).
//!
//! Setup (not timed): a [`population`](super::population) of N users with P profiles and A apps
//! each, and every device brought to the signed-out baseline with the sign-in web clip.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::ScenarioReport;
use super::cpu::CpuSample;
use super::latency::{Latencies, LatencySummary};
use super::population::{self, Population, PopulationSpec};
use super::sign_in_flow::{
    FlowSettings, SignInTiming, prepare_signed_out, progress_bar, sign_in_until_ready,
};
use crate::{AdminApi, Fleet, SimDevice, SimError};

/// Settings of the sign-in scenarios.
#[derive(Debug, Clone)]
pub struct SignInBench {
    /// Profile items each person gets.
    pub profiles: usize,
    /// App items each person gets.
    pub apps: usize,
    /// People signing in at once.
    pub concurrency: usize,
    /// The server's PID, for its CPU time.
    pub server_pid: Option<u32>,
    /// Show progress bars.
    pub progress: bool,
    /// The portal flow.
    pub flow: FlowSettings,
    /// Use only the first this many devices of the fleet (all when None).
    pub devices: Option<usize>,
}

impl SignInBench {
    /// How many of `fleet`'s devices take part.
    pub fn device_count(&self, fleet: &Fleet) -> usize {
        let all = fleet.devices().len();
        self.devices.map_or(all, |n| n.min(all))
    }
}

/// Sets up the population for `users` people and brings the fleet to the signed-out baseline.
pub(crate) async fn setup(
    devices: &mut [SimDevice],
    admin: &AdminApi,
    bench: &SignInBench,
    users: usize,
) -> Result<(Population, Vec<String>), SimError> {
    if devices.is_empty() {
        return Err(SimError::Admin("the fleet has no devices".into()));
    }
    let spec = PopulationSpec {
        users,
        profiles: bench.profiles,
        apps: bench.apps,
        import_batch: 100,
    };
    let bar = progress_bar(population::steps(&spec), "setup", bench.progress);
    let people = population::create(admin, &spec, || bar.inc(1)).await?;
    bar.finish_and_clear();
    for device in devices.iter_mut() {
        people.teach_app_store(device);
    }
    let forced = prepare_signed_out(
        devices,
        admin,
        &bench.flow,
        bench.concurrency,
        bench.progress,
    )
    .await?;
    let mut notes = vec![format!(
        "setup: {users} users (prefix {}), {} profiles + {} apps distributed to group {}",
        people.prefix, bench.profiles, bench.apps, people.group
    )];
    if forced > 0 {
        notes.push(format!(
            "setup: {forced} devices were still signed in and were signed out by the admin API"
        ));
    }
    Ok((people, notes))
}

/// Signs `users[i]` in on device `i` for every device, `concurrency` at a time. Returns each
/// device's result, in device order.
pub(crate) async fn sign_in_all(
    devices: &mut [SimDevice],
    users: &[(String, String)],
    flow: &FlowSettings,
    concurrency: usize,
    what: &str,
    progress: bool,
) -> Vec<Result<SignInTiming, SimError>> {
    let bar = progress_bar(devices.len(), what, progress);
    let mut results: Vec<(usize, Result<SignInTiming, SimError>)> =
        futures::stream::iter(devices.iter_mut().zip(users).enumerate())
            .map(|(i, (device, (user, password)))| {
                let bar = bar.clone();
                async move {
                    let r = sign_in_until_ready(device, user, password, flow).await;
                    bar.inc(1);
                    (i, r)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    bar.finish_and_clear();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

fn summary(durations: impl Iterator<Item = Duration>) -> LatencySummary {
    let mut l = Latencies::default();
    for d in durations {
        l.record(d);
    }
    l.summary()
}

/// `p50 / p99 / max` of a summary, for notes.
pub(crate) fn brief(s: &LatencySummary) -> String {
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n={})",
        s.p50_ms, s.p99_ms, s.max_ms, s.count
    )
}

/// The server's sign-in-to-ready times of the newest session of each of `udids`, from the
/// session log (`ready_at - started_at`), and how many sessions had none.
pub(crate) async fn server_ready_times(
    admin: &AdminApi,
    udids: &[String],
) -> Result<(LatencySummary, usize), SimError> {
    let mut l = Latencies::default();
    let mut missing = 0;
    for udid in udids {
        let sessions = admin.sessions(udid).await?;
        let last = sessions.last();
        match last.and_then(|s| Some((s["started_at"].as_u64()?, s["ready_at"].as_u64()?))) {
            Some((start, ready)) => l.record(Duration::from_millis(ready.saturating_sub(start))),
            None => missing += 1,
        }
    }
    Ok((l.summary(), missing))
}

/// Runs the scenario over every device of `fleet`.
pub async fn run(
    fleet: &mut Fleet,
    admin: &AdminApi,
    bench: &SignInBench,
) -> Result<ScenarioReport, SimError> {
    let n = bench.device_count(fleet);
    let server = fleet.server().to_owned();
    let devices = &mut fleet.devices_mut()[..n];
    let (people, mut notes) = setup(devices, admin, bench, n).await?;
    let cpu_before = CpuSample::now(bench.server_pid);
    let started = Instant::now();
    let results = sign_in_all(
        devices,
        &people.users,
        &bench.flow,
        bench.concurrency,
        "sign-in",
        bench.progress,
    )
    .await;
    let total = started.elapsed();
    let cpu_after = CpuSample::now(bench.server_pid);
    let ok: Vec<&SignInTiming> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let errors = (n - ok.len()) as u64;
    let mut report = ScenarioReport::measured(
        "sign-in-to-ready",
        &server,
        n,
        bench.concurrency,
        n as u64,
        errors,
        total,
        summary(ok.iter().map(|t| t.ready)),
        &cpu_before,
        &cpu_after,
    );
    report.notes.append(&mut notes);
    report.notes.push(
        "latency = per device, from sending the portal sign-in POST until the progress page \
         said ready (the device processed every command); throughput = sign-ins per second"
            .into(),
    );
    report.notes.push(format!(
        "sign-in POST alone (argon2id check + reconcile + enqueue + push notice): {}",
        brief(&summary(ok.iter().map(|t| t.post)))
    ));
    let commands: usize = ok.iter().map(|t| t.commands).sum();
    let sessions: usize = ok.iter().map(|t| t.sessions).sum();
    report.notes.push(format!(
        "commands processed per device: {:.1}; command-channel sessions per device: {:.2}",
        commands as f64 / ok.len().max(1) as f64,
        sessions as f64 / ok.len().max(1) as f64
    ));
    let udids: Vec<String> = devices.iter().map(|d| d.udid().to_owned()).collect();
    let (server_side, missing) = server_ready_times(admin, &udids).await?;
    report.notes.push(format!(
        "server session log, sign-in to ready_at: {}; {missing} sessions without ready_at",
        brief(&server_side)
    ));
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        report.notes.push(format!("first error: {e}"));
    }
    Ok(report)
}

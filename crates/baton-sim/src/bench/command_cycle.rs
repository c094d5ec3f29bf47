//! The `command-cycle` scenario: one command queued to every device of the fleet through the
//! admin API, then every device is "pushed" (connects) and fetches, answers and empties its
//! queue. Reported: time from the enqueue to the last device done (time to 100%), per-device
//! completion percentiles, and how many devices acknowledged the command.

use std::sync::Arc;
use std::time::Instant;

use baton_proto::Status;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value as Json;
use tokio::sync::Semaphore;

use super::ScenarioReport;
use super::cpu::CpuSample;
use super::latency::Latencies;
use crate::{AdminApi, Fleet, SimError};

/// Settings of the command-cycle scenario.
#[derive(Debug, Clone)]
pub struct CommandCycleBench {
    /// The command in the admin API's JSON form (default `{"request_type": "ProfileList"}`).
    pub command: Json,
    /// Devices connecting at once.
    pub concurrency: usize,
    /// The server's PID, for its CPU time.
    pub server_pid: Option<u32>,
    /// Show a progress bar.
    pub progress: bool,
}

/// Runs the scenario.
pub async fn run(
    fleet: &mut Fleet,
    admin: &AdminApi,
    bench: &CommandCycleBench,
) -> Result<ScenarioReport, SimError> {
    let ids: Vec<String> = fleet
        .devices()
        .iter()
        .map(|d| d.udid().to_owned())
        .collect();
    if ids.is_empty() {
        return Err(SimError::Admin("the fleet has no devices".into()));
    }
    // Drain anything left from earlier runs so the cycle measures one command.
    let _ = fleet.connect_all(bench.concurrency, false).await;
    let cpu_before = CpuSample::now(bench.server_pid);
    let started = Instant::now();
    let mut uuids = Vec::new();
    for chunk in ids.chunks(5_000) {
        uuids.push(admin.enqueue_many(chunk, &bench.command).await?);
    }
    let enqueued_after = started.elapsed();
    let bar = if bench.progress {
        let bar = ProgressBar::new(ids.len() as u64);
        if let Ok(style) = ProgressStyle::with_template(
            "     cycle [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec})",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let gate = Arc::new(Semaphore::new(bench.concurrency.max(1)));
    let outcomes: Vec<(std::time::Duration, Result<bool, SimError>)> =
        futures::stream::iter(fleet.devices_mut().iter_mut().map(|device| {
            let gate = Arc::clone(&gate);
            let bar = bar.clone();
            let uuids = uuids.clone();
            async move {
                let _permit = gate.acquire().await;
                let r = device.connect_until_idle().await.map(|processed| {
                    processed
                        .iter()
                        .any(|p| uuids.contains(&p.uuid) && p.status == Status::Acknowledged)
                });
                bar.inc(1);
                (started.elapsed(), r)
            }
        }))
        .buffer_unordered(bench.concurrency.max(1))
        .collect()
        .await;
    let total = started.elapsed();
    let cpu_after = CpuSample::now(bench.server_pid);
    bar.finish_and_clear();
    let mut latencies = Latencies::with_capacity(outcomes.len());
    let mut errors = 0u64;
    let mut acknowledged = 0usize;
    let mut first_error = None;
    for (done_at, r) in outcomes {
        latencies.record(done_at);
        match r {
            Ok(true) => acknowledged += 1,
            Ok(false) => errors += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let mut report = ScenarioReport::measured(
        "command-cycle",
        fleet.server(),
        ids.len(),
        bench.concurrency,
        ids.len() as u64,
        errors,
        total,
        latencies.summary(),
        &cpu_before,
        &cpu_after,
    );
    report.notes.push(format!(
        "command {} queued to {} devices in {:.3} s; {} acknowledged; time to 100%: {:.3} s",
        bench.command,
        ids.len(),
        enqueued_after.as_secs_f64(),
        acknowledged,
        total.as_secs_f64()
    ));
    report
        .notes
        .push("latency = time from the enqueue until the device's session ended".into());
    if let Some(e) = first_error {
        report.notes.push(format!("first error: {e}"));
    }
    Ok(report)
}

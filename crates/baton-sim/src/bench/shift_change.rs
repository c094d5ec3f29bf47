//! The `shift-change` scenario: every device of the fleet has a person signed in (setup: the
//! first shift signs in through the portal, not timed), then at once (bounded concurrency)
//! each person signs out through the portal, the device removes their items and reports its
//! inventory, the server records the hand-off as clean, and the next shift's person signs in
//! on that device until it is ready.
//!
//! Reported: time until every device is ready for its new person (the scenario's duration),
//! time until every sign-out was verified clean (`clean_hand_off` in the session log), and per
//! device percentiles of both, of the sign-out and of the new sign-in.
//!
//! Each device is handed over on its own (sign-out, clean check, next sign-in), as at a ward's
//! shift change; the clean check is one admin API read, done before the next sign-in because
//! the server records a hand-off on the session that just ended.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use super::ScenarioReport;
use super::cpu::CpuSample;
use super::latency::Latencies;
use super::sign_in_flow::{
    progress_bar, sign_in_until_ready, sign_out_until_done, wait_clean_hand_off,
};
use super::sign_in_to_ready::{SignInBench, brief, setup, sign_in_all};
use crate::{AdminApi, Fleet, SimError};

/// One device's hand-over, times from the scenario's start.
#[derive(Debug, Clone, Copy)]
struct HandOver {
    signed_out: Duration,
    clean: Duration,
    ready: Duration,
    sign_out_post: Duration,
    sign_in_post: Duration,
    sign_in_to_ready: Duration,
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
    let (people, mut notes) = setup(devices, admin, bench, 2 * n).await?;
    let (first, second) = people.users.split_at(n);

    let shift1 = Instant::now();
    let results = sign_in_all(
        devices,
        first,
        &bench.flow,
        bench.concurrency,
        "shift 1",
        bench.progress,
    )
    .await;
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        let failed = results.iter().filter(|r| r.is_err()).count();
        return Err(SimError::Portal(format!(
            "setup: {failed} of {n} first-shift sign-ins failed; first: {e}"
        )));
    }
    notes.push(format!(
        "setup: first shift ({n} sign-ins) ready in {:.2} s",
        shift1.elapsed().as_secs_f64()
    ));

    let bar = progress_bar(n, "hand-over", bench.progress);
    let flow = &bench.flow;
    let cpu_before = CpuSample::now(bench.server_pid);
    let started = Instant::now();
    let mut outcomes: Vec<Result<HandOver, SimError>> =
        futures::stream::iter(devices.iter_mut().zip(first.iter().zip(second)))
            .map(|(device, ((old_user, _), (new_user, password)))| {
                let bar = bar.clone();
                async move {
                    let r = async {
                        let out = sign_out_until_done(device, flow).await?;
                        let signed_out = started.elapsed();
                        wait_clean_hand_off(admin, device, old_user, flow).await?;
                        let clean = started.elapsed();
                        let sign_in = sign_in_until_ready(device, new_user, password, flow).await?;
                        Ok(HandOver {
                            signed_out,
                            clean,
                            ready: started.elapsed(),
                            sign_out_post: out.post,
                            sign_in_post: sign_in.post,
                            sign_in_to_ready: sign_in.ready,
                        })
                    }
                    .await;
                    bar.inc(1);
                    r
                }
            })
            .buffer_unordered(bench.concurrency.max(1))
            .collect()
            .await;
    let total = started.elapsed();
    let cpu_after = CpuSample::now(bench.server_pid);
    bar.finish_and_clear();

    let first_error = outcomes
        .iter()
        .find_map(|r| r.as_ref().err().map(ToString::to_string));
    outcomes.retain(Result::is_ok);
    let ok: Vec<HandOver> = outcomes.into_iter().filter_map(Result::ok).collect();
    let collect = |f: fn(&HandOver) -> Duration| {
        let mut l = Latencies::with_capacity(ok.len());
        for h in &ok {
            l.record(f(h));
        }
        l.summary()
    };
    let ready = collect(|h| h.ready);
    let clean = collect(|h| h.clean);
    let mut report = ScenarioReport::measured(
        "shift-change",
        &server,
        n,
        bench.concurrency,
        n as u64,
        (n - ok.len()) as u64,
        total,
        ready,
        &cpu_before,
        &cpu_after,
    );
    report.notes.append(&mut notes);
    report.notes.push(format!(
        "time until every device was ready for its new person: {:.2} s",
        total.as_secs_f64()
    ));
    report.notes.push(format!(
        "time until every sign-out was verified clean (clean_hand_off in the session log): \
         {:.2} s",
        clean.max_ms / 1000.0
    ));
    report.notes.push(
        "latency = per device, from the scenario's start until the new person's progress page \
         said ready; throughput = hand-overs per second"
            .into(),
    );
    report.notes.push(format!(
        "per device, start to signed-out page ready: {}",
        brief(&collect(|h| h.signed_out))
    ));
    report.notes.push(format!(
        "per device, start to hand-off verified clean: {}",
        brief(&clean)
    ));
    report.notes.push(format!(
        "per device, new sign-in POST to ready: {}",
        brief(&collect(|h| h.sign_in_to_ready))
    ));
    report.notes.push(format!(
        "sign-out POST: {}; sign-in POST: {}",
        brief(&collect(|h| h.sign_out_post)),
        brief(&collect(|h| h.sign_in_post))
    ));
    if let Some(e) = first_error {
        report.notes.push(format!("first error: {e}"));
    }
    Ok(report)
}

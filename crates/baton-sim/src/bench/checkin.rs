//! The `checkin` scenario: signed Idle reports on the command channel, PRE-SIGNED (one body and
//! `Mdm-Signature` per device, made before the clock starts) so the simulator spends almost no
//! CPU per request. Each connection is one HTTP/1.1 keep-alive connection (rustls or plain
//! HTTP) sending one request at a time, round-robin over the devices.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::net::TcpStream;

use super::ScenarioReport;
use super::cpu::CpuSample;
use super::latency::Latencies;
use crate::{CHECKIN_CONTENT_TYPE, Fleet, ServerTrust, SimError, client_tls_config};

/// Settings of the checkin scenario.
#[derive(Debug, Clone)]
pub struct CheckinBench {
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// How long to send.
    pub duration: Duration,
    /// Stop after this many requests (whichever comes first).
    pub max_requests: Option<u64>,
    /// Server certificate trust.
    pub trust: ServerTrust,
    /// The server's PID, for its CPU time.
    pub server_pid: Option<u32>,
    /// Show a progress bar.
    pub progress: bool,
}

struct Presigned {
    body: Bytes,
    signature: Option<HeaderValue>,
}

struct Target {
    scheme_https: bool,
    host: String,
    port: u16,
    path: String,
    host_header: HeaderValue,
}

fn target_of(url: &str) -> Result<Target, SimError> {
    let bad = |reason: &str| SimError::Url {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|_| bad("not a URI"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(bad("scheme must be http or https")),
    };
    let host = uri.host().ok_or_else(|| bad("no host"))?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    Ok(Target {
        scheme_https: https,
        host_header: HeaderValue::from_str(&authority).map_err(|_| bad("bad authority"))?,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
        path: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
    })
}

fn transport_error(reason: impl std::fmt::Display) -> SimError {
    SimError::Transport {
        method: "PUT".into(),
        url: "checkin bench".into(),
        reason: reason.to_string(),
    }
}

async fn connect(
    target: &Target,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Result<SendRequest<Full<Bytes>>, SimError> {
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(transport_error)?;
    tcp.set_nodelay(true).map_err(transport_error)?;
    match tls {
        None => {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(transport_error)?;
            tokio::spawn(conn);
            Ok(sender)
        }
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from(target.host.clone())
                .map_err(transport_error)?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(transport_error)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(transport_error)?;
            tokio::spawn(conn);
            Ok(sender)
        }
    }
}

struct Shared {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    presigned: Vec<Presigned>,
    next: AtomicU64,
    issued: AtomicU64,
    done: AtomicU64,
    errors: AtomicU64,
    deadline: Instant,
    max_requests: u64,
}

async fn connection_loop(shared: Arc<Shared>) -> Latencies {
    let mut latencies = Latencies::with_capacity(16_384);
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    let n = shared.presigned.len() as u64;
    loop {
        if Instant::now() >= shared.deadline
            || shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests
        {
            return latencies;
        }
        let s = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(&shared.target, shared.tls.as_ref()).await {
                Ok(s) => s,
                Err(_) => {
                    shared.errors.fetch_add(1, Ordering::Relaxed);
                    shared.done.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut s = s;
        let p = &shared.presigned[(shared.next.fetch_add(1, Ordering::Relaxed) % n) as usize];
        let mut builder = Request::builder()
            .method(Method::PUT)
            .uri(shared.target.path.as_str())
            .header(HOST, shared.target.host_header.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static(CHECKIN_CONTENT_TYPE));
        if let Some(sig) = &p.signature {
            builder = builder.header("Mdm-Signature", sig.clone());
        }
        let Ok(request) = builder.body(Full::new(p.body.clone())) else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let started = Instant::now();
        let ok = match s.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let body_ok = response.into_body().collect().await.is_ok();
                status == http::StatusCode::OK && body_ok
            }
            Err(_) => false,
        };
        latencies.record(started.elapsed());
        shared.done.fetch_add(1, Ordering::Relaxed);
        if ok {
            sender = Some(s);
        } else {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Runs the scenario against the fleet's server with the fleet's devices (which must be
/// enrolled: Authenticate and TokenUpdate done).
pub async fn run(fleet: &Fleet, bench: &CheckinBench) -> Result<ScenarioReport, SimError> {
    let devices = fleet.devices();
    if devices.is_empty() {
        return Err(SimError::Saved {
            path: "fleet".into(),
            reason: "the fleet has no devices".into(),
        });
    }
    let url = devices[0].endpoints().server_url.clone();
    let target = target_of(&url)?;
    // Pre-sign one Idle report per device (before the clock).
    let mut presigned = Vec::with_capacity(devices.len());
    for d in devices {
        let (body, signature) = d.presigned_idle()?;
        presigned.push(Presigned {
            body: Bytes::from(body),
            signature: signature
                .map(|s| HeaderValue::from_str(&s))
                .transpose()
                .map_err(|e| SimError::Tls(e.to_string()))?,
        });
    }
    let tls = if target.scheme_https {
        let mut config = client_tls_config(&bench.trust)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
    } else {
        None
    };
    let connections = bench.connections.max(1);
    let cpu_before = CpuSample::now(bench.server_pid);
    let shared = Arc::new(Shared {
        target,
        tls,
        presigned,
        next: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        done: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        deadline: cpu_before.at + bench.duration,
        max_requests: bench.max_requests.unwrap_or(u64::MAX),
    });
    let bar = if bench.progress {
        let bar = ProgressBar::new(bench.duration.as_secs().max(1));
        if let Ok(style) =
            ProgressStyle::with_template("   checkin [{elapsed_precise}] {wide_bar} {msg}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let ticker = {
        let shared = Arc::clone(&shared);
        let bar = bar.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                bar.set_position(
                    (bar.length().unwrap_or(0)).saturating_sub(
                        shared
                            .deadline
                            .saturating_duration_since(Instant::now())
                            .as_secs(),
                    ),
                );
                bar.set_message(format!(
                    "{} requests, {} errors",
                    shared.done.load(Ordering::Relaxed),
                    shared.errors.load(Ordering::Relaxed)
                ));
            }
        })
    };
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection_loop(Arc::clone(&shared))))
        .collect();
    let mut latencies = Latencies::default();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.merge(l);
        }
    }
    let cpu_after = CpuSample::now(bench.server_pid);
    ticker.abort();
    bar.finish_and_clear();
    let requests = shared.done.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let mut report = ScenarioReport::measured(
        "checkin",
        fleet.server(),
        devices.len(),
        connections,
        requests,
        errors,
        cpu_after.at - cpu_before.at,
        latencies.summary(),
        &cpu_before,
        &cpu_after,
    );
    report.notes.push(format!(
        "PUT {} with pre-signed Idle reports ({} signatures, {:?}, {:?})",
        url,
        devices.len(),
        devices[0].record().options.digest,
        devices[0].record().options.encoding
    ));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_reads_scheme_host_port_and_path() {
        let t = target_of("https://127.0.0.1:8443/mdm/connect").unwrap();
        assert!(t.scheme_https);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 8443, "/mdm/connect")
        );
        let t = target_of("http://localhost/x").unwrap();
        assert_eq!((t.scheme_https, t.port), (false, 80));
        assert!(target_of("ftp://h/").is_err());
    }
}

//! Bounded growth: one enrolled device flooding the command channel with reports about
//! CommandUUIDs it made up, each carrying a huge ErrorChain, costs a bounded amount of disk and
//! leaves the server serving; an oversize ErrorChain on a real command is stored cut and marked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::{ErrorChainItem, Status};
use http::Method;

const UDID: &str = "00008030-00AB12CD34EF802E";

/// Bytes allocated on disk under `dir` (what `du` counts).
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

fn random_uuid() -> String {
    let mut bytes = [0u8; 16];
    openssl::rand::rand_bytes(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// One ErrorChain item carrying about `bytes` of text.
fn huge_chain(bytes: usize) -> Vec<ErrorChainItem> {
    vec![ErrorChainItem {
        code: 12_345,
        domain: "MCInstallationErrorDomain".into(),
        localized_description: Some("x".repeat(bytes)),
        us_english_description: None,
    }]
}

/// 200 signed Error reports with random CommandUUIDs and 1 MB ErrorChains (200 MB sent) grow
/// the data directory by less than 32 MB; the device keeps only its newest 16 orphans, the
/// metric counts the rest, and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_report_flood_costs_bounded_disk() {
    const REPORTS: usize = 200;
    const BOUND: u64 = 16 * 1024 * 1024;
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    server.enroll(&device).await;
    let before = disk_usage(&server.data_dir());
    let chain = huge_chain(1024 * 1024);
    for i in 0..REPORTS {
        let body = device.error_report(&random_uuid(), chain.clone());
        assert!(body.len() > 1024 * 1024);
        let r = server.connect(&device, body).await;
        assert_eq!(r.status, 200, "report {i}: {}", r.text());
    }
    let after = disk_usage(&server.data_dir());
    let growth = after.saturating_sub(before);
    println!(
        "data directory: {before} bytes before, {after} after {REPORTS} orphan reports (+{growth})"
    );
    assert!(
        growth < BOUND,
        "the data directory grew by {growth} bytes (bound {BOUND})"
    );

    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains(&format!("baton_orphan_reports_total {REPORTS}")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "baton_orphan_reports_dropped_total {}",
            REPORTS - 16
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("baton_device_reports_truncated_total {REPORTS}")),
        "{metrics}"
    );

    // Still serving: health, and a real command round trip.
    server.assert_healthy().await;
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let r = server.connect(&device, device.idle()).await;
    assert!(String::from_utf8_lossy(&r.body).contains(&uuid));
    let r = server
        .connect(&device, device.report(Status::Acknowledged, &uuid))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(server.commands(UDID).await[0]["status"], "acknowledged");
    server.stop().await;
}

/// A real command answered with a 3 MB ErrorChain: the stored result keeps a cut, marked
/// ErrorChain and a cut, marked raw response.
#[tokio::test]
async fn an_oversize_error_chain_of_a_real_command_is_stored_cut() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    server.enroll(&device).await;
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    server.connect(&device, device.idle()).await;
    let mut chain = huge_chain(3 * 1024 * 1024);
    chain.extend((0..50).map(|i| ErrorChainItem {
        code: i,
        domain: "Extra".into(),
        localized_description: None,
        us_english_description: None,
    }));
    let r = server
        .connect(&device, device.error_report(&uuid, chain))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = r.json();
    assert_eq!(view["status"], "error");
    let stored = view["error_chain"].as_array().unwrap();
    assert_eq!(stored.len(), 8, "at most 8 items: 7 and a marker");
    let first = stored[0]["localized_description"].as_str().unwrap();
    assert!(first.len() < 2048, "{} bytes kept", first.len());
    assert!(first.ends_with("[truncated by baton]"));
    assert_eq!(stored[7]["domain"], "baton.truncated");
    let response = view["response"].as_str().unwrap();
    assert!(response.len() < 70 * 1024, "{} bytes kept", response.len());
    assert!(response.contains("baton: body truncated"), "no marker");
    let text = r.text();
    assert!(
        text.len() < 100 * 1024,
        "the API answer is {} bytes",
        text.len()
    );
    server.stop().await;
}

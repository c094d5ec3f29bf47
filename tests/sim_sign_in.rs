//! The `sign-in-to-ready` and `shift-change` benchmark scenarios of baton-sim, run small against
//! a real server with a mock APNs, so they cannot rot: devices enroll and get the sign-in web
//! clip, people sign in through the portal (form, CSRF, cookies), devices are woken by real
//! pushes and process their commands until the progress page says ready; in the shift change
//! everyone signs out, the hand-off is verified clean in the session log, and the next people
//! sign in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use baton_apns::mock::MockApns;
use baton_apns::testing::TestPki;
use baton_e2e::device::TOPIC;
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::identity::testing::DeviceCertificateSpec;
use baton_server::push::PushConfig;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::bench::ScenarioReport;
use baton_sim::bench::sign_in_flow::{FlowSettings, Wake};
use baton_sim::bench::sign_in_to_ready::SignInBench;
use baton_sim::{
    AdminApi, Fleet, ServerEndpoints, ServerTrust, SimDevice, SimOptions, Transport, random_udid,
};
use tempfile::TempDir;

/// A server with the sign-in clip, pushing through a mock APNs, and `n` enrolled devices.
struct Setup {
    _pki_dir: TempDir,
    _fleet_dir: TempDir,
    _apns_pki: TestPki,
    server: TestServer,
    mock: Arc<MockApns>,
    fleet: Fleet,
}

async fn setup(n: usize) -> Setup {
    setup_with(n, Duration::from_secs(3600)).await
}

/// `n` devices, re-pushed every `repush_interval`.
async fn setup_with(n: usize, repush_interval: Duration) -> Setup {
    let apns_pki = TestPki::generate().unwrap();
    let mock = Arc::new(MockApns::start_with_pki(&apns_pki).await.unwrap());
    let pki_dir = tempfile::tempdir().unwrap();
    std::fs::write(pki_dir.path().join("apns-ca.pem"), &apns_pki.ca_cert_pem).unwrap();
    let (cert, key) = apns_pki.client_cert_with_uid(Some(TOPIC)).unwrap();
    std::fs::write(pki_dir.path().join("push.pem"), [cert, key].concat()).unwrap();
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            push: PushConfig {
                cert_file: Some(pki_dir.path().join("push.pem")),
                apns_url: mock.base_url(),
                apns_ca_files: vec![pki_dir.path().join("apns-ca.pem")],
                apns_public_roots: false,
                debounce: Duration::from_millis(20),
                repush_interval,
                ..PushConfig::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let url = server.running().local_url();
    let transport = Transport::new(&ServerTrust::AcceptAny).unwrap();
    let fleet_dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::create(fleet_dir.path(), &url, transport.clone()).unwrap();
    for _ in 0..n {
        let udid = random_udid().unwrap();
        let identity = pki
            .trusted
            .issue_device(&udid, &DeviceCertificateSpec::default())
            .unwrap();
        let mut device = SimDevice::with_udid(
            &udid,
            ServerEndpoints::baton(&url),
            identity.into(),
            SimOptions::default(),
            transport.clone(),
        )
        .unwrap();
        device.enroll_checkins().await.unwrap();
        fleet.adopt(device);
    }
    Setup {
        _pki_dir: pki_dir,
        _fleet_dir: fleet_dir,
        _apns_pki: apns_pki,
        server,
        mock,
        fleet,
    }
}

fn bench(s: &Setup, profiles: usize, apps: usize) -> (AdminApi, SignInBench) {
    let url = s.server.running().local_url();
    let admin = AdminApi::new(&url, &s.server.api_key, s.fleet.transport().clone());
    let mut flow = FlowSettings::new(&url).unwrap();
    flow.wake = Wake::MockApns(Arc::clone(&s.mock));
    flow.timeout = Duration::from_secs(20);
    (
        admin,
        SignInBench {
            profiles,
            apps,
            concurrency: 2,
            server_pid: None,
            progress: false,
            flow,
            devices: None,
        },
    )
}

fn note<'a>(report: &'a ScenarioReport, starts: &str) -> &'a str {
    report
        .notes
        .iter()
        .find(|n| n.starts_with(starts))
        .unwrap_or_else(|| panic!("no note {starts:?} in {:#?}", report.notes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_to_ready_scenario_runs_against_a_server() {
    let mut s = setup(3).await;
    let (admin, settings) = bench(&s, 4, 2);
    let report = baton_sim::bench::sign_in_to_ready::run(&mut s.fleet, &admin, &settings)
        .await
        .unwrap();
    assert_eq!(report.status, "ok");
    assert_eq!(
        (report.devices, report.errors),
        (3, 0),
        "{}",
        report.table()
    );
    assert_eq!(report.latency.count, 3);
    assert!(report.latency.max_ms > 0.0);
    // Every server session recorded its ready time.
    assert!(
        note(&report, "server session log").ends_with("; 0 sessions without ready_at"),
        "{}",
        report.table()
    );
    // Each device got the person's 6 items (and the sign-out clip).
    let per_device: f64 = note(&report, "commands processed per device: ")
        .trim_start_matches("commands processed per device: ")
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(per_device >= 6.0, "{}", report.table());
    for device in s.fleet.devices() {
        assert!(device.profiles().len() >= 4, "{:?}", device.profiles());
        assert_eq!(device.apps().len(), 2);
        assert!(device.tap_web_clip(Some("Sign in")).is_none());
    }
    // Pushes woke the devices: the mock saw one for each.
    for device in s.fleet.devices() {
        let token = device.push_token_hex();
        assert!(
            s.mock
                .pushes()
                .iter()
                .any(|p| p.token.as_deref() == Some(token))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_change_scenario_hands_every_device_over_cleanly() {
    let mut s = setup(3).await;
    let (admin, settings) = bench(&s, 2, 1);
    let report = baton_sim::bench::shift_change::run(&mut s.fleet, &admin, &settings)
        .await
        .unwrap();
    assert_eq!(
        (report.devices, report.errors),
        (3, 0),
        "{}",
        report.table()
    );
    assert_eq!(report.latency.count, 3);
    note(&report, "time until every sign-out was verified clean");
    for device in s.fleet.devices() {
        let sessions = admin.sessions(device.udid()).await.unwrap();
        assert_eq!(sessions.len(), 2, "{sessions:?}");
        assert_eq!(sessions[0]["clean_hand_off"], true, "{sessions:?}");
        assert_ne!(sessions[0]["username"], sessions[1]["username"]);
        assert!(sessions[1]["ready_at"].is_u64(), "{sessions:?}");
        assert!(sessions[1]["ended_at"].is_null());
        assert_eq!(device.apps().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_change_scenario_runs_with_slow_devices() {
    // Per-command delays (docs/testing.md "Lock, NotNow, lost replies, delays and drops"), with
    // a re-push every 500 ms; drops are the next test's.
    let mut s = setup_with(3, Duration::from_millis(500)).await;
    for device in s.fleet.devices_mut() {
        device.set_pacing(baton_sim::Pacing {
            command_delay_min_ms: 5,
            command_delay_max_ms: 20,
            install_application_delay_ms: 50,
            drop_per_mille: 0,
            seed: 25,
        });
    }
    let (admin, mut settings) = bench(&s, 2, 1);
    settings.flow.push_wait = Duration::from_millis(300);
    let report = baton_sim::bench::shift_change::run(&mut s.fleet, &admin, &settings)
        .await
        .unwrap();
    assert_eq!(
        (report.devices, report.errors),
        (3, 0),
        "{}",
        report.table()
    );
    for device in s.fleet.devices() {
        let sessions = admin.sessions(device.udid()).await.unwrap();
        assert_eq!(sessions[0]["clean_hand_off"], true, "{sessions:?}");
        assert!(sessions[1]["ready_at"].is_u64(), "{sessions:?}");
        assert_eq!(device.apps().len(), 1);
    }
}

/// Dropped connections (one result reply in ten lost) during a shift change: every device is
/// handed over cleanly. Before the full-screen web clips' removals went last, a drop between
/// the "Sign in" clip's removal and the "Sign out" clip's install left the device with no
/// portal clip ("device has no web clip Sign out"), and a baseline connection that dropped
/// left a stale "Sign in" clip after the setup's forced sign-out (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shift_change_scenario_survives_dropped_connections() {
    for seed in [1, 4] {
        let mut s = setup_with(6, Duration::from_millis(500)).await;
        for device in s.fleet.devices_mut() {
            device.set_pacing(baton_sim::Pacing {
                drop_per_mille: 100,
                seed,
                ..baton_sim::Pacing::default()
            });
        }
        let (admin, mut settings) = bench(&s, 3, 1);
        settings.flow.push_wait = Duration::from_millis(300);
        let report = baton_sim::bench::shift_change::run(&mut s.fleet, &admin, &settings)
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            (report.devices, report.errors),
            (6, 0),
            "seed {seed}: {}",
            report.table()
        );
        for device in s.fleet.devices() {
            let sessions = admin.sessions(device.udid()).await.unwrap();
            assert_eq!(sessions[0]["clean_hand_off"], true, "{sessions:?}");
            assert!(sessions[1]["ready_at"].is_u64(), "{sessions:?}");
        }
    }
}

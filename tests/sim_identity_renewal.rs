//! Identity renewal and unenrollment driven by baton-sim devices that enroll from the served
//! profile and answer like iOS (sources in /work/shared/ios-device-behaviour.md, sections 3 and
//! 8): the renewal profile replaces the MDM profile only when ServerURL, CheckInURL, Topic,
//! capabilities and AccessRights stay those the device enrolled with (else Error 12012), and a
//! RemoveProfile of the MDM profile is acknowledged, then the device checks out.
//!
//! The server's public URL carries its port here (the sim talks to the URLs in the profile), so
//! each test starts the server, then restarts it on the same port with that URL. Renewals are
//! triggered by restarting with a renewal window longer than the identities' validity: the
//! pass at start queues them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::{EnrollmentId, Status};
use baton_server::config::WebhookConfig;
use baton_server::enrollment::EnrollmentSettings;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{ServerTrust, SimDevice, SimOptions, Transport};
use http::Method;
use serde_json::{Value, json};

const DAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Default)]
struct Hook {
    events: Mutex<Vec<Value>>,
}

async fn receive(State(hook): State<Arc<Hook>>, body: Bytes) -> StatusCode {
    hook.events
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

/// A webhook receiver: its URL and what it received.
async fn webhook() -> (String, Arc<Hook>) {
    let hook = Arc::new(Hook::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&hook));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hook)
}

/// Identities valid 10 days, renewed within 3 (so none is renewed at enrollment).
fn settings() -> EnrollmentSettings {
    EnrollmentSettings {
        device_validity: 10 * DAY,
        renewal_window: 3 * DAY,
        renewal_check_every: Duration::from_millis(200),
        ..EnrollmentSettings::default()
    }
}

async fn upload_push_certificate(server: &TestServer) {
    let pki = baton_apns::testing::TestPki::generate().unwrap();
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(json!({
                "cert_pem": String::from_utf8(pki.push_cert_pem.clone()).unwrap(),
                "key_pem": String::from_utf8(pki.push_key_pem.clone()).unwrap(),
            })),
        )
        .await;
    assert!(r.status.is_success(), "push certificate: {}", r.text());
}

/// A server whose public URL is `https://127.0.0.1:<its port>`, with a push certificate.
async fn server_on_its_own_port(options: ServerOptions) -> (TestServer, SocketAddr) {
    let pki = Pki::generate();
    let mut server = TestServer::start(
        &pki,
        ServerOptions {
            enrollment: settings(),
            ..options
        },
    )
    .await;
    let addr = server.running().local_addr();
    server.stop_running().await;
    server.config_mut().listen = addr;
    server.config_mut().public_url = format!("https://{addr}");
    server.start_again().await;
    upload_push_certificate(&server).await;
    (server, addr)
}

/// Restarts on the same port with `public_url`, renewing every identity (window 30 days).
async fn restart_renewing(server: &mut TestServer, addr: SocketAddr, public_url: String) {
    server.stop_running().await;
    server.config_mut().listen = addr;
    server.config_mut().public_url = public_url;
    server.config_mut().enrollment.renewal_window = 30 * DAY;
    server.start_again().await;
}

/// A sim iPhone enrolled from the served profile (SCEP, Authenticate, TokenUpdate), its first
/// commands processed.
async fn enroll(server: &TestServer, addr: SocketAddr) -> SimDevice {
    let path = server.enroll_path(1).await;
    let mut device = SimDevice::enroll_from_profile_url(
        &format!("https://{addr}{path}"),
        SimOptions::default(),
        Transport::new(&ServerTrust::AcceptAny).unwrap(),
    )
    .await
    .unwrap();
    device.connect_until_idle().await.unwrap();
    device
}

async fn device_view(server: &TestServer, udid: &str) -> Value {
    let r = server
        .api(Method::GET, &format!("/api/v1/devices/{udid}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Waits (bounded) until the renewal pass queued an InstallProfile for `udid`.
async fn renewal_queued(server: &TestServer, udid: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queued = server
            .commands(udid)
            .await
            .iter()
            .any(|c| c["request_type"] == "InstallProfile" && c["status"] == "queued");
        if queued {
            return;
        }
        assert!(Instant::now() < deadline, "no renewal queued for {udid}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serial(device: &SimDevice) -> String {
    device
        .identity()
        .cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string()
}

/// The device installs the renewal profile (SCEP with its challenge, Acknowledged) and signs
/// what follows with its new identity; Baton binds it and completes the renewal.
async fn renew_and_check(server: &TestServer, device: &mut SimDevice) {
    let udid = device.udid().to_owned();
    let old_serial = serial(device);
    renewal_queued(server, &udid).await;
    let processed = device.connect_until_idle().await.unwrap();
    let install = processed
        .iter()
        .find(|p| p.request_type == "InstallProfile")
        .expect("the renewal profile was fetched");
    assert_eq!(
        install.status,
        Status::Acknowledged,
        "{:?}",
        install.error_chain
    );
    assert_ne!(
        serial(device),
        old_serial,
        "the device uses its new identity"
    );
    // Messages signed with the new identity are accepted.
    device.connect_until_idle().await.unwrap();
    let view = device_view(server, &udid).await;
    assert_eq!(view["renewal"]["state"], "completed", "{view}");
    assert_eq!(view["renewal"]["attempts"], 1);
    assert_eq!(view["identity"]["serial"].to_string(), serial(device));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sim_iphone_renews_its_identity_end_to_end() {
    let (mut server, addr) = server_on_its_own_port(ServerOptions::default()).await;
    let mut device = enroll(&server, addr).await;
    restart_renewing(&mut server, addr, format!("https://{addr}")).await;
    renew_and_check(&server, &mut device).await;
    server.stop().await;
}

/// The operator moved the public URL (the old one still reaches the server): the renewal
/// profile keeps the URL the device enrolled with, which iOS requires, and the renewal view
/// says so. Fails on a server that puts the current URL in renewal profiles (12012).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_after_the_public_url_moved_keeps_the_enrolled_url() {
    let (mut server, addr) = server_on_its_own_port(ServerOptions::default()).await;
    let mut device = enroll(&server, addr).await;
    let enrolled_url = format!("https://{addr}/mdm/connect");
    restart_renewing(
        &mut server,
        addr,
        format!("https://localhost:{}", addr.port()),
    )
    .await;
    renewal_queued(&server, device.udid()).await;
    let r = server
        .api(Method::GET, "/api/v1/identity-renewals", None)
        .await;
    let renewals = r.json()["renewals"].as_array().unwrap().clone();
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(
        renewals[0]["enrolled_with"]["server_url"],
        enrolled_url.as_str()
    );
    assert_eq!(
        renewals[0]["differs_from_current"],
        json!(["ServerURL", "CheckInURL"])
    );
    renew_and_check(&server, &mut device).await;
    assert_eq!(device.endpoints().server_url, enrolled_url);
    server.stop().await;
}

/// A device that enrolled before Baton recorded its enrollment terms, after the public URL
/// moved: the renewal profile carries the new URL, iOS refuses it with 12012, and Baton records
/// the renewal as failed with that reason, alerts (webhook, metric), and never as renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_the_device_refuses_is_recorded_failed_with_an_alert() {
    let (url, hook) = webhook().await;
    let (mut server, addr) = server_on_its_own_port(ServerOptions {
        webhook: Some(WebhookConfig::new(url, None)),
        ..ServerOptions::default()
    })
    .await;
    let mut device = enroll(&server, addr).await;
    let udid = device.udid().to_owned();
    // As if enrolled by an earlier Baton: no terms recorded.
    {
        let store = Arc::clone(&server.running().services().store);
        let terms =
            baton_store::Collection::new(baton_server::enrollment::store_terms::TERMS_COLLECTION)
                .unwrap();
        assert!(store.delete(&terms, udid.as_bytes()).unwrap());
    }
    let old_serial = serial(&device);
    restart_renewing(
        &mut server,
        addr,
        format!("https://localhost:{}", addr.port()),
    )
    .await;
    renewal_queued(&server, &udid).await;

    let processed = device.connect_until_idle().await.unwrap();
    let install = processed
        .iter()
        .find(|p| p.request_type == "InstallProfile")
        .unwrap();
    assert_eq!(install.status, Status::Error);
    assert_eq!(install.error_chain.as_ref().unwrap()[0].code, 12012);
    assert_eq!(serial(&device), old_serial, "the device keeps its identity");

    let view = device_view(&server, &udid).await;
    let renewal = &view["renewal"];
    assert_eq!(renewal["state"], "failed", "{view}");
    assert_eq!(renewal["replacement_refused"], true);
    let error = renewal["last_error"].as_str().unwrap();
    assert!(error.contains("12012"), "{error}");
    assert!(error.contains("enroll it again"), "{error}");
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("baton_identity_renewal_refusals_total 1"),
        "{metrics}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let event = loop {
        let found = hook
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "identity_renewal.failed")
            .cloned();
        if let Some(event) = found {
            break event;
        }
        assert!(
            Instant::now() < deadline,
            "no identity_renewal.failed event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(event["enrollment_id"], udid.as_str());
    assert_eq!(event["reason"], "mdm_profile_replacement_refused");
    // The device still works with its old identity.
    device.connect_until_idle().await.unwrap();
    let id = EnrollmentId::device(&udid).unwrap();
    let store = Arc::clone(&server.running().services().store);
    let record = baton_server::enrollment::renewal::record_of(store.as_ref(), &id)
        .unwrap()
        .unwrap();
    assert_ne!(
        record.state,
        baton_server::enrollment::renewal_record::RenewalState::Completed
    );
    server.stop().await;
}

/// An operator queues RemoveProfile of the enrollment profile: the device acknowledges it, then
/// checks out; Baton disables it, revokes its identity, drops its queue and ends the session of
/// whoever was signed in. Fails on a server that only disabled the channel at CheckOut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_mdm_profile_checks_the_device_out_cleanly() {
    let (server, addr) = server_on_its_own_port(ServerOptions {
        assignment: AssignmentSettings::default(),
        ..ServerOptions::default()
    })
    .await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "alice", "password": "pw-alice"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut device = enroll(&server, addr).await;
    let udid = device.udid().to_owned();
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{udid}/sign-in"),
            Some(json!({"username": "alice", "persistent": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(device_view(&server, &udid).await["assignee"], "alice");

    let remove = server
        .queue(
            &udid,
            json!({"request_type": "RemoveProfile", "identifier": "io.baton.enrollment"}),
        )
        .await;
    let after = server
        .queue(&udid, json!({"request_type": "ProfileList"}))
        .await;
    let processed = device.connect_until_idle().await.unwrap();
    let removal = processed.iter().find(|p| p.uuid == remove).unwrap();
    assert_eq!(removal.status, Status::Acknowledged);
    assert!(
        processed.iter().all(|p| p.uuid != after),
        "an unenrolled device processes nothing more"
    );
    assert!(device.record().unenrolled);

    let view = device_view(&server, &udid).await;
    assert_eq!(view["enabled"], false, "{view}");
    assert_eq!(view["assignee"], "nobody", "{view}");
    let states: Vec<(String, String)> = server
        .commands(&udid)
        .await
        .iter()
        .map(|c| {
            (
                c["command_uuid"].as_str().unwrap_or_default().to_owned(),
                c["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        states.iter().all(|(_, s)| s != "queued"),
        "nothing stays queued for a device that left: {states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(uuid, s)| *uuid == after && s == "cancelled"),
        "{states:?}"
    );
    let r = server
        .api(
            Method::GET,
            "/api/v1/sign-in-log?username=alice&limit=1",
            None,
        )
        .await;
    let newest = r.json().as_array().unwrap()[0].clone();
    assert_eq!(newest["result"], "signed_out");
    assert_eq!(newest["reason"], "checked_out");

    // Its identity is revoked: a message signed with it is refused (400, never 401).
    let (body, signature) = device.presigned_idle().unwrap();
    let r = server.put_device("/mdm/connect", body, signature).await;
    assert_eq!(r.status, 400, "{}", r.text());
    server.stop().await;
}

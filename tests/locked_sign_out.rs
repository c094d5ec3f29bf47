//! A phone signed out while its screen is locked becomes "ready for the next person" once it is
//! unlocked, with no help from the test: the device answers NotNow to the nobody baseline's
//! InstallProfile (the "Sign in" clip) while passcode-locked [P `_unavailableCommandsWhileLocked`;
//! M984], and polls by itself on unlock only if NotNow was the last status of its connection
//! [NN]. Baton's rule (decision 0015): when nothing else is left in a session, the command
//! answered NotNow is offered once more, so the session ends on NotNow.
//!
//! Also: a connection that opens with a resent result (the reply to it was lost) stores it
//! once, gets the next command, and NotNow'd commands come back in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_e2e::portal::{Apns, Browser, clip_path, profile_xml, sign_in_path};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::Status;
use baton_server::portal::pages::READY_FOR_NEXT;
use baton_server::push::PushConfig;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::json;

const UDID: &str = "00008120-0002B3C4D5E6F7B9";

/// How long a test waits for the server to say the device is ready after it was unlocked.
/// Baton's bound is the device's own poll at unlock (immediate): this only absorbs a slow CI.
const READY_DEADLINE: Duration = Duration::from_secs(15);

async fn server(apns: &Apns, pki: &Pki) -> TestServer {
    server_with(pki, apns.config()).await
}

async fn server_with(pki: &Pki, push: PushConfig) -> TestServer {
    let server = TestServer::start(
        pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            push,
            ..ServerOptions::default()
        },
    )
    .await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "alice", "password": "pw-alice",
                "full_name": "Alice", "email": "alice@example.com"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let b64 = base64::engine::general_purpose::STANDARD.encode(profile_xml("upload.mail", "Mail"));
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(json!({"id": "mail", "name": "mail", "kind": "profile", "mobileconfig": b64})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let item = r.json()["id"].as_str().unwrap().to_owned();
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": item, "target": {"users": ["alice"]}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    server
}

async fn enroll(server: &TestServer, pki: &Pki) -> SimDevice {
    baton_e2e::portal::enrolled_sim(server, pki, UDID, SimOptions::default()).await
}

fn pushes_to(apns: &Apns, device: &SimDevice) -> usize {
    apns.mock
        .pushes()
        .into_iter()
        .filter(|p| p.status == 200 && p.token.as_deref() == Some(device.push_token_hex()))
        .count()
}

/// The device and alice, signed in, with her mail profile and the "Sign out" clip.
async fn signed_in_device(server: &TestServer, pki: &Pki) -> SimDevice {
    let mut device = enroll(server, pki).await;
    device.connect_until_idle().await.unwrap();
    let portal = clip_path(&device, "Sign in");
    let mut browser = Browser::default();
    let (_, r) = browser
        .submit(
            server,
            &portal,
            &[("username", "alice"), ("password", "pw-alice")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    device.connect_until_idle().await.unwrap();
    assert!(device.tap_web_clip(Some("Sign out")).is_some());
    device
}

async fn sign_out_through_the_portal(server: &TestServer, device: &SimDevice) {
    let portal = clip_path(device, "Sign out");
    let mut browser = Browser::default();
    let (_, r) = browser.submit(server, &portal, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
}

async fn ready_for_the_next_person(server: &TestServer) -> bool {
    let path = format!("{}/signed-out", sign_in_path(server, UDID));
    Browser::default()
        .get(server, &path)
        .await
        .text()
        .contains(READY_FOR_NEXT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_signed_out_while_locked_is_ready_once_unlocked() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki).await;
    let mut device = signed_in_device(&server, &pki).await;

    // alice locks the phone and signs out from elsewhere (the portal, as from another tab).
    device.lock();
    let pushed = pushes_to(&apns, &device);
    sign_out_through_the_portal(&server, &device).await;

    // The push wakes the phone: the removals run, the "Sign in" clip is deferred.
    apns.wait_for(device.push_token_hex(), pushed + 1).await;
    let done = device.connect_until_idle().await.unwrap();
    let install_answers: Vec<Status> = done
        .iter()
        .filter(|c| c.request_type == "InstallProfile")
        .map(|c| c.status)
        .collect();
    assert!(
        !install_answers.is_empty() && install_answers.iter().all(|s| *s == Status::NotNow),
        "{done:?}"
    );
    assert!(
        done.iter()
            .any(|c| c.request_type == "RemoveProfile" && c.status == Status::Acknowledged),
        "removals run while passcode-locked: {done:?}"
    );
    assert!(device.tap_web_clip(Some("Sign in")).is_none());
    assert!(
        device.ended_on_not_now(),
        "the session must end on NotNow, or the phone will not come back on unlock: {done:?}"
    );
    assert!(!ready_for_the_next_person(&server).await);

    // The person unlocks the phone. From here the test only watches the server (and lets the
    // phone answer any push, as a phone does).
    let unlocked = Instant::now();
    device.unlock().await.unwrap();
    loop {
        if ready_for_the_next_person(&server).await {
            break;
        }
        assert!(
            unlocked.elapsed() < READY_DEADLINE,
            "not ready for the next person {READY_DEADLINE:?} after unlock"
        );
        if pushes_to(&apns, &device) > pushed + 1 {
            device.connect_until_idle().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(device.tap_web_clip(Some("Sign in")).is_some());
    eprintln!("ready {:?} after unlock", unlocked.elapsed());
    // The hand-off was proven clean from the lists asked after the deferred install was
    // answered, not judged "not clean" while the "Sign in" clip was still NotNow'd.
    let p = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/progress"),
            None,
        )
        .await
        .json();
    assert_eq!(p["hand_off"]["state"], "clean", "{p}");
    assert_eq!(p["hand_off"]["rounds_not_clean"], 0, "{p}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_opening_with_a_resent_result_stores_it_once_and_carries_on() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki).await;
    let mut device = enroll(&server, &pki).await;
    device.connect_until_idle().await.unwrap();

    // Two commands; the phone is locked, so the InstallProfile is NotNow'd; the reply to the
    // ProfileList result is lost.
    let install = server
        .queue(
            UDID,
            json!({"request_type": "InstallProfile",
                "payload": base64::engine::general_purpose::STANDARD
                    .encode(profile_xml("com.example.extra", "Extra"))}),
        )
        .await;
    let list = server
        .queue(UDID, json!({"request_type": "ProfileList"}))
        .await;
    device.lock();
    device.lose_reply_to_result(2);
    let done = device.connect_until_idle().await.unwrap();
    let answers: Vec<(&str, Status)> = done.iter().map(|c| (c.uuid.as_str(), c.status)).collect();
    assert_eq!(
        answers,
        [
            (install.as_str(), Status::NotNow),
            (list.as_str(), Status::Acknowledged)
        ]
    );
    assert!(device.pending_result().is_some(), "the reply was lost");

    // Unlocked, the phone connects again (its next poll, whatever the reason) and opens with the
    // ProfileList result it never got an answer to, instead of Idle.
    let _ = device.unlock().await.unwrap();
    let done = device.connect_until_idle().await.unwrap();
    assert!(device.pending_result().is_none());
    let answers: Vec<(&str, Status)> = done.iter().map(|c| (c.uuid.as_str(), c.status)).collect();
    assert_eq!(
        answers,
        [(install.as_str(), Status::Acknowledged)],
        "the NotNow'd InstallProfile comes back on the new connection"
    );
    assert!(
        device
            .profiles()
            .iter()
            .any(|p| p.identifier == "com.example.extra")
    );
    let listed = server.commands(UDID).await;
    let of = |uuid: &str| {
        listed
            .iter()
            .filter(|c| c["command_uuid"] == uuid)
            .cloned()
            .collect::<Vec<_>>()
    };
    let list_rows = of(&list);
    assert_eq!(list_rows.len(), 1, "{listed:?}");
    assert_eq!(list_rows[0]["status"], "acknowledged", "{listed:?}");
    assert_eq!(of(&install)[0]["status"], "acknowledged", "{listed:?}");
    assert!(device.connect_until_idle().await.unwrap().is_empty());
}

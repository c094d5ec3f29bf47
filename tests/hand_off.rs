//! The clean hand-off is proven, never assumed (docs/decisions/0023-hand-off-proven-clean.md):
//! alice -> bob -> bob on one iOS-faithful simulated iPhone, with a removal the device refuses
//! and a managed app the nobody state does not have. A hand-off is clean only once the
//! device's ProfileList and ManagedApplicationList match the nobody state; until then the
//! session log, the progress API, the metric and the webhook say not clean, the portal says
//! "Not finished" (never "removed") and refuses the next sign-in, and Baton checks again
//! (re-sending the removal) until the device complies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_assign::RetryPolicy;
use baton_e2e::portal::{Apns, Browser, clip_path};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::reconciler::AssignmentSettings;
use baton_server::reconciler::hand_off::HandOffPolicy;
use baton_sim::{SimDevice, SimOptions, VppLicences};
use http::Method;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use baton_server::config::WebhookConfig;

const UDID: &str = "00008120-0016A1B2C3D4E5F6";
/// Notes: alice's and bob's, mapped on the device (removals use this bundle id).
const NOTES_STORE_ID: u64 = 310_633_997;
const NOTES: &str = "com.example.notes";
/// Ward: bob's, not in the device's App Store map, so it installs as `store.app<id>`.
const WARD_STORE_ID: u64 = 361_309_726;
const WARD: &str = "com.example.ward";
/// `APP_REMOVAL_FAILED`, as iOS answers a removal it could not do.
const REFUSAL: i64 = 12_087;

/// Hand-off webhook events as received (`type` and `state`).
type Received = Arc<Mutex<Vec<(String, String)>>>;

async fn receive(State(rx): State<Received>, body: Bytes) -> http::StatusCode {
    let event: Value = serde_json::from_slice(&body).unwrap();
    let kind = event["type"].as_str().unwrap_or_default();
    if kind.starts_with("device.hand_off") {
        rx.lock().unwrap().push((
            kind.to_owned(),
            event["state"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    http::StatusCode::NO_CONTENT
}

/// A webhook receiver collecting the hand-off events.
async fn webhook_receiver() -> (WebhookConfig, Received) {
    let rx: Received = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&rx));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut hook = WebhookConfig::new(url, None);
    hook.initial_backoff = Duration::from_millis(10);
    hook.max_backoff = Duration::from_millis(50);
    (hook, rx)
}

/// Waits (bounded) until `n` hand-off events arrived.
async fn hand_off_events(rx: &Received, n: usize) -> Vec<(String, String)> {
    for _ in 0..500 {
        let events = rx.lock().unwrap().clone();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("hand-off events: {:?}", rx.lock().unwrap());
}

/// Checks every 0 s (the timed pass, every [`EAGER_PASS`], starts the next round), 4 rounds.
const EAGER: HandOffPolicy = HandOffPolicy {
    max_rounds: 4,
    backoff: Duration::ZERO,
    max_backoff: Duration::ZERO,
};

/// How often the timed pass runs with [`EAGER`] (it starts due rounds and pushes).
const EAGER_PASS: Duration = Duration::from_millis(50);

/// Checks again only after an hour: the state holds still between the test's steps, and the
/// next round starts when the operator asks (`POST .../hand-off/retry`).
const PATIENT: HandOffPolicy = HandOffPolicy {
    max_rounds: 10,
    backoff: Duration::from_secs(3600),
    max_backoff: Duration::from_secs(3600),
};

async fn server(
    apns: &Apns,
    webhook: Option<WebhookConfig>,
    hand_off: HandOffPolicy,
) -> (Pki, TestServer) {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            webhook,
            push: apns.config(),
            assignment: AssignmentSettings {
                // The engine tries each item once; the hand-off rounds do the re-sending.
                retry: RetryPolicy {
                    max_attempts: 1,
                    backoff_secs: 0,
                    max_backoff_secs: 0,
                },
                hand_off,
                app_install_poll_interval: if hand_off == EAGER {
                    EAGER_PASS
                } else {
                    AssignmentSettings::default().app_install_poll_interval
                },
                ..AssignmentSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    for (user, pw) in [("alice", "pw-alice-1"), ("bob", "pw-bob-1")] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": user, "password": pw})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    for (id, bundle, store, users) in [
        ("notes", NOTES, NOTES_STORE_ID, json!(["alice", "bob"])),
        ("ward", WARD, WARD_STORE_ID, json!(["bob"])),
    ] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/items",
                Some(
                    json!({"id": id, "name": format!("{id} app"), "kind": "app", "bundle_id": bundle,
                    "itunes_store_id": store, "licensing": "vpp"}),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": id, "target": {"users": users}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    (pki, server)
}

async fn device(pki: &Pki, server: &TestServer) -> SimDevice {
    let mut options = SimOptions {
        vpp_licences: VppLicences::All,
        ..SimOptions::default()
    };
    options
        .app_store
        .insert(NOTES_STORE_ID.to_string(), NOTES.to_owned());
    let mut device = baton_e2e::portal::enrolled_sim(server, pki, UDID, options).await;
    device.connect_until_idle().await.unwrap();
    device
}

async fn api(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Value {
    let r = server.api(method, path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

async fn progress(server: &TestServer) -> Value {
    api(
        server,
        Method::GET,
        &format!("/api/v1/devices/{UDID}/progress"),
        None,
    )
    .await
}

async fn last_session(server: &TestServer) -> Value {
    let s = api(
        server,
        Method::GET,
        &format!("/api/v1/devices/{UDID}/sessions"),
        None,
    )
    .await;
    s["sessions"].as_array().unwrap().last().unwrap().clone()
}

async fn not_clean_gauge(server: &TestServer) -> String {
    let metrics = server.client.get("/metrics").await.text();
    metrics
        .lines()
        .find(|l| l.starts_with("baton_devices_not_clean "))
        .unwrap_or_else(|| panic!("no gauge in {metrics}"))
        .to_owned()
}

/// Connects until `done` holds for the progress answer (bounded).
async fn connect_until(
    server: &TestServer,
    device: &mut SimDevice,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<String> {
    let mut sent = Vec::new();
    for _ in 0..40 {
        for c in device.connect_until_idle().await.unwrap() {
            sent.push(format!("{} {:?}", c.request_type, c.status));
        }
        if done(&progress(server).await) {
            return sent;
        }
        // Due rounds are started by the timed pass, not by the device's Idle.
        tokio::time::sleep(2 * EAGER_PASS).await;
    }
    panic!("never {what}: {} after {sent:?}", progress(server).await);
}

/// The operator's `POST /api/v1/devices/{id}/hand-off/retry`: a round starts now.
async fn retry(server: &TestServer) {
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/hand-off/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "verifying", "{}", r.text());
}

fn has_app(device: &SimDevice, bundle: &str) -> bool {
    device.apps().iter().any(|a| a.identifier == bundle)
}

fn state(p: &Value) -> &str {
    p["hand_off"]["state"].as_str().unwrap_or("none")
}

fn remaining_ids(p: &Value) -> Vec<String> {
    p["hand_off"]["remaining"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["identifier"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The portal's page for the next person (the device's sign-in URL) and the signed-out page.
async fn portal_pages(server: &TestServer, device: &SimDevice) -> (String, String) {
    let mut browser = Browser::default();
    let base = clip_path(device, "Sign in");
    let front = browser.get(server, &base).await.text();
    let out = browser
        .get(server, &format!("{base}/signed-out"))
        .await
        .text();
    (front, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_bob_bob_a_hand_off_is_clean_only_once_the_device_proves_it() {
    let apns = Apns::start().await;
    let (pki, server) = server(&apns, None, PATIENT).await;
    let mut device = device(&pki, &server).await;
    let sign = |how: &'static str, user: Option<&'static str>| {
        let server = &server;
        async move {
            api(
                server,
                Method::POST,
                &format!("/api/v1/devices/{UDID}/{how}"),
                user.map(|u| json!({ "username": u })),
            )
            .await
        }
    };

    // alice: notes installs and is listed Managed.
    sign("sign-in", Some("alice")).await;
    connect_until(&server, &mut device, "ready for alice", |p| {
        p["ready"] == true
    })
    .await;
    assert!(has_app(&device, NOTES));

    // The device refuses to remove notes: the hand-off is not clean, and says why.
    device
        .options_mut()
        .refuse_removals
        .insert(NOTES.to_owned(), REFUSAL);
    sign("sign-out", None).await;
    assert_eq!(state(&progress(&server).await), "verifying");
    connect_until(&server, &mut device, "not clean", |p| {
        state(p) == "not_clean"
    })
    .await;
    let p = progress(&server).await;
    assert_eq!(p["ready"], false, "{p}");
    assert_eq!(remaining_ids(&p), vec![NOTES.to_owned()], "{p}");
    let reason = p["hand_off"]["remaining"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("12087"), "{p}");
    assert_eq!(p["hand_off"]["remaining"][0]["name"], "notes app", "{p}");
    let alice = last_session(&server).await;
    assert_eq!(alice["username"], "alice");
    assert_eq!(alice["clean_hand_off"], false, "{alice}");
    assert_eq!(alice["hand_off_remaining"][0]["identifier"], NOTES);
    assert_eq!(not_clean_gauge(&server).await, "baton_devices_not_clean 1");

    // The portal never says "removed" while notes is there, and nobody signs in.
    let (front, out) = portal_pages(&server, &device).await;
    for html in [&front, &out] {
        assert!(html.contains("Not finished"), "{html}");
        assert!(html.contains("notes app"), "{html}");
        assert!(!html.contains("were removed"), "{html}");
        assert!(!html.contains("name=\"password\""), "{html}");
    }

    // The next round re-sends the removal; still refused.
    retry(&server).await;
    let sent = connect_until(&server, &mut device, "the round's verdict", |p| {
        state(p) == "not_clean"
    })
    .await;
    // The removal goes before the round's lists.
    assert_eq!(
        sent.iter().take(3).collect::<Vec<_>>(),
        [
            "RemoveApplication Error",
            "ProfileList Acknowledged",
            "ManagedApplicationList Acknowledged"
        ],
        "{sent:?}"
    );
    assert_eq!(state(&progress(&server).await), "not_clean");

    // The device complies: the next round proves the hand-off clean.
    device.options_mut().refuse_removals.clear();
    retry(&server).await;
    connect_until(&server, &mut device, "clean", |p| state(p) == "clean").await;
    assert!(!has_app(&device, NOTES));
    let p = progress(&server).await;
    assert_eq!(p["ready"], true, "{p}");
    assert_eq!(last_session(&server).await["clean_hand_off"], true);
    assert_eq!(not_clean_gauge(&server).await, "baton_devices_not_clean 0");
    let (front, out) = portal_pages(&server, &device).await;
    assert!(front.contains("name=\"password\""), "{front}");
    assert!(out.contains("Your items were removed"), "{out}");

    // bob: notes and ward; ward installs under another bundle id (store.app<id>), which the
    // server counts as ward's failure (given up at once with this retry policy).
    sign("sign-in", Some("bob")).await;
    connect_until(&server, &mut device, "bob's items settled", |p| {
        p["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["state"] == "installed" || i["given_up"] == true)
    })
    .await;
    let stray = format!("store.app{WARD_STORE_ID}");
    assert!(has_app(&device, &stray), "{:?}", device.apps());

    // bob signs out: the stray managed app makes the hand-off not clean; Baton removes it.
    sign("sign-out", None).await;
    connect_until(&server, &mut device, "bob's hand-off judged", |p| {
        state(p) != "verifying"
    })
    .await;
    let bob = last_session(&server).await;
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["clean_hand_off"], false, "{bob}");
    assert_eq!(bob["hand_off_remaining"][0]["identifier"], stray.as_str());
    // Baton removed the stray app at once (it adopted it); the next round proves it.
    retry(&server).await;
    connect_until(&server, &mut device, "clean after bob", |p| {
        state(p) == "clean"
    })
    .await;
    assert!(!has_app(&device, &stray), "{:?}", device.apps());
    assert_eq!(last_session(&server).await["clean_hand_off"], true);

    // bob again: ward failed in the earlier session but is pending, not failed, until the
    // device answers; and it is sent again.
    sign("sign-in", Some("bob")).await;
    let p = progress(&server).await;
    let ward = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "ward")
        .unwrap();
    assert_eq!(ward["state"], "pending", "{p}");
    let sent = device.connect_until_idle().await.unwrap();
    assert!(
        sent.iter().any(|c| c.request_type == "InstallApplication"),
        "{sent:?}"
    );
}

/// Baton gives up after its last round, says so to the operator (the progress API and the
/// webhook), and an operator's retry starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_that_stays_not_clean_is_given_up_and_an_operator_can_retry() {
    let apns = Apns::start().await;
    let (hook, events) = webhook_receiver().await;
    let (pki, server) = server(&apns, Some(hook), EAGER).await;
    let mut device = device(&pki, &server).await;
    api(
        &server,
        Method::POST,
        &format!("/api/v1/devices/{UDID}/sign-in"),
        Some(json!({"username": "alice"})),
    )
    .await;
    connect_until(&server, &mut device, "ready", |p| p["ready"] == true).await;
    device
        .options_mut()
        .refuse_removals
        .insert(NOTES.to_owned(), REFUSAL);
    api(
        &server,
        Method::POST,
        &format!("/api/v1/devices/{UDID}/sign-out"),
        None,
    )
    .await;
    connect_until(&server, &mut device, "given up", |p| state(p) == "given_up").await;
    let p = progress(&server).await;
    assert_eq!(p["hand_off"]["rounds_not_clean"], 4, "{p}");
    // Given up: more sessions send no removal.
    let sent = device.connect_until_idle().await.unwrap();
    assert!(
        !sent.iter().any(|c| c.request_type == "RemoveApplication"),
        "{sent:?}"
    );
    let (front, _) = portal_pages(&server, &device).await;
    assert!(front.contains("Baton stopped trying"), "{front}");
    // An operator starts over while the device still refuses: during the round the sign-in
    // form is shown (nothing is known to be left yet) ...
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/hand-off/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "verifying");
    assert_eq!(r.json()["rounds_not_clean"], 0);
    let mut browser = Browser::default();
    let base = clip_path(&device, "Sign in");
    let form = browser.get(&server, &base).await.text();
    let csrf = baton_e2e::portal::attr_after(&form, "name=\"csrf\"", "value");
    // ... but once the rounds find notes still there (and Baton gives up again), the form's
    // post is refused.
    connect_until(&server, &mut device, "given up again", |p| {
        state(p) == "given_up"
    })
    .await;
    let r = browser
        .post(
            &server,
            &format!("{base}/sign-in"),
            &[
                ("username", "bob"),
                ("password", "pw-bob-1"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        409,
        "{:?} {}",
        r.headers.get(http::header::LOCATION),
        progress(&server).await
    );
    assert!(r.text().contains("Not finished"), "{}", r.text());
    assert_eq!(
        progress(&server).await["assignee"],
        "nobody",
        "bob was not signed in"
    );

    // Fixed on the device: the operator checks again, and it is clean.
    device.options_mut().refuse_removals.clear();
    retry(&server).await;
    connect_until(&server, &mut device, "clean", |p| state(p) == "clean").await;
    assert!(!has_app(&device, NOTES));
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/hand-off/retry"),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // Found, given up, given up again after the operator's retry, then clean.
    let kinds = |state: &str| {
        (
            if state == "clean" {
                "device.hand_off_clean"
            } else {
                "device.hand_off_not_clean"
            }
            .to_owned(),
            state.to_owned(),
        )
    };
    assert_eq!(
        hand_off_events(&events, 4).await,
        vec![
            kinds("not_clean"),
            kinds("given_up"),
            kinds("given_up"),
            kinds("clean")
        ]
    );
}

//! App installs end to end with iOS-faithful baton-sim devices: an acknowledged
//! InstallApplication is only "accepted" [Y application.install]; the install finishes later
//! and only ManagedApplicationList says how it ended [Y application.managed.list; F28738]. The
//! portal and the sign-in-to-ready time wait for `Managed`; an app that fails every time is
//! given up after the retry policy, shown failed with its reason and not sent again; App Store
//! apps licensed through VPP are sent with `PurchaseMethod` 1 (the sim, with no Apple ID
//! signed in, refuses PurchaseMethod 0 like iOS [P `promptUserToLoginToiTunesIfNeeded`]); a
//! Shared iPad never gets a store app without VPP [P; Y: `PurchaseMethodNotSupportedInMultiUser`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_assign::RetryPolicy;
use baton_e2e::portal::{Apns, Browser, clip_path};
use baton_e2e::{Pki, Reply, ServerOptions, TestServer};
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{AppInstallOutcome, AppStatus, SimDevice, SimOptions};
use http::Method;
use serde_json::{Value, json};

const UDID: &str = "00008120-0007A1B2C3D4E5F6";
const STORE_ID: u64 = 361_309_726;
const BUNDLE: &str = "com.example.ward";

/// A server with the sign-in clip, carol, and one App Store app for her (`licensing`).
async fn server(apns: &Apns, assignment: AssignmentSettings, licensing: &str) -> (Pki, TestServer) {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            assignment,
            push: apns.config(),
            ..ServerOptions::default()
        },
    )
    .await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "carol", "password": "pw-carol", "full_name": "Carol"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(
                json!({"id": "ward", "name": "Ward app", "kind": "app", "bundle_id": BUNDLE,
                "itunes_store_id": STORE_ID, "licensing": licensing}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": "ward", "target": {"users": ["carol"]}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    (pki, server)
}

/// An iOS-faithful device (no Apple ID signed in; VPP licences for the store ids it knows),
/// enrolled with its baseline installed.
async fn device(pki: &Pki, server: &TestServer, options: SimOptions) -> SimDevice {
    let mut options = options;
    options
        .app_store
        .insert(STORE_ID.to_string(), BUNDLE.to_owned());
    let mut device = baton_e2e::portal::enrolled_sim(server, pki, UDID, options).await;
    device.connect_until_idle().await.unwrap();
    device
}

/// Carol signs in through the portal; returns the browser and the progress page's path.
async fn sign_in(server: &TestServer, device: &SimDevice) -> (Browser, String) {
    let mut browser = Browser::default();
    let (_, r) = browser
        .submit(
            server,
            &clip_path(device, "Sign in"),
            &[("username", "carol"), ("password", "pw-carol")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let progress = r
        .headers
        .get(http::header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (browser, progress)
}

async fn page(server: &TestServer, browser: &mut Browser, path: &str) -> Reply {
    let r = browser.get(server, path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

fn says_ready(r: &Reply) -> bool {
    r.text().contains("Your device is ready")
}

async fn progress(server: &TestServer) -> Value {
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/progress"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// The app item in a progress answer.
fn ward(p: &Value) -> &Value {
    p["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "ward")
        .unwrap_or_else(|| panic!("no ward item in {p}"))
}

async fn ready_at(server: &TestServer) -> Value {
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["sessions"].as_array().unwrap().last().unwrap()["ready_at"].clone()
}

fn app_status(device: &SimDevice) -> Option<AppStatus> {
    device
        .apps()
        .iter()
        .find(|a| a.identifier == BUNDLE)
        .map(|a| a.status)
}

/// Fails on a server that takes the Ack for an installed app: after the first session the app
/// is only `Queued` on the device, yet such a server says ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_is_ready_only_once_the_device_lists_the_app_managed() {
    let apns = Apns::start().await;
    let (pki, server) = server(&apns, AssignmentSettings::default(), "vpp").await;
    let mut device = device(&pki, &server, SimOptions::default()).await;
    let (mut browser, path) = sign_in(&server, &device).await;

    let first = device.connect_until_idle().await.unwrap();
    let install = first
        .iter()
        .find(|c| c.request_type == "InstallApplication")
        .expect("InstallApplication sent");
    // VPP: sent with PurchaseMethod 1, so the device (no Apple ID) accepts it.
    assert_eq!(
        install.status,
        baton_proto::Status::Acknowledged,
        "{first:?}"
    );
    assert!(
        first
            .iter()
            .any(|c| c.request_type == "ManagedApplicationList"),
        "the server asks how the install went at the end of the session: {first:?}"
    );
    assert_eq!(app_status(&device), Some(AppStatus::Queued));
    assert!(!says_ready(&page(&server, &mut browser, &path).await));
    let p = progress(&server).await;
    assert_eq!(p["ready"], false, "{p}");
    assert_eq!(ward(&p)["state"], "pending", "{p}");
    assert!(ready_at(&server).await.is_null());

    // Later sessions: the install moves on; the page says ready exactly when the device lists
    // the app Managed.
    let mut ready = false;
    for _ in 0..10 {
        device.connect_until_idle().await.unwrap();
        ready = says_ready(&page(&server, &mut browser, &path).await);
        if ready {
            break;
        }
    }
    assert!(ready, "never ready: {}", progress(&server).await);
    assert_eq!(app_status(&device), Some(AppStatus::Managed));
    assert!(ready_at(&server).await.is_u64());
    assert_eq!(ward(&progress(&server).await)["state"], "installed");
}

/// Fails on a server whose Ack clears the failure count: the app is re-sent for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_always_fails_is_given_up_with_its_reason() {
    let apns = Apns::start().await;
    let retry = RetryPolicy {
        max_attempts: 3,
        backoff_secs: 0,
        max_backoff_secs: 0,
    };
    let (pki, server) = server(
        &apns,
        AssignmentSettings {
            retry,
            ..AssignmentSettings::default()
        },
        "vpp",
    )
    .await;
    let options = SimOptions {
        app_install_outcome: AppInstallOutcome::Failed,
        ..SimOptions::default()
    };
    let mut device = device(&pki, &server, options).await;
    let (mut browser, path) = sign_in(&server, &device).await;

    let mut installs = 0;
    for _ in 0..30 {
        let done = device.connect_until_idle().await.unwrap();
        installs += done
            .iter()
            .filter(|c| c.request_type == "InstallApplication")
            .count();
        if ward(&progress(&server).await)["given_up"] == true {
            break;
        }
    }
    let p = progress(&server).await;
    let item = ward(&p);
    assert_eq!(item["state"], "failed", "{p}");
    assert_eq!(item["given_up"], true, "{p}");
    assert!(item["reason"].as_str().unwrap().contains("Failed"), "{p}");
    assert_eq!(p["ready"], false);
    assert_eq!(installs, 3, "one install per allowed attempt");
    // Given up: more sessions send nothing more.
    for _ in 0..3 {
        let done = device.connect_until_idle().await.unwrap();
        assert!(
            !done.iter().any(|c| c.request_type == "InstallApplication"),
            "{done:?}"
        );
    }
    let r = page(&server, &mut browser, &path).await;
    let html = r.text();
    assert!(!says_ready(&r));
    assert!(html.contains("Failed"), "{html}");
    assert!(html.contains("reported the install as Failed"), "{html}");
    assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(ready_at(&server).await.is_null());
}

/// A Shared iPad refuses App Store installs with PurchaseMethod 0: Baton plans none, reports
/// the problem, and the lint warns. Fails on a server that sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_ipad_gets_no_store_app_without_vpp() {
    let apns = Apns::start().await;
    let (pki, server) = server(&apns, AssignmentSettings::default(), "apple_id").await;
    let lint = server.api(Method::GET, "/api/v1/lint", None).await;
    assert!(
        lint.text().contains("store_app_without_vpp"),
        "{}",
        lint.text()
    );
    let options = SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    };
    let mut device = device(&pki, &server, options).await;
    device.user_sign_in("carol").await.unwrap();
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-in"),
            Some(json!({"username": "carol"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("store_app_needs_vpp"), "{}", r.text());
    let done = device.connect_until_idle().await.unwrap();
    assert!(
        !done.iter().any(|c| c.request_type == "InstallApplication"),
        "{done:?}"
    );
    assert!(device.apps().is_empty());
}

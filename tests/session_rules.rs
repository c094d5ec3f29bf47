//! Session rules end to end (issue 10), over real HTTP with baton-sim devices and a mock APNs:
//! the "Stay signed in?" prompt and each branch of its rule, leases that end by themselves
//! (also across a restart), an unanswered prompt logged as an interrupt, lockout and back-off
//! after repeated failures, disabled users, and the sign-in log (filters, CSV, webhooks).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use baton_e2e::portal::{Apns, Browser, attr_after, clip_path, profile_xml, sign_in_path};
use baton_e2e::{Pki, Reply, ServerOptions, TestServer};
use baton_server::config::WebhookConfig;
use baton_server::lockout::LockoutSettings;
use baton_server::portal::pages::{DISABLED_USER, WRONG_CREDENTIALS};
use baton_server::reconciler::AssignmentSettings;
use baton_server::session_policy::SessionSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::{Value, json};

/// A device in the non-shared "desk" group.
const DESK: &str = "00008120-0003C4D5E6F7A8B9";
/// A device in no group: shared mode (the default).
const KIOSK: &str = "00008120-0004D5E6F7A8B9C0";

/// The mail profile as installed (Baton names item profiles `com.baton.item.<id>`).
const MAIL: &str = "com.baton.item.mail";

const PROMPT_HEADING: &str = "Stay signed in?";

async fn server_with(apns: &Apns, pki: &Pki, options: ServerOptions) -> TestServer {
    let server = TestServer::start(
        pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            push: apns.config(),
            ..options
        },
    )
    .await;
    for name in ["alice", "carol", "erin"] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": name, "password": format!("pw-{name}"),
                    "email": format!("{name}@example.com")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    for (id, display, target) in [
        ("wifi", "Corp Wi-Fi", json!("all")),
        (
            "mail",
            "Mail for $USER.email",
            json!({"users": ["alice", "carol", "erin"]}),
        ),
    ] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/items",
                Some(json!({"id": id, "name": id, "kind": "profile",
                    "mobileconfig": b64(profile_xml(&format!("upload.{id}"), display))})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": id, "target": target})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    for (id, kind, members) in [
        ("desk", "device", json!([DESK])),
        ("locums", "user", json!(["carol"])),
    ] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/groups",
                Some(json!({"name": id, "kind": kind, "members": members})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    server
}

/// An enrolled sim device that has processed its first commands (the sign-in web clip).
async fn enroll(server: &TestServer, pki: &Pki, udid: &str) -> SimDevice {
    let mut device =
        baton_e2e::portal::enrolled_sim(server, pki, udid, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();
    device
}

async fn set_policy(server: &TestServer, policy: Value) {
    let r = server
        .api(Method::PUT, "/api/v1/session-policy", Some(policy))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn desk_policy(show: bool, desk_shared: bool) -> Value {
    json!({
        "show_keep_signed_in": show,
        "prompt_timeout_seconds": 10,
        "device_groups": {"desk": {"shared_mode": desk_shared}},
        "user_groups": {"locums": {"persistent_sessions": "never"}},
    })
}

async fn assignee(server: &TestServer, udid: &str) -> String {
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{udid}"), None)
        .await;
    assert_eq!(view.status, 200, "{}", view.text());
    view.json()["assignee"].as_str().unwrap().to_owned()
}

/// The device's current lease (null when signed out).
async fn lease(server: &TestServer, udid: &str) -> Value {
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{udid}/session-policy"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["lease"].clone()
}

/// The sign-in log with `query` (e.g. `username=alice&limit=1`), newest first.
async fn log(server: &TestServer, query: &str) -> Vec<Value> {
    let r = server
        .api(Method::GET, &format!("/api/v1/sign-in-log?{query}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

async fn newest(server: &TestServer, username: &str) -> Value {
    log(server, &format!("username={username}&limit=1"))
        .await
        .pop()
        .unwrap_or_else(|| panic!("no sign-in log entry for {username}"))
}

fn location(r: &Reply) -> String {
    r.headers
        .get(http::header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn set_cookie(r: &Reply) -> String {
    r.headers
        .get(http::header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The path of DESK's portal page `page` under its current device token.
fn desk_path(server: &TestServer, page: &str) -> String {
    format!("{}/{page}", sign_in_path(server, DESK))
}

/// Opens the device's "Sign in" clip and posts the form; returns the browser and the answer.
async fn portal_sign_in(
    server: &TestServer,
    device: &SimDevice,
    user: &str,
    password: &str,
) -> (Browser, Reply) {
    let mut browser = Browser::default();
    let (_, r) = browser
        .submit(
            server,
            &sign_in_path(server, device.udid()),
            &[("username", user), ("password", password)],
        )
        .await;
    (browser, r)
}

/// Answers the pending prompt with `answer` from `browser` (its page, CSRF token and cookie).
async fn answer_prompt(
    server: &TestServer,
    device: &SimDevice,
    browser: &mut Browser,
    answer: &str,
) -> Reply {
    let stay = format!("{}/stay", sign_in_path(server, device.udid()));
    let page = browser.get(server, &stay).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains(PROMPT_HEADING), "{}", page.text());
    let html = page.text();
    let action = attr_after(&html, "<form", "action");
    let csrf = attr_after(&html, "name=\"csrf\"", "value");
    browser
        .post(server, &action, &[("answer", answer), ("csrf", &csrf)])
        .await
}

async fn admin_sign_in(server: &TestServer, udid: &str, user: &str, persistent: bool) -> Reply {
    server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{udid}/sign-in"),
            Some(json!({"username": user, "persistent": persistent})),
        )
        .await
}

async fn admin_sign_out(server: &TestServer, udid: &str) {
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{udid}/sign-out"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Signs `user` in and out once through the admin API, so the device is one they used.
async fn make_familiar(server: &TestServer, udid: &str, user: &str) {
    let r = admin_sign_in(server, udid, user, false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    admin_sign_out(server, udid).await;
}

/// Polls `what` until it returns true, at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

fn reasons(entry: &Value) -> Vec<String> {
    entry["risk_reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_appears_only_when_every_rule_allows_it() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(&apns, &pki, ServerOptions::default()).await;
    set_policy(&server, desk_policy(true, false)).await;
    let desk = enroll(&server, &pki, DESK).await;
    let kiosk = enroll(&server, &pki, KIOSK).await;

    // A device alice never used: risky, no prompt; a leased session and a session cookie.
    let (_, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(
        (r.status.as_u16(), location(&r)),
        (303, desk_path(&server, "progress"))
    );
    assert!(!set_cookie(&r).contains("Max-Age"), "{}", set_cookie(&r));
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["result"], &entry["reason"], &entry["kmsi_shown"]),
        (&json!("success"), &json!("success"), &json!(false))
    );
    assert_eq!(entry["risk"], "high");
    assert!(reasons(&entry).contains(&"new_device_for_user".to_owned()));
    let l = lease(&server, DESK).await;
    assert_eq!(l["persistent"], false);
    assert!(l["expires_at_ms"].as_u64().is_some());
    admin_sign_out(&server, DESK).await;

    // Familiar device, low risk, not shared, toggle on, groups allow: the prompt. Only the
    // browser that signed in can answer it; Yes makes the session and the cookie persistent.
    // A stranger kept a sign-in form (its CSRF token) from before; the device URL alone
    // shows them no prompt.
    let mut stranger = Browser::default();
    let page = stranger.get(&server, &sign_in_path(&server, DESK)).await;
    let csrf = attr_after(&page.text(), "name=\"csrf\"", "value");
    let (mut browser, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(
        (r.status.as_u16(), location(&r)),
        (303, desk_path(&server, "stay"))
    );
    // The sign-in waiting on the prompt is logged at once, as prompted; the answer adds its
    // own entry below.
    let before_answer = newest(&server, "alice").await;
    assert_eq!(
        (
            &before_answer["result"],
            &before_answer["reason"],
            &before_answer["how"],
            &before_answer["kmsi_shown"],
            &before_answer["kmsi_answer"]
        ),
        (
            &json!("prompted"),
            &json!("stay_signed_in_prompt"),
            &json!("portal"),
            &json!(true),
            &Value::Null
        )
    );
    let page = stranger.get(&server, &desk_path(&server, "stay")).await;
    assert_eq!(page.status, 303, "{}", page.text());
    let refused = stranger
        .post(
            &server,
            &desk_path(&server, "stay"),
            &[("answer", "yes"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert_eq!(lease(&server, DESK).await["persistent"], false);
    let r = answer_prompt(&server, &desk, &mut browser, "yes").await;
    assert_eq!(
        (r.status.as_u16(), location(&r)),
        (303, desk_path(&server, "progress"))
    );
    assert!(set_cookie(&r).contains("Max-Age="), "{}", set_cookie(&r));
    let l = lease(&server, DESK).await;
    assert_eq!(
        (&l["persistent"], &l["expires_at_ms"]),
        (&json!(true), &Value::Null)
    );
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["kmsi_shown"], &entry["kmsi_answer"], &entry["risk"]),
        (&json!(true), &json!(true), &json!("low"))
    );
    let page = browser.get(&server, &sign_in_path(&server, DESK)).await;
    assert!(
        page.text().contains("until you sign out"),
        "{}",
        page.text()
    );
    admin_sign_out(&server, DESK).await;

    // No: leased, session cookie.
    let (mut browser, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(location(&r), desk_path(&server, "stay"));
    let r = answer_prompt(&server, &desk, &mut browser, "no").await;
    assert_eq!(r.status, 303);
    assert!(!set_cookie(&r).contains("Max-Age"), "{}", set_cookie(&r));
    assert_eq!(lease(&server, DESK).await["persistent"], false);
    assert_eq!(newest(&server, "alice").await["kmsi_answer"], false);
    admin_sign_out(&server, DESK).await;

    // A user group that says never: no prompt, even on a familiar device at low risk.
    make_familiar(&server, DESK, "carol").await;
    let (_, r) = portal_sign_in(&server, &desk, "carol", "pw-carol").await;
    assert_eq!(location(&r), desk_path(&server, "progress"));
    let entry = newest(&server, "carol").await;
    assert_eq!(
        (&entry["kmsi_shown"], &entry["risk"]),
        (&json!(false), &json!("low"))
    );
    admin_sign_out(&server, DESK).await;
    let r = admin_sign_in(&server, DESK, "carol", true).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(newest(&server, "carol").await["reason"], "policy");
    assert_eq!(assignee(&server, DESK).await, "nobody");

    // A shared-mode device: no prompt, and no persistent session for anyone.
    make_familiar(&server, KIOSK, "alice").await;
    let (_, r) = portal_sign_in(&server, &kiosk, "alice", "pw-alice").await;
    let kiosk_progress = format!("{}/progress", sign_in_path(&server, KIOSK));
    assert_eq!(location(&r), kiosk_progress);
    assert!(!set_cookie(&r).contains("Max-Age"));
    assert_eq!(newest(&server, "alice").await["kmsi_shown"], false);
    admin_sign_out(&server, KIOSK).await;
    let r = admin_sign_in(&server, KIOSK, "alice", true).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(assignee(&server, KIOSK).await, "nobody");

    // The toggle off: no prompt anywhere.
    set_policy(&server, desk_policy(false, false)).await;
    let (_, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(location(&r), desk_path(&server, "progress"));
    assert_eq!(newest(&server, "alice").await["kmsi_shown"], false);
    admin_sign_out(&server, DESK).await;

    // The device turns shared while the prompt is open: Yes no longer makes anything
    // persistent, whatever the toggle says.
    set_policy(&server, desk_policy(true, false)).await;
    let (mut browser, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(location(&r), desk_path(&server, "stay"));
    set_policy(&server, desk_policy(true, true)).await;
    let page = browser.get(&server, &desk_path(&server, "stay")).await;
    let csrf = attr_after(&page.text(), "name=\"csrf\"", "value");
    let r = browser
        .post(
            &server,
            &desk_path(&server, "stay"),
            &[("answer", "yes"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(!set_cookie(&r).contains("Max-Age"), "{}", set_cookie(&r));
    let l = lease(&server, DESK).await;
    assert_eq!(l["persistent"], false, "{l}");
    let entry = newest(&server, "alice").await;
    assert_eq!(entry["kmsi_answer"], true);
    assert!(
        entry["detail"].as_str().unwrap().contains("not allowed"),
        "{entry}"
    );
    admin_sign_out(&server, DESK).await;
    set_policy(&server, desk_policy(true, false)).await;

    // Recent failures make the next sign-in risky: no prompt.
    let (_, r) = portal_sign_in(&server, &desk, "alice", "not-alices").await;
    assert_eq!(r.status, 422);
    assert!(r.text().contains(WRONG_CREDENTIALS));
    let (_, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert_eq!(location(&r), desk_path(&server, "progress"));
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["kmsi_shown"], &entry["risk"]),
        (&json!(false), &json!("high"))
    );
    assert!(reasons(&entry).contains(&"recent_failures_user".to_owned()));
    assert!(reasons(&entry).contains(&"recent_failures_device".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_ends_by_itself_with_a_warning_and_a_clean_hand_off() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(
        &apns,
        &pki,
        ServerOptions {
            session: SessionSettings {
                default_lease: Duration::from_secs(5),
                lease_check_interval: Duration::from_secs(1),
                ..SessionSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let mut device = enroll(&server, &pki, KIOSK).await;
    let baseline: Vec<String> = device
        .profiles()
        .iter()
        .map(|p| p.identifier.clone())
        .collect();
    let signed_in_at = Instant::now();
    let (mut browser, r) = portal_sign_in(&server, &device, "alice", "pw-alice").await;
    assert_eq!(r.status, 303);
    device.connect_until_idle().await.unwrap();
    assert!(device.profiles().iter().any(|p| p.identifier == MAIL));
    // The signed-in page warns (the lease ends within the warning period).
    let page = browser.get(&server, &clip_path(&device, "Sign out")).await;
    assert!(
        page.text().contains("signed out automatically"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("role=\"alert\""), "{}", page.text());

    assert_eq!(assignee(&server, KIOSK).await, "alice");
    eventually(Duration::from_secs(10), "lease expiry", || async {
        assignee(&server, KIOSK).await == "nobody"
    })
    .await;
    let elapsed = signed_in_at.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(8),
        "{elapsed:?}"
    );
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["result"], &entry["reason"], &entry["how"]),
        (&json!("signed_out"), &json!("expired"), &json!("automatic"))
    );
    assert_eq!(lease(&server, KIOSK).await, Value::Null);

    // The device gets the removals; the hand-off check proves it clean.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        device.connect_until_idle().await.unwrap();
        let sessions = server
            .api(
                Method::GET,
                &format!("/api/v1/devices/{KIOSK}/sessions"),
                None,
            )
            .await
            .json();
        let last = sessions["sessions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        if last["ended_how"] == "expired" && last["clean_hand_off"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no clean hand-off: {last}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut now: Vec<String> = device
        .profiles()
        .iter()
        .map(|p| p.identifier.clone())
        .collect();
    now.sort();
    let mut baseline = baseline;
    baseline.sort();
    assert_eq!(now, baseline, "back to the signed-out baseline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_survive_a_restart() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let mut server = server_with(
        &apns,
        &pki,
        ServerOptions {
            session: SessionSettings {
                default_lease: Duration::from_secs(4),
                lease_check_interval: Duration::from_secs(1),
                ..SessionSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let _device = enroll(&server, &pki, KIOSK).await;
    let addr = server.running().local_addr();

    // A lease still running across the restart keeps its end, even though the restarted
    // server's default lease is an hour.
    let signed_in_at = Instant::now();
    let r = admin_sign_in(&server, KIOSK, "alice", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let end = r.json()["lease"]["expires_at_ms"].as_u64().unwrap();
    server.stop_running().await;
    server.config_mut().listen = addr;
    server.config_mut().session.default_lease = Duration::from_secs(3600);
    server.start_again().await;
    assert_eq!(assignee(&server, KIOSK).await, "alice");
    assert_eq!(lease(&server, KIOSK).await["expires_at_ms"], end);
    eventually(Duration::from_secs(10), "expiry after restart", || async {
        assignee(&server, KIOSK).await == "nobody"
    })
    .await;
    let elapsed = signed_in_at.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(7),
        "{elapsed:?}"
    );
    assert_eq!(newest(&server, "alice").await["reason"], "expired");

    // The restarted server's own default applies to new sign-ins.
    let r = admin_sign_in(&server, KIOSK, "carol", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let lease_of = |r: &Reply| {
        let l = &r.json()["lease"];
        l["expires_at_ms"].as_u64().unwrap() - l["started_at_ms"].as_u64().unwrap()
    };
    assert_eq!(lease_of(&r), 3_600_000);
    admin_sign_out(&server, KIOSK).await;

    // A lease that ended while the server was down is acted on at start-up.
    server.stop_running().await;
    server.config_mut().session.default_lease = Duration::from_secs(2);
    server.start_again().await;
    let r = admin_sign_in(&server, KIOSK, "carol", false).await;
    assert_eq!(lease_of(&r), 2_000);
    server.stop_running().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.start_again().await;
    eventually(Duration::from_secs(3), "sign-out at start-up", || async {
        assignee(&server, KIOSK).await == "nobody"
    })
    .await;
    assert_eq!(newest(&server, "carol").await["reason"], "expired");
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{KIOSK}/sessions"),
            None,
        )
        .await
        .json();
    let ended: Vec<&Value> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ended_how"] == "expired")
        .collect();
    assert_eq!(ended.len(), 2, "{sessions}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_prompt_is_logged_as_an_interrupt() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(
        &apns,
        &pki,
        ServerOptions {
            session: SessionSettings {
                lease_check_interval: Duration::from_secs(1),
                ..SessionSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    set_policy(&server, desk_policy(true, false)).await;
    let desk = enroll(&server, &pki, DESK).await;
    make_familiar(&server, DESK, "alice").await;
    let (mut browser, r) = portal_sign_in(&server, &desk, "alice", "pw-alice").await;
    assert!(location(&r).ends_with("/stay"), "{}", location(&r));
    let stay = location(&r);
    // The page is open; nobody answers. The sign-in itself stands (leased).
    let page = browser.get(&server, &stay).await;
    let csrf = attr_after(&page.text(), "name=\"csrf\"", "value");
    assert!(log(&server, "result=interrupted").await.is_empty());
    // The sign-in is in the log at once, as prompted.
    let prompted = log(&server, "username=alice&result=prompted").await;
    assert_eq!(prompted.len(), 1, "{prompted:?}");
    assert_eq!(
        (&prompted[0]["reason"], &prompted[0]["kmsi_shown"]),
        (&json!("stay_signed_in_prompt"), &json!(true))
    );
    eventually(Duration::from_secs(20), "interrupted entry", || async {
        !log(&server, "result=interrupted").await.is_empty()
    })
    .await;
    let entries = log(&server, "username=alice&result=interrupted").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (&e["reason"], &e["kmsi_shown"], &e["kmsi_answer"]),
        (&json!("interrupted"), &json!(true), &Value::Null)
    );
    assert_eq!(assignee(&server, DESK).await, "alice");
    // A late Yes changes nothing.
    let r = browser
        .post(&server, &stay, &[("answer", "yes"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status, 303);
    assert!(!set_cookie(&r).contains("Max-Age"));
    assert_eq!(lease(&server, DESK).await["persistent"], false);
    assert_eq!(
        log(&server, "username=alice&result=interrupted")
            .await
            .len(),
        1
    );
}

/// Receives webhook events (no signature check: `webhooks.rs` covers that).
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    async fn receive(State(events): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> StatusCode {
        events
            .lock()
            .unwrap()
            .push(serde_json::from_slice(&body).unwrap());
        StatusCode::NO_CONTENT
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&events));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_out_with_back_off_and_every_attempt_is_logged() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let (url, events) = webhook_receiver().await;
    let mut hook = WebhookConfig::new(url, None);
    hook.initial_backoff = Duration::from_millis(10);
    let server = server_with(
        &apns,
        &pki,
        ServerOptions {
            webhook: Some(hook),
            lockout: LockoutSettings {
                user_threshold: 3,
                device_threshold: 6,
                first_lockout: Duration::from_secs(2),
                max_lockout: Duration::from_secs(8),
                ..LockoutSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    let kiosk = enroll(&server, &pki, KIOSK).await;

    for i in 1..=3 {
        let (_, r) = portal_sign_in(&server, &kiosk, "erin", &format!("wrong-{i}")).await;
        let expected = if i < 3 { 422 } else { 429 };
        assert_eq!(r.status, expected, "attempt {i}: {}", r.text());
    }
    // Locked: the right password is not even checked.
    let (_, r) = portal_sign_in(&server, &kiosk, "erin", "pw-erin").await;
    assert_eq!(r.status, 429);
    assert!(
        r.text().contains("Too many sign-in attempts"),
        "{}",
        r.text()
    );
    assert_eq!(assignee(&server, KIOSK).await, "nobody");
    let entry = newest(&server, "erin").await;
    assert_eq!(
        (&entry["result"], &entry["reason"]),
        (&json!("failure"), &json!("locked_out"))
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, r) = portal_sign_in(&server, &kiosk, "erin", "pw-erin").await;
    assert_eq!(r.status, 303, "{}", r.text());
    let entry = newest(&server, "erin").await;
    assert_eq!(entry["result"], "success");
    assert!(reasons(&entry).contains(&"lockout_just_ended".to_owned()));
    admin_sign_out(&server, KIOSK).await;

    // Back-off: the second lockout lasts twice as long.
    for i in 1..=3 {
        portal_sign_in(&server, &kiosk, "erin", &format!("again-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (_, r) = portal_sign_in(&server, &kiosk, "erin", "pw-erin").await;
    assert_eq!(r.status, 429, "still locked after 2 s: {}", r.text());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let (_, r) = portal_sign_in(&server, &kiosk, "erin", "pw-erin").await;
    assert_eq!(r.status, 303, "{}", r.text());
    admin_sign_out(&server, KIOSK).await;

    // The device locks after failures under many names, for everyone.
    for i in 1..=6 {
        let (_, r) = portal_sign_in(&server, &kiosk, &format!("guess{i}"), "x").await;
        assert!(r.status == 422 || r.status == 429, "{}", r.status);
    }
    let (_, r) = portal_sign_in(&server, &kiosk, "alice", "pw-alice").await;
    assert_eq!(r.status, 429, "{}", r.text());
    let entry = newest(&server, "alice").await;
    assert_eq!(entry["reason"], "locked_out");
    assert!(
        entry["detail"].as_str().unwrap().starts_with("device"),
        "{entry}"
    );
    // Lockouts are counted as they start: erin twice, the device once.
    let metrics = server.client.get("/metrics").await.text();
    for line in [
        "baton_lockouts_total{scope=\"user\"} 2",
        "baton_lockouts_total{scope=\"device\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in {metrics}");
    }

    // The log: filters, newest first, CSV, never a password; every entry also a webhook event.
    let all = log(&server, "limit=1000").await;
    let times: Vec<u64> = all.iter().map(|e| e["time_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    for e in &all {
        for key in ["time", "username", "device", "result", "reason"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    let locked = log(&server, "reason=locked_out").await;
    assert!(locked.len() >= 3, "{locked:?}");
    assert!(locked.iter().all(|e| e["reason"] == "locked_out"));
    let failures = log(
        &server,
        &format!("device={KIOSK}&result=failure&username=erin"),
    )
    .await;
    assert_eq!(failures.len(), 8, "{failures:?}");
    let r = server
        .api(Method::GET, "/api/v1/sign-in-log?format=csv", None)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.content_type.as_deref().unwrap().starts_with("text/csv"));
    let csv = r.text();
    let header = csv.lines().next().unwrap();
    for column in ["time", "username", "device", "result", "reason"] {
        assert!(header.split(',').any(|c| c == column), "{header}");
    }
    assert_eq!(csv.lines().count(), all.len() + 1);
    for secret in ["wrong-1", "again-2", "pw-erin", "pw-alice"] {
        assert!(!csv.contains(secret), "a password in the log");
    }
    let r = server
        .api(Method::GET, "/api/v1/sign-in-log?reason=bogus", None)
        .await;
    assert_eq!(r.status, 400);
    let expected = all.len();
    eventually(Duration::from_secs(10), "webhook events", || async {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "sign_in.logged")
            .count()
            >= expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_user_is_signed_out_at_once_and_refused() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(&apns, &pki, ServerOptions::default()).await;
    let mut kiosk = enroll(&server, &pki, KIOSK).await;
    let (_, r) = portal_sign_in(&server, &kiosk, "alice", "pw-alice").await;
    assert_eq!(r.status, 303);
    kiosk.connect_until_idle().await.unwrap();
    assert!(kiosk.profiles().iter().any(|p| p.identifier == MAIL));

    let r = server
        .api(
            Method::PATCH,
            "/api/v1/users/alice",
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually(
        Duration::from_secs(5),
        "sign-out of a disabled user",
        || async { assignee(&server, KIOSK).await == "nobody" },
    )
    .await;
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["result"], &entry["reason"]),
        (&json!("signed_out"), &json!("disabled_user"))
    );
    kiosk.connect_until_idle().await.unwrap();
    assert!(!kiosk.profiles().iter().any(|p| p.identifier == MAIL));

    let (_, r) = portal_sign_in(&server, &kiosk, "alice", "pw-alice").await;
    assert_eq!(r.status, 403);
    assert!(r.text().contains(DISABLED_USER));
    let entry = newest(&server, "alice").await;
    assert_eq!(
        (&entry["result"], &entry["reason"]),
        (&json!("failure"), &json!("disabled_user"))
    );
    let r = admin_sign_in(&server, KIOSK, "alice", false).await;
    assert_eq!(r.status, 409);
    assert_eq!(newest(&server, "alice").await["how"], "admin");

    let r = server
        .api(
            Method::PATCH,
            "/api/v1/users/alice",
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    let (_, r) = portal_sign_in(&server, &kiosk, "alice", "pw-alice").await;
    assert_eq!(r.status, 303, "{}", r.text());
}

/// The prompt in a real browser (headless Chromium over DevTools): on the non-shared desk
/// device a familiar person at low risk sees "Stay signed in?", answers Yes and gets a
/// persistent cookie; on the shared kiosk the same person goes straight to the progress page
/// with a session cookie. Screenshots go to `<target>/portal-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_in_headless_chromium_on_a_desk_device_and_not_on_a_shared_one() {
    use baton_e2e::chromium::{self, Chromium};
    let Some(binary) = chromium::binary_for_test("the headless-browser prompt check") else {
        return;
    };
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(&apns, &pki, ServerOptions::default()).await;
    set_policy(&server, desk_policy(true, false)).await;
    let _desk = enroll(&server, &pki, DESK).await;
    let _kiosk = enroll(&server, &pki, KIOSK).await;
    make_familiar(&server, DESK, "alice").await;
    make_familiar(&server, KIOSK, "alice").await;
    let base = server.running().local_url();
    let mut browser = Chromium::launch(&binary).await.unwrap();
    let mut shots = Vec::new();

    let portal = sign_in_path(&server, DESK);
    browser.goto(&format!("{base}{portal}")).await.unwrap();
    browser.fill("#username", "alice").await.unwrap();
    browser.fill("#password", "pw-alice").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), format!("{portal}/stay"));
    assert!(browser.text().await.unwrap().contains(PROMPT_HEADING));
    shots.push(browser.screenshot("kmsi-prompt-desk").await.unwrap());
    browser.click("button[value=yes]").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), format!("{portal}/progress"));
    let cookies = browser.cookies(&format!("{base}{portal}")).await.unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "baton_portal")
        .expect("the portal cookie");
    assert_eq!(cookie["session"], false, "persistent after Yes: {cookie}");
    assert_eq!(lease(&server, DESK).await["persistent"], true);
    browser.goto(&format!("{base}{portal}")).await.unwrap();
    assert!(browser.text().await.unwrap().contains("until you sign out"));
    shots.push(browser.screenshot("kmsi-persistent-desk").await.unwrap());

    let portal = sign_in_path(&server, KIOSK);
    browser.goto(&format!("{base}{portal}")).await.unwrap();
    browser.fill("#username", "alice").await.unwrap();
    browser.fill("#password", "pw-alice").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), format!("{portal}/progress"));
    assert!(!browser.text().await.unwrap().contains(PROMPT_HEADING));
    let cookies = browser.cookies(&format!("{base}{portal}")).await.unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "baton_portal")
        .expect("the portal cookie");
    assert_eq!(
        cookie["session"], true,
        "a session cookie on a shared device"
    );
    assert_eq!(lease(&server, KIOSK).await["persistent"], false);
    shots.push(browser.screenshot("kmsi-absent-shared").await.unwrap());
    browser.close().await;
    for s in &shots {
        eprintln!("screenshot: {}", s.display());
    }
}

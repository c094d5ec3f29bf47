//! The trust boundary under abuse (issue 24), over real HTTP with baton-sim devices: a burst of
//! concurrent wrong passwords checks no more passwords than the lockout threshold, usernames
//! are one name whatever their case, another device's page loads never expire this device's
//! form, unknown admin JSON fields are refused by name, forwarding headers are believed only
//! from a trusted proxy, HSTS is sent over HTTPS, and `/metrics` can require the API key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use baton_e2e::portal::{Apns, Browser, FORM, attr_after, clip_path, encode_form, sign_in_path};
use baton_e2e::{Pki, Reply, ServerOptions, TestServer};
use baton_server::client_origin::TrustedProxies;
use baton_server::config::MetricsAuth;
use baton_server::lockout::LockoutSettings;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::{Value, json};

const KIOSK: &str = "00008120-0005E6F7A8B9C0D1";
const OTHER: &str = "00008120-0006F7A8B9C0D1E2";

/// A plain-HTTP server with the sign-in clip and user `alice` (password `pw-alice`).
async fn server_with(apns: &Apns, pki: &Pki, options: ServerOptions) -> TestServer {
    let server = TestServer::start(
        pki,
        ServerOptions {
            assignment: AssignmentSettings::default(),
            push: apns.config(),
            ..options
        },
    )
    .await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "alice", "password": "pw-alice"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    server
}

fn plain() -> ServerOptions {
    ServerOptions {
        tls: false,
        ..ServerOptions::default()
    }
}

/// An enrolled sim device that has processed its first commands (the sign-in web clip).
async fn enroll(server: &TestServer, pki: &Pki, udid: &str) -> SimDevice {
    let mut device =
        baton_e2e::portal::enrolled_sim(server, pki, udid, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();
    device
}

/// The sign-in log with `query`, newest first.
async fn log(server: &TestServer, query: &str) -> Vec<Value> {
    let r = server
        .api(Method::GET, &format!("/api/v1/sign-in-log?{query}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

async fn assignee(server: &TestServer, udid: &str) -> String {
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{udid}"), None)
        .await;
    assert_eq!(view.status, 200, "{}", view.text());
    view.json()["assignee"].as_str().unwrap().to_owned()
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

/// The sign-in page of `portal`: the form's action and its CSRF token.
async fn open_form(server: &TestServer, browser: &mut Browser, portal: &str) -> (String, String) {
    let page = browser.get(server, portal).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    (
        attr_after(&html, "<form", "action"),
        attr_after(&html, "name=\"csrf\"", "value"),
    )
}

async fn sign_in(server: &TestServer, portal: &str, user: &str, password: &str) -> Reply {
    let mut browser = Browser::default();
    let (action, csrf) = open_form(server, &mut browser, portal).await;
    browser
        .post(
            server,
            &action,
            &[("username", user), ("password", password), ("csrf", &csrf)],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_concurrent_wrong_guesses_check_no_more_passwords_than_the_threshold() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = Arc::new(server_with(&apns, &pki, plain()).await);
    let kiosk = enroll(&server, &pki, KIOSK).await;
    let portal = clip_path(&kiosk, "Sign in");
    let threshold = LockoutSettings::default().user_threshold as usize;

    // 60 forms opened one after the other, then posted all at once.
    let mut forms = Vec::new();
    for _ in 0..60 {
        let mut browser = Browser::default();
        let (action, csrf) = open_form(&server, &mut browser, &portal).await;
        forms.push((browser, action, csrf));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(forms.len()));
    let mut tasks = Vec::new();
    for (i, (mut browser, action, csrf)) in forms.into_iter().enumerate() {
        let server = Arc::clone(&server);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let password = format!("guess-{i}");
            barrier.wait().await;
            browser
                .post(
                    &server,
                    &action,
                    &[
                        ("username", "alice"),
                        ("password", &password),
                        ("csrf", &csrf),
                    ],
                )
                .await
                .status
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert!(
        statuses.iter().all(|s| [400, 422, 429].contains(s)),
        "{statuses:?}"
    );
    let checked = log(&server, "username=alice&reason=bad_credentials&limit=1000")
        .await
        .len();
    let refused = log(&server, "username=alice&reason=locked_out&limit=1000")
        .await
        .len();
    assert!(
        checked <= threshold,
        "{checked} passwords checked for a threshold of {threshold} ({statuses:?})"
    );
    assert_eq!(checked, threshold, "the burst used the whole budget");
    assert_eq!(
        checked + refused,
        statuses.iter().filter(|&&s| s != 400).count(),
        "every posted form is in the log"
    );
    // Locked now: the right password is not even checked, however many try at once.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let server = Arc::clone(&server);
        let portal = portal.clone();
        tasks.push(tokio::spawn(async move {
            sign_in(&server, &portal, "alice", "pw-alice").await.status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 429);
    }
    assert_eq!(assignee(&server, KIOSK).await, "nobody");
    let checked_after = log(&server, "username=alice&reason=bad_credentials&limit=1000")
        .await
        .len();
    assert_eq!(checked_after, checked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usernames_are_one_name_whatever_their_case() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(&apns, &pki, plain()).await;
    let _kiosk = enroll(&server, &pki, KIOSK).await;

    for name in ["Alice", "ALICE", " alice"] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": name, "password": "other"})),
            )
            .await;
        assert_eq!(r.status, 409, "{name:?}: {}", r.text());
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("\"alice\""), "{message}");
    }
    let r = server
        .api(
            Method::POST,
            "/api/v1/users/import",
            Some(json!([
                {"username": "Bob", "password": "x"},
                {"username": "bob", "password": "y"}
            ])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let users = server.api(Method::GET, "/api/v1/users", None).await.json();
    let names: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"Bob") && !names.contains(&"bob"),
        "{names:?}"
    );

    for typed in ["Alice", " alice "] {
        // The device token rotated at the last sign-out: the new "Sign in" clip's path.
        let portal = sign_in_path(&server, KIOSK);
        let r = sign_in(&server, &portal, typed, "pw-alice").await;
        assert_eq!(r.status, 303, "{typed:?}: {}", r.text());
        assert_eq!(assignee(&server, KIOSK).await, "alice");
        let entry = log(&server, "limit=1").await.pop().unwrap();
        assert_eq!(entry["username"], "alice", "{entry}");
        admin_sign_out(&server, KIOSK).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_devices_page_loads_never_expire_this_devices_form() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = Arc::new(server_with(&apns, &pki, plain()).await);
    let kiosk = enroll(&server, &pki, KIOSK).await;
    let other = enroll(&server, &pki, OTHER).await;
    let portal = clip_path(&kiosk, "Sign in");
    let other_portal = clip_path(&other, "Sign in");

    let mut browser = Browser::default();
    let (action, csrf) = open_form(&server, &mut browser, &portal).await;
    // More page loads of the other device than the portal ever held forms for, 8 at a time.
    let loads = 20_100;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let server = Arc::clone(&server);
        let other_portal = other_portal.clone();
        tasks.push(tokio::spawn(async move {
            for _ in (worker..loads).step_by(8) {
                let r = server.client.get(&other_portal).await;
                assert_eq!(r.status, 200);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let r = browser
        .post(
            &server,
            &action,
            &[
                ("username", "alice"),
                ("password", "pw-alice"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(&server, KIOSK).await, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_admin_json_fields_are_refused_by_name() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server_with(&apns, &pki, plain()).await;
    let cases = [
        (
            Method::POST,
            "/api/v1/users",
            json!({"username": "dave", "password": "pw", "disabled": true}),
            "disabled",
        ),
        (
            Method::POST,
            "/api/v1/users/import",
            json!([{"username": "erin", "password": "pw", "admin": true}]),
            "admin",
        ),
        (
            Method::POST,
            "/api/v1/groups",
            json!({"name": "ward", "kind": "user", "members": [], "colour": "red"}),
            "colour",
        ),
        (
            Method::POST,
            "/api/v1/items",
            json!({"id": "clip", "kind": "web_clip", "label": "x", "url": "https://x.example",
                "removeable": true}),
            "removeable",
        ),
        (
            Method::POST,
            "/api/v1/distributions",
            json!({"item": "clip", "target": "all", "priority": 1}),
            "priority",
        ),
        (
            Method::POST,
            &format!("/api/v1/devices/{KIOSK}/sign-in"),
            json!({"username": "alice", "persistant": true}),
            "persistant",
        ),
        (
            Method::POST,
            "/api/v1/commands",
            json!({"devices": [KIOSK], "command": {"request_type": "DeviceInformation"},
                "urgent": true}),
            "urgent",
        ),
    ];
    for (method, path, body, field) in cases {
        let r = server.api(method.clone(), path, Some(body)).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
        let answer = r.json();
        assert_eq!(answer["error"], "bad_request", "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(field),
            "{method} {path}: {answer}"
        );
    }
    let r = server.api(Method::GET, "/api/v1/users/dave", None).await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_over_tls_only() {
    let pki = Pki::generate();
    let tls = TestServer::start(&pki, ServerOptions::default()).await;
    for path in ["/healthz", "/portal/unknown-token", "/api/v1/devices"] {
        let r = tls.client.get(path).await;
        assert_eq!(
            r.headers
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let plain = TestServer::start(&pki, plain()).await;
    let r = plain.client.get("/healthz").await;
    assert!(r.headers.get("strict-transport-security").is_none());
}

/// Posts the sign-in form of `portal` with `headers` (as a client behind a proxy would arrive).
async fn sign_in_with_headers(
    server: &TestServer,
    portal: &str,
    headers: &[(&'static str, &str)],
) -> Reply {
    let mut browser = Browser::default();
    let (action, csrf) = open_form(server, &mut browser, portal).await;
    let mut all: Vec<(&'static str, String)> =
        headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    all.push(("Content-Type", FORM.to_owned()));
    let body = encode_form(&[
        ("username", "alice"),
        ("password", "pw-alice"),
        ("csrf", &csrf),
    ]);
    server
        .client
        .send(Method::POST, &action, &all, body.into_bytes())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_only_from_a_trusted_proxy() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let forwarded = [
        ("X-Forwarded-For", "6.6.6.6, 203.0.113.7"),
        ("X-Forwarded-Proto", "https"),
    ];
    // The test client on 127.0.0.1 plays the TLS-terminating proxy.
    for (trusted, source, secure) in [(true, "203.0.113.7", true), (false, "127.0.0.1", false)] {
        let proxies = if trusted {
            TrustedProxies::new(vec!["127.0.0.0/8".parse().unwrap()])
        } else {
            TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()])
        };
        let server = server_with(
            &apns,
            &pki,
            ServerOptions {
                trusted_proxies: proxies,
                ..plain()
            },
        )
        .await;
        let kiosk = enroll(&server, &pki, KIOSK).await;
        let r = sign_in_with_headers(&server, &clip_path(&kiosk, "Sign in"), &forwarded).await;
        assert_eq!(r.status, 303, "{}", r.text());
        let cookie = r.headers[http::header::SET_COOKIE].to_str().unwrap();
        assert_eq!(
            cookie.contains("; Secure"),
            secure,
            "trusted {trusted}: {cookie}"
        );
        assert_eq!(
            r.headers.get("strict-transport-security").is_some(),
            secure,
            "trusted {trusted}"
        );
        let entry = log(&server, "username=alice&limit=1").await.pop().unwrap();
        assert_eq!(entry["source_address"], source, "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_put_behind_the_api_key() {
    let pki = Pki::generate();
    let open = TestServer::start(&pki, plain()).await;
    assert_eq!(open.client.get("/metrics").await.status, 200);
    let guarded = TestServer::start(
        &pki,
        ServerOptions {
            metrics_auth: MetricsAuth::ApiKey,
            ..plain()
        },
    )
    .await;
    let r = guarded.client.get("/metrics").await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = guarded.api(Method::GET, "/metrics", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("baton_"), "{}", r.text());
}

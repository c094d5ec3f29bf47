//! The sign-in portal end to end, as a person uses it: a baton-sim device enrolls (pushes go to
//! a mock APNs) and gets the "Sign in" web clip; the test taps it, GETs the page, fills in the
//! form (action + CSRF token from the HTML) and posts it with cookies like a browser; the
//! person's items are pushed, fetched and acknowledged; the progress page reaches "ready"
//! (recorded in the session log); the "Sign out" clip leads to sign-out, which removes exactly
//! the person's items, and ProfileList proves the device clean. Also the refusals: unknown
//! device token, wrong password / unknown user (one uniform message), missing and replayed CSRF
//! tokens, a 10 MB field, and a storm of 20 concurrent sign-ins on one device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_e2e::chromium::{self, Chromium};
use baton_e2e::portal::{Apns, Browser, FORM, attr_after, clip_path, encode_form, profile_xml};
use baton_e2e::{Pki, Reply, ServerOptions, TestServer};
use baton_server::portal::pages::{
    ALREADY_SIGNED_IN_HEADING, IN_USE_HEADING, NOT_FINISHED_HEADING, READY_FOR_NEXT,
    WRONG_CREDENTIALS,
};
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{ServerTrust, SimDevice, SimOptions, Transport};
use http::Method;
use serde_json::json;

const UDID: &str = "00008120-0001A2B3C4D5E6F7";

/// A TLS server with the default multi-user setup, alice and bob, a Wi-Fi profile for every
/// device and a mail profile for alice and bob; plus an enrolled, converged sim device.
async fn setup(apns: &Apns, tls: bool) -> (TestServer, SimDevice) {
    setup_with(apns, tls, SimOptions::default()).await
}

async fn setup_with(apns: &Apns, tls: bool, options: SimOptions) -> (TestServer, SimDevice) {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls,
            assignment: AssignmentSettings::default(),
            push: apns.config(),
            ..ServerOptions::default()
        },
    )
    .await;
    for (name, full) in [("alice", "Alice <Liddell>"), ("bob", "Bob Builder")] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": name, "password": format!("pw-{name}"),
                    "full_name": full, "email": format!("{name}@example.com")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    for (name, display, target) in [
        ("wifi", "Corp Wi-Fi", json!("all")),
        (
            "mail",
            "Mail for $USER.email",
            json!({"users": ["alice", "bob"]}),
        ),
    ] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/items",
                Some(json!({"id": name, "name": name, "kind": "profile",
                    "mobileconfig": b64(profile_xml(&format!("upload.{name}"), display))})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let item = r.json()["id"].as_str().unwrap().to_owned();
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": item, "target": target})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut device = baton_e2e::portal::enrolled_sim(&server, &pki, UDID, options).await;
    assert!(
        apns.wait_for(device.push_token_hex(), 1).await >= 1,
        "no push after enrollment"
    );
    let done = device.connect_until_idle().await.unwrap();
    assert!(!done.is_empty());
    (server, device)
}

/// POSTs a form over a raw connection, writing and reading at once (the server answers before
/// it has read a too-large body, which a request-then-response client reports as a broken
/// pipe, while browsers show the answer). Returns the status line.
async fn raw_post(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {FORM}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(head.as_bytes()).await;
        let _ = wr.write_all(&body).await;
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

/// (action, csrf) of the page's form.
fn form_of(r: &Reply) -> (String, String) {
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    (
        attr_after(&html, "<form", "action"),
        attr_after(&html, "name=\"csrf\"", "value"),
    )
}

async fn assignee(server: &TestServer) -> String {
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    view["assignee"].as_str().unwrap().to_owned()
}

fn location(r: &Reply) -> String {
    r.headers
        .get(http::header::LOCATION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_and_out_through_the_portal() {
    let started = Instant::now();
    let apns = Apns::start().await;
    let (server, mut device) = setup(&apns, true).await;
    let token_hex = device.push_token_hex().to_owned();
    let mut pushes = apns.wait_for(&token_hex, 1).await;
    let signed_out_profiles: Vec<String> = device
        .profiles()
        .iter()
        .map(|p| p.identifier.clone())
        .collect();
    assert!(signed_out_profiles.contains(&"com.baton.item.sign-in".to_owned()));
    assert!(signed_out_profiles.contains(&"com.baton.item.wifi".to_owned()));
    assert!(device.tap_web_clip(Some("Sign out")).is_none());

    // Tap "Sign in": the form.
    let portal = clip_path(&device, "Sign in");
    let mut browser = Browser::default();
    let page = browser.get(&server, &portal).await;
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("name=\"viewport\""));
    assert!(html.contains("<label for=\"password\">"));
    let (action, csrf) = form_of(&page);
    assert_eq!(action, format!("{portal}/sign-in"));

    // Sign in as alice.
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
    assert_eq!(location(&r), format!("{portal}/progress"));
    let set_cookie = r.headers[http::header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        &format!("Path={portal}"),
    ] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains("Max-Age"),
        "a session cookie: {set_cookie}"
    );
    assert!(browser.cookie.is_some());
    assert_eq!(assignee(&server).await, "alice");

    // Progress before the device fetched anything: pending, updated in place.
    let r = browser.get(&server, &location(&r)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(
        html.contains("aria-live=\"polite\" data-done=\"0\"") && html.contains("live.js"),
        "{html}"
    );
    assert!(html.contains("Pending"), "{html}");

    // Pushed, fetched, acknowledged.
    pushes = apns.wait_for(&token_hex, pushes + 1).await;
    let done = device.connect_until_idle().await.unwrap();
    let kinds: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    // The person's items and the "Sign out" clip first; the "Sign in" clip (whose web app
    // they are watching) leaves last.
    assert_eq!(
        kinds,
        ["InstallProfile", "InstallProfile", "RemoveProfile"],
        "{done:?}"
    );
    assert!(
        done.iter()
            .all(|c| c.status == baton_proto::Status::Acknowledged)
    );
    let mail = device
        .profiles()
        .iter()
        .find(|p| p.identifier == "com.baton.item.mail")
        .expect("mail profile installed");
    assert_eq!(
        mail.display_name.as_deref(),
        Some("Mail for alice@example.com")
    );

    // The ready time is in the session log even before anyone looks at the page.
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await
        .json();
    let s = &sessions["sessions"][0];
    assert_eq!(s["username"], "alice");
    assert_eq!(s["how"], "portal");
    let ready_at = s["ready_at"].as_u64().expect("ready_at recorded");
    assert!(ready_at >= s["started_at"].as_u64().unwrap());

    let r = browser.get(&server, &format!("{portal}/progress")).await;
    let html = r.text();
    assert!(html.contains("Your device is ready"), "{html}");
    assert!(!html.contains("http-equiv=\"refresh\""));
    assert!(!html.contains("Pending"));

    // The "Sign in" clip is gone (its web app and cookie with it). The "Sign out" clip carries
    // this session's own URL; it opens in its own web app (a fresh cookie jar) and shows who
    // is signed in (escaped), the progress and a form.
    assert!(device.tap_web_clip(Some("Sign in")).is_none());
    drop(browser);
    let out_portal = clip_path(&device, "Sign out");
    assert!(out_portal.starts_with("/portal/session/"), "{out_portal}");
    let mut browser = Browser::default();
    let page = browser.get(&server, &out_portal).await;
    let html = page.text();
    assert!(
        html.contains("Signed in as Alice &lt;Liddell&gt;"),
        "{html}"
    );
    let r = browser
        .get(&server, &format!("{out_portal}/progress"))
        .await;
    assert!(r.text().contains("Your device is ready"), "{}", r.text());
    let (action, csrf) = form_of(&page);
    assert_eq!(action, format!("{out_portal}/sign-out"));
    let r = browser.post(&server, &action, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    // The hand-off rotated the device token: the sign-out progress is under the new one.
    let signed_out = location(&r);
    assert!(signed_out.ends_with("/signed-out"), "{signed_out}");
    assert_ne!(signed_out, format!("{portal}/signed-out"));
    assert_eq!(assignee(&server).await, "nobody");
    let r = browser.get(&server, &signed_out).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Signing out"), "{}", r.text());

    // The device removes exactly alice's items and reports its inventory; the "Sign in" clip
    // returns before the "Sign out" clip (full-screen) leaves.
    apns.wait_for(&token_hex, pushes + 1).await;
    let done = device.connect_until_idle().await.unwrap();
    let kinds: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "RemoveProfile",
            "InstallProfile",
            "RemoveProfile",
            "ProfileList",
            "ManagedApplicationList"
        ],
        "{done:?}"
    );
    let mut now: Vec<String> = device
        .profiles()
        .iter()
        .map(|p| p.identifier.clone())
        .collect();
    let mut before = signed_out_profiles.clone();
    now.sort();
    before.sort();
    assert_eq!(now, before, "back to the signed-out baseline (Wi-Fi stays)");
    let r = browser.get(&server, &signed_out).await;
    let html = r.text();
    assert!(html.contains(READY_FOR_NEXT), "{html}");
    assert!(!html.contains("http-equiv=\"refresh\""));
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await
        .json();
    let s = &sessions["sessions"][0];
    assert_eq!(s["ended_how"], "portal");
    assert_eq!(s["clean_hand_off"], true, "{sessions}");

    // Back on the sign-in form, in the new "Sign in" clip (a new web app); the old URL and
    // the ended session's are dead.
    let new_portal = clip_path(&device, "Sign in");
    assert_eq!(format!("{new_portal}/signed-out"), signed_out);
    let mut browser = Browser::default();
    let page = browser.get(&server, &new_portal).await;
    assert!(form_of(&page).0.ends_with("/sign-in"));
    assert_eq!(browser.get(&server, &portal).await.status, 404);
    assert_eq!(browser.get(&server, &out_portal).await.status, 404);
    eprintln!(
        "portal e2e (sign-in to clean sign-out): {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_refuses_bad_input_and_storms() {
    let apns = Apns::start().await;
    let (server, device) = setup(&apns, false).await;
    let portal = clip_path(&device, "Sign in");
    let mut browser = Browser::default();

    // Unknown device token: a generic 404 page.
    for path in [
        "/portal/not-a-token",
        "/portal/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = browser.get(&server, path).await;
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(!r.text().contains("<form"));
    }
    let r = browser
        .post(
            &server,
            "/portal/not-a-token/sign-in",
            &[("username", "alice")],
        )
        .await;
    assert_eq!(r.status, 404);

    // Wrong password and unknown user: the same status and message; nothing assigned.
    let mut bodies = Vec::new();
    for (user, password) in [("alice", "wrong"), ("mallory", "pw-alice"), ("nobody", "")] {
        let (action, csrf) = form_of(&browser.get(&server, &portal).await);
        let r = browser
            .post(
                &server,
                &action,
                &[("username", user), ("password", password), ("csrf", &csrf)],
            )
            .await;
        assert_eq!(r.status, 422, "{}", r.text());
        let html = r.text();
        assert!(html.contains(WRONG_CREDENTIALS), "{html}");
        assert!(
            !html.contains(password) || password.is_empty(),
            "password echoed"
        );
        assert!(browser.cookie.is_none());
        // The re-rendered form carries a fresh CSRF token.
        let (_, fresh) = form_of(&Reply {
            status: http::StatusCode::OK,
            ..r.clone()
        });
        assert_ne!(fresh, csrf);
        bodies.push(html.replace(&fresh, "").replace(user, ""));
    }
    assert_eq!(
        bodies[0], bodies[1],
        "uniform error for unknown user vs wrong password"
    );
    assert_eq!(assignee(&server).await, "nobody");

    // Missing CSRF token: 400. Replayed CSRF token: 400 even with the right password.
    let (action, csrf) = form_of(&browser.get(&server, &portal).await);
    let r = browser
        .post(
            &server,
            &action,
            &[("username", "alice"), ("password", "pw-alice")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = browser
        .post(
            &server,
            &action,
            &[
                ("username", "alice"),
                ("password", "wrong"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 422);
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
    assert_eq!(r.status, 400, "replay: {}", r.text());
    assert_eq!(assignee(&server).await, "nobody");
    // A CSRF token of another device's page does not work here either.
    let (_, csrf) = form_of(&browser.get(&server, &portal).await);
    let r = browser
        .post(
            &server,
            "/portal/not-a-token/sign-in",
            &[
                ("username", "alice"),
                ("password", "pw-alice"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 404);

    // A 10 MB field: 413, nothing assigned.
    let (action, csrf) = form_of(&browser.get(&server, &portal).await);
    let huge = "A".repeat(10 * 1024 * 1024);
    let body = encode_form(&[("username", "alice"), ("password", &huge), ("csrf", &csrf)]);
    let status = raw_post(server.running().local_addr(), &action, body.into_bytes()).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    assert_eq!(assignee(&server).await, "nobody");

    // A storm: 20 browsers post the form at once; exactly one wins. The rest find the device
    // in use or, beyond the lockout threshold of checks under way at once, are refused unchecked.
    // Two forms kept open from before the storm (a second tab, a slow second tap).
    let kept = [
        form_of(&browser.get(&server, &portal).await),
        form_of(&browser.get(&server, &portal).await),
    ];
    let mut forms = Vec::new();
    for _ in 0..20 {
        forms.push(form_of(&browser.get(&server, &portal).await));
    }
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for (i, (action, csrf)) in forms.into_iter().enumerate() {
        let server = std::sync::Arc::clone(&server);
        let (user, pw) = if i % 2 == 0 {
            ("alice", "pw-alice")
        } else {
            ("bob", "pw-bob")
        };
        tasks.push(tokio::spawn(async move {
            let mut b = Browser::default();
            let r = b
                .post(
                    &server,
                    &action,
                    &[("username", user), ("password", pw), ("csrf", &csrf)],
                )
                .await;
            (user, r)
        }));
    }
    let mut winners = Vec::new();
    let mut in_use = 0;
    let mut conflicts = Vec::new();
    for t in tasks {
        let (user, r) = t.await.unwrap();
        match r.status.as_u16() {
            303 => winners.push(user),
            409 => {
                conflicts.push((user, r.text()));
                in_use += 1;
            }
            429 => {
                assert!(
                    r.text().contains("Too many sign-in attempts"),
                    "{}",
                    r.text()
                );
                in_use += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one sign-in wins: {winners:?}");
    assert_eq!(in_use, 19);
    // The winner's other posts are told they are signed in already; everyone else that the
    // device is in use.
    for (user, text) in conflicts {
        if user == winners[0] && text.contains(ALREADY_SIGNED_IN_HEADING) {
            continue;
        }
        assert!(text.contains(IN_USE_HEADING), "{user}: {text}");
    }
    assert_eq!(assignee(&server).await, winners[0]);
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await
        .json();
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );

    // A kept form: the winner is told they are signed in already, the other person that the
    // device is in use; neither changes anything.
    let (winner, loser) = if winners[0] == "alice" {
        (("alice", "pw-alice"), ("bob", "pw-bob"))
    } else {
        (("bob", "pw-bob"), ("alice", "pw-alice"))
    };
    for ((user, pw), (action, csrf), heading) in [
        (winner, &kept[0], ALREADY_SIGNED_IN_HEADING),
        (loser, &kept[1], IN_USE_HEADING),
    ] {
        let r = Browser::default()
            .post(
                &server,
                action,
                &[("username", user), ("password", pw), ("csrf", csrf)],
            )
            .await;
        assert_eq!(r.status, 409, "{user}: {}", r.text());
        assert!(r.text().contains(heading), "{user}: {}", r.text());
    }
    assert_eq!(assignee(&server).await, winners[0]);

    // Signed in: the device URL in any browser but the winner's shows "in use", no name and
    // no form.
    let page = browser.get(&server, &portal).await;
    assert!(page.text().contains(IN_USE_HEADING), "{}", page.text());
    assert!(!page.text().contains("Signed in as"), "{}", page.text());
    assert!(!page.text().contains("<form"), "{}", page.text());
}

/// A person uses the portal in a real browser (headless Chromium driven over DevTools): types
/// a wrong password, then the right one, watches the progress page reload itself until ready,
/// signs out and watches the sign-out progress until the device is ready for the next person.
/// Screenshots of every page are saved under `<target>/portal-screenshots/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_uses_the_portal_in_headless_chromium() {
    let Some(binary) = chromium::binary_for_test("the headless-browser portal check") else {
        return;
    };
    let apns = Apns::start().await;
    let (server, mut device) = setup(&apns, false).await;
    let base = server.running().local_url();
    let portal = clip_path(&device, "Sign in");
    let mut browser = Chromium::launch(&binary).await.unwrap();
    let mut shots = Vec::new();

    browser.goto(&format!("{base}{portal}")).await.unwrap();
    assert!(
        browser
            .text()
            .await
            .unwrap()
            .contains("Sign in to this device")
    );
    shots.push(browser.screenshot("sign-in").await.unwrap());

    browser.fill("#username", "bob").await.unwrap();
    browser.fill("#password", "not-bobs").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    assert!(browser.text().await.unwrap().contains(WRONG_CREDENTIALS));
    assert_eq!(assignee(&server).await, "nobody");
    shots.push(browser.screenshot("sign-in-error").await.unwrap());

    // The username is kept; the password is typed again.
    browser.fill("#password", "pw-bob").await.unwrap();
    browser.click("button[type=submit]").await.unwrap();
    assert_eq!(browser.path().await.unwrap(), format!("{portal}/progress"));
    assert_eq!(assignee(&server).await, "bob");
    let cookies = browser.cookies(&format!("{base}{portal}")).await.unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "baton_portal")
        .expect("the portal cookie is set");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["session"], true, "a session cookie: {cookie}");
    shots.push(browser.screenshot("progress").await.unwrap());

    // The device fetches bob's items; the page reloads itself until it says ready.
    apns.wait_for(device.push_token_hex(), 2).await;
    device.connect_until_idle().await.unwrap();
    browser
        .wait_until("document.body.innerText.includes('Your device is ready')")
        .await
        .unwrap();
    shots.push(browser.screenshot("ready").await.unwrap());

    // The "Sign in" clip is gone: its web app (this browser, its cookie) with it.
    assert!(device.tap_web_clip(Some("Sign in")).is_none());
    browser.close().await;

    // Another browser with only the "Sign in" URL sees no name and no sign-out form.
    let mut stranger = Chromium::launch(&binary).await.unwrap();
    stranger.goto(&format!("{base}{portal}")).await.unwrap();
    let text = stranger.text().await.unwrap();
    assert!(text.contains(IN_USE_HEADING), "{text}");
    assert!(!text.contains("Bob"), "{text}");
    assert!(!stranger.has("form").await.unwrap());
    stranger.close().await;

    // The "Sign out" clip opens in its own web app: a fresh browser.
    let out_portal = clip_path(&device, "Sign out");
    let mut browser = Chromium::launch(&binary).await.unwrap();
    browser.goto(&format!("{base}{out_portal}")).await.unwrap();
    assert!(
        browser
            .text()
            .await
            .unwrap()
            .contains("Signed in as Bob Builder")
    );
    shots.push(browser.screenshot("signed-in").await.unwrap());

    let pushes = apns.wait_for(device.push_token_hex(), 0).await;
    browser
        .click("form[action$='/sign-out'] button")
        .await
        .unwrap();
    let signed_out = browser.path().await.unwrap();
    assert!(signed_out.ends_with("/signed-out"), "{signed_out}");
    assert_ne!(
        signed_out,
        format!("{portal}/signed-out"),
        "a new device token"
    );
    assert_eq!(assignee(&server).await, "nobody");
    shots.push(browser.screenshot("signing-out").await.unwrap());
    apns.wait_for(device.push_token_hex(), pushes + 1).await;
    device.connect_until_idle().await.unwrap();
    browser
        .wait_until(&format!(
            "document.body.innerText.includes({})",
            serde_json::to_string(READY_FOR_NEXT).unwrap()
        ))
        .await
        .unwrap();
    shots.push(browser.screenshot("signed-out").await.unwrap());
    browser.close().await;
    for s in &shots {
        eprintln!("screenshot: {}", s.display());
    }
}

/// The portal at a shift change in English and in Japanese (chosen by the browser's
/// Accept-Language), in headless Chromium: the sign-in form, progress updated in place (the
/// page is never reloaded: a marker set in the page survives), an item that failed with its
/// reason and next step, the sign-out's changes named, and "ready for the next person" with a
/// Sign in button. Screenshots of each go to `<target>/portal-screenshots/`, and with
/// `BATON_UPDATE_SCREENSHOTS=1` to `docs/screenshots/` as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portal_at_a_shift_change_in_english_and_japanese() {
    let Some(binary) = chromium::binary_for_test("the portal language check") else {
        return;
    };
    for (lang, accept, failed, not_finished, ready, sign_in_label) in [
        (
            "en",
            "en-US,en;q=0.9",
            "Failed",
            NOT_FINISHED_HEADING,
            READY_FOR_NEXT,
            "Sign in",
        ),
        (
            "ja",
            "ja-JP,ja;q=0.9,en;q=0.5",
            "失敗",
            "サインアウトが終わっていません",
            "次の人が使える状態になりました",
            "サインイン",
        ),
    ] {
        let apns = Apns::start().await;
        // The App Store refuses bob's app: it shows as failed, with the device's reason.
        let mut options = SimOptions::default();
        options.fail_request_types.insert(
            "InstallApplication".into(),
            vec![baton_proto::ErrorChainItem {
                code: 12064,
                domain: "MCMDMErrorDomain".into(),
                localized_description: None,
                us_english_description: Some("The app could not be purchased".into()),
            }],
        );
        let (server, mut device) = setup_with(&apns, false, options).await;
        let r = server
            .api(
                Method::POST,
                "/api/v1/items",
                Some(json!({"id": "notes", "name": "Notes", "kind": "app",
                    "bundle_id": "com.example.notes", "itunes_store_id": 1_000_001})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": "notes", "target": {"users": ["bob"]}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        let base = server.running().local_url();
        let portal = clip_path(&device, "Sign in");
        let mut browser = Chromium::launch(&binary).await.unwrap();
        browser.set_accept_language(accept).await.unwrap();
        let mut shots = Vec::new();

        browser.goto(&format!("{base}{portal}")).await.unwrap();
        assert_eq!(
            browser.eval("document.documentElement.lang").await.unwrap(),
            lang
        );
        assert_eq!(
            browser
                .eval("document.getElementById('password').autocomplete")
                .await
                .unwrap(),
            "off"
        );
        shots.push(
            browser
                .screenshot(&format!("{lang}-sign-in"))
                .await
                .unwrap(),
        );

        browser.fill("#username", "bob").await.unwrap();
        browser.fill("#password", "pw-bob").await.unwrap();
        browser.click("button[type=submit]").await.unwrap();
        assert_eq!(browser.path().await.unwrap(), format!("{portal}/progress"));
        assert_eq!(
            browser
                .eval("document.getElementById('live').getAttribute('aria-live')")
                .await
                .unwrap(),
            "polite"
        );
        // Only bob's items: Wi-Fi, Mail and Notes, not the "Sign out" clip.
        let status = browser
            .eval("document.querySelector('#live .status').innerText")
            .await
            .unwrap();
        assert!(status.as_str().unwrap().contains('3'), "{status}");
        shots.push(
            browser
                .screenshot(&format!("{lang}-progress"))
                .await
                .unwrap(),
        );
        browser.eval("window.__notReloaded = true").await.unwrap();
        // An operator sees the sign-in: portal routes by name, the sign-in counted, the
        // device signed in with a timed lease.
        let metrics = server.client.get("/metrics").await.text();
        for line in [
            "baton_http_requests_total{endpoint=\"portal_page\",status=\"200\"} 1",
            "baton_sign_ins_total{result=\"success\",reason=\"success\"} 1",
            "baton_devices_enrolled 1",
            "baton_devices_signed_in 1",
            "baton_leases{kind=\"timed\"} 1",
            "baton_devices_not_clean 0",
        ] {
            assert!(metrics.contains(line), "{line} missing in\n{metrics}");
        }
        assert!(metrics.contains("baton_http_requests_total{endpoint=\"portal_sign_in\""));

        // The device fetches everything; the app is refused. The region updates in place.
        apns.wait_for(device.push_token_hex(), 2).await;
        device.connect_until_idle().await.unwrap();
        browser
            .wait_until(&format!(
                "document.querySelector('#live .state-failed') !== null && \
                 document.body.innerText.includes({})",
                serde_json::to_string(failed).unwrap()
            ))
            .await
            .unwrap();
        assert_eq!(
            browser.eval("window.__notReloaded === true").await.unwrap(),
            true,
            "the page was reloaded instead of updated in place"
        );
        let text = browser.text().await.unwrap();
        assert!(text.contains("12064"), "the reason is shown: {text}");
        assert_eq!(
            browser
                .eval("document.querySelectorAll('#live .next').length")
                .await
                .unwrap(),
            1,
            "a next step for the failed item"
        );
        shots.push(browser.screenshot(&format!("{lang}-failed")).await.unwrap());
        browser.close().await;

        // Sign out from the "Sign out" clip; the changes left are named. The device refuses
        // to remove bob's Mail profile at first: "Sign-out not finished", naming it; once it
        // complies and the hand-off is checked again, ready.
        let mail = device
            .profiles()
            .iter()
            .find(|p| p.identifier.contains("mail"))
            .map(|p| p.identifier.clone())
            .expect("bob's Mail profile is on the device");
        device
            .options_mut()
            .refuse_removals
            .insert(mail.clone(), 12013);
        let out_portal = clip_path(&device, "Sign out");
        let mut browser = Chromium::launch(&binary).await.unwrap();
        browser.set_accept_language(accept).await.unwrap();
        browser.goto(&format!("{base}{out_portal}")).await.unwrap();
        let pushes = apns.wait_for(device.push_token_hex(), 0).await;
        browser
            .click("form[action$='/sign-out'] button")
            .await
            .unwrap();
        assert!(browser.path().await.unwrap().ends_with("/signed-out"));
        let changes = browser
            .eval("document.querySelectorAll('#live li').length")
            .await
            .unwrap();
        assert!(changes.as_u64().unwrap() >= 2, "changes named: {changes}");
        shots.push(
            browser
                .screenshot(&format!("{lang}-signing-out"))
                .await
                .unwrap(),
        );
        browser.eval("window.__notReloaded = true").await.unwrap();
        apns.wait_for(device.push_token_hex(), pushes + 1).await;
        device.connect_until_idle().await.unwrap();
        browser
            .wait_until(&format!(
                "document.body.innerText.includes({})",
                serde_json::to_string(not_finished).unwrap()
            ))
            .await
            .unwrap();
        let text = browser.text().await.unwrap();
        assert!(text.contains("mail") && text.contains("12013"), "{text}");
        assert!(!text.contains(ready), "{text}");
        shots.push(
            browser
                .screenshot(&format!("{lang}-not-clean"))
                .await
                .unwrap(),
        );
        device.options_mut().refuse_removals.clear();
        let pushes = apns.wait_for(device.push_token_hex(), 0).await;
        let r = server
            .api(
                Method::POST,
                &format!("/api/v1/devices/{}/hand-off/retry", device.udid()),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        apns.wait_for(device.push_token_hex(), pushes + 1).await;
        device.connect_until_idle().await.unwrap();
        assert!(device.profiles().iter().all(|p| p.identifier != mail));
        browser
            .wait_until(&format!(
                "document.body.innerText.includes({})",
                serde_json::to_string(ready).unwrap()
            ))
            .await
            .unwrap();
        assert_eq!(
            browser.eval("window.__notReloaded === true").await.unwrap(),
            true
        );
        shots.push(browser.screenshot(&format!("{lang}-ready")).await.unwrap());
        // The person's own sign-out is in the sign-in log.
        let log = server
            .api(Method::GET, "/api/v1/sign-in-log?since=1h&limit=1", None)
            .await
            .json();
        assert_eq!(log[0]["result"], "signed_out", "{log}");
        assert_eq!(log[0]["reason"], "sign_out", "{log}");
        assert_eq!(log[0]["how"], "portal", "{log}");
        let metrics = server.client.get("/metrics").await.text();
        assert!(metrics.contains("baton_devices_signed_in 0"), "{metrics}");
        assert!(
            metrics.contains("baton_sign_ins_total{result=\"signed_out\",reason=\"sign_out\"} 1"),
            "{metrics}"
        );
        // "Ready for the next person" leads to the sign-in form.
        browser.click("a.button").await.unwrap();
        browser
            .wait_until("document.getElementById('password') !== null")
            .await
            .unwrap();
        assert!(
            browser.text().await.unwrap().contains(sign_in_label),
            "{lang}"
        );
        browser.close().await;
        if std::env::var_os("BATON_UPDATE_SCREENSHOTS").is_some() {
            let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
            std::fs::create_dir_all(&docs).unwrap();
            for s in &shots {
                std::fs::copy(s, docs.join(s.file_name().unwrap())).unwrap();
            }
        }
        for s in &shots {
            eprintln!("screenshot: {}", s.display());
        }
    }
}

/// A measurement, not a check (run with `--ignored --nocapture`): the server-side cost of a
/// portal sign-in for a person with 50 profiles and 30 apps: the whole POST (CSRF, argon2id
/// check, device lock, assignment, reconcile, enqueue of 81 commands) and the reconcile alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; prints timings"]
async fn measure_sign_in_with_50_profiles_and_30_apps() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
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
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    for i in 0..80 {
        let body = if i < 50 {
            json!({"id": format!("p{i:02}"), "kind": "profile",
                "mobileconfig": b64(profile_xml(&format!("load.p{i}"), "Profile for $USER.username"))})
        } else {
            json!({"id": format!("a{i:02}"), "kind": "app",
                "bundle_id": format!("com.example.app{i}"), "itunes_store_id": 1_000_000 + i})
        };
        let r = server.api(Method::POST, "/api/v1/items", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let item = r.json()["id"].as_str().unwrap().to_owned();
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": item, "target": {"users": ["carol"]}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut device =
        baton_e2e::portal::enrolled_sim(&server, &pki, UDID, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();
    let portal = clip_path(&device, "Sign in");
    let services = server.running().services().clone();
    let id = baton_proto::EnrollmentId::device(UDID).unwrap();
    let mut posts = Vec::new();
    let mut reconciles = Vec::new();
    for round in 0..6 {
        let mut browser = Browser::default();
        let (action, csrf) = form_of(&browser.get(&server, &portal).await);
        let t = Instant::now();
        let r = browser
            .post(
                &server,
                &action,
                &[
                    ("username", "carol"),
                    ("password", "pw-carol"),
                    ("csrf", &csrf),
                ],
            )
            .await;
        posts.push(t.elapsed());
        assert_eq!(r.status, 303, "{}", r.text());
        if round == 0 {
            let n = server.commands(UDID).await.len();
            eprintln!("commands queued after the first sign-in: {n}");
        }
        device.connect_until_idle().await.unwrap();
        let (s, i) = (services.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            s.reconciler
                .sign_out(&i, "admin", std::time::SystemTime::now())
        })
        .await
        .unwrap()
        .unwrap();
        device.connect_until_idle().await.unwrap();
        let (s, i) = (services.clone(), id.clone());
        let d = tokio::task::spawn_blocking(move || {
            let t = Instant::now();
            let o = s
                .reconciler
                .sign_in(&i, "carol", "admin", std::time::SystemTime::now())
                .unwrap();
            (t.elapsed(), o.enqueued.len())
        })
        .await
        .unwrap();
        reconciles.push(d.0);
        device.connect_until_idle().await.unwrap();
        let (s, i) = (services.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            s.reconciler
                .sign_out(&i, "admin", std::time::SystemTime::now())
        })
        .await
        .unwrap()
        .unwrap();
        device.connect_until_idle().await.unwrap();
    }
    posts.sort();
    reconciles.sort();
    eprintln!(
        "portal sign-in POST (argon2id + reconcile + enqueue, 50 profiles + 30 apps): median {:?}, min {:?}, max {:?}",
        posts[posts.len() / 2],
        posts[0],
        posts[posts.len() - 1]
    );
    eprintln!(
        "Reconciler::sign_in alone: median {:?}, min {:?}, max {:?}",
        reconciles[reconciles.len() / 2],
        reconciles[0],
        reconciles[reconciles.len() - 1]
    );
}

/// The "Sign in" clip's URL alone (any browser but the one that signed in, even with a CSRF
/// token kept from an earlier sign-in form or a made-up cookie) shows no name, no progress and
/// no prompt, and signs nobody out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_url_alone_neither_shows_nor_signs_out_the_person() {
    let apns = Apns::start().await;
    let (server, device) = setup(&apns, false).await;
    let portal = clip_path(&device, "Sign in");
    let mut other = Browser::default();
    let (_, kept_csrf) = form_of(&other.get(&server, &portal).await);
    let mut alice = Browser::default();
    let (_, r) = alice
        .submit(
            &server,
            &portal,
            &[("username", "alice"), ("password", "pw-alice")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(&server).await, "alice");

    for cookie in [
        None,
        Some("baton_portal=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        other.cookie = cookie.map(str::to_owned);
        let page = other.get(&server, &portal).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let html = page.text();
        assert!(html.contains(IN_USE_HEADING), "{html}");
        assert!(!html.contains("Alice") && !html.contains("<form"), "{html}");
        for sub in ["progress", "stay"] {
            let r = other.get(&server, &format!("{portal}/{sub}")).await;
            assert_eq!(
                (r.status.as_u16(), location(&r)),
                (303, portal.clone()),
                "{sub}"
            );
        }
    }
    let r = other
        .post(
            &server,
            &format!("{portal}/sign-out"),
            &[("csrf", &kept_csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!r.text().contains("Alice"), "{}", r.text());
    assert_eq!(assignee(&server).await, "alice");

    // The web app that signed in (its cookie) still sees alice's page.
    let page = alice.get(&server, &portal).await;
    assert!(
        page.text().contains("Signed in as Alice"),
        "{}",
        page.text()
    );
}

/// After the hand-off, the previous session's "Sign out" URL (even with a form kept from it)
/// and its cookie (on the old or the new device URL) cannot see or touch the next person's
/// session; the device token rotated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_sessions_url_and_cookie_cannot_touch_the_next_one() {
    let apns = Apns::start().await;
    let (server, mut device) = setup(&apns, false).await;
    let portal = clip_path(&device, "Sign in");
    let mut alice_in = Browser::default();
    let (_, r) = alice_in
        .submit(
            &server,
            &portal,
            &[("username", "alice"), ("password", "pw-alice")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let alice_cookie = alice_in.cookie.clone().expect("the sign-in sets a cookie");
    device.connect_until_idle().await.unwrap();
    let alice_out = clip_path(&device, "Sign out");
    assert!(alice_out.starts_with("/portal/session/"), "{alice_out}");

    // alice keeps one form of her "Sign out" page and signs out with another.
    let mut alice_out_app = Browser::default();
    let (_, kept_csrf) = form_of(&alice_out_app.get(&server, &alice_out).await);
    let (_, r) = alice_out_app.submit(&server, &alice_out, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(&server).await, "nobody");
    device.connect_until_idle().await.unwrap();
    let new_portal = clip_path(&device, "Sign in");
    assert_ne!(
        new_portal, portal,
        "the device token rotates at the hand-off"
    );
    let (_, new_csrf) = form_of(&Browser::default().get(&server, &new_portal).await);

    // bob signs in through the new "Sign in" clip.
    let mut bob_in = Browser::default();
    let (_, r) = bob_in
        .submit(
            &server,
            &new_portal,
            &[("username", "bob"), ("password", "pw-bob")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    device.connect_until_idle().await.unwrap();
    let bob_out = clip_path(&device, "Sign out");
    assert_ne!(bob_out, alice_out);

    // alice's old "Sign out" URL: the session ended; no name, no sign-out.
    let mut old = Browser::default();
    for path in [alice_out.clone(), format!("{alice_out}/progress")] {
        let r = old.get(&server, &path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("Bob"), "{}", r.text());
    }
    let r = old
        .post(
            &server,
            &format!("{alice_out}/sign-out"),
            &[("csrf", &kept_csrf)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(assignee(&server).await, "bob");

    // alice's old cookie, on the old device URL (gone) and on the new one.
    let mut old = Browser {
        cookie: Some(alice_cookie),
    };
    assert_eq!(old.get(&server, &portal).await.status, 404);
    let page = old.get(&server, &new_portal).await;
    assert!(page.text().contains(IN_USE_HEADING), "{}", page.text());
    assert!(!page.text().contains("Bob"), "{}", page.text());
    let r = old.get(&server, &format!("{new_portal}/progress")).await;
    assert_eq!(r.status, 303);
    let r = old
        .post(
            &server,
            &format!("{new_portal}/sign-out"),
            &[("csrf", &new_csrf)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(assignee(&server).await, "bob");

    // bob's own "Sign out" clip works in a fresh web app.
    let page = Browser::default().get(&server, &bob_out).await;
    assert!(
        page.text().contains("Signed in as Bob Builder"),
        "{}",
        page.text()
    );
}

/// In baton-sim, each web clip opens in its own web app (cookie jar), emptied when the clip is
/// removed: the person signs in through "Sign in" and out through "Sign out", each in its own
/// fresh jar, as on an iPhone; another web app with the "Sign in" URL sees nobody's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_baton_sim_each_web_clip_is_its_own_web_app() {
    let apns = Apns::start().await;
    let (server, mut device) = setup(&apns, false).await;
    let base = server.running().local_url();
    let (_, mut sign_in_app) = device.open_web_clip("Sign in").expect("a sign-in clip");
    let url = format!("{base}{}", clip_path(&device, "Sign in"));
    let page = sign_in_app.open(&url).await.unwrap();
    let form = page
        .forms()
        .into_iter()
        .find(baton_sim::html_form::HtmlForm::has_password)
        .expect("the sign-in form");
    let (_, progress) = sign_in_app
        .submit(
            &page,
            &form,
            &[("username", "alice"), ("password", "pw-alice")],
        )
        .await
        .unwrap();
    assert_eq!(progress.status, 200, "{}", progress.html);
    assert!(progress.url.ends_with("/progress"), "{}", progress.url);
    assert_eq!(sign_in_app.cookie_count(), 1);

    let mut elsewhere =
        baton_sim::browser::Browser::new(Transport::new(&ServerTrust::AcceptAny).unwrap());
    let page = elsewhere.open(&url).await.unwrap();
    assert!(page.html.contains(IN_USE_HEADING), "{}", page.html);
    assert!(!page.html.contains("Alice"), "{}", page.html);

    // The device removes the "Sign in" clip: its web app's cookie goes with it.
    device.connect_until_idle().await.unwrap();
    assert!(device.open_web_clip("Sign in").is_none());
    assert_eq!(sign_in_app.cookie_count(), 0);

    let (_, mut sign_out_app) = device.open_web_clip("Sign out").expect("a sign-out clip");
    assert_eq!(sign_out_app.cookie_count(), 0, "a fresh web app");
    let out_url = format!("{base}{}", clip_path(&device, "Sign out"));
    let page = sign_out_app
        .open(&format!("{out_url}/progress"))
        .await
        .unwrap();
    assert!(page.html.contains("Your device is ready"), "{}", page.html);
    let page = sign_out_app.open(&out_url).await.unwrap();
    assert!(page.html.contains("Signed in as Alice"), "{}", page.html);
    let form = page
        .forms()
        .into_iter()
        .find(|f| f.method == "post")
        .expect("the sign-out form");
    let (_, signed_out) = sign_out_app.submit(&page, &form, &[]).await.unwrap();
    assert_eq!(signed_out.status, 200, "{}", signed_out.html);
    assert!(
        signed_out.url.ends_with("/signed-out"),
        "{}",
        signed_out.url
    );
    assert_eq!(assignee(&server).await, "nobody");

    device.connect_until_idle().await.unwrap();
    assert!(device.open_web_clip("Sign out").is_none());
    let (_, next) = device
        .open_web_clip("Sign in")
        .expect("the sign-in clip is back");
    assert_eq!(next.cookie_count(), 0);
    let page = sign_out_app.open(&out_url).await.unwrap();
    assert_eq!(
        page.status, 404,
        "the ended session's clip URL: {}",
        page.html
    );
}

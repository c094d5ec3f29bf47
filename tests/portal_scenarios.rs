//! Sign-in scenarios beyond the happy path, end to end (server + mock APNs + baton-sim):
//! the device is offline while a person signs out and converges when it returns; a second
//! person signs in before the device processed the first one's removals; and a Shared iPad,
//! where a person's user-scoped items go to the `UDID:user` channel and device items stay on
//! the device channel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_e2e::portal::{Apns, Browser, clip_path, profile_xml, sign_in_path};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::Status;
use baton_server::portal::pages::READY_FOR_NEXT;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::json;

const UDID: &str = "00008120-0002B3C4D5E6F7A8";

/// Creates a profile item and distributes it to `target`.
async fn distribute(
    server: &TestServer,
    id: &str,
    display: &str,
    scope: Option<&str>,
    target: serde_json::Value,
) {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let mut body = json!({"id": id, "name": id, "kind": "profile",
        "mobileconfig": b64(profile_xml(&format!("upload.{id}"), display))});
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    let r = server.api(Method::POST, "/api/v1/items", Some(body)).await;
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

/// A server with alice and bob, a Wi-Fi profile for every device and a mail profile for alice
/// and bob (user scope when `mail_scope` says so).
async fn server(apns: &Apns, pki: &Pki, mail_scope: Option<&str>) -> TestServer {
    let server = TestServer::start(
        pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            push: apns.config(),
            ..ServerOptions::default()
        },
    )
    .await;
    for (name, full) in [("alice", "Alice Liddell"), ("bob", "Bob Builder")] {
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
    distribute(&server, "wifi", "Corp Wi-Fi", None, json!("all")).await;
    distribute(
        &server,
        "mail",
        "Mail for $USER.email",
        mail_scope,
        json!({"users": ["alice", "bob"]}),
    )
    .await;
    server
}

/// An enrolled sim device (not yet connected).
async fn enroll(server: &TestServer, pki: &Pki, options: SimOptions) -> SimDevice {
    baton_e2e::portal::enrolled_sim(server, pki, UDID, options).await
}

/// Signs `user` in through the portal; asserts the redirect to the progress page.
async fn portal_sign_in(server: &TestServer, device: &SimDevice, user: &str) -> Browser {
    let portal = clip_path(device, "Sign in");
    let mut browser = Browser::default();
    let password = format!("pw-{user}");
    let (action, r) = browser
        .submit(
            server,
            &portal,
            &[("username", user), ("password", &password)],
        )
        .await;
    assert_eq!(action, format!("{portal}/sign-in"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(server).await, user);
    browser
}

/// Signs the current person out through the portal: the "Sign out" clip, opened in its own
/// web app (a fresh cookie jar: iOS shares none with the "Sign in" clip).
async fn portal_sign_out(server: &TestServer, device: &SimDevice) {
    let portal = clip_path(device, "Sign out");
    let mut browser = Browser::default();
    let (action, r) = browser.submit(server, &portal, &[]).await;
    assert_eq!(action, format!("{portal}/sign-out"));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(server).await, "nobody");
}

async fn assignee(server: &TestServer) -> String {
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    view["assignee"].as_str().unwrap().to_owned()
}

async fn sessions(server: &TestServer) -> serde_json::Value {
    server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await
        .json()
}

/// The session of `user` (the latest one).
fn session_of<'s>(sessions: &'s serde_json::Value, user: &str) -> &'s serde_json::Value {
    sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"] == user)
        .unwrap_or_else(|| panic!("no session of {user}: {sessions}"))
}

fn identifiers(profiles: &[baton_sim::InstalledProfile]) -> Vec<String> {
    let mut ids: Vec<String> = profiles.iter().map(|p| p.identifier.clone()).collect();
    ids.sort();
    ids
}

/// Queued (not yet answered) request types on a channel, in queue order.
async fn queued(server: &TestServer, id: &str) -> Vec<String> {
    server
        .commands(id)
        .await
        .iter()
        .filter(|c| c["status"] == "queued")
        .map(|c| c["request_type"].as_str().unwrap().to_owned())
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_device_converges_after_sign_out_when_it_returns() {
    let started = Instant::now();
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, None).await;
    let mut device = enroll(&server, &pki, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();
    let nobody_baseline = identifiers(device.profiles());
    assert_eq!(
        nobody_baseline,
        strings(&["com.baton.item.sign-in", "com.baton.item.wifi"])
    );

    // alice signs in through the portal; the device becomes ready.
    let mut browser = portal_sign_in(&server, &device, "alice").await;
    device.connect_until_idle().await.unwrap();
    let signed_in = identifiers(device.profiles());
    assert_eq!(
        signed_in,
        strings(&[
            "com.baton.item.mail",
            "com.baton.item.sign-out",
            "com.baton.item.wifi"
        ])
    );
    assert!(
        session_of(&sessions(&server).await, "alice")["ready_at"].is_u64(),
        "ready recorded"
    );

    // The device goes offline (it is simply not connected); alice signs out.
    portal_sign_out(&server, &device).await;
    let mut waiting = queued(&server, UDID).await;
    waiting.sort();
    assert_eq!(
        waiting,
        strings(&[
            "InstallProfile",
            "ManagedApplicationList",
            "ProfileList",
            "RemoveProfile",
            "RemoveProfile"
        ]),
        "removals, the sign-in clip and the inventory queries wait for the device"
    );
    let s = sessions(&server).await;
    let alice = session_of(&s, "alice");
    assert_eq!(alice["ended_how"], "portal");
    assert_ne!(
        alice["clean_hand_off"], true,
        "not clean before the device verified it: {s}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        identifiers(device.profiles()),
        signed_in,
        "offline: nothing changed"
    );

    // Back online: exactly alice's items leave, the clip returns, then the inventory queries.
    let done = device.connect_until_idle().await.unwrap();
    let kinds: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            // alice's mail, the sign-in clip back, then the sign-out clip (full-screen: last).
            "RemoveProfile",
            "InstallProfile",
            "RemoveProfile",
            "ProfileList",
            "ManagedApplicationList"
        ],
        "{done:?}"
    );
    assert!(done.iter().all(|c| c.status == Status::Acknowledged));
    let now = identifiers(device.profiles());
    let removed: Vec<&String> = signed_in.iter().filter(|p| !now.contains(p)).collect();
    assert_eq!(
        removed,
        ["com.baton.item.mail", "com.baton.item.sign-out"],
        "exactly alice's items, nothing of nobody's"
    );
    assert_eq!(now, nobody_baseline, "back to the nobody baseline");
    assert!(queued(&server, UDID).await.is_empty());
    let s = sessions(&server).await;
    assert_eq!(session_of(&s, "alice")["clean_hand_off"], true, "{s}");
    let page = browser
        .get(
            &server,
            &format!("{}/signed-out", clip_path(&device, "Sign in")),
        )
        .await;
    assert!(page.text().contains(READY_FOR_NEXT), "{}", page.text());
    eprintln!("offline sign-out scenario: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_person_signs_in_before_the_device_processed_the_sign_out() {
    let started = Instant::now();
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, None).await;
    let mut device = enroll(&server, &pki, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();

    let _alice = portal_sign_in(&server, &device, "alice").await;
    device.connect_until_idle().await.unwrap();
    let mail = |d: &SimDevice| {
        d.profiles()
            .iter()
            .find(|p| p.identifier == "com.baton.item.mail")
            .and_then(|p| p.display_name.clone())
    };
    assert_eq!(mail(&device).as_deref(), Some("Mail for alice@example.com"));

    // alice signs out and bob signs in right away; the device has not connected in between.
    portal_sign_out(&server, &device).await;
    // The device token rotated at the sign-out: bob uses the new "Sign in" clip's URL.
    let portal = sign_in_path(&server, UDID);
    let mut bob = Browser::default();
    let (_, r) = bob
        .submit(
            &server,
            &portal,
            &[("username", "bob"), ("password", "pw-bob")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(assignee(&server).await, "bob");

    // The device connects (pushed): it ends with bob's items and the shared ones only.
    apns.wait_for(device.push_token_hex(), 1).await;
    let done = device.connect_until_idle().await.unwrap();
    assert!(
        done.iter().all(|c| c.status == Status::Acknowledged),
        "{done:?}"
    );
    assert_eq!(
        identifiers(device.profiles()),
        strings(&[
            "com.baton.item.mail",
            "com.baton.item.sign-out",
            "com.baton.item.wifi"
        ]),
        "{done:?}"
    );
    assert_eq!(
        mail(&device).as_deref(),
        Some("Mail for bob@example.com"),
        "bob's rendering, none of alice's: {done:?}"
    );
    let kinds: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            // alice's hand-off: her mail leaves, the sign-in clip returns, the sign-out clip
            // leaves (full-screen clips last), the inventory is verified ...
            "RemoveProfile",
            "InstallProfile",
            "RemoveProfile",
            "ProfileList",
            "ManagedApplicationList",
            // ... then bob's sign-in: his mail and the sign-out clip arrive, the clip leaves.
            "InstallProfile",
            "InstallProfile",
            "RemoveProfile"
        ],
        "{done:?}"
    );
    // Nothing more to do on a later session.
    assert!(device.connect_until_idle().await.unwrap().is_empty());

    let r = bob.get(&server, &format!("{portal}/progress")).await;
    assert!(
        r.text().contains("Your device is ready"),
        "bob ready: {}",
        r.text()
    );
    let s = sessions(&server).await;
    assert!(session_of(&s, "bob")["ready_at"].is_u64(), "{s}");
    assert_eq!(session_of(&s, "alice")["ended_how"], "portal", "{s}");
    eprintln!("second-person scenario: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_ipad_user_items_go_to_the_user_channel() {
    let started = Instant::now();
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, Some("user")).await;
    let options = SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    };
    // A device-scoped item for alice only: it must stay on the device channel.
    distribute(
        &server,
        "vpn",
        "VPN",
        Some("device"),
        json!({"users": ["alice"]}),
    )
    .await;
    let mut device = enroll(&server, &pki, options).await;
    device.connect_until_idle().await.unwrap();
    assert!(
        device
            .profiles()
            .iter()
            .any(|p| p.identifier == "com.baton.item.wifi")
    );

    // alice logs in at the iPad's login screen: her user channel appears.
    device.user_sign_in("alice").await.unwrap();
    let user_channel = format!("{UDID}:alice");
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{user_channel}/commands"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "user channel known: {}", r.text());

    let device_before = server.commands(UDID).await.len();
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-in"),
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Her user-scoped mail profile waits on the user channel; nothing of it on the device one.
    let on_user = queued(&server, &user_channel).await;
    assert_eq!(
        on_user,
        ["InstallProfile", "InstallProfile"],
        "her mail and the (user-scoped) sign-out clip: {on_user:?}"
    );
    let device_new: Vec<String> = server.commands(UDID).await[device_before..]
        .iter()
        .map(|c| c["request_type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        device_new,
        ["InstallProfile"],
        "only alice's device-scoped VPN on the device channel"
    );

    // The user channel fetches and acknowledges; the device channel keeps the Wi-Fi.
    let done = device.user_connect_until_idle("alice").await.unwrap();
    assert!(!done.is_empty());
    assert!(
        done.iter().all(|c| c.status == Status::Acknowledged),
        "{done:?}"
    );
    let user_profiles = identifiers(&device.user_inventory("alice").unwrap().profiles);
    assert!(
        user_profiles.contains(&"com.baton.item.mail".to_owned()),
        "{user_profiles:?}"
    );
    let mail = device
        .user_inventory("alice")
        .unwrap()
        .profiles
        .iter()
        .find(|p| p.identifier == "com.baton.item.mail")
        .unwrap();
    assert_eq!(
        mail.display_name.as_deref(),
        Some("Mail for alice@example.com")
    );
    device.connect_until_idle().await.unwrap();
    let device_profiles = identifiers(device.profiles());
    assert!(
        device_profiles.contains(&"com.baton.item.wifi".to_owned()),
        "{device_profiles:?}"
    );
    assert!(
        device_profiles.contains(&"com.baton.item.vpn".to_owned()),
        "{device_profiles:?}"
    );
    assert!(
        !device_profiles.contains(&"com.baton.item.mail".to_owned()),
        "{device_profiles:?}"
    );
    assert!(!user_profiles.contains(&"com.baton.item.vpn".to_owned()));
    assert!(!user_profiles.contains(&"com.baton.item.wifi".to_owned()));
    let acked = server.commands(&user_channel).await;
    assert!(
        acked.iter().all(|c| c["status"] == "acknowledged"),
        "{acked:?}"
    );
    eprintln!("Shared iPad scenario: {:?}", started.elapsed());
}

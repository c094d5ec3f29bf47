//! What Baton learns from the device itself, end to end with the iOS-faithful simulator:
//! targeting by `model_name` (iOS's Authenticate has no ModelName: Baton asks DeviceInformation
//! after enrollment), a Shared iPad recognised before anyone signs in (its sign-in web clip is
//! user-channel only, so nothing goes to the device channel), and Settings items the device
//! refuses while acknowledging the command (stored, shown, not marked applied).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use baton_e2e::portal::profile_xml;
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::Status;
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::json;

const UDID: &str = "00008120-000DEF1C0FAC7500";

async fn enroll(server: &TestServer, pki: &Pki, options: SimOptions) -> SimDevice {
    baton_e2e::portal::enrolled_sim(server, pki, UDID, options).await
}

async fn post(server: &TestServer, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = server.api(Method::POST, path, Some(body)).await;
    assert_eq!(r.status, 201, "{path}: {}", r.text());
    r.json()
}

async fn view(server: &TestServer) -> serde_json::Value {
    server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json()
}

/// Creates a profile item `id` and distributes it to `target`.
async fn profile_for(server: &TestServer, id: &str, target: serde_json::Value) {
    let b64 =
        base64::engine::general_purpose::STANDARD.encode(profile_xml(&format!("upload.{id}"), id));
    post(
        server,
        "/api/v1/items",
        json!({"id": id, "name": id, "kind": "profile", "mobileconfig": b64}),
    )
    .await;
    post(
        server,
        "/api/v1/distributions",
        json!({"item": id, "target": target}),
    )
    .await;
}

/// A device group `model_name = "iPhone"` gets its profile on an iPhone whose Authenticate,
/// like every iOS one, carries no ModelName: the rule reads the DeviceInformation answer, and
/// the admin view shows null until the device has answered. (Before, rules and the view read
/// Authenticate only, so the rule never matched a real iPhone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_name_rules_use_what_the_device_answers() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    for (name, rule) in [
        ("iphones", "model_name = \"iPhone\""),
        ("ipads", "model_name = \"iPad\""),
    ] {
        post(
            &server,
            "/api/v1/groups",
            json!({"name": name, "kind": "device", "rule": rule}),
        )
        .await;
        profile_for(&server, &format!("for-{name}"), json!({"groups": [name]})).await;
    }
    let mut device = enroll(&server, &pki, SimOptions::default()).await;
    let v = view(&server).await;
    assert_eq!(v["model_name"], serde_json::Value::Null, "{v}");
    assert_eq!(v["device_name"], serde_json::Value::Null, "{v}");

    let done = device.connect_until_idle().await.unwrap();
    let types: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(types, ["DeviceInformation", "InstallProfile"], "{done:?}");
    assert!(
        done.iter().all(|c| c.status == Status::Acknowledged),
        "{done:?}"
    );
    let installed: Vec<&str> = device
        .profiles()
        .iter()
        .map(|p| p.display_name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(installed, ["for-iphones"]);
    let v = view(&server).await;
    assert_eq!(v["model_name"], "iPhone", "{v}");
    assert_eq!(
        v["device_name"],
        device.record().facts.device_name.as_str(),
        "{v}"
    );
    assert_eq!(v["supervised"], false, "{v}");
    server.stop().await;
}

/// A Shared iPad says so (IsMultiUser) before anyone signs in. Its sign-in web clip is
/// user-channel only (Apple's schema: `com.apple.webClip.managed` has `devicechannel: false`), and
/// with nobody signed in there is no user channel: Baton sends it nowhere (the iPad shows its
/// own login window; people sign in with their Managed Apple Account), while device items such
/// as Wi-Fi still go to the device channel. Before, the iPad was planned as an ordinary device
/// until a user channel appeared, and the clip went to the device channel, which iOS refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_ipad_gets_no_web_clip_on_its_device_channel() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            ..ServerOptions::default()
        },
    )
    .await;
    profile_for(&server, "wifi", json!("all")).await;
    let options = SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    };
    let mut ipad = enroll(&server, &pki, options).await;
    let done = ipad.connect_until_idle().await.unwrap();
    let types: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(types, ["DeviceInformation", "InstallProfile"], "{done:?}");
    assert!(
        done.iter().all(|c| c.status == Status::Acknowledged),
        "{done:?}"
    );
    assert!(ipad.web_clips().is_empty(), "{:?}", ipad.web_clips());
    assert_eq!(ipad.profiles().len(), 1);
    let v = view(&server).await;
    assert_eq!(v["shared_ipad"], true, "{v}");
    assert_eq!(v["supervised"], true, "{v}");
    assert!(ipad.connect_until_idle().await.unwrap().is_empty());
    server.stop().await;
}

/// An unsupervised iPhone acknowledges a Settings command while refusing `DeviceName` (a
/// supervised-only item): Baton shows the failed item on the device and does not mark the
/// settings applied; the items it did apply are not lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_settings_items_are_shown_and_not_marked_applied() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    let settings = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><array>
<dict><key>Item</key><string>DeviceName</string><key>DeviceName</key><string>Front desk</string></dict>
</array></plist>"#;
    let roaming = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><array>
<dict><key>Item</key><string>DataRoaming</string><key>Enabled</key><false/></dict>
</array></plist>"#;
    for (id, xml) in [("name", settings), ("roaming", roaming)] {
        post(
            &server,
            "/api/v1/items",
            json!({"id": id, "name": id, "kind": "settings", "settings": xml}),
        )
        .await;
        post(
            &server,
            "/api/v1/distributions",
            json!({"item": id, "target": "all"}),
        )
        .await;
    }
    let mut device = enroll(&server, &pki, SimOptions::default()).await;
    let done = device.connect_until_idle().await.unwrap();
    let types: Vec<&str> = done.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(types, ["DeviceInformation", "Settings"], "{done:?}");
    assert_eq!(done[1].status, Status::Acknowledged);
    let v = view(&server).await;
    let failures = &v["settings_failures"];
    assert_eq!(failures["name"][0]["setting"], "DeviceName", "{v}");
    assert_eq!(failures["name"][0]["status"], "CommandFormatError", "{v}");
    assert!(failures.get("roaming").is_none(), "{v}");
    // Not marked applied: within the retry back-off nothing is resent, and the other item's
    // Settings is sent alone (it was already applied, but the combined hash was not recorded).
    let again = device.connect_until_idle().await.unwrap();
    assert!(
        again.iter().all(|c| c.request_type == "Settings"),
        "{again:?}"
    );
    server.stop().await;
}

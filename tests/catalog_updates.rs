//! Changing what exists: replacing a profile item (`PUT /api/v1/items/{id}`) rolls the new
//! version out to the devices that have it; replacing a group's members (`PUT
//! /api/v1/groups/{id}`) moves devices in and out of its distributions; the kind of a group
//! cannot change; bad bodies are refused without changing anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use baton_e2e::portal::{Apns, profile_xml};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::reconciler::AssignmentSettings;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use serde_json::json;

const UDID: &str = "00008120-0005E6F7A8B9C0D1";

fn b64(s: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn installed(device: &SimDevice, identifier: &str) -> Option<String> {
    device
        .profiles()
        .iter()
        .find(|p| p.identifier == identifier)
        .map(|p| p.uuid.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_items_and_groups_reach_the_devices() {
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
    for (id, display) in [("wifi", "Corp Wi-Fi"), ("vpn", "Ward VPN")] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/items",
                Some(json!({"id": id, "name": id, "kind": "profile",
                    "mobileconfig": b64(profile_xml(&format!("upload.{id}"), display))})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = server
        .api(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"name": "ward", "kind": "device", "members": []})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for (item, target) in [("wifi", json!("all")), ("vpn", json!({"groups": ["ward"]}))] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/distributions",
                Some(json!({"item": item, "target": target})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let mut device =
        baton_e2e::portal::enrolled_sim(&server, &pki, UDID, SimOptions::default()).await;
    device.connect_until_idle().await.unwrap();
    let first = installed(&device, "com.baton.item.wifi").expect("wifi installed");
    assert!(installed(&device, "com.baton.item.vpn").is_none());

    // A new version of the profile: installed again with a new PayloadUUID.
    let r = server
        .api(
            Method::PUT,
            "/api/v1/items/wifi",
            Some(json!({"name": "wifi", "kind": "profile",
                "mobileconfig": b64(profile_xml("upload.wifi", "Corp Wi-Fi 2"))})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done = device.connect_until_idle().await.unwrap();
    assert!(
        done.iter().any(|c| c.request_type == "InstallProfile"),
        "{done:?}"
    );
    let second = installed(&device, "com.baton.item.wifi").expect("wifi still installed");
    assert_ne!(first, second, "the new version replaced the old");
    let shown = server.api(Method::GET, "/api/v1/items/wifi", None).await;
    assert_eq!(shown.status, 200);

    // The device joins the group: it gets the group's item; leaves it: the item goes.
    let r = server
        .api(
            Method::PUT,
            "/api/v1/groups/ward",
            Some(json!({"name": "ward", "kind": "device", "members": [UDID]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    device.connect_until_idle().await.unwrap();
    assert!(installed(&device, "com.baton.item.vpn").is_some());
    let r = server
        .api(
            Method::PUT,
            "/api/v1/groups/ward",
            Some(json!({"name": "ward", "kind": "device", "rule": "model = \"Apple TV\""})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    device.connect_until_idle().await.unwrap();
    assert!(installed(&device, "com.baton.item.vpn").is_none());

    // Refusals change nothing.
    for (path, body, status) in [
        (
            "/api/v1/groups/ward",
            json!({"name": "ward", "kind": "user", "members": ["alice"]}),
            409,
        ),
        (
            "/api/v1/groups/ward",
            json!({"name": "other", "kind": "device"}),
            400,
        ),
        (
            "/api/v1/groups/nope",
            json!({"name": "nope", "kind": "device"}),
            404,
        ),
        (
            "/api/v1/groups/ward",
            json!({"name": "ward", "kind": "device", "rule": "model = "}),
            400,
        ),
        (
            "/api/v1/items/nope",
            json!({"name": "nope", "kind": "profile",
                "mobileconfig": b64(profile_xml("upload.nope", "Nope"))}),
            404,
        ),
        (
            "/api/v1/items/wifi",
            json!({"id": "vpn", "name": "wifi", "kind": "profile",
                "mobileconfig": b64(profile_xml("upload.wifi", "x"))}),
            400,
        ),
        (
            "/api/v1/items/wifi",
            json!({"name": "wifi", "kind": "profile", "mobileconfig": "not base64!"}),
            400,
        ),
    ] {
        let r = server.api(Method::PUT, path, Some(body.clone())).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text());
        assert!(r.json()["error"].is_string(), "{}", r.text());
    }
    let done = device.connect_until_idle().await.unwrap();
    assert!(done.is_empty(), "refused changes queued {done:?}");
    assert_eq!(installed(&device, "com.baton.item.wifi"), Some(second));
}

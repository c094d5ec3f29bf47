//! The admin API: authentication, enqueue forms (JSON, raw plist, bulk), listing, cancel,
//! errors, health and metrics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::{Command, Limits};
use http::Method;

const UDID: &str = "00008030-001A2B3C4D5E802E";
const OTHER: &str = "00008110-000F0E0D0C0B0A09";

async fn server_with_two_devices() -> (TestDevice, TestServer) {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    let device = pki.device(UDID);
    server.enroll(&device).await;
    server.enroll(&pki.device(OTHER)).await;
    (device, server)
}

#[tokio::test]
async fn missing_or_wrong_key_is_401_json() {
    let (_device, server) = server_with_two_devices().await;
    for auth in [None, Some("Bearer nope"), Some("Basic Zm9vOmJhcg==")] {
        let headers: Vec<(&str, String)> = auth
            .map(|a| vec![("Authorization", a.to_owned())])
            .unwrap_or_default();
        let r = server
            .client
            .send(Method::GET, "/api/v1/devices", &headers, Vec::new())
            .await
            .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "unauthorized");
    }
    let r = server.api(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(r.status, 200);
    let devices = r.json()["devices"].as_array().unwrap().clone();
    assert_eq!(devices.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn enqueue_forms_list_and_cancel() {
    let (device, server) = server_with_two_devices().await;

    // Raw plist without CommandUUID: one is assigned.
    let plist = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>Command</key><dict><key>RequestType</key><string>RestartDevice</string></dict></dict></plist>"#;
    let r = server
        .api_raw(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/commands"),
            "application/x-apple-plist",
            plist.to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let restart_uuid = r.json()["command_uuid"].as_str().unwrap().to_owned();

    // Typed JSON with a payload.
    let profile = r#"{"request_type":"InstallProfile","payload":"PD94bWwgdmVyc2lvbj0iMS4wIj8+"}"#;
    let r = server
        .api_raw(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/commands"),
            "application/json",
            profile.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let install_uuid = r.json()["command_uuid"].as_str().unwrap().to_owned();

    // Bulk: both devices at once.
    let r = server
        .api(
            Method::POST,
            "/api/v1/commands",
            Some(serde_json::json!({"devices": [UDID, OTHER], "command": {"request_type": "DeviceInformation"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["devices"].as_array().unwrap().len(), 2);

    let listed = server.commands(UDID).await;
    let types: Vec<&str> = listed
        .iter()
        .map(|c| c["request_type"].as_str().unwrap())
        .collect();
    // Baton's own DeviceInformation query after enrollment comes first.
    assert_eq!(
        types,
        [
            "DeviceInformation",
            "RestartDevice",
            "InstallProfile",
            "DeviceInformation"
        ]
    );
    assert_eq!(server.commands(OTHER).await.len(), 2);

    // Cancel the restart: 204, then 409 (no longer queued), unknown: 404.
    let path = format!("/api/v1/devices/{UDID}/commands/{restart_uuid}");
    assert_eq!(server.api(Method::DELETE, &path, None).await.status, 204);
    assert_eq!(server.api(Method::DELETE, &path, None).await.status, 409);
    let r = server
        .api(
            Method::DELETE,
            &format!("/api/v1/devices/{UDID}/commands/NOPE"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(server.commands(UDID).await[1]["status"], "cancelled");

    // The device gets the InstallProfile next (the cancelled one is skipped).
    let r = server.connect(&device, device.idle()).await;
    let command = Command::decode(&r.body, &Limits::default())
        .unwrap_or_else(|e| panic!("{e}: {}", r.text()));
    assert_eq!(command.uuid.as_str(), install_uuid);

    let metrics = server.client.get("/metrics").await.text();
    assert!(metrics.contains("baton_command_queue_depth 3"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn api_errors_are_json_with_statuses() {
    let (_device, server) = server_with_two_devices().await;
    let cases = [
        (
            Method::GET,
            "/api/v1/devices/UNKNOWN-DEVICE".to_owned(),
            None,
            404,
        ),
        (
            Method::POST,
            "/api/v1/devices/UNKNOWN-DEVICE/commands".to_owned(),
            Some(serde_json::json!({"request_type": "ProfileList"})),
            404,
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{UDID}/commands"),
            Some(serde_json::json!({"request_type": "ProfileList", "typo": true})),
            400,
        ),
        (
            Method::POST,
            format!("/api/v1/devices/{UDID}/commands"),
            Some(serde_json::json!({"request_type": "InstallProfile"})),
            400,
        ),
        (
            Method::POST,
            "/api/v1/commands".to_owned(),
            Some(
                serde_json::json!({"devices": [UDID, "UNKNOWN"], "command": {"request_type": "ProfileList"}}),
            ),
            404,
        ),
        (
            Method::GET,
            "/api/v1/devices/UNKNOWN/commands".to_owned(),
            None,
            404,
        ),
    ];
    for (method, path, body, status) in cases {
        let r = server.api(method.clone(), &path, body).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    // The failed bulk enqueue was atomic: UDID got nothing (but Baton's own answered
    // DeviceInformation query after enrollment).
    let listed = server.commands(UDID).await;
    assert!(
        listed
            .iter()
            .all(|c| c["request_type"] == "DeviceInformation"),
        "{listed:?}"
    );
    let r = server
        .api_raw(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/commands"),
            "text/csv",
            b"a,b".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);
    let big = vec![b' '; 9 * 1024 * 1024];
    let r = server
        .api_raw(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/commands"),
            "application/json",
            big,
        )
        .await;
    assert_eq!(r.status, 413);
    server.assert_healthy().await;
    server.stop().await;
}

/// `GET /groups/{id}/members` lists the devices a device group's rule matches now, as the
/// engine evaluates it: `model = "iPad"` (devices report `iPhone15,2`) matches none, which is
/// how an operator sees that the rule is wrong; `model_name` and `serial` rules match.
#[tokio::test]
async fn device_group_members_are_the_devices_its_rule_matches() {
    let (device, server) = server_with_two_devices().await;
    for (name, rule) in [
        ("ipads", r#"model = "iPad""#.to_owned()),
        ("phones", r#"model_name = "iPhone""#.to_owned()),
        ("one", format!(r#"serial = "{}""#, device.serial_number())),
    ] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/groups",
                Some(serde_json::json!({"name": name, "kind": "device", "rule": rule})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let members = |body: serde_json::Value| -> Vec<String> {
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = server
        .api(Method::GET, "/api/v1/groups/ipads/members", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(members(r.json()).is_empty());
    let r = server
        .api(Method::GET, "/api/v1/groups/phones/members", None)
        .await;
    let body = r.json();
    assert_eq!(body["kind"], "devices");
    assert_eq!(
        members(body.clone()),
        vec![UDID.to_owned(), OTHER.to_owned()]
    );
    assert_eq!(body["members"][0]["assignee"], "nobody");
    assert_eq!(body["members"][0]["model"], "iPhone15,2");
    let r = server
        .api(Method::GET, "/api/v1/groups/one/members", None)
        .await;
    assert_eq!(members(r.json()), vec![UDID.to_owned()]);
    let r = server
        .api(Method::GET, "/api/v1/groups/nope/members", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

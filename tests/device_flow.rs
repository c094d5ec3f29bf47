//! The main device conversation over real TLS with real CMS signatures: enroll, Idle, a command
//! queued through the admin API, NotNow (not redelivered in that session), Acknowledged on the
//! next connect, the result visible through the API, and a server restart in between that loses
//! nothing. Also: identity from the TLS client certificate, user channels sharing the device's
//! certificate, and the generated API key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::{Command, CommandRequest, Limits, Status};
use http::Method;

const UDID: &str = "00008030-001A2B3C4D5E802E";

fn command_of(body: &[u8]) -> Command {
    Command::decode(body, &Limits::default()).unwrap()
}

#[tokio::test]
async fn enroll_queue_not_now_acknowledge_across_a_restart() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let mut server = TestServer::start(&pki, ServerOptions::default()).await;
    assert!(server.running().is_tls());

    // Authenticate: stored, disabled; the command channel has nothing for a disabled device.
    let r = server.checkin(&device, device.authenticate()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    let r = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await;
    assert_eq!(r.status, 200);
    let view = r.json();
    assert_eq!(view["enabled"], false);
    assert_eq!(view["serial_number"], "SN4D5E802E");
    assert_eq!(view["assignee"], "nobody");

    // TokenUpdate enables it.
    let r = server.checkin(&device, device.token_update()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["enabled"], true);
    assert_eq!(view["push_token_present"], true);
    assert_eq!(view["channels"].as_array().unwrap().len(), 1);
    // Baton asks what the device is (iOS's Authenticate has no DeviceName or ModelName).
    server.answer_device_information(&device).await;

    // Idle with an empty queue: empty 200.
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // Queue a ProfileList through the API.
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let listed = server.operator_commands(UDID).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "queued");

    // The device fetches it.
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    let command = command_of(&r.body);
    assert_eq!(command.uuid.as_str(), uuid);
    assert_eq!(command.request, CommandRequest::ProfileList);

    // NotNow: not redelivered in this session.
    let r = server
        .connect(&device, device.report(Status::NotNow, &uuid))
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_empty(),
        "NotNow'd command came back in the same session"
    );
    let listed = server.operator_commands(UDID).await;
    assert_eq!(listed[0]["status"], "not_now");
    assert_eq!(listed[0]["not_now_count"], 1);

    // Restart on the same data directory: nothing is lost.
    server.restart().await;
    let listed = server.operator_commands(UDID).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "not_now");
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["enabled"], true);

    // Next session (Idle): offered again; Acknowledged.
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    assert_eq!(command_of(&r.body).uuid.as_str(), uuid);
    let r = server
        .connect(&device, device.report(Status::Acknowledged, &uuid))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());

    // Visible through the API, with the device's response.
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let result = r.json();
    assert_eq!(result["status"], "acknowledged");
    assert!(result["finished_at"].is_string());
    assert!(result["response"].as_str().unwrap().contains("ProfileList"));

    // And still after another restart; the queue-depth gauge agrees.
    server.restart().await;
    let listed = server.operator_commands(UDID).await;
    assert_eq!(listed[0]["status"], "acknowledged");
    let metrics = server.client.get("/metrics").await.text();
    assert!(metrics.contains("baton_command_queue_depth 0"), "{metrics}");
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert!(view["last_seen"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn tls_client_certificate_identifies_the_device() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    // Client certificates are only asked for with `--tls-client-auth optional`.
    let mut options = ServerOptions::default();
    options.tls_settings.client_auth = baton_server::tls::ClientAuth::Optional;
    let server = TestServer::start(&pki, options).await;
    let client = server.client_with_certificate(&device);
    let headers = [(
        "Content-Type",
        "application/x-apple-aspen-mdm-checkin".to_owned(),
    )];
    for body in [device.authenticate(), device.token_update()] {
        let r = client
            .send(Method::PUT, "/mdm/checkin", &headers, body)
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    server.answer_device_information(&device).await;
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "SecurityInfo"}))
        .await;
    let r = client
        .send(Method::PUT, "/mdm/connect", &headers, device.idle())
        .await
        .unwrap();
    assert_eq!(command_of(&r.body).uuid.as_str(), uuid);
    // Another device's client certificate cannot speak for this one.
    let other = pki.device("00008110-000F0E0D0C0B0A09");
    let r = server
        .client_with_certificate(&other)
        .send(Method::PUT, "/mdm/connect", &headers, device.idle())
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    server.stop().await;
}

#[tokio::test]
async fn user_channels_share_the_device_certificate() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    server.enroll(&device).await;
    let r = server
        .checkin(&device, device.user_token_update("maria@school.example"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    let channels = view["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    assert_eq!(channels[1]["user"], "maria@school.example");
    assert_eq!(channels[1]["enabled"], true);

    // A user channel of a device the certificate is not bound to is refused.
    let other = pki.device("00008110-000F0E0D0C0B0A09");
    server.enroll(&other).await;
    let r = server
        .checkin(&other, device.user_token_update("mallory@school.example"))
        .await;
    assert_eq!(r.status, 400);
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["channels"].as_array().unwrap().len(), 2);

    // Commands to the user channel go to the user channel only.
    let user_id = format!("{UDID}:maria@school.example");
    let uuid = server
        .queue(&user_id, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let r = server.connect(&device, device.idle()).await;
    assert!(r.body.is_empty(), "device channel got the user's command");
    assert_eq!(
        server.commands(&user_id).await[0]["command_uuid"],
        uuid.as_str()
    );
    server.stop().await;
}

#[tokio::test]
async fn generated_api_key_is_shown_once_and_keeps_working() {
    let pki = Pki::generate();
    let mut server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            fixed_api_key: false,
            ..ServerOptions::default()
        },
    )
    .await;
    assert!(server.api_key.starts_with("baton_"));
    let r = server.api(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(r.status, 200);
    assert!(server.restart().await.is_none(), "key generated twice");
    let r = server.api(Method::GET, "/api/v1/devices", None).await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

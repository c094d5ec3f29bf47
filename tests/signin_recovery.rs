//! The reconciler's recovery paths over real HTTP: a failed install is deferred (backoff, not
//! resent at once, visible in the preview), a re-enrollment rotates the portal token and
//! redelivers the baseline with the new token; CSV user import and the nobody user's
//! protection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::plist::Value;
use baton_proto::{Command, CommandRequest, EnrollmentId, Limits, Profile, Status};
use baton_server::reconciler::AssignmentSettings;
use http::Method;
use serde_json::json;

const UDID: &str = "00008030-00DD11EE22FF801E";

async fn next(server: &TestServer, device: &TestDevice, body: Vec<u8>) -> Option<Command> {
    let r = server.connect(device, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (!r.body.is_empty()).then(|| Command::decode(&r.body, &Limits::default()).unwrap())
}

async fn drain(server: &TestServer, device: &TestDevice) -> Vec<Command> {
    let mut out = Vec::new();
    let mut body = device.idle();
    while let Some(c) = next(server, device, body).await {
        body = device.report(Status::Acknowledged, c.uuid.as_str());
        out.push(c);
        assert!(out.len() < 20, "runaway queue");
    }
    out
}

fn profile_of(c: &Command) -> Profile {
    let CommandRequest::InstallProfile { payload } = &c.request else {
        panic!("expected InstallProfile, got {}", c.request_type())
    };
    Profile::parse(payload, &Limits::default()).unwrap()
}

fn token(server: &TestServer) -> String {
    baton_server::reconciler::portal_token::token_of(
        server.running().services().store.as_ref(),
        &EnrollmentId::device(UDID).unwrap(),
    )
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn failures_back_off_and_re_enrollment_rotates_the_token() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            ..ServerOptions::default()
        },
    )
    .await;
    server.enroll(&device).await;
    let first_token = token(&server);
    assert_eq!(drain(&server, &device).await.len(), 1);

    // A profile for every device; the device refuses it.
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string><key>PayloadContent</key><array/>
</dict></plist>"#;
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(json!({"id": "vpn", "kind": "profile",
                "mobileconfig": base64::engine::general_purpose::STANDARD.encode(xml)})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": "vpn", "target": "all"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let c = next(&server, &device, device.idle()).await.unwrap();
    assert_eq!(profile_of(&c).identifier, "com.baton.item.vpn");
    let after = next(
        &server,
        &device,
        device.report(Status::Error, c.uuid.as_str()),
    )
    .await;
    assert!(after.is_none(), "a failed item is not resent at once");
    // A configuration change does not resend it either; the preview shows it deferred.
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "dave", "password": "pw"})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(next(&server, &device, device.idle()).await.is_none());
    let preview = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/preview"),
            None,
        )
        .await
        .json();
    assert_eq!(preview["plan"]["deferred"][0]["item"], "vpn", "{preview}");

    // Re-enrollment: new token, failures forgotten, the baseline comes again.
    server.enroll(&device).await;
    let second_token = token(&server);
    assert_ne!(first_token, second_token);
    let got = drain(&server, &device).await;
    let ids: Vec<String> = got.iter().map(|c| profile_of(c).identifier).collect();
    assert_eq!(
        ids,
        ["com.baton.item.sign-in", "com.baton.item.vpn"],
        "{ids:?}"
    );
    let clip = profile_of(&got[0]);
    let url = clip.payloads[0]
        .content
        .get("URL")
        .and_then(Value::as_string)
        .unwrap();
    assert!(url.ends_with(&second_token), "{url}");

    // CSV import; nobody cannot be deleted or re-created.
    let r = server
        .api_raw(
            Method::POST,
            "/api/v1/users/import",
            "text/csv",
            b"username,password,full_name,email\ncarol,pw,Carol C,carol@example.com\nerin,pw,,\n"
                .to_vec(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["imported"], 2);
    let carol = server.api(Method::GET, "/api/v1/users/carol", None).await;
    assert_eq!(carol.json()["email"], "carol@example.com");
    assert!(!carol.text().contains("password_hash"));
    let r = server
        .api(Method::DELETE, "/api/v1/users/nobody", None)
        .await;
    assert_eq!(r.status, 400);
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "nobody", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "carol", "password": "x"})),
        )
        .await;
    assert_eq!(r.status, 409);
}

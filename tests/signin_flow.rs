//! Multi-user sign-in over real HTTP: enrollment delivers the sign-in web clip (its URL carries
//! the device's portal token), profiles reach the device as distributed, an admin sign-in
//! installs the person's rendered profile, sign-out removes only that and verifies the device
//! with ProfileList + ManagedApplicationList (a clean hand-off in the session log); preview and
//! lint over the admin API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    Command, CommandReport, CommandRequest, CommandUuid, Enrollment, EnrollmentId, EnrollmentKeys,
    Limits, Profile, Status,
};
use baton_server::reconciler::AssignmentSettings;
use http::Method;
use serde_json::json;

const UDID: &str = "00008030-00AA11BB22CC801E";

fn profile_xml(identifier: &str, display: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>PayloadType</key><string>Configuration</string>
<key>PayloadIdentifier</key><string>{identifier}</string>
<key>PayloadUUID</key><string>00000000-0000-0000-0000-000000000001</string>
<key>PayloadVersion</key><integer>1</integer>
<key>PayloadDisplayName</key><string>{display}</string>
<key>PayloadContent</key><array/>
</dict></plist>"#
    )
}

/// The next command the device gets on Idle-less polling (after a report), or None.
async fn next(server: &TestServer, device: &TestDevice, body: Vec<u8>) -> Option<Command> {
    let r = server.connect(device, body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (!r.body.is_empty()).then(|| Command::decode(&r.body, &Limits::default()).unwrap())
}

/// Drains the queue: acknowledges every command and returns them in order.
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

fn installed_profile(c: &Command) -> Profile {
    let CommandRequest::InstallProfile { payload } = &c.request else {
        panic!("expected InstallProfile, got {}", c.request_type())
    };
    Profile::parse(payload, &Limits::default()).unwrap()
}

fn report_with(uuid: &CommandUuid, key: &str, value: Value) -> Vec<u8> {
    let enrollment = Enrollment::new(EnrollmentKeys::device(UDID.to_owned())).unwrap();
    let mut report = CommandReport::new(enrollment, Status::Acknowledged, Some(uuid.clone()));
    report.response.insert(key.into(), value);
    report.encode().unwrap()
}

#[tokio::test]
async fn sign_in_and_out_converge_the_device() {
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

    // The default setup: nobody exists, the sign-in clip reaches nobody, lint is clean.
    let users = server.api(Method::GET, "/api/v1/users", None).await.json();
    assert_eq!(users["users"][0]["username"], "nobody");
    assert_eq!(users["users"][0]["attributes"]["multi-user-owner"], true);
    assert_eq!(users["users"][0]["has_password"], false);
    let lint = server.api(Method::GET, "/api/v1/lint", None).await.json();
    assert_eq!(lint["lints"], json!([]), "{lint}");

    // Enroll: the first connect delivers the sign-in web clip with the device's token.
    server.enroll(&device).await;
    let store = server.running().services().store.clone();
    let token = baton_server::reconciler::portal_token::token_of(
        store.as_ref(),
        &EnrollmentId::device(UDID).unwrap(),
    )
    .unwrap()
    .expect("portal token created at the first TokenUpdate");
    let first = drain(&server, &device).await;
    assert_eq!(first.len(), 1, "{first:?}");
    let clip = installed_profile(&first[0]);
    assert_eq!(clip.payloads.len(), 1);
    assert_eq!(clip.payloads[0].payload_type, "com.apple.webClip.managed");
    let url = clip.payloads[0]
        .content
        .get("URL")
        .and_then(Value::as_string)
        .unwrap();
    assert!(url.ends_with(&format!("/portal/{token}")), "{url}");
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["assignee"], "nobody");

    // alice and bob; a Wi-Fi-like profile for every device (nobody included), a per-user one.
    for (name, email) in [("alice", "alice@example.com"), ("bob", "bob@example.com")] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": name, "password": "pw", "email": email})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["id"], name);
        assert!(!r.text().contains("argon2"));
    }
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(json!({"name": "wifi", "kind": "profile",
            "mobileconfig": b64(profile_xml("upload.wifi", "Corp Wi-Fi"))})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let wifi = r.json()["id"].as_str().unwrap().to_owned();
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(json!({"name": "mail", "kind": "profile",
            "mobileconfig": b64(profile_xml("upload.mail", "Mail for $USER.email"))})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mail = r.json()["id"].as_str().unwrap().to_owned();
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": wifi, "target": "all"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": mail, "target": {"users": ["alice", "bob"]}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // The signed-out device gets the Wi-Fi profile only.
    let got = drain(&server, &device).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let wifi_profile = installed_profile(&got[0]);
    assert_eq!(wifi_profile.identifier, format!("com.baton.item.{wifi}"));

    // Preview for bob changes nothing and shows bob's rendered profile.
    let before = server.commands(UDID).await.len();
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/preview?user=bob"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    assert!(text.contains("bob@example.com"), "{text}");
    assert!(!text.contains("alice@example.com"));
    assert_eq!(server.commands(UDID).await.len(), before);

    // Sign alice in: her rendered profile is installed; the sign-in clip (nobody's) leaves.
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-in"),
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = drain(&server, &device).await;
    let kinds: Vec<&str> = got.iter().map(Command::request_type).collect();
    // The full-screen sign-in clip leaves last, after the installs.
    assert_eq!(
        kinds,
        ["InstallProfile", "InstallProfile", "RemoveProfile"],
        "{got:?}"
    );
    assert_eq!(
        got[2].request,
        CommandRequest::RemoveProfile {
            identifier: "com.baton.item.sign-in".into()
        }
    );
    // Her rendered profile and the sign-out clip (distributed to everyone signed in).
    let installs: Vec<Profile> = got[..2].iter().map(installed_profile).collect();
    let mail_profile = installs
        .iter()
        .find(|p| p.identifier == format!("com.baton.item.{mail}"))
        .expect("mail profile installed")
        .clone();
    assert!(
        installs
            .iter()
            .any(|p| p.identifier == "com.baton.item.sign-out"),
        "{installs:?}"
    );
    assert_eq!(
        mail_profile.display_name.as_deref(),
        Some("Mail for alice@example.com")
    );
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["assignee"], "alice");

    // Sign out: only alice's items leave (her profile, the sign-out clip), the sign-in clip
    // comes back, then the inventory queries.
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-out"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut body = device.idle();
    let mut removed = Vec::new();
    let mut clip_again = None;
    let c3 = loop {
        let c = next(&server, &device, body).await.unwrap();
        match &c.request {
            CommandRequest::RemoveProfile { identifier } => removed.push(identifier.clone()),
            CommandRequest::InstallProfile { .. } => clip_again = Some(installed_profile(&c)),
            CommandRequest::ProfileList => break c,
            other => panic!("unexpected {other:?}"),
        }
        body = device.report(Status::Acknowledged, c.uuid.as_str());
    };
    removed.sort();
    let mut expected = vec![
        mail_profile.identifier.clone(),
        "com.baton.item.sign-out".to_owned(),
    ];
    expected.sort();
    assert_eq!(removed, expected);
    let clip_again = clip_again.expect("sign-in clip reinstalled");
    assert_eq!(clip_again.identifier, "com.baton.item.sign-in");
    // The device reports what it really has: Wi-Fi and the clip.
    let list = [&wifi_profile, &clip_again]
        .iter()
        .map(|p| {
            let mut d = Dictionary::new();
            d.insert(
                "PayloadIdentifier".into(),
                Value::String(p.identifier.clone()),
            );
            d.insert("PayloadUUID".into(), Value::String(p.uuid.clone()));
            d.insert("IsManaged".into(), Value::Boolean(true));
            Value::Dictionary(d)
        })
        .collect();
    let c4 = next(
        &server,
        &device,
        report_with(&c3.uuid, "ProfileList", Value::Array(list)),
    )
    .await
    .unwrap();
    assert_eq!(c4.request_type(), "ManagedApplicationList");
    let done = next(
        &server,
        &device,
        report_with(
            &c4.uuid,
            "ManagedApplicationList",
            Value::Dictionary(Dictionary::new()),
        ),
    )
    .await;
    assert!(done.is_none(), "{done:?}");
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
    assert_eq!(s["ended_how"], "admin");
    assert_eq!(s["clean_hand_off"], true, "{sessions}");

    // Removing the clip's distribution is reported by the lint.
    let r = server
        .api(
            Method::DELETE,
            "/api/v1/distributions/sign-in-to-nobody",
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    let lint = server.api(Method::GET, "/api/v1/lint", None).await.json();
    assert!(
        lint["lints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["code"] == "sign_in_clip_not_for_nobody"),
        "{lint}"
    );

    // Unknown users cannot sign in.
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-in"),
            Some(json!({"username": "mallory"})),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

//! BER on the wire, end to end over real TLS: Apple's devices sign with the Security framework's
//! streaming CMS encoder, which writes indefinite lengths. Authenticate, TokenUpdate and command
//! reports signed that way are accepted (the device is bound to the same certificate hash as with
//! DER), and broken BER gets a clean 400, never a 401 or a 5xx, with the server still serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::Status;
use http::Method;

const UDID: &str = "00008030-000B3E2A1C0D802E";

/// The device's SHA-1 signature (with signed attributes, as iOS signs) re-encoded with every
/// constructed element indefinite and content chunked: harsher than Apple's encoder (which every
/// other end-to-end test uses through `TestDevice::sign`).
fn ber_signature(device: &TestDevice, body: &[u8]) -> String {
    let der = STANDARD.decode(device.sign_der(body)).unwrap();
    let ber = baton_server::ber::to_indefinite(&der, 16).unwrap();
    assert_eq!(&ber[..2], &[0x30, 0x80]);
    STANDARD.encode(ber)
}

#[tokio::test]
async fn authenticate_token_update_and_reports_signed_in_ber() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(&pki, ServerOptions::default()).await;

    let body = device.authenticate();
    let r = server
        .put_device(
            "/mdm/checkin",
            body.clone(),
            Some(ber_signature(&device, &body)),
        )
        .await;
    assert_eq!(r.status, 200, "Authenticate: {}", r.text());
    let body = device.token_update();
    let r = server
        .put_device(
            "/mdm/checkin",
            body.clone(),
            Some(ber_signature(&device, &body)),
        )
        .await;
    assert_eq!(r.status, 200, "TokenUpdate: {}", r.text());
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["enabled"], true, "{view}");
    server.answer_device_information(&device).await;

    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let body = device.idle();
    let r = server
        .put_device(
            "/mdm/connect",
            body.clone(),
            Some(ber_signature(&device, &body)),
        )
        .await;
    assert_eq!(r.status, 200, "Idle: {}", r.text());
    assert!(!r.body.is_empty(), "the queued command is delivered");
    let body = device.report(Status::Acknowledged, &uuid);
    let r = server
        .put_device(
            "/mdm/connect",
            body.clone(),
            Some(ber_signature(&device, &body)),
        )
        .await;
    assert_eq!(r.status, 200, "report: {}", r.text());
    let listed = server.commands(UDID).await;
    assert!(
        listed.iter().all(|c| c["status"] == "acknowledged"),
        "{listed:?}"
    );

    // DER, the iOS layout and the harshest BER from the same device are the same identity.
    let body = device.idle();
    let r = server
        .put_device("/mdm/connect", body.clone(), Some(device.sign_der(&body)))
        .await;
    assert_eq!(r.status, 200, "DER: {}", r.text());
    assert_eq!(
        STANDARD.decode(device.sign(&body)).unwrap()[..2],
        [0x30, 0x80]
    );
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200, "iOS BER: {}", r.text());
    server.assert_healthy().await;
}

#[tokio::test]
async fn broken_ber_signatures_get_400_not_401_or_5xx() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    server.enroll(&device).await;

    let body = device.idle();
    let ber = STANDARD.decode(ber_signature(&device, &body)).unwrap();
    let mut deep = Vec::new();
    for _ in 0..500 {
        deep.extend([0x30, 0x80]);
    }
    for _ in 0..500 {
        deep.extend([0x00, 0x00]);
    }
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("500 levels deep".into(), deep),
        (
            "end-of-contents missing".into(),
            ber[..ber.len() - 2].to_vec(),
        ),
        (
            "end-of-contents with a length".into(),
            vec![0x30, 0x80, 0x00, 0x07],
        ),
    ];
    for end in (0..ber.len()).step_by(97) {
        cases.push((format!("truncated at {end}"), ber[..end].to_vec()));
    }
    for (what, signature) in cases {
        let r = server
            .put_device(
                "/mdm/connect",
                body.clone(),
                Some(STANDARD.encode(signature)),
            )
            .await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    server.assert_healthy().await;
}

/// `--capture-device-requests`: the first device requests land on disk exactly as received (the
/// body, the raw `Mdm-Signature` in the iOS BER form, the answer's status), private to the owner,
/// and nothing past the limit. This is how the first real iPhone's traffic becomes fixtures.
#[tokio::test]
async fn device_requests_are_captured_as_received_up_to_the_limit() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let capture_dir = tempfile::tempdir().unwrap();
    let dir = capture_dir.path().join("capture");
    let server = TestServer::start(
        &pki,
        ServerOptions {
            capture: Some(baton_server::capture::CaptureSettings {
                dir: dir.clone(),
                max_requests: 3,
            }),
            ..ServerOptions::default()
        },
    )
    .await;
    let authenticate = device.authenticate();
    let signature = device.sign(&authenticate);
    let r = server
        .put_device(
            "/mdm/checkin",
            authenticate.clone(),
            Some(signature.clone()),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = server.checkin(&device, device.token_update()).await;
    assert_eq!(r.status, 200);
    for _ in 0..3 {
        let r = server.connect(&device, device.idle()).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        std::fs::read(dir.join("0001-checkin.body")).unwrap(),
        authenticate
    );
    let captured = std::fs::read_to_string(dir.join("0001-checkin.mdm-signature")).unwrap();
    assert_eq!(captured, signature);
    assert_eq!(STANDARD.decode(&captured).unwrap()[..2], [0x30, 0x80]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("0001-checkin.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], 200);
    assert_eq!(meta["path"], "/mdm/checkin");
    assert!(dir.join("0003-connect.body").exists());
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files, 9,
        "three requests, three files each, nothing past the limit"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("0001-checkin.body"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

//! Forged and malformed device traffic is refused with 400, changes nothing, and the server keeps
//! serving: a signature over another body, an untrusted CA, another device's certificate, no
//! signature, truncated plists, a 50 MB body, a deeply nested plist.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::Status;
use http::Method;

const UDID: &str = "00008030-001A2B3C4D5E802E";
const OTHER: &str = "00008110-000F0E0D0C0B0A09";

/// Everything the API shows about the two devices, to compare before and after.
async fn snapshot(server: &TestServer) -> String {
    let mut out = server
        .api(Method::GET, "/api/v1/devices", None)
        .await
        .json()
        .to_string();
    for id in [UDID, OTHER] {
        let r = server
            .api(Method::GET, &format!("/api/v1/devices/{id}/commands"), None)
            .await;
        out.push_str(&r.text());
    }
    // last_seen moves with every accepted message; refused ones must not move it.
    out
}

async fn refused(server: &TestServer, path: &str, body: Vec<u8>, signature: Option<String>) {
    let r = server.put_device(path, body, signature).await;
    assert_eq!(
        r.status,
        400,
        "expected 400, got {}: {}",
        r.status,
        r.text()
    );
}

#[tokio::test]
async fn forged_identities_are_refused_without_state_change() {
    let pki = Pki::generate();
    let device = pki.device(UDID);
    let other = pki.device(OTHER);
    let untrusted = pki.untrusted_device(UDID);
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    server.enroll(&device).await;
    server.enroll(&other).await;
    let uuid = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let before = snapshot(&server).await;

    for path in ["/mdm/checkin", "/mdm/connect"] {
        let body = if path == "/mdm/checkin" {
            device.token_update()
        } else {
            device.report(Status::Acknowledged, &uuid)
        };
        // A signature that does not match the body.
        let wrong = device.sign(&device.idle());
        refused(&server, path, body.clone(), Some(wrong)).await;
        // A certificate from an untrusted CA.
        refused(&server, path, body.clone(), Some(untrusted.sign(&body))).await;
        // Another device's (trusted, enrolled) certificate.
        refused(&server, path, body.clone(), Some(other.sign(&body))).await;
        // No signature at all.
        refused(&server, path, body.clone(), None).await;
        // Not base64.
        refused(&server, path, body.clone(), Some("@@@".into())).await;
    }
    // Re-Authenticate with another device's certificate: refused, the binding stays.
    let body = device.authenticate();
    refused(
        &server,
        "/mdm/checkin",
        body.clone(),
        Some(other.sign(&body)),
    )
    .await;
    // An unknown device with a valid certificate cannot use the command channel.
    let stranger = pki.device("00008120-0011223344556677");
    refused(
        &server,
        "/mdm/connect",
        stranger.idle(),
        Some(stranger.sign(&stranger.idle())),
    )
    .await;

    assert_eq!(
        snapshot(&server).await,
        before,
        "a refused request changed state"
    );
    server.assert_healthy().await;

    // The real device still works and gets its command.
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    assert!(!r.body.is_empty());
    let metrics = server.client.get("/metrics").await.text();
    assert!(metrics.contains("baton_http_requests_total{endpoint=\"connect\",status=\"400\"}"));
    assert!(!metrics.contains("status=\"401\""), "a device got a 401");
    server.stop().await;
}

fn nested(depth: usize) -> Vec<u8> {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict><key>MessageType</key><string>Authenticate</string><key>X</key>",
    );
    for _ in 0..depth {
        s.push_str("<array>");
    }
    for _ in 0..depth {
        s.push_str("</array>");
    }
    s.push_str("</dict></plist>");
    s.into_bytes()
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let pki = Pki::generate();
    let device: TestDevice = pki.device(UDID);
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    server.enroll(&device).await;
    let before = snapshot(&server).await;

    // Truncated plists, correctly signed.
    for body in [device.token_update(), device.idle()] {
        for cut in [1, body.len() / 3, body.len() / 2, body.len() * 2 / 3] {
            let truncated = body[..cut].to_vec();
            for path in ["/mdm/checkin", "/mdm/connect"] {
                let signature = device.sign(&truncated);
                refused(&server, path, truncated.clone(), Some(signature)).await;
            }
        }
    }
    // Deeply nested plist (signed, so it gets past identity).
    let deep = nested(100_000);
    refused(
        &server,
        "/mdm/checkin",
        deep.clone(),
        Some(device.sign(&deep)),
    )
    .await;
    // Not a plist at all; a binary plist; an empty body.
    for body in [b"hello".to_vec(), b"bplist00\x00\x01".to_vec(), Vec::new()] {
        refused(
            &server,
            "/mdm/checkin",
            body.clone(),
            Some(device.sign(&body)),
        )
        .await;
    }
    // 50 MB body: refused before it is read in full (400, or the connection is cut after the
    // answer); either way nothing changes and the server keeps serving.
    let huge = vec![b'<'; 50 * 1024 * 1024];
    let result = server
        .client
        .send(
            Method::PUT,
            "/mdm/checkin",
            &[("Mdm-Signature", device.sign(b"x"))],
            huge,
        )
        .await;
    match result {
        Ok(r) => assert_eq!(r.status, 400, "{}", r.text()),
        Err(e) => eprintln!("50 MB upload cut off by the server: {e}"),
    }
    assert_eq!(snapshot(&server).await, before);
    server.assert_healthy().await;
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

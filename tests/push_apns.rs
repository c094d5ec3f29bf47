//! APNs pushes end to end: a real server pushing to `baton_apns::mock::MockApns` over TLS and
//! HTTP/2, with devices enrolled through the check-in endpoint (Authenticate + TokenUpdate with
//! known tokens and PushMagic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use baton_apns::mock::{MockApns, RecordedPush, Reply};
use baton_apns::testing::TestPki;
use baton_e2e::device::TOPIC;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::plist::Dictionary;
use baton_proto::{
    CheckinMessage, Enrollment, EnrollmentKeys, PushMagic, PushToken, TokenUpdate, Topic,
};
use baton_server::push::PushConfig;
use http::Method;
use tempfile::TempDir;

/// A mock APNs and a push certificate for the devices' topic, issued by the mock's CA.
struct Apns {
    pki: TestPki,
    mock: MockApns,
    dir: TempDir,
}

impl Apns {
    async fn start() -> Self {
        let pki = TestPki::generate().unwrap();
        let mock = MockApns::start_with_pki(&pki).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apns-ca.pem"), &pki.ca_cert_pem).unwrap();
        let (cert, key) = pki.client_cert_with_uid(Some(TOPIC)).unwrap();
        let mut both = cert;
        both.extend_from_slice(&key);
        std::fs::write(dir.path().join("push.pem"), both).unwrap();
        Self { pki, mock, dir }
    }

    /// Push settings pointing at the mock; with the certificate file when `with_cert`.
    fn config(&self, with_cert: bool, repush: Duration) -> PushConfig {
        PushConfig {
            cert_file: with_cert.then(|| self.dir.path().join("push.pem")),
            apns_url: self.mock.base_url(),
            apns_ca_files: vec![self.dir.path().join("apns-ca.pem")],
            apns_public_roots: false,
            debounce: Duration::from_millis(50),
            repush_interval: repush,
            ..PushConfig::default()
        }
    }

    fn pushes_to(&self, token: &PushToken) -> Vec<RecordedPush> {
        let hex = token.to_hex();
        self.mock
            .pushes()
            .into_iter()
            .filter(|p| p.token.as_deref() == Some(hex.as_str()))
            .collect()
    }

    /// Waits until `token` got at least `n` pushes (or 5 s pass), then returns them all.
    async fn wait_for(&self, token: &PushToken, n: usize) -> Vec<RecordedPush> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.pushes_to(token);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn server(apns: &Apns, pki: &Pki, with_cert: bool, repush: Duration) -> TestServer {
    TestServer::start(
        pki,
        ServerOptions {
            tls: false,
            push: apns.config(with_cert, repush),
            ..ServerOptions::default()
        },
    )
    .await
}

fn token(byte: u8) -> PushToken {
    PushToken::new(vec![byte; 32]).unwrap()
}

fn magic(byte: u8) -> PushMagic {
    PushMagic::new(format!("MAGIC-{byte:02X}-6C3B1E2A-9F4D-4E8B")).unwrap()
}

fn token_update(keys: EnrollmentKeys, token: &PushToken, magic: &PushMagic) -> Vec<u8> {
    CheckinMessage::TokenUpdate(TokenUpdate {
        enrollment: Enrollment::new(keys).unwrap(),
        topic: Topic::new(TOPIC).unwrap(),
        token: token.clone(),
        push_magic: magic.clone(),
        unlock_token: None,
        awaiting_configuration: None,
        not_on_console: None,
        extra: Dictionary::new(),
    })
    .encode()
    .unwrap()
}

/// Authenticate + TokenUpdate with a known token and PushMagic.
async fn enroll(server: &TestServer, device: &TestDevice, token: &PushToken, magic: &PushMagic) {
    let r = server.checkin(device, device.authenticate()).await;
    assert_eq!(r.status, 200, "authenticate: {}", r.text());
    let body = token_update(EnrollmentKeys::device(device.udid.clone()), token, magic);
    let r = server.checkin(device, body).await;
    assert_eq!(r.status, 200, "token update: {}", r.text());
}

fn udid(n: u32) -> String {
    format!("00008110-0000000000{n:04}")
}

const SETTLE: Duration = Duration::from_millis(400);
const NO_REPUSH: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn enqueue_pushes_once_coalesces_bursts_and_pushes_user_channels_on_their_token() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, true, NO_REPUSH).await;
    let device = pki.device(&udid(1));
    let (t, m) = (token(0x11), magic(0x11));
    enroll(&server, &device, &t, &m).await;
    assert!(apns.mock.pushes().is_empty(), "pushed before any command");

    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "ProfileList"}),
        )
        .await;
    let pushes = apns.wait_for(&t, 1).await;
    tokio::time::sleep(SETTLE).await;
    let pushes_after = apns.pushes_to(&t);
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes_after.len(), 1, "one command, one push");
    let p = &pushes[0];
    assert_eq!(p.path, format!("/3/device/{}", t.to_hex()));
    assert_eq!(
        &p.body[..],
        format!("{{\"mdm\":\"{}\"}}", m.as_str()).as_bytes()
    );
    assert_eq!(p.header("apns-topic"), Some(TOPIC));
    assert_eq!(p.header("apns-push-type"), Some("mdm"));
    assert_eq!(p.status, 200);

    // The device has not answered that push: new commands do not push it again (it fetches
    // everything when it connects).
    let q = |n: u32| {
        server.queue(
            &device.udid,
            serde_json::json!({"request_type": "ProfileList", "command_uuid": format!("burst-{n}")}),
        )
    };
    q(0).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        apns.pushes_to(&t).len(),
        1,
        "an unanswered push is not repeated"
    );

    // Once it has connected, five commands at once give exactly one push, however their
    // enqueues are spread in time.
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200);
    tokio::join!(q(1), q(2), q(3), q(4), q(5));
    apns.wait_for(&t, 2).await;
    tokio::time::sleep(SETTLE).await;
    let burst = apns.pushes_to(&t).len() - 1;
    assert_eq!(burst, 1, "5 enqueues after a connect gave {burst} pushes");

    // A Shared iPad user channel has its own token and PushMagic.
    let (ut, um) = (token(0x22), magic(0x22));
    let keys = EnrollmentKeys::shared_ipad_user(device.udid.clone(), "maria@school.example");
    let r = server.checkin(&device, token_update(keys, &ut, &um)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let device_pushes = apns.pushes_to(&t).len();
    server
        .queue(
            &format!("{}:maria@school.example", device.udid),
            serde_json::json!({"request_type": "ProfileList"}),
        )
        .await;
    let user_pushes = apns.wait_for(&ut, 1).await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(user_pushes.len(), 1);
    assert_eq!(
        &user_pushes[0].body[..],
        format!("{{\"mdm\":\"{}\"}}", um.as_str()).as_bytes()
    );
    assert_eq!(
        apns.pushes_to(&t).len(),
        device_pushes,
        "device token pushed for a user command"
    );

    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("baton_push_total{result=\"delivered\"}"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bulk_enqueue_pushes_every_device_once() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, true, NO_REPUSH).await;
    let mut ids = Vec::new();
    for n in 0..6u8 {
        let device = pki.device(&udid(100 + u32::from(n)));
        enroll(&server, &device, &token(0x40 + n), &magic(0x40 + n)).await;
        ids.push(device.udid.clone());
    }
    let r = server
        .api(
            Method::POST,
            "/api/v1/commands",
            Some(serde_json::json!({"devices": ids, "command": {"request_type": "ProfileList"}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for n in 0..6u8 {
        apns.wait_for(&token(0x40 + n), 1).await;
    }
    tokio::time::sleep(SETTLE).await;
    for n in 0..6u8 {
        let got = apns.pushes_to(&token(0x40 + n));
        assert_eq!(got.len(), 1, "device {n} got {} pushes", got.len());
        assert_eq!(
            &got[0].body[..],
            format!("{{\"mdm\":\"{}\"}}", magic(0x40 + n).as_str()).as_bytes()
        );
    }
    assert_eq!(apns.mock.pushes().len(), 6);
    server.stop().await;
}

#[tokio::test]
async fn gone_token_is_marked_invalid_never_retried_and_cleared_by_token_update() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, true, NO_REPUSH).await;
    let device = pki.device(&udid(7));
    let (t, m) = (token(0x77), magic(0x77));
    enroll(&server, &device, &t, &m).await;
    apns.mock
        .fail_token(&t.to_hex(), Reply::new(410, "Unregistered"));

    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "ProfileList"}),
        )
        .await;
    apns.wait_for(&t, 1).await;
    let path = format!("/api/v1/devices/{}", device.udid);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.api(Method::GET, &path, None).await.json()["push_token_invalid"]
        .as_bool()
        .unwrap()
    {
        assert!(Instant::now() < deadline, "token never marked invalid");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(apns.pushes_to(&t).len(), 1, "a 410 was retried");

    // No further pushes to the dead token: neither on enqueue nor by hand.
    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "SecurityInfo"}),
        )
        .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(apns.pushes_to(&t).len(), 1, "pushed a token marked invalid");
    let r = server
        .api(Method::POST, &format!("{path}/push"), None)
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"], "push_token_invalid");
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("baton_push_total{result=\"token_invalid\"} 1"),
        "{metrics}"
    );

    // A new TokenUpdate clears the mark and pushes work again.
    apns.mock.clear();
    let body = token_update(EnrollmentKeys::device(device.udid.clone()), &t, &m);
    assert_eq!(server.checkin(&device, body).await.status, 200);
    let view = server.api(Method::GET, &path, None).await.json();
    assert_eq!(view["push_token_invalid"], false);
    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "ProfileList"}),
        )
        .await;
    let got = apns.wait_for(&t, 2).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].status, 200);
    server.stop().await;
}

#[tokio::test]
async fn manual_push_returns_the_outcome() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, true, NO_REPUSH).await;
    let device = pki.device(&udid(8));
    let (t, m) = (token(0x88), magic(0x88));
    enroll(&server, &device, &t, &m).await;

    let path = format!("/api/v1/devices/{}/push", device.udid);
    let r = server.api(Method::POST, &path, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["result"], "delivered");
    let got = apns.pushes_to(&t);
    assert_eq!(got.len(), 1);
    assert_eq!(body["apns_id"], got[0].apns_id.as_str());

    apns.mock
        .fail_token(&t.to_hex(), Reply::new(400, "DeviceTokenNotForTopic"));
    let body = server.api(Method::POST, &path, None).await.json();
    assert_eq!(body["result"], "token_invalid");
    assert_eq!(body["status"], 400);
    assert_eq!(body["reason"], "DeviceTokenNotForTopic");

    let r = server
        .api(Method::POST, "/api/v1/devices/NO-SUCH-DEVICE/push", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    server.stop().await;
}

#[tokio::test]
async fn unanswered_devices_are_pushed_again_and_checked_in_ones_are_not() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, true, Duration::from_millis(300)).await;
    let silent = pki.device(&udid(21));
    let answering = pki.device(&udid(22));
    let (ts, ta) = (token(0x21), token(0x22));
    enroll(&server, &silent, &ts, &magic(0x21)).await;
    enroll(&server, &answering, &ta, &magic(0x22)).await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/commands",
            Some(serde_json::json!({
                "devices": [silent.udid, answering.udid],
                "command": {"request_type": "ProfileList"}
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(apns.wait_for(&ta, 1).await.len(), 1);
    // The answering device checks in and fetches its command (without answering it yet).
    let r = server.connect(&answering, answering.idle()).await;
    assert!(!r.body.is_empty(), "no command fetched");

    let repushed = apns.wait_for(&ts, 3).await;
    assert!(
        repushed.len() >= 3,
        "silent device pushed {} times",
        repushed.len()
    );
    assert_eq!(
        apns.pushes_to(&ta).len(),
        1,
        "a device that checked in was re-pushed"
    );
    let metrics = server.client.get("/metrics").await.text();
    assert!(!metrics.contains("baton_push_repush_total 0"), "{metrics}");
    server.stop().await;
}

#[tokio::test]
async fn certificate_upload_checks_the_topic_and_hot_swaps_the_sender() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let mut server = server(&apns, &pki, false, NO_REPUSH).await;
    let r = server
        .api(Method::GET, "/api/v1/push-certificate", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // No certificate: enqueue works and nothing is pushed.
    let device = pki.device(&udid(30));
    let (t, m) = (token(0x30), magic(0x30));
    enroll(&server, &device, &t, &m).await;
    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "ProfileList"}),
        )
        .await;
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{}/push", device.udid),
            None,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text());

    // The PKCS#12 from the test PKI names another topic than the enrolled device: 409.
    let p12 = apns.pki.push_pkcs12("p12-secret").unwrap();
    let upload = serde_json::json!({
        "pkcs12": base64::engine::general_purpose::STANDARD.encode(&p12),
        "password": "p12-secret",
    });
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(upload.clone()),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"], "topic_conflict");
    assert_eq!(r.json()["new_topic"], apns.pki.topic.as_str());

    // A PEM certificate for the enrolled topic is accepted and used at once.
    let (cert, key) = apns.pki.client_cert_with_uid(Some(TOPIC)).unwrap();
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(serde_json::json!({
                "cert_pem": String::from_utf8(cert).unwrap(),
                "key_pem": String::from_utf8(key).unwrap(),
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["topic"], TOPIC);
    server
        .queue(
            &device.udid,
            serde_json::json!({"request_type": "SecurityInfo"}),
        )
        .await;
    let got = apns.wait_for(&t, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("apns-topic"), Some(TOPIC));

    // Forced, the other topic replaces it; the view shows it without the key.
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate?force=true",
            Some(upload),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = server
        .api(Method::GET, "/api/v1/push-certificate", None)
        .await;
    assert_eq!(view.status, 200);
    let text = view.text();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("p12-secret"),
        "{text}"
    );
    let view = view.json();
    assert_eq!(view["topic"], apns.pki.topic.as_str());
    assert_eq!(view["source"], "upload");
    assert_eq!(view["expiry"], "valid");
    let days = view["days_left"].as_u64().unwrap();
    assert!((360..=365).contains(&days), "{days}");

    // It is stored: after a restart it is loaded from the store.
    server.restart().await;
    let view = server
        .api(Method::GET, "/api/v1/push-certificate", None)
        .await
        .json();
    assert_eq!(view["topic"], apns.pki.topic.as_str());
    assert_eq!(view["source"], "store");
    server.stop().await;
}

#[tokio::test]
async fn pkcs12_upload_is_accepted_when_no_device_is_enrolled() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, false, NO_REPUSH).await;
    let p12 = apns.pki.push_pkcs12("pw").unwrap();
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(serde_json::json!({
                "pkcs12": base64::engine::general_purpose::STANDARD.encode(&p12),
                "password": "wrong",
            })),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(serde_json::json!({
                "pkcs12": base64::engine::general_purpose::STANDARD.encode(&p12),
                "password": "pw",
            })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["topic"], apns.pki.topic.as_str());
    server.stop().await;
}

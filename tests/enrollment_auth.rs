//! The trust boundary of enrollment (issue 24, points 1 and 2), over real HTTPS:
//!
//! - a profile (and so a certificate from the built-in CA) needs an operator's enrollment token,
//!   whose uses, expiry, revocation and serial allow-list are enforced; the enrolled device
//!   shows its token and joins the token's device group;
//! - a certificate never silently replaces an enrolled device's active binding (decision 0010):
//!   not one obtained anonymously with `--open-enrollment`, not one obtained with a token meant
//!   for another device. The victim keeps its binding, queue, session and bootstrap token; the
//!   refusal is a 403 (never 401), audited and sent as a webhook event;
//! - a re-enrollment that is allowed (after check-out, an operator's approval, a token naming
//!   the device) revokes the old certificate, drops the bootstrap token, signs the person out
//!   (`re_enrolled`) and rotates the portal token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use baton_e2e::enrollment::{
    device, fetch_profile, identity_from_profile, pkcs12_identity, upload_push_certificate,
};
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::EnrollmentId;
use baton_server::config::WebhookConfig;
use baton_store::Collection;
use http::Method;
use serde_json::{Value, json};

const VICTIM: &str = "00008110-000A1B2C3D4E7001";
const OTHER: &str = "00008110-000A1B2C3D4E7002";
const BOOTSTRAP: &[u8] = b"victim-bootstrap-token-bytes";

async fn view(server: &TestServer, udid: &str) -> Value {
    let r = server
        .api(Method::GET, &format!("/api/v1/devices/{udid}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

async fn sign_in(server: &TestServer, udid: &str, username: &str) {
    let r = server
        .api(
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": username, "password": "pw"})),
        )
        .await;
    assert!(r.status == 201 || r.status == 409, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{udid}/sign-in"),
            Some(json!({"username": username})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.text());
}

/// The escrowed bootstrap token as a GetBootstrapToken answer carries it (plist `<data>`).
fn bootstrap_b64() -> String {
    base64::engine::general_purpose::STANDARD.encode(BOOTSTRAP)
}

/// Enrolls `device` fully and escrows its bootstrap token.
async fn enroll_with_bootstrap(server: &TestServer, device: &TestDevice) {
    server.enroll(device).await;
    let r = server
        .checkin(device, device.set_bootstrap_token(BOOTSTRAP))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn portal_token(server: &TestServer, udid: &str) -> String {
    baton_server::reconciler::portal_token::token_of(
        server.running().services().store.as_ref(),
        &EnrollmentId::device(udid).unwrap(),
    )
    .unwrap()
    .unwrap()
}

/// The webhook events waiting in the outbox (the test receivers are unreachable).
fn outbox_events(server: &TestServer) -> Vec<Value> {
    let collection = Collection::new(baton_server::webhook::outbox::OUTBOX_COLLECTION).unwrap();
    server
        .running()
        .services()
        .store
        .scan_prefix(&collection, b"")
        .unwrap()
        .iter()
        .map(|(_, v)| serde_json::from_slice(v).unwrap())
        .collect()
}

/// Nothing listens on port 9: events stay in the outbox, where the test reads them.
fn unreachable_webhook() -> Option<WebhookConfig> {
    Some(WebhookConfig::new("http://127.0.0.1:9/hook", None))
}

/// The refused party learns nothing and the victim keeps everything.
async fn assert_victim_intact(server: &TestServer, victim: &TestDevice, attacker: &TestDevice) {
    // The attacker is not bound: no bootstrap token, no command channel.
    let r = server
        .checkin(attacker, attacker.get_bootstrap_token())
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.text(), "certificate_not_bound\n");
    assert!(!r.text().contains(&bootstrap_b64()));
    let r = server.connect(attacker, attacker.idle()).await;
    assert_eq!(r.status, 400);
    // The victim's binding, session and escrow are intact.
    let r = server.checkin(victim, victim.get_bootstrap_token()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&bootstrap_b64()), "{}", r.text());
    let v = view(server, &victim.udid).await;
    assert_eq!(v["assignee"], "alice", "{v}");
    assert_eq!(v["enabled"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_certificate_cannot_take_over_an_enrolled_device() {
    let pki = Pki::generate();
    // Without open enrollment nobody gets a profile, or a PKCS#12 identity, without a token.
    let closed = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&closed).await;
    for path in [
        "/mdm/enroll",
        "/mdm/enroll?identity=pkcs12",
        "/mdm/enroll?token=",
        "/mdm/enroll?token=0a1b2c3d4e5f.forged",
        "/mdm/enroll?token=not-a-token&identity=pkcs12",
    ] {
        let r = closed.client.get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let code = r.json()["error"].as_str().unwrap().to_owned();
        assert!(code.starts_with("enrollment_token_"), "{path}: {code}");
    }
    let metrics = closed.client.get("/metrics").await.text();
    assert!(!metrics.contains("status=\"401\""), "{metrics}");
    let issued = baton_server::enrollment::StoreCertificateRegistry::new(std::sync::Arc::clone(
        &closed.running().services().store,
    ))
    .unwrap()
    .all()
    .unwrap();
    assert!(
        issued
            .iter()
            .all(|r| r.kind != baton_server::enrollment::CertificateKind::DeviceIdentity),
        "no device identity was issued: {issued:?}"
    );
    closed.stop().await;

    // With open enrollment, anyone gets a certificate, but not an enrolled device's binding.
    let server = TestServer::start(
        &pki,
        ServerOptions {
            open_enrollment: true,
            webhook: unreachable_webhook(),
            ..ServerOptions::default()
        },
    )
    .await;
    upload_push_certificate(&server).await;
    let victim = device(VICTIM, identity_from_profile(&server, "/mdm/enroll").await);
    enroll_with_bootstrap(&server, &victim).await;
    sign_in(&server, VICTIM, "alice").await;
    let queued = server
        .queue(VICTIM, json!({"request_type": "ProfileList"}))
        .await;
    let portal = portal_token(&server, VICTIM);

    for identity in [
        identity_from_profile(&server, "/mdm/enroll").await,
        pkcs12_identity(&fetch_profile(&server, "/mdm/enroll?identity=pkcs12").await),
    ] {
        let attacker = device(VICTIM, identity);
        let r = server.checkin(&attacker, attacker.authenticate()).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.text(), "re_enrollment_refused\n");
        let r = server.checkin(&attacker, attacker.token_update()).await;
        assert_eq!(r.status, 400, "no TokenUpdate without a binding");
        assert_victim_intact(&server, &victim, &attacker).await;
    }
    // The queue was not cleared and the portal token not rotated.
    let r = server.connect(&victim, victim.idle()).await;
    assert_eq!(r.status, 200);
    assert!(
        String::from_utf8_lossy(&r.body).contains(&queued),
        "the victim still gets its command"
    );
    assert_eq!(portal_token(&server, VICTIM), portal);

    // Audited: on the device, in the metrics and as one webhook event (throttled per minute).
    let v = view(&server, VICTIM).await;
    assert_eq!(v["re_enrollment"]["refusals"], 2, "{v}");
    assert_eq!(
        v["re_enrollment"]["last_refused"]["reason"],
        "active_binding"
    );
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("reason=\"re_enrollment_refused\"} 2"),
        "{metrics}"
    );
    let refused: Vec<Value> = outbox_events(&server)
        .into_iter()
        .filter(|e| e["type"] == "device.re_enrollment_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["enrollment_id"], VICTIM);
    assert_eq!(refused[0]["reason"], "active_binding");

    // A new device enrolls with open enrollment; the device shows no token.
    let newcomer = device(OTHER, identity_from_profile(&server, "/mdm/enroll").await);
    server.enroll(&newcomer).await;
    assert_eq!(view(&server, OTHER).await["enrollment_token"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_device_cannot_claim_an_enrolled_udid() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let victim = device(
        VICTIM,
        identity_from_profile(&server, &server.enroll_path(1).await).await,
    );
    enroll_with_bootstrap(&server, &victim).await;
    sign_in(&server, VICTIM, "alice").await;

    // A token meant for one iPad (its serial number), in the wrong hands.
    let other = pki.device(OTHER);
    let token = server
        .create_enrollment_token(json!({"label": "iPad 7", "uses": 3,
            "serials": [other.serial_number()]}))
        .await;
    let path = format!("/mdm/enroll?token={}", token["token"].as_str().unwrap());
    let attacker = device(VICTIM, identity_from_profile(&server, &path).await);
    // Claiming the victim with the victim's serial: not the token's device.
    let r = server.checkin(&attacker, attacker.authenticate()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.text(), "enrollment_token_refused\n");
    // Claiming it with the token's serial: the victim's binding is active.
    let r = server
        .checkin(&attacker, attacker.authenticate_as(&other.serial_number()))
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.text(), "re_enrollment_refused\n");
    assert_victim_intact(&server, &victim, &attacker).await;
    let v = view(&server, VICTIM).await;
    assert_eq!(
        v["re_enrollment"]["last_refused"]["enrollment_token"],
        token["id"]
    );

    // The token still enrolls the device it was made for.
    let ipad = device(OTHER, identity_from_profile(&server, &path).await);
    server.enroll(&ipad).await;
    assert_eq!(
        view(&server, OTHER).await["enrollment_token"],
        json!({"id": token["id"], "label": "iPad 7"})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_uses_expiry_and_revocation_are_enforced() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let r = server
        .api(
            Method::POST,
            "/api/v1/groups",
            Some(json!({"name": "ward-b", "kind": "device", "members": []})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(json!({"label": "x", "device_group": "nope"})),
        )
        .await;
    assert_eq!(r.status, 400, "an unknown group is refused: {}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/enrollment-tokens",
            Some(json!({"label": "x", "colour": "red"})),
        )
        .await;
    assert!(r.status.is_client_error(), "unknown fields are refused");

    // Two uses: two downloads, then none.
    let cart = server
        .create_enrollment_token(json!({"label": "cart 3", "uses": 2, "device_group": "ward-b"}))
        .await;
    assert!(
        cart["url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1/mdm/enroll?token=")
    );
    let path = format!("/mdm/enroll?token={}", cart["token"].as_str().unwrap());
    let first = identity_from_profile(&server, &path).await;
    let _second = identity_from_profile(&server, &path).await;
    let r = server.client.get(&path).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "enrollment_token_used_up");
    let shown = server
        .api(
            Method::GET,
            &format!("/api/v1/enrollment-tokens/{}", cart["id"].as_str().unwrap()),
            None,
        )
        .await
        .json();
    assert_eq!(
        (shown["uses"].as_u64(), shown["state"].as_str()),
        (Some(2), Some("used_up"))
    );
    assert!(
        shown.get("token").is_none(),
        "the secret is never shown again"
    );
    assert!(!shown.to_string().contains(cart["token"].as_str().unwrap()));

    // The enrolled device shows its token and joined the token's group.
    let phone = device(VICTIM, first);
    server.enroll(&phone).await;
    assert_eq!(
        view(&server, VICTIM).await["enrollment_token"],
        json!({"id": cart["id"], "label": "cart 3"})
    );
    let groups = server.api(Method::GET, "/api/v1/groups", None).await.json();
    assert!(groups.to_string().contains(VICTIM), "{groups}");

    // Revoked: no download, and a certificate obtained before cannot enroll.
    let revoked = server
        .create_enrollment_token(json!({"label": "leaked", "uses": 5}))
        .await;
    let path = format!("/mdm/enroll?token={}", revoked["token"].as_str().unwrap());
    let early = device(OTHER, identity_from_profile(&server, &path).await);
    let r = server
        .api(
            Method::POST,
            &format!(
                "/api/v1/enrollment-tokens/{}/revoke",
                revoked["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "revoked");
    let r = server.client.get(&path).await;
    assert_eq!(r.json()["error"], "enrollment_token_revoked");
    let r = server.checkin(&early, early.authenticate()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.text(), "enrollment_token_refused\n");

    // Expired (the record is aged in the store: tokens live at least a minute).
    let old = server
        .create_enrollment_token(json!({"label": "old", "uses": 5}))
        .await;
    let store = &server.running().services().store;
    let tokens = Collection::new("enrollment_tokens").unwrap();
    let key = old["id"].as_str().unwrap().as_bytes();
    let mut record: Value =
        serde_json::from_slice(&store.get(&tokens, key).unwrap().unwrap()).unwrap();
    record["expires_at_ms"] = json!(1_000);
    store
        .put(&tokens, key, &serde_json::to_vec(&record).unwrap())
        .unwrap();
    let r = server
        .client
        .get(&format!(
            "/mdm/enroll?token={}",
            old["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "enrollment_token_expired");

    let list = server
        .api(Method::GET, "/api/v1/enrollment-tokens", None)
        .await
        .json();
    let states: Vec<&str> = list["enrollment_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["expired", "revoked", "used_up", "active"],
        "newest first"
    );
    assert_eq!(
        list["enrollment_tokens"][3]["label"], "first device",
        "made at the first start"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_re_enrollment_replaces_the_identity_and_ends_the_session() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let enroll = server.enroll_path(10).await;
    let phone = device(VICTIM, identity_from_profile(&server, &enroll).await);
    enroll_with_bootstrap(&server, &phone).await;
    sign_in(&server, VICTIM, "alice").await;
    let first_portal = portal_token(&server, VICTIM);

    // The phone was wiped without checking out: its new identity is refused...
    let wiped = device(VICTIM, identity_from_profile(&server, &enroll).await);
    let r = server.checkin(&wiped, wiped.authenticate()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // ...until an operator approves one re-enrollment.
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{VICTIM}/re-enrollment"),
            Some(json!({"valid_for_seconds": 600})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(view(&server, VICTIM).await["re_enrollment"]["approved_until"].is_string());
    let r = server.checkin(&wiped, wiped.authenticate()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.checkin(&wiped, wiped.token_update()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The old certificate is revoked, the escrow dropped, the person signed out, the portal
    // token rotated.
    let r = server.connect(&phone, phone.idle()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "certificate_revoked\n");
    let r = server.checkin(&wiped, wiped.get_bootstrap_token()).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("BootstrapToken"), "{}", r.text());
    let v = view(&server, VICTIM).await;
    assert_eq!(v["assignee"], "nobody");
    assert!(v["re_enrollment"]["approved_until"].is_null(), "used: {v}");
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{VICTIM}/sessions"),
            None,
        )
        .await
        .json();
    assert_eq!(
        sessions["sessions"][0]["ended_how"], "re_enrolled",
        "{sessions}"
    );
    let log = server
        .api(Method::GET, "/api/v1/sign-in-log?reason=re_enrolled", None)
        .await
        .json();
    assert_eq!(log[0]["username"], "alice", "{log}");
    assert_eq!(log[0]["result"], "signed_out");
    assert_ne!(portal_token(&server, VICTIM), first_portal);

    // The approval was used: the next new identity is refused again.
    let third = device(VICTIM, identity_from_profile(&server, &enroll).await);
    let r = server.checkin(&third, third.authenticate()).await;
    assert_eq!(r.status, 403);

    // After a check-out the device may enroll again without anyone's approval.
    let r = server.checkin(&wiped, wiped.check_out()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.checkin(&third, third.authenticate()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.enroll(&third).await;

    // A token naming the device for re-enrollment replaces its active binding.
    let replacement = server
        .create_enrollment_token(json!({"label": "replacement", "re_enroll": [VICTIM]}))
        .await;
    let fourth = device(
        VICTIM,
        identity_from_profile(
            &server,
            &format!(
                "/mdm/enroll?token={}",
                replacement["token"].as_str().unwrap()
            ),
        )
        .await,
    );
    let r = server.checkin(&fourth, fourth.authenticate()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = server.connect(&third, third.idle()).await;
    assert_eq!(r.text(), "certificate_revoked\n");
    assert_eq!(
        view(&server, VICTIM).await["enrollment_token"]["label"],
        "replacement"
    );
    // Withdrawing an approval that is not there is a 404.
    let r = server
        .api(
            Method::DELETE,
            &format!("/api/v1/devices/{VICTIM}/re-enrollment"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    server.stop().await;
}

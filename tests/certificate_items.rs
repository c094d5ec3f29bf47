//! Certificate catalog items end to end (server + mock APNs + baton-sim): a per-user certificate
//! item distributed to alice and bob. When alice signs in through the portal the device gets an
//! InstallProfile whose `com.apple.security.pkcs12` payload (checked against Apple's schema)
//! holds a fresh identity for CN=alice issued by the built-in CA; when she signs out the profile
//! is removed and the certificate revoked in the CA's records (and CRL); bob then gets a
//! different certificate, revoked when the operator deletes the item. A subject that is not a
//! valid name is reported, not sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_e2e::portal::{Apns, Browser, clip_path};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::plist::Value;
use baton_proto::{Command, CommandRequest, CommandUuid, Limits, Profile, Status};
use baton_server::enrollment::ca::{CA_CERT_FILE, CA_KEY_FILE};
use baton_server::enrollment::{
    CertificateAuthority, CertificateKind, CertificateRegistry, StoreCertificateRegistry,
};
use baton_server::reconciler::AssignmentSettings;
use baton_server::server::CA_DIR;
use baton_sim::{SimDevice, SimOptions};
use http::Method;
use openssl::x509::{X509, X509Crl};
use serde_json::json;
use serde_yaml::Value as Yaml;

const UDID: &str = "00008120-0004D5E6F7A8B9C0";
const CERT_PROFILE: &str = "com.baton.item.user-cert";
const PKCS12: &str = "com.apple.security.pkcs12";

/// A server with alice and bob and the per-user certificate item `user-cert` for both.
async fn server(apns: &Apns, pki: &Pki, subject: &str) -> TestServer {
    let server = TestServer::start(
        pki,
        ServerOptions {
            tls: false,
            assignment: AssignmentSettings::default(),
            push: apns.config(),
            ..ServerOptions::default()
        },
    )
    .await;
    for name in ["alice", "bob"] {
        let r = server
            .api(
                Method::POST,
                "/api/v1/users",
                Some(json!({"username": name, "password": format!("pw-{name}"),
                    "email": format!("{name}@example.com")})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = server
        .api(
            Method::POST,
            "/api/v1/items",
            Some(
                json!({"id": "user-cert", "name": "User certificate", "kind": "certificate",
                "issued_per": "user", "subject": subject, "email": "$USER.email",
                "validity_days": 30}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .api(
            Method::POST,
            "/api/v1/distributions",
            Some(json!({"item": "user-cert", "target": {"users": ["alice", "bob"]}})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    server
}

/// An enrolled sim device (not yet connected).
async fn enroll(server: &TestServer, pki: &Pki) -> SimDevice {
    baton_e2e::portal::enrolled_sim(server, pki, UDID, SimOptions::default()).await
}

async fn sign_in(server: &TestServer, device: &SimDevice, user: &str) -> Browser {
    let portal = clip_path(device, "Sign in");
    let mut browser = Browser::default();
    let password = format!("pw-{user}");
    let (_, r) = browser
        .submit(
            server,
            &portal,
            &[("username", user), ("password", &password)],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    browser
}

async fn sign_out(server: &TestServer, device: &SimDevice, browser: &mut Browser) {
    let portal = clip_path(device, "Sign out");
    let (_, r) = browser.submit(server, &portal, &[]).await;
    assert_eq!(r.status, 303, "{}", r.text());
}

/// Connects until idle; every command must be acknowledged.
async fn converge(device: &mut SimDevice) -> Vec<String> {
    let done = device.connect_until_idle().await.unwrap();
    assert!(
        done.iter().all(|c| c.status == Status::Acknowledged),
        "{done:?}"
    );
    done.into_iter().map(|c| c.request_type).collect()
}

/// The identity certificate the device holds from the certificate item's profile, if any.
fn item_identity(device: &SimDevice) -> Option<X509> {
    let installed: Vec<_> = device
        .certificates()
        .iter()
        .filter(|c| c.profile_identifier == CERT_PROFILE && c.is_identity)
        .collect();
    assert!(installed.len() <= 1, "one identity per profile");
    installed
        .first()
        .map(|c| X509::from_der(&hex_decode(&c.der_hex)).unwrap())
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn serial(cert: &X509) -> u64 {
    cert.serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn common_name(cert: &X509) -> String {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap()
}

fn email_sans(cert: &X509) -> Vec<String> {
    cert.subject_alt_names()
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.email().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn registry(server: &TestServer) -> StoreCertificateRegistry {
    StoreCertificateRegistry::new(Arc::clone(&server.running().services().store)).unwrap()
}

fn ca(server: &TestServer) -> CertificateAuthority {
    let dir = server.data_dir().join(CA_DIR);
    CertificateAuthority::from_pem(
        &std::fs::read(dir.join(CA_CERT_FILE)).unwrap(),
        &std::fs::read(dir.join(CA_KEY_FILE)).unwrap(),
    )
    .unwrap()
}

/// The queued InstallProfile commands of the device, parsed.
async fn queued_profiles(server: &TestServer) -> Vec<Profile> {
    let store = &server.running().services().store;
    let mut out = Vec::new();
    for c in server.commands(UDID).await {
        if c["status"] != "queued" || c["request_type"] != "InstallProfile" {
            continue;
        }
        let uuid = CommandUuid::new(c["command_uuid"].as_str().unwrap()).unwrap();
        let stored = store.command(&uuid).unwrap().unwrap();
        let command = Command::decode(&stored.body, &Limits::default()).unwrap();
        let CommandRequest::InstallProfile { payload } = command.request else {
            panic!("not InstallProfile")
        };
        out.push(Profile::parse(&payload, &Limits::default()).unwrap());
    }
    out
}

/// Checks a payload's type-specific keys against Apple's schema (read in place): every key is
/// defined with the documented type, every required key is present. Skipped (with a notice)
/// when `../shared` is absent.
fn check_against_apple_schema(content: &baton_proto::plist::Dictionary) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/apple-device-management/mdm/profiles/com.apple.security.pkcs12.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!("NOTICE: {} not found; schema check skipped", path.display());
        return;
    };
    let doc: Yaml = serde_yaml::from_str(&text).unwrap();
    assert_eq!(doc["payload"]["payloadtype"].as_str(), Some(PKCS12));
    let keys = doc["payloadkeys"].as_sequence().unwrap();
    for (key, value) in content {
        let spec = keys
            .iter()
            .find(|k| k["key"].as_str() == Some(key.as_str()))
            .unwrap_or_else(|| panic!("{key} is not in Apple's {PKCS12} schema"));
        let ty = spec["type"].as_str().unwrap();
        let ok = match ty {
            "<string>" => matches!(value, Value::String(_)),
            "<data>" => matches!(value, Value::Data(_)),
            "<boolean>" => matches!(value, Value::Boolean(_)),
            other => panic!("unexpected schema type {other}"),
        };
        assert!(ok, "{key} should be {ty}");
        // iOS-only deployment: keys Apple marks as not available on iOS must not be sent.
        assert_ne!(
            spec["supportedOS"]["iOS"]["introduced"].as_str(),
            Some("n/a"),
            "{key} is not available on iOS"
        );
    }
    for spec in keys {
        if spec["presence"].as_str() == Some("required") {
            let key = spec["key"].as_str().unwrap();
            assert!(content.contains_key(key), "required {key} missing");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_certificates_are_issued_at_sign_in_and_revoked_at_sign_out() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    let server = server(&apns, &pki, "CN=$USER.username,O=Baton Test").await;
    let mut device = enroll(&server, &pki).await;
    converge(&mut device).await;
    assert!(
        item_identity(&device).is_none(),
        "nobody gets no certificate"
    );
    let registry = registry(&server);
    let ca = ca(&server);
    let issued_before = registry.issued_count().unwrap();

    // alice signs in: the queued profile carries a PKCS#12 payload that matches Apple's schema.
    let mut browser = sign_in(&server, &device, "alice").await;
    let profiles = queued_profiles(&server).await;
    let profile = profiles
        .iter()
        .find(|p| p.identifier == CERT_PROFILE)
        .unwrap_or_else(|| panic!("no certificate profile queued: {profiles:?}"));
    assert_eq!(profile.payloads.len(), 1);
    assert_eq!(profile.payloads[0].payload_type, PKCS12);
    check_against_apple_schema(&profile.payloads[0].content);
    assert_eq!(registry.issued_count().unwrap(), issued_before + 1);

    converge(&mut device).await;
    let alice = item_identity(&device).expect("alice's identity installed");
    assert_eq!(common_name(&alice), "alice");
    assert_eq!(email_sans(&alice), ["alice@example.com"]);
    assert!(ca.issued(&alice), "issued by the built-in CA");
    let installed = device
        .profiles()
        .iter()
        .find(|p| p.identifier == CERT_PROFILE)
        .unwrap();
    assert_eq!(installed.uuid, profile.uuid, "the engine's PayloadUUID");
    let record = registry.by_serial(serial(&alice)).unwrap().unwrap();
    assert_eq!(record.kind, CertificateKind::UserClient);
    assert_eq!(record.revoked_at, None);
    assert!(record.enrollment_hint.unwrap().contains("user-cert"));

    // alice signs out: the profile goes, the certificate is revoked and on the CRL.
    sign_out(&server, &device, &mut browser).await;
    let kinds = converge(&mut device).await;
    assert!(kinds.contains(&"RemoveProfile".to_owned()), "{kinds:?}");
    assert!(item_identity(&device).is_none(), "alice's identity removed");
    assert!(
        !device
            .profiles()
            .iter()
            .any(|p| p.identifier == CERT_PROFILE),
        "certificate profile removed"
    );
    let record = registry.by_serial(serial(&alice)).unwrap().unwrap();
    assert!(record.revoked_at.is_some(), "revoked after the removal");
    let crl = X509Crl::from_der(
        &ca.crl_der(&registry, SystemTime::now(), Duration::from_secs(3600))
            .unwrap(),
    )
    .unwrap();
    let on_crl: Vec<u64> = crl
        .get_revoked()
        .map(|r| {
            r.iter()
                .map(|e| {
                    e.serial_number()
                        .to_bn()
                        .unwrap()
                        .to_dec_str()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(on_crl, [serial(&alice)]);
    let sessions = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/sessions"),
            None,
        )
        .await
        .json();
    let alice_session = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["username"] == "alice")
        .unwrap();
    assert_eq!(alice_session["clean_hand_off"], true, "{sessions}");

    // bob signs in: a different certificate, with his name, not revoked.
    let mut browser = sign_in(&server, &device, "bob").await;
    converge(&mut device).await;
    let bob = item_identity(&device).expect("bob's identity installed");
    assert_eq!(common_name(&bob), "bob");
    assert_eq!(email_sans(&bob), ["bob@example.com"]);
    assert_ne!(serial(&bob), serial(&alice));
    assert!(
        !bob.public_key()
            .unwrap()
            .public_eq(&alice.public_key().unwrap()),
        "a new key"
    );
    assert_eq!(
        registry
            .by_serial(serial(&bob))
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    // The operator deletes the item while bob is signed in: the plain RemoveProfile of an item
    // that left the catalog revokes his certificate too.
    let r = server
        .api(Method::DELETE, "/api/v1/items/user-cert", None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text());
    converge(&mut device).await;
    assert!(item_identity(&device).is_none());
    assert!(
        registry
            .by_serial(serial(&bob))
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(registry.revoked().unwrap().len(), 2);
    sign_out(&server, &device, &mut browser).await;
    converge(&mut device).await;
    assert_eq!(registry.revoked().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subject_that_is_not_a_name_is_reported_and_nothing_is_sent() {
    let apns = Apns::start().await;
    let pki = Pki::generate();
    // No `CN=`: the rendered subject is just the username.
    let server = server(&apns, &pki, "$USER.username").await;
    let mut device = enroll(&server, &pki).await;
    converge(&mut device).await;
    let registry = registry(&server);
    let before = registry.issued_count().unwrap();
    let r = server
        .api(
            Method::POST,
            &format!("/api/v1/devices/{UDID}/sign-in"),
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let outcome = r.json();
    let not_built = outcome["not_built"].as_array().unwrap();
    assert_eq!(not_built.len(), 1, "{outcome}");
    let reason = not_built[0].as_str().unwrap();
    assert!(
        reason.contains("user-cert") && reason.contains("ATTRIBUTE=value"),
        "{reason}"
    );
    assert!(
        !outcome["enqueued"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["item"] == "user-cert"),
        "{outcome}"
    );
    converge(&mut device).await;
    assert!(item_identity(&device).is_none());
    assert_eq!(registry.issued_count().unwrap(), before, "nothing issued");
    server.assert_healthy().await;
}

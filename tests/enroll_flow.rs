//! Enrollment end to end, over real HTTPS: a device downloads `/mdm/enroll`, gets its identity
//! (SCEP with the profile's one-time challenge, or the PKCS#12 in the profile), and completes
//! Authenticate / TokenUpdate / Idle signed with that identity, which the server trusts because
//! it chains to the built-in CA. Also: challenge reuse, serials across restarts, revocation at
//! CheckOut, identity renewal and signed profiles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use baton_e2e::device::TOPIC;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{Command, CommandRequest, Limits, Profile};
use baton_server::enrollment::EnrollmentSettings;
use baton_server::enrollment::scep::FailInfo;
use baton_server::enrollment::scep::client::{
    CertRepOutcome, PkiRequestParams, certificate_request, decode_cert_rep, generate_rsa_key,
    self_signed_certificate,
};
use baton_server::identity::testing::DeviceIdentity;
use http::Method;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509Name};

/// Uploads a test push certificate through the admin API; returns its topic.
async fn upload_push_certificate(server: &TestServer) -> String {
    let pki = baton_apns::testing::TestPki::generate().unwrap();
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(serde_json::json!({
                "cert_pem": String::from_utf8(pki.push_cert_pem.clone()).unwrap(),
                "key_pem": String::from_utf8(pki.push_key_pem.clone()).unwrap(),
            })),
        )
        .await;
    assert!(
        r.status.is_success(),
        "push certificate upload: {}",
        r.text()
    );
    pki.topic.as_str().to_owned()
}

async fn fetch_profile(server: &TestServer, path: &str) -> Profile {
    let r = server.client.get(path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-apple-aspen-config")
    );
    Profile::parse(&r.body, &Limits::default()).unwrap()
}

fn payload<'a>(profile: &'a Profile, payload_type: &str) -> &'a Dictionary {
    &profile
        .payloads
        .iter()
        .find(|p| p.payload_type == payload_type)
        .unwrap_or_else(|| panic!("no {payload_type} payload"))
        .content
}

fn uuid_of(profile: &Profile, payload_type: &str) -> String {
    profile
        .payloads
        .iter()
        .find(|p| p.payload_type == payload_type)
        .unwrap()
        .uuid
        .clone()
}

/// Path and query of a URL (`https://host:port/x?y` -> `/x?y`).
fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

/// What the SCEP payload tells the device.
struct ScepInstructions {
    path: String,
    challenge: String,
    subject: X509Name,
}

fn scep_instructions(profile: &Profile) -> ScepInstructions {
    let scep = payload(profile, "com.apple.security.scep")["PayloadContent"]
        .as_dictionary()
        .unwrap();
    assert_eq!(scep["Keysize"].as_signed_integer(), Some(2048));
    assert_eq!(scep["Key Usage"].as_signed_integer(), Some(5));
    let mut subject = X509Name::builder().unwrap();
    for rdn in scep["Subject"].as_array().unwrap() {
        let pair = rdn.as_array().unwrap()[0].as_array().unwrap();
        subject
            .append_entry_by_text(pair[0].as_string().unwrap(), pair[1].as_string().unwrap())
            .unwrap();
    }
    ScepInstructions {
        path: path_of(scep["URL"].as_string().unwrap()),
        challenge: scep["Challenge"].as_string().unwrap().to_owned(),
        subject: subject.build(),
    }
}

fn ca_certificate(server: &TestServer) -> X509 {
    X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap()
}

/// Runs a PKCSReq like iOS does (RSA-2048, self-signed signer) and returns the outcome and key.
async fn scep_enroll(
    server: &TestServer,
    scep: &ScepInstructions,
) -> (CertRepOutcome, openssl::pkey::PKey<openssl::pkey::Private>) {
    let ca = ca_certificate(server);
    let key = generate_rsa_key(2048).unwrap();
    let signer = self_signed_certificate(&key, "iPhone enrolling").unwrap();
    let csr = certificate_request(&key, &scep.subject, Some(&scep.challenge)).unwrap();
    let request = PkiRequestParams::pkcs_req(&csr, &key, &signer, &ca)
        .build()
        .unwrap();
    let reply = server
        .client
        .send(
            Method::POST,
            &format!("{}?operation=PKIOperation", scep.path),
            &[("Content-Type", "application/x-pki-message".to_owned())],
            request.der.clone(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let outcome = decode_cert_rep(&reply.body, &request, &ca, &key, &signer).unwrap();
    (outcome, key)
}

/// A device identity from a SCEP enrollment that must succeed.
async fn scep_identity(server: &TestServer, scep: &ScepInstructions) -> DeviceIdentity {
    match scep_enroll(server, scep).await {
        (CertRepOutcome::Issued(cert), key) => DeviceIdentity {
            cert,
            key,
            chain: Vec::new(),
        },
        (other, _) => panic!("SCEP did not issue: {other:?}"),
    }
}

fn device(udid: &str, identity: DeviceIdentity) -> TestDevice {
    TestDevice {
        udid: udid.to_owned(),
        identity,
    }
}

/// Authenticate, TokenUpdate and an Idle that finds nothing queued.
async fn check_in_fully(server: &TestServer, device: &TestDevice) {
    server.enroll(device).await;
    let r = server.connect(device, device.idle()).await;
    assert_eq!(r.status, 200, "idle: {}", r.text());
}

fn serial_of(cert: &X509) -> u64 {
    let bytes = cert.serial_number().to_bn().unwrap().to_vec();
    bytes.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scep_enrollment_from_the_served_profile() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;

    // Without an enrollment token there is no profile.
    let r = server.client.get("/mdm/enroll").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "enrollment_token_required");
    // Without a push certificate there is no topic to put in the profile; no use is taken.
    let enroll = server.enroll_path(2).await;
    let r = server.client.get(&enroll).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"], "no_push_certificate");

    let topic = upload_push_certificate(&server).await;
    let profile = fetch_profile(&server, &enroll).await;
    assert_eq!(profile.identifier, "io.baton.enrollment");
    let mdm = payload(&profile, "com.apple.mdm");
    assert_eq!(mdm["Topic"].as_string(), Some(topic.as_str()));
    assert_eq!(
        mdm["IdentityCertificateUUID"].as_string(),
        Some(uuid_of(&profile, "com.apple.security.scep").as_str())
    );
    assert_eq!(
        mdm["ServerURL"].as_string(),
        Some("https://127.0.0.1/mdm/connect")
    );
    assert_eq!(
        mdm["CheckInURL"].as_string(),
        Some("https://127.0.0.1/mdm/checkin")
    );
    assert_eq!(mdm["SignMessage"], Value::Boolean(true));
    assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(8191));
    assert_eq!(mdm["CheckOutWhenRemoved"], Value::Boolean(true));
    // The server's TLS certificate is issued by the built-in CA: the profile carries the CA.
    let root = payload(&profile, "com.apple.security.root");
    let ca = ca_certificate(&server);
    assert_eq!(
        root["PayloadContent"].as_data(),
        Some(ca.to_der().unwrap().as_slice())
    );

    let scep = scep_instructions(&profile);
    let identity = scep_identity(&server, &scep).await;
    let subject = identity.cert.subject_name();
    let cn = subject
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .unwrap()
        .data()
        .to_string()
        .unwrap();
    assert!(cn.starts_with("Baton device "), "{cn}");
    let phone = device("00008110-000A1B2C3D4E501E", identity);
    check_in_fully(&server, &phone).await;

    // The profile's one-time challenge is used up.
    let (outcome, _) = scep_enroll(&server, &scep).await;
    assert!(
        matches!(outcome, CertRepOutcome::Failed(FailInfo::BadRequest)),
        "{outcome:?}"
    );
    // A second download has a different challenge and fresh UUIDs, same identifiers.
    let again = fetch_profile(&server, &enroll).await;
    assert_ne!(scep_instructions(&again).challenge, scep.challenge);
    assert_ne!(again.uuid, profile.uuid);
    assert_eq!(again.identifier, profile.identifier);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkcs12_variant_carries_a_working_identity() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let enroll = server.enroll_path(1).await;
    let r = server.client.get(&format!("{enroll}&identity=nope")).await;
    assert_eq!(r.status, 400, "refused before the use is taken");
    let profile = fetch_profile(&server, &format!("{enroll}&identity=pkcs12")).await;
    assert!(
        profile
            .payloads
            .iter()
            .all(|p| p.payload_type != "com.apple.security.scep")
    );
    let p12 = payload(&profile, "com.apple.security.pkcs12");
    let password = p12["Password"].as_string().unwrap();
    let parsed = Pkcs12::from_der(p12["PayloadContent"].as_data().unwrap())
        .unwrap()
        .parse2(password)
        .unwrap();
    let cert = parsed.cert.unwrap();
    let key = parsed.pkey.unwrap();
    assert_eq!(key.bits(), 2048);
    assert!(
        cert.verify(&ca_certificate(&server).public_key().unwrap())
            .unwrap()
    );
    assert_eq!(
        payload(&profile, "com.apple.mdm")["IdentityCertificateUUID"].as_string(),
        Some(uuid_of(&profile, "com.apple.security.pkcs12").as_str())
    );
    let phone = device(
        "00008110-000A1B2C3D4E502E",
        DeviceIdentity {
            cert,
            key,
            chain: Vec::new(),
        },
    );
    check_in_fully(&server, &phone).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serials_and_challenges_survive_a_restart() {
    let pki = Pki::generate();
    let mut server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let enroll = server.enroll_path(2).await;
    let used = scep_instructions(&fetch_profile(&server, &enroll).await);
    let unused = scep_instructions(&fetch_profile(&server, &enroll).await);
    let first = scep_identity(&server, &used).await;
    let phone = device("00008110-000A1B2C3D4E503E", first.clone());
    check_in_fully(&server, &phone).await;

    server.restart().await;

    // The enrolled device is still trusted and bound.
    let r = server.connect(&phone, phone.idle()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The used challenge stays used; the unused one from before the restart still works.
    let (outcome, _) = scep_enroll(&server, &used).await;
    assert!(matches!(outcome, CertRepOutcome::Failed(_)), "{outcome:?}");
    let second = scep_identity(&server, &unused).await;
    assert!(
        serial_of(&second.cert) > serial_of(&first.cert),
        "serial {} after restart, {} before",
        serial_of(&second.cert),
        serial_of(&first.cert)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checked_out_identity_is_refused_afterwards() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    upload_push_certificate(&server).await;
    let enroll = server.enroll_path(2).await;
    let scep = scep_instructions(&fetch_profile(&server, &enroll).await);
    let phone = device(
        "00008110-000A1B2C3D4E504E",
        scep_identity(&server, &scep).await,
    );
    check_in_fully(&server, &phone).await;
    let r = server.checkin(&phone, phone.check_out()).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Neither the command channel nor a new Authenticate accepts the revoked certificate.
    let r = server.connect(&phone, phone.idle()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "certificate_revoked\n");
    let r = server.checkin(&phone, phone.authenticate()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "certificate_revoked\n");
    let metrics = server.client.get("/metrics").await.text();
    assert!(
        metrics.contains("reason=\"certificate_revoked\"} 2"),
        "{metrics}"
    );

    // Enrolling again with a new profile works.
    let scep = scep_instructions(&fetch_profile(&server, &enroll).await);
    let again = device(&phone.udid, scep_identity(&server, &scep).await);
    check_in_fully(&server, &again).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_identities_get_one_renewal_profile() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            enrollment: EnrollmentSettings {
                device_validity: Duration::from_secs(10 * 24 * 3600),
                renewal_window: Duration::from_secs(30 * 24 * 3600),
                renewal_check_every: Duration::from_millis(100),
                ..EnrollmentSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    upload_push_certificate(&server).await;
    let enroll = server.enroll_path(1).await;
    let scep = scep_instructions(&fetch_profile(&server, &enroll).await);
    let phone = device(
        "00008110-000A1B2C3D4E505E",
        scep_identity(&server, &scep).await,
    );
    // A device from the operator's own CA is not the built-in CA's to renew.
    let foreign = pki.device("00008110-000A1B2C3D4E506E");
    server.enroll(&phone).await;
    server.enroll(&foreign).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let installs = loop {
        let commands = server.commands(&phone.udid).await;
        let installs: Vec<_> = commands
            .into_iter()
            .filter(|c| c["request_type"] == "InstallProfile")
            .collect();
        if !installs.is_empty() || Instant::now() > deadline {
            break installs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(installs.len(), 1, "one renewal queued");
    // Several more passes queue nothing new.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let count = |commands: Vec<serde_json::Value>| {
        commands
            .iter()
            .filter(|c| c["request_type"] == "InstallProfile")
            .count()
    };
    assert_eq!(count(server.commands(&phone.udid).await), 1);
    assert_eq!(count(server.commands(&foreign.udid).await), 0);

    // The device fetches it: a fresh enrollment profile with the enrollment's topic and a new,
    // working one-time challenge.
    let r = server.connect(&phone, phone.idle()).await;
    assert_eq!(r.status, 200);
    let command = Command::decode(&r.body, &Limits::default()).unwrap();
    let CommandRequest::InstallProfile { payload: bytes } = command.request else {
        panic!("expected InstallProfile");
    };
    let renewal = Profile::parse(&bytes, &Limits::default()).unwrap();
    assert_eq!(renewal.identifier, "io.baton.enrollment");
    let mdm = payload(&renewal, "com.apple.mdm");
    assert_eq!(mdm["Topic"].as_string(), Some(TOPIC));
    assert_eq!(
        mdm["ServerURL"].as_string(),
        Some("https://127.0.0.1/mdm/connect")
    );
    let renewed_scep = scep_instructions(&renewal);
    assert_ne!(renewed_scep.challenge, scep.challenge);
    let renewed = scep_identity(&server, &renewed_scep).await;
    assert!(serial_of(&renewed.cert) > serial_of(&phone.identity.cert));
    // The renewal identity belongs to this device only: another enrolled device cannot use it,
    // even before the device itself has.
    let other = pki.device("00008110-000A1B2C3D4E507E");
    server.enroll(&other).await;
    let thief = device(&other.udid, renewed.clone());
    let r = server.connect(&thief, thief.idle()).await;
    assert_eq!(
        r.status, 400,
        "a renewal identity is refused for another device"
    );
    // The device signs with its renewed identity without a new Authenticate: accepted and bound.
    let renewed_phone = device(&phone.udid, renewed);
    let r = server.connect(&renewed_phone, renewed_phone.idle()).await;
    assert_eq!(r.status, 200, "renewed identity accepted");
    let r = server.connect(&renewed_phone, renewed_phone.idle()).await;
    assert_eq!(r.status, 200, "and stays bound");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_profile_is_signed_by_the_tls_identity() {
    let pki = Pki::generate();
    let server = TestServer::start(
        &pki,
        ServerOptions {
            enrollment: EnrollmentSettings {
                sign_profile: true,
                ..EnrollmentSettings::default()
            },
            ..ServerOptions::default()
        },
    )
    .await;
    upload_push_certificate(&server).await;
    let r = server.client.get(&server.enroll_path(1).await).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.first(), Some(&0x30), "DER CMS expected");
    let p7 = Pkcs7::from_der(&r.body).unwrap();
    let mut trust = X509StoreBuilder::new().unwrap();
    trust.add_cert(ca_certificate(&server)).unwrap();
    let trust = trust.build();
    let mut content = Vec::new();
    p7.verify(
        &Stack::new().unwrap(),
        &trust,
        None,
        Some(&mut content),
        Pkcs7Flags::BINARY | Pkcs7Flags::NOCHAIN,
    )
    .unwrap();
    let signers = p7
        .signers(&Stack::new().unwrap(), Pkcs7Flags::empty())
        .unwrap();
    let tls_leaf =
        X509::from_pem(&std::fs::read(server.data_dir().join("tls").join("server.crt")).unwrap())
            .unwrap();
    assert_eq!(
        signers.iter().next().unwrap().to_der().unwrap(),
        tls_leaf.to_der().unwrap()
    );
    let profile = Profile::parse(&content, &Limits::default()).unwrap();
    assert_eq!(profile.identifier, "io.baton.enrollment");
    server.stop().await;
}

//! Trust bootstrapping as a device meets it: the root payload of the enrollment profile comes
//! first and is all a client needs to verify the served TLS chain for the public host name
//! (checked with rustls and with `openssl s_client`, no client certificate), the MDM payload asks
//! for signed messages, and `GET /mdm/trust` serves the same root alone (signed like
//! `/mdm/enroll` when profile signing is on).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use baton_e2e::device::TOPIC;
use baton_e2e::tls::{Connection, client_config, handshake, s_client};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::plist::Value;
use baton_proto::{Limits, Profile};
use baton_server::enrollment::EnrollmentSettings;
use http::StatusCode;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::{X509, X509PurposeId};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// The host name devices are given (not resolvable: connections go to 127.0.0.1 with it as SNI).
const PUBLIC_HOST: &str = "mdm.baton.test";

fn options(sign_profile: bool) -> ServerOptions {
    ServerOptions {
        public_host: Some(PUBLIC_HOST.to_owned()),
        enrollment: EnrollmentSettings {
            push_topic: Some(TOPIC.to_owned()),
            sign_profile,
            ..EnrollmentSettings::default()
        },
        ..ServerOptions::default()
    }
}

async fn profile(server: &TestServer, path: &str) -> (Profile, Vec<u8>) {
    let r = server.client.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-apple-aspen-config")
    );
    (
        Profile::parse(&r.body, &Limits::default()).unwrap(),
        r.headers[http::header::CONTENT_DISPOSITION]
            .as_bytes()
            .to_vec(),
    )
}

fn root_der(profile: &Profile) -> Vec<u8> {
    let root = profile
        .payloads
        .iter()
        .find(|p| p.payload_type == "com.apple.security.root")
        .expect("a root payload");
    root.content["PayloadContent"].as_data().unwrap().to_vec()
}

fn position(profile: &Profile, payload_type: &str) -> usize {
    profile
        .payloads
        .iter()
        .position(|p| p.payload_type == payload_type)
        .unwrap_or_else(|| panic!("no {payload_type}"))
}

fn roots(der: &[u8]) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(der.to_vec())).unwrap();
    roots
}

#[tokio::test]
async fn the_enrollment_profiles_root_alone_verifies_the_served_chain_for_the_public_host() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, options(false)).await;
    let addr = server.running().local_addr();
    let (enroll, _) = profile(&server, &server.enroll_path(1).await).await;

    // The root is installed before the SCEP and MDM payloads need the server.
    let root_at = position(&enroll, "com.apple.security.root");
    assert!(root_at < position(&enroll, "com.apple.security.scep"));
    assert!(root_at < position(&enroll, "com.apple.mdm"));
    let mdm = &enroll.payloads[position(&enroll, "com.apple.mdm")].content;
    // Devices sign every message: no TLS client certificate is needed to identify them.
    assert_eq!(mdm["SignMessage"], Value::Boolean(true));
    assert_eq!(
        mdm["ServerURL"].as_string(),
        Some(format!("https://{PUBLIC_HOST}/mdm/connect").as_str())
    );
    let root = root_der(&enroll);

    // rustls (webpki): chain and host name, trusting that root only, no client certificate.
    let stream = handshake(
        addr,
        PUBLIC_HOST,
        client_config(b"http/1.1", Some(roots(&root))),
    )
    .await
    .expect("the served chain verifies against the profile's root for the public host");
    let mut connection = Connection::over(stream, false).await;
    assert_eq!(connection.get("/healthz").await.unwrap(), StatusCode::OK);
    // The check has teeth: another name, or another root, fails.
    let other_name = handshake(
        addr,
        "elsewhere.baton.test",
        client_config(b"http/1.1", Some(roots(&root))),
    )
    .await;
    assert!(other_name.is_err(), "a name the certificate does not carry");
    let other_root = pki.untrusted.cert.to_der().unwrap();
    let other_ca = handshake(
        addr,
        PUBLIC_HOST,
        client_config(b"http/1.1", Some(roots(&other_root))),
    )
    .await;
    assert!(other_ca.is_err(), "a root that did not issue the chain");

    // OpenSSL agrees, with the root as its only CA file.
    let ca_file = server.dir().join("profile-root.pem");
    std::fs::write(&ca_file, X509::from_der(&root).unwrap().to_pem().unwrap()).unwrap();
    let ca_file = ca_file.to_str().unwrap();
    let out = s_client(
        addr,
        PUBLIC_HOST,
        &[
            "-CAfile",
            ca_file,
            "-verify_hostname",
            PUBLIC_HOST,
            "-verify_return_error",
        ],
    )
    .await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(
        addr,
        PUBLIC_HOST,
        &[
            "-CAfile",
            ca_file,
            "-verify_hostname",
            "elsewhere.baton.test",
        ],
    )
    .await;
    assert!(!out.contains("Verify return code: 0 (ok)"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn mdm_trust_serves_the_root_alone_even_before_a_push_certificate() {
    let pki = Pki::generate();
    // No push certificate and no topic: the enrollment profile cannot be built yet.
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    assert_eq!(
        server.client.get(&server.enroll_path(1).await).await.status,
        409
    );
    let (trust, disposition) = profile(&server, "/mdm/trust").await;
    assert_eq!(
        disposition,
        b"attachment; filename=\"trust.mobileconfig\"".to_vec()
    );
    assert_eq!(trust.identifier, "io.baton.trust");
    assert_eq!(trust.payloads.len(), 1);
    assert_eq!(trust.payloads[0].payload_type, "com.apple.security.root");
    let ca = X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap();
    assert_eq!(root_der(&trust), ca.to_der().unwrap());
    server.stop().await;

    // Over plain HTTP (TLS ends at a proxy) there is no root of Baton's to trust.
    let server = TestServer::start(
        &pki,
        ServerOptions {
            tls: false,
            ..ServerOptions::default()
        },
    )
    .await;
    let r = server.client.get("/mdm/trust").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_private_root");
    server.stop().await;
}

#[tokio::test]
async fn mdm_trust_is_signed_like_the_enrollment_profile_and_matches_its_root() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, options(true)).await;
    let ca = X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap();
    let mut store = X509StoreBuilder::new().unwrap();
    store.add_cert(ca.clone()).unwrap();
    // The signer is the TLS leaf (extended key usage serverAuth, not S/MIME): check the chain
    // to the built-in CA whatever the purpose.
    store.set_purpose(X509PurposeId::ANY).unwrap();
    let store = store.build();
    let tls_leaf = server
        .running()
        .tls_certificate()
        .unwrap()
        .identity()
        .cert_chain[0]
        .to_vec();
    let mut contents = Vec::new();
    let enroll = server.enroll_path(1).await;
    for path in ["/mdm/trust", enroll.as_str()] {
        let r = server.client.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let signed = Pkcs7::from_der(&r.body).unwrap();
        let mut content = Vec::new();
        signed
            .verify(
                &Stack::new().unwrap(),
                &store,
                None,
                Some(&mut content),
                Pkcs7Flags::empty(),
            )
            .unwrap_or_else(|e| panic!("{path}: signature does not verify: {e}"));
        let signers = signed
            .signers(&Stack::new().unwrap(), Pkcs7Flags::empty())
            .unwrap();
        assert_eq!(signers.iter().next().unwrap().to_der().unwrap(), tls_leaf);
        contents.push(Profile::parse(&content, &Limits::default()).unwrap());
    }
    assert_eq!(contents[0].identifier, "io.baton.trust");
    assert_eq!(root_der(&contents[0]), ca.to_der().unwrap());
    assert_eq!(root_der(&contents[0]), root_der(&contents[1]));
    server.stop().await;
}

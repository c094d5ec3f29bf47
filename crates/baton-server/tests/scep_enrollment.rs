//! SCEP over real HTTP on 127.0.0.1 with Rust-built client messages: every transport variant,
//! every refusal (each must be a clean SCEP failure or a 400, issue nothing, and leave the
//! router serving), renewal and revocation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use baton_server::enrollment::scep::client::{
    self, CertRepOutcome, ContentCipher, DigestAlgorithm, PkiRequest, PkiRequestParams,
};
use baton_server::enrollment::scep::{FailInfo, MessageType};
use baton_server::enrollment::{
    CaConfig, CertificateAuthority, CertificateRegistry, ChallengePolicy,
    InMemoryCertificateRegistry, InMemoryChallengeStore, ScepConfig, ScepService, ScepState,
    router,
};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const CHALLENGE: &str = "static-Challenge-1";

struct Server {
    addr: SocketAddr,
    ca: Arc<CertificateAuthority>,
    registry: Arc<InMemoryCertificateRegistry>,
    state: ScepState,
}

async fn start() -> Server {
    let ca =
        Arc::new(CertificateAuthority::generate(&CaConfig::default(), SystemTime::now()).unwrap());
    let registry = Arc::new(InMemoryCertificateRegistry::new());
    let challenges = ChallengePolicy::new(Some(CHALLENGE), Arc::new(InMemoryChallengeStore::new()));
    let state = ScepState::new(ScepService::new(
        ca.clone(),
        registry.clone(),
        challenges,
        ScepConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server {
        addr,
        ca,
        registry,
        state,
    }
}

struct HttpReply {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

/// A minimal HTTP/1.1 client (one request per connection).
async fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> HttpReply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nContent-Type: application/x-pki-message\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    HttpReply {
        status,
        content_type,
        body: raw[split + 4..].to_vec(),
    }
}

fn escape(s: &str) -> String {
    s.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    GetBase64,
    GetBase64Url,
    PostBody,
    PostQuery,
}

async fn send(server: &Server, transport: Transport, der: &[u8]) -> HttpReply {
    match transport {
        Transport::GetBase64 => {
            let target = format!(
                "/scep?operation=PKIOperation&message={}",
                escape(&STANDARD.encode(der))
            );
            http(server.addr, "GET", &target, b"").await
        }
        Transport::GetBase64Url => {
            let target = format!(
                "/scep?message={}&operation=PKIOperation",
                URL_SAFE_NO_PAD.encode(der)
            );
            http(server.addr, "GET", &target, b"").await
        }
        Transport::PostBody => http(server.addr, "POST", "/scep?operation=PKIOperation", der).await,
        Transport::PostQuery => {
            let target = format!(
                "/scep?operation=PKIOperation&message={}",
                escape(&STANDARD.encode(der))
            );
            http(server.addr, "POST", &target, b"").await
        }
    }
}

struct Device {
    key: PKey<Private>,
    cert: X509,
}

fn device(bits: u32) -> Device {
    let key = client::generate_rsa_key(bits).unwrap();
    let cert = client::self_signed_certificate(&key, "device").unwrap();
    Device { key, cert }
}

fn pkcs_req(server: &Server, dev: &Device, challenge: Option<&str>) -> PkiRequest {
    let csr = client::certificate_request(
        &dev.key,
        &client::subject_name("iPhone 7").unwrap(),
        challenge,
    )
    .unwrap();
    PkiRequestParams::pkcs_req(&csr, &dev.key, &dev.cert, server.ca.certificate())
        .build()
        .unwrap()
}

async fn enroll(
    server: &Server,
    transport: Transport,
    dev: &Device,
    request: &PkiRequest,
) -> CertRepOutcome {
    let reply = send(server, transport, &request.der).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, "application/x-pki-message");
    client::decode_cert_rep(
        &reply.body,
        request,
        server.ca.certificate(),
        &dev.key,
        &dev.cert,
    )
    .unwrap()
}

fn issued(outcome: CertRepOutcome) -> X509 {
    match outcome {
        CertRepOutcome::Issued(cert) => cert,
        other => panic!("expected a certificate, got {other:?}"),
    }
}

fn failed(outcome: CertRepOutcome) -> FailInfo {
    match outcome {
        CertRepOutcome::Failed(info) => info,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn count(server: &Server) -> usize {
    server.registry.issued_count().unwrap()
}

async fn still_serving(server: &Server) {
    let caps = http(server.addr, "GET", "/scep?operation=GetCACaps", b"").await;
    assert_eq!(caps.status, 200);
}

fn assert_device_certificate(server: &Server, cert: &X509, dev: &Device) {
    assert!(server.ca.issued(cert), "not signed by the CA");
    assert!(cert.public_key().unwrap().public_eq(&dev.key));
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(
        text.contains("CN=iPhone 7") || text.contains("CN = iPhone 7"),
        "{text}"
    );
    // The chain verifies with OpenSSL's own verifier too.
    let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
    store.add_cert(server.ca.certificate().to_owned()).unwrap();
    let store = store.build();
    let chain = openssl::stack::Stack::new().unwrap();
    let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
    assert!(ctx.init(&store, cert, &chain, |c| c.verify_cert()).unwrap());
}

#[tokio::test]
async fn get_ca_caps_and_ca_cert() {
    let server = start().await;
    let caps = http(server.addr, "GET", "/scep?operation=GetCACaps", b"").await;
    assert_eq!(caps.status, 200);
    let text = String::from_utf8(caps.body).unwrap();
    for cap in [
        "POSTPKIOperation",
        "SHA-256",
        "SHA-1",
        "AES",
        "DES3",
        "Renewal",
        "SCEPStandard",
    ] {
        assert!(text.lines().any(|l| l == cap), "missing {cap} in {text}");
    }
    let cert = http(
        server.addr,
        "GET",
        "/scep?message=x&operation=GetCACert",
        b"",
    )
    .await;
    assert_eq!(cert.status, 200);
    assert_eq!(cert.content_type, "application/x-x509-ca-cert");
    assert_eq!(cert.body, server.ca.certificate_der());
    let unknown = http(server.addr, "GET", "/scep?operation=Nope", b"").await;
    assert_eq!(unknown.status, 400);
    let missing = http(server.addr, "GET", "/scep", b"").await;
    assert_eq!(missing.status, 400);
}

#[tokio::test]
async fn pkcs_req_succeeds_over_every_transport() {
    let server = start().await;
    for (i, transport) in [
        Transport::GetBase64,
        Transport::GetBase64Url,
        Transport::PostBody,
        Transport::PostQuery,
    ]
    .into_iter()
    .enumerate()
    {
        let dev = device(2048);
        let request = pkcs_req(&server, &dev, Some(CHALLENGE));
        let cert = issued(enroll(&server, transport, &dev, &request).await);
        assert_device_certificate(&server, &cert, &dev);
        assert_eq!(count(&server), i + 1, "{transport:?}");
    }
}

#[tokio::test]
async fn rsa_4096_request_in_a_long_get_url() {
    let server = start().await;
    let dev = device(4096);
    let request = pkcs_req(&server, &dev, Some(CHALLENGE));
    let encoded = STANDARD.encode(&request.der);
    assert!(encoded.len() > 4000, "URL only {} bytes", encoded.len());
    let cert = issued(enroll(&server, Transport::GetBase64, &dev, &request).await);
    assert_device_certificate(&server, &cert, &dev);
}

#[tokio::test]
async fn sha1_des3_and_sha512_aes256_requests_succeed() {
    let server = start().await;
    for (digest, cipher) in [
        (DigestAlgorithm::Sha1, ContentCipher::DesEde3Cbc),
        (DigestAlgorithm::Sha512, ContentCipher::Aes256Cbc),
    ] {
        let dev = device(2048);
        let csr = client::certificate_request(
            &dev.key,
            &client::subject_name("iPhone 7").unwrap(),
            Some(CHALLENGE),
        )
        .unwrap();
        let request = PkiRequestParams {
            digest,
            cipher,
            ..PkiRequestParams::pkcs_req(&csr, &dev.key, &dev.cert, server.ca.certificate())
        }
        .build()
        .unwrap();
        let cert = issued(enroll(&server, Transport::PostBody, &dev, &request).await);
        assert_device_certificate(&server, &cert, &dev);
    }
}

#[tokio::test]
async fn wrong_or_missing_challenge_is_bad_request() {
    let server = start().await;
    for challenge in [Some("wrong"), None] {
        let dev = device(2048);
        let request = pkcs_req(&server, &dev, challenge);
        let outcome = enroll(&server, Transport::PostBody, &dev, &request).await;
        assert_eq!(failed(outcome), FailInfo::BadRequest);
    }
    assert_eq!(count(&server), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn one_time_challenge_works_once_and_expires() {
    let server = start().await;
    let policy = server.state.service().challenges();
    let secret = policy
        .create_one_time(
            Duration::from_secs(600),
            Some("enrollment-42".into()),
            SystemTime::now(),
        )
        .unwrap();

    let dev = device(2048);
    let request = pkcs_req(&server, &dev, Some(&secret));
    let cert = issued(enroll(&server, Transport::PostBody, &dev, &request).await);
    let record = server
        .registry
        .by_sha256(&openssl::sha::sha256(&cert.to_der().unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(record.enrollment_hint.as_deref(), Some("enrollment-42"));

    let again = device(2048);
    let request = pkcs_req(&server, &again, Some(&secret));
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &again, &request).await),
        FailInfo::BadRequest
    );

    let expired = policy
        .create_one_time(
            Duration::from_secs(60),
            None,
            SystemTime::now() - Duration::from_secs(120),
        )
        .unwrap();
    let late = device(2048);
    let request = pkcs_req(&server, &late, Some(&expired));
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &late, &request).await),
        FailInfo::BadRequest
    );
    assert_eq!(count(&server), 1);
    still_serving(&server).await;
}

#[tokio::test]
async fn garbage_gets_400_and_nothing_is_issued() {
    let server = start().await;
    let dev = device(2048);
    let good = pkcs_req(&server, &dev, Some(CHALLENGE));
    let mut truncated = good.der.clone();
    truncated.truncate(good.der.len() / 2);
    let cases: [(&str, String, Vec<u8>); 7] = [
        (
            "POST",
            "/scep?operation=PKIOperation".into(),
            vec![0x30, 0x03, 0x02, 0x01, 0x00],
        ),
        ("POST", "/scep?operation=PKIOperation".into(), truncated),
        (
            "POST",
            "/scep?operation=PKIOperation".into(),
            b"not base64 !!".to_vec(),
        ),
        ("POST", "/scep?operation=PKIOperation".into(), Vec::new()),
        (
            "GET",
            "/scep?operation=PKIOperation&message=%%%%".into(),
            Vec::new(),
        ),
        (
            "GET",
            format!(
                "/scep?operation=PKIOperation&message={}",
                STANDARD.encode([0u8; 64])
            ),
            Vec::new(),
        ),
        ("GET", "/scep?operation=PKIOperation".into(), Vec::new()),
    ];
    for (method, target, body) in cases {
        let reply = http(server.addr, method, &target, &body).await;
        assert_eq!(reply.status, 400, "{method} {target}");
    }
    assert_eq!(count(&server), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn ec_keys_are_refused_with_bad_alg() {
    let server = start().await;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let ec_key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();

    // An RSA-signed request for an EC key.
    let dev = device(2048);
    let csr = client::certificate_request(
        &ec_key,
        &client::subject_name("ec").unwrap(),
        Some(CHALLENGE),
    )
    .unwrap();
    let request = PkiRequestParams::pkcs_req(&csr, &dev.key, &dev.cert, server.ca.certificate())
        .build()
        .unwrap();
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &dev, &request).await),
        FailInfo::BadAlg
    );

    // A request entirely made with the EC key: the failure reply is signed, not encrypted, so
    // the client can read it even though nothing can be encrypted to it.
    let ec_dev = Device {
        cert: client::self_signed_certificate(&ec_key, "ec").unwrap(),
        key: ec_key,
    };
    let request =
        PkiRequestParams::pkcs_req(&csr, &ec_dev.key, &ec_dev.cert, server.ca.certificate())
            .build()
            .unwrap();
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &ec_dev, &request).await),
        FailInfo::BadAlg
    );

    // Too small an RSA key.
    let small = device(768);
    let request = pkcs_req(&server, &small, Some(CHALLENGE));
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &small, &request).await),
        FailInfo::BadAlg
    );
    assert_eq!(count(&server), 0);
    still_serving(&server).await;
}

#[tokio::test]
async fn tampered_and_foreign_ca_messages_fail_the_message_check() {
    let server = start().await;
    let dev = device(2048);
    let mut request = pkcs_req(&server, &dev, Some(CHALLENGE));
    // Flip a bit in the last byte of the signature.
    let last = request.der.len() - 1;
    request.der[last] ^= 1;
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &dev, &request).await),
        FailInfo::BadMessageCheck
    );

    // Encrypted to another CA: cannot be decrypted.
    let other = CertificateAuthority::generate(&CaConfig::default(), SystemTime::now()).unwrap();
    let csr = client::certificate_request(
        &dev.key,
        &client::subject_name("x").unwrap(),
        Some(CHALLENGE),
    )
    .unwrap();
    let request = PkiRequestParams::pkcs_req(&csr, &dev.key, &dev.cert, other.certificate())
        .build()
        .unwrap();
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &dev, &request).await),
        FailInfo::BadMessageCheck
    );
    assert_eq!(count(&server), 0);
}

#[tokio::test]
async fn unsupported_message_types_fail_with_bad_request() {
    let server = start().await;
    let dev = device(2048);
    let csr = client::certificate_request(
        &dev.key,
        &client::subject_name("x").unwrap(),
        Some(CHALLENGE),
    )
    .unwrap();
    for message_type in [
        MessageType::CertPoll,
        MessageType::GetCert,
        MessageType::GetCrl,
    ] {
        let request = PkiRequestParams {
            message_type,
            ..PkiRequestParams::pkcs_req(&csr, &dev.key, &dev.cert, server.ca.certificate())
        }
        .build()
        .unwrap();
        assert_eq!(
            failed(enroll(&server, Transport::PostBody, &dev, &request).await),
            FailInfo::BadRequest
        );
    }
    assert_eq!(count(&server), 0);
}

#[tokio::test]
async fn renewal_with_an_issued_identity_and_refusals() {
    let server = start().await;
    let dev = device(2048);
    let request = pkcs_req(&server, &dev, Some(CHALLENGE));
    let identity = issued(enroll(&server, Transport::PostBody, &dev, &request).await);

    // Renewal with a new key, signed by the current identity, no challenge.
    let new_key = client::generate_rsa_key(2048).unwrap();
    let csr =
        client::certificate_request(&new_key, &client::subject_name("iPhone 7").unwrap(), None)
            .unwrap();
    let renewal = PkiRequestParams::renewal_req(&csr, &dev.key, &identity, server.ca.certificate())
        .build()
        .unwrap();
    let as_identity = Device {
        key: dev.key.clone(),
        cert: identity.clone(),
    };
    let renewed = issued(enroll(&server, Transport::PostBody, &as_identity, &renewal).await);
    assert!(server.ca.issued(&renewed));
    assert!(renewed.public_key().unwrap().public_eq(&new_key));
    assert_ne!(
        renewed.serial_number().to_bn().unwrap(),
        identity.serial_number().to_bn().unwrap()
    );
    assert_eq!(count(&server), 2);

    // A renewal signed by a self-signed certificate is refused.
    let stranger = device(2048);
    let csr = client::certificate_request(&stranger.key, &client::subject_name("x").unwrap(), None)
        .unwrap();
    let renewal =
        PkiRequestParams::renewal_req(&csr, &stranger.key, &stranger.cert, server.ca.certificate())
            .build()
            .unwrap();
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &stranger, &renewal).await),
        FailInfo::BadCertId
    );

    // After revocation, the old identity can no longer renew.
    let record = server
        .registry
        .by_sha256(&openssl::sha::sha256(&identity.to_der().unwrap()))
        .unwrap()
        .unwrap();
    assert!(
        server
            .registry
            .revoke(record.serial, SystemTime::now())
            .unwrap()
    );
    let csr =
        client::certificate_request(&new_key, &client::subject_name("iPhone 7").unwrap(), None)
            .unwrap();
    let renewal = PkiRequestParams::renewal_req(&csr, &dev.key, &identity, server.ca.certificate())
        .build()
        .unwrap();
    assert_eq!(
        failed(enroll(&server, Transport::PostBody, &as_identity, &renewal).await),
        FailInfo::BadCertId
    );
    assert_eq!(count(&server), 2);
    still_serving(&server).await;
}

#[tokio::test]
async fn mutated_messages_never_panic_and_the_server_keeps_serving() {
    let server = start().await;
    let dev = device(2048);
    let good = pkcs_req(&server, &dev, Some("wrong challenge"));
    let service = server.state.service().clone();
    // Deterministic xorshift so a failure is reproducible.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut answered = 0;
    for round in 0..300 {
        let mut message = good.der.clone();
        for _ in 0..(1 + round % 4) {
            let pos = (next() as usize) % message.len();
            message[pos] ^= (next() as u8) | 1;
        }
        if round % 10 == 0 {
            message.truncate((next() as usize) % message.len());
        }
        if service.pki_operation(&message, SystemTime::now()).is_ok() {
            answered += 1;
        }
    }
    // Some mutations hit unsigned bytes or are refused with a CertRep; none may issue anything
    // here since the challenge is wrong.
    assert!(answered > 0);
    assert_eq!(count(&server), 0);
    still_serving(&server).await;
}

/// Apple's devices stream their CMS (indefinite lengths, chunked content): the same request in
/// the harshest BER form (every constructed element indefinite, the content in 64-byte chunks)
/// gets a certificate, over the body and the GET transports.
#[tokio::test]
async fn ber_signed_data_gets_a_certificate() {
    let server = start().await;
    for transport in [Transport::PostBody, Transport::GetBase64] {
        let dev = device(2048);
        let request = pkcs_req(&server, &dev, Some(CHALLENGE));
        let ber = baton_server::ber::to_indefinite(&request.der, 64).unwrap();
        assert_eq!(&ber[..2], &[0x30, 0x80]);
        let request = PkiRequest {
            der: ber,
            ..request
        };
        let cert = issued(enroll(&server, transport, &dev, &request).await);
        assert_device_certificate(&server, &cert, &dev);
    }
}

/// Builds a PKCSReq whose pkcsPKIEnvelope is `envelope` (any encoding), signed in DER.
fn pkcs_req_with_envelope(dev: &Device, envelope: &[u8]) -> PkiRequest {
    use baton_server::enrollment::cms::SignedDataBuilder;
    use baton_server::enrollment::{der, oid};
    let transaction_id = "ber-envelope-test".to_owned();
    let sender_nonce = [7u8; 16];
    let signer_der = dev.cert.to_der().unwrap();
    let der = SignedDataBuilder::new(DigestAlgorithm::Sha256, Some(envelope))
        .certificate(&signer_der)
        .attribute(
            oid::SCEP_MESSAGE_TYPE,
            &der::printable_string(MessageType::PkcsReq.as_str()),
        )
        .attribute(
            oid::SCEP_TRANSACTION_ID,
            &der::printable_string(&transaction_id),
        )
        .attribute(oid::SCEP_SENDER_NONCE, &der::octet_string(&sender_nonce))
        .sign(&signer_der, &dev.key)
        .unwrap();
    PkiRequest {
        der,
        transaction_id,
        sender_nonce,
    }
}

/// The envelope made by another encoder: `openssl cms -encrypt -stream` writes indefinite-length
/// BER (starts `30 80`), as Apple's encoder does. Today's main answered badMessageCheck
/// ("unsupported DER length encoding"); the DER envelope of the same CSR already worked.
#[tokio::test]
async fn ber_envelope_from_openssl_cms_stream_gets_a_certificate() {
    let server = start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("ca.pem"), server.ca.certificate().to_pem().unwrap()).unwrap();
    for cipher in ["-aes-256-cbc", "-des3"] {
        let dev = device(2048);
        let csr = client::certificate_request(
            &dev.key,
            &client::subject_name("iPhone 7").unwrap(),
            Some(CHALLENGE),
        )
        .unwrap();
        std::fs::write(path("csr.der"), &csr).unwrap();
        let status = std::process::Command::new("openssl")
            .args(["cms", "-encrypt", "-stream", "-binary", "-outform", "DER"])
            .arg(cipher)
            .arg("-in")
            .arg(path("csr.der"))
            .arg("-out")
            .arg(path("envelope.der"))
            .arg(path("ca.pem"))
            .status();
        let Ok(status) = status else {
            assert!(
                std::env::var_os("BATON_REQUIRE_EXTERNAL").is_none(),
                "openssl binary missing"
            );
            eprintln!("openssl binary not available; skipping");
            return;
        };
        assert!(status.success());
        let envelope = std::fs::read(path("envelope.der")).unwrap();
        assert_eq!(&envelope[..2], &[0x30, 0x80], "openssl wrote BER");

        let request = pkcs_req_with_envelope(&dev, &envelope);
        let cert = issued(enroll(&server, Transport::PostBody, &dev, &request).await);
        assert_device_certificate(&server, &cert, &dev);

        // And both layers in BER at once.
        let dev = device(2048);
        let csr = client::certificate_request(
            &dev.key,
            &client::subject_name("iPhone 7").unwrap(),
            Some(CHALLENGE),
        )
        .unwrap();
        std::fs::write(path("csr.der"), &csr).unwrap();
        let status = std::process::Command::new("openssl")
            .args(["cms", "-encrypt", "-stream", "-binary", "-outform", "DER"])
            .arg(cipher)
            .arg("-in")
            .arg(path("csr.der"))
            .arg("-out")
            .arg(path("envelope.der"))
            .arg(path("ca.pem"))
            .status()
            .unwrap();
        assert!(status.success());
        let envelope = std::fs::read(path("envelope.der")).unwrap();
        let request = pkcs_req_with_envelope(&dev, &envelope);
        let ber = baton_server::ber::to_indefinite(&request.der, 512).unwrap();
        let request = PkiRequest {
            der: ber,
            ..request
        };
        let cert = issued(enroll(&server, Transport::PostBody, &dev, &request).await);
        assert_device_certificate(&server, &cert, &dev);
    }
    assert_eq!(count(&server), 4);
}

/// Truncated, over-deep and otherwise broken BER is a clean 400: nothing issued, no panic, the
/// router still serving.
#[tokio::test]
async fn broken_ber_is_a_clean_400() {
    let server = start().await;
    let dev = device(2048);
    let request = pkcs_req(&server, &dev, Some(CHALLENGE));
    let ber = baton_server::ber::to_indefinite(&request.der, 64).unwrap();
    let mut deep = Vec::new();
    for _ in 0..200 {
        deep.extend([0x30, 0x80]);
    }
    for _ in 0..200 {
        deep.extend([0x00, 0x00]);
    }
    let mut missing_end = ber.clone();
    missing_end.truncate(ber.len() - 2);
    let mut wide = vec![0x30, 0x80];
    for _ in 0..30_000 {
        wide.extend([0x05, 0x00]);
    }
    wide.extend([0x00, 0x00]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated in the middle", ber[..ber.len() / 2].to_vec()),
        ("end-of-contents missing", missing_end),
        ("200 levels deep", deep),
        ("30,000 elements", wide),
        (
            "end-of-contents with a length",
            vec![0x30, 0x80, 0x00, 0x05],
        ),
        (
            "primitive with indefinite length",
            vec![0x04, 0x80, 0x00, 0x00],
        ),
    ];
    for (what, body) in cases {
        let reply = http(server.addr, "POST", "/scep?operation=PKIOperation", &body).await;
        assert_eq!(reply.status, 400, "{what}");
    }
    assert_eq!(count(&server), 0);
    still_serving(&server).await;
}

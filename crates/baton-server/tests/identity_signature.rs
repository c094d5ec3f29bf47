//! Mdm-Signature and client-certificate verification with real signatures made by openssl:
//! accepted algorithms, every rejection reason, the certificate cache, and agreement between the
//! fast path and the naive openssl path.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use baton_server::identity::testing::{
    DeviceCertificateSpec, DeviceIdentity, SignOptions, TestCa, TestKeyKind, sign_message,
    sign_message_openssl, sign_message_with,
};
use baton_server::identity::{
    DigestAlgorithm, IdentityConfig, IdentityError, IdentitySource, IdentityVerifier, TrustAnchors,
};
use proptest::prelude::*;

const IDLE_BODY: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Status</key>
	<string>Idle</string>
	<key>UDID</key>
	<string>00008030-000A1C2E0C31802E</string>
</dict>
</plist>
"#;

struct Pki {
    ca: TestCa,
    device: DeviceIdentity,
    other_device: DeviceIdentity,
    ec_device: DeviceIdentity,
    rogue_ca: TestCa,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let ca = TestCa::generate("Baton Test Device CA").unwrap();
        let device = ca
            .issue_device("device-1", &DeviceCertificateSpec::default())
            .unwrap();
        let other_device = ca
            .issue_device("device-2", &DeviceCertificateSpec::default())
            .unwrap();
        let ec_device = ca
            .issue_device(
                "device-ec",
                &DeviceCertificateSpec {
                    key: TestKeyKind::EcP256,
                    ..DeviceCertificateSpec::default()
                },
            )
            .unwrap();
        let rogue_ca = TestCa::generate("Baton Test Device CA").unwrap();
        Pki {
            ca,
            device,
            other_device,
            ec_device,
            rogue_ca,
        }
    })
}

fn verifier_trusting(ca: &TestCa) -> IdentityVerifier {
    IdentityVerifier::new(
        TrustAnchors::new([ca.cert.clone()]).unwrap(),
        IdentityConfig::default(),
    )
}

fn verifier() -> IdentityVerifier {
    verifier_trusting(&pki().ca)
}

fn now() -> SystemTime {
    SystemTime::now()
}

#[test]
fn sha1_and_sha256_rsa_signatures_verify_on_both_paths() {
    let pki = pki();
    let verifier = verifier();
    for digest in [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ] {
        let header = pki.device.sign(IDLE_BODY, digest).unwrap();
        let fast = verifier
            .verify_signature(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert_eq!(fast.cert_sha256, pki.device.cert_sha256().unwrap());
        assert_eq!(fast.common_name.as_deref(), Some("device-1"));
        assert_eq!(fast.subject, "O=Baton Test, CN=device-1");
        assert_eq!(fast.source, IdentitySource::MdmSignature);
        let signed_at = fast.signing_time.expect("signingTime attribute");
        assert!(signed_at <= now() && signed_at + Duration::from_secs(60) > now());

        let naive = verifier
            .verify_naive(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert_eq!(naive.cert_sha256, fast.cert_sha256);
        assert_eq!(naive.subject, fast.subject);
        assert_eq!(naive.not_after, fast.not_after);
    }
}

#[test]
fn signature_made_by_openssl_pkcs7_sign_verifies() {
    let pki = pki();
    let header = sign_message_openssl(IDLE_BODY, &pki.device.cert, &pki.device.key).unwrap();
    let identity = verifier()
        .verify_signature(header.as_bytes(), IDLE_BODY, now())
        .unwrap();
    assert_eq!(identity.cert_sha256, pki.device.cert_sha256().unwrap());
    assert!(identity.signing_time.is_some());
}

/// openssl's command-line tool makes detached signatures the way other tooling does: SHA-1 with
/// the signer named by issuer and serial, and SHA-256 with the signer named by subject key id.
#[test]
fn signatures_made_by_the_openssl_cli_verify() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("cert.pem"), pki.device.cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        path("key.pem"),
        pki.device.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(path("body"), IDLE_BODY).unwrap();
    let verifier = verifier();
    for (digest, extra) in [("sha1", None), ("sha256", Some("-keyid"))] {
        let status = std::process::Command::new("openssl")
            .args(["cms", "-sign", "-binary", "-md", digest, "-outform", "DER"])
            .args(extra)
            .arg("-signer")
            .arg(path("cert.pem"))
            .arg("-inkey")
            .arg(path("key.pem"))
            .arg("-in")
            .arg(path("body"))
            .arg("-out")
            .arg(path("sig.der"))
            .status();
        let Ok(status) = status else {
            eprintln!("openssl binary not available; skipping");
            return;
        };
        assert!(status.success());
        let der = std::fs::read(path("sig.der")).unwrap();
        let identity = verifier
            .verify_signature_der(&der, IDLE_BODY, now())
            .unwrap();
        assert_eq!(identity.cert_sha256, pki.device.cert_sha256().unwrap());
        assert!(matches!(
            verifier.verify_signature_der(&der, b"tampered", now()),
            Err(IdentityError::DigestMismatch)
        ));
    }
}

/// Apple's Security framework streams its CMS: `openssl cms -sign -stream` writes the same kind
/// of indefinite-length BER (starts `30 80`, content in a constructed OCTET STRING). Today's main
/// answered such an Authenticate 400.
#[test]
fn ber_signatures_from_openssl_cms_stream_verify() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    std::fs::write(path("cert.pem"), pki.device.cert.to_pem().unwrap()).unwrap();
    std::fs::write(
        path("key.pem"),
        pki.device.key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    std::fs::write(path("body"), IDLE_BODY).unwrap();
    let verifier = verifier();
    for digest in ["sha1", "sha256"] {
        let status = std::process::Command::new("openssl")
            .args(["cms", "-sign", "-binary", "-stream", "-md", digest])
            .args(["-outform", "DER", "-signer"])
            .arg(path("cert.pem"))
            .arg("-inkey")
            .arg(path("key.pem"))
            .arg("-in")
            .arg(path("body"))
            .arg("-out")
            .arg(path("sig.der"))
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
        let der = std::fs::read(path("sig.der")).unwrap();
        assert_eq!(&der[..2], &[0x30, 0x80], "openssl -stream writes BER");
        let identity = verifier
            .verify_signature_der(&der, IDLE_BODY, now())
            .unwrap();
        assert_eq!(identity.cert_sha256, pki.device.cert_sha256().unwrap());
        // `-stream` embeds the content: accepted only when it is the body itself.
        assert!(matches!(
            verifier.verify_signature_der(&der, b"tampered", now()),
            Err(IdentityError::MalformedCms(_))
        ));
        // The naive openssl path agrees.
        let header = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        verifier
            .verify_naive(header.as_bytes(), IDLE_BODY, now())
            .expect("openssl's own parser accepts the BER signature");
    }
}

/// Every constructed element indefinite, signed attributes included: the signature is checked
/// over the DER of the attributes (RFC 5652 5.4), and the embedded certificates come back with
/// their exact bytes (the binding hash does not change). SHA-1 with the chain, as iOS signs.
#[test]
fn fully_indefinite_signatures_verify_with_the_same_certificate_hash() {
    let pki = pki();
    let inter = pki
        .ca
        .issue_intermediate("Baton Test Intermediate")
        .unwrap();
    let device = inter
        .issue_device("device-ber", &DeviceCertificateSpec::default())
        .unwrap();
    let verifier = verifier();
    let header = sign_message_with(
        IDLE_BODY,
        &device.cert,
        &device.key,
        &device.chain,
        &SignOptions::default(),
    )
    .unwrap();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &header).unwrap();
    let fast = verifier
        .verify_signature_der(&der, IDLE_BODY, now())
        .unwrap();
    for chunk in [1, 7, 4096] {
        let ber = baton_server::ber::to_indefinite(&der, chunk).unwrap();
        let identity = verifier
            .verify_signature_der(&ber, IDLE_BODY, now())
            .unwrap();
        assert_eq!(identity.cert_sha256, fast.cert_sha256);
        assert_eq!(identity.cert_sha256, device.cert_sha256().unwrap());
        assert!(matches!(
            verifier.verify_signature_der(&ber, b"tampered", now()),
            Err(IdentityError::DigestMismatch)
        ));
    }
}

/// Broken BER is a typed error (a 400 at the server), never a panic: every prefix of a BER
/// signature, nesting past the limit, and end-of-contents in the wrong place.
#[test]
fn broken_ber_signatures_are_malformed_cms() {
    let pki = pki();
    let header = sign_message(
        IDLE_BODY,
        &pki.device.cert,
        &pki.device.key,
        DigestAlgorithm::Sha1,
    )
    .unwrap();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &header).unwrap();
    let ber = baton_server::ber::to_indefinite(&der, 16).unwrap();
    let verifier = verifier();
    for end in 0..ber.len() {
        assert!(
            verifier
                .verify_signature_der(&ber[..end], IDLE_BODY, now())
                .is_err()
        );
    }
    let mut deep = Vec::new();
    for _ in 0..100 {
        deep.extend([0x30, 0x80]);
    }
    for _ in 0..100 {
        deep.extend([0x00, 0x00]);
    }
    for input in [
        deep,
        vec![0x30, 0x80, 0x00, 0x01],
        vec![0x04, 0x80, 0x00, 0x00],
    ] {
        assert!(matches!(
            verifier.verify_signature_der(&input, IDLE_BODY, now()),
            Err(IdentityError::MalformedCms(_))
        ));
    }
}

#[test]
fn ecdsa_p256_signatures_verify() {
    let pki = pki();
    let verifier = verifier();
    for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
        let header = pki.ec_device.sign(IDLE_BODY, digest).unwrap();
        let fast = verifier
            .verify_signature(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert_eq!(fast.cert_sha256, pki.ec_device.cert_sha256().unwrap());
        let naive = verifier
            .verify_naive(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert_eq!(naive.cert_sha256, fast.cert_sha256);
    }
}

#[test]
fn signature_without_signed_attributes_verifies() {
    let pki = pki();
    let verifier = verifier();
    for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
        let options = SignOptions {
            digest,
            signed_attributes: false,
            ..SignOptions::default()
        };
        let header =
            sign_message_with(IDLE_BODY, &pki.device.cert, &pki.device.key, &[], &options).unwrap();
        let identity = verifier
            .verify_signature(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert_eq!(identity.signing_time, None);
        verifier
            .verify_naive(header.as_bytes(), IDLE_BODY, now())
            .unwrap();
        assert!(matches!(
            verifier.verify_signature(header.as_bytes(), b"other body", now()),
            Err(IdentityError::BadSignature)
        ));
    }
}

#[test]
fn tampered_body_is_a_digest_mismatch() {
    let pki = pki();
    let verifier = verifier();
    let header = pki.device.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    let mut tampered = IDLE_BODY.to_vec();
    tampered[200] ^= 1;
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), &tampered, now()),
        Err(IdentityError::DigestMismatch)
    ));
    assert!(matches!(
        verifier.verify_naive(header.as_bytes(), &tampered, now()),
        Err(IdentityError::DigestMismatch)
    ));
}

#[test]
fn signature_by_another_key_is_refused() {
    let pki = pki();
    let verifier = verifier();
    // Device 1's certificate, device 2's key.
    let header = sign_message(
        IDLE_BODY,
        &pki.device.cert,
        &pki.other_device.key,
        DigestAlgorithm::Sha1,
    )
    .unwrap();
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), IDLE_BODY, now()),
        Err(IdentityError::BadSignature)
    ));
    assert!(
        verifier
            .verify_naive(header.as_bytes(), IDLE_BODY, now())
            .is_err()
    );
}

#[test]
fn certificate_from_an_untrusted_ca_is_refused() {
    let pki = pki();
    // Same subject name as the trusted CA, different key.
    let rogue_device = pki
        .rogue_ca
        .issue_device("device-1", &DeviceCertificateSpec::default())
        .unwrap();
    let header = rogue_device.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    let verifier = verifier();
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), IDLE_BODY, now()),
        Err(IdentityError::UntrustedCertificate(_))
    ));
    assert!(matches!(
        verifier.verify_naive(header.as_bytes(), IDLE_BODY, now()),
        Err(IdentityError::UntrustedCertificate(_))
    ));
    assert_eq!(
        verifier.cached_certificates(),
        0,
        "untrusted certificates are not cached"
    );
    // The same device is fine for a verifier that trusts the rogue CA.
    verifier_trusting(&pki.rogue_ca)
        .verify_signature(header.as_bytes(), IDLE_BODY, now())
        .unwrap();
}

#[test]
fn expired_and_not_yet_valid_certificates_are_refused() {
    let pki = pki();
    let t = now();
    let day = Duration::from_secs(86_400);
    let expired = pki
        .ca
        .issue_device(
            "expired",
            &DeviceCertificateSpec {
                not_before: t - 10 * day,
                not_after: t - day,
                ..DeviceCertificateSpec::default()
            },
        )
        .unwrap();
    let header = expired.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    let verifier = verifier();
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), IDLE_BODY, t),
        Err(IdentityError::Expired { .. })
    ));
    assert!(matches!(
        verifier.verify_naive(header.as_bytes(), IDLE_BODY, t),
        Err(IdentityError::Expired { .. })
    ));
    // Two days ago the device certificate itself was valid, but its CA was not yet (issued an
    // hour ago): the whole chain's window counts.
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), IDLE_BODY, t - 2 * day),
        Err(IdentityError::NotYetValid { .. })
    ));

    let future = pki
        .ca
        .issue_device(
            "future",
            &DeviceCertificateSpec {
                not_before: t + day,
                not_after: t + 10 * day,
                ..DeviceCertificateSpec::default()
            },
        )
        .unwrap();
    let header = future.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    assert!(matches!(
        verifier.verify_signature(header.as_bytes(), IDLE_BODY, t),
        Err(IdentityError::NotYetValid { .. })
    ));
}

#[test]
fn clock_skew_before_not_before_is_tolerated() {
    let pki = pki();
    let t = now();
    // Issued "two minutes from now" by a CA whose clock runs ahead.
    let fresh = pki
        .ca
        .issue_device(
            "fresh",
            &DeviceCertificateSpec {
                not_before: t + Duration::from_secs(120),
                not_after: t + Duration::from_secs(86_400),
                ..DeviceCertificateSpec::default()
            },
        )
        .unwrap();
    let header = fresh.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    verifier()
        .verify_signature(header.as_bytes(), IDLE_BODY, t)
        .unwrap();

    let strict = IdentityVerifier::new(
        TrustAnchors::new([pki.ca.cert.clone()]).unwrap(),
        IdentityConfig {
            clock_skew: Duration::from_secs(60),
            ..IdentityConfig::default()
        },
    );
    assert!(matches!(
        strict.verify_signature(header.as_bytes(), IDLE_BODY, t),
        Err(IdentityError::NotYetValid { .. })
    ));
    // Three minutes later the strict verifier accepts it too.
    strict
        .verify_signature(header.as_bytes(), IDLE_BODY, t + Duration::from_secs(180))
        .unwrap();
}

#[test]
fn cache_hits_still_check_dates_and_count_once() {
    let pki = pki();
    let verifier = verifier();
    let t = now();
    for i in 0..20 {
        let body = format!("body {i}");
        let header = pki
            .device
            .sign(body.as_bytes(), DigestAlgorithm::Sha1)
            .unwrap();
        verifier
            .verify_signature(header.as_bytes(), body.as_bytes(), t)
            .unwrap();
    }
    assert_eq!(verifier.cached_certificates(), 1);
    let header = pki.device.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    // Two years later the cached certificate has expired.
    assert!(matches!(
        verifier.verify_signature(
            header.as_bytes(),
            IDLE_BODY,
            t + Duration::from_secs(2 * 365 * 86_400)
        ),
        Err(IdentityError::Expired { .. })
    ));
    verifier.clear_cache();
    assert_eq!(verifier.cached_certificates(), 0);
}

#[test]
fn cache_is_bounded() {
    let pki = pki();
    let verifier = IdentityVerifier::new(
        TrustAnchors::new([pki.ca.cert.clone()]).unwrap(),
        IdentityConfig {
            cache_capacity: 1,
            ..IdentityConfig::default()
        },
    );
    for device in [&pki.device, &pki.other_device, &pki.ec_device] {
        let der = device.cert_der().unwrap();
        verifier
            .verify_client_certificate(&der, &[], now())
            .unwrap();
    }
    // One entry per shard at most; three certificates may share a shard or not.
    assert!(verifier.cached_certificates() >= 1 && verifier.cached_certificates() <= 3);
}

#[test]
fn chains_through_an_intermediate() {
    let pki = pki();
    let intermediate = pki.ca.issue_intermediate("Baton Issuing CA").unwrap();
    let device = intermediate
        .issue_device(
            "device-under-intermediate",
            &DeviceCertificateSpec::default(),
        )
        .unwrap();
    assert_eq!(device.chain.len(), 1);
    let header = device.sign(IDLE_BODY, DigestAlgorithm::Sha256).unwrap();
    // Trusting the root: the embedded intermediate completes the chain.
    let identity = verifier()
        .verify_signature(header.as_bytes(), IDLE_BODY, now())
        .unwrap();
    assert_eq!(identity.cert_sha256, device.cert_sha256().unwrap());
    // Trusting only the intermediate works too (partial chains are allowed).
    verifier_trusting(&intermediate)
        .verify_signature(header.as_bytes(), IDLE_BODY, now())
        .unwrap();
    // Without the intermediate in the signature, the root alone cannot build the chain.
    let bare = sign_message(
        IDLE_BODY,
        &device.cert,
        &device.key,
        DigestAlgorithm::Sha256,
    )
    .unwrap();
    assert!(matches!(
        verifier().verify_signature(bare.as_bytes(), IDLE_BODY, now()),
        Err(IdentityError::UntrustedCertificate(_))
    ));
}

#[test]
fn trust_anchors_from_pem() {
    let pki = pki();
    let mut bundle = pki.ca.cert_pem().unwrap();
    bundle.extend(pki.rogue_ca.cert_pem().unwrap());
    let anchors = TrustAnchors::from_pem([bundle.as_slice()]).unwrap();
    assert_eq!(anchors.subjects().len(), 2);
    assert!(matches!(
        TrustAnchors::from_pem([&b"not a pem"[..]]),
        Err(IdentityError::BadCertificate)
    ));
}

#[test]
fn client_certificate_path() {
    let pki = pki();
    let verifier = verifier();
    let der = pki.device.cert_der().unwrap();
    let identity = verifier
        .verify_request(None, Some(&der), IDLE_BODY, now())
        .unwrap();
    assert_eq!(identity.source, IdentitySource::TlsClientCertificate);
    assert_eq!(identity.cert_sha256, pki.device.cert_sha256().unwrap());

    let rogue = pki
        .rogue_ca
        .issue_device("rogue", &DeviceCertificateSpec::default())
        .unwrap();
    assert!(matches!(
        verifier.verify_client_certificate(&rogue.cert_der().unwrap(), &[], now()),
        Err(IdentityError::UntrustedCertificate(_))
    ));
    assert!(matches!(
        verifier.verify_client_certificate(b"garbage", &[], now()),
        Err(IdentityError::BadCertificate)
    ));
    assert!(matches!(
        verifier.verify_request(None, None, IDLE_BODY, now()),
        Err(IdentityError::MissingIdentity)
    ));
    // A signature header wins over the connection's certificate.
    let header = pki
        .other_device
        .sign(IDLE_BODY, DigestAlgorithm::Sha1)
        .unwrap();
    let identity = verifier
        .verify_request(Some(header.as_bytes()), Some(&der), IDLE_BODY, now())
        .unwrap();
    assert_eq!(
        identity.cert_sha256,
        pki.other_device.cert_sha256().unwrap()
    );
}

#[test]
fn bad_headers_are_typed_errors() {
    let verifier = verifier();
    assert!(matches!(
        verifier.verify_signature(b"!!!not base64!!!", IDLE_BODY, now()),
        Err(IdentityError::BadBase64)
    ));
    let huge = vec![b'A'; 40 * 1024];
    assert!(matches!(
        verifier.verify_signature(&huge, IDLE_BODY, now()),
        Err(IdentityError::HeaderTooLarge { .. })
    ));
    assert!(matches!(
        verifier.verify_signature(b"AAAA", IDLE_BODY, now()),
        Err(IdentityError::MalformedCms(_))
    ));
    // Unpadded base64 of a real signature is accepted.
    let header = pki().device.sign(IDLE_BODY, DigestAlgorithm::Sha1).unwrap();
    let unpadded = header.trim_end_matches('=');
    verifier
        .verify_signature(unpadded.as_bytes(), IDLE_BODY, now())
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// For any body, the fast path (warm cache) and openssl's PKCS#7 path agree, both on the
    /// right body and on a different one.
    #[test]
    fn fast_path_agrees_with_naive_path(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        other in proptest::collection::vec(any::<u8>(), 0..64),
        sha1 in any::<bool>(),
    ) {
        static VERIFIER: OnceLock<IdentityVerifier> = OnceLock::new();
        let verifier = VERIFIER.get_or_init(verifier);
        let digest = if sha1 { DigestAlgorithm::Sha1 } else { DigestAlgorithm::Sha256 };
        let header = pki().device.sign(&body, digest).unwrap();
        let fast = verifier.verify_signature(header.as_bytes(), &body, now()).unwrap();
        let naive = verifier.verify_naive(header.as_bytes(), &body, now()).unwrap();
        prop_assert_eq!(fast.cert_sha256, naive.cert_sha256);
        prop_assert_eq!(fast.subject, naive.subject);
        if other != body {
            prop_assert!(verifier.verify_signature(header.as_bytes(), &other, now()).is_err());
            prop_assert!(verifier.verify_naive(header.as_bytes(), &other, now()).is_err());
        }
    }
}

/// Garbled certificates inside `Mdm-Signature` are the device's fault: every single-byte
/// mutation of the embedded certificate is a typed identity error, never `Crypto` (which the
/// server answers 500). Today's main answered 500 to some of these.
#[test]
fn garbled_embedded_certificates_are_never_internal_errors() {
    let pki = pki();
    let header = sign_message(
        IDLE_BODY,
        &pki.device.cert,
        &pki.device.key,
        DigestAlgorithm::Sha1,
    )
    .unwrap();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &header).unwrap();
    let cert_der = pki.device.cert.to_der().unwrap();
    let start = der
        .windows(cert_der.len())
        .position(|w| w == cert_der)
        .expect("the certificate is embedded");
    let mut internal = Vec::new();
    for offset in 0..cert_der.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut mutated = der.clone();
            mutated[start + offset] ^= flip;
            // A fresh verifier each time: a cache hit would skip the certificate path.
            let verifier = verifier();
            if let Err(IdentityError::Crypto(e)) =
                verifier.verify_signature_der(&mutated, IDLE_BODY, now())
            {
                internal.push((offset, flip, e.to_string()));
            }
        }
    }
    assert!(internal.is_empty(), "internal errors: {internal:?}");
}

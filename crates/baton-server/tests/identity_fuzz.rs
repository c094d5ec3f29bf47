//! Fuzz-style robustness: random, truncated, bit-flipped and length-inflated `Mdm-Signature`
//! headers must produce errors (or, for harmless flips, a correct identity), never a panic.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_server::identity::testing::{DeviceCertificateSpec, TestCa};
use baton_server::identity::{DigestAlgorithm, IdentityConfig, IdentityVerifier, TrustAnchors};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BODY: &[u8] = b"<plist><dict><key>Status</key><string>Idle</string></dict></plist>";

fn setup() -> (IdentityVerifier, Vec<u8>, [u8; 32]) {
    let ca = TestCa::generate("Fuzz CA").unwrap();
    let device = ca
        .issue_device("fuzz-device", &DeviceCertificateSpec::default())
        .unwrap();
    let header = device.sign(BODY, DigestAlgorithm::Sha1).unwrap();
    let der = STANDARD.decode(header).unwrap();
    let verifier = IdentityVerifier::new(
        TrustAnchors::new([ca.cert.clone()]).unwrap(),
        IdentityConfig::default(),
    );
    (verifier, der, device.cert_sha256().unwrap())
}

/// Any accepted mutation must still name the real signer.
fn check(verifier: &IdentityVerifier, der: &[u8], signer: [u8; 32]) {
    if let Ok(identity) = verifier.verify_signature_der(der, BODY, SystemTime::now()) {
        assert_eq!(identity.cert_sha256, signer);
    }
}

#[test]
fn random_bytes_never_panic() {
    let (verifier, _, signer) = setup();
    let mut rng = StdRng::seed_from_u64(0x00BA_7000);
    for _ in 0..20_000 {
        let len = rng.random_range(0..512);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && !bytes.is_empty() {
            bytes[0] = 0x30; // look like a SEQUENCE to get further in
        }
        check(&verifier, &bytes, signer);
        let header = STANDARD.encode(&bytes);
        let _ = verifier.verify_signature(header.as_bytes(), BODY, SystemTime::now());
        let _ = verifier.verify_signature(&bytes, BODY, SystemTime::now());
    }
}

#[test]
fn every_truncation_is_refused() {
    let (verifier, der, signer) = setup();
    verifier
        .verify_signature_der(&der, BODY, SystemTime::now())
        .unwrap();
    for len in 0..der.len() {
        assert!(
            verifier
                .verify_signature_der(&der[..len], BODY, SystemTime::now())
                .is_err(),
            "truncated to {len}"
        );
    }
    check(&verifier, &der, signer);
}

#[test]
fn single_bit_flips_never_panic() {
    let (verifier, der, signer) = setup();
    for index in 0..der.len() {
        for bit in [0x01u8, 0x80] {
            let mut mutated = der.clone();
            mutated[index] ^= bit;
            check(&verifier, &mutated, signer);
        }
    }
}

#[test]
fn inflated_lengths_and_random_splices_never_panic() {
    let (verifier, der, signer) = setup();
    let mut rng = StdRng::seed_from_u64(7);
    for index in 0..der.len() {
        for replacement in [0x80u8, 0x84, 0xFF, 0x00, 0x7F] {
            let mut mutated = der.clone();
            mutated[index] = replacement;
            check(&verifier, &mutated, signer);
        }
        let mut huge = der[..index].to_vec();
        huge.extend([0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xF0]);
        huge.extend(&der[index..]);
        check(&verifier, &huge, signer);
    }
    for _ in 0..5_000 {
        let mut mutated = der.clone();
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..mutated.len());
            mutated[at] = rng.random();
        }
        if rng.random_bool(0.3) {
            let cut = rng.random_range(0..mutated.len());
            mutated.truncate(cut);
        }
        check(&verifier, &mutated, signer);
    }
}

//! The `Mdm-Signature` path (BER conversion, the CMS walk, the certificate path, the signature
//! check) on untrusted bytes: no panic, and never `IdentityError::Crypto` (the one error the server
//! answers 500 to): every failure an input can cause is the device's fault, a 400.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use baton_server::identity::{IdentityConfig, IdentityError, IdentityVerifier, TrustAnchors};
use libfuzzer_sys::fuzz_target;

const CA: &[u8] = include_bytes!("../fixtures/mdm-signature-ca.pem");
const BODY: &[u8] = include_bytes!("../fixtures/mdm-signature-body.plist");

fn verifier() -> &'static IdentityVerifier {
    static VERIFIER: OnceLock<IdentityVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        let anchors = TrustAnchors::from_pem([CA]).expect("fixture CA");
        // A tiny cache so the certificate path keeps running instead of hitting the cache.
        let config = IdentityConfig {
            cache_capacity: 1,
            ..IdentityConfig::default()
        };
        IdentityVerifier::new(anchors, config)
    })
}

fuzz_target!(|data: &[u8]| {
    // Inside the fixture certificates' validity (2026-2126).
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_830_000_000);
    let verifier = verifier();
    verifier.clear_cache();
    match verifier.verify_signature_der(data, BODY, now) {
        Err(IdentityError::Crypto(e)) => panic!("internal error on device input: {e}"),
        Ok(_) | Err(_) => {}
    }
});

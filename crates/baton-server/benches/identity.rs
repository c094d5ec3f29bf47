//! Per-request cost of verifying an `Mdm-Signature`: the fast path (certificate cache hit), the
//! first sight of a certificate (cache miss: openssl parse + chain verification), and the naive
//! openssl PKCS#7 paths as the baseline. A real-sized signature: RSA-2048 device certificate,
//! SHA-1 with signed attributes (as iOS sends), over a ~600 B Idle report, in DER and in the BER
//! layout iOS streams.
//!
//! Run: `cargo bench -p baton-server --bench identity`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_server::identity::testing::{
    DeviceCertificateSpec, SignOptions, SignatureEncoding, TestCa, sign_message_with,
};
use baton_server::identity::{DigestAlgorithm, IdentityConfig, IdentityVerifier, TrustAnchors};
use criterion::{Criterion, criterion_group, criterion_main};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;

fn idle_body() -> Vec<u8> {
    let mut body = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <plist version=\"1.0\">\n<dict>\n\
         \t<key>Status</key>\n\t<string>Idle</string>\n\
         \t<key>UDID</key>\n\t<string>00008030-000A1C2E0C31802E</string>\n\
         \t<key>EnrollmentID</key>\n\t<string>9A3F1C2B-7D4E-4F5A-8B6C-1D2E3F4A5B6C</string>\n",
    );
    while body.len() < 560 {
        body.push_str("\t<!-- padding to a typical report size -->\n");
    }
    body.push_str("</dict>\n</plist>\n");
    body.into_bytes()
}

fn bench_identity(c: &mut Criterion) {
    let ca = TestCa::generate("Bench Device CA").expect("CA");
    let device = ca
        .issue_device("bench-device", &DeviceCertificateSpec::default())
        .expect("device certificate");
    let body = idle_body();
    let header = device
        .sign(&body, DigestAlgorithm::Sha1)
        .expect("signature");
    let der = STANDARD.decode(&header).expect("base64");
    eprintln!(
        "body {} B, Mdm-Signature header {} B ({} B DER)",
        body.len(),
        header.len(),
        der.len()
    );
    let verifier = IdentityVerifier::new(
        TrustAnchors::new([ca.cert.clone()]).expect("anchors"),
        IdentityConfig::default(),
    );
    let now = SystemTime::now();
    verifier
        .verify_signature(header.as_bytes(), &body, now)
        .expect("warm-up verification");

    let mut group = c.benchmark_group("identity");
    group.measurement_time(Duration::from_secs(4));
    group.bench_function("fast_path_cache_hit", |b| {
        b.iter(|| {
            verifier
                .verify_signature(black_box(header.as_bytes()), black_box(&body), now)
                .expect("valid")
        });
    });
    // The same signature as an iPhone streams it (BER, indefinite lengths): one extra pass to
    // convert it to DER before the same fast path.
    let ios_header = sign_message_with(
        &body,
        &device.cert,
        &device.key,
        &device.chain,
        &SignOptions {
            digest: DigestAlgorithm::Sha1,
            encoding: SignatureEncoding::IosBer,
            ..SignOptions::default()
        },
    )
    .expect("iOS-form signature");
    group.bench_function("fast_path_cache_hit_ios_ber", |b| {
        b.iter(|| {
            verifier
                .verify_signature(black_box(ios_header.as_bytes()), black_box(&body), now)
                .expect("valid")
        });
    });
    group.bench_function("fast_path_cache_miss_ios_ber", |b| {
        b.iter(|| {
            verifier.clear_cache();
            verifier
                .verify_signature(black_box(ios_header.as_bytes()), black_box(&body), now)
                .expect("valid")
        });
    });
    group.bench_function("fast_path_cache_miss", |b| {
        b.iter(|| {
            verifier.clear_cache();
            verifier
                .verify_signature(black_box(header.as_bytes()), black_box(&body), now)
                .expect("valid")
        });
    });
    group.bench_function("naive_pkcs7_with_chain_check", |b| {
        b.iter(|| {
            verifier
                .verify_naive(black_box(header.as_bytes()), black_box(&body), now)
                .expect("valid")
        });
    });
    let certs = Stack::new().expect("stack");
    let store = X509StoreBuilder::new().expect("store").build();
    group.bench_function("naive_pkcs7_from_der_verify_noverify", |b| {
        b.iter(|| {
            let der = STANDARD.decode(black_box(&header)).expect("base64");
            let pkcs7 = Pkcs7::from_der(&der).expect("pkcs7");
            pkcs7
                .verify(
                    &certs,
                    &store,
                    Some(black_box(&body)),
                    None,
                    Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY | Pkcs7Flags::NOVERIFY,
                )
                .expect("valid");
        });
    });
    group.finish();
}

criterion_group!(benches, bench_identity);
criterion_main!(benches);

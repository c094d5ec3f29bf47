//! Building the InstallProfile of a certificate item: key generation, issuing from the built-in
//! CA (in-memory registry), PKCS#12 and the profile plist — what a sign-in adds per certificate
//! item while the reconciler holds its lock. P-256 (the default) against RSA-2048.
//!
//! `cargo bench -p baton-server --bench item_certificate`

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use baton_assign::{Channel, Intent, IssuedPer, ItemId};
use baton_proto::EnrollmentId;
use baton_server::enrollment::{CaConfig, CertificateAuthority, InMemoryCertificateRegistry};
use baton_server::reconciler::certificate_issuer::{BuiltInCaIssuer, KeyAlgorithm};
use baton_server::reconciler::command_build::build_command;
use criterion::{Criterion, criterion_group, criterion_main};

fn item_certificates(c: &mut Criterion) {
    let now = SystemTime::now();
    let ca = Arc::new(CertificateAuthority::generate(&CaConfig::default(), now).expect("CA"));
    let device = EnrollmentId::device("00008120-0004D5E6F7A8B9C0").expect("id");
    let intent = Intent::InstallCertificate {
        channel: Channel::Device,
        item: ItemId::new("user-cert").expect("item"),
        identifier: Arc::from("com.baton.item.user-cert"),
        payload_uuid: Arc::from("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"),
        issued_per: IssuedPer::User,
        subject: "CN=alice,O=Example Hospital".into(),
        email: Some("alice@example.com".into()),
        validity_days: 365,
    };
    let mut group = c.benchmark_group("item_certificate");
    for (name, algorithm) in [
        ("p256", KeyAlgorithm::P256),
        ("rsa2048", KeyAlgorithm::Rsa2048),
    ] {
        let issuer = BuiltInCaIssuer::new(
            Arc::clone(&ca),
            Arc::new(InMemoryCertificateRegistry::new()),
        )
        .with_key_algorithm(algorithm);
        group.bench_function(format!("build_command_{name}"), |b| {
            b.iter(|| {
                black_box(
                    build_command(black_box(&intent), Some(&issuer), &device, now).expect("built"),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = item_certificates
}
criterion_main!(benches);

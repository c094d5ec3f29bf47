//! SCEP enrollments per second, server side only.
//!
//! Client keys and PKCSReq messages are built before timing; each iteration is one call of
//! `ScepService::pki_operation` (decode, verify, decrypt, check, issue, record, encrypt and sign
//! the CertRep) on a pre-built request, RSA-2048 client keys, RSA-2048 CA.
//!
//! `cargo bench -p baton-server --bench scep`

use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

use baton_server::enrollment::scep::PkiStatus;
use baton_server::enrollment::scep::client::{self, PkiRequestParams};
use baton_server::enrollment::{
    CaConfig, CertificateAuthority, ChallengePolicy, InMemoryCertificateRegistry,
    InMemoryChallengeStore, ScepConfig, ScepService,
};
use baton_server::identity::testing::CmsEncoding;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CHALLENGE: &str = "bench-challenge";
const REQUESTS: usize = 32;

fn enrollments(c: &mut Criterion) {
    let now = SystemTime::now();
    let ca = Arc::new(CertificateAuthority::generate(&CaConfig::default(), now).expect("CA"));
    let service = ScepService::new(
        ca.clone(),
        Arc::new(InMemoryCertificateRegistry::new()),
        ChallengePolicy::new(Some(CHALLENGE), Arc::new(InMemoryChallengeStore::new())),
        ScepConfig::default(),
    );
    let build = |encoding: CmsEncoding| -> Vec<Vec<u8>> {
        (0..REQUESTS)
            .map(|i| {
                let key = client::generate_rsa_key(2048).expect("key");
                let cert = client::self_signed_certificate(&key, "bench").expect("cert");
                let name = client::subject_name(&format!("bench device {i}")).expect("name");
                let csr = client::certificate_request(&key, &name, Some(CHALLENGE)).expect("csr");
                PkiRequestParams {
                    encoding,
                    ..PkiRequestParams::pkcs_req(&csr, &key, &cert, ca.certificate())
                }
                .build()
                .expect("request")
                .der
            })
            .collect()
    };
    let requests = build(CmsEncoding::Der);
    // As an iPhone streams it: BER SignedData around a BER envelope.
    let ios_requests = build(CmsEncoding::IOS);
    // Sanity: a request really is answered with a certificate.
    let reply = service.pki_operation(&requests[0], now).expect("reply");
    assert_eq!(reply.status, PkiStatus::Success);

    let mut group = c.benchmark_group("scep");
    group.throughput(Throughput::Elements(1));
    let mut next = 0usize;
    group.bench_function("pkcs_req_rsa2048_server_side", |b| {
        b.iter(|| {
            let request = &requests[next % REQUESTS];
            next += 1;
            black_box(
                service
                    .pki_operation(black_box(request), now)
                    .expect("reply"),
            )
        })
    });
    let mut next = 0usize;
    group.bench_function("pkcs_req_rsa2048_server_side_ios_ber", |b| {
        b.iter(|| {
            let request = &ios_requests[next % REQUESTS];
            next += 1;
            black_box(
                service
                    .pki_operation(black_box(request), now)
                    .expect("reply"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, enrollments);
criterion_main!(benches);

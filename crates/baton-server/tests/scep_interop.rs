//! Interoperability with an independent SCEP client: micromdm's `scepclient` (Debian package
//! `scep`). It enrolls against the router served on 127.0.0.1 over plain HTTP (GetCACaps,
//! GetCACert, PKCSReq with a challenge and an RSA-2048 key it generates), then renews with the
//! certificate it got (RenewalReq), and is refused with a wrong challenge.
//!
//! Skipped, with a notice, only when `scepclient` is not installed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::SystemTime;

use baton_server::enrollment::{
    CaConfig, CertificateAuthority, CertificateRegistry, ChallengePolicy,
    InMemoryCertificateRegistry, InMemoryChallengeStore, ScepConfig, ScepService, ScepState,
    router,
};
use openssl::x509::X509;

const CHALLENGE: &str = "interop-Challenge";

fn find_scepclient() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("scepclient"))
        .find(|candidate| candidate.is_file())
}

async fn run_scepclient(
    binary: &Path,
    addr: SocketAddr,
    dir: &Path,
    challenge: Option<&str>,
) -> Output {
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("-server-url")
        .arg(format!("http://{addr}/scep"))
        .arg("-private-key")
        .arg(dir.join("key.pem"))
        .arg("-cn")
        .arg("interop-device")
        .arg("-keySize")
        .arg("2048")
        .arg("-debug");
    if let Some(challenge) = challenge {
        command.arg("-challenge").arg(challenge);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .expect("scepclient timed out")
        .expect("scepclient runs");
    eprintln!(
        "scepclient exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn assert_identity(ca: &CertificateAuthority, cert: &X509) {
    assert!(ca.issued(cert), "certificate does not chain to the CA");
    let mut store = openssl::x509::store::X509StoreBuilder::new().unwrap();
    store.add_cert(ca.certificate().to_owned()).unwrap();
    let store = store.build();
    let chain = openssl::stack::Stack::new().unwrap();
    let mut ctx = openssl::x509::X509StoreContext::new().unwrap();
    assert!(ctx.init(&store, cert, &chain, |c| c.verify_cert()).unwrap());
    let text = String::from_utf8(cert.to_text().unwrap()).unwrap();
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(text.contains("interop-device"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scepclient_enrolls_renews_and_is_refused_with_a_wrong_challenge() {
    let Some(binary) = find_scepclient() else {
        assert!(
            std::env::var_os("BATON_REQUIRE_EXTERNAL").is_none(),
            "scepclient is not installed and BATON_REQUIRE_EXTERNAL is set"
        );
        println!(
            "NOTICE: scepclient not installed (apt-get install scep); SCEP interop test skipped"
        );
        return;
    };
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
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });

    // Enrollment with the challenge.
    let dir = tempfile::tempdir().unwrap();
    let output = run_scepclient(&binary, addr, dir.path(), Some(CHALLENGE)).await;
    assert!(output.status.success(), "scepclient enrollment failed");
    let cert = X509::from_pem(&std::fs::read(dir.path().join("client.pem")).unwrap()).unwrap();
    assert_identity(&ca, &cert);
    let key = openssl::pkey::PKey::private_key_from_pem(
        &std::fs::read(dir.path().join("key.pem")).unwrap(),
    )
    .unwrap();
    assert!(cert.public_key().unwrap().public_eq(&key));
    assert_eq!(registry.issued_count().unwrap(), 1);

    // Renewal: with client.pem present, scepclient sends a RenewalReq signed by it.
    let output = run_scepclient(&binary, addr, dir.path(), None).await;
    assert!(output.status.success(), "scepclient renewal failed");
    let renewed = X509::from_pem(&std::fs::read(dir.path().join("client.pem")).unwrap()).unwrap();
    assert_identity(&ca, &renewed);
    assert_ne!(
        renewed.serial_number().to_bn().unwrap(),
        cert.serial_number().to_bn().unwrap()
    );
    assert_eq!(registry.issued_count().unwrap(), 2);

    // A wrong challenge: a clean SCEP failure that scepclient reports, nothing issued.
    let wrong = tempfile::tempdir().unwrap();
    let output = run_scepclient(&binary, addr, wrong.path(), Some("wrong")).await;
    assert!(!output.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("failInfo"),
        "expected a SCEP failure, got: {printed}"
    );
    assert!(!wrong.path().join("client.pem").exists());
    assert_eq!(registry.issued_count().unwrap(), 2);
}

//! The TLS listener as a client sees it: no CertificateRequest unless `--tls-client-auth
//! optional` (checked with `openssl s_client`, TLS 1.2 and 1.3), devices identified by
//! `Mdm-Signature` alone, the server certificate renewed while the server runs without dropping
//! open HTTP/1.1 and HTTP/2 connections, and the operator's files re-read when they change or on
//! request (SIGHUP in `baton serve`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant, SystemTime};

use baton_e2e::tls::{Connection, s_client, served_serial};
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_server::tls::{ClientAuth, TlsIdentity, TlsSettings};
use http::StatusCode;

const UDID: &str = "00008030-001A2B3C4D5E802E";

/// Waits until a new connection to `server` is served a certificate other than `old`.
async fn wait_for_new_serial(server: &TestServer, old: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let serial = served_serial(server.running().local_addr()).await;
        if serial != old {
            return serial;
        }
        assert!(Instant::now() < deadline, "still serving {old} after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn served_now(server: &TestServer) -> String {
    server
        .running()
        .tls_certificate()
        .unwrap()
        .serial_hex()
        .to_owned()
}

fn expiry_seconds(server: &TestServer) -> i64 {
    let text = server.running().services().metrics.render();
    let line = text
        .lines()
        .find(|l| l.starts_with("baton_tls_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("no TLS expiry metric in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn by_default_no_certificate_request_is_sent_and_devices_sign_their_messages() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    let addr = server.running().local_addr();
    for version in ["-tls1_3", "-tls1_2"] {
        let out = s_client(addr, "localhost", &[version]).await;
        assert!(out.contains("Server certificate"), "{version}: {out}");
        assert!(
            !out.contains("CertificateRequest"),
            "{version}: the server asked for a client certificate:\n{out}"
        );
    }
    // No TLS client certificate: the device is known by its Mdm-Signature.
    let device = pki.device(UDID);
    server.enroll(&device).await;
    let r = server.connect(&device, device.idle()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.stop().await;
}

#[tokio::test]
async fn optional_client_auth_sends_a_certificate_request_naming_the_device_cas() {
    let pki = Pki::generate();
    let mut options = ServerOptions::default();
    options.tls_settings.client_auth = ClientAuth::Optional;
    let server = TestServer::start(&pki, options).await;
    let addr = server.running().local_addr();
    for version in ["-tls1_3", "-tls1_2"] {
        let out = s_client(addr, "localhost", &[version]).await;
        assert!(out.contains("CertificateRequest"), "{version}: {out}");
        assert!(
            out.contains("Acceptable client certificate CA names"),
            "{version}: {out}"
        );
        assert!(out.contains("Baton Device CA"), "{version}: {out}");
        assert!(out.contains("Baton E2E Device CA"), "{version}: {out}");
        // Optional: the handshake completes without one.
        assert!(out.contains("Server certificate"), "{version}: {out}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_certificate_is_renewed_while_running_and_open_connections_carry_on() {
    let pki = Pki::generate();
    let options = ServerOptions {
        tls_settings: TlsSettings {
            // Renewal is due once less than 2 s are left, i.e. about 4 s after each issue.
            certificate_validity: Duration::from_secs(6),
            check_every: Duration::from_millis(200),
            ..TlsSettings::default()
        },
        ..ServerOptions::default()
    };
    let server = TestServer::start(&pki, options).await;
    let addr = server.running().local_addr();
    let first = served_now(&server);
    assert_eq!(served_serial(addr).await, first);

    let mut keep_alive = Connection::open(addr, false).await;
    let mut http2 = Connection::open(addr, true).await;
    for connection in [&mut keep_alive, &mut http2] {
        assert_eq!(connection.serial, first);
        assert_eq!(connection.get("/healthz").await.unwrap(), StatusCode::OK);
    }

    let renewed = wait_for_new_serial(&server, &first).await;
    assert_eq!(renewed, served_now(&server));
    // Connections opened before the swap keep working, on the certificate they negotiated.
    for connection in [&mut keep_alive, &mut http2] {
        assert_eq!(connection.get("/healthz").await.unwrap(), StatusCode::OK);
        assert_eq!(connection.get("/metrics").await.unwrap(), StatusCode::OK);
        assert_eq!(connection.serial, first);
    }
    // The renewed certificate is on disk for the next start, and issued by the built-in CA.
    let on_disk = TlsIdentity::from_pem_files(
        &server.data_dir().join("tls").join("server.crt"),
        &server.data_dir().join("tls").join("server.key"),
    )
    .unwrap();
    let ca = openssl::x509::X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap();
    let leaf = on_disk.leaf().unwrap();
    assert!(
        leaf.verify(&ca.public_key().unwrap()).unwrap(),
        "signed by the built-in CA"
    );
    assert!(expiry_seconds(&server) <= 6);
    server.stop().await;
}

#[tokio::test]
async fn operator_files_are_reloaded_when_they_change_and_on_request() {
    let pki = Pki::generate();
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("tls").join("server.crt");
    let key = files.path().join("tls").join("server.key");
    let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()];
    let day = Duration::from_secs(86_400);
    let install = |days: u32| {
        let identity =
            TlsIdentity::generate_self_signed(files.path(), &hosts, day * days, SystemTime::now())
                .unwrap();
        baton_e2e::tls::serial_hex(identity.cert_chain[0].as_ref())
    };
    let first = install(10);
    let options = ServerOptions {
        tls_files: Some((cert.clone(), key.clone())),
        tls_settings: TlsSettings {
            check_every: Duration::from_secs(3600),
            ..TlsSettings::default()
        },
        ..ServerOptions::default()
    };
    let mut server = TestServer::start(&pki, options).await;
    assert_eq!(served_serial(server.running().local_addr()).await, first);
    // Ten days left: in the warning zone, and visible to monitoring.
    let left = expiry_seconds(&server);
    assert!((9 * 86_400..=10 * 86_400).contains(&left), "{left}");

    // The operator replaces the files and sends SIGHUP.
    let second = install(90);
    server.running().reload_tls();
    assert_eq!(wait_for_new_serial(&server, &first).await, second);
    assert!(expiry_seconds(&server) > 89 * 86_400);

    // A broken file is refused; the server keeps serving the last good certificate.
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    server.running().reload_tls();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_serial(server.running().local_addr()).await, second);
    assert_eq!(served_now(&server), second);

    // Without a signal, the periodic check notices a change on disk.
    let third = install(90);
    server.stop_running().await;
    server.config_mut().tls.check_every = Duration::from_millis(200);
    server.start_again().await;
    assert_eq!(served_serial(server.running().local_addr()).await, third);
    let fourth = install(90);
    assert_eq!(wait_for_new_serial(&server, &third).await, fourth);
    server.stop().await;
}

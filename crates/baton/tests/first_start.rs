//! The README's quick start and an operator's first day: `baton serve` on an empty data
//! directory says what is missing before a device can enroll and prints the commands that fix
//! it. Following only those commands (with a stand-in for Apple's push certificate portal),
//! a simulated iPhone (baton-sim) enrolls with the printed URL.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use baton_sim::{ServerTrust, SimDevice, SimOptions, Transport};
use common::{Serve, free_port, line_after, line_with, run_printed, serve_args};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509Builder, X509NameBuilder, X509Req};

const TOPIC: &str = "com.apple.mgmt.External.0f1e2d3c-first-day";

/// A certificate for `subject` with `public` key, signed by `issuer` (self-signed when none).
fn certificate(
    subject: &[(Nid, &str)],
    public: &PKey<openssl::pkey::Public>,
    issuer: Option<(&X509, &PKey<Private>)>,
    signer: &PKey<Private>,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    for (nid, value) in subject {
        name.append_entry_by_nid(*nid, value).unwrap();
    }
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((ca, _)) => b.set_issuer_name(ca.subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(public).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn rsa() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn public(key: &PKey<Private>) -> PKey<openssl::pkey::Public> {
    PKey::public_key_from_pem(&key.public_key_to_pem().unwrap()).unwrap()
}

/// What Apple's portal does with `push-request.b64`: checks the vendor's signature over the
/// CSR, then issues a push certificate for the CSR's key whose UID is the topic.
fn apple_portal(request_b64: &str) -> X509 {
    let plist: plist::Dictionary =
        plist::from_bytes(&B64.decode(request_b64.trim()).expect("base64")).expect("plist");
    let text = |k: &str| plist[k].as_string().unwrap_or_else(|| panic!("{k}"));
    let csr_der = B64.decode(text("PushCertRequestCSR")).unwrap();
    let chain = X509::stack_from_pem(text("PushCertCertificateChain").as_bytes()).unwrap();
    let vendor_key = chain[0].public_key().unwrap();
    let mut verifier = openssl::sign::Verifier::new(MessageDigest::sha256(), &vendor_key).unwrap();
    verifier.update(&csr_der).unwrap();
    let signature = B64.decode(text("PushCertSignature")).unwrap();
    assert!(verifier.verify(&signature).unwrap(), "vendor signature");
    let csr = X509Req::from_der(&csr_der).unwrap();
    let csr_key = csr.public_key().unwrap();
    assert!(csr.verify(&csr_key).unwrap());
    let apple_key = rsa();
    let apple = certificate(
        &[(
            Nid::COMMONNAME,
            "Apple Application Integration 2 CA (stand-in)",
        )],
        &public(&apple_key),
        None,
        &apple_key,
    );
    certificate(
        &[
            (Nid::USERID, TOPIC),
            (Nid::COMMONNAME, &format!("APSP:{TOPIC}")),
        ],
        &csr_key,
        Some((&apple, &apple_key)),
        &apple_key,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_commands_take_an_empty_directory_to_an_enrolled_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let (server, banner) = Serve::start(&data, &serve_args(&data, port));
    let key = line_after(&banner, "Admin API key").expect("the API key is printed");
    // The banner says what is missing and how to fix it.
    assert!(
        line_with(&banner, "MISSING push certificate").is_some(),
        "{banner:#?}"
    );
    let url = line_after(&banner, "enroll a device: open this URL")
        .unwrap_or_else(|| panic!("no enrollment URL in the banner: {banner:#?}"));
    assert!(
        line_with(&banner, "works once the push certificate is uploaded").is_some(),
        "{banner:#?}"
    );
    let csr_command = line_with(&banner, "baton push-cert csr").expect("csr command");
    let upload_command = line_with(&banner, "baton push-cert upload").expect("upload command");

    // Without the push certificate the device is told why it cannot enroll.
    let transport = Transport::new(&ServerTrust::AcceptAny).expect("transport");
    let refused =
        SimDevice::enroll_from_profile_url(&url, SimOptions::default(), transport.clone())
            .await
            .map(|_| ())
            .expect_err("no enrollment without a push certificate")
            .to_string();
    assert!(
        refused.contains("409") && refused.contains("baton push-cert"),
        "{refused}"
    );

    // The operator's MDM vendor certificate, as the printed command names it.
    let work = dir.path().join("operator");
    std::fs::create_dir_all(&work).unwrap();
    let vendor_key = rsa();
    let vendor = certificate(
        &[(Nid::COMMONNAME, "MDM Vendor: Example Corp")],
        &public(&vendor_key),
        None,
        &vendor_key,
    );
    std::fs::write(work.join("vendor.pem"), vendor.to_pem().unwrap()).unwrap();
    std::fs::write(
        work.join("vendor.key"),
        vendor_key.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let out = run_printed(&csr_command, &work, &[]);
    assert!(out.status.success(), "{csr_command}: {out:?}");
    let request = std::fs::read_to_string(work.join("push/push-request.b64")).unwrap();
    let push_cert = apple_portal(&request);
    std::fs::write(
        work.join("MDM_Certificate.pem"),
        push_cert.to_pem().unwrap(),
    )
    .unwrap();
    let out = run_printed(&upload_command, &work, &[("BATON_API_KEY", &key)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{upload_command}: {out:?}");
    assert!(stdout.contains(TOPIC), "{stdout}");
    assert!(stdout.contains("days left"), "{stdout}");

    // The printed URL now enrolls the device.
    let device = SimDevice::enroll_from_profile_url(&url, SimOptions::default(), transport.clone())
        .await
        .unwrap_or_else(|e| panic!("enrolling with {url}: {e}\nstderr:\n{}", server.stderr()));
    let authorization = format!("Bearer {key}");
    let reply = transport
        .send(
            http::Method::GET,
            &format!("https://127.0.0.1:{port}/api/v1/devices/{}", device.udid()),
            &[("Authorization", authorization.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .expect("device view");
    assert_eq!(reply.status, 200);
    let view: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(view["enabled"], true, "{view}");
    // And `push-cert show` names the topic the device enrolled with.
    let show = line_with(&banner, "baton device list")
        .expect("CLI line")
        .replace("device list", "push-cert show");
    let out = run_printed(&show, &work, &[("BATON_API_KEY", &key)]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(TOPIC));
    drop(server);

    // A second start: the push certificate is there, no token is left: the banner says so.
    let (_server, banner) = Serve::start(&data, &serve_args(&data, free_port()));
    assert!(
        line_with(&banner, &format!("push certificate: {TOPIC}")).is_some(),
        "{banner:#?}"
    );
    assert!(
        line_with(&banner, "MISSING enrollment token").is_some(),
        "{banner:#?}"
    );
    assert!(
        line_with(&banner, "baton enrollment-token create").is_some(),
        "{banner:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_prints_an_enrollment_url_that_enrolls_one_device() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let port = free_port();
    let mut args = serve_args(&data, port);
    args.extend([
        "--enrollment-push-topic".to_owned(),
        "com.apple.mgmt.External.first-start-test".to_owned(),
    ]);
    let (server, banner) = Serve::start(&data, &args);
    let key = line_after(&banner, "Admin API key").expect("the API key is printed");
    assert!(key.len() >= 20, "{banner:#?}");
    assert!(
        line_with(&banner, "MISSING").is_none(),
        "a topic is configured: {banner:#?}"
    );
    let url = line_after(&banner, "enroll a device: open this URL").unwrap_or_else(|| {
        panic!("no enrollment URL in the banner: {banner:#?}");
    });
    assert!(
        url.starts_with(&format!("https://127.0.0.1:{port}/mdm/enroll?token=")),
        "{url}"
    );

    let transport = Transport::new(&ServerTrust::AcceptAny).expect("transport");
    let device = SimDevice::enroll_from_profile_url(&url, SimOptions::default(), transport.clone())
        .await
        .unwrap_or_else(|e| panic!("enrolling with {url}: {e}\nstderr:\n{}", server.stderr()));
    // Enrolled, and the device names the token it came with.
    let authorization = format!("Bearer {key}");
    let reply = transport
        .send(
            http::Method::GET,
            &format!("https://127.0.0.1:{port}/api/v1/devices/{}", device.udid()),
            &[("Authorization", authorization.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .expect("device view");
    assert_eq!(reply.status, 200);
    let view: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    assert_eq!(view["enabled"], true, "{view}");
    assert_eq!(view["enrollment_token"]["label"], "first device", "{view}");
    // The URL was for one device.
    let again = transport
        .send(http::Method::GET, &url, &[], bytes::Bytes::new())
        .await
        .expect("second download");
    assert_eq!(again.status, 403);
    drop(server);

    // A second start on the same data prints no new URL (and no key), and says how to get one.
    let mut args = serve_args(&data, free_port());
    args.extend([
        "--enrollment-push-topic".to_owned(),
        "com.apple.mgmt.External.first-start-test".to_owned(),
    ]);
    let (_server, banner) = Serve::start(&data, &args);
    assert!(
        line_after(&banner, "enroll a device: open this URL").is_none(),
        "{banner:#?}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains("baton enrollment-token create")),
        "{banner:#?}"
    );
    assert!(
        !banner.iter().any(|l| l.contains("Admin API key")),
        "{banner:#?}"
    );
}

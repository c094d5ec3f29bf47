//! Enrolling test devices the way iPhones do: upload a push certificate, download an enrollment
//! profile, obtain the identity it describes (SCEP with its one-time challenge, or the PKCS#12
//! inside it) and sign with it.

use baton_proto::plist::Dictionary;
use baton_proto::{Limits, Profile};
use baton_server::enrollment::scep::client::{
    CertRepOutcome, PkiRequestParams, certificate_request, decode_cert_rep, generate_rsa_key,
    self_signed_certificate,
};
use baton_server::identity::testing::DeviceIdentity;
use http::Method;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::x509::{X509, X509Name};

use crate::device::TestDevice;
use crate::server::TestServer;

/// Uploads a test push certificate through the admin API; returns its topic.
pub async fn upload_push_certificate(server: &TestServer) -> String {
    let pki = baton_apns::testing::TestPki::generate().unwrap();
    let r = server
        .api(
            Method::PUT,
            "/api/v1/push-certificate",
            Some(serde_json::json!({
                "cert_pem": String::from_utf8(pki.push_cert_pem.clone()).unwrap(),
                "key_pem": String::from_utf8(pki.push_key_pem.clone()).unwrap(),
            })),
        )
        .await;
    assert!(
        r.status.is_success(),
        "push certificate upload: {}",
        r.text()
    );
    pki.topic.as_str().to_owned()
}

/// Downloads the enrollment profile at `path` (200 expected).
pub async fn fetch_profile(server: &TestServer, path: &str) -> Profile {
    let r = server.client.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.content_type.as_deref(),
        Some("application/x-apple-aspen-config")
    );
    Profile::parse(&r.body, &Limits::default()).unwrap()
}

/// The content of the profile's payload of this type.
pub fn payload<'a>(profile: &'a Profile, payload_type: &str) -> &'a Dictionary {
    &profile
        .payloads
        .iter()
        .find(|p| p.payload_type == payload_type)
        .unwrap_or_else(|| panic!("no {payload_type} payload"))
        .content
}

/// Path and query of a URL (`https://host:port/x?y` -> `/x?y`).
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    rest[rest.find('/').unwrap()..].to_owned()
}

/// What the SCEP payload tells the device.
#[allow(missing_debug_implementations)]
pub struct ScepInstructions {
    /// Path of the SCEP URL.
    pub path: String,
    /// The challenge.
    pub challenge: String,
    /// The subject to request.
    pub subject: X509Name,
}

/// The SCEP payload of `profile`.
pub fn scep_instructions(profile: &Profile) -> ScepInstructions {
    let scep = payload(profile, "com.apple.security.scep")["PayloadContent"]
        .as_dictionary()
        .unwrap();
    assert_eq!(scep["Keysize"].as_signed_integer(), Some(2048));
    assert_eq!(scep["Key Usage"].as_signed_integer(), Some(5));
    let mut subject = X509Name::builder().unwrap();
    for rdn in scep["Subject"].as_array().unwrap() {
        let pair = rdn.as_array().unwrap()[0].as_array().unwrap();
        subject
            .append_entry_by_text(pair[0].as_string().unwrap(), pair[1].as_string().unwrap())
            .unwrap();
    }
    ScepInstructions {
        path: path_of(scep["URL"].as_string().unwrap()),
        challenge: scep["Challenge"].as_string().unwrap().to_owned(),
        subject: subject.build(),
    }
}

/// The built-in CA's certificate.
pub fn ca_certificate(server: &TestServer) -> X509 {
    X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap()
}

/// Runs a PKCSReq like iOS does (RSA-2048, self-signed signer) and returns the outcome and key.
pub async fn scep_enroll(
    server: &TestServer,
    scep: &ScepInstructions,
) -> (CertRepOutcome, PKey<Private>) {
    let ca = ca_certificate(server);
    let key = generate_rsa_key(2048).unwrap();
    let signer = self_signed_certificate(&key, "iPhone enrolling").unwrap();
    let csr = certificate_request(&key, &scep.subject, Some(&scep.challenge)).unwrap();
    let request = PkiRequestParams::pkcs_req(&csr, &key, &signer, &ca)
        .build()
        .unwrap();
    let reply = server
        .client
        .send(
            Method::POST,
            &format!("{}?operation=PKIOperation", scep.path),
            &[("Content-Type", "application/x-pki-message".to_owned())],
            request.der.clone(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let outcome = decode_cert_rep(&reply.body, &request, &ca, &key, &signer).unwrap();
    (outcome, key)
}

/// A device identity from a SCEP enrollment that must succeed.
pub async fn scep_identity(server: &TestServer, scep: &ScepInstructions) -> DeviceIdentity {
    match scep_enroll(server, scep).await {
        (CertRepOutcome::Issued(cert), key) => DeviceIdentity {
            cert,
            key,
            chain: Vec::new(),
        },
        (other, _) => panic!("SCEP did not issue: {other:?}"),
    }
}

/// The identity in a PKCS#12 enrollment profile.
pub fn pkcs12_identity(profile: &Profile) -> DeviceIdentity {
    let p12 = payload(profile, "com.apple.security.pkcs12");
    let password = p12["Password"].as_string().unwrap();
    let parsed = Pkcs12::from_der(p12["PayloadContent"].as_data().unwrap())
        .unwrap()
        .parse2(password)
        .unwrap();
    DeviceIdentity {
        cert: parsed.cert.unwrap(),
        key: parsed.pkey.unwrap(),
        chain: Vec::new(),
    }
}

/// Downloads the SCEP enrollment profile at `path` and enrolls by SCEP: the identity a device
/// installing it would get.
pub async fn identity_from_profile(server: &TestServer, path: &str) -> DeviceIdentity {
    let profile = fetch_profile(server, path).await;
    scep_identity(server, &scep_instructions(&profile)).await
}

/// A device `udid` signing with `identity`.
pub fn device(udid: &str, identity: DeviceIdentity) -> TestDevice {
    TestDevice {
        udid: udid.to_owned(),
        identity,
    }
}

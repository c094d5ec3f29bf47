//! A baton-sim device against the real server over TLS: Authenticate, TokenUpdate, then
//! ProfileList / InstallProfile (a web clip) / RemoveProfile queued through the admin API and
//! processed by the simulator, results checked through the API. Also the refusals: a malformed
//! profile and a RemoveProfile of a profile that is not installed come back as Error with an
//! iOS ErrorChain. And enrollment through the served profile's SCEP payload, with the PKCSReq
//! and every `Mdm-Signature` in the BER form iOS streams (the simulator's default) or in DER.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_e2e::{Pki, ServerOptions, TestServer};
use baton_proto::{Profile, Status, WebClipPayload};
use baton_server::identity::testing::DeviceCertificateSpec;
use baton_sim::{
    IdentitySource, MessageEncoding, ServerEndpoints, ServerTrust, SignatureDigest, SimDevice,
    SimOptions, Transport, read_enrollment_profile,
};
use http::Method;

const UDID: &str = "00008101-000A1B2C3D4E5F60";

fn web_clip_profile(url: &str) -> Vec<u8> {
    Profile::new("com.example.signin", "5E1F0C2A-1111-4C3B-9D2E-0A1B2C3D4E5F")
        .with_display_name("Sign in")
        .with_payload(WebClipPayload::new(url, "Sign in").into_payload(
            "com.example.signin.clip",
            "5E1F0C2A-2222-4C3B-9D2E-0A1B2C3D4E5F",
        ))
        .to_xml()
        .unwrap()
}

/// Uploads a test push certificate through the admin API (the enrollment profile needs its
/// topic); returns the topic.
async fn upload_push_certificate(server: &TestServer) -> String {
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
    assert!(r.status.is_success(), "push certificate: {}", r.text());
    pki.topic.as_str().to_owned()
}

async fn command_view(server: &TestServer, uuid: &str) -> serde_json::Value {
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{UDID}/commands/{uuid}"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_device_enrolls_and_processes_profile_commands() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    let identity = pki
        .trusted
        .issue_device(UDID, &DeviceCertificateSpec::default())
        .unwrap();
    let options = SimOptions {
        digest: SignatureDigest::Sha1,
        ..SimOptions::default()
    };
    let mut device = SimDevice::with_udid(
        UDID,
        ServerEndpoints::baton(&server.running().local_url()),
        identity.into(),
        options,
        Transport::new(&ServerTrust::AcceptAny).unwrap(),
    )
    .unwrap();

    device.checkin_authenticate().await.unwrap();
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["enabled"], false);
    assert_eq!(view["model"], "iPhone15,2");
    device.token_update().await.unwrap();
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["enabled"], true);
    assert_eq!(view["push_token_present"], true);
    // iOS's Authenticate has no DeviceName or ModelName: unknown until the device answers.
    assert_eq!(view["device_name"], serde_json::Value::Null, "{view}");
    assert_eq!(view["model_name"], serde_json::Value::Null, "{view}");
    assert_eq!(view["device_information"], "pending", "{view}");

    // Baton's DeviceInformation query is all the queue holds (nothing is planned for an
    // iPhone with no catalog).
    let first = device.connect_until_idle().await.unwrap();
    let types: Vec<&str> = first.iter().map(|c| c.request_type.as_str()).collect();
    assert_eq!(types, ["DeviceInformation"], "{first:?}");
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
        .await
        .json();
    assert_eq!(view["device_information"], "answered", "{view}");
    assert_eq!(
        view["device_name"],
        device.record().facts.device_name.as_str(),
        "{view}"
    );
    assert_eq!(view["model_name"], "iPhone", "{view}");
    assert_eq!(view["supervised"], false, "{view}");
    assert_eq!(view["shared_ipad"], false, "{view}");
    // Nothing queued: one Idle, empty answer.
    assert!(device.connect_until_idle().await.unwrap().is_empty());

    // ProfileList, InstallProfile and a malformed InstallProfile in one session.
    let list = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    let clip_url = "https://portal.example/signin?device=abc123";
    let install = server
        .queue(
            UDID,
            serde_json::json!({
                "request_type": "InstallProfile",
                "payload": STANDARD.encode(web_clip_profile(clip_url)),
            }),
        )
        .await;
    let malformed = server
        .queue(
            UDID,
            serde_json::json!({
                "request_type": "InstallProfile",
                "payload": STANDARD.encode(b"<plist><dict><key>PayloadType</key>"),
            }),
        )
        .await;
    let processed = device.connect_until_idle().await.unwrap();
    let statuses: Vec<(String, Status)> = processed
        .iter()
        .map(|p| (p.uuid.clone(), p.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (list.clone(), Status::Acknowledged),
            (install.clone(), Status::Acknowledged),
            (malformed.clone(), Status::Error),
        ]
    );
    assert_eq!(command_view(&server, &list).await["status"], "acknowledged");
    assert_eq!(
        command_view(&server, &install).await["status"],
        "acknowledged"
    );
    let refused = command_view(&server, &malformed).await;
    assert_eq!(refused["status"], "error");
    let domains: Vec<&str> = refused["error_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains,
        vec!["MCInstallationErrorDomain", "MCProfileErrorDomain"]
    );

    // The web clip is on the device, and a tap opens its URL.
    assert_eq!(device.profiles().len(), 1);
    assert_eq!(device.web_clips().len(), 1);
    assert_eq!(
        device.tap_web_clip(Some("Sign in")).as_deref(),
        Some(clip_url)
    );

    // ProfileList now reports the profile (read back through the API's stored report).
    let list = server
        .queue(UDID, serde_json::json!({"request_type": "ProfileList"}))
        .await;
    device.connect_until_idle().await.unwrap();
    let view = command_view(&server, &list).await;
    assert!(
        view["response"]
            .as_str()
            .unwrap()
            .contains("com.example.signin"),
        "{view}"
    );

    // RemoveProfile: removed; a second one is refused with MDMErrorDomain.
    let remove = server
        .queue(
            UDID,
            serde_json::json!({"request_type": "RemoveProfile", "identifier": "com.example.signin"}),
        )
        .await;
    let again = server
        .queue(
            UDID,
            serde_json::json!({"request_type": "RemoveProfile", "identifier": "com.example.signin"}),
        )
        .await;
    let processed = device.connect_until_idle().await.unwrap();
    assert_eq!(processed.len(), 2);
    assert_eq!(
        command_view(&server, &remove).await["status"],
        "acknowledged"
    );
    let refused = command_view(&server, &again).await;
    assert_eq!(refused["status"], "error");
    assert_eq!(refused["error_chain"][0]["domain"], "MDMErrorDomain");
    assert!(device.web_clips().is_empty());
    assert_eq!(device.tap_web_clip(None), None);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_ipad_user_channel_gets_its_own_token_and_commands() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    let udid = "00008101-000A1B2C3D4E5F61";
    let identity = pki
        .trusted
        .issue_device(udid, &DeviceCertificateSpec::default())
        .unwrap();
    let options = SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    };
    let mut ipad = SimDevice::with_udid(
        udid,
        ServerEndpoints::baton(&server.running().local_url()),
        identity.into(),
        options,
        Transport::new(&ServerTrust::AcceptAny).unwrap(),
    )
    .unwrap();
    ipad.enroll_checkins().await.unwrap();
    ipad.user_sign_in("alice@example.org").await.unwrap();
    assert_ne!(
        ipad.user_push_token_hex("alice@example.org").unwrap(),
        ipad.push_token_hex()
    );
    let view = server
        .api(Method::GET, &format!("/api/v1/devices/{udid}"), None)
        .await
        .json();
    let channels = view["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2, "{view}");
    let user_id = format!("{udid}:alice@example.org");
    assert!(channels.iter().any(|c| c["id"] == user_id.as_str()));

    // A command on the user channel goes to the user's inventory; UserList on the device.
    server
        .queue(
            &user_id,
            serde_json::json!({
                "request_type": "InstallProfile",
                "payload": STANDARD.encode(web_clip_profile("https://portal.example/out")),
            }),
        )
        .await;
    let users = server
        .queue(udid, serde_json::json!({"request_type": "UserList"}))
        .await;
    let processed = ipad
        .user_connect_until_idle("alice@example.org")
        .await
        .unwrap();
    assert_eq!(processed[0].status, Status::Acknowledged);
    assert!(ipad.web_clips().is_empty());
    assert_eq!(
        ipad.user_inventory("alice@example.org")
            .unwrap()
            .web_clips
            .len(),
        1
    );
    assert_eq!(
        ipad.tap_web_clip(None).as_deref(),
        Some("https://portal.example/out")
    );
    ipad.connect_until_idle().await.unwrap();
    let r = server
        .api(
            Method::GET,
            &format!("/api/v1/devices/{udid}/commands/{users}"),
            None,
        )
        .await
        .json();
    assert_eq!(r["status"], "acknowledged");
    assert!(
        r["response"]
            .as_str()
            .unwrap()
            .contains("alice@example.org")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_device_enrolls_by_scep_in_ios_ber_and_in_der() {
    let pki = Pki::generate();
    let server = TestServer::start(&pki, ServerOptions::default()).await;
    let topic = upload_push_certificate(&server).await;
    let origin = server.running().local_url();
    let builtin_ca =
        openssl::x509::X509::from_pem(server.running().builtin_ca_pem().unwrap()).unwrap();
    let enroll = server.enroll_path(2).await;
    for encoding in [MessageEncoding::default(), MessageEncoding::Der] {
        let transport = Transport::new(&ServerTrust::AcceptAny).unwrap();
        let profile = transport
            .get_ok(&format!("{origin}{enroll}"))
            .await
            .unwrap();
        let settings = read_enrollment_profile(&profile).unwrap();
        // The profile names the public URL; the test server listens on its own port.
        let local = |url: &str| url.replacen("https://127.0.0.1", &origin, 1);
        let IdentitySource::Scep { url, challenge, .. } = &settings.identity else {
            panic!("the served profile enrolls by SCEP");
        };
        let endpoints = ServerEndpoints {
            server_url: local(&settings.endpoints.server_url),
            check_in_url: local(&settings.endpoints.check_in_url),
            topic: settings.endpoints.topic.clone(),
        };
        assert_eq!(endpoints.topic, topic);
        let options = SimOptions {
            encoding,
            ..SimOptions::default()
        };
        // SCEP PKCSReq, Authenticate and TokenUpdate, each in `encoding`.
        let mut device = SimDevice::enroll_with_scep(
            &local(url),
            challenge.clone(),
            endpoints,
            options,
            transport,
        )
        .await
        .unwrap_or_else(|e| panic!("{encoding:?}: {e}"));
        let issued = &device.identity().cert;
        assert!(issued.verify(&builtin_ca.public_key().unwrap()).unwrap());
        let view = server
            .api(
                Method::GET,
                &format!("/api/v1/devices/{}", device.udid()),
                None,
            )
            .await
            .json();
        assert_eq!(view["enabled"], true, "{encoding:?}: {view}");
        let first = device.connect_until_idle().await.unwrap();
        assert_eq!(first.len(), 1, "{first:?}");
        assert_eq!(first[0].request_type, "DeviceInformation");
        assert!(device.connect_until_idle().await.unwrap().is_empty());
    }
    server.stop().await;
}

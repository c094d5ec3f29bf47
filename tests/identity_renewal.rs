//! Identity renewal on a fake clock (issue 26, "renewal that survives"). A device enrolls over
//! real HTTPS with a SCEP identity valid 10 days; then the renewal pass, the device's command
//! channel and its SCEP request run in-process at chosen instants ~8 days later, on the running
//! server's store and services. What the operator sees is read over HTTP: the device view, the
//! renewal list, `/metrics` and the webhook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use baton_e2e::device::TOPIC;
use baton_e2e::{Pki, ServerOptions, TestDevice, TestServer};
use baton_proto::{
    Command, CommandReport, CommandRequest, Enrollment, EnrollmentId, EnrollmentKeys,
    ErrorChainItem, Limits, Profile, Status,
};
use baton_server::command_channel;
use baton_server::config::{ServerConfig, WebhookConfig};
use baton_server::device_identity::DeviceRequest;
use baton_server::enrollment::renewal::{self, RenewalPass};
use baton_server::enrollment::renewal_record::RenewalState;
use baton_server::enrollment::scep::client::{
    CertRepOutcome, PkiRequestParams, certificate_request, decode_cert_rep, generate_rsa_key,
    self_signed_certificate,
};
use baton_server::enrollment::scep::{FailInfo, ScepState};
use baton_server::enrollment::startup::scep_state;
use baton_server::enrollment::{
    CaConfig, CertificateAuthority, EnrollmentProfiles, EnrollmentSettings,
};
use baton_server::identity::testing::DeviceIdentity;
use baton_server::state::AppState;
use http::Method;
use openssl::x509::{X509, X509Name};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const UDID: &str = "00008110-000A1B2C3D4E505E";

/// The running server plus the enrollment pieces the test drives with its own clock.
struct Rig {
    server: TestServer,
    services: AppState,
    scep: ScepState,
    profiles: EnrollmentProfiles,
    ca: X509,
    /// Real time at start; the fake instants are offsets from it.
    start: SystemTime,
}

fn settings() -> EnrollmentSettings {
    EnrollmentSettings {
        push_topic: Some(TOPIC.to_owned()),
        device_validity: 10 * DAY,
        renewal_window: 3 * DAY,
        // The server's own pass runs once at start (nothing expires then) and not again.
        renewal_check_every: DAY,
        ..EnrollmentSettings::default()
    }
}

impl Rig {
    async fn start(options: ServerOptions) -> Self {
        let pki = Pki::generate();
        let start = SystemTime::now();
        let server = TestServer::start(
            &pki,
            ServerOptions {
                enrollment: settings(),
                ..options
            },
        )
        .await;
        let services = Arc::clone(server.running().services());
        let data = server.data_dir();
        let ca = CertificateAuthority::load_or_create(
            &data.join(baton_server::server::CA_DIR),
            &CaConfig::default(),
            start,
        )
        .unwrap();
        let ca_cert = ca.certificate().to_owned();
        let mut config = ServerConfig::new(data);
        config.enrollment = settings();
        let scep = scep_state(Arc::new(ca), &services.store, &config).unwrap();
        let profiles = EnrollmentProfiles::new(
            Arc::clone(&services.store),
            Arc::clone(scep.service()),
            settings(),
            "https://127.0.0.1",
            None,
            None,
        );
        Self {
            server,
            services,
            scep,
            profiles,
            ca: ca_cert,
            start,
        }
    }

    fn at(&self, offset: Duration) -> SystemTime {
        self.start + offset
    }

    /// SCEP with `challenge` at `now`, like iOS installing the profile's SCEP payload.
    fn scep(&self, challenge: &str, now: SystemTime) -> Result<DeviceIdentity, CertRepOutcome> {
        let key = generate_rsa_key(2048).unwrap();
        let signer = self_signed_certificate(&key, "iPhone renewing").unwrap();
        let mut subject = X509Name::builder().unwrap();
        subject.append_entry_by_text("CN", "Baton device").unwrap();
        let csr = certificate_request(&key, &subject.build(), Some(challenge)).unwrap();
        let request = PkiRequestParams::pkcs_req(&csr, &key, &signer, &self.ca)
            .build()
            .unwrap();
        let reply = self
            .scep
            .service()
            .pki_operation(&request.der, now)
            .unwrap();
        match decode_cert_rep(&reply.der, &request, &self.ca, &key, &signer).unwrap() {
            CertRepOutcome::Issued(cert) => Ok(DeviceIdentity {
                cert,
                key,
                chain: Vec::new(),
            }),
            other => Err(other),
        }
    }

    /// A command-channel message from `device` at `now`: (HTTP status, reply body).
    fn connect(&self, device: &TestDevice, body: Vec<u8>, now: SystemTime) -> (u16, Vec<u8>) {
        let request = DeviceRequest {
            signature: Some(Bytes::from(device.sign(&body))),
            peer_certificate: None,
            body: Bytes::from(body),
        };
        match command_channel::handle(&self.services, &request, now) {
            Ok(reply) => (reply.status.as_u16(), reply.body),
            Err(error) => (400, error.to_string().into_bytes()),
        }
    }

    /// The device fetches its next command at `now`; it must be an InstallProfile of a renewal
    /// profile. Returns (CommandUUID, the profile's SCEP challenge).
    fn fetch_renewal(&self, device: &TestDevice, now: SystemTime) -> (String, String) {
        let (status, body) = self.connect(device, device.idle(), now);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let command = Command::decode(&body, &Limits::default()).unwrap();
        let CommandRequest::InstallProfile { payload } = command.request else {
            panic!("expected InstallProfile");
        };
        let profile = Profile::parse(&payload, &Limits::default()).unwrap();
        assert_eq!(profile.identifier, "io.baton.enrollment");
        let scep = &profile
            .payloads
            .iter()
            .find(|p| p.payload_type == "com.apple.security.scep")
            .unwrap()
            .content["PayloadContent"];
        let challenge = scep.as_dictionary().unwrap()["Challenge"]
            .as_string()
            .unwrap()
            .to_owned();
        (command.uuid.as_str().to_owned(), challenge)
    }

    fn pass(&self, now: SystemTime) -> RenewalPass {
        renewal::pass(&self.profiles, &self.services, now).unwrap()
    }

    fn state(&self) -> RenewalState {
        let device = EnrollmentId::device(UDID).unwrap();
        renewal::record_of(self.services.store.as_ref(), &device)
            .unwrap()
            .unwrap()
            .state
    }

    async fn device_view(&self) -> serde_json::Value {
        let r = self
            .server
            .api(Method::GET, &format!("/api/v1/devices/{UDID}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    async fn metrics(&self) -> String {
        self.server.client.get("/metrics").await.text()
    }
}

/// Enrolls the phone over HTTPS: profile, SCEP with its challenge, Authenticate, TokenUpdate.
async fn enroll(rig: &Rig) -> TestDevice {
    let path = rig.server.enroll_path(1).await;
    let r = rig.server.client.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let profile = Profile::parse(&r.body, &Limits::default()).unwrap();
    let scep = &profile
        .payloads
        .iter()
        .find(|p| p.payload_type == "com.apple.security.scep")
        .unwrap()
        .content["PayloadContent"];
    let challenge = scep.as_dictionary().unwrap()["Challenge"]
        .as_string()
        .unwrap();
    let identity = rig.scep(challenge, SystemTime::now()).unwrap();
    let phone = TestDevice {
        udid: UDID.to_owned(),
        identity,
    };
    rig.server.enroll(&phone).await;
    phone
}

fn report_error(uuid: &str) -> Vec<u8> {
    let mut report = CommandReport::new(
        Enrollment::new(EnrollmentKeys::device(UDID.to_owned())).unwrap(),
        Status::Error,
        Some(baton_proto::CommandUuid::new(uuid).unwrap()),
    );
    report.error_chain = Some(vec![ErrorChainItem {
        code: 4001,
        domain: "MCInstallationErrorDomain".into(),
        localized_description: None,
        us_english_description: Some("Profile installation failed.".into()),
    }]);
    report.encode().unwrap()
}

fn renewed(phone: &TestDevice, identity: DeviceIdentity) -> TestDevice {
    TestDevice {
        udid: phone.udid.clone(),
        identity,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_fetched_hours_after_it_was_queued_succeeds() {
    let rig = Rig::start(ServerOptions::default()).await;
    let phone = enroll(&rig).await;

    // Eight days on, the identity expires within the 3-day window: one renewal is queued, and
    // the identity is inside the 7-day warning window.
    let t = rig.at(8 * DAY);
    let pass = rig.pass(t);
    assert_eq!(pass.queued.len(), 1);
    assert_eq!(
        rig.pass(t + Duration::from_secs(60)).queued.len(),
        0,
        "queued once"
    );
    let metrics = rig.metrics().await;
    assert!(
        metrics.contains("baton_device_identities_expiring{within=\"7d\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("baton_identity_renewals{state=\"queued\"} 1"));

    // The phone is locked: NotNow keeps the command queued and is no failure.
    let (uuid, _) = rig.fetch_renewal(&phone, t + HOUR);
    let (status, _) = rig.connect(&phone, phone.report(Status::NotNow, &uuid), t + HOUR);
    assert_eq!(status, 200);
    assert_eq!(rig.state(), RenewalState::Queued);

    // Two hours after queueing it installs the profile: SCEP with its challenge still works.
    let later = t + 2 * HOUR;
    let (again, challenge) = rig.fetch_renewal(&phone, later);
    assert_eq!(again, uuid);
    let identity = rig
        .scep(&challenge, later)
        .expect("the renewal challenge outlives the hour a download's challenge has");
    let (status, _) = rig.connect(&phone, phone.report(Status::Acknowledged, &uuid), later);
    assert_eq!(status, 200);
    assert_eq!(rig.state(), RenewalState::Acknowledged);

    // Its next message is signed with the new identity: accepted, bound, renewal completed.
    let new_serial = identity
        .cert
        .serial_number()
        .to_bn()
        .unwrap()
        .to_dec_str()
        .unwrap()
        .to_string();
    let phone = renewed(&phone, identity);
    let (status, body) = rig.connect(&phone, phone.idle(), later + Duration::from_secs(5));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(rig.state(), RenewalState::Completed);
    let view = rig.device_view().await;
    assert_eq!(view["renewal"]["state"], "completed");
    assert_eq!(view["renewal"]["attempts"], 1);
    assert_eq!(view["identity"]["serial"].to_string(), new_serial);

    // The next pass neither queues nor warns: the new identity is good for 10 days.
    let pass = rig.pass(later + HOUR);
    assert!(pass.queued.is_empty() && pass.gauges.expiring == 0);
    let metrics = rig.metrics().await;
    assert!(metrics.contains("baton_device_identities_expiring{within=\"7d\"} 0"));
    assert!(metrics.contains("baton_identity_renewals{state=\"completed\"} 1"));
    rig.server.stop().await;
}

#[derive(Default)]
struct Hook {
    events: Mutex<Vec<serde_json::Value>>,
}

async fn receive(State(hook): State<Arc<Hook>>, body: Bytes) -> StatusCode {
    hook.events
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).unwrap());
    StatusCode::NO_CONTENT
}

async fn renewal_events(hook: &Hook) -> Vec<serde_json::Value> {
    for _ in 0..500 {
        let found: Vec<_> = hook
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                e["type"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("identity_renewal")
            })
            .cloned()
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no identity_renewal webhook event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_renewal_is_shown_and_retried_after_its_back_off() {
    let hook = Arc::new(Hook::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&hook));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let rig = Rig::start(ServerOptions {
        webhook: Some(WebhookConfig::new(url, None)),
        ..ServerOptions::default()
    })
    .await;
    let phone = enroll(&rig).await;

    let t = rig.at(8 * DAY);
    assert_eq!(rig.pass(t).queued.len(), 1);
    let failed_at = t + Duration::from_secs(600);
    let (first, first_challenge) = rig.fetch_renewal(&phone, failed_at);
    let (status, _) = rig.connect(&phone, report_error(&first), failed_at);
    assert_eq!(status, 200);

    // The operator sees the failure: on the device, in the list of failing renewals, on the
    // webhook.
    let view = rig.device_view().await;
    let renewal = &view["renewal"];
    assert_eq!(renewal["state"], "failed", "{view}");
    assert_eq!(renewal["attempts"], 1);
    assert_eq!(renewal["command_uuid"], first.as_str());
    assert_eq!(
        renewal["last_error"],
        "MCInstallationErrorDomain 4001: Profile installation failed."
    );
    assert!(renewal["next_attempt_at"].is_string());
    assert!(view["identity"]["expires_at"].is_string());
    let r = rig
        .server
        .api(Method::GET, "/api/v1/identity-renewals?state=failed", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let failing = r.json()["renewals"].as_array().unwrap().clone();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["device"], UDID);
    let r = rig
        .server
        .api(Method::GET, "/api/v1/identity-renewals?state=nope", None)
        .await;
    assert_eq!(r.status, 400);
    let events = renewal_events(&hook).await;
    assert_eq!(events[0]["type"], "identity_renewal.failed");
    assert_eq!(events[0]["enrollment_id"], UDID);
    assert_eq!(events[0]["attempts"], 1);

    // Nothing before the back-off (1 h) has passed; then a fresh profile and challenge.
    assert!(
        rig.pass(failed_at + HOUR - Duration::from_secs(60))
            .queued
            .is_empty()
    );
    let retry_at = failed_at + HOUR;
    let pass = rig.pass(retry_at);
    assert_eq!(pass.queued.len(), 1);
    assert_eq!(pass.queued[0].attempt, 2);
    let install_at = retry_at + Duration::from_secs(300);
    let (second, challenge) = rig.fetch_renewal(&phone, install_at);
    assert_ne!(second, first);
    assert_ne!(challenge, first_challenge);
    // The first attempt's challenge was withdrawn with it.
    match rig.scep(&first_challenge, install_at) {
        Err(CertRepOutcome::Failed(FailInfo::BadRequest)) => {}
        other => panic!(
            "the replaced challenge must be refused: {:?}",
            other.is_ok()
        ),
    }
    let identity = rig
        .scep(&challenge, install_at)
        .expect("second attempt issues");
    let (status, _) = rig.connect(
        &phone,
        phone.report(Status::Acknowledged, &second),
        install_at,
    );
    assert_eq!(status, 200);
    let phone = renewed(&phone, identity);
    let (status, _) = rig.connect(&phone, phone.idle(), install_at);
    assert_eq!(status, 200);
    let view = rig.device_view().await;
    assert_eq!(view["renewal"]["state"], "completed");
    assert_eq!(view["renewal"]["attempts"], 2);
    assert_eq!(
        view["renewal"]["last_error"],
        "MCInstallationErrorDomain 4001: Profile installation failed.",
        "the last failure stays visible after completion"
    );
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_renewal_fails_and_an_unrenewed_identity_expires_visibly() {
    let rig = Rig::start(ServerOptions::default()).await;
    let phone = enroll(&rig).await;
    let t = rig.at(8 * DAY);
    assert_eq!(rig.pass(t).queued.len(), 1);

    // The device enrolls again before fetching it: Authenticate clears its queue. The pass
    // notices the command left unanswered and schedules a retry.
    rig.server.enroll(&phone).await;
    let pass = rig.pass(t + Duration::from_secs(60));
    assert_eq!(pass.changes.len(), 1);
    assert_eq!(rig.state(), RenewalState::Failed);
    let view = rig.device_view().await;
    assert_eq!(
        view["renewal"]["last_error"],
        "the renewal command left the queue unanswered"
    );

    // The device never comes back; its identity runs out.
    let expires_at = view["identity"]["expires_at"].as_str().unwrap().to_owned();
    assert_eq!(view["renewal"]["identity_expires_at"], expires_at.as_str());
    let pass = rig.pass(t + 3 * DAY);
    assert_eq!(rig.state(), RenewalState::Expired);
    assert!(pass.queued.is_empty(), "no retry after expiry");
    assert_eq!(pass.gauges.expired, 1);
    let metrics = rig.metrics().await;
    assert!(
        metrics.contains("baton_device_identities_expired 1"),
        "{metrics}"
    );
    assert!(metrics.contains("baton_identity_renewals{state=\"expired\"} 1"));
    assert!(metrics.contains("baton_device_identities_expiring{within=\"7d\"} 0"));
    rig.server.stop().await;
}

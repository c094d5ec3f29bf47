//! Helpers for the portal tests: a mock APNs with a push certificate for the test topic, a
//! minimal browser that keeps the portal cookie and submits forms with their CSRF token, small
//! HTML/profile helpers, and an enrolled baton-sim device ([`enrolled_sim`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use baton_apns::mock::MockApns;
use baton_apns::testing::TestPki;
use baton_proto::Profile;
use baton_server::identity::testing::DeviceCertificateSpec;
use baton_server::push::PushConfig;
use baton_sim::{ServerEndpoints, ServerTrust, SimDevice, SimOptions, Transport};
use http::Method;
use tempfile::TempDir;

use crate::device::TOPIC;
use crate::{Pki, Reply, TestServer};

/// The content type of portal form posts.
pub const FORM: &str = "application/x-www-form-urlencoded";

/// A mock APNs with a push certificate for the devices' topic.
#[derive(Debug)]
pub struct Apns {
    _pki: TestPki,
    /// The running mock; tests read its recorded pushes.
    pub mock: MockApns,
    dir: TempDir,
}

impl Apns {
    pub async fn start() -> Self {
        let pki = TestPki::generate().unwrap();
        let mock = MockApns::start_with_pki(&pki).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("apns-ca.pem"), &pki.ca_cert_pem).unwrap();
        let (cert, key) = pki.client_cert_with_uid(Some(TOPIC)).unwrap();
        let mut both = cert;
        both.extend_from_slice(&key);
        std::fs::write(dir.path().join("push.pem"), both).unwrap();
        Self {
            _pki: pki,
            mock,
            dir,
        }
    }

    pub fn config(&self) -> PushConfig {
        PushConfig {
            cert_file: Some(self.dir.path().join("push.pem")),
            apns_url: self.mock.base_url(),
            apns_ca_files: vec![self.dir.path().join("apns-ca.pem")],
            apns_public_roots: false,
            debounce: Duration::from_millis(20),
            repush_interval: Duration::from_secs(3600),
            ..PushConfig::default()
        }
    }

    /// Waits until the token got at least `n` pushes (5 s at most); returns how many it got.
    pub async fn wait_for(&self, token_hex: &str, n: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = self
                .mock
                .pushes()
                .into_iter()
                .filter(|p| p.token.as_deref() == Some(token_hex))
                .count();
            if got >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A profile with `identifier` and display name `display`, as XML.
pub fn profile_xml(identifier: &str, display: &str) -> String {
    Profile::new(identifier, "7D3C1E2A-0000-4C3B-9D2E-0A1B2C3D4E5F")
        .with_display_name(display)
        .to_xml()
        .map(|b| String::from_utf8(b).unwrap())
        .unwrap()
}

/// The path of the URL a web clip opens (the test server's public URL is not its address).
pub fn clip_path(device: &SimDevice, label: &str) -> String {
    let url = device
        .tap_web_clip(Some(label))
        .unwrap_or_else(|| panic!("no {label:?} web clip on the device"));
    let at = url.find("/portal/").expect("portal URL");
    url[at..].to_owned()
}

/// A minimal browser: keeps the portal cookie and posts forms.
#[derive(Debug, Default)]
pub struct Browser {
    /// The portal cookie (`name=value`) the browser sends, if the server set one.
    pub cookie: Option<String>,
}

impl Browser {
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        self.cookie.iter().map(|c| ("Cookie", c.clone())).collect()
    }

    pub async fn get(&mut self, server: &TestServer, path: &str) -> Reply {
        let r = server
            .client
            .send(Method::GET, path, &self.headers(), Vec::new())
            .await
            .unwrap();
        self.keep_cookie(&r);
        r
    }

    pub async fn post(
        &mut self,
        server: &TestServer,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Reply {
        let mut headers = self.headers();
        headers.push(("Content-Type", FORM.to_owned()));
        let body = encode_form(fields);
        let r = server
            .client
            .send(Method::POST, path, &headers, body.into_bytes())
            .await
            .unwrap();
        self.keep_cookie(&r);
        r
    }

    pub fn keep_cookie(&mut self, r: &Reply) {
        if let Some(c) = r.headers.get(http::header::SET_COOKIE) {
            let pair = c.to_str().unwrap().split(';').next().unwrap().to_owned();
            self.cookie = pair
                .split_once('=')
                .filter(|(_, v)| !v.is_empty())
                .map(|_| pair.clone());
        }
    }

    /// Opens the portal page and submits its form with `fields` (+ the page's CSRF token);
    /// returns the form's action and the answer.
    pub async fn submit(
        &mut self,
        server: &TestServer,
        portal: &str,
        fields: &[(&str, &str)],
    ) -> (String, Reply) {
        let page = self.get(server, portal).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let html = page.text();
        let action = attr_after(&html, "<form", "action");
        let csrf = attr_after(&html, "name=\"csrf\"", "value");
        let mut all = fields.to_vec();
        all.push(("csrf", &csrf));
        let r = self.post(server, &action, &all).await;
        (action, r)
    }
}

/// Percent-encodes one form value.
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of `attr="..."` after `marker` in `html`.
pub fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in {html}"));
    let rest = &html[at..];
    let needle = format!("{attr}=\"");
    let start = rest.find(&needle).unwrap() + needle.len();
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

/// `fields` as an `application/x-www-form-urlencoded` body.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The path of the "Sign in" clip the server would install on `udid` now. The device token
/// rotates at each sign-out, and a test device that has not fetched its new clip yet still
/// shows the old one (a person would wait for the new clip).
pub fn sign_in_path(server: &TestServer, udid: &str) -> String {
    let device = baton_proto::EnrollmentId::device(udid).unwrap();
    let store = server.running().services().store.as_ref();
    let token = baton_server::reconciler::portal_token::token_of(store, &device)
        .unwrap()
        .expect("the device has a portal token");
    format!("/portal/{token}")
}

/// A baton-sim device `udid` whose identity `pki`'s trusted CA issued, pointed at `server` (any
/// server certificate accepted), after its Authenticate and TokenUpdate: enrolled, nothing
/// fetched yet.
pub async fn enrolled_sim(
    server: &TestServer,
    pki: &Pki,
    udid: &str,
    options: SimOptions,
) -> SimDevice {
    let identity = pki
        .trusted
        .issue_device(udid, &DeviceCertificateSpec::default())
        .unwrap();
    let mut device = SimDevice::with_udid(
        udid,
        ServerEndpoints::baton(&server.running().local_url()),
        identity.into(),
        options,
        Transport::new(&ServerTrust::AcceptAny).unwrap(),
    )
    .unwrap();
    device.enroll_checkins().await.unwrap();
    device
}

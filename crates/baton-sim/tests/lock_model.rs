//! The lock model, the device's own poll after NotNow, resent results and dropped connections,
//! each against its source (docs/ios-device-behaviour.md sections 4, 9, 10):
//! - passcode-locked vs. before the first unlock, and what each defers
//!   [P MDMParser `_unavailableCommandsWhileLocked`, `_unavailableCommandsBeforeFirstUnlock`;
//!   M984; AF; Y certificate.list];
//! - on unlock the device polls by itself only when NotNow was the last status of its last
//!   connection [NN "Understand device polling"; P MDMServerCore `_pollFromServerIfNeeded:`];
//! - a result whose reply was lost opens the next connection instead of Idle [P, UNCONFIRMED];
//! - seeded delays and drops.
//!
//! The server here is a scripted stand-in on plain HTTP: it records what the device sends and
//! hands out a fixed list of commands, so these tests do not depend on Baton's rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton_proto::{
    Command, CommandReport, CommandRequest, CommandUuid, Limits, Profile, Status, WebClipPayload,
};
use baton_server::identity::testing::{DeviceCertificateSpec, TestCa};
use baton_sim::ios_commands::{ChannelContext, DeviceFacts, answer, installed_profile};
use baton_sim::{
    Inventory, LockState, NotNowPolicy, Pacing, ServerEndpoints, ServerTrust, SimDevice,
    SimOptions, Transport,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const UDID: &str = "00008101-00000000000000AA";

// ---- what each lock state defers (no server) ----

/// Answers `request` on a device channel in `lock` under `policy`.
fn status_when(policy: NotNowPolicy, lock: LockState, request: CommandRequest) -> Status {
    let facts = DeviceFacts::for_udid(UDID, false);
    let mut inventory = Inventory::default();
    // An MDM-installed profile, so RemoveProfile has something to remove when it runs.
    let installed = installed_profile(&Profile::new("com.example.p", "P-UUID"), true);
    inventory.profiles.push(installed);
    let mut users = Vec::new();
    let options = SimOptions {
        not_now: policy,
        ..SimOptions::default()
    };
    let results = BTreeMap::new();
    let mut ctx = ChannelContext {
        facts: &facts,
        identity_cert_der: &[],
        enrollment_profile: None,
        inventory: &mut inventory,
        users: &mut users,
        user_channel: false,
        locked: lock.is_locked(),
        before_first_unlock: lock == LockState::BeforeFirstUnlock,
        options: &options,
        scep_results: &results,
    };
    answer(
        &mut ctx,
        &Command::new(CommandUuid::new("C-1").unwrap(), request),
    )
    .status
}

fn clip() -> Vec<u8> {
    Profile::new("com.example.clip", "CLIP-UUID")
        .with_payload(WebClipPayload::new("https://x", "Sign in").into_payload("c.w", "W"))
        .to_xml()
        .unwrap()
}

fn raw(request_type: &str) -> CommandRequest {
    CommandRequest::Raw {
        request_type: request_type.into(),
        keys: baton_proto::plist::Dictionary::new(),
    }
}

#[test]
fn passcode_locked_defers_profile_installs_but_not_removals_apps_or_settings() {
    // [P `_unavailableCommandsWhileLocked`; M984; AF]
    let ios = || NotNowPolicy::IosLockState;
    let locked = LockState::PasscodeLocked;
    let install = CommandRequest::InstallProfile { payload: clip() };
    assert_eq!(status_when(ios(), locked, install.clone()), Status::NotNow);
    assert_eq!(
        status_when(ios(), locked, CommandRequest::SecurityInfo),
        Status::NotNow
    );
    assert_eq!(
        status_when(
            ios(),
            locked,
            CommandRequest::RemoveProfile {
                identifier: "com.example.p".into()
            }
        ),
        Status::Acknowledged,
        "RemoveProfile runs while passcode-locked"
    );
    assert_eq!(
        status_when(ios(), locked, CommandRequest::ProfileList),
        Status::Acknowledged
    );
    assert_eq!(
        status_when(ios(), locked, CommandRequest::Settings { settings: vec![] }),
        Status::Acknowledged
    );
    // The default policy is iOS's; an unlocked device defers nothing.
    assert_eq!(SimOptions::default().not_now, NotNowPolicy::IosLockState);
    assert_eq!(
        status_when(ios(), LockState::Unlocked, install),
        Status::Acknowledged
    );
}

#[test]
fn before_the_first_unlock_removals_and_certificate_lists_wait_too() {
    // [P `_unavailableCommandsBeforeFirstUnlock`; Y certificate.list (iOS 15.4+)]
    let ios = || NotNowPolicy::IosLockState;
    let bfu = LockState::BeforeFirstUnlock;
    for request in [
        CommandRequest::InstallProfile { payload: clip() },
        CommandRequest::RemoveProfile {
            identifier: "com.example.p".into(),
        },
        CommandRequest::CertificateList { managed_only: None },
        raw("DeclarativeManagement"),
    ] {
        let rt = request.request_type().to_owned();
        assert_eq!(status_when(ios(), bfu, request), Status::NotNow, "{rt}");
    }
    // Not deferred for the lock [P].
    assert_eq!(
        status_when(ios(), bfu, CommandRequest::Settings { settings: vec![] }),
        Status::Acknowledged
    );
    // The simulator's old guess stays reachable: it defers Settings whenever locked.
    assert_eq!(
        status_when(
            NotNowPolicy::LockedUntilFirstUnlock,
            LockState::PasscodeLocked,
            CommandRequest::Settings { settings: vec![] }
        ),
        Status::NotNow
    );
    assert_eq!(SimOptions::lenient().not_now, NotNowPolicy::Never);
}

// ---- a scripted server ----

/// What the stand-in server saw and what it will hand out.
#[derive(Default)]
struct Script {
    /// Commands to hand out, one per request, until empty (then an empty body).
    commands: VecDeque<Vec<u8>>,
    /// Every report received: (status, CommandUUID).
    seen: Vec<(Status, Option<String>)>,
}

struct FakeServer {
    url: String,
    script: Arc<Mutex<Script>>,
}

impl FakeServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let script = Arc::clone(&shared);
                tokio::spawn(async move {
                    while let Some(body) = read_request(&mut socket).await {
                        let reply = {
                            let mut s = script.lock().unwrap();
                            let report = CommandReport::decode(&body, &Limits::default()).unwrap();
                            s.seen.push((
                                report.status,
                                report.command_uuid.map(|u| u.as_str().to_owned()),
                            ));
                            s.commands.pop_front().unwrap_or_default()
                        };
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", reply.len());
                        if socket.write_all(head.as_bytes()).await.is_err()
                            || socket.write_all(&reply).await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Self { url, script }
    }

    fn queue(&self, request: CommandRequest) -> String {
        let uuid = format!("CMD-{}", self.script.lock().unwrap().commands.len() + 1)
            + &request.request_type().to_uppercase();
        let body = Command::new(CommandUuid::new(uuid.clone()).unwrap(), request)
            .encode()
            .unwrap();
        self.script.lock().unwrap().commands.push_back(body);
        uuid
    }

    fn seen(&self) -> Vec<(Status, Option<String>)> {
        self.script.lock().unwrap().seen.clone()
    }

    fn statuses(&self) -> Vec<Status> {
        self.seen().into_iter().map(|(s, _)| s).collect()
    }
}

/// Reads one HTTP/1.1 request; its body, or None at the end of the connection.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + len].to_vec())
}

fn device(server: &FakeServer, options: SimOptions) -> SimDevice {
    let ca = TestCa::generate("Lock Model CA").unwrap();
    let identity = ca
        .issue_device(UDID, &DeviceCertificateSpec::default())
        .unwrap();
    let mut endpoints = ServerEndpoints::baton(&server.url);
    endpoints.server_url = format!("{}/mdm/connect", server.url);
    SimDevice::with_udid(
        UDID,
        endpoints,
        identity.into(),
        options,
        Transport::new(&ServerTrust::AcceptAny).unwrap(),
    )
    .unwrap()
}

// ---- the device's own poll after NotNow ----

#[tokio::test]
async fn unlock_polls_by_itself_only_after_a_connection_that_ended_on_not_now() {
    // [NN]: a device polls when conditions change only if NotNow was its last status.
    let server = FakeServer::start().await;
    let mut phone = device(&server, SimOptions::default());
    phone.lock();
    let clip_uuid = server.queue(CommandRequest::InstallProfile { payload: clip() });
    let done = phone.connect_until_idle().await.unwrap();
    assert_eq!(done[0].status, Status::NotNow);
    assert!(phone.ended_on_not_now());
    // The person unlocks the phone: it connects by itself and installs the clip.
    server.queue(CommandRequest::InstallProfile { payload: clip() });
    let polled = phone.unlock().await.unwrap();
    assert_eq!(polled.len(), 1, "{polled:?}");
    assert_eq!(polled[0].status, Status::Acknowledged);
    assert_eq!(
        server.statuses(),
        [
            Status::Idle,
            Status::NotNow,
            Status::Idle,
            Status::Acknowledged
        ]
    );
    assert_eq!(server.seen()[1].1.as_deref(), Some(clip_uuid.as_str()));

    // NotNow followed by another command's Ack: the last status is Acknowledged, so unlocking
    // does not make the device poll; the deferred command waits for a push.
    let server = FakeServer::start().await;
    let mut phone = device(&server, SimOptions::default());
    phone.lock();
    server.queue(CommandRequest::InstallProfile { payload: clip() });
    server.queue(CommandRequest::ProfileList);
    let done = phone.connect_until_idle().await.unwrap();
    let statuses: Vec<Status> = done.iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Status::NotNow, Status::Acknowledged]);
    assert!(!phone.ended_on_not_now());
    let before = server.seen().len();
    assert!(phone.unlock().await.unwrap().is_empty());
    assert_eq!(server.seen().len(), before, "no request after unlock");
}

#[tokio::test]
async fn the_old_behaviour_never_polls_on_unlock() {
    let server = FakeServer::start().await;
    let mut phone = device(
        &server,
        SimOptions {
            not_now: NotNowPolicy::IosLockState,
            ..SimOptions::lenient()
        },
    );
    phone.lock();
    server.queue(CommandRequest::InstallProfile { payload: clip() });
    phone.connect_until_idle().await.unwrap();
    assert!(phone.ended_on_not_now());
    let before = server.seen().len();
    assert!(phone.unlock().await.unwrap().is_empty());
    assert_eq!(server.seen().len(), before);
}

// ---- a lost reply: the result is resent instead of Idle ----

#[tokio::test]
async fn a_result_whose_reply_was_lost_opens_the_next_connection() {
    // [P MDMServerCore `_pollFromServerIfNeeded:`] UNCONFIRMED on a device.
    let server = FakeServer::start().await;
    let mut phone = device(&server, SimOptions::default());
    let first = server.queue(CommandRequest::ProfileList);
    let second = server.queue(CommandRequest::ProfileList);
    phone.lose_next_reply();
    let done = phone.connect_until_idle().await.unwrap();
    assert_eq!(
        done.len(),
        1,
        "the connection dropped after the first result"
    );
    assert!(phone.pending_result().is_some());
    // The next connection opens with the cached result, not Idle. (The stand-in handed out
    // `second` in the lost reply and has nothing left; Baton keeps it queued.)
    let done = phone.connect_until_idle().await.unwrap();
    assert!(done.is_empty(), "{done:?}");
    assert_eq!(
        server.seen(),
        [
            (Status::Idle, None),
            (Status::Acknowledged, Some(first.clone())),
            (Status::Acknowledged, Some(first)),
        ]
    );
    assert_ne!(second, "");
    assert!(phone.pending_result().is_none());

    // Switched off: the lost result is forgotten and the next connection opens with Idle.
    let server = FakeServer::start().await;
    let mut phone = device(&server, SimOptions::lenient());
    server.queue(CommandRequest::ProfileList);
    phone.lose_next_reply();
    phone.connect_until_idle().await.unwrap();
    assert!(phone.pending_result().is_none());
    phone.connect_until_idle().await.unwrap();
    assert_eq!(server.statuses()[2], Status::Idle);
}

// ---- delays and drops ----

#[tokio::test]
async fn seeded_drops_repeat_exactly_and_delays_slow_each_command() {
    async fn run(seed: u64) -> Vec<(Status, Option<String>)> {
        let server = FakeServer::start().await;
        let mut phone = device(
            &server,
            SimOptions {
                pacing: Pacing {
                    drop_per_mille: 400,
                    seed,
                    ..Pacing::default()
                },
                ..SimOptions::default()
            },
        );
        for _ in 0..12 {
            server.queue(CommandRequest::ProfileList);
        }
        // Every connection ends at a drop or at the end of the queue; bounded.
        for _ in 0..40 {
            phone.connect_until_idle().await.unwrap();
            if phone.pending_result().is_none() && server.script.lock().unwrap().commands.is_empty()
            {
                break;
            }
        }
        assert!(phone.pending_result().is_none());
        server.seen()
    }
    let a = run(7).await;
    assert_eq!(a, run(7).await, "same seed, same run");
    let mut uuids: Vec<String> = a.iter().filter_map(|(_, u)| u.clone()).collect();
    let all = uuids.len();
    uuids.dedup();
    assert!(
        uuids.len() < all,
        "some result was resent after a drop: {a:?}"
    );

    let server = FakeServer::start().await;
    let mut phone = device(
        &server,
        SimOptions {
            pacing: Pacing {
                command_delay_min_ms: 40,
                command_delay_max_ms: 60,
                ..Pacing::default()
            },
            ..SimOptions::default()
        },
    );
    server.queue(CommandRequest::ProfileList);
    server.queue(CommandRequest::ProfileList);
    let started = std::time::Instant::now();
    phone.connect_until_idle().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(80));
}

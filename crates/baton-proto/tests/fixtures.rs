//! Every project fixture decodes, round-trips (decode -> encode -> decode equal) and carries what
//! its name promises; every captured device sample under `../shared/device-samples` decodes too.

use std::path::{Path, PathBuf};

use baton_proto::{
    CheckinMessage, Command, CommandReport, Limits, MessageType, Profile, ResponseKind, Status,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fixtures/proto").join(kind);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

fn limits() -> Limits {
    Limits::default()
}

#[test]
fn checkin_fixtures_decode_and_round_trip() {
    let mut seen = Vec::new();
    for (name, bytes) in files("checkin") {
        let msg =
            CheckinMessage::decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = CheckinMessage::decode(&msg.encode().unwrap(), &limits()).unwrap();
        assert_eq!(again, msg, "{name} does not round-trip");
        seen.push(msg.message_type());
        match name.as_str() {
            "token_update_shared_ipad_user.plist" => {
                assert!(msg.enrollment().is_shared_ipad_user());
                assert_eq!(
                    msg.enrollment_id().as_str(),
                    "00008103-000A1B2C3E4F001E:maria.lopez@school.example.org"
                );
                assert_eq!(msg.device_id().as_str(), "00008103-000A1B2C3E4F001E");
            }
            "token_update_user_enrollment.plist" => {
                assert_eq!(
                    msg.enrollment_id().as_str(),
                    "8E1F6A2B-4C3D-4E5F-9A0B-1C2D3E4F5A6B:C7D8E9F0-A1B2-4C3D-8E4F-5A6B7C8D9E0F"
                );
            }
            "token_update_device.plist" => {
                let CheckinMessage::TokenUpdate(t) = &msg else {
                    panic!("{name} is {:?}", msg.message_type())
                };
                assert_eq!(t.token.as_bytes().len(), 32);
                assert!(t.unlock_token.is_some());
                assert!(!msg.enrollment().is_user_channel());
            }
            "user_authenticate.plist" => assert!(msg.enrollment().is_user_channel()),
            _ => {}
        }
    }
    for t in MessageType::ALL {
        assert!(seen.contains(&t), "no fixture for {t}");
    }
}

#[test]
fn report_fixtures_decode_and_round_trip() {
    let mut statuses = Vec::new();
    let mut kinds = Vec::new();
    for (name, bytes) in files("report") {
        let r = CommandReport::decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = CommandReport::decode(&r.encode().unwrap(), &limits()).unwrap();
        assert_eq!(again, r, "{name} does not round-trip");
        statuses.push(r.status);
        if let Some(kind) = r.response_kind() {
            kinds.push(kind);
        }
        match r.response_kind() {
            Some(ResponseKind::ProfileList) => {
                let list = r.profile_list().unwrap().unwrap();
                assert_eq!(list.len(), 2);
                assert_eq!(list[0].payloads.len(), 2);
            }
            Some(ResponseKind::InstalledApplicationList) => {
                let apps = r.installed_application_list().unwrap().unwrap();
                assert_eq!(apps.len(), 3);
                assert_eq!(apps[2].installing, Some(true));
                assert_eq!(apps[0].external_version_identifier, None);
            }
            Some(ResponseKind::ManagedApplicationList) => {
                let apps = r.managed_application_list().unwrap().unwrap();
                assert_eq!(apps.iter().filter(|a| a.is_installed()).count(), 1);
            }
            Some(ResponseKind::CertificateList) => {
                let certs = r.certificate_list().unwrap().unwrap();
                assert!(certs.iter().all(|c| c.data.first() == Some(&0x30)));
            }
            Some(ResponseKind::DeviceInformation) => {
                let info = r.device_information().unwrap().unwrap();
                assert_eq!(info.is_multi_user, Some(false));
                assert_eq!(info.device_capacity, Some(119.21));
            }
            Some(ResponseKind::SecurityInfo) => {
                let info = r.security_info().unwrap().unwrap();
                assert_eq!(
                    info.management_status.unwrap().is_user_enrollment,
                    Some(false)
                );
                assert_eq!(info.passcode_lock_grace_period, None);
            }
            Some(ResponseKind::UserList) => {
                let users = r.user_list().unwrap().unwrap();
                assert_eq!(users[1].has_data_to_sync, Some(true));
                assert!(r.enrollment.keys().udid.is_some());
            }
            _ => {}
        }
        if r.status == Status::Error {
            let chain = r.error_chain.as_ref().unwrap();
            assert_eq!(chain[0].code, 4001);
            assert_eq!(chain[1].domain, "MCProfileErrorDomain");
        }
        if name == "idle_shared_ipad_user.plist" {
            assert!(r.enrollment_id().is_user_channel());
            assert!(r.command_uuid.is_none());
        }
    }
    for s in [
        Status::Idle,
        Status::Acknowledged,
        Status::Error,
        Status::CommandFormatError,
        Status::NotNow,
    ] {
        assert!(statuses.contains(&s), "no report fixture with status {s}");
    }
    for k in ResponseKind::ALL {
        assert!(kinds.contains(&k), "no report fixture for {k}");
    }
}

#[test]
fn command_fixtures_decode_and_round_trip() {
    for (name, bytes) in files("command") {
        let c = Command::decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = Command::decode(&c.encode().unwrap(), &limits()).unwrap();
        assert_eq!(again, c, "{name} does not round-trip");
        assert!(
            c.extra.is_empty(),
            "{name} has unmodelled keys {:?}",
            c.extra
        );
        if name == "install_profile.plist" {
            let baton_proto::CommandRequest::InstallProfile { payload } = &c.request else {
                panic!("{name} is {}", c.request_type())
            };
            let profile = Profile::parse(payload, &limits()).unwrap();
            assert_eq!(profile.identifier, "org.example.baton.signin");
        }
        if name == "raw_restart_device.plist" {
            assert!(matches!(c.request, baton_proto::CommandRequest::Raw { .. }));
        }
    }
}

#[test]
fn profile_fixtures_parse_and_round_trip() {
    for (name, bytes) in files("profile") {
        let p = Profile::parse(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = Profile::parse(&p.to_xml().unwrap(), &limits()).unwrap();
        assert_eq!(again, p, "{name} does not round-trip");
        assert!(!p.payloads.is_empty());
        if name == "enrollment.mobileconfig" {
            let types: Vec<&str> = p.payloads.iter().map(|x| x.payload_type.as_str()).collect();
            assert_eq!(
                types,
                [
                    "com.apple.security.root",
                    "com.apple.security.scep",
                    "com.apple.mdm"
                ]
            );
        }
    }
}

#[test]
fn device_samples_decode_when_present() {
    let dir = repo_root().join("../shared/device-samples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "NOTICE: {} not found; device-sample test skipped",
            dir.display()
        );
        return;
    };
    let mut count = 0;
    for path in entries.map(|e| e.unwrap().path()) {
        if path.extension().and_then(|e| e.to_str()) != Some("plist") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        count += 1;
        if name.contains("Authenticate") || name.contains("TokenUpdate") {
            let msg =
                CheckinMessage::decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let expected = if name.contains("Authenticate") {
                MessageType::Authenticate
            } else {
                MessageType::TokenUpdate
            };
            assert_eq!(msg.message_type(), expected, "{name}");
            let again = CheckinMessage::decode(&msg.encode().unwrap(), &limits()).unwrap();
            assert_eq!(again, msg, "{name} does not round-trip");
        } else {
            let r =
                CommandReport::decode(&bytes, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let kind = r
                .response_kind()
                .unwrap_or_else(|| panic!("{name}: no typed response"));
            assert!(
                name.contains(kind.request_type()),
                "{name} classified as {kind}"
            );
            let viewed = match kind {
                ResponseKind::ProfileList => r.profile_list().map(|v| v.is_some()),
                ResponseKind::InstalledApplicationList => {
                    r.installed_application_list().map(|v| v.is_some())
                }
                ResponseKind::ManagedApplicationList => {
                    r.managed_application_list().map(|v| v.is_some())
                }
                ResponseKind::CertificateList => r.certificate_list().map(|v| v.is_some()),
                ResponseKind::DeviceInformation => r.device_information().map(|v| v.is_some()),
                ResponseKind::SecurityInfo => r.security_info().map(|v| v.is_some()),
                ResponseKind::UserList => r.user_list().map(|v| v.is_some()),
                _ => Ok(false),
            };
            assert_eq!(viewed, Ok(true), "{name}");
            let again = CommandReport::decode(&r.encode().unwrap(), &limits()).unwrap();
            assert_eq!(again, r, "{name} does not round-trip");
        }
    }
    assert!(count > 0, "no plists in {}", dir.display());
}

//! iOS's real answers for the MDM profile (replacement, removal) and its error codes, each
//! against its source in /work/shared/ios-device-behaviour.md (sections 3, 8, 11, 13): [I] the
//! decompiled iOS 18 `MCInstaller`, [P] the decompiled iOS 26.1 MDM.framework, [M903] a peer's
//! report. The old simulator stays reachable through `SimOptions::lenient()`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{Command, CommandRequest, CommandUuid, MdmPayload, Profile, Status};
use baton_sim::ios_commands::{
    ChannelContext, CommandAnswer, DeviceFacts, ScepResult, SharedUser, answer, decode_command,
    decode_command_for, installed_profile,
};
use baton_sim::{Inventory, SimOptions};

const ENROLLMENT: &str = "io.baton.enrollment";

fn mdm() -> MdmPayload {
    MdmPayload::new(
        "ID-UUID",
        "com.apple.mgmt.External.t",
        "https://mdm.example/mdm/connect",
        "https://mdm.example/mdm/checkin",
    )
}

fn mdm_profile(mdm: Option<MdmPayload>) -> Profile {
    let p = Profile::new(ENROLLMENT, "P-UUID");
    match mdm {
        Some(m) => p.with_payload(m.into_payload("io.baton.enrollment.mdm", "M-UUID")),
        None => p,
    }
}

struct Channel {
    facts: DeviceFacts,
    inventory: Inventory,
    users: Vec<SharedUser>,
    options: SimOptions,
    enrollment: baton_sim::InstalledProfile,
    scep: BTreeMap<String, ScepResult>,
}

impl Channel {
    fn new(options: SimOptions) -> Self {
        Self {
            facts: DeviceFacts::for_udid("00008101-0000000000000002", options.shared_ipad),
            inventory: Inventory::default(),
            users: Vec::new(),
            options,
            enrollment: installed_profile(&mdm_profile(Some(mdm())), false),
            scep: BTreeMap::new(),
        }
    }

    fn run(&mut self, request: CommandRequest) -> CommandAnswer {
        let command = Command::new(CommandUuid::new("C-1").unwrap(), request);
        let mut ctx = ChannelContext {
            facts: &self.facts,
            identity_cert_der: &[],
            enrollment_profile: Some(&self.enrollment),
            inventory: &mut self.inventory,
            users: &mut self.users,
            user_channel: false,
            locked: false,
            before_first_unlock: false,
            options: &self.options,
            scep_results: &self.scep,
        };
        answer(&mut ctx, &command)
    }
}

fn install(profile: &Profile) -> CommandRequest {
    CommandRequest::InstallProfile {
        payload: profile.to_xml().unwrap(),
    }
}

fn code(a: &CommandAnswer) -> i64 {
    assert_eq!(a.status, Status::Error, "{a:?}");
    a.error_chain.as_ref().unwrap()[0].code
}

/// [I `_validateMDMReplacementNewProfile:`; M903]
#[test]
fn the_mdm_profile_is_replaced_only_with_the_same_invariant_fields() {
    let mut ch = Channel::new(SimOptions::default());
    // Same Topic, URLs, capabilities and rights (new UUIDs, as Baton's renewal profiles have).
    assert_eq!(
        ch.run(install(&mdm_profile(Some(mdm())))).status,
        Status::Acknowledged
    );
    assert!(
        ch.inventory.profiles.is_empty(),
        "the MDM profile is not an inventory profile"
    );
    // Fewer rights are fine.
    let mut fewer = mdm();
    fewer.access_rights = 4095;
    assert_eq!(
        ch.run(install(&mdm_profile(Some(fewer)))).status,
        Status::Acknowledged
    );

    let mut moved = mdm();
    moved.server_url = "https://new.example/mdm/connect".into();
    let mut check_in = mdm();
    check_in.check_in_url = Some("https://new.example/mdm/checkin".into());
    let mut topic = mdm();
    topic.topic = "com.apple.mgmt.External.other".into();
    let mut caps = mdm();
    caps.server_capabilities.clear();
    for changed in [moved, check_in, topic, caps] {
        let a = ch.run(install(&mdm_profile(Some(changed))));
        assert_eq!(code(&a), 12012);
        assert_eq!(a.error_chain.unwrap()[0].domain, "MCMDMErrorDomain");
    }
    // AccessRights may not grow.
    ch.enrollment = installed_profile(
        &mdm_profile(Some(MdmPayload {
            access_rights: 4095,
            ..mdm()
        })),
        false,
    );
    assert_eq!(code(&ch.run(install(&mdm_profile(Some(mdm()))))), 12012);
    // No MDM payload at all: 4015.
    let a = ch.run(install(&mdm_profile(None)));
    assert_eq!(code(&a), 4015);
    assert_eq!(
        a.error_chain.unwrap()[0].domain,
        "MCInstallationErrorDomain"
    );
}

#[test]
fn a_replacement_whose_scep_fails_is_refused_and_the_old_simulator_refuses_all() {
    let mut ch = Channel::new(SimOptions::default());
    let mut scep = baton_proto::ScepPayload::new("https://mdm.example/scep");
    scep.challenge = Some("c".into());
    let profile = mdm_profile(Some(mdm()))
        .with_payload(scep.into_payload("io.baton.enrollment.scep", "ID-UUID"));
    ch.scep
        .insert("ID-UUID".into(), Err("challenge refused".into()));
    let a = ch.run(install(&profile));
    assert_eq!(a.status, Status::Error);
    // The old simulator: never replaceable (4001).
    let mut lenient = Channel::new(SimOptions::lenient());
    assert_eq!(code(&lenient.run(install(&mdm_profile(Some(mdm()))))), 4001);
}

/// [P `_removeProfileWithIdentifier:…`, `processRequest:` managing-profile branch]
#[test]
fn remove_profile_codes_follow_supervision_and_the_mdm_profile_is_acknowledged() {
    let user_profile = installed_profile(&Profile::new("com.example.user", "U"), false);
    let remove = |id: &str| CommandRequest::RemoveProfile {
        identifier: id.into(),
    };
    let mut ch = Channel::new(SimOptions::default());
    ch.inventory.profiles.push(user_profile.clone());
    assert_eq!(code(&ch.run(remove("com.example.nothere"))), 12075);
    assert_eq!(code(&ch.run(remove("com.example.user"))), 12013);
    // The MDM profile: Acknowledged (the device then unenrolls, see tests/sim_device.rs).
    assert_eq!(ch.run(remove(ENROLLMENT)).status, Status::Acknowledged);

    let mut supervised = Channel::new(SimOptions {
        supervised: true,
        ..SimOptions::default()
    });
    supervised.inventory.profiles.push(user_profile.clone());
    assert_eq!(
        supervised.run(remove("com.example.user")).status,
        Status::Acknowledged
    );
    assert!(supervised.inventory.profiles.is_empty());

    let mut lenient = Channel::new(SimOptions::lenient());
    lenient.inventory.profiles.push(user_profile);
    assert_eq!(code(&lenient.run(remove("com.example.user"))), 12075);
    assert_eq!(code(&lenient.run(remove(ENROLLMENT))), 12075);
}

/// [P `processRequest:`, `_commandSetSupervised`]
#[test]
fn unknown_and_supervised_only_commands_are_error_12021() {
    let raw = |t: &str| CommandRequest::Raw {
        request_type: t.into(),
        keys: Dictionary::new(),
    };
    let mut ch = Channel::new(SimOptions::default());
    for t in [
        "NoSuchCommand",
        "RestartDevice",
        "ShutDownDevice",
        "StopMirroring",
        "ClearRestrictionsPassword",
    ] {
        assert_eq!(code(&ch.run(raw(t))), 12021, "{t}");
    }
    assert_eq!(ch.run(raw("DeviceLock")).status, Status::Acknowledged);
    let mut supervised = Channel::new(SimOptions {
        supervised: true,
        ..SimOptions::default()
    });
    assert_eq!(
        supervised.run(raw("RestartDevice")).status,
        Status::Acknowledged
    );
    assert_eq!(code(&supervised.run(raw("NoSuchCommand"))), 12021);
    let mut lenient = Channel::new(SimOptions::lenient());
    assert_eq!(
        lenient.run(raw("RestartDevice")).status,
        Status::Acknowledged
    );
    assert_eq!(
        lenient.run(raw("NoSuchCommand")).status,
        Status::CommandFormatError
    );
}

fn command(request_type: &str, keys: &[(&str, Value)]) -> Dictionary {
    let mut inner = Dictionary::new();
    inner.insert("RequestType".into(), Value::String(request_type.into()));
    for (k, v) in keys {
        inner.insert((*k).into(), v.clone());
    }
    let mut dict = Dictionary::new();
    dict.insert("CommandUUID".into(), Value::String("C-9".into()));
    dict.insert("Command".into(), Value::Dictionary(inner));
    dict
}

/// [P `processRequest:` and the command methods]
#[test]
fn malformed_requests_get_command_format_error_or_12008() {
    let s = |t: &str| Value::String(t.into());
    let format_errors = [
        command("InstallProfile", &[]),
        command("InstallProfile", &[("Payload", s("not data"))]),
        command("RemoveProfile", &[]),
        command("Settings", &[("Settings", s("x"))]),
        command("DeleteUser", &[]),
    ];
    for dict in &format_errors {
        let a = decode_command(dict).unwrap_err();
        assert_eq!(a.status, Status::CommandFormatError, "{dict:?}");
    }
    let int = Value::Integer(1.into());
    let malformed = [
        command("InstallApplication", &[]),
        command(
            "InstallApplication",
            &[("iTunesStoreID", int.clone()), ("Identifier", s("com.x"))],
        ),
        command("InstallApplication", &[("iTunesStoreID", s("1"))]),
        command("ManagedApplicationList", &[("Identifiers", s("com.x"))]),
        command(
            "InstalledApplicationList",
            &[("Identifiers", Value::Array(vec![int.clone()]))],
        ),
        command("ProfileList", &[("ManagedOnly", s("yes"))]),
        command("CertificateList", &[("ManagedOnly", int)]),
    ];
    for dict in &malformed {
        let a = decode_command(dict).unwrap_err();
        assert_eq!(code(&a), 12008, "{dict:?}");
    }
    // Well-formed ones decode.
    assert!(
        decode_command(&command(
            "ProfileList",
            &[("ManagedOnly", Value::Boolean(true))]
        ))
        .is_ok()
    );
    assert!(
        decode_command(&command(
            "InstallApplication",
            &[("Identifier", s("com.x"))]
        ))
        .is_ok()
    );
    // The old simulator: 12021 for what it cannot decode, the rest passes.
    let a = decode_command_for(&command("RemoveProfile", &[]), &SimOptions::lenient()).unwrap_err();
    assert_eq!(code(&a), 12021);
}

/// [P `_deleteUser:`, `_deleteAllUsersWithForceDeletion:`]
#[test]
fn delete_user_codes() {
    let delete = |name: Option<&str>, force: bool, all: bool| CommandRequest::DeleteUser {
        user_name: name.map(str::to_owned),
        force_deletion: Some(force),
        delete_all_users: Some(all),
    };
    let user = |name: &str, logged_in: bool, sync: bool| SharedUser {
        short_name: name.into(),
        logged_in,
        has_data_to_sync: sync,
    };
    let mut ch = Channel::new(SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    });
    ch.users = vec![
        user("on", true, false),
        user("sync", false, true),
        user("idle", false, false),
    ];
    assert_eq!(code(&ch.run(delete(Some("nobody"), false, false))), 12071);
    assert_eq!(code(&ch.run(delete(Some("on"), false, false))), 12072);
    assert_eq!(code(&ch.run(delete(Some("sync"), false, false))), 12073);
    assert_eq!(
        ch.run(delete(Some("sync"), true, false)).status,
        Status::Acknowledged
    );
    ch.users.push(user("sync2", false, true));
    // DeleteAllUsers: whoever can go goes; 12074 names the rest.
    assert_eq!(code(&ch.run(delete(None, false, true))), 12074);
    let left: Vec<&str> = ch.users.iter().map(|u| u.short_name.as_str()).collect();
    assert_eq!(left, ["on", "sync2"]);
    ch.users.retain(|u| !u.logged_in);
    assert_eq!(
        ch.run(delete(None, true, true)).status,
        Status::Acknowledged
    );
    assert!(ch.users.is_empty());
    // Without UserName or DeleteAllUsers: CommandFormatError.
    assert_eq!(
        ch.run(delete(None, false, false)).status,
        Status::CommandFormatError
    );
    // The old simulator: 12070, and DeleteAllUsers acknowledged.
    let mut lenient = Channel::new(SimOptions {
        shared_ipad: true,
        ..SimOptions::lenient()
    });
    lenient.users = vec![user("on", true, false)];
    assert_eq!(code(&lenient.run(delete(Some("on"), false, false))), 12070);
    assert_eq!(
        lenient.run(delete(None, false, true)).status,
        Status::Acknowledged
    );
}

//! The simulator refuses what iOS refuses, with an ErrorChain: a malformed profile, a profile
//! missing a required field, RemoveProfile of an unknown or non-MDM profile, InstallApplication
//! without an app; and it keeps state like iOS (replacement by PayloadIdentifier, NotNow while
//! locked, Shared iPad users).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, Command, CommandRequest, CommandUuid, InstallApplication, Payload, Profile, Status,
    WebClipPayload,
};
use baton_sim::ios_commands::{
    ChannelContext, CommandAnswer, DeviceFacts, SharedUser, answer, decode_command,
    installed_profile,
};
use baton_sim::{AppInstallTiming, AppStatus, Inventory, NotNowPolicy, SimOptions};

struct Channel {
    facts: DeviceFacts,
    inventory: Inventory,
    users: Vec<SharedUser>,
    options: SimOptions,
    enrollment: baton_sim::InstalledProfile,
    locked: bool,
}

impl Channel {
    fn new(options: SimOptions) -> Self {
        let enrollment = installed_profile(&Profile::new("com.example.enroll", "E-UUID"), false);
        Self {
            facts: DeviceFacts::for_udid("00008101-0000000000000001", options.shared_ipad),
            inventory: Inventory::default(),
            users: Vec::new(),
            options,
            enrollment,
            locked: false,
        }
    }

    fn run(&mut self, request: CommandRequest) -> CommandAnswer {
        let command = Command::new(CommandUuid::new("C-1").unwrap(), request);
        let results = BTreeMap::new();
        let mut ctx = ChannelContext {
            facts: &self.facts,
            identity_cert_der: &[],
            enrollment_profile: Some(&self.enrollment),
            inventory: &mut self.inventory,
            users: &mut self.users,
            user_channel: false,
            locked: self.locked,
            before_first_unlock: false,
            options: &self.options,
            scep_results: &results,
        };
        answer(&mut ctx, &command)
    }
}

fn install(payload: Vec<u8>) -> CommandRequest {
    CommandRequest::InstallProfile { payload }
}

fn clip_profile(id: &str, uuid: &str, url: &str) -> Vec<u8> {
    Profile::new(id, uuid)
        .with_payload(WebClipPayload::new(url, "Portal").into_payload(format!("{id}.clip"), "W"))
        .to_xml()
        .unwrap()
}

fn domains_and_codes(a: &CommandAnswer) -> Vec<(String, i64)> {
    a.error_chain
        .as_ref()
        .unwrap()
        .iter()
        .map(|i| (i.domain.clone(), i.code))
        .collect()
}

#[test]
fn malformed_profiles_are_refused_with_profile_error_domains() {
    let mut ch = Channel::new(SimOptions::default());
    // Not a plist at all.
    let a = ch.run(install(b"this is not a profile".to_vec()));
    assert_eq!(a.status, Status::Error);
    assert_eq!(
        domains_and_codes(&a),
        vec![
            ("MCInstallationErrorDomain".into(), 4000),
            ("MCProfileErrorDomain".into(), 1000)
        ]
    );
    // A web clip without its URL: the missing field is named.
    let mut content = Dictionary::new();
    content.insert("Label".into(), Value::String("Portal".into()));
    let bytes = Profile::new("com.example.bad", "B")
        .with_payload(Payload::new(
            "com.apple.webClip.managed",
            "com.example.bad.clip",
            "C",
            content,
        ))
        .to_xml()
        .unwrap();
    let a = ch.run(install(bytes));
    assert_eq!(a.status, Status::Error);
    let chain = a.error_chain.unwrap();
    assert_eq!(chain.last().unwrap().code, 1002);
    assert!(
        chain
            .last()
            .unwrap()
            .localized_description
            .as_deref()
            .unwrap()
            .contains("URL")
    );
    // A PKCS#12 that is not one.
    let mut content = Dictionary::new();
    content.insert("PayloadContent".into(), Value::Data(vec![1, 2, 3]));
    let bytes = Profile::new("com.example.p12", "P")
        .with_payload(Payload::new(
            "com.apple.security.pkcs12",
            "com.example.p12.id",
            "Q",
            content,
        ))
        .to_xml()
        .unwrap();
    let a = ch.run(install(bytes));
    assert_eq!(
        domains_and_codes(&a).last().unwrap(),
        &("MCProfileErrorDomain".into(), 1003)
    );
    // Nothing was installed by any of them.
    assert!(ch.inventory.profiles.is_empty());
}

#[test]
fn remove_profile_of_unknown_or_non_mdm_profile_errors() {
    let mut ch = Channel::new(SimOptions::default());
    let a = ch.run(CommandRequest::RemoveProfile {
        identifier: "com.example.nothere".into(),
    });
    assert_eq!(a.status, Status::Error);
    assert_eq!(
        domains_and_codes(&a),
        vec![("MDMErrorDomain".into(), 12075)]
    );
    // The old simulator refused RemoveProfile of the enrollment profile (iOS acknowledges it
    // and unenrolls: tests/ios_codes.rs).
    let mut lenient = Channel::new(SimOptions::lenient());
    let a = lenient.run(CommandRequest::RemoveProfile {
        identifier: "com.example.enroll".into(),
    });
    assert_eq!(a.status, Status::Error);
    // A profile installed through MDM can be removed, once.
    let a = ch.run(install(clip_profile("com.example.p", "U1", "https://x/1")));
    assert_eq!(a.status, Status::Acknowledged);
    let remove = CommandRequest::RemoveProfile {
        identifier: "com.example.p".into(),
    };
    assert_eq!(ch.run(remove.clone()).status, Status::Acknowledged);
    assert_eq!(ch.run(remove).status, Status::Error);
}

#[test]
fn install_application_without_identifier_is_refused_with_an_error_chain() {
    let mut inner = Dictionary::new();
    inner.insert(
        "RequestType".into(),
        Value::String("InstallApplication".into()),
    );
    inner.insert("ManagementFlags".into(), Value::Integer(1.into()));
    let mut dict = Dictionary::new();
    dict.insert("CommandUUID".into(), Value::String("C-2".into()));
    dict.insert("Command".into(), Value::Dictionary(inner));
    // iOS: a malformed request, 12008 [P `_installApplication:…`].
    let refused = decode_command(&dict).unwrap_err();
    assert_eq!(refused.status, Status::Error);
    let chain = refused.error_chain.unwrap();
    assert_eq!(chain[0].code, 12008);
    // The old simulator's own choice: 12021 under MCMDMErrorDomain.
    let refused =
        baton_sim::ios_commands::decode_command_for(&dict, &SimOptions::lenient()).unwrap_err();
    let chain = refused.error_chain.unwrap();
    assert_eq!(chain[0].domain, "MCMDMErrorDomain");
    assert_eq!(chain[0].code, 12021);
    assert!(
        chain[0]
            .localized_description
            .as_deref()
            .unwrap()
            .contains("InstallApplication")
    );
}

#[test]
fn same_identifier_replaces_and_profile_list_reports_it() {
    let mut ch = Channel::new(SimOptions::default());
    ch.run(install(clip_profile(
        "com.example.p",
        "U1",
        "https://x/old",
    )));
    ch.run(install(clip_profile(
        "com.example.p",
        "U2",
        "https://x/new",
    )));
    assert_eq!(ch.inventory.profiles.len(), 1);
    assert_eq!(ch.inventory.profiles[0].uuid, "U2");
    assert_eq!(ch.inventory.web_clips.len(), 1);
    assert_eq!(ch.inventory.web_clips[0].url, "https://x/new");
    let a = ch.run(CommandRequest::ProfileList);
    let mut report = baton_proto::CommandReport::new(
        baton_proto::Enrollment::new(baton_proto::EnrollmentKeys::device("U")).unwrap(),
        a.status,
        Some(CommandUuid::new("C").unwrap()),
    );
    report.response = a.response;
    let list = report.profile_list().unwrap().unwrap();
    let ids: Vec<(&str, Option<bool>)> = list
        .iter()
        .map(|p| (p.identifier.as_str(), p.is_managed))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("com.example.enroll", Some(false)),
            ("com.example.p", Some(true))
        ]
    );
}

#[test]
fn apps_go_installing_then_managed_and_remove_of_unknown_app_errors() {
    // The lenient sim (every install succeeds, Managed at the next session); iOS's own
    // asynchronous installs and App Store refusals are in `ios_apps.rs`.
    let mut ch = Channel::new(SimOptions::lenient());
    let mut app = InstallApplication::new(AppSource::Identifier("com.example.app".into()));
    app.management_flags = Some(1);
    let a = ch.run(CommandRequest::InstallApplication(app));
    assert_eq!(a.status, Status::Acknowledged);
    assert_eq!(
        ch.inventory.apps["com.example.app"].status,
        AppStatus::Installing
    );
    ch.inventory.settle_apps();
    let a = ch.run(CommandRequest::ManagedApplicationList { identifiers: None });
    let mut report = baton_proto::CommandReport::new(
        baton_proto::Enrollment::new(baton_proto::EnrollmentKeys::device("U")).unwrap(),
        a.status,
        Some(CommandUuid::new("C").unwrap()),
    );
    report.response = a.response;
    let apps = report.managed_application_list().unwrap().unwrap();
    assert_eq!(apps.len(), 1);
    assert!(apps[0].is_installed());
    assert_eq!(apps[0].management_flags, Some(1));
    assert_eq!(
        ch.run(CommandRequest::RemoveApplication {
            identifier: "com.example.app".into()
        })
        .status,
        Status::Acknowledged
    );
    let a = ch.run(CommandRequest::RemoveApplication {
        identifier: "com.example.app".into(),
    });
    assert_eq!(a.status, Status::Error);
    let mut ch = Channel::new(SimOptions {
        app_install: AppInstallTiming::Immediate,
        ..SimOptions::lenient()
    });
    ch.run(CommandRequest::InstallApplication(InstallApplication::new(
        AppSource::ITunesStoreId(42),
    )));
    assert_eq!(ch.inventory.apps["store.app42"].status, AppStatus::Managed);
    // With the App Store's answer for the id, the app carries its bundle id and can be removed
    // by it, as on iOS.
    let mut options = SimOptions::lenient();
    options
        .app_store
        .insert("43".into(), "com.example.store43".into());
    let mut ch = Channel::new(options);
    ch.run(CommandRequest::InstallApplication(InstallApplication::new(
        AppSource::ITunesStoreId(43),
    )));
    assert!(ch.inventory.apps.contains_key("com.example.store43"));
    let a = ch.run(CommandRequest::RemoveApplication {
        identifier: "com.example.store43".into(),
    });
    assert_eq!(a.status, Status::Acknowledged);
    assert!(ch.inventory.apps.is_empty());
}

#[test]
fn locked_device_answers_not_now_for_deferred_commands_only() {
    let mut ch = Channel::new(SimOptions {
        not_now: NotNowPolicy::LockedUntilFirstUnlock,
        ..SimOptions::default()
    });
    ch.locked = true;
    let a = ch.run(install(clip_profile("com.example.p", "U", "https://x")));
    assert_eq!(a.status, Status::NotNow);
    assert!(ch.inventory.profiles.is_empty());
    assert_eq!(
        ch.run(CommandRequest::ProfileList).status,
        Status::Acknowledged
    );
    ch.locked = false;
    let a = ch.run(install(clip_profile("com.example.p", "U", "https://x")));
    assert_eq!(a.status, Status::Acknowledged);
}

#[test]
fn injected_failures_and_unknown_request_types() {
    let options = SimOptions::default().failing("SecurityInfo", "TestDomain", 7, "boom");
    let mut ch = Channel::new(options);
    let a = ch.run(CommandRequest::SecurityInfo);
    assert_eq!(domains_and_codes(&a), vec![("TestDomain".into(), 7)]);
    // iOS answers an unknown RequestType with Error 12021 (`_invalidRequestTypeError`
    // [P `processRequest:`]), not CommandFormatError.
    let unknown = CommandRequest::Raw {
        request_type: "NoSuchCommand".into(),
        keys: Dictionary::new(),
    };
    let a = ch.run(unknown.clone());
    assert_eq!(a.status, Status::Error);
    assert_eq!(a.error_chain.unwrap()[0].code, 12021);
    // The old simulator: CommandFormatError.
    let a = Channel::new(SimOptions::lenient()).run(unknown);
    assert_eq!(a.status, Status::CommandFormatError);
}

#[test]
fn shared_ipad_user_commands() {
    let mut options = SimOptions::default();
    let mut ch = Channel::new(options.clone());
    // Not a Shared iPad: refused.
    assert_eq!(ch.run(CommandRequest::UserList).status, Status::Error);
    options.shared_ipad = true;
    let mut ch = Channel::new(options);
    ch.users = vec![
        SharedUser {
            short_name: "alice@example.org".into(),
            logged_in: true,
            has_data_to_sync: false,
        },
        SharedUser {
            short_name: "bob@example.org".into(),
            logged_in: false,
            has_data_to_sync: false,
        },
    ];
    let delete = |name: &str| CommandRequest::DeleteUser {
        user_name: Some(name.into()),
        force_deletion: None,
        delete_all_users: None,
    };
    // The signed-in user cannot be deleted; after LogOutUser she can.
    assert_eq!(ch.run(delete("alice@example.org")).status, Status::Error);
    assert_eq!(
        ch.run(CommandRequest::LogOutUser).status,
        Status::Acknowledged
    );
    assert_eq!(
        ch.run(delete("alice@example.org")).status,
        Status::Acknowledged
    );
    let a = ch.run(CommandRequest::UserList);
    let users = a.response["Users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(
        users[0].as_dictionary().unwrap()["UserName"].as_string(),
        Some("bob@example.org")
    );
}

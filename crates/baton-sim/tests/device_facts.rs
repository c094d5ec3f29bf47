//! What iOS says about itself and what it accepts where, as the simulator models it (each test
//! names its source, see docs/testing.md): the iOS-shaped Authenticate [Y authenticate.yaml,
//! MD], DeviceInformation answers, user-channel command set [P MDMUserParser], Shared iPad
//! payload channels and supervised-only payloads [Y mdm/profiles], Settings answered per item
//! [P `_settings:`], UserList without FullName [Y user.list]; and the lenient options that turn
//! each of them off.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    CheckinMessage, Command, CommandRequest, CommandUuid, Limits, Payload, Profile, Setting,
    Status, WebClipPayload,
};
use baton_sim::ios_commands::{
    ChannelContext, CommandAnswer, DeviceFacts, SharedUser, answer, installed_profile,
};
use baton_sim::{
    AppStatus, Inventory, ManagedApp, ServerEndpoints, ServerTrust, SimDevice, SimIdentity,
    SimOptions, Transport,
};

struct Channel {
    facts: DeviceFacts,
    inventory: Inventory,
    users: Vec<SharedUser>,
    options: SimOptions,
    user_channel: bool,
}

impl Channel {
    fn new(options: SimOptions) -> Self {
        Self {
            facts: DeviceFacts::for_udid("00008101-0000000000000001", options.shared_ipad),
            inventory: Inventory::default(),
            users: Vec::new(),
            options,
            user_channel: false,
        }
    }

    fn user(mut self) -> Self {
        self.user_channel = true;
        self
    }

    fn run(&mut self, request: CommandRequest) -> CommandAnswer {
        let command = Command::new(CommandUuid::new("C-1").unwrap(), request);
        let results = BTreeMap::new();
        let enrollment = installed_profile(&Profile::new("com.example.enroll", "E"), false);
        let mut ctx = ChannelContext {
            facts: &self.facts,
            identity_cert_der: &[],
            enrollment_profile: Some(&enrollment),
            inventory: &mut self.inventory,
            users: &mut self.users,
            user_channel: self.user_channel,
            locked: false,
            before_first_unlock: false,
            options: &self.options,
            scep_results: &results,
        };
        answer(&mut ctx, &command)
    }
}

fn shared() -> SimOptions {
    SimOptions {
        shared_ipad: true,
        ..SimOptions::default()
    }
}

fn profile_with(payload_type: &str) -> CommandRequest {
    let payload = if payload_type == "com.apple.webClip.managed" {
        WebClipPayload::new("https://baton.example/sign-in", "Sign in")
            .into_payload("com.example.p.clip", "W")
    } else {
        Payload::new(payload_type, "com.example.p.x", "X", Dictionary::new())
    };
    CommandRequest::InstallProfile {
        payload: Profile::new("com.example.p", "P")
            .with_payload(payload)
            .to_xml()
            .unwrap(),
    }
}

fn self_signed() -> SimIdentity {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "00008101-00000000000000AA")
        .unwrap();
    let name = name.build();
    let mut b = x509::X509Builder::new().unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    SimIdentity::new(b.build(), key)
}

fn codes(a: &CommandAnswer) -> Vec<i64> {
    a.error_chain.iter().flatten().map(|i| i.code).collect()
}

#[tokio::test]
async fn authenticate_is_ios_shaped_and_the_lenient_one_is_not() {
    let identity = self_signed();
    let endpoints = ServerEndpoints {
        server_url: "https://127.0.0.1:1/mdm/connect".into(),
        check_in_url: "https://127.0.0.1:1/mdm/checkin".into(),
        topic: "com.apple.mgmt.External.test".into(),
    };
    let transport = Transport::new(&ServerTrust::AcceptAny).unwrap();
    for (options, lenient) in [
        (SimOptions::default(), false),
        (SimOptions::lenient(), true),
    ] {
        let device = SimDevice::with_udid(
            "00008101-00000000000000AA",
            endpoints.clone(),
            identity.clone(),
            options,
            transport.clone(),
        )
        .unwrap();
        let body = device.authenticate_body().unwrap();
        let CheckinMessage::Authenticate(a) =
            CheckinMessage::decode(&body, &Limits::default()).unwrap()
        else {
            panic!("not an Authenticate");
        };
        // [Y authenticate.yaml] DeviceName/Model/ModelName: macOS only; [MD] iOS capture.
        assert_eq!(a.device_name.is_some(), lenient);
        assert_eq!(a.model.is_some(), lenient);
        assert_eq!(a.model_name.is_some(), lenient);
        assert!(a.product_name.is_some() && a.serial_number.is_some());
        assert!(a.os_version.is_some() && a.build_version.is_some());
    }
}

#[test]
fn device_information_answers_the_queried_facts() {
    let mut ch = Channel::new(shared());
    let queries = [
        "ModelName",
        "DeviceName",
        "IsSupervised",
        "IsMultiUser",
        "Nope",
    ];
    let a = ch.run(CommandRequest::DeviceInformation {
        queries: queries.iter().map(|q| (*q).to_owned()).collect(),
    });
    assert_eq!(a.status, Status::Acknowledged);
    let r = a.response["QueryResponses"].as_dictionary().unwrap();
    assert_eq!(r["ModelName"].as_string(), Some("iPad"));
    assert!(r["DeviceName"].as_string().is_some());
    // A Shared iPad is supervised and multi-user; unknown queries are left out.
    assert_eq!(r["IsSupervised"].as_boolean(), Some(true));
    assert_eq!(r["IsMultiUser"].as_boolean(), Some(true));
    assert!(!r.contains_key("Nope"));
    let mut phone = Channel::new(SimOptions::default());
    let a = phone.run(CommandRequest::DeviceInformation {
        queries: vec!["IsSupervised".into(), "IsMultiUser".into()],
    });
    let r = a.response["QueryResponses"].as_dictionary().unwrap();
    assert_eq!(r["IsSupervised"].as_boolean(), Some(false));
    assert_eq!(r["IsMultiUser"].as_boolean(), Some(false));
}

#[test]
fn user_channels_answer_only_their_command_set() {
    // [P MDMUserParser `_allCommands`]: others get Error 12021.
    let mut ch = Channel::new(shared()).user();
    for request in [
        CommandRequest::InstalledApplicationList {
            identifiers: None,
            managed_apps_only: None,
        },
        CommandRequest::CertificateList { managed_only: None },
        CommandRequest::SecurityInfo,
    ] {
        let a = ch.run(request);
        assert_eq!(a.status, Status::Error);
        assert_eq!(codes(&a), [12021]);
    }
    assert_eq!(
        ch.run(CommandRequest::ProfileList).status,
        Status::Acknowledged
    );
    let mut lenient = Channel::new(SimOptions {
        shared_ipad: true,
        ..SimOptions::lenient()
    })
    .user();
    assert_eq!(
        lenient.run(CommandRequest::SecurityInfo).status,
        Status::Acknowledged
    );
}

#[test]
fn shared_ipad_payloads_go_to_their_channel_only() {
    // [Y mdm/profiles] sharedipad flags; refusal codes UNCONFIRMED (status checked only).
    let mut device = Channel::new(shared());
    assert_eq!(
        device.run(profile_with("com.apple.webClip.managed")).status,
        Status::Error
    );
    assert_eq!(
        device.run(profile_with("com.apple.mail.managed")).status,
        Status::Error
    );
    assert_eq!(
        device.run(profile_with("com.apple.wifi.managed")).status,
        Status::Acknowledged
    );
    let mut user = Channel::new(shared()).user();
    assert_eq!(
        user.run(profile_with("com.apple.wifi.managed")).status,
        Status::Error
    );
    assert_eq!(
        user.run(profile_with("com.apple.security.root")).status,
        Status::Error
    );
    assert_eq!(
        user.run(profile_with("com.apple.webClip.managed")).status,
        Status::Acknowledged
    );
    assert_eq!(user.inventory.web_clips.len(), 1);
    // An ordinary iPhone takes both on its one channel.
    let mut phone = Channel::new(SimOptions::default());
    assert_eq!(
        phone.run(profile_with("com.apple.webClip.managed")).status,
        Status::Acknowledged
    );
    assert_eq!(
        phone.run(profile_with("com.apple.wifi.managed")).status,
        Status::Acknowledged
    );
}

#[test]
fn supervised_only_payloads_are_refused_on_unsupervised_devices() {
    // [Y mdm/profiles] `supervised: true`; code UNCONFIRMED.
    let mut phone = Channel::new(SimOptions::default());
    let a = phone.run(profile_with("com.apple.app.lock"));
    assert_eq!(a.status, Status::Error);
    assert!(a.error_chain.unwrap().iter().any(|i| {
        i.localized_description
            .as_deref()
            .is_some_and(|t| t.contains("com.apple.app.lock"))
    }));
    let mut supervised = Channel::new(SimOptions {
        supervised: true,
        ..SimOptions::default()
    });
    assert_eq!(
        supervised.run(profile_with("com.apple.app.lock")).status,
        Status::Acknowledged
    );
    let mut lenient = Channel::new(SimOptions::lenient());
    assert_eq!(
        lenient.run(profile_with("com.apple.app.lock")).status,
        Status::Acknowledged
    );
}

fn settings_results(a: &CommandAnswer) -> Vec<(String, String, Vec<i64>)> {
    a.response["Settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let d = v.as_dictionary().unwrap();
            let codes = d
                .get("ErrorChain")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .map(|i| {
                            i.as_dictionary().unwrap()["ErrorCode"]
                                .as_signed_integer()
                                .unwrap()
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                d["Item"].as_string().unwrap().to_owned(),
                d["Status"].as_string().unwrap().to_owned(),
                codes,
            )
        })
        .collect()
}

fn item(name: &str, status: &str, codes: &[i64]) -> (String, String, Vec<i64>) {
    (name.to_owned(), status.to_owned(), codes.to_vec())
}

#[test]
fn settings_are_answered_per_item() {
    // [P `_settings:`, `_validateSetting:`]: Acknowledged overall, failures per item.
    let settings = vec![
        Setting::new("DeviceName").with("DeviceName", "Front desk"),
        Setting::new("TimeZone").with("TimeZone", "Europe/Berlin"),
        Setting::new("ApplicationConfiguration").with("Identifier", "com.example.unmanaged"),
        Setting::new("ApplicationConfiguration").with("Identifier", "com.example.managed"),
        Setting::new("SharedDeviceConfiguration").with("QuotaSize", 1024),
        Setting::new("DataRoaming").with("Enabled", false),
    ];
    let mut phone = Channel::new(SimOptions::default());
    phone.inventory.apps.insert(
        "com.example.managed".into(),
        ManagedApp {
            identifier: "com.example.managed".into(),
            name: "managed".into(),
            version: "1.0".into(),
            status: AppStatus::Managed,
            management_flags: 0,
            has_configuration: false,
            source: "com.example.managed".into(),
        },
    );
    let a = phone.run(CommandRequest::Settings {
        settings: settings.clone(),
    });
    assert_eq!(a.status, Status::Acknowledged);
    assert_eq!(
        settings_results(&a),
        [
            item("DeviceName", "CommandFormatError", &[]),
            item("TimeZone", "CommandFormatError", &[]),
            item("ApplicationConfiguration", "Error", &[12038]),
            item("ApplicationConfiguration", "Acknowledged", &[]),
            item("SharedDeviceConfiguration", "Error", &[12131]),
            item("DataRoaming", "Acknowledged", &[]),
        ]
    );
    // A Shared iPad with users: supervised, but quotas are fixed [P: 12090].
    let mut ipad = Channel::new(shared());
    ipad.users.push(SharedUser {
        short_name: "alice".into(),
        logged_in: false,
        has_data_to_sync: false,
    });
    let a = ipad.run(CommandRequest::Settings {
        settings: vec![
            Setting::new("DeviceName").with("DeviceName", "Cart 3"),
            Setting::new("MaximumResidentUsers").with("MaximumResidentUsers", 4),
            Setting::new("SharedDeviceConfiguration").with("QuotaSize", 1024),
        ],
    });
    assert_eq!(
        settings_results(&a),
        [
            item("DeviceName", "Acknowledged", &[]),
            item("MaximumResidentUsers", "Error", &[12090]),
            item("SharedDeviceConfiguration", "Error", &[12090]),
        ]
    );
    // A user channel takes only DefaultApplications/AccessibilitySettings [P MDMUserParser].
    let mut user = Channel::new(shared()).user();
    let a = user.run(CommandRequest::Settings {
        settings: vec![
            Setting::new("AccessibilitySettings"),
            Setting::new("DataRoaming").with("Enabled", false),
        ],
    });
    assert_eq!(
        settings_results(&a),
        [
            item("AccessibilitySettings", "Acknowledged", &[]),
            item("DataRoaming", "CommandFormatError", &[]),
        ]
    );
    // The lenient simulator acknowledges everything.
    let mut lenient = Channel::new(SimOptions::lenient());
    let a = lenient.run(CommandRequest::Settings { settings });
    assert!(
        settings_results(&a)
            .iter()
            .all(|(_, s, _)| s == "Acknowledged")
    );
}

#[test]
fn user_list_has_no_full_name() {
    // [Y user.list]: FullName is macOS only.
    for (options, full_name) in [
        (shared(), false),
        (
            SimOptions {
                shared_ipad: true,
                ..SimOptions::lenient()
            },
            true,
        ),
    ] {
        let mut ch = Channel::new(options);
        ch.users.push(SharedUser {
            short_name: "alice".into(),
            logged_in: true,
            has_data_to_sync: false,
        });
        let a = ch.run(CommandRequest::UserList);
        let users = a.response["Users"].as_array().unwrap();
        let u = users[0].as_dictionary().unwrap();
        assert_eq!(u["UserName"].as_string(), Some("alice"));
        assert_eq!(u.contains_key("FullName"), full_name);
    }
}

//! Checks every command (and every profile payload) this crate builds against Apple's schema in
//! `../shared/apple-device-management/mdm`: required keys present, types as documented, values in
//! documented ranges, and no key Apple does not define (recursing into `subkeys`).
//! Skips with a notice when the schema folder is absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, Command, CommandRequest, CommandUuid, InstallApplication, MdmPayload, Payload,
    Pkcs12Payload, Profile, RootCertificatePayload, ScepPayload, Setting, WebClipPayload,
    derive_uuid,
};
use serde_yaml::Value as Yaml;

fn schema_dir() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/apple-device-management/mdm");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("NOTICE: {} not found; schema test skipped", dir.display());
        None
    }
}

/// Loads every yaml of `sub` keyed by `payload.<field>`.
fn load(dir: &Path, sub: &str, field: &str) -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let doc: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Some(name) = doc["payload"][field].as_str() {
            out.insert(name.to_owned(), doc);
        }
    }
    out
}

/// Loads `profiles/<name>.yaml` for each name, keyed by name.
fn load_profiles(dir: &Path, names: &[&str]) -> BTreeMap<String, Yaml> {
    names
        .iter()
        .map(|name| {
            let path = dir.join("profiles").join(format!("{name}.yaml"));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let doc: Yaml =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            ((*name).to_owned(), doc)
        })
        .collect()
}

fn keys_of(y: &Yaml) -> Vec<Yaml> {
    y.as_sequence().cloned().unwrap_or_default()
}

fn type_matches(value: &Value, ty: &str) -> bool {
    match ty {
        "<string>" => matches!(value, Value::String(_)),
        "<integer>" => matches!(value, Value::Integer(_)),
        "<boolean>" => matches!(value, Value::Boolean(_)),
        "<data>" => matches!(value, Value::Data(_)),
        "<array>" => matches!(value, Value::Array(_)),
        "<dictionary>" => matches!(value, Value::Dictionary(_)),
        "<real>" => matches!(value, Value::Real(_)),
        "<date>" => matches!(value, Value::Date(_)),
        "<any>" => true,
        _ => false,
    }
}

fn in_range(value: &Value, range: &[Yaml]) -> bool {
    match value {
        Value::String(s) => range.iter().any(|r| r.as_str() == Some(s)),
        Value::Integer(i) => range.iter().any(|r| r.as_i64() == i.as_signed()),
        _ => true,
    }
}

/// Validates `value` against one schema key entry.
fn check_value(value: &Value, schema: &Yaml, path: &str, errors: &mut Vec<String>) {
    let ty = schema["type"].as_str().unwrap_or("<any>");
    if !type_matches(value, ty) {
        errors.push(format!("{path}: expected {ty}, found {value:?}"));
        return;
    }
    if let Some(range) = schema["rangelist"].as_sequence()
        && !in_range(value, range)
    {
        errors.push(format!("{path}: {value:?} not in rangelist"));
    }
    let subkeys = keys_of(&schema["subkeys"]);
    if subkeys.is_empty() {
        return;
    }
    match value {
        Value::Dictionary(d) => check_dict(d, &subkeys, path, errors),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                if subkeys.len() == 1 {
                    check_value(item, &subkeys[0], &item_path, errors);
                    continue;
                }
                // Alternatives (Settings): pick the one whose Item matches.
                let item_name = item
                    .as_dictionary()
                    .and_then(|d| d.get("Item"))
                    .and_then(Value::as_string);
                let alt = subkeys.iter().find(|alt| {
                    alt["key"].as_str() == item_name
                        || keys_of(&alt["subkeys"]).iter().any(|k| {
                            k["key"].as_str() == Some("Item")
                                && k["rangelist"]
                                    .as_sequence()
                                    .is_some_and(|r| r.iter().any(|v| v.as_str() == item_name))
                        })
                });
                match alt {
                    Some(alt) => check_value(item, alt, &item_path, errors),
                    None => errors.push(format!(
                        "{item_path}: no schema alternative for {item_name:?}"
                    )),
                }
            }
        }
        // A string whose subkeys enumerate the allowed values (DeviceInformation Queries).
        Value::String(s) if !subkeys.iter().any(|k| k["key"].as_str() == Some(s)) => {
            errors.push(format!("{path}: {s:?} is not a documented value"));
        }
        _ => {}
    }
}

/// Validates a dictionary against a list of schema key entries.
fn check_dict(dict: &Dictionary, schema: &[Yaml], path: &str, errors: &mut Vec<String>) {
    let any = schema
        .iter()
        .find(|k| k["key"].as_str().is_some_and(|n| n.starts_with("ANY")));
    for entry in schema {
        let Some(name) = entry["key"].as_str() else {
            continue;
        };
        if name.starts_with("ANY") {
            continue;
        }
        if entry["presence"].as_str() == Some("required") && !dict.contains_key(name) {
            errors.push(format!("{path}.{name}: required key missing"));
        }
    }
    for (key, value) in dict {
        let key_path = format!("{path}.{key}");
        match schema.iter().find(|k| k["key"].as_str() == Some(key)) {
            Some(entry) => check_value(value, entry, &key_path, errors),
            None => match any {
                Some(entry) => check_value(value, entry, &key_path, errors),
                None => errors.push(format!("{key_path}: key not defined by Apple")),
            },
        }
    }
}

/// Schema errors of one encoded command.
fn command_errors(cmd: &Command, schemas: &BTreeMap<String, Yaml>) -> Vec<String> {
    let dict = cmd.to_dictionary();
    let mut errors = Vec::new();
    let Some(inner) = dict.get("Command").and_then(Value::as_dictionary) else {
        return vec!["no Command dictionary".into()];
    };
    if dict.get("CommandUUID").and_then(Value::as_string).is_none() {
        errors.push("CommandUUID missing".into());
    }
    let Some(doc) = schemas.get(cmd.request_type()) else {
        return vec![format!("no schema for RequestType {}", cmd.request_type())];
    };
    let mut body = inner.clone();
    body.remove("RequestType");
    check_dict(&body, &keys_of(&doc["payloadkeys"]), "Command", &mut errors);
    errors
}

fn uuid(n: u32) -> CommandUuid {
    CommandUuid::new(format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

fn dict(entries: &[(&str, Value)]) -> Dictionary {
    entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// One command per typed request (several for InstallApplication sources), every optional key set.
fn every_command() -> Vec<Command> {
    let mut app = InstallApplication::new(AppSource::ITunesStoreId(1_113_153_706));
    app.management_flags = Some(1);
    app.purchase_method = Some(1);
    app.change_management_state = Some("Managed".into());
    app.configuration = Some(dict(&[("ServerURL", Value::from("https://x.example"))]));
    app.attributes = Some(dict(&[(
        "VPNUUID",
        Value::from("8A7B6C5D-4E3F-4A2B-9C1D-0E9F8A7B6C5D"),
    )]));
    let mut by_manifest = InstallApplication::new(AppSource::ManifestUrl(
        "https://apps.example.org/rounds/manifest.plist".into(),
    ));
    by_manifest.management_flags = Some(5);
    let by_identifier =
        InstallApplication::new(AppSource::Identifier("com.microsoft.skype.teams".into()));
    let requests = vec![
        CommandRequest::InstallProfile {
            payload: b"<plist/>".to_vec(),
        },
        CommandRequest::RemoveProfile {
            identifier: "org.example.wifi".into(),
        },
        CommandRequest::ProfileList,
        CommandRequest::InstallApplication(app),
        CommandRequest::InstallApplication(by_manifest),
        CommandRequest::InstallApplication(by_identifier),
        CommandRequest::RemoveApplication {
            identifier: "org.example.rounds".into(),
        },
        CommandRequest::InstalledApplicationList {
            identifiers: Some(vec!["org.example.rounds".into()]),
            managed_apps_only: Some(true),
        },
        CommandRequest::ManagedApplicationList {
            identifiers: Some(vec!["org.example.rounds".into()]),
        },
        CommandRequest::CertificateList {
            managed_only: Some(true),
        },
        CommandRequest::DeviceInformation {
            queries: [
                "UDID",
                "DeviceName",
                "OSVersion",
                "IsMultiUser",
                "SerialNumber",
            ]
            .map(String::from)
            .to_vec(),
        },
        CommandRequest::SecurityInfo,
        CommandRequest::Settings {
            settings: vec![
                Setting::device_name("Front Desk 3"),
                Setting::application_configuration(
                    "org.example.rounds",
                    dict(&[("Ward", Value::from("4B"))]),
                ),
                Setting::maximum_resident_users(4),
            ],
        },
        CommandRequest::LogOutUser,
        CommandRequest::DeleteUser {
            user_name: Some("sam@school.example.org".into()),
            force_deletion: Some(true),
            delete_all_users: None,
        },
        CommandRequest::DeleteUser {
            user_name: None,
            force_deletion: Some(false),
            delete_all_users: Some(true),
        },
        CommandRequest::UserList,
        CommandRequest::DeviceConfigured,
        CommandRequest::UserConfigured,
        CommandRequest::Raw {
            request_type: "RestartDevice".into(),
            keys: dict(&[("NotifyUser", Value::from(true))]),
        },
    ];
    requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| Command::new(uuid(i as u32), r))
        .collect()
}

#[test]
fn every_built_command_matches_apples_schema() {
    let Some(dir) = schema_dir() else { return };
    let schemas = load(&dir, "commands", "requesttype");
    let commands = every_command();
    for t in baton_proto::TYPED_REQUEST_TYPES {
        assert!(
            commands.iter().any(|c| c.request_type() == *t),
            "no schema case for {t}"
        );
    }
    let mut failures = Vec::new();
    for cmd in &commands {
        for e in command_errors(cmd, &schemas) {
            failures.push(format!("{}: {e}", cmd.request_type()));
        }
    }
    assert!(
        failures.is_empty(),
        "schema violations:\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_schema_check_catches_violations() {
    let Some(dir) = schema_dir() else { return };
    let schemas = load(&dir, "commands", "requesttype");
    let mut bad_app = InstallApplication::new(AppSource::ITunesStoreId(1));
    bad_app.management_flags = Some(2); // not in rangelist
    let mut cmd = Command::new(uuid(1), CommandRequest::InstallApplication(bad_app));
    cmd.extra.insert("Frobnicate".into(), Value::from(true));
    let errors = command_errors(&cmd, &schemas);
    assert!(
        errors.iter().any(|e| e.contains("Frobnicate")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("ManagementFlags")),
        "{errors:?}"
    );
    let missing = Command::new(
        uuid(2),
        CommandRequest::Raw {
            request_type: "InstallProfile".into(),
            keys: dict(&[("Payload", Value::from("not data"))]),
        },
    );
    assert!(!command_errors(&missing, &schemas).is_empty());
    let bad_query = Command::new(
        uuid(3),
        CommandRequest::DeviceInformation {
            queries: vec!["FavouriteColour".into()],
        },
    );
    assert!(!command_errors(&bad_query, &schemas).is_empty());
}

fn payload_errors(p: &Payload, schemas: &BTreeMap<String, Yaml>, common: &[Yaml]) -> Vec<String> {
    let Some(doc) = schemas.get(&p.payload_type) else {
        return vec![format!("no schema for {}", p.payload_type)];
    };
    let mut keys = keys_of(&doc["payloadkeys"]);
    for k in common {
        if !keys.iter().any(|x| x["key"] == k["key"]) {
            keys.push(k.clone());
        }
    }
    let mut errors = Vec::new();
    check_dict(&p.to_dictionary(), &keys, &p.payload_type, &mut errors);
    errors
}

#[test]
fn every_built_profile_payload_matches_apples_schema() {
    let Some(dir) = schema_dir() else { return };
    // Only the payload types Baton builds: some other profile yamls nest deeper than
    // serde_yaml's recursion limit.
    let schemas = load_profiles(
        &dir,
        &[
            "CommonPayloadKeys",
            "TopLevel",
            "com.apple.mdm",
            "com.apple.security.scep",
            "com.apple.security.pkcs12",
            "com.apple.security.root",
            "com.apple.webClip.managed",
        ],
    );
    let common = keys_of(&schemas["CommonPayloadKeys"]["payloadkeys"]);
    let mut scep = ScepPayload::new("https://baton.example.org/scep");
    scep.subject = vec![("CN".into(), "device".into())];
    scep.challenge = Some("k3Q9".into());
    scep.ca_fingerprint = Some(vec![0xab; 20]);
    scep.retries = Some(3);
    scep.retry_delay = Some(10);
    scep.name = Some("baton".into());
    let mut web = WebClipPayload::new("https://baton.example.org/portal/x", "Sign in");
    web.icon = Some(vec![0x89, b'P', b'N', b'G']);
    web.full_screen = Some(true);
    web.precomposed = Some(true);
    web.ignore_manifest_scope = Some(true);
    let mut p12 = Pkcs12Payload::new(vec![0x30, 0x82], Some("pw".into()));
    p12.file_name = Some("id.p12".into());
    p12.key_is_extractable = Some(false);
    p12.allow_all_apps_access = Some(false);
    let mut root = RootCertificatePayload::new(vec![0x30, 0x82]);
    root.file_name = Some("ca.cer".into());
    let mut mdm = MdmPayload::new(
        derive_uuid("scep"),
        "com.apple.mgmt.External.1",
        "https://baton.example.org/mdm/server",
        "https://baton.example.org/mdm/checkin",
    );
    mdm.use_development_apns = Some(false);
    let payloads = vec![
        scep.into_payload("a.scep", derive_uuid("a")),
        web.into_payload("a.web", derive_uuid("b")),
        p12.into_payload("a.p12", derive_uuid("c")),
        root.into_payload("a.root", derive_uuid("d")),
        mdm.into_payload("a.mdm", derive_uuid("e")),
    ];
    let mut failures = Vec::new();
    for p in &payloads {
        failures.extend(payload_errors(p, &schemas, &common));
    }
    let profile = payloads
        .into_iter()
        .fold(
            Profile::new("a", derive_uuid("profile")),
            Profile::with_payload,
        )
        .with_display_name("A")
        .with_removal_disallowed(true)
        .with_scope(baton_proto::PayloadScope::System);
    let mut top = profile.to_dictionary();
    top.remove("PayloadContent");
    let top_keys: Vec<Yaml> = keys_of(&schemas["TopLevel"]["payloadkeys"])
        .into_iter()
        .filter(|k| k["key"].as_str() != Some("PayloadContent"))
        .collect();
    check_dict(&top, &top_keys, "Configuration", &mut failures);
    assert!(
        failures.is_empty(),
        "schema violations:\n{}",
        failures.join("\n")
    );
}

//! Shared fixtures for the integration tests: the sign-in design's example organisation and a
//! device simulator that acknowledges every intent.
#![allow(dead_code)]

use std::collections::BTreeMap;

use baton_assign::*;
use baton_proto::Udid;

pub fn item(id: &str) -> ItemId {
    ItemId::new(id).unwrap()
}

pub fn group(id: &str) -> GroupId {
    GroupId::new(id).unwrap()
}

pub fn profile_xml(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>{body}</dict></plist>"#
    )
}

pub fn user(name: &str, email: Option<&str>, dept: Option<&str>) -> User {
    let mut u = User::new(name);
    u.email = email.map(Into::into);
    u.full_name = Some(format!("{name} Example"));
    if let Some(d) = dept {
        u.attributes.insert("dept".into(), AttrValue::Str(d.into()));
    }
    u
}

pub fn dist(id: &str, item_id: &str, target: Target) -> Distribution {
    Distribution {
        id: DistributionId::new(id).unwrap(),
        name: String::new(),
        item: item(item_id),
        target,
    }
}

pub fn groups(ids: &[&str]) -> Target {
    Target::Groups {
        groups: ids.iter().map(|g| group(g)).collect(),
    }
}

pub fn catalog_item(id: &str, scope: Scope, content: ItemContent) -> CatalogItem {
    CatalogItem {
        id: item(id),
        name: id.to_owned(),
        scope,
        leaves_on_sign_out: false,
        content,
    }
}

/// The organisation of the sign-in design: a hospital ward with shared iPhones and iPads.
pub fn hospital() -> Config {
    let users = vec![
        User::nobody(),
        user("alice", Some("alice@example.com"), Some("nursing")),
        user("bob", Some("bob@example.com"), Some("pharmacy")),
        user("carol", None, Some("nursing")),
    ];
    let rule = |s: &str| Rule::parse(s).unwrap();
    let groups_ = vec![
        Group {
            id: group("owners"),
            name: "Signed-out devices".into(),
            members: Membership::UserRule {
                rule: rule("multi-user-owner = true"),
            },
        },
        Group {
            id: group("staff"),
            name: "Everyone who signs in".into(),
            members: Membership::UserRule {
                rule: rule("not multi-user-owner"),
            },
        },
        Group {
            id: group("nurses"),
            name: "Nurses".into(),
            members: Membership::UserRule {
                rule: rule(r#"dept = "nursing""#),
            },
        },
        Group {
            id: group("nurse-ipads"),
            name: "iPads used by nurses".into(),
            members: Membership::AssigneeIn {
                user_group: group("nurses"),
                rule: Some(rule(r#"model_name = "iPad""#)),
            },
        },
    ];
    let mut exchange = catalog_item(
        "exchange",
        Scope::User,
        ItemContent::Profile {
            template: profile_xml(
                "<key>PayloadContent</key><array><dict>\
                 <key>PayloadType</key><string>com.apple.eas.account</string>\
                 <key>EmailAddress</key><string>$USER.email</string>\
                 <key>UserName</key><string>$USER.username</string>\
                 </dict></array>",
            ),
            certificates: vec![item("user-cert")],
        },
    );
    exchange.leaves_on_sign_out = true;
    let catalog = Catalog {
        items: vec![
            catalog_item(
                "sign-in",
                Scope::User,
                ItemContent::WebClip {
                    label: "Sign in".into(),
                    url: "https://baton.example/sign-in/$DEVICE.sign_in_token".into(),
                    sign_in: true,
                    full_screen: true,
                    removable: false,
                },
            ),
            catalog_item(
                "wifi",
                Scope::Device,
                ItemContent::Profile {
                    template: profile_xml(
                        "<key>PayloadContent</key><array><dict>\
                         <key>PayloadType</key><string>com.apple.wifi.managed</string>\
                         <key>SSID_STR</key><string>Ward</string></dict></array>",
                    ),
                    certificates: vec![],
                },
            ),
            exchange,
            catalog_item(
                "user-cert",
                Scope::User,
                ItemContent::Certificate {
                    issued_per: IssuedPer::User,
                    subject: "CN=$USER.username".into(),
                    email: Some("$USER.email".into()),
                    validity_days: 30,
                },
            ),
            catalog_item(
                "teams",
                Scope::Device,
                ItemContent::App {
                    bundle_id: "com.example.teams".into(),
                    // Shared iPads refuse App Store apps without a VPP licence.
                    source: AppSource::AppStore {
                        itunes_store_id: 42,
                        licensing: AppLicensing::Vpp,
                        take_over_user_installed: false,
                    },
                    configuration: Some(profile_xml(
                        "<key>login</key><string>$USER.username</string>",
                    )),
                },
            ),
            catalog_item(
                "med-app",
                Scope::Device,
                ItemContent::App {
                    bundle_id: "com.example.meds".into(),
                    source: AppSource::Manifest {
                        url: "https://apps.example/meds.plist".into(),
                    },
                    configuration: None,
                },
            ),
        ],
    };
    Config {
        directory: Directory {
            users,
            groups: groups_,
        },
        catalog,
        distributions: vec![
            dist("d-sign-in", "sign-in", groups(&["owners"])),
            dist("d-wifi", "wifi", Target::AllDevices),
            dist("d-exchange", "exchange", groups(&["staff"])),
            dist("d-cert", "user-cert", groups(&["staff"])),
            dist("d-teams", "teams", groups(&["staff"])),
            dist("d-meds", "med-app", groups(&["nurse-ipads"])),
        ],
        ..Config::default()
    }
}

pub fn device(udid: &str, model: &str, kind: DeviceKind, assignee: &str) -> Device {
    Device {
        udid: Udid::new(udid).unwrap(),
        serial: Some(format!("SER{udid}")),
        kind,
        assignee: assignee.into(),
        attributes: BTreeMap::from([
            ("model".into(), AttrValue::Str(model.into())),
            ("model_name".into(), AttrValue::Str(model.into())),
            ("os".into(), AttrValue::Str("17.4".into())),
            (
                "sign_in_token".into(),
                AttrValue::Str(format!("tok-{udid}")),
            ),
        ]),
    }
}

pub fn no_failures() -> BTreeMap<ItemId, ItemFailures> {
    BTreeMap::new()
}

/// Plans for the device's assignee and acknowledges every intent; returns the plan.
pub fn converge(cfg: &CompiledConfig, dev: &Device, observed: &mut Observed) -> Plan {
    let desired = cfg.desired(dev).unwrap();
    let p = plan(&desired, observed, &[], &no_failures(), UnixTime(0));
    for i in &p.intents {
        observed.apply(i);
    }
    p
}

/// Short descriptions of intents, for readable assertions: `install_profile exchange@device`.
pub fn describe(p: &Plan) -> Vec<String> {
    p.intents
        .iter()
        .map(|i| {
            let kind = serde_json::to_value(i).unwrap()["intent"]
                .as_str()
                .unwrap()
                .to_owned();
            let what = match i {
                Intent::RemoveApplication { bundle_id, .. } => bundle_id.to_string(),
                Intent::RemoveProfile { identifier, .. } => identifier.to_string(),
                _ => i.item().map(|x| x.to_string()).unwrap_or_default(),
            };
            let ch = match i.channel() {
                Channel::Device => "device".to_owned(),
                Channel::User { short_name } => short_name.clone(),
                _ => "?".to_owned(),
            };
            format!("{kind} {what}@{ch}")
        })
        .collect()
}

//! Table tests for the scenarios of the sign-in design.

mod common;

use baton_assign::*;
use common::*;

fn compiled() -> CompiledConfig {
    hospital().compile().unwrap()
}

#[test]
fn sign_in_web_clip_reaches_nobody_and_leaves_on_sign_in() {
    let cfg = compiled();
    let mut phone = device("P1", "iPhone", DeviceKind::Ordinary, NOBODY_USERNAME);
    let mut obs = Observed::default();
    let p = converge(&cfg, &phone, &mut obs);
    assert_eq!(
        describe(&p),
        vec![
            "install_web_clip sign-in@device",
            "install_profile wifi@device"
        ]
    );
    let Some(Intent::InstallWebClip { url, .. }) = p
        .intents
        .iter()
        .find(|i| matches!(i, Intent::InstallWebClip { .. }))
    else {
        panic!("no web clip")
    };
    assert_eq!(url, "https://baton.example/sign-in/tok-P1");

    phone.assignee = "alice".into();
    let p = converge(&cfg, &phone, &mut obs);
    // The full-screen sign-in clip (a person watches the portal in it) leaves last, after
    // every install: the device is never without a portal clip, and its web app stays open
    // while the person's items arrive.
    let steps = describe(&p);
    assert_eq!(
        steps.last().map(String::as_str),
        Some("remove_profile com.baton.item.sign-in@device"),
        "{steps:?}"
    );
    assert!(steps.len() > 1, "{steps:?}");

    // The clip aimed at staff only is a configuration error.
    let mut bad = hospital();
    bad.distributions[0].target = groups(&["staff"]);
    let lints = lint(&bad);
    assert!(
        lints
            .iter()
            .any(|l| l.code == LintCode::SignInClipNotForNobody && l.severity == Severity::Error),
        "{lints:?}"
    );
    assert!(
        !lint(&hospital())
            .iter()
            .any(|l| l.code == LintCode::SignInClipNotForNobody)
    );
}

#[test]
fn wifi_is_kept_across_users() {
    let cfg = compiled();
    let mut phone = device("P1", "iPhone", DeviceKind::Ordinary, NOBODY_USERNAME);
    let mut obs = Observed::default();
    converge(&cfg, &phone, &mut obs);
    let wifi_uuid = obs.device.profiles["com.baton.item.wifi"]
        .payload_uuid
        .clone();
    for who in ["alice", NOBODY_USERNAME, "bob", NOBODY_USERNAME] {
        phone.assignee = who.into();
        let p = converge(&cfg, &phone, &mut obs);
        assert!(
            describe(&p).iter().all(|d| !d.contains("wifi")),
            "{who}: {:?}",
            describe(&p)
        );
        assert_eq!(
            obs.device.profiles["com.baton.item.wifi"].payload_uuid,
            wifi_uuid
        );
    }
}

#[test]
fn exchange_profile_is_rendered_per_person_after_its_certificate() {
    let cfg = compiled();
    let mut phone = device("P1", "iPhone", DeviceKind::Ordinary, "alice");
    let mut obs = Observed::default();
    let p = converge(&cfg, &phone, &mut obs);
    let d = describe(&p);
    let cert_at = d
        .iter()
        .position(|x| x == "install_certificate user-cert@device");
    let exch_at = d
        .iter()
        .position(|x| x == "install_profile exchange@device");
    assert!(cert_at.unwrap() < exch_at.unwrap(), "{d:?}");
    let profile_of = |p: &Plan| {
        p.intents.iter().find_map(|i| match i {
            Intent::InstallProfile {
                item,
                profile,
                payload_uuid,
                ..
            } if item.as_str() == "exchange" => Some((profile.clone(), payload_uuid.clone())),
            _ => None,
        })
    };
    let (xml, uuid_a) = profile_of(&p).unwrap();
    let v = plist::Value::from_reader_xml(xml.as_bytes()).unwrap();
    let d = v.as_dictionary().unwrap();
    assert_eq!(
        d["PayloadIdentifier"].as_string(),
        Some("com.baton.item.exchange")
    );
    assert_eq!(d["PayloadUUID"].as_string(), Some(&*uuid_a));
    let inner = d["PayloadContent"].as_array().unwrap()[0]
        .as_dictionary()
        .unwrap();
    assert_eq!(inner["EmailAddress"].as_string(), Some("alice@example.com"));
    let cert = p.intents.iter().find_map(|i| match i {
        Intent::InstallCertificate { subject, email, .. } => Some((subject, email)),
        _ => None,
    });
    assert_eq!(
        cert,
        Some((
            &"CN=alice".to_owned(),
            &Some("alice@example.com".to_owned())
        ))
    );

    // Straight hand-over to bob: re-rendered, new PayloadUUID, nothing removed first.
    phone.assignee = "bob".into();
    let p = converge(&cfg, &phone, &mut obs);
    let (xml, uuid_b) = profile_of(&p).unwrap();
    assert_ne!(uuid_a, uuid_b);
    assert!(xml.contains("bob@example.com"));

    // carol has no email: a reported problem, not an empty address; alice's rendition is
    // not left behind.
    phone.assignee = "carol".into();
    let p = converge(&cfg, &phone, &mut obs);
    assert!(p.problems.iter().any(|pr| pr.item.as_str() == "exchange"
        && pr.problem
            == Problem::MissingVariables {
                variables: vec!["$USER.email".into()]
            }));
    assert!(!obs.device.profiles.contains_key("com.baton.item.exchange"));
    assert!(!obs.device.profiles.contains_key("com.baton.item.user-cert"));
}

#[test]
fn sign_out_removes_apps_then_profiles_then_certificates() {
    let cfg = compiled();
    let mut phone = device("P1", "iPhone", DeviceKind::Ordinary, NOBODY_USERNAME);
    let mut obs = Observed::default();
    converge(&cfg, &phone, &mut obs);
    let nobody_state = obs.clone();
    phone.assignee = "alice".into();
    converge(&cfg, &phone, &mut obs);
    assert!(obs.device.apps.contains_key("com.example.teams"));
    phone.assignee = NOBODY_USERNAME.into();
    let p = converge(&cfg, &phone, &mut obs);
    assert_eq!(
        describe(&p),
        vec![
            "remove_application com.example.teams@device",
            "remove_profile com.baton.item.exchange@device",
            "remove_certificate user-cert@device",
            "install_web_clip sign-in@device",
        ]
    );
    assert_eq!(obs, nobody_state);
}

#[test]
fn device_group_tied_to_user_group() {
    let cfg = compiled();
    let has_meds = |dev: &Device| {
        cfg.desired(dev)
            .unwrap()
            .entries
            .iter()
            .any(|e| e.item.as_str() == "med-app")
    };
    assert!(has_meds(&device(
        "I1",
        "iPad",
        DeviceKind::Ordinary,
        "alice"
    )));
    assert!(has_meds(&device(
        "I1",
        "iPad",
        DeviceKind::Ordinary,
        "carol"
    )));
    assert!(!has_meds(&device(
        "I1",
        "iPad",
        DeviceKind::Ordinary,
        "bob"
    )));
    assert!(!has_meds(&device(
        "P1",
        "iPhone",
        DeviceKind::Ordinary,
        "alice"
    )));

    let e = cfg
        .explain(
            &device("I1", "iPad", DeviceKind::Ordinary, "alice"),
            "alice",
        )
        .unwrap();
    let meds = e
        .items
        .iter()
        .find(|i| i.item.as_str() == "med-app")
        .unwrap();
    assert_eq!(
        meds.via,
        vec![Via::DeviceGroup {
            distribution: DistributionId::new("d-meds").unwrap(),
            group: group("nurse-ipads"),
        }]
    );
    let e = cfg
        .explain(&device("I1", "iPad", DeviceKind::Ordinary, "bob"), "bob")
        .unwrap();
    let meds = e
        .items
        .iter()
        .find(|i| i.item.as_str() == "med-app")
        .unwrap();
    assert_eq!(
        meds.verdict,
        Verdict::Excluded {
            reason: Exclusion::NotInTargetGroups {
                distributions: vec![DistributionId::new("d-meds").unwrap()],
                groups: vec![group("nurse-ipads")],
            }
        }
    );
}

#[test]
fn shared_ipad_routes_user_items_to_the_user_channel() {
    let cfg = compiled();
    let mut ipad = device("S1", "iPad", DeviceKind::SharedIpad, "alice");
    let mut obs = Observed::default();
    let p = converge(&cfg, &ipad, &mut obs);
    assert_eq!(
        describe(&p),
        vec![
            "install_certificate user-cert@alice",
            "install_profile wifi@device",
            "install_profile exchange@alice",
            "install_application com.example.meds@device",
            "install_application com.example.teams@device",
        ]
        .into_iter()
        .map(|s| s
            .replace("com.example.meds", "med-app")
            .replace("com.example.teams", "teams"))
        .collect::<Vec<_>>()
    );
    assert!(
        obs.users["alice"]
            .profiles
            .contains_key("com.baton.item.exchange")
    );
    assert!(!obs.device.profiles.contains_key("com.baton.item.exchange"));

    // Nobody signed in: no user channel; the device channel keeps Wi-Fi and loses the apps.
    ipad.assignee = NOBODY_USERNAME.into();
    let desired = cfg.desired(&ipad).unwrap();
    assert_eq!(desired.channels, vec![Channel::Device]);
    assert_eq!(desired.no_channel, vec![item("sign-in")]);
    let p = converge(&cfg, &ipad, &mut obs);
    assert_eq!(
        describe(&p),
        vec![
            "remove_application com.example.meds@device",
            "remove_application com.example.teams@device"
        ]
    );
}

#[test]
fn in_flight_commands_are_not_repeated() {
    let cfg = compiled();
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, "alice");
    let obs = Observed::default();
    let desired = cfg.desired(&phone).unwrap();
    let first = plan(&desired, &obs, &[], &no_failures(), UnixTime(0));
    assert!(first.intents.len() >= 4);
    let again = plan(&desired, &obs, &first.intents, &no_failures(), UnixTime(0));
    assert!(again.is_empty(), "{:?}", describe(&again));
    // Half acknowledged, half still queued.
    let mut half = obs.clone();
    let (done, queued) = first.intents.split_at(2);
    for i in done {
        half.apply(i);
    }
    assert!(plan(&desired, &half, queued, &no_failures(), UnixTime(0)).is_empty());
}

#[test]
fn failures_are_retried_with_backoff_then_given_up() {
    let cfg = compiled();
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, NOBODY_USERNAME);
    let desired = cfg.desired(&phone).unwrap();
    let obs = Observed::default();
    let mut failures = no_failures();
    failures.insert(
        item("wifi"),
        ItemFailures {
            attempts: 1,
            last_failure: UnixTime(1000),
        },
    );
    let p = plan(&desired, &obs, &[], &failures, UnixTime(1010));
    assert_eq!(describe(&p), vec!["install_web_clip sign-in@device"]);
    assert_eq!(p.deferred[0].retry_at, UnixTime(1060));
    let p = plan(&desired, &obs, &[], &failures, UnixTime(1060));
    assert!(describe(&p).contains(&"install_profile wifi@device".to_owned()));
    failures.insert(
        item("wifi"),
        ItemFailures {
            attempts: 3,
            last_failure: UnixTime(1000),
        },
    );
    let p = plan(&desired, &obs, &[], &failures, UnixTime(99_999));
    assert_eq!(describe(&p), vec!["install_web_clip sign-in@device"]);
    assert_eq!(p.gave_up[0].item, item("wifi"));
    assert_eq!(p.gave_up[0].attempts, 3);
}

#[test]
fn foreign_profiles_and_apps_are_never_removed() {
    let cfg = compiled();
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, NOBODY_USERNAME);
    let mut obs = Observed::default();
    obs.device.profiles.insert(
        "com.other.mdm.profile".into(),
        ObservedProfile {
            payload_uuid: "X".into(),
        },
    );
    obs.device.profiles.insert(
        "com.baton.enrollment".into(),
        ObservedProfile {
            payload_uuid: "Y".into(),
        },
    );
    obs.device.apps.insert(
        "com.user.game".into(),
        ObservedApp {
            status: AppStatus::UserInstalledApp,
            baton_managed: false,
            config_hash: None,
        },
    );
    // A Baton profile of an item deleted from the catalog does leave.
    obs.device.profiles.insert(
        "com.baton.item.old-vpn".into(),
        ObservedProfile {
            payload_uuid: "Z".into(),
        },
    );
    let p = converge(&cfg, &phone, &mut obs);
    assert_eq!(
        describe(&p),
        vec![
            "remove_profile com.baton.item.old-vpn@device",
            "install_web_clip sign-in@device",
            "install_profile wifi@device"
        ]
    );
    assert!(obs.device.profiles.contains_key("com.other.mdm.profile"));
    assert!(obs.device.apps.contains_key("com.user.game"));
}

#[test]
fn app_configuration_change_reinstalls_only_that_app() {
    let cfg = compiled();
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, "alice");
    let mut obs = Observed::default();
    converge(&cfg, &phone, &mut obs);
    // The device reports the app still installing: nothing to do.
    obs.device.apps.get_mut("com.example.teams").unwrap().status =
        AppStatus::from_report("Installing");
    assert!(converge(&cfg, &phone, &mut obs).is_empty());
    // The person deleted it: reinstall.
    obs.device.apps.get_mut("com.example.teams").unwrap().status = AppStatus::ManagedButUninstalled;
    let p = converge(&cfg, &phone, &mut obs);
    assert_eq!(describe(&p), vec!["install_application teams@device"]);
    let Intent::InstallApplication { configuration, .. } = &p.intents[0] else {
        panic!()
    };
    assert!(
        configuration
            .as_ref()
            .unwrap()
            .contains("<string>alice</string>")
    );
}

#[test]
fn explain_gives_reasons() {
    let cfg = compiled();
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, "carol");
    let e = cfg.explain(&phone, "carol").unwrap();
    let verdict = |id: &str| {
        e.items
            .iter()
            .find(|i| i.item.as_str() == id)
            .unwrap()
            .verdict
            .clone()
    };
    assert_eq!(
        verdict("wifi"),
        Verdict::Included {
            channel: Channel::Device
        }
    );
    assert!(matches!(
        verdict("exchange"),
        Verdict::Blocked {
            problem: Problem::MissingVariables { .. }
        }
    ));
    assert!(matches!(
        verdict("sign-in"),
        Verdict::Excluded {
            reason: Exclusion::NotInTargetGroups { .. }
        }
    ));
    assert_eq!(e.groups, vec![group("nurses"), group("staff")]);
    assert!(matches!(
        cfg.explain(&phone, "mallory"),
        Err(DesiredError::UnknownUser { .. })
    ));
    // Preview changes nothing and shows the plan.
    let pv = cfg
        .preview(
            &phone,
            "alice",
            &Observed::default(),
            &[],
            &no_failures(),
            UnixTime(0),
        )
        .unwrap();
    assert!(pv.plan.intents.len() >= 4);
    let json = serde_json::to_string(&pv).unwrap();
    assert!(json.contains("\"verdict\":\"included\""));
}

#[test]
fn lints_find_configuration_mistakes() {
    assert!(
        lint(&hospital())
            .iter()
            .all(|l| l.severity != Severity::Error),
        "{:?}",
        lint(&hospital())
    );
    let mut cfg = hospital();
    // exchange must leave on sign-out: giving it to everyone is an error.
    cfg.distributions
        .push(dist("d-ex-all", "exchange", Target::AllDevices));
    // the certificate exchange uses is never delivered.
    cfg.distributions.retain(|d| d.id.as_str() != "d-cert");
    cfg.distributions
        .push(dist("d-ghost", "ghost", groups(&["nope"])));
    cfg.distributions.push(dist("d-empty", "wifi", groups(&[])));
    cfg.catalog.items.push(catalog_item(
        "badge",
        Scope::User,
        ItemContent::WebClip {
            label: "$USER.badge_no".into(),
            url: "https://x.example".into(),
            sign_in: false,
            full_screen: false,
            removable: true,
        },
    ));
    let codes: Vec<LintCode> = lint(&cfg).iter().map(|l| l.code).collect();
    for c in [
        LintCode::LeavingItemKeptByNobody,
        LintCode::CertificateNotDelivered,
        LintCode::UnknownItem,
        LintCode::UnknownGroup,
        LintCode::EmptyCustomTarget,
        LintCode::UnknownUserVariable,
        LintCode::NobodyLacksVariable,
    ] {
        assert!(codes.contains(&c), "{c:?} missing from {codes:?}");
    }
    // `model` is the product code iOS reports (`iPad13,18`): a family name never matches.
    let mut cfg = hospital();
    assert!(
        !lint(&cfg)
            .iter()
            .any(|l| l.code == LintCode::ModelNeverMatches)
    );
    for (id, r) in [
        ("by-family", r#"os >= 17 and model = "iPad""#),
        ("by-code", r#"model = "iPad13,18""#),
    ] {
        cfg.directory.groups.push(Group {
            id: GroupId::new(id).unwrap(),
            name: id.into(),
            members: Membership::DeviceRule {
                rule: Rule::parse(r).unwrap(),
            },
        });
    }
    let found: Vec<Lint> = lint(&cfg)
        .into_iter()
        .filter(|l| l.code == LintCode::ModelNeverMatches)
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].message.contains("model_name = \"iPad\""),
        "{found:?}"
    );
    // An item only nobody gets is removed at every sign-in: a warning naming "all". The
    // sign-in clip (owners only, by design) is not one.
    let nobody_only = |cfg: &Config| -> Vec<Lint> {
        lint(cfg)
            .into_iter()
            .filter(|l| l.code == LintCode::NobodyOnlyItem)
            .collect()
    };
    let mut cfg = hospital();
    assert!(nobody_only(&cfg).is_empty(), "{:?}", nobody_only(&cfg));
    cfg.distributions
        .push(dist("d-wifi-owners", "teams", groups(&["owners"])));
    assert!(nobody_only(&cfg).is_empty(), "teams also goes to staff");
    cfg.distributions.retain(|d| d.id.as_str() != "d-wifi");
    cfg.distributions
        .push(dist("d-wifi-nobody", "wifi", groups(&["owners"])));
    let found = nobody_only(&cfg);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].item.as_ref().map(|i| i.as_str()), Some("wifi"));
    assert!(
        found[0].message.contains("distribute it to all"),
        "{found:?}"
    );
    assert_eq!(found[0].severity, Severity::Warning);
    let mut cfg = hospital();
    cfg.directory.users.retain(|u| !u.is_nobody());
    assert!(lint(&cfg).iter().any(|l| l.code == LintCode::NoNobodyUser));
    let mut cfg = hospital();
    cfg.catalog.items.push(cfg.catalog.items[0].clone());
    assert_eq!(lint(&cfg)[0].code, LintCode::InvalidConfig);
}

/// A Shared iPad refuses Wi-Fi on a user channel and mail on its device channel (Apple's
/// schema, `sharedipad` flags): such items are problems for the operator, never intents, and
/// the lint names them.
#[test]
fn shared_ipad_payloads_outside_their_channel_are_problems() {
    let mut cfg = hospital();
    for (id, scope, payload_type) in [
        ("user-wifi", Scope::User, "com.apple.wifi.managed"),
        ("device-mail", Scope::Device, "com.apple.mail.managed"),
    ] {
        cfg.catalog.items.push(catalog_item(
            id,
            scope,
            ItemContent::Profile {
                template: profile_xml(&format!(
                    "<key>PayloadContent</key><array><dict>\
                     <key>PayloadType</key><string>{payload_type}</string></dict></array>"
                )),
                certificates: vec![],
            },
        ));
        cfg.distributions
            .push(dist(&format!("d-{id}"), id, Target::AllDevices));
    }
    let lints: Vec<Lint> = lint(&cfg)
        .into_iter()
        .filter(|l| l.code == LintCode::PayloadWrongChannel)
        .collect();
    assert_eq!(lints.len(), 2, "{lints:?}");
    let compiled = cfg.compile().unwrap();
    let ipad = device("S2", "iPad", DeviceKind::SharedIpad, "alice");
    let desired = compiled.desired(&ipad).unwrap();
    let wrong: Vec<(String, Problem)> = desired
        .problems
        .iter()
        .map(|p| (p.item.to_string(), p.problem.clone()))
        .collect();
    assert!(wrong.contains(&(
        "user-wifi".into(),
        Problem::WrongChannel {
            payload_type: "com.apple.wifi.managed".into(),
            channel: "user".into()
        }
    )));
    assert!(wrong.contains(&(
        "device-mail".into(),
        Problem::WrongChannel {
            payload_type: "com.apple.mail.managed".into(),
            channel: "device".into()
        }
    )));
    let p = plan(
        &desired,
        &Observed::default(),
        &[],
        &no_failures(),
        UnixTime(0),
    );
    assert!(
        !p.intents.iter().any(|i| matches!(
            i.item().map(ItemId::as_str),
            Some("user-wifi" | "device-mail")
        )),
        "{:?}",
        p.intents
    );
    // An ordinary iPhone has one channel: both install there.
    let phone = device("P2", "iPhone", DeviceKind::Ordinary, "alice");
    assert!(
        !compiled
            .desired(&phone)
            .unwrap()
            .problems
            .iter()
            .any(|p| matches!(p.problem, Problem::WrongChannel { .. }))
    );
}

#[test]
fn config_round_trips_through_json() {
    let cfg = hospital();
    let json = serde_json::to_string_pretty(&cfg).unwrap();
    let back: Config = serde_json::from_str(&json).unwrap();
    assert_eq!(back, cfg);
    assert!(json.contains(r#""rule": "dept = \"nursing\"""#));
}

#[test]
fn groups_of_lists_user_groups_then_device_groups() {
    let cfg = compiled();
    let ipad = device("IPAD-1", "iPad", DeviceKind::Ordinary, "carol");
    let phone = device("PHONE-1", "iPhone", DeviceKind::Ordinary, "carol");
    let names = |v: Vec<GroupId>| v.iter().map(|g| g.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(cfg.groups_of(&ipad, "carol")),
        ["nurses", "staff", "nurse-ipads"]
    );
    assert_eq!(names(cfg.groups_of(&phone, "carol")), ["nurses", "staff"]);
    assert_eq!(names(cfg.groups_of(&ipad, "bob")), ["staff"]);
    assert_eq!(names(cfg.groups_of(&ipad, "nobody")), ["owners"]);
    assert!(cfg.groups_of(&ipad, "mallory").is_empty());
}

/// Shared iPads refuse App Store installs with PurchaseMethod 0
/// (`PurchaseMethodNotSupportedInMultiUser`, 12008 [P `_installApplication:…`]): the planner
/// reports a store app licensed through an Apple ID as a problem there and sends nothing, and
/// the lint warns about it wherever it is distributed.
#[test]
fn shared_ipad_store_app_without_vpp_is_a_problem_not_an_install() {
    let mut config = hospital();
    for item in &mut config.catalog.items {
        if let ItemContent::App {
            source: AppSource::AppStore { licensing, .. },
            ..
        } = &mut item.content
        {
            *licensing = AppLicensing::AppleId;
        }
    }
    let cfg = config.compile().unwrap();
    let ipad = device("S1", "iPad", DeviceKind::SharedIpad, "alice");
    let mut obs = Observed::default();
    let p = converge(&cfg, &ipad, &mut obs);
    assert!(
        !describe(&p)
            .iter()
            .any(|d| d.starts_with("install_application com.example.teams")),
        "{:?}",
        describe(&p)
    );
    assert!(
        p.problems
            .iter()
            .any(|pr| pr.item.as_str() == "teams" && pr.problem == Problem::StoreAppNeedsVpp)
    );
    // The same item on an ordinary iPhone is planned (PurchaseMethod 0 is valid there).
    let phone = device("P1", "iPhone", DeviceKind::Ordinary, "alice");
    let p = converge(&cfg, &phone, &mut Observed::default());
    assert!(p.problems.iter().all(|pr| pr.item.as_str() != "teams"));
    assert!(
        lint(&config)
            .iter()
            .any(|l| l.code == LintCode::StoreAppWithoutVpp
                && l.item.as_ref().is_some_and(|i| i.as_str() == "teams"))
    );
}

/// An acknowledged InstallApplication is "accepted", not installed [Y application.install]:
/// the observed app is on its way (not re-sent), and only ManagedApplicationList's `Managed`
/// makes it installed.
#[test]
fn an_acknowledged_install_is_on_its_way_not_managed() {
    let cfg = compiled();
    let ipad = device("S1", "iPad", DeviceKind::SharedIpad, "alice");
    let mut obs = Observed::default();
    converge(&cfg, &ipad, &mut obs);
    let app = &obs.device.apps["com.example.teams"];
    assert_ne!(app.status, AppStatus::Managed);
    assert!(app.status.is_present());
    let again = converge(&cfg, &ipad, &mut obs);
    assert!(again.intents.is_empty(), "{:?}", describe(&again));
}

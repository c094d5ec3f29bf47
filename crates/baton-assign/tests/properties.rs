//! Property tests over random directories, catalogs and distributions.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use baton_assign::*;
use baton_proto::Udid;
use common::*;
use proptest::prelude::*;

/// A tiny deterministic generator so one `u64` seed describes a whole organisation.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick_str(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

const USER_RULES: &[&str] = &[
    "multi-user-owner",
    "not multi-user-owner",
    r#"dept = "a""#,
    r#"dept = "b" or dept = "c""#,
    "email != \"\"",
    "level >= 2",
];
const DEVICE_RULES: &[&str] = &[
    r#"model = "iPad""#,
    r#"model = "iPhone""#,
    "os >= 17",
    r#"os < 17 and model = "iPad""#,
];
const PROFILE_BODIES: &[&str] = &[
    "<key>A</key><string>static</string>",
    "<key>Mail</key><string>$USER.email</string>",
    "<key>Who</key><string>$USER.username on $DEVICE.serial</string>",
    "<key>Lvl</key><string>${USER.level}</string>",
    "<key>Model</key><string>$DEVICE.model</string>",
];

struct World {
    config: Config,
    devices: Vec<Device>,
}

fn world(seed: u64) -> World {
    let mut g = Gen(seed | 1);
    let mut users = vec![User::nobody()];
    for i in 0..1 + g.below(5) {
        let mut u = User::new(format!("u{i}"));
        if g.chance(70) {
            u.email = Some(format!("u{i}@example.com"));
        }
        u.attributes.insert(
            "dept".into(),
            AttrValue::Str(g.pick(&["a", "b", "c"]).to_string()),
        );
        if g.chance(50) {
            u.attributes
                .insert("level".into(), AttrValue::Int(g.below(4) as i64));
        }
        users.push(u);
    }
    let usernames: Vec<String> = users.iter().map(|u| u.username.clone()).collect();
    let udids: Vec<String> = (0..4).map(|i| format!("D{i}")).collect();

    let n_groups = g.below(7);
    let mut groups_ = Vec::new();
    let mut user_groups: Vec<GroupId> = Vec::new();
    for i in 0..n_groups {
        let id = group(&format!("g{i}"));
        let members = match g.below(5) {
            0 => Membership::Users {
                usernames: usernames.iter().filter(|_| g.chance(40)).cloned().collect(),
            },
            1 => Membership::UserRule {
                rule: Rule::parse(g.pick_str(USER_RULES)).unwrap(),
            },
            2 => Membership::Devices {
                devices: udids.iter().filter(|_| g.chance(40)).cloned().collect(),
            },
            3 => Membership::DeviceRule {
                rule: Rule::parse(g.pick_str(DEVICE_RULES)).unwrap(),
            },
            _ if !user_groups.is_empty() => Membership::AssigneeIn {
                user_group: g.pick(&user_groups).clone(),
                rule: g
                    .chance(50)
                    .then(|| Rule::parse(g.pick_str(DEVICE_RULES)).unwrap()),
            },
            _ => Membership::UserRule {
                rule: Rule::parse(g.pick_str(USER_RULES)).unwrap(),
            },
        };
        if members.kind() == GroupKind::Users {
            user_groups.push(id.clone());
        }
        groups_.push(Group {
            id,
            name: String::new(),
            members,
        });
    }

    let n_items = 1 + g.below(10);
    let mut items = Vec::new();
    let mut certs: Vec<ItemId> = Vec::new();
    for i in 0..n_items {
        let scope = if g.chance(50) {
            Scope::User
        } else {
            Scope::Device
        };
        let content = match g.below(6) {
            0 | 1 => ItemContent::Profile {
                template: profile_xml(g.pick_str(PROFILE_BODIES)),
                certificates: if !certs.is_empty() && g.chance(30) {
                    vec![g.pick(&certs).clone()]
                } else {
                    vec![]
                },
            },
            2 => ItemContent::App {
                bundle_id: format!("com.example.app{i}"),
                source: AppSource::app_store(i as u64),
                configuration: g
                    .chance(50)
                    .then(|| profile_xml(g.pick_str(PROFILE_BODIES))),
            },
            3 => {
                certs.push(item(&format!("i{i}")));
                ItemContent::Certificate {
                    issued_per: if g.chance(50) {
                        IssuedPer::User
                    } else {
                        IssuedPer::Device
                    },
                    subject: "CN=$USER.username".into(),
                    email: g.chance(30).then(|| "$USER.email".into()),
                    validity_days: 30,
                }
            }
            4 => ItemContent::WebClip {
                label: g.pick(&["Sign in", "Hi $USER.username"]).to_string(),
                url: "https://x.example/$DEVICE.udid".into(),
                sign_in: g.chance(20),
                full_screen: false,
                removable: false,
            },
            _ => ItemContent::Settings {
                template: format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><array><dict><key>Item</key><string>DeviceName</string><key>DeviceName</key><string>{}</string></dict></array></plist>"#,
                    g.pick(&["Shared", "$USER.username's phone"])
                ),
            },
        };
        items.push(catalog_item(&format!("i{i}"), scope, content));
    }

    let mut distributions = Vec::new();
    let group_ids: Vec<GroupId> = groups_.iter().map(|g| g.id.clone()).collect();
    for d in 0..g.below(16) {
        let item_id = if g.chance(95) {
            format!("i{}", g.below(n_items))
        } else {
            "ghost".into()
        };
        let target = match g.below(5) {
            0 => Target::AllDevices,
            1 => Target::NoDevices,
            _ => Target::Groups {
                groups: (0..g.below(3))
                    .map(|_| {
                        if g.chance(90) && !group_ids.is_empty() {
                            g.pick(&group_ids).clone()
                        } else {
                            group("missing")
                        }
                    })
                    .collect(),
            },
        };
        distributions.push(dist(&format!("d{d}"), &item_id, target));
    }

    let devices = udids
        .iter()
        .map(|u| Device {
            udid: Udid::new(u.clone()).unwrap(),
            serial: g.chance(80).then(|| format!("S{u}")),
            kind: if g.chance(30) {
                DeviceKind::SharedIpad
            } else {
                DeviceKind::Ordinary
            },
            assignee: NOBODY_USERNAME.into(),
            attributes: BTreeMap::from([
                (
                    "model".into(),
                    AttrValue::Str(g.pick(&["iPad", "iPhone"]).to_string()),
                ),
                (
                    "os".into(),
                    AttrValue::Str(g.pick(&["16.7", "17.0", "18.1"]).to_string()),
                ),
            ]),
        })
        .collect();
    World {
        config: Config {
            directory: Directory {
                users,
                groups: groups_,
            },
            catalog: Catalog { items },
            distributions,
            ..Config::default()
        },
        devices,
    }
}

/// Independent reference: which items does (device, user) want, straight from the config.
fn reference_wanted(cfg: &Config, dev: &Device, user: &User) -> BTreeSet<String> {
    let in_user_group = |gid: &GroupId| {
        cfg.directory.group(gid).is_some_and(|g| match &g.members {
            Membership::Users { usernames } => usernames.contains(&user.username),
            Membership::UserRule { rule } => rule.matches_user(user),
            _ => false,
        })
    };
    let in_group = |gid: &GroupId| {
        cfg.directory.group(gid).is_some_and(|g| match &g.members {
            Membership::Devices { devices } => {
                devices.contains(dev.udid.as_str())
                    || dev.serial.as_ref().is_some_and(|s| devices.contains(s))
            }
            Membership::DeviceRule { rule } => rule.matches_device(dev),
            Membership::AssigneeIn { user_group, rule } => {
                in_user_group(user_group) && rule.as_ref().is_none_or(|r| r.matches_device(dev))
            }
            _ => in_user_group(gid),
        })
    };
    cfg.distributions
        .iter()
        .filter(|d| cfg.catalog.item(&d.item).is_some())
        .filter(|d| match &d.target {
            Target::AllDevices => true,
            Target::Groups { groups } => groups.iter().any(in_group),
            _ => false,
        })
        .map(|d| d.item.to_string())
        .collect()
}

/// (channel, key) of every removal intent.
fn removals(p: &Plan) -> Vec<(Channel, String)> {
    p.intents
        .iter()
        .filter_map(|i| match i {
            Intent::RemoveApplication {
                channel, bundle_id, ..
            } => Some((channel.clone(), bundle_id.to_string())),
            Intent::RemoveProfile {
                channel,
                identifier,
                ..
            }
            | Intent::RemoveCertificate {
                channel,
                identifier,
                ..
            } => Some((channel.clone(), identifier.to_string())),
            _ => None,
        })
        .collect()
}

fn plan_now(cfg: &CompiledConfig, dev: &Device, obs: &Observed, in_flight: &[Intent]) -> Plan {
    plan(
        &cfg.desired(dev).unwrap(),
        obs,
        in_flight,
        &no_failures(),
        UnixTime(0),
    )
}

/// Random junk a device may already have: foreign profiles, stale Baton profiles and apps.
fn messy_observed(seed: u64, cfg: &Config) -> Observed {
    let mut g = Gen(seed.rotate_left(17) | 1);
    let mut o = Observed::default();
    o.device.profiles.insert(
        "com.vendor.foreign".into(),
        ObservedProfile {
            payload_uuid: "F".into(),
        },
    );
    o.device.apps.insert(
        "com.vendor.foreign".into(),
        ObservedApp {
            status: AppStatus::Managed,
            baton_managed: false,
            config_hash: None,
        },
    );
    for it in &cfg.catalog.items {
        if g.chance(30) {
            o.device.profiles.insert(
                format!("com.baton.item.{}", it.id),
                ObservedProfile {
                    payload_uuid: "STALE".into(),
                },
            );
        }
        if let ItemContent::App { bundle_id, .. } = &it.content
            && g.chance(50)
        {
            o.device.apps.insert(
                bundle_id.clone(),
                ObservedApp {
                    status: AppStatus::Failed,
                    baton_managed: true,
                    config_hash: None,
                },
            );
        }
    }
    o
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn plan_apply_plan_is_empty_and_matches_the_reference(seed in any::<u64>()) {
        let w = world(seed);
        let cfg = w.config.compile().unwrap();
        let mut g = Gen(seed ^ 0x9e37_79b9_7f4a_7c15);
        for dev in &w.devices {
            let mut dev = dev.clone();
            dev.assignee = g.pick(&w.config.directory.users).username.clone();
            let user = w.config.directory.user(&dev.assignee).unwrap().clone();
            let mut obs = messy_observed(seed, &w.config);
            let desired = cfg.desired(&dev).unwrap();
            // The compiled index agrees with a direct reading of the configuration.
            let got: BTreeSet<String> = desired.entries.iter().map(|e| e.item.to_string())
                .chain(desired.problems.iter().map(|p| p.item.to_string()))
                .chain(desired.no_channel.iter().map(ToString::to_string))
                .collect();
            prop_assert_eq!(&got, &reference_wanted(&w.config, &dev, &user));
            let p = plan_now(&cfg, &dev, &obs, &[]);
            // Nothing wanted is removed.
            for (ch, key) in removals(&p) {
                // (A Settings item is applied, never installed as a profile: a profile
                // carrying its identifier is junk.)
                prop_assert!(!desired.entries.iter().any(|e| e.channel == ch
                    && e.kind != ItemKind::Settings && e.key == key), "removed wanted {key}");
                prop_assert!(key != "com.vendor.foreign");
            }
            for i in &p.intents { obs.apply(i); }
            let again = plan_now(&cfg, &dev, &obs, &[]);
            prop_assert!(again.is_empty(), "not converged: {:?}", describe(&again));
            // Converged means: every wanted item present with its content.
            for e in &desired.entries {
                let inv = obs.channel(&e.channel).unwrap();
                match e.kind {
                    ItemKind::App => prop_assert_eq!(
                        inv.apps[e.key].config_hash.as_deref(), e.content.as_deref()),
                    ItemKind::Settings => {}
                    _ => prop_assert_eq!(
                        Some(&*inv.profiles[e.key].payload_uuid), e.content.as_deref()),
                }
            }
        }
    }

    #[test]
    fn sign_in_then_sign_out_returns_to_the_nobody_state(seed in any::<u64>()) {
        let w = world(seed);
        let cfg = w.config.compile().unwrap();
        for dev in &w.devices {
            let mut dev = dev.clone();
            let mut obs = Observed::default();
            converge(&cfg, &dev, &mut obs);
            let nobody_state = obs.clone();
            let nobody_keys: BTreeSet<(Channel, String)> = cfg.desired(&dev).unwrap().entries
                .iter().map(|e| (e.channel.clone(), e.key.to_string())).collect();
            for u in w.config.directory.users.iter().filter(|u| !u.is_nobody()) {
                dev.assignee = u.username.clone();
                converge(&cfg, &dev, &mut obs);
                dev.assignee = NOBODY_USERNAME.into();
                let p = converge(&cfg, &dev, &mut obs);
                for r in removals(&p) {
                    prop_assert!(!nobody_keys.contains(&r), "sign-out removed {:?}", r);
                }
                if dev.kind == DeviceKind::Ordinary {
                    prop_assert_eq!(&obs, &nobody_state);
                } else {
                    // The user's own channel stays with their cached account.
                    prop_assert_eq!(&obs.device, &nobody_state.device);
                }
            }
        }
    }

    #[test]
    fn plans_are_deterministic_and_order_independent(seed in any::<u64>()) {
        let w = world(seed);
        let cfg = w.config.compile().unwrap();
        let mut shuffled = w.config.clone();
        shuffled.directory.groups.reverse();
        shuffled.catalog.items.reverse();
        shuffled.distributions.reverse();
        shuffled.directory.users.reverse();
        let cfg2 = shuffled.compile().unwrap();
        for dev in &w.devices {
            for u in &w.config.directory.users {
                let mut dev = dev.clone();
                dev.assignee = u.username.clone();
                let obs = messy_observed(seed, &w.config);
                let a = plan_now(&cfg, &dev, &obs, &[]);
                let b = plan_now(&cfg, &dev, &obs, &[]);
                let c = plan_now(&cfg2, &dev, &obs, &[]);
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(&a, &c);
            }
        }
    }

    #[test]
    fn in_flight_commands_are_never_duplicated(seed in any::<u64>(), mask in any::<u64>()) {
        let w = world(seed);
        let cfg = w.config.compile().unwrap();
        for dev in &w.devices {
            let mut dev = dev.clone();
            let mut obs = Observed::default();
            converge(&cfg, &dev, &mut obs);
            dev.assignee = w.config.directory.users.last().unwrap().username.clone();
            let p = plan_now(&cfg, &dev, &obs, &[]);
            let in_flight: Vec<Intent> = p.intents.iter().enumerate()
                .filter(|(i, _)| mask & (1 << (i % 64)) != 0)
                .map(|(_, x)| x.clone()).collect();
            let q = plan_now(&cfg, &dev, &obs, &in_flight);
            for i in &q.intents {
                prop_assert!(!in_flight.contains(i), "duplicated {:?}", i);
            }
            // Everything queued: nothing more to do.
            prop_assert!(plan_now(&cfg, &dev, &obs, &p.intents).is_empty());
            // Queued ones acknowledged, then the rest: converged.
            for i in in_flight.iter().chain(&q.intents) { obs.apply(i); }
            prop_assert!(plan_now(&cfg, &dev, &obs, &[]).is_empty());
        }
    }

    #[test]
    fn lints_and_explanations_never_panic(seed in any::<u64>()) {
        let w = world(seed);
        let _ = lint(&w.config);
        let cfg = w.config.compile().unwrap();
        for dev in &w.devices {
            for u in &w.config.directory.users {
                let e = cfg.explain(dev, &u.username).unwrap();
                prop_assert_eq!(e.items.len(), w.config.catalog.items.len());
            }
        }
    }
}

/// A random operator edit: retarget distributions, edit or delete an item, add one.
fn edited(cfg: &Config, seed: u64) -> Config {
    let mut g = Gen(seed.rotate_left(29) | 1);
    let mut c = cfg.clone();
    let gids: Vec<GroupId> = c.directory.groups.iter().map(|g| g.id.clone()).collect();
    for d in &mut c.distributions {
        if g.chance(20) {
            d.target = match g.below(3) {
                0 => Target::AllDevices,
                1 => Target::NoDevices,
                _ if !gids.is_empty() => Target::Groups {
                    groups: vec![g.pick(&gids).clone()],
                },
                _ => Target::NoDevices,
            };
        }
    }
    if g.chance(30) && !c.catalog.items.is_empty() {
        let i = g.below(c.catalog.items.len());
        c.catalog.items[i].content = ItemContent::Profile {
            template: profile_xml(g.pick_str(PROFILE_BODIES)),
            certificates: vec![],
        };
    }
    if g.chance(20) && c.catalog.items.len() > 1 {
        let i = g.below(c.catalog.items.len());
        c.catalog.items.remove(i);
    }
    if g.chance(30) {
        c.catalog.items.push(catalog_item(
            "added",
            Scope::Device,
            ItemContent::App {
                bundle_id: "com.example.added".into(),
                source: AppSource::app_store(1),
                configuration: None,
            },
        ));
        c.distributions
            .push(dist("d-added", "added", Target::AllDevices));
    }
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_replan_equals_full_replan(seed in any::<u64>(), edit in any::<u64>()) {
        let w = world(seed);
        let old = w.config.compile().unwrap();
        let new = edited(&w.config, edit).compile().unwrap();
        let change = new.changes_since(&old);
        prop_assert!(!change.is_everything());
        let mut g = Gen(seed ^ edit | 1);
        for dev in &w.devices {
            let mut dev = dev.clone();
            dev.assignee = g.pick(&w.config.directory.users).username.clone();
            let mut obs = Observed::default();
            converge(&old, &dev, &mut obs);
            let desired = new.desired(&dev).unwrap();
            let full = plan(&desired, &obs, &[], &no_failures(), UnixTime(0));
            let incremental = plan_change(&desired, &obs, &[], &no_failures(), UnixTime(0), &change);
            prop_assert_eq!(describe(&incremental), describe(&full));
            prop_assert_eq!(incremental, full);
        }
    }
}

/// `w.config` with one user's email and attributes changed (or a new user added).
fn user_edited(c: &Config, edit: u64) -> (Config, String) {
    let mut c = c.clone();
    let mut g = Gen(edit | 1);
    let users = &mut c.directory.users;
    if g.chance(20) {
        let name = format!("new{}", g.below(100));
        users.push(User::new(name.clone()));
        return (c, name);
    }
    let n = 1 + g.below(users.len() - 1); // never nobody
    let u = &mut users[n];
    u.email = Some(format!("changed-{edit}@example.com"));
    u.attributes.insert(
        "dept".into(),
        AttrValue::Str(g.pick(&["a", "b", "c"]).to_string()),
    );
    if g.chance(50) {
        u.attributes.remove("level");
    }
    let name = u.username.clone();
    (c, name)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The server reconciles only devices assigned to changed users when nothing else changed:
    /// every other device, converged under the old configuration, needs nothing under the new.
    #[test]
    fn a_user_change_affects_only_that_users_devices(seed in any::<u64>(), edit in any::<u64>()) {
        let w = world(seed);
        let old = w.config.compile().unwrap();
        let (edited, name) = user_edited(&w.config, edit);
        let new = edited.compile().unwrap();
        let change = new.changes_since(&old);
        if new.config() == old.config() {
            // The edit happened to change nothing.
            return Ok(());
        }
        prop_assert_eq!(change.changed_users_only(), Some(&[name.clone()][..]));
        let mut g = Gen(seed ^ edit | 1);
        for dev in &w.devices {
            let mut dev = dev.clone();
            dev.assignee = g.pick(&w.config.directory.users).username.clone();
            if dev.assignee == name {
                continue;
            }
            let mut obs = Observed::default();
            converge(&old, &dev, &mut obs);
            let desired = new.desired(&dev).unwrap();
            let p = plan(&desired, &obs, &[], &no_failures(), UnixTime(0));
            prop_assert!(p.intents.is_empty(), "{} needs {:?}", dev.udid, describe(&p));
        }
    }
}

//! Planning benchmarks.
//!
//! - `plan/one_device_steady`: one converged device, 500 catalog items, 201 groups, 50
//!   distributions per item (25,000 distributions): desired state + plan (an empty plan).
//! - `plan/one_device_sign_in`: the same device right after its assignee changed from nobody to
//!   a person (renders the person's templates).
//! - `replan/100k_devices_after_distribution_change`: compile a changed configuration, then
//!   desired state + plan for 100,000 devices whose inventories match the old configuration.
//! - `replan/100k_devices_incremental_after_distribution_change`: the same with
//!   `changes_since` + `plan_change`, which looks only at the changed items.
//!
//! Besides criterion's wall-clock figures it prints on-CPU time per run (Linux schedstat),
//! which does not depend on how busy the (shared) machine is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use baton_assign::*;
use baton_proto::Udid;
use criterion::{Criterion, criterion_group, criterion_main};

const USERS: usize = 200;
const ITEMS: usize = 500;
const DISTS_PER_ITEM: usize = 50;
const SITES: usize = 25;

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn xml(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict>{body}</dict></plist>"#
    )
}

fn organisation(seed: u64) -> Config {
    let mut rng = Rng(seed);
    let mut users = vec![User::nobody()];
    for i in 1..USERS {
        let mut u = User::new(format!("user{i}"));
        u.email = Some(format!("user{i}@example.com"));
        u.full_name = Some(format!("User {i}"));
        u.attributes
            .insert("team".into(), AttrValue::Int((i % 99) as i64));
        users.push(u);
    }
    let mut groups = vec![Group {
        id: GroupId::new("owners").unwrap(),
        name: String::new(),
        members: Membership::UserRule {
            rule: Rule::parse("multi-user-owner").unwrap(),
        },
    }];
    for t in 0..99 {
        let members = if t % 2 == 0 {
            Membership::UserRule {
                rule: Rule::parse(&format!("team = {t}")).unwrap(),
            }
        } else {
            Membership::Users {
                usernames: (1..USERS)
                    .filter(|i| i % 99 == t)
                    .map(|i| format!("user{i}"))
                    .collect(),
            }
        };
        groups.push(Group {
            id: GroupId::new(format!("team-{t}")).unwrap(),
            name: String::new(),
            members,
        });
    }
    for s in 0..SITES {
        for model in ["iPad", "iPhone"] {
            for os in [">= 17", "< 17"] {
                groups.push(Group {
                    id: GroupId::new(format!("site-{s}-{model}-{}", os.len())).unwrap(),
                    name: String::new(),
                    members: Membership::DeviceRule {
                        rule: Rule::parse(&format!(
                            r#"site = "s{s}" and model = "{model}" and os {os}"#
                        ))
                        .unwrap(),
                    },
                });
            }
        }
    }
    let group_ids: Vec<GroupId> = groups.iter().map(|g| g.id.clone()).collect();
    let mut items = Vec::new();
    let mut distributions = Vec::new();
    for i in 0..ITEMS {
        let content = match i % 50 {
            0..=29 => ItemContent::Profile {
                template: xml(&format!(
                    "<key>PayloadContent</key><array><dict><key>PayloadType</key>\
                     <string>com.apple.wifi.managed</string><key>SSID_STR</key>\
                     <string>net-{i}</string></dict></array>"
                )),
                certificates: vec![],
            },
            30..=34 => ItemContent::Profile {
                template: xml(
                    "<key>PayloadContent</key><array><dict><key>PayloadType</key>\
                     <string>com.apple.eas.account</string><key>EmailAddress</key>\
                     <string>$USER.email</string></dict></array>",
                ),
                certificates: vec![],
            },
            35..=36 => ItemContent::Certificate {
                issued_per: IssuedPer::User,
                subject: "CN=$USER.username".into(),
                email: None,
                validity_days: 30,
            },
            37..=44 => ItemContent::App {
                bundle_id: format!("com.example.app{i}"),
                source: AppSource::app_store(i as u64),
                configuration: (i % 2 == 0).then(|| xml("<key>user</key><string>$USER.username</string>")),
            },
            45..=48 => ItemContent::WebClip {
                label: format!("Clip {i}"),
                url: format!("https://intranet.example/{i}"),
                sign_in: i == 45,
                full_screen: false,
                removable: true,
            },
            _ => ItemContent::Settings {
                template: r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><array><dict><key>Item</key><string>DeviceName</string><key>DeviceName</key><string>$USER.full_name</string></dict></array></plist>"#.into(),
            },
        };
        let id = format!("item-{i:03}");
        items.push(CatalogItem {
            id: ItemId::new(&id).unwrap(),
            name: id.clone(),
            scope: Scope::Device,
            leaves_on_sign_out: false,
            content,
        });
        for d in 0..DISTS_PER_ITEM {
            let target = if i % 50 == 0 && d == 0 {
                Target::AllDevices
            } else if i == 45 && d == 0 {
                Target::Groups {
                    groups: vec![GroupId::new("owners").unwrap()],
                }
            } else {
                Target::Groups {
                    groups: vec![group_ids[rng.below(group_ids.len())].clone()],
                }
            };
            distributions.push(Distribution {
                id: DistributionId::new(format!("{id}-d{d}")).unwrap(),
                name: String::new(),
                item: ItemId::new(&id).unwrap(),
                target,
            });
        }
    }
    Config {
        directory: Directory { users, groups },
        catalog: Catalog { items },
        distributions,
        ..Config::default()
    }
}

/// The same organisation after an operator edited distributions: `n` of them retargeted to
/// another group.
fn changed(cfg: &Config, n: usize) -> Config {
    let mut c = cfg.clone();
    let mut rng = Rng(77);
    let gids: Vec<GroupId> = c.directory.groups.iter().map(|g| g.id.clone()).collect();
    for k in 0..n {
        let d = &mut c.distributions[k * 250 + 1];
        d.target = Target::Groups {
            groups: vec![gids[rng.below(gids.len())].clone()],
        };
    }
    c
}

fn device(i: usize, assignee: &str) -> Device {
    Device {
        udid: Udid::new(format!("00008020-{i:016X}")).unwrap(),
        serial: Some(format!("F2L{i:09}")),
        kind: DeviceKind::Ordinary,
        assignee: assignee.into(),
        attributes: BTreeMap::from([
            ("site".into(), AttrValue::Str(format!("s{}", i % SITES))),
            (
                "model".into(),
                AttrValue::Str(
                    if i.is_multiple_of(3) {
                        "iPad"
                    } else {
                        "iPhone"
                    }
                    .into(),
                ),
            ),
            (
                "os".into(),
                AttrValue::Str(
                    if i.is_multiple_of(7) {
                        "16.7.2"
                    } else {
                        "17.4.1"
                    }
                    .into(),
                ),
            ),
        ]),
    }
}

fn converged(cfg: &CompiledConfig, dev: &Device) -> Observed {
    let mut obs = Observed::default();
    let p = plan(
        &cfg.desired(dev).unwrap(),
        &obs,
        &[],
        &BTreeMap::new(),
        UnixTime(0),
    );
    for i in &p.intents {
        obs.apply(i);
    }
    obs
}

/// CPU time of this thread in nanoseconds (Linux `schedstat`), to report figures that do not
/// depend on how busy the shared machine is; 0 where unavailable.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `f` `n` times and prints wall-clock and on-CPU time per run.
fn report(label: &str, n: u32, mut f: impl FnMut()) {
    let cpu = thread_cpu_ns();
    let wall = Instant::now();
    for _ in 0..n {
        f();
    }
    let wall = wall.elapsed() / n;
    let cpu = Duration::from_nanos((thread_cpu_ns() - cpu) / u64::from(n));
    eprintln!("{label}: {wall:?} wall, {cpu:?} on-CPU per run");
}

fn one_device(c: &mut Criterion) {
    let cfg = organisation(1).compile().unwrap();
    let dev = device(12, "user17");
    let obs = converged(&cfg, &dev);
    let failures = BTreeMap::new();
    let d = cfg.desired(&dev).unwrap();
    let p = plan(&d, &obs, &[], &failures, UnixTime(0));
    assert!(p.is_empty());
    eprintln!(
        "one device: {} wanted items, {} profiles + {} apps observed",
        d.entries.len(),
        obs.device.profiles.len(),
        obs.device.apps.len()
    );
    report("one device steady", 20_000, || {
        let d = cfg.desired(black_box(&dev)).unwrap();
        black_box(plan(&d, black_box(&obs), &[], &failures, UnixTime(0)));
    });
    let mut g = c.benchmark_group("plan");
    g.bench_function("one_device_steady", |b| {
        b.iter(|| {
            let d = cfg.desired(black_box(&dev)).unwrap();
            black_box(plan(&d, black_box(&obs), &[], &failures, UnixTime(0)))
        })
    });
    let nobody = device(12, NOBODY_USERNAME);
    let nobody_obs = converged(&cfg, &nobody);
    let n = plan(
        &cfg.desired(&dev).unwrap(),
        &nobody_obs,
        &[],
        &failures,
        UnixTime(0),
    )
    .intents
    .len();
    eprintln!("sign-in plan: {n} intents");
    g.bench_function("one_device_sign_in", |b| {
        b.iter(|| {
            let d = cfg.desired(black_box(&dev)).unwrap();
            black_box(plan(
                &d,
                black_box(&nobody_obs),
                &[],
                &failures,
                UnixTime(0),
            ))
        })
    });
    g.finish();
}

struct Fleet {
    old: CompiledConfig,
    /// One distribution retargeted.
    new: Config,
    /// A hundred distributions (of a hundred items) retargeted.
    new100: Config,
    devices: Vec<Device>,
    observed: Vec<Arc<Observed>>,
}

fn fleet() -> Fleet {
    let old = organisation(1);
    let old_compiled = old.compile().unwrap();
    let new = changed(&old, 1);
    let new100 = changed(&old, 100);
    let assignees: Vec<String> = (0..40)
        .map(|k| {
            if k == 0 {
                NOBODY_USERNAME.to_owned()
            } else {
                format!("user{}", k * 3)
            }
        })
        .collect();
    let mut rng = Rng(5);
    let devices: Vec<Device> = (0..100_000)
        .map(|i| device(i, &assignees[rng.below(assignees.len())]))
        .collect();
    // Inventories converged under the old configuration, shared between devices in the same
    // (device group, assignee) class to keep memory reasonable.
    let mut pool: HashMap<(usize, usize, usize, String), Arc<Observed>> = HashMap::new();
    let observed: Vec<Arc<Observed>> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let key = (
                i % SITES,
                i % 3,
                usize::from(i.is_multiple_of(7)),
                d.assignee.clone(),
            );
            pool.entry(key)
                .or_insert_with(|| Arc::new(converged(&old_compiled, d)))
                .clone()
        })
        .collect();
    let failures = BTreeMap::new();
    let cfg = new100.compile().unwrap();
    let intents: usize = devices
        .iter()
        .zip(&observed)
        .map(|(d, o)| {
            plan(&cfg.desired(d).unwrap(), o, &[], &failures, UnixTime(0))
                .intents
                .len()
        })
        .sum();
    eprintln!(
        "100k devices: {} inventory classes, {intents} intents after the 100-distribution change",
        pool.len()
    );
    Fleet {
        old: old_compiled,
        new,
        new100,
        devices,
        observed,
    }
}

fn many_devices(c: &mut Criterion) {
    let cell = OnceLock::new();
    let failures = BTreeMap::new();
    let f: &Fleet = cell.get_or_init(fleet);
    report("compile 500 items / 25,000 distributions", 3, || {
        black_box(f.new.compile().unwrap());
    });
    let compiled = f.new.compile().unwrap();
    report("100k desired states only", 3, || {
        for d in &f.devices {
            black_box(compiled.desired(d).unwrap());
        }
    });
    for (label, new) in [("1 distribution", &f.new), ("100 distributions", &f.new100)] {
        report(
            &format!("100k devices full re-plan after {label} changed"),
            2,
            || {
                let cfg = new.compile().unwrap();
                let mut n = 0usize;
                for (d, o) in f.devices.iter().zip(&f.observed) {
                    n += plan(&cfg.desired(d).unwrap(), o, &[], &failures, UnixTime(0))
                        .intents
                        .len();
                }
                black_box(n);
            },
        );
        report(
            &format!("100k devices incremental re-plan after {label} changed"),
            2,
            || {
                let cfg = new.compile().unwrap();
                let change = cfg.changes_since(&f.old);
                let mut n = 0usize;
                for (d, o) in f.devices.iter().zip(&f.observed) {
                    n += plan_change(
                        &cfg.desired(d).unwrap(),
                        o,
                        &[],
                        &failures,
                        UnixTime(0),
                        &change,
                    )
                    .intents
                    .len();
                }
                black_box(n);
            },
        );
    }
    let mut g = c.benchmark_group("replan");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("100k_devices_after_distribution_change", |b| {
        b.iter(|| {
            let cfg = f.new.compile().unwrap();
            let mut n = 0usize;
            for (d, o) in f.devices.iter().zip(&f.observed) {
                let desired = cfg.desired(d).unwrap();
                n += plan(&desired, o, &[], &failures, UnixTime(0)).intents.len();
            }
            black_box(n)
        })
    });
    g.bench_function("100k_devices_incremental_after_distribution_change", |b| {
        b.iter(|| {
            let cfg = f.new.compile().unwrap();
            let change = cfg.changes_since(&f.old);
            let mut n = 0usize;
            for (d, o) in f.devices.iter().zip(&f.observed) {
                let desired = cfg.desired(d).unwrap();
                n += plan_change(&desired, o, &[], &failures, UnixTime(0), &change)
                    .intents
                    .len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, one_device, many_devices);
criterion_main!(benches);

//! Disk per device after 10,000 reports, as stored by the server (bounded with
//! `report_bounds`, then `Store::report`, each durable), printed for docs/benchmarks.md:
//!
//! `cargo test --release -p baton-server --test disk_per_device -- --ignored --nocapture`
//!
//! Three cases on a fresh store each: a device flooding orphan Error reports with 1 MB
//! ErrorChains; a device answering 10,000 real commands (small Acknowledged reports), before
//! and after retention deletes them; a device answering 10,000 commands with 1 MB ErrorChains.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::{Instant, SystemTime};

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, PushMagic, PushToken, Status, Topic};
use baton_server::report_bounds::{bounded_error_chain, stored_raw_body};
use baton_store::{
    AuthenticateRecord, CommandQueue, CommandResultStore, EnrollmentStore, NewCommand, Priority,
    Report, SledStore, TokenUpdateRecord,
};

const REPORTS: usize = 10_000;

fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            disk_usage(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}

fn enroll(s: &SledStore) -> EnrollmentId {
    let id = EnrollmentId::device("00008030-001A2B3C4D5E802E").unwrap();
    let topic = Topic::new("com.apple.mgmt.External.disk").unwrap();
    s.authenticate(
        &AuthenticateRecord {
            id: id.clone(),
            topic: topic.clone(),
            raw: vec![b'a'; 1500],
        },
        SystemTime::now(),
    )
    .unwrap();
    s.token_update(
        &TokenUpdateRecord {
            id: id.clone(),
            topic,
            push_token: PushToken::new(vec![3; 32]).unwrap(),
            push_magic: PushMagic::new("magic").unwrap(),
            unlock_token: None,
            raw: vec![b't'; 600],
        },
        SystemTime::now(),
    )
    .unwrap();
    id
}

fn ack_body(udid: &str, uuid: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>CommandUUID</key>\n\t<string>{uuid}</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n\t<key>UDID</key>\n\t<string>{udid}</string>\n</dict>\n</plist>\n"
    )
    .into_bytes()
}

fn huge_error(udid: &str, uuid: &str) -> (Vec<ErrorChainItem>, Vec<u8>) {
    let text = "x".repeat(1024 * 1024);
    let chain = vec![ErrorChainItem {
        code: 4001,
        domain: "MCInstallationErrorDomain".into(),
        localized_description: Some(text.clone()),
        us_english_description: None,
    }];
    let mut raw = ack_body(udid, uuid);
    raw.extend_from_slice(text.as_bytes());
    (chain, raw)
}

struct Case {
    dir: tempfile::TempDir,
    store: SledStore,
    id: EnrollmentId,
    empty: u64,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let id = enroll(&store);
        store.flush().unwrap();
        let empty = disk_usage(dir.path());
        Self {
            dir,
            store,
            id,
            empty,
        }
    }

    fn report(&self, uuid: &str, status: Status, chain: &[ErrorChainItem], raw: &[u8], at: u64) {
        self.store
            .report(
                &Report {
                    id: self.id.clone(),
                    status,
                    command_uuid: Some(CommandUuid::new(uuid).unwrap()),
                    error_chain: bounded_error_chain(chain),
                    raw: stored_raw_body(raw),
                },
                baton_store::from_unix_millis(at),
            )
            .unwrap();
    }

    fn enqueue(&self, uuid: &str, at: u64) {
        self.store
            .enqueue(
                &NewCommand {
                    uuid: CommandUuid::new(uuid).unwrap(),
                    request_type: "ProfileList".into(),
                    body: vec![b'c'; 400],
                    priority: Priority::NORMAL,
                },
                std::slice::from_ref(&self.id),
                baton_store::from_unix_millis(at),
            )
            .unwrap();
    }

    /// Disk growth now, and after closing and reopening the store.
    fn measure(self, label: &str, started: Instant) -> (SledStore, tempfile::TempDir) {
        self.store.flush().unwrap();
        let open = disk_usage(self.dir.path()).saturating_sub(self.empty);
        drop(self.store);
        let store = SledStore::open(self.dir.path()).unwrap();
        let reopened = disk_usage(self.dir.path()).saturating_sub(self.empty);
        println!(
            "{label}: +{:.1} MB on disk ({:.1} MB after reopen) for one device, in {:.1} s",
            open as f64 / 1e6,
            reopened as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        (store, self.dir)
    }
}

#[test]
#[ignore = "disk figures for docs/benchmarks.md, run by hand"]
fn disk_per_device_after_10000_reports() {
    const T0: u64 = 1_700_000_000_000;
    let udid = "00008030-001A2B3C4D5E802E";

    // 1. A flood of orphans with 1 MB ErrorChains (2 MB bodies).
    let started = Instant::now();
    let case = Case::new();
    for i in 0..REPORTS {
        let uuid = format!("JUNK-{i:08}");
        let (chain, raw) = huge_error(udid, &uuid);
        case.report(&uuid, Status::Error, &chain, &raw, T0 + i as u64);
    }
    let id = case.id.clone();
    let (store, _dir) = case.measure("10,000 orphan reports, 1 MB ErrorChain each", started);
    assert_eq!(store.orphan_reports(&id).unwrap().len(), 16);

    // 2. 10,000 real commands answered Acknowledged; then retention deletes them.
    let started = Instant::now();
    let case = Case::new();
    for i in 0..REPORTS {
        let uuid = format!("CMD-{i:08}");
        case.enqueue(&uuid, T0 + i as u64);
        case.report(
            &uuid,
            Status::Acknowledged,
            &[],
            &ack_body(udid, &uuid),
            T0 + i as u64,
        );
    }
    let id = case.id.clone();
    let empty = case.empty;
    let (store, dir) = case.measure("10,000 commands answered Acknowledged", started);
    let started = Instant::now();
    let horizon = baton_store::from_unix_millis(T0 + REPORTS as u64 + 1);
    loop {
        if store.prune_finished(horizon, 1000).unwrap().done {
            break;
        }
    }
    assert!(store.list(&id).unwrap().is_empty());
    store.flush().unwrap();
    let pruned = disk_usage(dir.path()).saturating_sub(empty);
    drop(store);
    let _reopened = SledStore::open(dir.path()).unwrap();
    let reopened = disk_usage(dir.path()).saturating_sub(empty);
    println!(
        "  after retention deleted them: +{:.1} MB ({:.1} MB after reopen), pruned in {:.1} s",
        pruned as f64 / 1e6,
        reopened as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    // 3. 10,000 real commands answered Error with 1 MB ErrorChains.
    let started = Instant::now();
    let case = Case::new();
    for i in 0..REPORTS {
        let uuid = format!("ERR-{i:08}");
        case.enqueue(&uuid, T0 + i as u64);
        let (chain, raw) = huge_error(udid, &uuid);
        case.report(&uuid, Status::Error, &chain, &raw, T0 + i as u64);
    }
    let _ = case.measure(
        "10,000 commands answered Error, 1 MB ErrorChain each",
        started,
    );
}

/// Steady state under retention: rounds of 10,000 answered commands, each round followed by a
/// retention pass that deletes them. sled does not give freed space back to the file system,
/// but it reuses it: the data directory stops growing after the first round.
#[test]
#[ignore = "disk figures for docs/benchmarks.md, run by hand"]
fn disk_per_device_with_retention_steady_state() {
    const T0: u64 = 1_700_000_000_000;
    let udid = "00008030-001A2B3C4D5E802E";
    let case = Case::new();
    for round in 0..4u64 {
        let started = Instant::now();
        let base = T0 + round * 1_000_000;
        for i in 0..REPORTS as u64 {
            let uuid = format!("CMD-{round}-{i:08}");
            case.enqueue(&uuid, base + i);
            case.report(
                &uuid,
                Status::Acknowledged,
                &[],
                &ack_body(udid, &uuid),
                base + i,
            );
        }
        case.store.flush().unwrap();
        let written = disk_usage(case.dir.path()).saturating_sub(case.empty);
        let horizon = baton_store::from_unix_millis(base + REPORTS as u64 + 1);
        while !case.store.prune_finished(horizon, 1000).unwrap().done {}
        case.store.flush().unwrap();
        let pruned = disk_usage(case.dir.path()).saturating_sub(case.empty);
        println!(
            "round {}: +{:.1} MB after 10,000 answered commands, +{:.1} MB after retention ({:.1} s)",
            round + 1,
            written as f64 / 1e6,
            pruned as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
}

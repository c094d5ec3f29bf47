//! Crash safety: a child process works the store (enqueue to several channels, acknowledge,
//! keyspace compare-and-swap) from several threads and prints a line after each operation the
//! store acknowledged; the parent SIGKILLs it at random points, reopens the store and checks
//! that nothing acknowledged was lost, no command is both completed and queued, and every tree
//! reads and decodes.
//!
//! The child is this test binary re-executed with `BATON_STORE_CRASH_DIR` set.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use baton_proto::{CommandUuid, EnrollmentId, PushMagic, PushToken, Status, Topic};
use baton_store::{
    AuthenticateRecord, CasOutcome, Collection, CommandQueue, CommandResultStore, CommandState,
    EnrollmentStore, Keyspace, NewCommand, Priority, Report, SledStore, TokenUpdateRecord,
};
use rand::Rng;

const DIR_VAR: &str = "BATON_STORE_CRASH_DIR";
const ROUND_VAR: &str = "BATON_STORE_CRASH_ROUND";
const THREADS: usize = 4;
const DEVICES_PER_THREAD: usize = 2;
const ROUNDS: usize = 6;

fn device(t: usize, d: usize) -> EnrollmentId {
    EnrollmentId::device(&format!("dev-{t}-{d}")).unwrap()
}

fn enroll_if_new(s: &SledStore, id: &EnrollmentId) {
    if s.enrollment(id).unwrap().is_some() {
        return;
    }
    let topic = Topic::new("com.apple.mgmt.External.crash").unwrap();
    let now = SystemTime::now();
    s.authenticate(
        &AuthenticateRecord {
            id: id.clone(),
            topic: topic.clone(),
            raw: b"auth".to_vec(),
        },
        now,
    )
    .unwrap();
    s.token_update(
        &TokenUpdateRecord {
            id: id.clone(),
            topic,
            push_token: PushToken::new(vec![1; 32]).unwrap(),
            push_magic: PushMagic::new("magic").unwrap(),
            unlock_token: None,
            raw: b"tu".to_vec(),
        },
        now,
    )
    .unwrap();
}

/// The child: works until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return; // normal test run: nothing to do
    };
    let round: usize = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let s = std::sync::Arc::new(SledStore::open(&dir).unwrap());
    for t in 0..THREADS {
        for d in 0..DEVICES_PER_THREAD {
            enroll_if_new(&s, &device(t, d));
        }
    }
    println!("@@ READY");
    let counters = Collection::new("counters").unwrap();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            let counters = counters.clone();
            std::thread::spawn(move || {
                let ids: Vec<EnrollmentId> =
                    (0..DEVICES_PER_THREAD).map(|d| device(t, d)).collect();
                let key = format!("t{t}");
                for i in 0.. {
                    let uuid = format!("r{round}-t{t}-{i}");
                    let cmd = NewCommand {
                        uuid: CommandUuid::new(uuid.clone()).unwrap(),
                        request_type: "InstallProfile".into(),
                        body: vec![b'x'; 200],
                        priority: Priority::NORMAL,
                    };
                    s.enqueue(&cmd, &ids, SystemTime::now()).unwrap();
                    println!("@@ ENQ {uuid}");
                    for id in &ids {
                        let Some(next) = s.next_command(id).unwrap() else {
                            continue;
                        };
                        let report = Report {
                            id: id.clone(),
                            status: Status::Acknowledged,
                            command_uuid: Some(next.uuid.clone()),
                            error_chain: vec![],
                            raw: vec![b'r'; 300],
                        };
                        s.report(&report, SystemTime::now()).unwrap();
                        println!("@@ ACK {id} {}", next.uuid);
                    }
                    // A counter advanced by compare-and-swap: never goes back after a crash.
                    let cur = s.get(&counters, key.as_bytes()).unwrap();
                    let n = cur
                        .as_deref()
                        .map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
                    let next = (n + 1).to_be_bytes();
                    let out = s
                        .compare_and_swap(&counters, key.as_bytes(), cur.as_deref(), Some(&next))
                        .unwrap();
                    assert_eq!(out, CasOutcome::Applied);
                    println!("@@ KS {key} {}", n + 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[derive(Default)]
struct Acknowledged {
    enqueued: Vec<String>,
    acked: Vec<(String, String)>,
    counters: HashMap<String, u64>,
}

fn parse(out: &[u8], into: &mut Acknowledged) -> bool {
    let text = String::from_utf8_lossy(out);
    // Only complete lines count: the last one may have been cut by the kill.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let mut ready = false;
    for line in complete.lines() {
        // The harness may print its own text before ours on the same line.
        let Some(start) = line.find("@@ ") else {
            continue;
        };
        let mut f = line[start..].split_whitespace();
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some("@@"), Some("READY"), _, _) => ready = true,
            (Some("@@"), Some("ENQ"), Some(u), _) => into.enqueued.push(u.to_owned()),
            (Some("@@"), Some("ACK"), Some(id), Some(u)) => {
                into.acked.push((id.to_owned(), u.to_owned()));
            }
            (Some("@@"), Some("KS"), Some(k), Some(v)) => {
                let v: u64 = v.parse().unwrap();
                let e = into.counters.entry(k.to_owned()).or_default();
                *e = (*e).max(v);
            }
            _ => {}
        }
    }
    ready
}

fn check(dir: &Path, seen: &Acknowledged) -> (usize, u64) {
    let s = SledStore::open(dir).unwrap();
    let rows = s.verify().unwrap();
    for uuid in &seen.enqueued {
        let uuid = CommandUuid::new(uuid.clone()).unwrap();
        assert!(s.command(&uuid).unwrap().is_some(), "lost enqueued {uuid}");
        let t: usize = uuid.as_str().split('-').nth(1).unwrap()[1..]
            .parse()
            .unwrap();
        for d in 0..DEVICES_PER_THREAD {
            let r = s.command_result(&device(t, d), &uuid).unwrap();
            assert!(r.is_some(), "lost delivery of {uuid}");
        }
    }
    for (id, uuid) in &seen.acked {
        let id = EnrollmentId::parse(id).unwrap();
        let r = s
            .command_result(&id, &CommandUuid::new(uuid.clone()).unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("lost result {id} {uuid}"));
        assert_eq!(r.state, CommandState::Acknowledged, "{id} {uuid}");
    }
    let counters = Collection::new("counters").unwrap();
    for (k, v) in &seen.counters {
        let stored = s.get(&counters, k.as_bytes()).unwrap().unwrap();
        let stored = u64::from_be_bytes(stored.as_slice().try_into().unwrap());
        assert!(stored >= *v, "counter {k} went back from {v} to {stored}");
    }
    (seen.acked.len(), rows)
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seen = Acknowledged::default();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(DIR_VAR, dir.path())
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        std::thread::sleep(Duration::from_millis(rng.random_range(300..1200)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = reader.join().unwrap();
        let before = seen.acked.len();
        assert!(
            parse(&out, &mut seen),
            "round {round}: child never got ready"
        );
        let (acked, rows) = check(dir.path(), &seen);
        eprintln!(
            "round {round}: {} new acks, {acked} acks checked, {} enqueues, {rows} rows verified",
            acked - before,
            seen.enqueued.len()
        );
    }
    assert!(!seen.acked.is_empty(), "the child acknowledged nothing");
}

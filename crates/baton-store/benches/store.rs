//! Store benchmarks on this machine:
//! - criterion: enqueue of one command to 10,000 enrollments in one call;
//! - custom, printed: next-command + report round trips per second over 10,000 enrollments with
//!   1, 8, 64 and 256 caller threads (group commit shares fsyncs between them), and with 64 and
//!   256 tasks calling through `spawn_blocking` on a two-worker tokio runtime, as the server does;
//! - custom, printed: on-disk bytes per enrollment with 10 results each.
//!
//! Run: `cargo bench -p baton-store` (or `-- enqueue`, `-- round_trips`, `-- disk` for one part).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use baton_proto::{CommandUuid, EnrollmentId, PushMagic, PushToken, Status, Topic};
use baton_store::{
    AuthenticateRecord, CommandQueue, EnrollmentStore, NewCommand, Priority, Report, SledStore,
    TokenUpdateRecord,
};
use criterion::Criterion;

const ENROLLMENTS: usize = 10_000;

fn udid(i: usize) -> String {
    format!("00008030-{i:016X}")
}

/// Realistic sizes: an Authenticate plist (~700 B), a TokenUpdate (~600 B, no UnlockToken),
/// an Acknowledged report (~350 B), a command plist (~600 B).
fn authenticate_raw(u: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>BuildVersion</key>\n\t<string>22F76</string>\n\t<key>DeviceName</key>\n\t<string>iPhone</string>\n\t<key>MessageType</key>\n\t<string>Authenticate</string>\n\t<key>Model</key>\n\t<string>iPhone14,5</string>\n\t<key>ModelName</key>\n\t<string>iPhone</string>\n\t<key>OSVersion</key>\n\t<string>18.5</string>\n\t<key>ProductName</key>\n\t<string>iPhone14,5</string>\n\t<key>SerialNumber</key>\n\t<string>F2LXQ1ABCD12</string>\n\t<key>Topic</key>\n\t<string>com.apple.mgmt.External.2c0e1c3a-2f43-4a53-9d9e-6c1f8f3c2b11</string>\n\t<key>UDID</key>\n\t<string>{u}</string>\n</dict>\n</plist>\n"
    )
    .into_bytes()
}

fn token_update_raw(u: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>AwaitingConfiguration</key>\n\t<false/>\n\t<key>MessageType</key>\n\t<string>TokenUpdate</string>\n\t<key>PushMagic</key>\n\t<string>5E2D6C1A-9F0B-4E0C-8D7A-3B1C2D4E5F60</string>\n\t<key>Token</key>\n\t<data>\n\tq83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=\n\t</data>\n\t<key>Topic</key>\n\t<string>com.apple.mgmt.External.2c0e1c3a-2f43-4a53-9d9e-6c1f8f3c2b11</string>\n\t<key>UDID</key>\n\t<string>{u}</string>\n</dict>\n</plist>\n"
    )
    .into_bytes()
}

fn ack_raw(u: &str, cmd: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n\t<key>CommandUUID</key>\n\t<string>{cmd}</string>\n\t<key>Status</key>\n\t<string>Acknowledged</string>\n\t<key>UDID</key>\n\t<string>{u}</string>\n</dict>\n</plist>\n"
    )
    .into_bytes()
}

fn command(uuid: &str) -> NewCommand {
    NewCommand {
        uuid: CommandUuid::new(uuid).unwrap_or_else(|e| panic!("{e}")),
        request_type: "InstallProfile".into(),
        body: vec![b'p'; 600],
        priority: Priority::NORMAL,
    }
}

fn cmd_uuid(n: u64) -> String {
    format!("6B29FC40-CA47-1067-B31D-{n:012X}")
}

/// Enrolls `n` devices from 64 threads (so their fsyncs are shared too).
fn enroll_all(s: &Arc<SledStore>, n: usize) -> Vec<EnrollmentId> {
    let ids: Vec<EnrollmentId> = (0..n)
        .map(|i| EnrollmentId::device(&udid(i)).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let topic = Topic::new("com.apple.mgmt.External.2c0e1c3a-2f43-4a53-9d9e-6c1f8f3c2b11")
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::scope(|scope| {
        for chunk in ids.chunks(n.div_ceil(64)) {
            let (s, topic) = (s.clone(), topic.clone());
            scope.spawn(move || {
                for id in chunk {
                    let now = SystemTime::now();
                    let auth = AuthenticateRecord {
                        id: id.clone(),
                        topic: topic.clone(),
                        raw: authenticate_raw(id.as_str()),
                    };
                    s.authenticate(&auth, now).unwrap_or_else(|e| panic!("{e}"));
                    let tu = TokenUpdateRecord {
                        id: id.clone(),
                        topic: topic.clone(),
                        push_token: PushToken::new(vec![0xab; 32])
                            .unwrap_or_else(|e| panic!("{e}")),
                        push_magic: PushMagic::new("5E2D6C1A-9F0B-4E0C-8D7A-3B1C2D4E5F60")
                            .unwrap_or_else(|e| panic!("{e}")),
                        unlock_token: None,
                        raw: token_update_raw(id.as_str()),
                    };
                    s.token_update(&tu, now).unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    ids
}

/// Drains every queue with `threads` callers doing next_command + report(Acknowledged).
/// Returns round trips and seconds.
fn drain(s: &Arc<SledStore>, ids: &[EnrollmentId], threads: usize) -> (u64, f64) {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(threads)) {
            let (s, done) = (s.clone(), &done);
            scope.spawn(move || {
                for id in chunk {
                    while let Some(c) = s.next_command(id).unwrap_or_else(|e| panic!("{e}")) {
                        let r = Report {
                            id: id.clone(),
                            status: Status::Acknowledged,
                            command_uuid: Some(c.uuid.clone()),
                            error_chain: Vec::new(),
                            raw: ack_raw(id.as_str(), c.uuid.as_str()),
                        };
                        s.report(&r, SystemTime::now())
                            .unwrap_or_else(|e| panic!("{e}"));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

fn dir_bytes(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut apparent, mut allocated) = (0, 0);
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                apparent += m.len();
                allocated += m.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

fn bench_enqueue(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
    let ids = enroll_all(&s, ENROLLMENTS);
    let n = AtomicU64::new(0);
    let mut g = c.benchmark_group("enqueue");
    g.sample_size(10);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("one_command_to_10000_enrollments", |b| {
        b.iter(|| {
            let cmd = command(&cmd_uuid(n.fetch_add(1, Ordering::Relaxed)));
            s.enqueue(&cmd, &ids, SystemTime::now())
                .unwrap_or_else(|e| panic!("{e}"));
        });
    });
    g.finish();
}

fn round_trips() {
    for threads in [1usize, 8, 64, 256] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
        let ids = enroll_all(&s, ENROLLMENTS);
        let per = if threads == 1 { 1 } else { 3 };
        for k in 0..per {
            s.enqueue(&command(&cmd_uuid(k)), &ids, SystemTime::now())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let before = s.durability_stats();
        let (n, secs) = drain(&s, &ids, threads);
        let after = s.durability_stats();
        println!(
            "round_trips threads={threads:>2} enrollments={ENROLLMENTS} round_trips={n} \
             secs={secs:.2} per_sec={:.0} fsyncs={} commits_per_fsync={:.1}",
            n as f64 / secs,
            after.flushes - before.flushes,
            (after.commits - before.commits) as f64
                / (after.flushes - before.flushes).max(1) as f64
        );
    }
}

/// Like [`drain`], the way the server calls the store: `concurrency` tasks on a two-worker
/// tokio runtime, each round trip one `spawn_blocking` call (next_command + report).
fn drain_spawn_blocking(
    s: &Arc<SledStore>,
    ids: &[EnrollmentId],
    concurrency: usize,
) -> (u64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(512)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for chunk in ids.chunks(ids.len().div_ceil(concurrency)) {
            let (s, done, chunk) = (s.clone(), done.clone(), chunk.to_vec());
            tasks.push(tokio::spawn(async move {
                for id in chunk {
                    loop {
                        let (s, id) = (s.clone(), id.clone());
                        let worked = tokio::task::spawn_blocking(move || {
                            let Some(c) = s.next_command(&id).unwrap_or_else(|e| panic!("{e}"))
                            else {
                                return false;
                            };
                            let r = Report {
                                id: id.clone(),
                                status: Status::Acknowledged,
                                command_uuid: Some(c.uuid.clone()),
                                error_chain: Vec::new(),
                                raw: ack_raw(id.as_str(), c.uuid.as_str()),
                            };
                            s.report(&r, SystemTime::now())
                                .unwrap_or_else(|e| panic!("{e}"));
                            true
                        })
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                        if !worked {
                            break;
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
    });
    (done.load(Ordering::Relaxed), start.elapsed().as_secs_f64())
}

fn round_trips_spawn_blocking() {
    for concurrency in [64usize, 256] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = Arc::new(SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{e}")));
        let ids = enroll_all(&s, ENROLLMENTS);
        for k in 0..3 {
            s.enqueue(&command(&cmd_uuid(k)), &ids, SystemTime::now())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let before = s.durability_stats();
        let (n, secs) = drain_spawn_blocking(&s, &ids, concurrency);
        let after = s.durability_stats();
        println!(
            "round_trips_spawn_blocking tasks={concurrency:>3} enrollments={ENROLLMENTS} round_trips={n} \
             secs={secs:.2} per_sec={:.0} fsyncs={} commits_per_fsync={:.1}",
            n as f64 / secs,
            after.flushes - before.flushes,
            (after.commits - before.commits) as f64
                / (after.flushes - before.flushes).max(1) as f64
        );
    }
}

fn disk_size() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("db");
    {
        let s = Arc::new(SledStore::open(&path).unwrap_or_else(|e| panic!("{e}")));
        let ids = enroll_all(&s, ENROLLMENTS);
        for k in 0..10 {
            s.enqueue(&command(&cmd_uuid(k)), &ids, SystemTime::now())
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let (n, _) = drain(&s, &ids, 64);
        assert_eq!(n, 10 * ENROLLMENTS as u64);
        s.flush().unwrap_or_else(|e| panic!("{e}"));
        let (apparent, allocated) = dir_bytes(&path);
        println!(
            "disk after_flush enrollments={ENROLLMENTS} results_each=10 apparent_bytes={apparent} \
             allocated_bytes={allocated} per_enrollment_apparent={} per_enrollment_allocated={} sled_size_on_disk={}",
            apparent / ENROLLMENTS as u64,
            allocated / ENROLLMENTS as u64,
            s.size_on_disk().unwrap_or(0)
        );
    }
    let s = SledStore::open(&path).unwrap_or_else(|e| panic!("{e}"));
    let rows = s.verify().unwrap_or_else(|e| panic!("{e}"));
    let mut export = Vec::new();
    s.export(&mut export).unwrap_or_else(|e| panic!("{e}"));
    drop(s);
    let mut per_tree: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for line in export
        .split(|b| *b == b'\n')
        .skip(1)
        .filter(|l| !l.is_empty())
    {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| panic!("{e}"));
        let len = |f: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(v[f].as_str().unwrap_or(""))
                .map_or(0, |b| b.len() as u64)
        };
        let e = per_tree
            .entry(v["tree"].as_str().unwrap_or("?").to_owned())
            .or_default();
        e.0 += 1;
        e.1 += len("key");
        e.2 += len("value");
    }
    for (tree, (rows, k, v)) in per_tree {
        println!(
            "logical tree={tree} rows={rows} key_bytes_per_enrollment={} value_bytes_per_enrollment={}",
            k / ENROLLMENTS as u64,
            v / ENROLLMENTS as u64
        );
    }
    let (apparent, allocated) = dir_bytes(&path);
    println!(
        "disk after_reopen apparent_bytes={apparent} allocated_bytes={allocated} \
         per_enrollment_apparent={} per_enrollment_allocated={} rows={rows} export_bytes_per_enrollment={}",
        apparent / ENROLLMENTS as u64,
        allocated / ENROLLMENTS as u64,
        export.len() / ENROLLMENTS
    );
}

fn main() {
    // `cargo bench -p baton-store --bench store -- NAME` runs the parts whose name contains NAME
    // (enqueue, round_trips, disk).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut c = Criterion::default().configure_from_args();
    bench_enqueue(&mut c);
    c.final_summary();
    if wanted("round_trips") {
        round_trips();
        round_trips_spawn_blocking();
    }
    if wanted("disk") {
        disk_size();
    }
}

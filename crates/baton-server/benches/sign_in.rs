//! Server time of a sign-in (issue 9: "sign-in-to-commands-queued-and-pushed", target p99 under
//! 20 ms) for a person with 50 profiles and 30 apps, over a real [`SledStore`] in a temporary
//! directory (durable writes, the same fsync as production):
//!
//! - `sign_in/reconcile_enqueue_push`: [`Reconciler::sign_in`] from accepted credentials to
//!   the commands queued (one transaction) and the push hook called. Between timed sign-ins
//!   the device answers every command, is signed out and answers the removals (untimed), so
//!   each timed call is a full sign-in that queues the same ~83 commands.
//! - `sign_in/argon2id_verify`: the portal's password check alone
//!   ([`baton_server::directory::verify_password`], default argon2id parameters), which the
//!   portal runs before the sign-in and which is reported separately.
//!
//! Criterion prints mean and median; for the p99 the bench also runs its own loop of
//! `SIGN_IN_BENCH_ROUNDS` (default 1,000) sign-ins and prints p50/p90/p99/max of each one.
//!
//! Run: `cargo bench -p baton-server --bench sign_in`

// A benchmark harness: setup failures should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use baton_assign::{DistributionId, ItemId};
use baton_proto::{
    CommandReport, Enrollment, EnrollmentId, EnrollmentKeys, Profile, PushMagic, PushToken, Status,
    Topic,
};
use baton_server::catalog::assignment_config::{collection, encode};
use baton_server::catalog::defaults;
use baton_server::catalog::{
    DISTRIBUTIONS_COLLECTION, DistributionRecord, ITEMS_COLLECTION, ItemInput, TargetInput,
};
use baton_server::directory::{USERS_COLLECTION, UserInput, hash_password, verify_password};
use baton_server::metrics::Metrics;
use baton_server::push::PushSink;
use baton_server::reconciler::{AssignmentSettings, Reconciler};
use baton_store::{
    AuthenticateRecord, CommandQueue, EnrollmentStore, Keyspace, Report, SledStore, Store,
    TokenUpdateRecord,
};
use criterion::{Criterion, criterion_group, criterion_main};

const UDID: &str = "00008101-000B3E1C0A2D4F60";
const USER: &str = "carol";
const PASSWORD: &str = "correct horse battery staple";
const PROFILES: usize = 50;
const APPS: usize = 30;

/// A push sink that counts notices (the push hook of the measured path).
#[derive(Debug, Default)]
struct RecordingPush {
    notices: AtomicUsize,
    channels: AtomicUsize,
}

impl PushSink for RecordingPush {
    fn commands_enqueued(&self, channels: &[EnrollmentId]) {
        self.notices.fetch_add(1, Ordering::SeqCst);
        self.channels.fetch_add(channels.len(), Ordering::SeqCst);
    }
}

/// One enrolled device, a person with 80 items, and the reconciler over a sled store.
struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    push: Arc<RecordingPush>,
    reconciler: Reconciler,
    device: EnrollmentId,
}

fn profile_b64(i: usize) -> String {
    use base64::Engine as _;
    let xml = Profile::new(
        format!("com.example.bench.p{i:02}"),
        format!("7D3C1E2A-0000-4C3B-9D2E-0A1B2C3D4E{i:02}"),
    )
    .with_display_name("Profile for $USER.username")
    .to_xml()
    .unwrap();
    base64::engine::general_purpose::STANDARD.encode(xml)
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("data")).unwrap());
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    defaults::seed(
        store.as_ref(),
        "https://bench.invalid",
        Some("Sign in"),
        secs,
    )
    .unwrap();
    let user: UserInput = serde_json::from_value(serde_json::json!({
        "username": USER, "password": PASSWORD, "full_name": "Carol Bench"
    }))
    .unwrap();
    let record = user
        .into_record(
            secs,
            &baton_server::directory::PasswordPolicy { min_length: 1 },
        )
        .unwrap();
    store
        .put(
            &collection(USERS_COLLECTION).unwrap(),
            USER.as_bytes(),
            &encode(&record).unwrap(),
        )
        .unwrap();
    for i in 0..PROFILES + APPS {
        let (id, body) = if i < PROFILES {
            (
                format!("p{i:02}"),
                serde_json::json!({"kind": "profile", "mobileconfig": profile_b64(i)}),
            )
        } else {
            (
                format!("a{i:02}"),
                serde_json::json!({"kind": "app", "bundle_id": format!("com.example.app{i}"),
                    "itunes_store_id": 1_000_000 + i}),
            )
        };
        let input: ItemInput = serde_json::from_value(body).unwrap();
        let item = input.into_item(ItemId::new(id.clone()).unwrap()).unwrap();
        store
            .put(
                &collection(ITEMS_COLLECTION).unwrap(),
                id.as_bytes(),
                &encode(&item).unwrap(),
            )
            .unwrap();
        let distribution = DistributionRecord {
            id: DistributionId::new(format!("to-carol-{id}")).unwrap(),
            name: String::new(),
            item: item.id,
            target: TargetInput::Users {
                users: vec![USER.to_owned()],
            },
        };
        store
            .put(
                &collection(DISTRIBUTIONS_COLLECTION).unwrap(),
                id.as_bytes(),
                &encode(&distribution).unwrap(),
            )
            .unwrap();
    }
    let device = EnrollmentId::device(UDID).unwrap();
    let topic = Topic::new("com.apple.mgmt.External.bench").unwrap();
    store
        .authenticate(
            &AuthenticateRecord {
                id: device.clone(),
                topic: topic.clone(),
                raw: Vec::new(),
            },
            now,
        )
        .unwrap();
    store
        .token_update(
            &TokenUpdateRecord {
                id: device.clone(),
                topic,
                push_token: PushToken::new(vec![0xAB; 32]).unwrap(),
                push_magic: PushMagic::new("5E1F0C2A-3333-4C3B-9D2E-0A1B2C3D4E5F").unwrap(),
                unlock_token: None,
                raw: Vec::new(),
            },
            now,
        )
        .unwrap();
    let push = Arc::new(RecordingPush::default());
    let reconciler = Reconciler::new(
        Arc::clone(&store) as Arc<dyn Store>,
        Arc::clone(&push) as Arc<dyn PushSink>,
        Arc::new(Metrics::default()),
        AssignmentSettings::default(),
    );
    reconciler.channel_enabled(&device, now).unwrap();
    let f = Fixture {
        _dir: dir,
        store,
        push,
        reconciler,
        device,
    };
    f.drain();
    f
}

impl Fixture {
    /// The device answers every queued command `Acknowledged`, as the command channel would
    /// record it (store report, then the reconciler's result hook). Returns how many.
    fn drain(&self) -> usize {
        let enrollment = Enrollment::new(EnrollmentKeys::device(UDID)).unwrap();
        let mut n = 0;
        while let Some(command) = self.store.next_command(&self.device).unwrap() {
            let report = CommandReport::new(
                enrollment.clone(),
                Status::Acknowledged,
                Some(command.uuid.clone()),
            );
            let now = SystemTime::now();
            self.store
                .report(
                    &Report {
                        id: self.device.clone(),
                        status: Status::Acknowledged,
                        command_uuid: Some(command.uuid),
                        error_chain: Vec::new(),
                        raw: report.encode().unwrap(),
                    },
                    now,
                )
                .unwrap();
            self.reconciler.after_report(&report, now);
            n += 1;
            assert!(n < 10_000, "the queue does not drain");
        }
        n
    }

    /// One timed sign-in (the measured part), then untimed: the device installs everything,
    /// is signed out and removes it again. Returns the sign-in's time and commands queued.
    fn sign_in_round(&self) -> (Duration, usize) {
        let pushes_before = self.push.notices.load(Ordering::SeqCst);
        let started = Instant::now();
        let outcome = self
            .reconciler
            .sign_in(&self.device, USER, "portal", SystemTime::now())
            .unwrap();
        let elapsed = started.elapsed();
        assert!(
            self.push.notices.load(Ordering::SeqCst) > pushes_before,
            "sign-in did not call the push hook"
        );
        let queued = outcome.enqueued.len();
        assert!(
            queued >= PROFILES + APPS,
            "only {queued} commands queued: not a full sign-in"
        );
        self.drain();
        self.reconciler
            .sign_out(&self.device, "portal", SystemTime::now())
            .unwrap();
        self.drain();
        (elapsed, black_box(queued))
    }
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort_unstable();
    let n = samples.len();
    let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let mean = samples.iter().sum::<Duration>() / u32::try_from(n).unwrap_or(u32::MAX);
    format!(
        "n={n} mean={mean:.2?} p50={:.2?} p90={:.2?} p99={:.2?} max={:.2?}",
        rank(0.50),
        rank(0.90),
        rank(0.99),
        samples[n - 1]
    )
}

fn bench_sign_in(c: &mut Criterion) {
    let f = fixture();
    let (_, queued) = f.sign_in_round();
    eprintln!(
        "sign-in of a person with {PROFILES} profiles and {APPS} apps queues {queued} commands"
    );

    let rounds: usize = std::env::var("SIGN_IN_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    if rounds > 0 {
        let samples: Vec<Duration> = (0..rounds).map(|_| f.sign_in_round().0).collect();
        eprintln!(
            "Reconciler::sign_in to commands queued and pushed, per sign-in: {}",
            percentiles(samples)
        );
        let hash = hash_password(PASSWORD).unwrap();
        let checks: Vec<Duration> = (0..rounds.min(200))
            .map(|_| {
                let t = Instant::now();
                assert!(verify_password(black_box(PASSWORD), &hash));
                t.elapsed()
            })
            .collect();
        eprintln!(
            "argon2id verify_password (default parameters), per check: {}",
            percentiles(checks)
        );
    }

    let mut group = c.benchmark_group("sign_in");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("reconcile_enqueue_push", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| f.sign_in_round().0).sum());
    });
    let hash = hash_password(PASSWORD).unwrap();
    group.bench_function("argon2id_verify", |b| {
        b.iter(|| assert!(verify_password(black_box(PASSWORD), black_box(&hash))));
    });
    group.finish();
}

criterion_group!(benches, bench_sign_in);
criterion_main!(benches);

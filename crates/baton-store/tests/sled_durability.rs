//! sled-specific behaviour: reopening, the schema version, export/import, the consistency check.

use std::io::BufReader;
use std::time::{Duration, UNIX_EPOCH};

use baton_proto::{CommandUuid, EnrollmentId, PushMagic, PushToken, Status, Topic};
use baton_store::{
    AuthenticateRecord, Collection, CommandQueue, CommandResultStore, CommandState,
    EnrollmentStore, Keyspace, NewCommand, Priority, Report, SCHEMA_VERSION, SledStore, StoreError,
    TokenUpdateRecord,
};

fn at(s: u64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn enroll(s: &SledStore, name: &str) -> EnrollmentId {
    let id = EnrollmentId::device(name).unwrap();
    let topic = Topic::new("com.apple.mgmt.External.test").unwrap();
    s.authenticate(
        &AuthenticateRecord {
            id: id.clone(),
            topic: topic.clone(),
            raw: b"auth".to_vec(),
        },
        at(0),
    )
    .unwrap();
    s.token_update(
        &TokenUpdateRecord {
            id: id.clone(),
            topic,
            push_token: PushToken::new(vec![9; 32]).unwrap(),
            push_magic: PushMagic::new("magic").unwrap(),
            unlock_token: Some(vec![7; 16]),
            raw: b"tu".to_vec(),
        },
        at(1),
    )
    .unwrap();
    id
}

fn cmd(name: &str) -> NewCommand {
    NewCommand {
        uuid: CommandUuid::new(name).unwrap(),
        request_type: "ProfileList".into(),
        body: name.as_bytes().to_vec(),
        priority: Priority::NORMAL,
    }
}

fn ack(s: &SledStore, id: &EnrollmentId, name: &str) {
    s.report(
        &Report {
            id: id.clone(),
            status: Status::Acknowledged,
            command_uuid: Some(CommandUuid::new(name).unwrap()),
            error_chain: vec![],
            raw: b"ack".to_vec(),
        },
        at(5),
    )
    .unwrap();
}

#[test]
fn state_survives_reopen_and_fifo_continues() {
    let dir = tempfile::tempdir().unwrap();
    let id;
    {
        let s = SledStore::open(dir.path()).unwrap();
        id = enroll(&s, "dev-a");
        s.enqueue(&cmd("c1"), std::slice::from_ref(&id), at(2))
            .unwrap();
        s.enqueue(&cmd("c2"), std::slice::from_ref(&id), at(3))
            .unwrap();
        ack(&s, &id, "c1");
        s.touch(&id, at(9)).unwrap();
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    let e = s.enrollment(&id).unwrap().unwrap();
    assert!(e.enabled);
    assert_eq!(e.unlock_token, Some(vec![7; 16]));
    assert_eq!(e.last_seen, Some(baton_store::unix_millis(at(9))));
    // A command enqueued after reopening comes after the old one.
    s.enqueue(&cmd("c3"), std::slice::from_ref(&id), at(4))
        .unwrap();
    assert_eq!(s.next_command(&id).unwrap().unwrap().uuid.as_str(), "c2");
    ack(&s, &id, "c2");
    assert_eq!(s.next_command(&id).unwrap().unwrap().uuid.as_str(), "c3");
    let r = s
        .command_result(&id, &CommandUuid::new("c1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(r.state, CommandState::Acknowledged);
    assert!(s.verify().unwrap() > 0);
}

#[test]
fn implied_and_answered_deliveries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b);
    {
        let s = SledStore::open(dir.path()).unwrap();
        a = enroll(&s, "dev-a");
        b = enroll(&s, "dev-b");
        let both = [a.clone(), b.clone()];
        s.enqueue(&cmd("all-acked"), &both, at(2)).unwrap();
        s.enqueue(&cmd("half"), &both, at(3)).unwrap();
        s.enqueue(&cmd("deferred"), std::slice::from_ref(&a), at(4))
            .unwrap();
        for id in &both {
            ack(&s, id, "all-acked");
        }
        ack(&s, &a, "half");
        s.report(
            &Report {
                id: a.clone(),
                status: Status::NotNow,
                command_uuid: Some(CommandUuid::new("deferred").unwrap()),
                error_chain: vec![],
                raw: b"not now".to_vec(),
            },
            at(6),
        )
        .unwrap();
        assert!(
            s.next_command(&a).unwrap().is_none(),
            "deferred this session"
        );
    }
    // Twice: the first open also drops the fully answered target list of "all-acked".
    for _ in 0..2 {
        let s = SledStore::open(dir.path()).unwrap();
        s.verify().unwrap();
        let state = |id: &EnrollmentId, c: &str| {
            s.command_result(id, &CommandUuid::new(c).unwrap())
                .unwrap()
                .map(|r| r.state)
        };
        assert_eq!(state(&a, "all-acked"), Some(CommandState::Acknowledged));
        assert_eq!(state(&b, "all-acked"), Some(CommandState::Acknowledged));
        assert_eq!(state(&a, "half"), Some(CommandState::Acknowledged));
        assert_eq!(state(&b, "half"), Some(CommandState::Queued));
        assert_eq!(state(&a, "deferred"), Some(CommandState::NotNow));
        assert_eq!(state(&b, "deferred"), None);
        // A restart begins a new session: the deferred command is offered again.
        assert_eq!(
            s.next_command(&a).unwrap().unwrap().uuid.as_str(),
            "deferred"
        );
        assert_eq!(s.next_command(&b).unwrap().unwrap().uuid.as_str(), "half");
        let listed: Vec<_> = s.list(&a).unwrap().into_iter().map(|r| r.state).collect();
        assert_eq!(
            listed,
            [
                CommandState::Acknowledged,
                CommandState::Acknowledged,
                CommandState::NotNow
            ]
        );
        let r = s
            .command_result(&a, &CommandUuid::new("half").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(r.raw_response.as_deref(), Some(&b"ack"[..]));
    }
}

#[test]
fn values_too_big_for_the_log_survive_reopen() {
    // sled keeps values above a quarter segment in blob files, which the store fsyncs itself.
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..400_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let c = Collection::new("profiles").unwrap();
    {
        let s = SledStore::open(dir.path()).unwrap();
        let id = enroll(&s, "dev-a");
        s.put(&c, b"big", &big).unwrap();
        let mut command = cmd("big-profile");
        command.body = big.clone();
        s.enqueue(&command, std::slice::from_ref(&id), at(2))
            .unwrap();
        assert!(
            dir.path()
                .join("blobs")
                .read_dir()
                .unwrap()
                .next()
                .is_some()
        );
    }
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(s.get(&c, b"big").unwrap().as_deref(), Some(big.as_slice()));
    let id = EnrollmentId::device("dev-a").unwrap();
    assert_eq!(s.next_command(&id).unwrap().unwrap().body, big);
    s.verify().unwrap();
}

/// Values too big for the log live in blob files, which sled deletes when the value is removed
/// or replaced; the durable sync must not fail on a blob deleted between listing and fsync
/// (the orphan bound removes such values on every report of a flooding device).
#[test]
fn removing_values_too_big_for_the_log_keeps_writes_durable() {
    let dir = tempfile::tempdir().unwrap();
    let s = SledStore::open(dir.path()).unwrap();
    let id = enroll(&s, "dev-big");
    for i in 0..150 {
        let r = Report {
            id: id.clone(),
            status: Status::Error,
            command_uuid: Some(CommandUuid::new(format!("junk-{i}")).unwrap()),
            error_chain: Vec::new(),
            raw: vec![b'y'; 65 * 1024],
        };
        s.report(&r, at(10 + i)).unwrap();
    }
    assert_eq!(
        s.orphan_reports(&id).unwrap().len(),
        baton_store::MAX_ORPHANS_PER_DEVICE
    );
    drop(s);
    let s = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        s.orphan_reports(&id).unwrap().len(),
        baton_store::MAX_ORPHANS_PER_DEVICE
    );
    s.verify().unwrap();
}

#[test]
fn a_store_of_the_first_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &1u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(StoreError::Migration { from: 1, .. }) => {}
        other => panic!("expected a Migration error, got {other:?}"),
    }
}

#[test]
fn a_store_from_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(StoreError::SchemaTooNew { found, .. }) => assert_eq!(found, SCHEMA_VERSION + 1),
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn export_then_import_reproduces_the_store() {
    let src = SledStore::temporary().unwrap();
    let a = enroll(&src, "dev-a");
    let b = enroll(&src, "dev-b");
    src.enqueue(&cmd("c1"), &[a.clone(), b.clone()], at(2))
        .unwrap();
    src.enqueue(&cmd("c2"), std::slice::from_ref(&a), at(3))
        .unwrap();
    ack(&src, &a, "c1");
    let c = Collection::new("assignments").unwrap();
    src.put(&c, b"dev-a", b"alice").unwrap();
    let mut file = Vec::new();
    let exported = src.export(&mut file).unwrap();
    assert!(exported.rows > 5);

    let dst = SledStore::temporary().unwrap();
    let imported = dst.import(&mut BufReader::new(&file[..])).unwrap();
    assert_eq!(imported.rows, exported.rows);
    assert_eq!(dst.enrollments().unwrap(), src.enrollments().unwrap());
    assert_eq!(dst.list(&a).unwrap(), src.list(&a).unwrap());
    assert_eq!(dst.list(&b).unwrap(), src.list(&b).unwrap());
    assert_eq!(dst.get(&c, b"dev-a").unwrap(), Some(b"alice".to_vec()));
    dst.verify().unwrap();
    // FIFO order holds across the restore: a new command goes after c2.
    dst.enqueue(&cmd("c3"), std::slice::from_ref(&a), at(4))
        .unwrap();
    assert_eq!(dst.next_command(&a).unwrap().unwrap().uuid.as_str(), "c2");
    // Importing twice is refused; garbage is a typed error.
    assert!(matches!(
        dst.import(&mut BufReader::new(&file[..])),
        Err(StoreError::ImportTargetNotEmpty)
    ));
    let empty = SledStore::temporary().unwrap();
    let bad = b"{\"format\":\"baton-store\",\"version\":1,\"schema\":1,\"next_seq\":1}\n{\"tree\":\"nope\",\"key\":\"\",\"value\":\"\"}\n";
    assert!(matches!(
        empty.import(&mut BufReader::new(&bad[..])),
        Err(StoreError::Import { line: 2, .. })
    ));
    assert!(matches!(
        empty.import(&mut BufReader::new(&b"not json\n"[..])),
        Err(StoreError::Import { line: 1, .. })
    ));
    // An export of the first layout is refused before anything is written.
    let first_layout = b"{\"format\":\"baton-store\",\"version\":1,\"schema\":1,\"next_seq\":1}\n{\"tree\":\"enrollments\",\"key\":\"ZGV2\",\"value\":\"\"}\n";
    assert!(matches!(
        empty.import(&mut BufReader::new(&first_layout[..])),
        Err(StoreError::Migration { from: 1, .. })
    ));
    assert_eq!(empty.enrollments().unwrap(), vec![]);
}

#[test]
fn concurrent_reports_share_fsyncs() {
    let s = std::sync::Arc::new(SledStore::temporary().unwrap());
    let ids: Vec<EnrollmentId> = (0..8).map(|i| enroll(&s, &format!("dev-{i}"))).collect();
    for n in 0..25 {
        s.enqueue(&cmd(&format!("c{n}")), &ids, at(2)).unwrap();
    }
    let before = s.durability_stats();
    let threads: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let s = s.clone();
            std::thread::spawn(move || {
                while let Some(c) = s.next_command(&id).unwrap() {
                    ack(&s, &id, c.uuid.as_str());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = s.durability_stats();
    assert_eq!(after.commits - before.commits, 200);
    assert!(after.flushes - before.flushes <= 200);
    s.verify().unwrap();
}

//! The conformance suite every storage backend must pass.
//!
//! A backend's test calls [`run_all`] with a function that makes a fresh, empty store:
//!
//! ```no_run
//! # fn main() -> Result<(), baton_store::conformance::ConformanceFailure> {
//! baton_store::conformance::run_all(|| baton_store::SledStore::temporary().map_err(|e| e.to_string()))?;
//! # Ok(()) }
//! ```
//!
//! It pins the check-in and queue semantics: Authenticate clears the queue and disables the
//! channel (and the device's user channels) until TokenUpdate; final reports remove the command
//! and store a result; NotNow defers a command for the rest of the session; priority then FIFO
//! order; atomic multi-channel enqueue; harmless duplicates; orphans; cancel; listing; plus the
//! certificate, push-certificate and keyspace roles. Checks return errors instead of
//! panicking, so the suite is ordinary library code.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, PushMagic, PushToken, Status, Topic};

use crate::{
    AuthenticateRecord, CasOutcome, CertHash, Collection, CommandState, Enqueue, KeyspaceBatch,
    MAX_ORPHANS_PER_DEVICE, NewCommand, Priority, PushCertificate, Report, ReportOutcome, Store,
    StoreError, TokenUpdateRecord, unix_millis,
};

/// A failed conformance check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conformance check {check} failed: {message}")]
pub struct ConformanceFailure {
    /// The check's name.
    pub check: &'static str,
    /// What did not hold.
    pub message: String,
}

type Check = Result<(), String>;

/// Every check, by name.
pub const CHECKS: &[&str] = &[
    "authenticate_disables_until_token_update",
    "authenticate_clears_queue",
    "user_channels_follow_device",
    "final_reports_complete_commands",
    "not_now_skipped_for_the_session",
    "priority_then_fifo",
    "enqueue_to_many_is_atomic",
    "duplicate_reports_are_harmless",
    "unknown_commands_become_orphans",
    "orphans_are_bounded_per_device",
    "retention_prunes_only_old_finished_commands",
    "cancel_removes_queued_command",
    "listing_shows_states_and_times",
    "report_without_uuid_is_rejected",
    "certificate_bindings",
    "push_certificates",
    "keyspace_basics",
    "keyspace_pages_and_counts",
    "keyspace_batches_are_atomic",
    "keyspace_batch_with_enqueue",
    "last_seen_is_kept",
];

/// Runs every check, each on a fresh store from `make`; stops at the first failure.
pub fn run_all<S, E, F>(make: F) -> Result<(), ConformanceFailure>
where
    S: Store,
    E: std::fmt::Display,
    F: Fn() -> Result<S, E>,
{
    for name in CHECKS {
        run_one(name, &make)?;
    }
    Ok(())
}

/// Runs one check by name on a fresh store.
pub fn run_one<S, E, F>(check: &'static str, make: &F) -> Result<(), ConformanceFailure>
where
    S: Store,
    E: std::fmt::Display,
    F: Fn() -> Result<S, E>,
{
    let fail = |message: String| ConformanceFailure { check, message };
    let store = make().map_err(|e| fail(format!("making a store: {e}")))?;
    let s = &store;
    let result = match check {
        "authenticate_disables_until_token_update" => authenticate_disables_until_token_update(s),
        "authenticate_clears_queue" => authenticate_clears_queue(s),
        "user_channels_follow_device" => user_channels_follow_device(s),
        "final_reports_complete_commands" => final_reports_complete_commands(s),
        "not_now_skipped_for_the_session" => not_now_skipped_for_the_session(s),
        "priority_then_fifo" => priority_then_fifo(s),
        "enqueue_to_many_is_atomic" => enqueue_to_many_is_atomic(s),
        "duplicate_reports_are_harmless" => duplicate_reports_are_harmless(s),
        "unknown_commands_become_orphans" => unknown_commands_become_orphans(s),
        "orphans_are_bounded_per_device" => orphans_are_bounded_per_device(s),
        "retention_prunes_only_old_finished_commands" => {
            retention_prunes_only_old_finished_commands(s)
        }
        "cancel_removes_queued_command" => cancel_removes_queued_command(s),
        "listing_shows_states_and_times" => listing_shows_states_and_times(s),
        "report_without_uuid_is_rejected" => report_without_uuid_is_rejected(s),
        "certificate_bindings" => certificate_bindings(s),
        "push_certificates" => push_certificates(s),
        "keyspace_basics" => keyspace_basics(s),
        "keyspace_pages_and_counts" => keyspace_pages_and_counts(s),
        "keyspace_batches_are_atomic" => keyspace_batches_are_atomic(s),
        "keyspace_batch_with_enqueue" => keyspace_batch_with_enqueue(s),
        "last_seen_is_kept" => last_seen_is_kept(s),
        other => Err(format!("no check named {other}")),
    };
    result.map_err(fail)
}

// ---- helpers -------------------------------------------------------------------------------

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Check {
    if cond { Ok(()) } else { Err(msg()) }
}

fn ok<T>(r: Result<T, StoreError>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn id_err<T>(r: Result<T, baton_proto::IdError>) -> Result<T, String> {
    r.map_err(|e| e.to_string())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn dev(name: &str) -> Result<EnrollmentId, String> {
    id_err(EnrollmentId::device(name))
}

fn uuid(name: &str) -> Result<CommandUuid, String> {
    id_err(CommandUuid::new(name))
}

fn topic() -> Result<Topic, String> {
    id_err(Topic::new("com.apple.mgmt.External.conformance"))
}

fn authenticate<S: Store>(s: &S, id: &EnrollmentId, t: u64) -> Check {
    let rec = AuthenticateRecord {
        id: id.clone(),
        topic: topic()?,
        raw: format!("<authenticate {id}>").into_bytes(),
    };
    ok(s.authenticate(&rec, at(t)), "authenticate")
}

fn token_update<S: Store>(s: &S, id: &EnrollmentId, t: u64) -> Result<bool, String> {
    let rec = TokenUpdateRecord {
        id: id.clone(),
        topic: topic()?,
        push_token: id_err(PushToken::new(vec![
            1,
            2,
            3,
            u8::try_from(t % 256).unwrap_or(0),
        ]))?,
        push_magic: id_err(PushMagic::new(format!("magic-{t}")))?,
        unlock_token: None,
        raw: format!("<token update {id} {t}>").into_bytes(),
    };
    Ok(ok(s.token_update(&rec, at(t)), "token_update")?.first)
}

/// Authenticate + TokenUpdate.
fn enroll<S: Store>(s: &S, name: &str) -> Result<EnrollmentId, String> {
    let id = dev(name)?;
    authenticate(s, &id, 0)?;
    token_update(s, &id, 1)?;
    Ok(id)
}

fn command(name: &str, priority: Priority) -> Result<NewCommand, String> {
    Ok(NewCommand {
        uuid: uuid(name)?,
        request_type: format!("Type-{name}"),
        body: format!("<plist {name}>").into_bytes(),
        priority,
    })
}

fn enqueue<S: Store>(s: &S, name: &str, to: &[EnrollmentId], t: u64) -> Check {
    ok(
        s.enqueue(&command(name, Priority::NORMAL)?, to, at(t)),
        "enqueue",
    )
}

fn report<S: Store>(
    s: &S,
    id: &EnrollmentId,
    status: Status,
    cmd: Option<&str>,
    t: u64,
) -> Result<ReportOutcome, String> {
    let r = Report {
        id: id.clone(),
        status,
        command_uuid: cmd.map(uuid).transpose()?,
        error_chain: if status == Status::Error {
            vec![ErrorChainItem {
                code: 12_021,
                domain: "MCInstallationErrorDomain".into(),
                localized_description: Some("failed".into()),
                us_english_description: None,
            }]
        } else {
            Vec::new()
        },
        raw: format!("<report {status} {cmd:?} {t}>").into_bytes(),
    };
    ok(s.report(&r, at(t)), "report")
}

fn next_name<S: Store>(s: &S, id: &EnrollmentId) -> Result<Option<String>, String> {
    Ok(ok(s.next_command(id), "next_command")?.map(|c| c.uuid.as_str().to_owned()))
}

fn state<S: Store>(s: &S, id: &EnrollmentId, cmd: &str) -> Result<Option<CommandState>, String> {
    Ok(ok(s.command_result(id, &uuid(cmd)?), "command_result")?.map(|r| r.state))
}

fn queued_names<S: Store>(s: &S, id: &EnrollmentId) -> Result<Vec<String>, String> {
    Ok(ok(s.list(id), "list")?
        .into_iter()
        .filter(|r| r.state.is_queued())
        .map(|r| r.uuid.as_str().to_owned())
        .collect())
}

fn collection(name: &str) -> Result<Collection, String> {
    ok(Collection::new(name), "collection")
}

// ---- checks --------------------------------------------------------------------------------

fn authenticate_disables_until_token_update<S: Store>(s: &S) -> Check {
    let id = dev("dev-a")?;
    authenticate(s, &id, 0)?;
    let e = ok(s.enrollment(&id), "enrollment")?.ok_or("no enrollment after Authenticate")?;
    ensure(!e.enabled, || "enabled right after Authenticate".into())?;
    ensure(e.token_update_tally == 0, || "tally not 0".into())?;
    ensure(e.authenticate_raw.is_some(), || {
        "raw Authenticate not kept".into()
    })?;
    enqueue(s, "c1", std::slice::from_ref(&id), 1)?;
    ensure(next_name(s, &id)?.is_none(), || {
        "a disabled enrollment was handed a command".into()
    })?;
    ensure(token_update(s, &id, 2)?, || {
        "first TokenUpdate not reported first".into()
    })?;
    let e = ok(s.enrollment(&id), "enrollment")?.ok_or("enrollment vanished")?;
    ensure(e.enabled, || "not enabled by TokenUpdate".into())?;
    ensure(e.push_token.is_some() && e.push_magic.is_some(), || {
        "push token / magic not stored".into()
    })?;
    ensure(next_name(s, &id)?.as_deref() == Some("c1"), || {
        "queued command not handed out after TokenUpdate".into()
    })?;
    ensure(!token_update(s, &id, 3)?, || {
        "second TokenUpdate reported as first".into()
    })?;
    let e = ok(s.enrollment(&id), "enrollment")?.ok_or("enrollment vanished")?;
    ensure(e.token_update_tally == 2, || {
        format!("tally {}", e.token_update_tally)
    })?;
    // A TokenUpdate without Authenticate is refused.
    let unknown = dev("never-authenticated")?;
    match token_update(s, &unknown, 4) {
        Err(_) => Ok(()),
        Ok(_) => Err("TokenUpdate accepted for an unknown device".into()),
    }
}

fn authenticate_clears_queue<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    enqueue(s, "c1", std::slice::from_ref(&id), 2)?;
    enqueue(s, "c2", std::slice::from_ref(&id), 3)?;
    authenticate(s, &id, 4)?;
    token_update(s, &id, 5)?;
    ensure(next_name(s, &id)?.is_none(), || {
        "queue not cleared by Authenticate".into()
    })?;
    ensure(
        state(s, &id, "c1")? == Some(CommandState::Cancelled),
        || "cleared command not marked Cancelled".into(),
    )?;
    ensure(queued_names(s, &id)?.is_empty(), || {
        "listing still shows queued".into()
    })
}

fn user_channels_follow_device<S: Store>(s: &S) -> Check {
    let user = id_err(EnrollmentId::user("dev-u", "alice"))?;
    ensure(token_update(s, &user, 0).is_err(), || {
        "user channel accepted before its device enrolled".into()
    })?;
    let device = enroll(s, "dev-u")?;
    ensure(token_update(s, &user, 2)?, || {
        "user channel first TokenUpdate".into()
    })?;
    let enabled = |id: &EnrollmentId| -> Result<bool, String> {
        Ok(ok(s.enrollment(id), "enrollment")?
            .ok_or("missing enrollment")?
            .enabled)
    };
    ensure(enabled(&user)?, || "user channel not enabled".into())?;
    let channels = ok(s.device_channels(&device), "device_channels")?;
    ensure(channels.len() == 2 && channels[0].id == device, || {
        format!("device_channels returned {} channels", channels.len())
    })?;
    enqueue(s, "u1", std::slice::from_ref(&user), 3)?;
    authenticate(s, &device, 4)?;
    ensure(!enabled(&user)?, || {
        "user channel still enabled after device Authenticate".into()
    })?;
    ensure(
        state(s, &user, "u1")? == Some(CommandState::Cancelled),
        || "user channel queue not cleared by device Authenticate".into(),
    )?;
    token_update(s, &device, 5)?;
    token_update(s, &user, 6)?;
    ensure(enabled(&user)?, || "user channel not re-enabled".into())?;
    ok(s.check_out(&user, at(7)), "check_out user")?;
    ensure(!enabled(&user)? && enabled(&device)?, || {
        "user CheckOut must disable only the user channel".into()
    })?;
    token_update(s, &user, 8)?;
    ok(s.check_out(&device, at(9)), "check_out device")?;
    ensure(!enabled(&user)? && !enabled(&device)?, || {
        "device CheckOut must disable its user channels".into()
    })
}

fn final_reports_complete_commands<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    for (i, (status, expected)) in [
        (Status::Acknowledged, CommandState::Acknowledged),
        (Status::Error, CommandState::Error),
        (Status::CommandFormatError, CommandState::CommandFormatError),
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("c{i}");
        let t = 10 * (i as u64 + 1);
        enqueue(s, &name, std::slice::from_ref(&id), t)?;
        ensure(next_name(s, &id)?.as_deref() == Some(name.as_str()), || {
            format!("{name} not handed out")
        })?;
        let outcome = report(s, &id, status, Some(&name), t + 1)?;
        ensure(outcome == ReportOutcome::Completed, || {
            format!("{status}: {outcome:?}")
        })?;
        ensure(next_name(s, &id)?.is_none(), || {
            format!("{name} still queued after {status}")
        })?;
        let r = ok(s.command_result(&id, &uuid(&name)?), "command_result")?
            .ok_or("no result stored")?;
        ensure(r.state == expected, || format!("state {:?}", r.state))?;
        ensure(r.finished_at == Some(unix_millis(at(t + 1))), || {
            "finished_at".into()
        })?;
        ensure(
            r.raw_response.as_deref()
                == Some(format!("<report {status} Some({name:?}) {}>", t + 1).as_bytes()),
            || "raw response not stored".into(),
        )?;
        ensure(
            (status == Status::Error) != r.error_chain.is_empty(),
            || "ErrorChain not stored with Error".into(),
        )?;
    }
    Ok(())
}

fn not_now_skipped_for_the_session<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    enqueue(s, "a", std::slice::from_ref(&id), 2)?;
    enqueue(s, "b", std::slice::from_ref(&id), 3)?;
    ensure(
        report(s, &id, Status::Idle, None, 4)? == ReportOutcome::SessionStarted,
        || "Idle did not start a session".into(),
    )?;
    ensure(next_name(s, &id)?.as_deref() == Some("a"), || {
        "a first".into()
    })?;
    ensure(
        report(s, &id, Status::NotNow, Some("a"), 5)? == ReportOutcome::Deferred,
        || "NotNow not deferred".into(),
    )?;
    ensure(next_name(s, &id)?.as_deref() == Some("b"), || {
        "NotNow'd command handed out again in the same session".into()
    })?;
    report(s, &id, Status::Acknowledged, Some("b"), 6)?;
    ensure(next_name(s, &id)?.is_none(), || {
        "queue should look empty this session".into()
    })?;
    ensure(state(s, &id, "a")? == Some(CommandState::NotNow), || {
        "a not NotNow".into()
    })?;
    let deferred = ok(s.next_deferred(&id), "next_deferred")?;
    ensure(deferred.map(|c| c.uuid) == Some(uuid("a")?), || {
        "next_deferred should offer the NotNow'd a".into()
    })?;
    report(s, &id, Status::Idle, None, 7)?;
    ensure(ok(s.next_deferred(&id), "next_deferred")?.is_none(), || {
        "nothing is deferred in a new session".into()
    })?;
    ensure(next_name(s, &id)?.as_deref() == Some("a"), || {
        "NotNow'd command not retried in the next session".into()
    })?;
    report(s, &id, Status::NotNow, Some("a"), 8)?;
    let r = ok(s.command_result(&id, &uuid("a")?), "command_result")?.ok_or("no result")?;
    ensure(r.not_now_count == 2, || {
        format!("not_now_count {}", r.not_now_count)
    })?;
    ensure(r.first_not_now_at == Some(unix_millis(at(5))), || {
        "first NotNow time".into()
    })?;
    ok(s.begin_session(&id), "begin_session")?;
    ensure(next_name(s, &id)?.as_deref() == Some("a"), || {
        "begin_session did not start a session".into()
    })?;
    report(s, &id, Status::Acknowledged, Some("a"), 9)?;
    ensure(next_name(s, &id)?.is_none(), || "a still queued".into())
}

fn priority_then_fifo<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    let to = std::slice::from_ref(&id);
    for (name, p) in [
        ("n1", Priority::NORMAL),
        ("n2", Priority::NORMAL),
        ("h1", Priority::HIGH),
        ("l1", Priority::LOW),
        ("n3", Priority::NORMAL),
        ("h2", Priority::HIGH),
    ] {
        ok(s.enqueue(&command(name, p)?, to, at(2)), "enqueue")?;
    }
    let mut order = Vec::new();
    while let Some(name) = next_name(s, &id)? {
        report(s, &id, Status::Acknowledged, Some(&name), 3)?;
        order.push(name);
        if order.len() > 6 {
            break;
        }
    }
    ensure(order == ["h1", "h2", "n1", "n2", "n3", "l1"], || {
        format!("order {order:?}")
    })
}

fn enqueue_to_many_is_atomic<S: Store>(s: &S) -> Check {
    let ids = [
        enroll(s, "dev-a")?,
        enroll(s, "dev-b")?,
        enroll(s, "dev-c")?,
    ];
    let mut to = ids.to_vec();
    to.push(ids[0].clone()); // duplicates are ignored
    enqueue(s, "all", &to, 2)?;
    for id in &ids {
        ensure(queued_names(s, id)? == ["all"], || {
            format!("{id} did not get it once")
        })?;
    }
    let stored = ok(s.command(&uuid("all")?), "command")?.ok_or("command not stored")?;
    ensure(
        stored.body == b"<plist all>" && stored.request_type == "Type-all",
        || "stored command differs".into(),
    )?;
    let bad = vec![ids[0].clone(), dev("unknown-device")?];
    match s.enqueue(&command("partial", Priority::NORMAL)?, &bad, at(3)) {
        Err(StoreError::UnknownEnrollment(_)) => {}
        other => return Err(format!("enqueue to an unknown device: {other:?}")),
    }
    ensure(queued_names(s, &ids[0])? == ["all"], || {
        "failed enqueue left a command".into()
    })?;
    ensure(
        ok(s.command(&uuid("partial")?), "command")?.is_none(),
        || "failed enqueue left the command row".into(),
    )?;
    match s.enqueue(&command("all", Priority::NORMAL)?, &ids[..1], at(4)) {
        Err(StoreError::DuplicateCommand(_)) => {}
        other => return Err(format!("duplicate CommandUUID: {other:?}")),
    }
    ensure(queued_names(s, &ids[0])? == ["all"], || {
        "duplicate enqueue changed the queue".into()
    })
}

fn duplicate_reports_are_harmless<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    enqueue(s, "c1", std::slice::from_ref(&id), 2)?;
    report(s, &id, Status::Acknowledged, Some("c1"), 3)?;
    let first = ok(s.command_result(&id, &uuid("c1")?), "command_result")?;
    let again = report(s, &id, Status::Acknowledged, Some("c1"), 4)?;
    ensure(again == ReportOutcome::Duplicate, || {
        format!("second report: {again:?}")
    })?;
    let nn = report(s, &id, Status::NotNow, Some("c1"), 5)?;
    ensure(nn == ReportOutcome::Duplicate, || {
        format!("NotNow after Ack: {nn:?}")
    })?;
    ensure(
        ok(s.command_result(&id, &uuid("c1")?), "command_result")? == first,
        || "duplicate report changed the result".into(),
    )?;
    ensure(next_name(s, &id)?.is_none(), || {
        "duplicate report requeued".into()
    })
}

fn unknown_commands_become_orphans<S: Store>(s: &S) -> Check {
    let a = enroll(s, "dev-a")?;
    let b = enroll(s, "dev-b")?;
    enqueue(s, "for-b", std::slice::from_ref(&b), 2)?;
    let o = report(s, &a, Status::Acknowledged, Some("never-sent"), 3)?;
    ensure(o == ReportOutcome::Orphan { dropped: 0 }, || {
        format!("unknown command: {o:?}")
    })?;
    let o = report(s, &a, Status::Error, Some("for-b"), 4)?;
    ensure(o == ReportOutcome::Orphan { dropped: 0 }, || {
        format!("other device's command: {o:?}")
    })?;
    let orphans = ok(s.orphan_reports(&a), "orphan_reports")?;
    ensure(orphans.len() == 2, || format!("{} orphans", orphans.len()))?;
    ensure(
        orphans
            .iter()
            .any(|r| r.uuid.as_str() == "for-b" && r.status == Status::Error),
        || "orphan content".into(),
    )?;
    ensure(next_name(s, &b)?.as_deref() == Some("for-b"), || {
        "another device's report touched b's queue".into()
    })
}

/// A device flooding reports about made-up commands keeps only the newest
/// [`MAX_ORPHANS_PER_DEVICE`] of them, counted over its user channels too; other devices'
/// orphans are untouched, and repeating a CommandUUID replaces its orphan without dropping one.
fn orphans_are_bounded_per_device<S: Store>(s: &S) -> Check {
    let a = enroll(s, "dev-a")?;
    let b = enroll(s, "dev-b")?;
    let user = id_err(EnrollmentId::user("dev-a", "alice"))?;
    ok(
        s.authenticate(
            &AuthenticateRecord {
                id: user.clone(),
                topic: topic()?,
                raw: b"<user>".to_vec(),
            },
            at(1),
        ),
        "authenticate user channel",
    )?;
    report(s, &b, Status::Error, Some("b-orphan"), 2)?;
    let mut dropped = 0;
    let n = MAX_ORPHANS_PER_DEVICE as u64 + 5;
    for i in 0..n {
        // Every third on the user channel; times increase, so "newest" is unambiguous.
        let channel = if i % 3 == 0 { &user } else { &a };
        match report(
            s,
            channel,
            Status::Error,
            Some(&format!("junk-{i:03}")),
            10 + i,
        )? {
            ReportOutcome::Orphan { dropped: d } => dropped += d,
            other => return Err(format!("junk-{i}: {other:?}")),
        }
    }
    ensure(
        u64::from(dropped) == n - MAX_ORPHANS_PER_DEVICE as u64,
        || format!("dropped {dropped} of {n}"),
    )?;
    let mut kept: Vec<String> = ok(s.orphan_reports(&a), "orphan_reports")?
        .into_iter()
        .chain(ok(s.orphan_reports(&user), "orphan_reports")?)
        .map(|o| o.uuid.as_str().to_owned())
        .collect();
    kept.sort();
    let expected: Vec<String> = (n - MAX_ORPHANS_PER_DEVICE as u64..n)
        .map(|i| format!("junk-{i:03}"))
        .collect();
    ensure(kept == expected, || format!("kept {kept:?}"))?;
    let again = report(
        s,
        &a,
        Status::Error,
        Some(&format!("junk-{:03}", n - 1)),
        100,
    )?;
    ensure(again == ReportOutcome::Orphan { dropped: 0 }, || {
        format!("repeated CommandUUID: {again:?}")
    })?;
    let other = ok(s.orphan_reports(&b), "orphan_reports")?;
    ensure(other.len() == 1, || {
        format!("another device's orphans: {}", other.len())
    })
}

/// Runs `prune_finished` in batches of `budget` until done; returns the summed report and
/// the number of calls.
fn prune_all<S: Store>(s: &S, before: u64, budget: usize) -> Result<(u64, u64, usize), String> {
    let (mut results, mut commands) = (0, 0);
    for calls in 1..=1000 {
        let r = ok(s.prune_finished(at(before), budget), "prune_finished")?;
        results += r.results;
        commands += r.commands;
        if r.done {
            return Ok((results, commands, calls));
        }
    }
    Err("prune_finished never finished".into())
}

/// Retention deletes a command and its results only when every delivery ended (answered or
/// cancelled) before the horizon and none is queued; it works in bounded batches; what it
/// deletes is gone from every read, and a late report about it is an orphan.
fn retention_prunes_only_old_finished_commands<S: Store>(s: &S) -> Check {
    let a = enroll(s, "dev-a")?;
    let b = enroll(s, "dev-b")?;
    let both = [a.clone(), b.clone()];
    enqueue(s, "old-done", &both, 10)?;
    enqueue(s, "old-pending", &both, 10)?;
    enqueue(s, "old-not-now", std::slice::from_ref(&a), 10)?;
    enqueue(s, "old-cancelled", std::slice::from_ref(&b), 10)?;
    enqueue(s, "old-late-answer", std::slice::from_ref(&a), 10)?;
    enqueue(s, "new-done", std::slice::from_ref(&a), 200)?;
    report(s, &a, Status::Acknowledged, Some("old-done"), 11)?;
    report(s, &b, Status::Error, Some("old-done"), 12)?;
    report(s, &a, Status::Acknowledged, Some("old-pending"), 11)?;
    report(s, &a, Status::NotNow, Some("old-not-now"), 11)?;
    ensure(
        ok(s.cancel(&b, &uuid("old-cancelled")?, at(11)), "cancel")?,
        || "cancel".into(),
    )?;
    report(s, &a, Status::Acknowledged, Some("old-late-answer"), 150)?;
    report(s, &a, Status::Acknowledged, Some("new-done"), 201)?;

    let (results, commands, calls) = prune_all(s, 100, 1)?;
    ensure(commands == 2 && results == 3, || {
        format!("pruned {commands} commands, {results} results")
    })?;
    ensure(calls > 1, || {
        format!("a budget of 1 still finished in {calls} call")
    })?;
    for gone in ["old-done", "old-cancelled"] {
        ensure(ok(s.command(&uuid(gone)?), "command")?.is_none(), || {
            format!("{gone} kept")
        })?;
        for id in &both {
            ensure(state(s, id, gone)?.is_none(), || {
                format!("result of {gone} on {id} kept")
            })?;
        }
    }
    let listed: Vec<String> = ok(s.list(&a), "list")?
        .into_iter()
        .map(|r| r.uuid.as_str().to_owned())
        .collect();
    ensure(
        listed == ["old-pending", "old-not-now", "old-late-answer", "new-done"],
        || format!("a's list after pruning: {listed:?}"),
    )?;
    ensure(
        state(s, &a, "old-pending")? == Some(CommandState::Acknowledged),
        || "the answered half of a pending command was pruned".into(),
    )?;
    ensure(next_name(s, &b)?.as_deref() == Some("old-pending"), || {
        "a pending command left the queue".into()
    })?;
    ensure(
        state(s, &a, "old-not-now")? == Some(CommandState::NotNow),
        || "a NotNow'd command was pruned".into(),
    )?;
    let late = report(s, &a, Status::Acknowledged, Some("old-done"), 300)?;
    ensure(matches!(late, ReportOutcome::Orphan { .. }), || {
        format!("a report about a pruned command: {late:?}")
    })?;
    let again = prune_all(s, 100, 1000)?;
    ensure(again.0 == 0 && again.1 == 0, || {
        format!("a second pass pruned {again:?}")
    })?;
    // Once the last delivery ends before the horizon, the command goes too.
    report(s, &b, Status::Acknowledged, Some("old-pending"), 50)?;
    let (results, commands, _) = prune_all(s, 100, 1000)?;
    ensure(commands == 1 && results == 2, || {
        format!("after the last answer: {commands} commands, {results} results")
    })?;
    ensure(
        ok(s.command(&uuid("old-pending")?), "command")?.is_none(),
        || "old-pending kept after its last answer".into(),
    )?;
    ensure(next_name(s, &b)?.is_none(), || "b's queue".into())
}

fn cancel_removes_queued_command<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    enqueue(s, "c1", std::slice::from_ref(&id), 2)?;
    enqueue(s, "c2", std::slice::from_ref(&id), 3)?;
    ensure(ok(s.cancel(&id, &uuid("c1")?, at(4)), "cancel")?, || {
        "cancel c1 false".into()
    })?;
    ensure(next_name(s, &id)?.as_deref() == Some("c2"), || {
        "cancelled command handed out".into()
    })?;
    ensure(!ok(s.cancel(&id, &uuid("c1")?, at(5)), "cancel")?, || {
        "cancel twice true".into()
    })?;
    ensure(!ok(s.cancel(&id, &uuid("nope")?, at(5)), "cancel")?, || {
        "cancel unknown".into()
    })?;
    report(s, &id, Status::Acknowledged, Some("c2"), 6)?;
    ensure(!ok(s.cancel(&id, &uuid("c2")?, at(7)), "cancel")?, || {
        "cancel finished".into()
    })?;
    ensure(
        state(s, &id, "c1")? == Some(CommandState::Cancelled),
        || "c1 state".into(),
    )?;
    ensure(
        state(s, &id, "c2")? == Some(CommandState::Acknowledged),
        || "c2 state".into(),
    )
}

fn listing_shows_states_and_times<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    let to = std::slice::from_ref(&id);
    enqueue(s, "done", to, 10)?;
    enqueue(s, "later", to, 11)?;
    enqueue(s, "waiting", to, 12)?;
    report(s, &id, Status::Acknowledged, Some("done"), 13)?;
    report(s, &id, Status::NotNow, Some("later"), 14)?;
    let list = ok(s.list(&id), "list")?;
    let got: Vec<(String, CommandState)> = list
        .iter()
        .map(|r| (r.uuid.as_str().to_owned(), r.state))
        .collect();
    let want = vec![
        ("done".to_owned(), CommandState::Acknowledged),
        ("later".to_owned(), CommandState::NotNow),
        ("waiting".to_owned(), CommandState::Queued),
    ];
    ensure(got == want, || format!("listing {got:?}"))?;
    ensure(list[0].queued_at == unix_millis(at(10)), || {
        "queued_at".into()
    })?;
    ensure(list[0].finished_at == Some(unix_millis(at(13))), || {
        "finished_at".into()
    })?;
    ensure(list[1].updated_at == unix_millis(at(14)), || {
        "updated_at".into()
    })?;
    ensure(list[2].finished_at.is_none(), || {
        "queued command has finished_at".into()
    })?;
    ensure(list[0].request_type == "Type-done", || {
        "request_type".into()
    })
}

fn report_without_uuid_is_rejected<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    match report(s, &id, Status::Acknowledged, None, 2) {
        Err(_) => Ok(()),
        Ok(o) => Err(format!("Acknowledged without CommandUUID: {o:?}")),
    }
}

fn certificate_bindings<S: Store>(s: &S) -> Check {
    let a = enroll(s, "dev-a")?;
    let b = enroll(s, "dev-b")?;
    let (h1, h2) = (CertHash([1; 32]), CertHash([2; 32]));
    ok(s.bind_certificate(&a, &h1), "bind")?;
    ensure(
        ok(s.cert_enrollment(&h1), "lookup")? == Some(a.clone()),
        || "hash -> id".into(),
    )?;
    let user = id_err(EnrollmentId::user("dev-a", "alice"))?;
    ensure(ok(s.enrollment_cert(&user), "lookup")? == Some(h1), || {
        "user channel -> cert".into()
    })?;
    match s.bind_certificate(&b, &h1) {
        Err(StoreError::CertificateBoundElsewhere(owner)) if owner == a => {}
        other => return Err(format!("binding a's certificate to b: {other:?}")),
    }
    ok(s.bind_certificate(&a, &h1), "rebind same")?;
    ok(s.bind_certificate(&a, &h2), "bind new")?;
    ensure(ok(s.cert_enrollment(&h1), "lookup")?.is_none(), || {
        "old cert still bound".into()
    })?;
    ensure(ok(s.enrollment_cert(&a), "lookup")? == Some(h2), || {
        "new cert".into()
    })?;
    ok(s.bind_certificate(&b, &h1), "old cert to b")
}

fn push_certificates<S: Store>(s: &S) -> Check {
    let t = topic()?;
    let cert = PushCertificate {
        topic: t.clone(),
        cert_pem: b"cert".to_vec(),
        key_pem: b"key".to_vec(),
        not_after: Some(5),
        updated_at: 6,
    };
    ok(s.put_push_certificate(&cert), "put")?;
    ensure(
        ok(s.push_certificate(&t), "get")? == Some(cert.clone()),
        || "get".into(),
    )?;
    ensure(ok(s.push_certificates(), "list")? == vec![cert], || {
        "list".into()
    })?;
    ensure(ok(s.delete_push_certificate(&t), "delete")?, || {
        "delete".into()
    })?;
    ensure(ok(s.push_certificate(&t), "get")?.is_none(), || {
        "deleted cert remains".into()
    })
}

fn keyspace_basics<S: Store>(s: &S) -> Check {
    ensure(
        Collection::new("Bad Name").is_err() && Collection::new("").is_err(),
        || "invalid collection names accepted".into(),
    )?;
    let c = collection("assignments")?;
    let other = collection("audit")?;
    ok(s.put(&c, b"dev/1", b"alice"), "put")?;
    ok(s.put(&c, b"dev/2", b"bob"), "put")?;
    ok(s.put(&c, b"dew", b"x"), "put")?;
    ok(s.put(&other, b"dev/1", b"other"), "put")?;
    ensure(
        ok(s.get(&c, b"dev/1"), "get")?.as_deref() == Some(&b"alice"[..]),
        || "get".into(),
    )?;
    let scan = ok(s.scan_prefix(&c, b"dev/"), "scan")?;
    ensure(
        scan == vec![
            (b"dev/1".to_vec(), b"alice".to_vec()),
            (b"dev/2".to_vec(), b"bob".to_vec()),
        ],
        || format!("scan {scan:?}"),
    )?;
    let last = ok(s.last_with_prefix(&c, b"dev/"), "last")?;
    ensure(last == Some((b"dev/2".to_vec(), b"bob".to_vec())), || {
        format!("last {last:?}")
    })?;
    let none = ok(s.last_with_prefix(&c, b"dez"), "last")?;
    ensure(none.is_none(), || {
        format!("last of an empty range {none:?}")
    })?;
    ensure(ok(s.delete(&c, b"dev/2"), "delete")?, || "delete".into())?;
    ensure(!ok(s.delete(&c, b"dev/2"), "delete")?, || {
        "delete twice".into()
    })?;
    let cas = ok(
        s.compare_and_swap(&c, b"dev/1", Some(b"alice"), Some(b"carol")),
        "cas",
    )?;
    ensure(cas == CasOutcome::Applied, || format!("cas {cas:?}"))?;
    let cas = ok(
        s.compare_and_swap(&c, b"dev/1", Some(b"alice"), Some(b"dan")),
        "cas",
    )?;
    ensure(
        matches!(cas, CasOutcome::Conflict { current: Some(ref v), .. } if v == b"carol"),
        || format!("stale cas {cas:?}"),
    )?;
    let cas = ok(s.compare_and_swap(&c, b"new", None, Some(b"v")), "cas")?;
    ensure(cas == CasOutcome::Applied, || "cas from absent".into())?;
    ensure(
        ok(s.get(&other, b"dev/1"), "get")?.as_deref() == Some(&b"other"[..]),
        || "collections are not independent".into(),
    )
}

/// Pages walk a collection in key order without overlap; counts see every entry.
fn keyspace_pages_and_counts<S: Store>(s: &S) -> Check {
    let c = collection("outbox")?;
    let empty = ok(s.scan_page(&c, None, 10), "scan_page")?;
    ensure(empty.is_empty(), || format!("empty collection: {empty:?}"))?;
    ensure(ok(s.count(&c), "count")? == 0, || "count of empty".into())?;
    let mut batch = KeyspaceBatch::new();
    for i in (0..25u64).rev() {
        batch.put(&c, &i.to_be_bytes(), format!("v{i}").as_bytes());
    }
    ok(s.apply(&batch), "apply")?;
    ok(s.put(&collection("other")?, b"x", b"y"), "put")?;
    ensure(ok(s.count(&c), "count")? == 25, || "count".into())?;
    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = ok(s.scan_page(&c, after.as_deref(), 10), "scan_page")?;
        ensure(page.len() <= 10, || format!("page of {}", page.len()))?;
        let last = page.last().map(|(k, _)| k.clone());
        let short = page.len() < 10;
        seen.extend(page);
        match last {
            Some(k) if !short => after = Some(k),
            _ => break,
        }
    }
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..25u64)
        .map(|i| (i.to_be_bytes().to_vec(), format!("v{i}").into_bytes()))
        .collect();
    ensure(seen == expected, || format!("pages {seen:?}"))?;
    let tail = ok(s.scan_page(&c, Some(&23u64.to_be_bytes()), 10), "scan_page")?;
    ensure(tail.len() == 1, || format!("after 23: {tail:?}"))?;
    let none = ok(s.scan_page(&c, None, 0), "scan_page")?;
    ensure(none.is_empty(), || "limit 0".into())
}

fn keyspace_batches_are_atomic<S: Store>(s: &S) -> Check {
    let a = collection("assignments")?;
    let log = collection("audit")?;
    ok(s.put(&a, b"dev", b"nobody"), "put")?;
    let mut stale = KeyspaceBatch::new();
    stale
        .expect(&a, b"dev", Some(b"someone-else"))
        .put(&a, b"dev", b"alice")
        .put(&log, b"1", b"signed in");
    let r = ok(s.apply(&stale), "apply")?;
    ensure(matches!(r, CasOutcome::Conflict { .. }), || {
        format!("stale batch {r:?}")
    })?;
    ensure(ok(s.get(&log, b"1"), "get")?.is_none(), || {
        "conflicting batch wrote".into()
    })?;
    let mut good = KeyspaceBatch::new();
    good.expect(&a, b"dev", Some(b"nobody"))
        .put(&a, b"dev", b"alice")
        .put(&log, b"1", b"signed in")
        .delete(&log, b"missing");
    ensure(ok(s.apply(&good), "apply")? == CasOutcome::Applied, || {
        "batch".into()
    })?;
    ensure(
        ok(s.get(&a, b"dev"), "get")?.as_deref() == Some(&b"alice"[..]),
        || "a".into(),
    )?;
    ensure(ok(s.get(&log, b"1"), "get")?.is_some(), || "log".into())
}

fn keyspace_batch_with_enqueue<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    let a = collection("assignments")?;
    let mut batch = KeyspaceBatch::new();
    batch.expect(&a, b"dev-a", None).put(&a, b"dev-a", b"alice");
    let enq = Enqueue {
        command: command("install", Priority::HIGH)?,
        to: vec![id.clone()],
    };
    let r = ok(
        s.apply_with_enqueue(&batch, &[enq], at(2)),
        "apply_with_enqueue",
    )?;
    ensure(r == CasOutcome::Applied, || format!("{r:?}"))?;
    ensure(next_name(s, &id)?.as_deref() == Some("install"), || {
        "enqueue missing".into()
    })?;
    // An enqueue that fails aborts the keyspace writes too.
    let mut batch = KeyspaceBatch::new();
    batch.put(&a, b"dev-a", b"bob");
    let enq = Enqueue {
        command: command("remove", Priority::HIGH)?,
        to: vec![id.clone(), dev("unknown")?],
    };
    ensure(s.apply_with_enqueue(&batch, &[enq], at(3)).is_err(), || {
        "enqueue to unknown device accepted".into()
    })?;
    ensure(
        ok(s.get(&a, b"dev-a"), "get")?.as_deref() == Some(&b"alice"[..]),
        || "keyspace write survived a failed enqueue".into(),
    )?;
    ensure(queued_names(s, &id)? == ["install"], || {
        "failed enqueue left commands".into()
    })?;
    // A failed precondition aborts the enqueue.
    let mut batch = KeyspaceBatch::new();
    batch.expect(&a, b"dev-a", None);
    let enq = Enqueue {
        command: command("stale", Priority::HIGH)?,
        to: vec![id.clone()],
    };
    let r = ok(
        s.apply_with_enqueue(&batch, &[enq], at(4)),
        "apply_with_enqueue",
    )?;
    ensure(matches!(r, CasOutcome::Conflict { .. }), || {
        format!("{r:?}")
    })?;
    ensure(queued_names(s, &id)? == ["install"], || {
        "conflict still enqueued".into()
    })
}

fn last_seen_is_kept<S: Store>(s: &S) -> Check {
    let id = enroll(s, "dev-a")?;
    ok(s.touch(&id, at(20)), "touch")?;
    ok(s.touch(&id, at(15)), "touch")?;
    let seen = |s: &S| -> Result<Option<u64>, String> {
        Ok(ok(s.enrollment(&id), "enrollment")?
            .ok_or("missing")?
            .last_seen)
    };
    ensure(seen(s)? == Some(unix_millis(at(20))), || {
        "last_seen before flush".into()
    })?;
    ok(s.flush_last_seen(), "flush_last_seen")?;
    ensure(seen(s)? == Some(unix_millis(at(20))), || {
        "last_seen after flush".into()
    })
}

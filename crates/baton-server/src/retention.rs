//! Retention: what the server deletes as it ages, so a long-running server's disk use follows
//! its fleet, not its history.
//!
//! | what | default | setting |
//! | --- | --- | --- |
//! | finished commands and their results (every channel answered or cancelled) | 30 days | [`RetentionSettings::commands`] |
//! | ended sessions in the session log | 180 days | [`RetentionSettings::session_log`] |
//! | sign-in log entries | 365 days | [`RetentionSettings::sign_in_log`] |
//! | webhook dead letters | 30 days | [`RetentionSettings::dead_letters`] |
//!
//! Pending commands, their results, open sessions and waiting webhook events are never pruned.
//! [`prune_once`] takes `now` and does one pass, each kind in batches of
//! [`RetentionSettings::batch`] rows (a store call per batch, no lock held between batches);
//! [`run`] calls it at start-up and then every [`RetentionSettings::interval`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use baton_store::{Store, unix_millis};
use tokio::sync::watch;

use crate::catalog::assignment_config::RecordError;
use crate::metrics::Metrics;
use crate::webhook::Outbox;

const DAY: Duration = Duration::from_secs(86_400);

/// How long each kind of history is kept; None keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Finished commands and their results, counted from the last answer or cancel.
    pub commands: Option<Duration>,
    /// Ended sessions, counted from their end.
    pub session_log: Option<Duration>,
    /// Sign-in log entries.
    pub sign_in_log: Option<Duration>,
    /// Webhook dead letters, counted from when they were given up on.
    pub dead_letters: Option<Duration>,
    /// Time between passes.
    pub interval: Duration,
    /// Rows looked at per store call.
    pub batch: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            commands: Some(30 * DAY),
            session_log: Some(180 * DAY),
            sign_in_log: Some(365 * DAY),
            dead_letters: Some(30 * DAY),
            interval: Duration::from_secs(3600),
            batch: 1000,
        }
    }
}

/// What one pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Results of finished commands.
    pub command_results: u64,
    /// Finished commands.
    pub commands: u64,
    /// Ended sessions.
    pub sessions: u64,
    /// Sign-in log entries.
    pub sign_in_entries: u64,
    /// Webhook dead letters.
    pub dead_letters: u64,
}

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] baton_store::StoreError),
    /// A keyspace record could not be read or written.
    #[error("record: {0}")]
    Record(#[from] RecordError),
}

/// The horizon for a retention period: `now - keep` in Unix milliseconds.
fn horizon_ms(now: SystemTime, keep: Duration) -> u64 {
    unix_millis(now).saturating_sub(u64::try_from(keep.as_millis()).unwrap_or(u64::MAX))
}

/// One pass at `now`: each kind with a retention period, in batches. Metrics count what went.
pub fn prune_once(
    store: &dyn Store,
    outbox: Option<&Outbox>,
    settings: &RetentionSettings,
    metrics: &Metrics,
    now: SystemTime,
) -> Result<RetentionReport, RetentionError> {
    let batch = settings.batch.max(1);
    let mut report = RetentionReport::default();
    if let Some(keep) = settings.commands {
        let before = baton_store::from_unix_millis(horizon_ms(now, keep));
        loop {
            let r = store.prune_finished(before, batch)?;
            report.command_results += r.results;
            report.commands += r.commands;
            if r.done {
                break;
            }
        }
        metrics.retention_pruned("command_results", report.command_results);
        metrics.retention_pruned("commands", report.commands);
    }
    if let Some(keep) = settings.session_log {
        let n = crate::reconciler::session_log::prune(store, horizon_ms(now, keep), batch)?;
        report.sessions = n as u64;
        metrics.retention_pruned("session_log", report.sessions);
    }
    if let Some(keep) = settings.sign_in_log {
        let n = crate::sign_in_log::prune(store, horizon_ms(now, keep))?;
        report.sign_in_entries = n as u64;
        metrics.retention_pruned("sign_in_log", report.sign_in_entries);
    }
    if let (Some(keep), Some(outbox)) = (settings.dead_letters, outbox) {
        let before = horizon_ms(now, keep);
        loop {
            let (n, done) = outbox.prune_dead_letters(before, batch)?;
            report.dead_letters += n as u64;
            if done {
                break;
            }
        }
        metrics.retention_pruned("webhook_dead_letters", report.dead_letters);
    }
    Ok(report)
}

/// Runs [`prune_once`] at start-up and every `settings.interval` until `stop` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    outbox: Option<Outbox>,
    settings: RetentionSettings,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let (store, outbox, metrics) = (Arc::clone(&store), outbox.clone(), Arc::clone(&metrics));
        let result = tokio::task::spawn_blocking(move || {
            prune_once(
                store.as_ref(),
                outbox.as_ref(),
                &settings,
                &metrics,
                SystemTime::now(),
            )
        })
        .await;
        match result {
            Ok(Ok(report)) if report != RetentionReport::default() => {
                tracing::info!(?report, "retention pass");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "retention pass failed"),
            Err(error) => tracing::warn!(%error, "retention task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use baton_proto::{CommandUuid, EnrollmentId, PushMagic, PushToken, Status, Topic};
    use baton_store::{
        AuthenticateRecord, KeyspaceBatch, NewCommand, Priority, Report, SledStore,
        TokenUpdateRecord, from_unix_millis,
    };

    use super::*;
    use crate::reconciler::session_log::{self, Session};
    use crate::sign_in_log::{self, Filter, ReasonCode, SignInEntry, SignInHow, SignInResult};
    use crate::webhook::{DeadLetterHeader, EventPayload, EventSink};

    const T0: u64 = 1_700_000_000_000;
    const HOUR: u64 = 3_600_000;

    fn t(ms: u64) -> SystemTime {
        from_unix_millis(ms)
    }

    fn device(s: &dyn Store, name: &str) -> EnrollmentId {
        let id = EnrollmentId::device(name).unwrap();
        let topic = Topic::new("com.apple.mgmt.External.r").unwrap();
        s.authenticate(
            &AuthenticateRecord {
                id: id.clone(),
                topic: topic.clone(),
                raw: b"a".to_vec(),
            },
            t(T0),
        )
        .unwrap();
        s.token_update(
            &TokenUpdateRecord {
                id: id.clone(),
                topic,
                push_token: PushToken::new(vec![2; 32]).unwrap(),
                push_magic: PushMagic::new("m").unwrap(),
                unlock_token: None,
                raw: b"t".to_vec(),
            },
            t(T0),
        )
        .unwrap();
        id
    }

    fn command(s: &dyn Store, name: &str, to: &EnrollmentId, at: u64, answered: Option<u64>) {
        let uuid = CommandUuid::new(name).unwrap();
        s.enqueue(
            &NewCommand {
                uuid: uuid.clone(),
                request_type: "ProfileList".into(),
                body: b"<x/>".to_vec(),
                priority: Priority::NORMAL,
            },
            std::slice::from_ref(to),
            t(at),
        )
        .unwrap();
        if let Some(when) = answered {
            s.report(
                &Report {
                    id: to.clone(),
                    status: Status::Acknowledged,
                    command_uuid: Some(uuid),
                    error_chain: Vec::new(),
                    raw: b"ack".to_vec(),
                },
                t(when),
            )
            .unwrap();
        }
    }

    fn session(s: &dyn Store, device: &EnrollmentId, start: u64, end: Option<u64>) {
        let mut batch = KeyspaceBatch::new();
        session_log::start(
            &mut batch,
            device,
            &Session {
                username: "alice".into(),
                started_at: start,
                how: "portal".into(),
                ended_at: end,
                ended_how: end.map(|_| "portal".into()),
                clean_hand_off: None,
                hand_off_remaining: Vec::new(),
                ready_at: None,
            },
        )
        .unwrap();
        s.apply(&batch).unwrap();
    }

    fn sign_in(s: &dyn Store, at: u64) {
        sign_in_log::append(
            s,
            &EventSink::disabled(),
            &SignInEntry::new(
                t(at),
                "alice",
                "D1",
                SignInHow::Portal,
                SignInResult::Success,
                ReasonCode::Success,
            ),
        )
        .unwrap();
    }

    /// With a one-day retention and `now` ten days on, everything that ended more than a day
    /// ago goes, in batches of two; what is newer, pending or open stays.
    #[test]
    fn a_pass_prunes_what_ended_before_the_horizon_and_keeps_the_rest() {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        let s = store.as_ref();
        let d = device(s, "D1");
        let now = T0 + 240 * HOUR;
        for i in 0..5 {
            command(s, &format!("old-{i}"), &d, T0, Some(T0 + HOUR));
        }
        command(s, "old-pending", &d, T0, None);
        command(s, "answered-lately", &d, T0, Some(now - HOUR));
        command(s, "new", &d, now - HOUR, Some(now - HOUR));
        session(s, &d, T0, Some(T0 + HOUR));
        session(s, &d, T0 + 2 * HOUR, Some(T0 + 3 * HOUR));
        session(s, &d, now - 2 * HOUR, Some(now - HOUR));
        session(s, &d, now - HOUR, None);
        let other = EnrollmentId::device("D2").unwrap();
        session(s, &other, T0, None);
        for at in [T0, T0 + HOUR, now - HOUR] {
            sign_in(s, at);
        }
        let outbox = Outbox::open(Arc::clone(&store), t(T0)).unwrap();
        EventSink::to_outbox(outbox.clone()).record(
            &d,
            EventPayload::Checkin {
                message_type: "Authenticate".into(),
                first_token_update: None,
            },
            t(T0),
        );
        EventSink::to_outbox(outbox.clone()).record(
            &d,
            EventPayload::Checkin {
                message_type: "CheckOut".into(),
                first_token_update: None,
            },
            t(T0),
        );
        let events = outbox.oldest(10).unwrap();
        for (i, at) in [T0, now - HOUR].into_iter().enumerate() {
            let header = DeadLetterHeader {
                failed_at_ms: at,
                attempts: 1,
                reason: "receiver answered 410".into(),
                status: Some(410),
            };
            outbox.dead_letter(&events[i].0, &header).unwrap();
        }

        let settings = RetentionSettings {
            commands: Some(DAY),
            session_log: Some(DAY),
            sign_in_log: Some(DAY),
            dead_letters: Some(DAY),
            interval: Duration::from_secs(60),
            batch: 2,
        };
        let metrics = Metrics::default();
        let report = prune_once(s, Some(&outbox), &settings, &metrics, t(now)).unwrap();
        assert_eq!(
            report,
            RetentionReport {
                command_results: 5,
                commands: 5,
                sessions: 2,
                sign_in_entries: 2,
                dead_letters: 1,
            }
        );
        let left: Vec<String> = s
            .list(&d)
            .unwrap()
            .into_iter()
            .map(|r| r.uuid.as_str().to_owned())
            .collect();
        assert_eq!(left, ["old-pending", "answered-lately", "new"]);
        assert_eq!(
            s.next_command(&d).unwrap().unwrap().uuid.as_str(),
            "old-pending"
        );
        let sessions: Vec<(u64, Option<u64>)> = session_log::sessions(s, &d)
            .unwrap()
            .into_iter()
            .map(|(_, s)| (s.started_at, s.ended_at))
            .collect();
        assert_eq!(
            sessions,
            [(now - 2 * HOUR, Some(now - HOUR)), (now - HOUR, None)]
        );
        assert_eq!(session_log::sessions(s, &other).unwrap().len(), 1);
        let entries = sign_in_log::list(s, &Filter::default()).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].time_ms, now - HOUR);
        assert_eq!(outbox.dead_letter_count(), 1);
        assert!(
            metrics
                .render()
                .contains("baton_retention_pruned_total{kind=\"commands\"} 5")
        );
        // A second pass finds nothing; keeping forever prunes nothing.
        assert_eq!(
            prune_once(s, Some(&outbox), &settings, &metrics, t(now)).unwrap(),
            RetentionReport::default()
        );
        let forever = RetentionSettings {
            commands: None,
            session_log: None,
            sign_in_log: None,
            dead_letters: None,
            ..settings
        };
        assert_eq!(
            prune_once(
                s,
                Some(&outbox),
                &forever,
                &metrics,
                t(now + 1000 * 240 * HOUR)
            )
            .unwrap(),
            RetentionReport::default()
        );
    }
}

//! Storing and reading sign-in log entries.
//!
//! Entries live in keyspace collection [`ENTRIES_COLLECTION`] under
//! `<UTC day, 8 digits>|<time_ms, 20 digits>|<sequence, 20 digits>`, so keys sort by time and
//! two entries written in the same millisecond (even concurrently) never share a key. A second
//! collection, [`DAYS_COLLECTION`], holds one key per day that has entries; [`list`] walks the
//! days newest first and scans only as many days as it needs, so a query for the latest 100
//! entries does not read a year of log.

use std::borrow::Cow;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use baton_proto::EnrollmentId;
use baton_store::{Keyspace, KeyspaceBatch, unix_millis};

use super::entry::{MAX_USERNAME_CHARS, ReasonCode, SignInEntry, SignInResult};
use crate::catalog::assignment_config::{RecordError, collection, decode, encode};
use crate::webhook::{EventPayload, EventSink};

/// Keyspace collection of entries.
pub const ENTRIES_COLLECTION: &str = "sign_in_log";
/// Keyspace collection of the days that have entries.
pub const DAYS_COLLECTION: &str = "sign_in_log_days";
/// Entries returned when a filter names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Most entries one [`list`] returns.
pub const MAX_LIST_LIMIT: usize = 10_000;

const DAY_MS: u64 = 86_400_000;
/// Deletes per batch when pruning.
const PRUNE_BATCH: usize = 1_000;

/// A process-wide sequence, started at the wall clock in microseconds so it also grows across
/// restarts.
static NEXT_SEQ: LazyLock<AtomicU64> =
    LazyLock::new(|| AtomicU64::new(unix_millis(SystemTime::now()).saturating_mul(1000)));

fn day_key(day: u64) -> String {
    format!("{day:08}")
}

fn entry_key(time_ms: u64, seq: u64) -> String {
    format!("{}|{time_ms:020}|{seq:020}", day_key(time_ms / DAY_MS))
}

/// The time part of an entry key.
fn key_time_ms(key: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(key).ok()?;
    s.split('|').nth(1)?.parse().ok()
}

/// Adds `entry` (bounded, see [`SignInEntry::bounded`]) to `batch`, e.g. the batch of a
/// sign-in, so the log entry is written atomically with it. Send the webhook event with
/// [`publish`] after the batch is applied.
pub fn append_to_batch(batch: &mut KeyspaceBatch, entry: &SignInEntry) -> Result<(), RecordError> {
    let entry = entry.clone().bounded();
    let seq = NEXT_SEQ.fetch_add(1, Ordering::Relaxed);
    batch.put(
        &collection(ENTRIES_COLLECTION)?,
        entry_key(entry.time_ms, seq).as_bytes(),
        &encode(&entry)?,
    );
    batch.put(
        &collection(DAYS_COLLECTION)?,
        day_key(entry.time_ms / DAY_MS).as_bytes(),
        b"",
    );
    Ok(())
}

/// Records the webhook event (`sign_in.logged`) for `entry`. Nothing is sent when the entry's
/// device is not a valid enrollment id (it is logged instead).
pub fn publish(events: &EventSink, entry: &SignInEntry) {
    events.sign_ins().count(entry);
    if !events.is_enabled() {
        return;
    }
    match EnrollmentId::parse(&entry.device) {
        Ok(id) => events.record(
            &id,
            EventPayload::SignInLogged(entry.clone().bounded()),
            SystemTime::now(),
        ),
        Err(error) => {
            tracing::warn!(%error, "sign-in log entry with an invalid device id; no webhook event")
        }
    }
}

/// Stores `entry` durably and records its webhook event.
pub fn append(
    store: &dyn Keyspace,
    events: &EventSink,
    entry: &SignInEntry,
) -> Result<(), RecordError> {
    let mut batch = KeyspaceBatch::new();
    append_to_batch(&mut batch, entry)?;
    store.apply(&batch)?;
    publish(events, entry);
    Ok(())
}

/// Which entries [`list`] returns. Every set field must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The username, compared trimmed and case-insensitively.
    pub username: Option<String>,
    /// The device id, compared case-insensitively.
    pub device: Option<String>,
    /// The result.
    pub result: Option<SignInResult>,
    /// The reason code.
    pub reason: Option<ReasonCode>,
    /// Entries at or after this time, Unix milliseconds.
    pub since_ms: Option<u64>,
    /// Entries before this time, Unix milliseconds.
    pub until_ms: Option<u64>,
    /// At most this many (capped at [`MAX_LIST_LIMIT`]).
    pub limit: usize,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            username: None,
            device: None,
            result: None,
            reason: None,
            since_ms: None,
            until_ms: None,
            limit: DEFAULT_LIST_LIMIT,
        }
    }
}

impl Filter {
    fn time_matches(&self, t: u64) -> bool {
        self.since_ms.is_none_or(|s| t >= s) && self.until_ms.is_none_or(|u| t < u)
    }

    /// True when the day may hold matching entries.
    fn day_matches(&self, day: u64) -> bool {
        let start = day.saturating_mul(DAY_MS);
        let end = start.saturating_add(DAY_MS);
        self.since_ms.is_none_or(|s| end > s) && self.until_ms.is_none_or(|u| start < u)
    }

    /// True when `entry` matches every set field.
    pub fn matches(&self, entry: &SignInEntry) -> bool {
        self.fields_match(
            entry.time_ms,
            &entry.username,
            &entry.device,
            entry.result,
            entry.reason,
        )
    }

    fn fields_match(
        &self,
        time_ms: u64,
        username: &str,
        device: &str,
        result: SignInResult,
        reason: ReasonCode,
    ) -> bool {
        self.time_matches(time_ms)
            && self.result.is_none_or(|r| result == r)
            && self.reason.is_none_or(|r| reason == r)
            && self
                .device
                .as_deref()
                .is_none_or(|d| device.eq_ignore_ascii_case(d.trim()))
            && self
                .username
                .as_deref()
                .is_none_or(|u| same_username(username, u))
    }

    /// True when some field besides time is set (worth a cheap look before decoding).
    fn selects_fields(&self) -> bool {
        self.username.is_some()
            || self.device.is_some()
            || self.result.is_some()
            || self.reason.is_some()
    }
}

/// True when two typed usernames normalise to the same name (see
/// [`crate::lockout::normalise_username`]), without allocating.
fn same_username(a: &str, b: &str) -> bool {
    fn norm(s: &str) -> impl Iterator<Item = char> + '_ {
        s.trim()
            .chars()
            .flat_map(char::to_lowercase)
            .take(MAX_USERNAME_CHARS)
    }
    norm(a).eq(norm(b))
}

/// The fields a filter looks at, read without copying the rest of an entry.
#[derive(serde::Deserialize)]
struct Probe<'a> {
    time_ms: u64,
    #[serde(borrow)]
    username: Cow<'a, str>,
    #[serde(borrow)]
    device: Cow<'a, str>,
    result: SignInResult,
    reason: ReasonCode,
}

impl Probe<'_> {
    /// False when the probe decoded and does not match (a probe that fails to decode is
    /// looked at in full, so the skip-and-log path stays in one place).
    fn may_match(bytes: &[u8], filter: &Filter) -> bool {
        serde_json::from_slice::<Probe<'_>>(bytes).map_or(true, |p| {
            filter.fields_match(p.time_ms, &p.username, &p.device, p.result, p.reason)
        })
    }
}

/// The entries matching `filter`, newest first, at most `filter.limit` (capped at
/// [`MAX_LIST_LIMIT`]). Unreadable entries are skipped and logged.
pub fn list(store: &dyn Keyspace, filter: &Filter) -> Result<Vec<SignInEntry>, RecordError> {
    let limit = filter.limit.min(MAX_LIST_LIMIT);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let entries = collection(ENTRIES_COLLECTION)?;
    let days = store.scan_prefix(&collection(DAYS_COLLECTION)?, b"")?;
    for (day_bytes, _) in days.iter().rev() {
        let Some(day) = std::str::from_utf8(day_bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        if !filter.day_matches(day) {
            continue;
        }
        let prefix = format!("{}|", day_key(day));
        for (key, value) in store.scan_prefix(&entries, prefix.as_bytes())?.iter().rev() {
            if key_time_ms(key).is_some_and(|t| !filter.time_matches(t)) {
                continue;
            }
            if filter.selects_fields() && !Probe::may_match(value, filter) {
                continue;
            }
            let entry: SignInEntry = match decode(ENTRIES_COLLECTION, value) {
                Ok(e) => e,
                Err(error) => {
                    tracing::warn!(%error, key = %String::from_utf8_lossy(key), "skipping an unreadable sign-in log entry");
                    continue;
                }
            };
            if filter.matches(&entry) {
                out.push(entry);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// Deletes every entry older than `older_than_ms` (retention). Returns how many.
pub fn prune(store: &dyn Keyspace, older_than_ms: u64) -> Result<usize, RecordError> {
    let entries = collection(ENTRIES_COLLECTION)?;
    let days_coll = collection(DAYS_COLLECTION)?;
    let cutoff_day = older_than_ms / DAY_MS;
    let mut removed = 0;
    for (day_bytes, _) in store.scan_prefix(&days_coll, b"")? {
        let day = std::str::from_utf8(&day_bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok());
        let Some(day) = day else {
            store.delete(&days_coll, &day_bytes)?;
            continue;
        };
        if day > cutoff_day {
            break;
        }
        let prefix = format!("{}|", day_key(day));
        let rows = store.scan_prefix(&entries, prefix.as_bytes())?;
        let total = rows.len();
        let old: Vec<Vec<u8>> = rows
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| key_time_ms(k).is_none_or(|t| t < older_than_ms))
            .collect();
        let emptied = old.len() == total;
        for chunk in old.chunks(PRUNE_BATCH) {
            let mut batch = KeyspaceBatch::new();
            for key in chunk {
                batch.delete(&entries, key);
            }
            store.apply(&batch)?;
        }
        removed += old.len();
        if emptied {
            store.delete(&days_coll, &day_bytes)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use baton_store::{SledStore, Store};

    use super::*;
    use crate::sign_in_log::SignInHow;
    use crate::webhook::{Outbox, WebhookEvent};

    const T0: u64 = 1_700_000_000_000;

    fn entry(ms: u64, user: &str, device: &str, result: SignInResult) -> SignInEntry {
        let reason = match result {
            SignInResult::Success => ReasonCode::Success,
            SignInResult::Failure => ReasonCode::BadCredentials,
            SignInResult::Interrupted => ReasonCode::Interrupted,
            _ => ReasonCode::Expired,
        };
        SignInEntry::new(
            SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
            user,
            device,
            SignInHow::Portal,
            result,
            reason,
        )
    }

    fn store() -> Arc<dyn Store> {
        Arc::new(SledStore::temporary().unwrap())
    }

    fn all(store: &dyn Store) -> Vec<SignInEntry> {
        list(
            store,
            &Filter {
                limit: MAX_LIST_LIMIT,
                ..Filter::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn entries_come_back_newest_first_across_days_and_within_a_millisecond() {
        let s = store();
        let sink = EventSink::disabled();
        // Written out of order, over three days, two in the same millisecond.
        let times = [T0 + 5, T0 - 2 * DAY_MS, T0 + DAY_MS, T0 + 5, T0];
        for (i, t) in times.iter().enumerate() {
            append(
                s.as_ref(),
                &sink,
                &entry(*t, &format!("u{i}"), "D1", SignInResult::Success),
            )
            .unwrap();
        }
        let got = all(s.as_ref());
        let got_times: Vec<u64> = got.iter().map(|e| e.time_ms).collect();
        assert_eq!(
            got_times,
            vec![T0 + DAY_MS, T0 + 5, T0 + 5, T0, T0 - 2 * DAY_MS]
        );
        // Same millisecond: the later write first.
        assert_eq!(
            (got[1].username.as_str(), got[2].username.as_str()),
            ("u3", "u0")
        );
    }

    #[test]
    fn filters_combine_and_the_limit_keeps_the_newest() {
        let s = store();
        let sink = EventSink::disabled();
        for i in 0..30_u64 {
            let user = if i % 3 == 0 { "Alice" } else { "bob" };
            let device = if i % 2 == 0 { "UDID-A" } else { "UDID-B" };
            let result = if i % 5 == 0 {
                SignInResult::Failure
            } else {
                SignInResult::Success
            };
            append(
                s.as_ref(),
                &sink,
                &entry(T0 + i * 1000, user, device, result),
            )
            .unwrap();
        }
        let f = |filter: Filter| list(s.as_ref(), &filter).unwrap();
        let alice = f(Filter {
            username: Some(" ALICE ".into()),
            ..Filter::default()
        });
        assert_eq!(alice.len(), 10);
        assert!(alice.iter().all(|e| e.username == "Alice"));
        let failures_on_a = f(Filter {
            device: Some("udid-a".into()),
            result: Some(SignInResult::Failure),
            ..Filter::default()
        });
        let idx: Vec<u64> = failures_on_a
            .iter()
            .map(|e| (e.time_ms - T0) / 1000)
            .collect();
        assert_eq!(idx, vec![20, 10, 0]);
        let by_reason = f(Filter {
            reason: Some(ReasonCode::BadCredentials),
            ..Filter::default()
        });
        assert_eq!(by_reason.len(), 6);
        let window = f(Filter {
            since_ms: Some(T0 + 10_000),
            until_ms: Some(T0 + 15_000),
            ..Filter::default()
        });
        let idx: Vec<u64> = window.iter().map(|e| (e.time_ms - T0) / 1000).collect();
        assert_eq!(idx, vec![14, 13, 12, 11, 10]);
        let newest_three = f(Filter {
            limit: 3,
            ..Filter::default()
        });
        let idx: Vec<u64> = newest_three
            .iter()
            .map(|e| (e.time_ms - T0) / 1000)
            .collect();
        assert_eq!(idx, vec![29, 28, 27]);
        assert!(
            f(Filter {
                limit: 0,
                ..Filter::default()
            })
            .is_empty()
        );
        assert_eq!(
            f(Filter {
                limit: usize::MAX,
                ..Filter::default()
            })
            .len(),
            30
        );
    }

    #[test]
    fn the_limit_is_capped() {
        let s = store();
        let mut batch = KeyspaceBatch::new();
        for i in 0..(MAX_LIST_LIMIT as u64 + 5) {
            append_to_batch(&mut batch, &entry(T0 + i, "x", "D", SignInResult::Failure)).unwrap();
        }
        s.apply(&batch).unwrap();
        let got = list(
            s.as_ref(),
            &Filter {
                limit: usize::MAX,
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(got.len(), MAX_LIST_LIMIT);
        assert_eq!(got[0].time_ms, T0 + MAX_LIST_LIMIT as u64 + 4);
    }

    #[test]
    fn concurrent_appends_in_one_millisecond_all_survive() {
        let s = store();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        append(
                            s.as_ref(),
                            &EventSink::disabled(),
                            &entry(T0, &format!("t{t}-{i}"), "D", SignInResult::Failure),
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(all(s.as_ref()).len(), 100);
    }

    #[test]
    fn prune_removes_only_older_entries_and_empty_days() {
        let s = store();
        let sink = EventSink::disabled();
        let times = [T0 - 3 * DAY_MS, T0 - 10, T0 - 1, T0, T0 + 1, T0 + DAY_MS];
        for t in times {
            append(
                s.as_ref(),
                &sink,
                &entry(t, "u", "D", SignInResult::Success),
            )
            .unwrap();
        }
        assert_eq!(prune(s.as_ref(), T0).unwrap(), 3);
        let left: Vec<u64> = all(s.as_ref()).iter().map(|e| e.time_ms).collect();
        assert_eq!(left, vec![T0 + DAY_MS, T0 + 1, T0]);
        let days = s
            .scan_prefix(&collection(DAYS_COLLECTION).unwrap(), b"")
            .unwrap();
        assert_eq!(days.len(), 2, "the day of T0 - 3 days is gone");
        assert_eq!(prune(s.as_ref(), T0).unwrap(), 0);
    }

    #[test]
    fn unreadable_entries_are_skipped() {
        let s = store();
        append(
            s.as_ref(),
            &EventSink::disabled(),
            &entry(T0, "ok", "D", SignInResult::Success),
        )
        .unwrap();
        s.put(
            &collection(ENTRIES_COLLECTION).unwrap(),
            entry_key(T0 + 1, 0).as_bytes(),
            b"{broken",
        )
        .unwrap();
        let got = all(s.as_ref());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].username, "ok");
    }

    /// Timing printout, run by hand:
    /// `cargo test --release -p baton-server --lib -- --ignored sign_in_log_timing --nocapture`.
    #[test]
    #[ignore = "timing printout, run by hand"]
    fn sign_in_log_timing() {
        for (label, spread_ms) in [("one day", 100), ("100 days", DAY_MS / 1000)] {
            let s = store();
            let start = std::time::Instant::now();
            for chunk in 0..100_u64 {
                let mut batch = KeyspaceBatch::new();
                for i in 0..1000_u64 {
                    let n = chunk * 1000 + i;
                    let user = if n % 1000 == 7 { "rare" } else { "bob" };
                    append_to_batch(
                        &mut batch,
                        &entry(T0 + n * spread_ms, user, "UDID-1", SignInResult::Failure),
                    )
                    .unwrap();
                }
                s.apply(&batch).unwrap();
            }
            println!(
                "{label}: 100k entries written in batches of 1000: {:?}",
                start.elapsed()
            );
            let cases = [
                ("newest 100", Filter::default()),
                (
                    "newest 10000",
                    Filter {
                        limit: MAX_LIST_LIMIT,
                        ..Filter::default()
                    },
                ),
                (
                    "username=rare (100 matches)",
                    Filter {
                        username: Some("rare".into()),
                        limit: MAX_LIST_LIMIT,
                        ..Filter::default()
                    },
                ),
            ];
            for (name, filter) in cases {
                let start = std::time::Instant::now();
                let got = list(s.as_ref(), &filter).unwrap();
                let listed = start.elapsed();
                let start = std::time::Instant::now();
                let csv = super::super::to_csv(&got);
                println!(
                    "{label}: list {name}: {} entries in {listed:?}; CSV {} bytes in {:?}",
                    got.len(),
                    csv.len(),
                    start.elapsed()
                );
            }
        }
    }

    #[test]
    fn append_sends_a_webhook_event_with_the_entry() {
        let s = store();
        let outbox = Outbox::open(Arc::clone(&s), SystemTime::now()).unwrap();
        let sink = EventSink::to_outbox(outbox.clone());
        let e = entry(T0, "alice", "UDID-W", SignInResult::Interrupted);
        append(s.as_ref(), &sink, &e).unwrap();
        let events = outbox.oldest(10).unwrap();
        assert_eq!(events.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&events[0].1).unwrap();
        assert_eq!(json["type"], "sign_in.logged");
        assert_eq!(json["enrollment_id"], "UDID-W");
        assert_eq!(json["reason"], "interrupted");
        assert_eq!(json["username"], "alice");
        let back: WebhookEvent = serde_json::from_slice(&events[0].1).unwrap();
        assert_eq!(back.payload, EventPayload::SignInLogged(e));
    }
}

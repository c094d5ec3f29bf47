//! One device's identity renewal as a small state machine, pure: every transition takes `now`
//! and what was observed, and says what changed. [`super::renewal`] reads and writes the record
//! and does the work (issuing a profile, enqueueing, events); nothing here touches the store.
//!
//! ```text
//!            result Acknowledged            new identity in use
//!  queued ─────────────────────▶ acknowledged ─────────────────▶ completed
//!    │ ▲                              │
//!    │ │ back-off elapsed             │ old identity still in use after COMPLETION_TIMEOUT
//!    │ │ (fresh challenge + profile)  ▼
//!    │ └──────────────────────────  failed ◀── result Error / CommandFormatError,
//!    │                                          or the command left the queue unanswered
//!    └── (any open state) the identity's not_after passed ──▶ expired
//! ```
//!
//! NotNow is not a failure: the command stays queued and the device installs it later (the
//! challenge lives until the old identity expires). A device seen with a new identity while any
//! attempt is open completes the renewal, whichever attempt produced it.

use std::time::{Duration, SystemTime};

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, Status};
use baton_store::{CommandState, from_unix_millis, unix_millis};
use serde::{Deserialize, Serialize};

use super::challenge::ChallengeHash;
use super::enrollment_terms::is_replacement_refusal;

/// Waits before retry number n (1-based index into the list; the last value repeats).
pub const RETRY_BACKOFF: [Duration; 4] = [
    Duration::from_secs(3600),
    Duration::from_secs(4 * 3600),
    Duration::from_secs(12 * 3600),
    Duration::from_secs(24 * 3600),
];

/// An acknowledged renewal whose device still uses the old identity this long after the
/// acknowledgement is counted as failed (the device installed the profile but kept its
/// identity, e.g. because SCEP failed inside the install).
pub const COMPLETION_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The last retry is scheduled at least this long before the identity expires, so a long
/// back-off never skips the final chance.
pub const LAST_CHANCE_MARGIN: Duration = Duration::from_secs(3600);

/// Where a renewal stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalState {
    /// The InstallProfile of the current attempt is queued (or answered NotNow).
    Queued,
    /// The device installed the renewal profile; its new identity has not been seen yet.
    Acknowledged,
    /// The current attempt failed; another follows at `next_attempt_at`.
    Failed,
    /// The device uses a new identity. Final.
    Completed,
    /// The identity expired before the renewal completed: the device can no longer reach the
    /// server and must enroll again. Final.
    Expired,
}

impl RenewalState {
    /// Every state, in lifecycle order.
    pub const ALL: [RenewalState; 5] = [
        RenewalState::Queued,
        RenewalState::Acknowledged,
        RenewalState::Failed,
        RenewalState::Completed,
        RenewalState::Expired,
    ];

    /// The name used in JSON, query strings and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RenewalState::Queued => "queued",
            RenewalState::Acknowledged => "acknowledged",
            RenewalState::Failed => "failed",
            RenewalState::Completed => "completed",
            RenewalState::Expired => "expired",
        }
    }

    /// The state named `name` ([`Self::as_str`]).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// True while the renewal can still change (not completed, not expired).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            RenewalState::Queued | RenewalState::Acknowledged | RenewalState::Failed
        )
    }
}

impl std::fmt::Display for RenewalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity being renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringIdentity {
    /// SHA-256 of its certificate (the device's binding).
    pub sha256: [u8; 32],
    /// Its serial at the built-in CA.
    pub serial: u64,
    /// Its `notAfter`.
    pub not_after: SystemTime,
}

/// One attempt's InstallProfile and the challenge in its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The InstallProfile command.
    pub command_uuid: CommandUuid,
    /// SHA-256 of the profile's one-time challenge (none with a static challenge).
    pub challenge: Option<ChallengeHash>,
}

/// What a transition did, for logs, events and the caller's follow-up work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transition {
    /// The device installed the profile.
    Acknowledged,
    /// The attempt failed.
    Failed {
        /// Why.
        error: String,
        /// iOS refused to replace the MDM profile (12012): the renewal profile differs from the
        /// one the device enrolled with.
        replacement_refused: bool,
        /// When the next attempt is queued.
        next_attempt_at: SystemTime,
    },
    /// The device uses a new identity.
    Completed,
    /// The identity expired first.
    Expired,
}

/// One device's renewal, as stored (JSON in collection `enrollment_renewals`, key = device id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRecord {
    /// The device channel.
    pub device: EnrollmentId,
    /// SHA-256 (hex) of the identity certificate being renewed.
    pub cert_sha256: String,
    /// Its serial.
    pub serial: u64,
    /// Its `notAfter`, Unix milliseconds.
    pub expires_at_ms: u64,
    /// Where the renewal stands.
    pub state: RenewalState,
    /// Attempts queued so far (1 for the first).
    pub attempts: u32,
    /// The current attempt's InstallProfile.
    pub command_uuid: CommandUuid,
    /// When the first attempt was queued, Unix milliseconds.
    pub first_queued_at_ms: u64,
    /// When the current attempt was queued, Unix milliseconds.
    pub queued_at_ms: u64,
    /// When the current attempt was acknowledged, Unix milliseconds.
    #[serde(default)]
    pub acknowledged_at_ms: Option<u64>,
    /// Why the latest failed attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the latest attempt failed, Unix milliseconds.
    #[serde(default)]
    pub failed_at_ms: Option<u64>,
    /// When the next attempt is due (state failed), Unix milliseconds.
    #[serde(default)]
    pub next_attempt_at_ms: Option<u64>,
    /// When the renewal completed or expired, Unix milliseconds.
    #[serde(default)]
    pub finished_at_ms: Option<u64>,
    /// SHA-256 (hex) of the current attempt's one-time challenge, withdrawn when the attempt is
    /// replaced.
    #[serde(default)]
    pub challenge_sha256: Option<String>,
    /// The latest failure was iOS refusing to replace the MDM profile (12012, any ErrorDomain).
    #[serde(default)]
    pub replacement_refused: bool,
}

/// The ErrorChain of a failed report as one line (`MCProfileErrorDomain 1001: text; …`), or the
/// status when there is no chain.
pub fn describe_failure(status: Status, chain: &[ErrorChainItem]) -> String {
    if chain.is_empty() {
        return format!("{status} without an ErrorChain");
    }
    chain
        .iter()
        .map(|item| {
            let text = item
                .us_english_description
                .as_deref()
                .or(item.localized_description.as_deref());
            match text {
                Some(text) => format!("{} {}: {text}", item.domain, item.code),
                None => format!("{} {}", item.domain, item.code),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a final report failed the attempt: [`describe_failure`], explained when iOS refused to
/// replace the MDM profile (12012, recognised by code in any ErrorDomain), and whether it did.
pub fn failure_of(status: Status, chain: &[ErrorChainItem]) -> (String, bool) {
    let described = describe_failure(status, chain);
    if is_replacement_refusal(chain) {
        (
            format!(
                "iOS refused to replace the MDM profile (12012): the renewal profile's ServerURL, \
                 CheckInURL, Topic or ServerCapabilities differ from the profile the device \
                 enrolled with, or it asks for more AccessRights; keep serving the enrolled \
                 values for this device or enroll it again ({described})"
            ),
            true,
        )
    } else {
        (described, false)
    }
}

/// The delay before the attempt after `attempts` failed ones.
pub fn retry_delay(attempts: u32) -> Duration {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    RETRY_BACKOFF[index.min(RETRY_BACKOFF.len() - 1)]
}

impl RenewalRecord {
    /// A renewal whose first attempt is queued at `now`.
    pub fn first(
        device: EnrollmentId,
        identity: &ExpiringIdentity,
        attempt: Attempt,
        now: SystemTime,
    ) -> Self {
        Self {
            device,
            cert_sha256: hex::encode(identity.sha256),
            serial: identity.serial,
            expires_at_ms: unix_millis(identity.not_after),
            state: RenewalState::Queued,
            attempts: 1,
            command_uuid: attempt.command_uuid,
            first_queued_at_ms: unix_millis(now),
            queued_at_ms: unix_millis(now),
            acknowledged_at_ms: None,
            last_error: None,
            failed_at_ms: None,
            next_attempt_at_ms: None,
            finished_at_ms: None,
            challenge_sha256: attempt.challenge.map(hex::encode),
            replacement_refused: false,
        }
    }

    /// True when this record is about the identity with this hash.
    pub fn renews(&self, sha256: &[u8; 32]) -> bool {
        self.cert_sha256 == hex::encode(sha256)
    }

    /// The renewed identity's `notAfter`.
    pub fn expires_at(&self) -> SystemTime {
        from_unix_millis(self.expires_at_ms)
    }

    /// The current attempt's challenge hash, if it had a one-time challenge.
    pub fn challenge(&self) -> Option<ChallengeHash> {
        let mut hash = [0u8; 32];
        let hex = self.challenge_sha256.as_deref()?;
        hex::decode_to_slice(hex, &mut hash).ok()?;
        Some(hash)
    }

    /// The device answered the current attempt's InstallProfile with `status` (reports about
    /// other commands, NotNow and Idle change nothing).
    pub fn on_result(
        &mut self,
        uuid: &CommandUuid,
        status: Status,
        chain: &[ErrorChainItem],
        now: SystemTime,
    ) -> Option<Transition> {
        if *uuid != self.command_uuid || self.state != RenewalState::Queued {
            return None;
        }
        match status {
            Status::Acknowledged => {
                self.state = RenewalState::Acknowledged;
                self.acknowledged_at_ms = Some(unix_millis(now));
                Some(Transition::Acknowledged)
            }
            Status::Error | Status::CommandFormatError => {
                Some(self.fail(failure_of(status, chain), now))
            }
            _ => None,
        }
    }

    /// The device uses an identity other than the one being renewed.
    pub fn on_identity_replaced(&mut self, now: SystemTime) -> Option<Transition> {
        if !self.state.is_open() {
            return None;
        }
        self.state = RenewalState::Completed;
        self.finished_at_ms = Some(unix_millis(now));
        self.next_attempt_at_ms = None;
        Some(Transition::Completed)
    }

    /// The periodic review: `replaced` says whether the device now uses another identity,
    /// `command` is the current attempt's command as the queue sees it (None: not in the
    /// queue's records) with its ErrorChain. Catches what the result hook missed (a result
    /// that arrived before the record was written, a restart in between), a command that left
    /// the queue unanswered (an Authenticate clears the queue), an acknowledged attempt that
    /// never produced a new identity, and expiry.
    pub fn review(
        &mut self,
        replaced: bool,
        command: Option<(CommandState, &[ErrorChainItem])>,
        now: SystemTime,
    ) -> Option<Transition> {
        if !self.state.is_open() {
            return None;
        }
        if replaced {
            return self.on_identity_replaced(now);
        }
        if now >= self.expires_at() {
            self.state = RenewalState::Expired;
            self.finished_at_ms = Some(unix_millis(now));
            self.next_attempt_at_ms = None;
            return Some(Transition::Expired);
        }
        match self.state {
            RenewalState::Queued => match command {
                Some((state, _)) if state.is_queued() => None,
                Some((CommandState::Acknowledged, _)) => {
                    let uuid = self.command_uuid.clone();
                    self.on_result(&uuid, Status::Acknowledged, &[], now)
                }
                Some((CommandState::Error, chain)) => {
                    Some(self.fail(failure_of(Status::Error, chain), now))
                }
                Some((CommandState::CommandFormatError, chain)) => {
                    Some(self.fail(failure_of(Status::CommandFormatError, chain), now))
                }
                _ => Some(self.fail(
                    (
                        "the renewal command left the queue unanswered".to_owned(),
                        false,
                    ),
                    now,
                )),
            },
            RenewalState::Acknowledged => {
                let acknowledged = from_unix_millis(self.acknowledged_at_ms.unwrap_or(0));
                (now >= acknowledged + COMPLETION_TIMEOUT).then(|| {
                    self.fail(
                        (
                            format!(
                                "profile installed, but the device still uses its old identity \
                                 {} h later",
                                COMPLETION_TIMEOUT.as_secs() / 3600
                            ),
                            false,
                        ),
                        now,
                    )
                })
            }
            _ => None,
        }
    }

    /// True when a failed renewal's next attempt is due.
    pub fn retry_due(&self, now: SystemTime) -> bool {
        self.state == RenewalState::Failed
            && now < self.expires_at()
            && self
                .next_attempt_at_ms
                .is_some_and(|at| from_unix_millis(at) <= now)
    }

    /// Starts the next attempt (a fresh challenge and InstallProfile) at `now`.
    pub fn retry(&mut self, attempt: Attempt, now: SystemTime) {
        self.state = RenewalState::Queued;
        self.attempts = self.attempts.saturating_add(1);
        self.command_uuid = attempt.command_uuid;
        self.challenge_sha256 = attempt.challenge.map(hex::encode);
        self.queued_at_ms = unix_millis(now);
        self.acknowledged_at_ms = None;
        self.next_attempt_at_ms = None;
    }

    fn fail(
        &mut self,
        (error, replacement_refused): (String, bool),
        now: SystemTime,
    ) -> Transition {
        let last_chance = self
            .expires_at()
            .checked_sub(LAST_CHANCE_MARGIN)
            .unwrap_or(now)
            .max(now);
        let next = (now + retry_delay(self.attempts)).min(last_chance);
        self.state = RenewalState::Failed;
        self.last_error = Some(error.clone());
        self.failed_at_ms = Some(unix_millis(now));
        self.next_attempt_at_ms = Some(unix_millis(next));
        self.replacement_refused = replacement_refused;
        Transition::Failed {
            error,
            replacement_refused,
            next_attempt_at: next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn uuid(n: u32) -> CommandUuid {
        CommandUuid::new(format!("RENEW-{n}")).unwrap()
    }

    fn record(expires_in: Duration) -> RenewalRecord {
        RenewalRecord::first(
            EnrollmentId::device("UDID-1").unwrap(),
            &ExpiringIdentity {
                sha256: [7; 32],
                serial: 5,
                not_after: t0() + expires_in,
            },
            Attempt {
                command_uuid: uuid(1),
                challenge: Some([9; 32]),
            },
            t0(),
        )
    }

    fn error_item() -> ErrorChainItem {
        ErrorChainItem {
            code: 4001,
            domain: "MCInstallationErrorDomain".into(),
            localized_description: Some("Profile-Installation fehlgeschlagen".into()),
            us_english_description: Some("Profile Installation Failed".into()),
        }
    }

    #[test]
    fn acknowledged_then_new_identity_completes() {
        let mut r = record(10 * 24 * HOUR);
        assert!(r.renews(&[7; 32]) && r.challenge() == Some([9; 32]));
        assert_eq!(
            r.on_result(&uuid(2), Status::Acknowledged, &[], t0()),
            None,
            "another command's result changes nothing"
        );
        assert_eq!(r.on_result(&uuid(1), Status::NotNow, &[], t0()), None);
        assert_eq!(
            r.on_result(&uuid(1), Status::Acknowledged, &[], t0() + HOUR),
            Some(Transition::Acknowledged)
        );
        assert_eq!(r.review(false, None, t0() + 2 * HOUR), None);
        assert_eq!(
            r.review(true, None, t0() + 3 * HOUR),
            Some(Transition::Completed)
        );
        assert_eq!(r.state, RenewalState::Completed);
        assert_eq!(r.review(true, None, t0() + 4 * HOUR), None, "final");
    }

    #[test]
    fn errors_back_off_one_four_twelve_then_daily() {
        let mut r = record(30 * 24 * HOUR);
        let mut now = t0();
        for (attempt, wait) in [1, 4, 12, 24, 24].into_iter().enumerate() {
            let Some(Transition::Failed {
                error,
                next_attempt_at,
                ..
            }) = r.on_result(&r.command_uuid.clone(), Status::Error, &[error_item()], now)
            else {
                panic!("attempt {attempt} should fail");
            };
            assert_eq!(
                error,
                "MCInstallationErrorDomain 4001: Profile Installation Failed"
            );
            assert_eq!(next_attempt_at, now + wait * HOUR);
            assert!(!r.retry_due(now + wait * HOUR - Duration::from_secs(1)));
            now += wait * HOUR;
            assert!(r.retry_due(now));
            r.retry(
                Attempt {
                    command_uuid: uuid(attempt as u32 + 2),
                    challenge: None,
                },
                now,
            );
            assert_eq!(r.state, RenewalState::Queued);
            assert_eq!(r.challenge(), None);
        }
        assert_eq!(r.attempts, 6);
        assert_eq!(
            r.last_error.as_deref().map(|e| e.contains("4001")),
            Some(true)
        );
    }

    #[test]
    fn the_last_retry_comes_before_expiry_and_expiry_is_final() {
        let mut r = record(5 * HOUR);
        r.attempts = 3; // next wait would be 12 h
        let Some(Transition::Failed {
            next_attempt_at, ..
        }) = r.on_result(&uuid(1), Status::CommandFormatError, &[], t0())
        else {
            panic!("should fail");
        };
        assert_eq!(next_attempt_at, t0() + 4 * HOUR, "one hour before expiry");
        assert_eq!(
            r.last_error.as_deref(),
            Some("CommandFormatError without an ErrorChain")
        );
        assert_eq!(
            r.review(false, None, t0() + 5 * HOUR),
            Some(Transition::Expired)
        );
        assert!(!r.retry_due(t0() + 6 * HOUR));
        assert_eq!(r.review(true, None, t0() + 6 * HOUR), None);
    }

    #[test]
    fn review_catches_missed_results_dropped_commands_and_stuck_installs() {
        let mut r = record(10 * 24 * HOUR);
        assert_eq!(
            r.review(false, Some((CommandState::NotNow, &[])), t0() + HOUR),
            None,
            "NotNow: still queued"
        );
        assert_eq!(
            r.review(false, Some((CommandState::Acknowledged, &[])), t0() + HOUR),
            Some(Transition::Acknowledged)
        );
        assert_eq!(r.review(false, None, t0() + 24 * HOUR), None);
        assert!(matches!(
            r.review(false, None, t0() + 25 * HOUR),
            Some(Transition::Failed { .. })
        ));
        assert!(r.last_error.as_deref().unwrap().contains("old identity"));

        let mut dropped = record(10 * 24 * HOUR);
        assert!(matches!(
            dropped.review(false, Some((CommandState::Cancelled, &[])), t0()),
            Some(Transition::Failed { .. })
        ));
        let mut errored = record(10 * 24 * HOUR);
        let chain = [error_item()];
        assert!(matches!(
            errored.review(false, Some((CommandState::Error, &chain)), t0()),
            Some(Transition::Failed { .. })
        ));
    }

    #[test]
    fn a_replacement_refusal_is_a_failure_named_by_code_in_any_domain() {
        for domain in ["MCMDMErrorDomain", "MDMErrorDomain"] {
            let mut r = record(10 * 24 * HOUR);
            let chain = [ErrorChainItem {
                code: 12012,
                domain: domain.into(),
                localized_description: None,
                us_english_description: Some("The new MDM payload does not match.".into()),
            }];
            let Some(Transition::Failed {
                replacement_refused,
                ..
            }) = r.on_result(&uuid(1), Status::Error, &chain, t0())
            else {
                panic!("a 12012 is a failure, never a renewal");
            };
            assert!(replacement_refused && r.replacement_refused);
            assert_eq!(r.state, RenewalState::Failed);
            let error = r.last_error.as_deref().unwrap();
            assert!(
                error.contains("refused to replace the MDM profile (12012)"),
                "{error}"
            );
            assert!(error.contains(domain), "{error}");
        }
        let mut other = record(10 * 24 * HOUR);
        other.on_result(&uuid(1), Status::Error, &[error_item()], t0());
        assert!(!other.replacement_refused);
    }

    #[test]
    fn records_round_trip_and_states_have_stable_names() {
        let r = record(HOUR);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["state"], "queued");
        assert_eq!(json["device"], "UDID-1");
        let back: RenewalRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
        for state in RenewalState::ALL {
            assert_eq!(RenewalState::parse(state.as_str()), Some(state));
        }
        assert!(
            serde_json::from_slice::<RenewalRecord>(
                br#"{"enrollment_id":"U","command_uuid":"C","serial":1,"queued_at_ms":2}"#
            )
            .is_err(),
            "the record of earlier versions does not decode"
        );
    }
}

//! The hand-off check: after a sign-out, the device is clean only when its reported
//! ProfileList and ManagedApplicationList match the nobody state exactly, after every removal
//! was answered (see docs/decisions/0023-hand-off-proven-clean.md).
//!
//! A sign-out starts a round: the removals, then ProfileList and ManagedApplicationList
//! (marked as this round's lists in the in-flight records). When both lists are answered the
//! round ends with a verdict computed by [`remaining`] (pure: desired nobody state, observed
//! inventory, `now`). Something left makes the hand-off `not_clean`: a new round follows after
//! a back-off ([`HandOffPolicy::retry_at`]); its removals are re-sent (the failed items'
//! records are cleared) and managed apps Baton did not install are adopted so the engine
//! removes them. After [`HandOffPolicy::max_rounds`] rounds the hand-off is `given_up` with
//! what remains. Keyspace collection [`HAND_OFFS_COLLECTION`], key: the device id. Certificate
//! items are profiles (`com.apple.security.pkcs12`) and are checked in ProfileList; the
//! device's CertificateList is not asked (it lists certificates of every profile, including
//! the MDM identity, and does not say which profile owns one).

use std::collections::BTreeMap;
use std::time::Duration;

use baton_assign::{Channel, DesiredState, Intent, ItemKind, Observed, UnixTime, plan};
use serde::{Deserialize, Serialize};

use baton_proto::EnrollmentId;
use baton_store::Keyspace;

use super::device_state::FailureRecord;
use crate::catalog::assignment_config::{RecordError, read_json};

/// Keyspace collection of hand-off records (one per device).
pub const HAND_OFFS_COLLECTION: &str = "hand_offs";

/// Where a device's hand-off stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HandOffState {
    /// The round's removals and lists are queued; the device has not answered both lists.
    Verifying,
    /// The device's lists showed something left; another round follows at `next_check_at`.
    NotClean,
    /// Still not clean after the last round: Baton stopped retrying (an operator can start
    /// a new round, `POST /api/v1/devices/{id}/hand-off/retry`).
    GivenUp,
    /// The device's lists matched the nobody state.
    Clean,
}

impl HandOffState {
    /// True when the device is known to hold something of the previous session.
    pub fn is_not_clean(self) -> bool {
        matches!(self, HandOffState::NotClean | HandOffState::GivenUp)
    }
}

/// What kind of thing is left on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RemainingKind {
    /// A profile (web clip, settings profile) under Baton's prefix the nobody state lacks.
    Profile,
    /// A certificate item (its pkcs12 profile).
    Certificate,
    /// A managed app the nobody state lacks.
    App,
    /// An item of the nobody state the device does not have (or an app not `Managed` yet).
    Missing,
    /// The device refused a list, so nothing could be proven.
    Unanswered,
}

/// One thing that keeps the hand-off from being clean.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    /// What it is.
    pub kind: RemainingKind,
    /// PayloadIdentifier, bundle id, or RequestType for [`RemainingKind::Unanswered`].
    pub identifier: String,
    /// The catalog item, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// The catalog item's name, for people (set when the round ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Why it is still there, when the device said (the last refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Remaining {
    /// What people call it: the catalog name, else the catalog id, else the identifier.
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .or(self.item.as_deref())
            .unwrap_or(&self.identifier)
    }

    /// A short text for people: `app com.example.notes (RemoveApplication refused ...)`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            RemainingKind::Profile => "profile",
            RemainingKind::Certificate => "certificate",
            RemainingKind::App => "app",
            RemainingKind::Missing => "not installed yet:",
            RemainingKind::Unanswered => "no answer to",
        };
        let mut text = format!("{what} {}", self.label());
        if let Some(r) = &self.reason {
            text.push_str(" (");
            text.push_str(r);
            text.push(')');
        }
        text
    }
}

/// The hand-off of one device (the latest sign-out's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOff {
    /// Where it stands.
    pub state: HandOffState,
    /// Who was signed out (none when the device was signed out with nobody signed in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The session log key of that session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// When the sign-out happened, Unix milliseconds.
    pub signed_out_at: u64,
    /// Rounds that ended not clean so far.
    pub rounds_not_clean: u32,
    /// This round's ProfileList was answered.
    #[serde(default)]
    pub profile_list: bool,
    /// This round's ManagedApplicationList was answered.
    #[serde(default)]
    pub app_list: bool,
    /// What the last round found left (empty when clean).
    #[serde(default)]
    pub remaining: Vec<Remaining>,
    /// When the last round ended, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<u64>,
    /// `not_clean`: when the next round starts, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at: Option<u64>,
    /// A not-clean verdict was published (event, gauge) and no clean one since.
    #[serde(default)]
    pub reported_not_clean: bool,
    /// Items of the nobody state the lists did not show yet while their install was still
    /// queued or deferred (a locked phone answers NotNow): the round waits for the device to
    /// answer them and asks both lists again then, instead of judging the device not clean.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub awaiting: Vec<String>,
}

impl HandOff {
    /// A new round after a sign-out.
    pub fn started(username: Option<String>, session_key: Option<String>, now_ms: u64) -> Self {
        HandOff {
            state: HandOffState::Verifying,
            username,
            session_key,
            signed_out_at: now_ms,
            rounds_not_clean: 0,
            profile_list: false,
            app_list: false,
            remaining: Vec::new(),
            checked_at: None,
            next_check_at: None,
            reported_not_clean: false,
            awaiting: Vec::new(),
        }
    }

    /// Starts the next round (same sign-out): both lists unanswered again.
    pub fn next_round(&mut self) {
        self.state = HandOffState::Verifying;
        self.profile_list = false;
        self.app_list = false;
        self.next_check_at = None;
        self.awaiting.clear();
    }

    /// The round's lists were answered and every remaining thing is an item of the nobody
    /// state whose install the device has not answered yet (`pending`: the device's items
    /// with a queued or deferred install): waits for those answers instead of concluding.
    /// Returns false (nothing changed) when something else remains or nothing does.
    pub fn await_installs(
        &mut self,
        remaining: &[Remaining],
        pending: &std::collections::BTreeSet<String>,
    ) -> bool {
        let waiting = !remaining.is_empty()
            && remaining.iter().all(|r| {
                r.kind == RemainingKind::Missing
                    && r.item.as_ref().is_some_and(|i| pending.contains(i))
            });
        if !waiting {
            return false;
        }
        self.awaiting = remaining.iter().filter_map(|r| r.item.clone()).collect();
        self.profile_list = false;
        self.app_list = false;
        true
    }

    /// What remains, for people: `app x (reason); profile y`.
    pub fn remaining_text(&self) -> String {
        self.remaining
            .iter()
            .map(Remaining::describe)
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Ends the round with `remaining`: clean when empty, else not clean with the next round
    /// at the policy's back-off, or given up after its last round.
    pub fn conclude(&mut self, remaining: Vec<Remaining>, policy: &HandOffPolicy, now_ms: u64) {
        self.checked_at = Some(now_ms);
        self.remaining = remaining;
        if self.remaining.is_empty() {
            self.state = HandOffState::Clean;
            self.next_check_at = None;
            return;
        }
        self.rounds_not_clean = self.rounds_not_clean.saturating_add(1);
        match policy.retry_at(self.rounds_not_clean, now_ms) {
            Some(at) => {
                self.state = HandOffState::NotClean;
                self.next_check_at = Some(at);
            }
            None => {
                self.state = HandOffState::GivenUp;
                self.next_check_at = None;
            }
        }
    }
}

/// How often a not-clean hand-off is checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOffPolicy {
    /// Rounds that may end not clean before Baton gives up (the first round counts).
    pub max_rounds: u32,
    /// Back-off after the first not-clean round; doubles after each, up to `max_backoff`.
    pub backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
}

impl Default for HandOffPolicy {
    fn default() -> Self {
        HandOffPolicy {
            max_rounds: 5,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(10 * 60),
        }
    }
}

impl HandOffPolicy {
    /// When the round after the `rounds`-th not-clean one starts; None: give up.
    pub fn retry_at(&self, rounds: u32, now_ms: u64) -> Option<u64> {
        if rounds >= self.max_rounds {
            return None;
        }
        let base = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::try_from(self.max_backoff.as_millis()).unwrap_or(u64::MAX);
        let factor = 1u64 << rounds.saturating_sub(1).min(20);
        Some(now_ms.saturating_add(base.saturating_mul(factor).min(cap.max(base))))
    }
}

/// The device's hand-off record (`device` is the device id, not a user channel).
pub fn of(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Option<HandOff>, RecordError> {
    read_json(store, HAND_OFFS_COLLECTION, device.as_str())
}

/// What keeps `observed` (the device's reported lists) from matching `nobody` exactly, on the
/// device channel: every removal the engine would still send, every item of the nobody state
/// the device lacks (an app must be listed `Managed`), and every managed app listed that the
/// nobody state does not have, whether Baton installed it or not. `reasons` are the failure
/// records (the last refusal) by item id.
pub fn remaining(
    nobody: &DesiredState<'_>,
    observed: &Observed,
    reasons: &BTreeMap<String, FailureRecord>,
    now: UnixTime,
) -> Vec<Remaining> {
    let reason_of = |item: Option<&str>| {
        item.and_then(|i| reasons.get(i))
            .and_then(|r| r.reason.clone())
    };
    let mut out = Vec::new();
    // Planned with no failures and nothing in flight: whatever it would send is not done.
    let planned = plan(nobody, observed, &[], &BTreeMap::new(), now);
    for intent in &planned.intents {
        if intent.channel() != &Channel::Device {
            continue;
        }
        let item = intent.item().map(ToString::to_string);
        let (kind, identifier) = match intent {
            Intent::RemoveProfile { identifier, .. } => {
                (RemainingKind::Profile, identifier.to_string())
            }
            Intent::RemoveCertificate { identifier, .. } => {
                (RemainingKind::Certificate, identifier.to_string())
            }
            Intent::RemoveApplication { bundle_id, .. } => {
                (RemainingKind::App, bundle_id.to_string())
            }
            // Settings are not in the lists: nothing to prove.
            Intent::ApplySettings { .. } => continue,
            other => (
                RemainingKind::Missing,
                other.item().map(ToString::to_string).unwrap_or_default(),
            ),
        };
        out.push(Remaining {
            kind,
            identifier,
            reason: reason_of(item.as_deref()),
            item,
            name: None,
        });
    }
    let inventory = observed.channel(&Channel::Device);
    let wanted_apps: Vec<(&str, &baton_assign::ItemId)> = nobody
        .entries
        .iter()
        .filter(|e| e.channel == Channel::Device && e.kind == ItemKind::App)
        .map(|e| (e.key, e.item))
        .collect();
    for (bundle, app) in inventory.map(|i| i.apps.iter()).into_iter().flatten() {
        match wanted_apps.iter().find(|(k, _)| k == bundle) {
            Some((_, item)) => {
                let listed = app.status == baton_assign::AppStatus::Managed;
                let planned_install = out.iter().any(|r| r.item.as_deref() == Some(item.as_str()));
                if !listed && !planned_install {
                    out.push(Remaining {
                        kind: RemainingKind::Missing,
                        identifier: bundle.clone(),
                        item: Some(item.to_string()),
                        name: None,
                        reason: reason_of(Some(item.as_str())),
                    });
                }
            }
            // The engine removes only apps Baton installed; the rest are listed here too.
            None if app.status.is_present() && !app.baton_managed => out.push(Remaining {
                kind: RemainingKind::App,
                identifier: bundle.clone(),
                item: None,
                name: None,
                reason: Some("managed app the nobody state does not have".to_owned()),
            }),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_gives_up_after_the_last_round() {
        let p = HandOffPolicy {
            max_rounds: 4,
            backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(25),
        };
        assert_eq!(p.retry_at(1, 1_000), Some(11_000));
        assert_eq!(p.retry_at(2, 1_000), Some(21_000));
        assert_eq!(p.retry_at(3, 1_000), Some(26_000));
        assert_eq!(p.retry_at(4, 1_000), None);
    }

    #[test]
    fn a_round_concludes_clean_only_with_nothing_left() {
        let policy = HandOffPolicy {
            max_rounds: 2,
            ..HandOffPolicy::default()
        };
        let mut h = HandOff::started(Some("alice".into()), None, 5);
        let left = vec![Remaining {
            kind: RemainingKind::App,
            identifier: "com.example.notes".into(),
            item: Some("notes".into()),
            name: None,
            reason: Some("RemoveApplication refused".into()),
        }];
        h.conclude(left.clone(), &policy, 10);
        assert_eq!(h.state, HandOffState::NotClean);
        assert!(h.next_check_at.is_some_and(|t| t > 10));
        assert_eq!(h.remaining_text(), "app notes (RemoveApplication refused)");
        h.next_round();
        h.conclude(left, &policy, 20);
        assert_eq!(h.state, HandOffState::GivenUp);
        assert!(h.state.is_not_clean());
        h.next_round();
        h.conclude(Vec::new(), &policy, 30);
        assert_eq!(h.state, HandOffState::Clean);
        assert!(h.remaining.is_empty());
    }

    #[test]
    fn a_round_waits_only_when_every_remaining_item_is_a_pending_install() {
        let missing = |item: &str| Remaining {
            kind: RemainingKind::Missing,
            identifier: format!("id.{item}"),
            item: Some(item.into()),
            name: None,
            reason: None,
        };
        let pending: std::collections::BTreeSet<String> = ["sign-in-clip".to_owned()].into();
        let mut h = HandOff::started(Some("alice".into()), None, 5);
        h.profile_list = true;
        h.app_list = true;
        // Nothing left: conclude (clean), do not wait.
        assert!(!h.await_installs(&[], &pending));
        // A missing item whose install is not pending: conclude (not clean).
        assert!(!h.await_installs(&[missing("other")], &pending));
        // A stray app next to the pending install: conclude.
        let stray = Remaining {
            kind: RemainingKind::App,
            identifier: "com.example.notes".into(),
            item: None,
            name: None,
            reason: None,
        };
        assert!(!h.await_installs(&[missing("sign-in-clip"), stray], &pending));
        assert!(h.profile_list && h.app_list && h.awaiting.is_empty());
        // Only the pending install: wait, lists to be asked again.
        assert!(h.await_installs(&[missing("sign-in-clip")], &pending));
        assert_eq!(h.awaiting, vec!["sign-in-clip".to_owned()]);
        assert!(!h.profile_list && !h.app_list);
        assert_eq!(h.state, HandOffState::Verifying);
        h.next_round();
        assert!(h.awaiting.is_empty());
    }
}

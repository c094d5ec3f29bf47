//! The session rules that apply to one sign-in: [`effective`] combines the stored
//! [`SessionPolicy`], the server's default lease and the groups the (device, user) pair is in;
//! [`prompt_allowed`] is the "Stay signed in?" rule. Pure: no store, no clock.
//!
//! Combining several groups, the safest answer wins:
//! - shared mode is on unless a device group says `false` and none says `true`;
//! - the lease is the shortest `lease_seconds` of the device groups, else the default lease;
//! - shift ends are the union of the device groups' shift ends;
//! - persistent sessions are allowed unless a user group says `never`, and never in shared mode.

use std::time::Duration;

use baton_assign::{CompiledConfig, Device, GroupId, GroupKind};
use serde::{Serialize, Serializer};

use super::record::{PersistentSessions, SessionPolicy};
use super::shift::ShiftTime;
use super::zone::OperatorZone;

fn as_secs<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The rules for one (device, user) sign-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectivePolicy {
    /// The device is in shared mode: never a prompt, never a persistent session.
    pub shared_mode: bool,
    /// The longest a non-persistent session lasts.
    #[serde(rename = "lease_seconds", serialize_with = "as_secs")]
    pub lease: Duration,
    /// Times of day (in `time_zone`) at which a non-persistent session ends, sorted, no
    /// duplicates.
    pub shift_ends: Vec<ShiftTime>,
    /// The operator's time zone, in which the shift ends are read (UTC unless
    /// [`EffectivePolicy::in_zone`] says otherwise).
    pub time_zone: OperatorZone,
    /// A persistent session may be granted: not shared mode and no user group says never.
    pub persistent_allowed: bool,
    /// The global "Stay signed in?" toggle.
    pub show_keep_signed_in: bool,
    /// How long the prompt waits before the sign-in counts as interrupted.
    #[serde(rename = "prompt_timeout_seconds", serialize_with = "as_secs")]
    pub prompt_timeout: Duration,
    /// How long before a lease ends the portal warns (zero: no warning).
    #[serde(rename = "warn_before_seconds", serialize_with = "as_secs")]
    pub warn_before: Duration,
}

/// The rules for `username` signing in on `device`, from the groups
/// [`CompiledConfig::groups_of`] finds for the pair. Rules naming groups of the wrong kind
/// (a group deleted and re-created) are ignored.
pub fn effective(
    policy: &SessionPolicy,
    default_lease: Duration,
    compiled: &CompiledConfig,
    device: &Device,
    username: &str,
) -> EffectivePolicy {
    let directory = &compiled.config().directory;
    let mut device_groups = Vec::new();
    let mut user_groups = Vec::new();
    for id in compiled.groups_of(device, username) {
        match directory.group(&id).map(|g| g.members.kind()) {
            Some(GroupKind::Users) => user_groups.push(id),
            Some(_) => device_groups.push(id),
            None => {}
        }
    }
    from_groups(policy, default_lease, &device_groups, &user_groups)
}

/// [`effective`] for known group memberships.
pub fn from_groups(
    policy: &SessionPolicy,
    default_lease: Duration,
    device_groups: &[GroupId],
    user_groups: &[GroupId],
) -> EffectivePolicy {
    let rules: Vec<_> = device_groups
        .iter()
        .filter_map(|g| policy.device_groups.get(g))
        .collect();
    let says = |v: bool| rules.iter().any(|r| r.shared_mode == Some(v));
    let shared_mode = says(true) || !says(false);
    let lease = rules
        .iter()
        .filter_map(|r| r.lease_seconds)
        .min()
        .map_or(default_lease, Duration::from_secs);
    let mut shift_ends: Vec<ShiftTime> = rules
        .iter()
        .flat_map(|r| r.shift_ends.iter().copied())
        .collect();
    shift_ends.sort_unstable();
    shift_ends.dedup();
    let never = user_groups
        .iter()
        .filter_map(|g| policy.user_groups.get(g))
        .any(|r| r.persistent_sessions == PersistentSessions::Never);
    EffectivePolicy {
        shared_mode,
        lease,
        shift_ends,
        time_zone: OperatorZone::utc(),
        persistent_allowed: !shared_mode && !never,
        show_keep_signed_in: policy.show_keep_signed_in,
        prompt_timeout: policy.prompt_timeout(),
        warn_before: policy.warn_before(),
    }
}

impl EffectivePolicy {
    /// The same rules with shift ends read in `zone`.
    pub fn in_zone(mut self, zone: &OperatorZone) -> Self {
        self.time_zone = zone.clone();
        self
    }
}

/// The "Stay signed in?" rule: shown only when the toggle is on, the device is not in shared
/// mode, the user's groups allow persistence and the sign-in is not risky.
pub fn prompt_allowed(policy: &EffectivePolicy, risk_is_low: bool) -> bool {
    policy.show_keep_signed_in && !policy.shared_mode && policy.persistent_allowed && risk_is_low
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_assign::{Config, Group, Membership, User};
    use baton_proto::Udid;

    const DAY: Duration = Duration::from_secs(86_400);

    fn g(s: &str) -> GroupId {
        GroupId::new(s).unwrap()
    }

    fn policy(json: &str) -> SessionPolicy {
        serde_json::from_str(json).unwrap()
    }

    /// Three device groups (dedicated: shared off; kiosk: shared on; night: lease and shift
    /// ends) and two user groups (doctors: never; nurses: allowed).
    fn sample() -> SessionPolicy {
        policy(
            r#"{"device_groups":{
                "dedicated":{"shared_mode":false,"lease_seconds":28800,"shift_ends":["19:00","07:00"]},
                "kiosk":{"shared_mode":true,"lease_seconds":600},
                "night":{"lease_seconds":3600,"shift_ends":["07:00","23:00"]}},
              "user_groups":{"doctors":{"persistent_sessions":"never"},
                "nurses":{"persistent_sessions":"allowed"}}}"#,
        )
    }

    #[test]
    fn device_group_combinations() {
        let p = sample();
        // (device groups, shared, lease secs, shift ends)
        let table: &[(&[&str], bool, u64, &[&str])] = &[
            // No group: the defaults (shared, default lease, no shift ends).
            (&[], true, 86_400, &[]),
            // A group without a rule in the policy changes nothing.
            (&["unrelated"], true, 86_400, &[]),
            // shared_mode false, alone: off.
            (&["dedicated"], false, 28_800, &["07:00", "19:00"]),
            // Explicit true wins over false; shortest lease wins.
            (&["dedicated", "kiosk"], true, 600, &["07:00", "19:00"]),
            // A group with no opinion on shared mode does not turn it back on; shift ends merge.
            (
                &["dedicated", "night"],
                false,
                3600,
                &["07:00", "19:00", "23:00"],
            ),
            // Only no-opinion groups: shared (the default).
            (&["night"], true, 3600, &["07:00", "23:00"]),
        ];
        for (groups, shared, lease, ends) in table {
            let groups: Vec<GroupId> = groups.iter().map(|s| g(s)).collect();
            let e = from_groups(&p, DAY, &groups, &[]);
            assert_eq!(e.shared_mode, *shared, "{groups:?}");
            assert_eq!(e.lease, Duration::from_secs(*lease), "{groups:?}");
            let got: Vec<String> = e.shift_ends.iter().map(ToString::to_string).collect();
            assert_eq!(got, *ends, "{groups:?}");
            // Shared mode always forbids persistence.
            assert_eq!(e.persistent_allowed, !shared, "{groups:?}");
        }
    }

    #[test]
    fn user_group_combinations() {
        let p = sample();
        let dedicated = [g("dedicated")];
        // (user groups, persistent allowed on a non-shared device)
        let table: &[(&[&str], bool)] = &[
            (&[], true),
            (&["nurses"], true),
            (&["doctors"], false),
            (&["nurses", "doctors"], false),
            (&["unrelated"], true),
        ];
        for (groups, allowed) in table {
            let groups: Vec<GroupId> = groups.iter().map(|s| g(s)).collect();
            let e = from_groups(&p, DAY, &dedicated, &groups);
            assert_eq!(e.persistent_allowed, *allowed, "{groups:?}");
            // On a shared device nobody is allowed.
            assert!(!from_groups(&p, DAY, &[], &groups).persistent_allowed);
        }
    }

    #[test]
    fn toggle_timeouts_and_default_lease_pass_through() {
        let p = policy(
            r#"{"show_keep_signed_in":false,"prompt_timeout_seconds":60,"warn_before_seconds":0}"#,
        );
        let e = from_groups(&p, Duration::from_secs(42), &[], &[]);
        assert!(!e.show_keep_signed_in);
        assert_eq!(e.prompt_timeout, Duration::from_secs(60));
        assert_eq!(e.warn_before, Duration::ZERO);
        assert_eq!(e.lease, Duration::from_secs(42));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["lease_seconds"], 42);
        assert_eq!(json["prompt_timeout_seconds"], 60);
    }

    #[test]
    fn prompt_rule_every_branch() {
        let base = EffectivePolicy {
            shared_mode: false,
            lease: DAY,
            shift_ends: Vec::new(),
            time_zone: OperatorZone::utc(),
            persistent_allowed: true,
            show_keep_signed_in: true,
            prompt_timeout: Duration::from_secs(300),
            warn_before: Duration::from_secs(600),
        };
        // (toggle, shared, persistence allowed, low risk) -> shown
        let mut rows = Vec::new();
        for toggle in [false, true] {
            for shared in [false, true] {
                for allowed in [false, true] {
                    for low in [false, true] {
                        rows.push((toggle, shared, allowed, low));
                    }
                }
            }
        }
        for (toggle, shared, allowed, low) in rows {
            let p = EffectivePolicy {
                show_keep_signed_in: toggle,
                shared_mode: shared,
                persistent_allowed: allowed,
                ..base.clone()
            };
            let expected = toggle && !shared && allowed && low;
            assert_eq!(
                prompt_allowed(&p, low),
                expected,
                "toggle={toggle} shared={shared} allowed={allowed} low={low}"
            );
        }
        // Named branches, one at a time from the "shown" case.
        assert!(prompt_allowed(&base, true));
        assert!(!prompt_allowed(&base, false), "risky sign-in");
        let off = EffectivePolicy {
            show_keep_signed_in: false,
            ..base.clone()
        };
        assert!(!prompt_allowed(&off, true), "toggle off");
        let shared = EffectivePolicy {
            shared_mode: true,
            ..base.clone()
        };
        assert!(!prompt_allowed(&shared, true), "shared mode");
        let never = EffectivePolicy {
            persistent_allowed: false,
            ..base
        };
        assert!(!prompt_allowed(&never, true), "user group says never");
    }

    #[test]
    fn effective_uses_group_membership_of_the_pair() {
        let mut config = Config::default();
        config.directory.users = vec![User::nobody(), User::new("alice"), User::new("bob")];
        config.directory.groups = vec![
            Group {
                id: g("dedicated"),
                name: String::new(),
                members: Membership::Devices {
                    devices: ["UDID-1".to_owned()].into_iter().collect(),
                },
            },
            Group {
                id: g("doctors"),
                name: String::new(),
                members: Membership::Users {
                    usernames: ["bob".to_owned()].into_iter().collect(),
                },
            },
        ];
        let compiled = config.compile().unwrap();
        let device = |udid: &str| Device {
            udid: Udid::new(udid).unwrap(),
            serial: None,
            kind: Default::default(),
            assignee: "nobody".into(),
            attributes: Default::default(),
        };
        let p = sample();
        let alice = effective(&p, DAY, &compiled, &device("UDID-1"), "alice");
        assert!(!alice.shared_mode);
        assert!(alice.persistent_allowed);
        assert_eq!(alice.lease, Duration::from_secs(28_800));
        let bob = effective(&p, DAY, &compiled, &device("UDID-1"), "bob");
        assert!(!bob.shared_mode);
        assert!(!bob.persistent_allowed, "bob is a doctor");
        let other = effective(&p, DAY, &compiled, &device("UDID-2"), "alice");
        assert!(other.shared_mode);
        assert_eq!(other.lease, DAY);
        // A user rule on a device group id (group re-created with another kind) is ignored.
        let odd = policy(r#"{"user_groups":{"dedicated":{"persistent_sessions":"never"}}}"#);
        let mut with_odd = odd.clone();
        with_odd.device_groups.insert(
            g("dedicated"),
            sample().device_groups[&g("dedicated")].clone(),
        );
        assert!(
            effective(&with_odd, DAY, &compiled, &device("UDID-1"), "alice").persistent_allowed
        );
    }
}

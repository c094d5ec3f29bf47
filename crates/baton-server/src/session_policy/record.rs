//! The stored session policy (`GET`/`PUT /api/v1/session-policy`): the "Stay signed in?"
//! toggle, the prompt timeout, the expiry warning, per device group rules (shared mode, lease,
//! shift ends) and per user group rules (persistent sessions allowed or never). Kept as one
//! JSON record in [`POLICY_COLLECTION`]; an absent record means the documented defaults.
//!
//! [`SessionPolicy::validate`] checks the bounds and that every group id names an existing
//! group of the right kind (device rules on device groups, user rules on user groups).

use std::collections::BTreeMap;
use std::time::Duration;

use baton_assign::{Config, GroupId, GroupKind};
use baton_store::Keyspace;
use serde::{Deserialize, Serialize};

use super::shift::ShiftTime;
use crate::catalog::assignment_config::{RecordError, collection, encode, read_json};

/// Keyspace collection holding the policy.
pub const POLICY_COLLECTION: &str = "session_policy";
/// The policy's key in [`POLICY_COLLECTION`].
pub const POLICY_KEY: &str = "policy";

/// Shortest lease accepted (a group's `lease_seconds`, `--default-lease`): one second, so
/// tests and demonstrations can watch a lease end; the sweeper's wake-up is the real grain.
pub const MIN_LEASE: Duration = Duration::from_secs(1);
/// Longest lease accepted: 90 days. Anything longer is a persistent session in disguise.
pub const MAX_LEASE: Duration = Duration::from_secs(90 * 86_400);
/// Shortest "Stay signed in?" prompt timeout: 10 s (a person must be able to read it).
pub const MIN_PROMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest prompt timeout: 1 hour.
pub const MAX_PROMPT_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest expiry warning: 1 day (0 turns the warning off).
pub const MAX_WARN_BEFORE: Duration = Duration::from_secs(86_400);
/// Most shift ends per device group.
pub const MAX_SHIFT_ENDS: usize = 48;

/// Default prompt timeout, seconds.
pub const DEFAULT_PROMPT_TIMEOUT_SECONDS: u64 = 300;
/// Default expiry warning, seconds before the end.
pub const DEFAULT_WARN_BEFORE_SECONDS: u64 = 600;

fn yes() -> bool {
    true
}

fn default_prompt_timeout() -> u64 {
    DEFAULT_PROMPT_TIMEOUT_SECONDS
}

fn default_warn_before() -> u64 {
    DEFAULT_WARN_BEFORE_SECONDS
}

/// The session policy as stored and as `PUT /api/v1/session-policy` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPolicy {
    /// Global toggle: may the portal ask "Stay signed in?" at all (default true).
    #[serde(default = "yes")]
    pub show_keep_signed_in: bool,
    /// How long an unanswered prompt waits before it counts as interrupted (default 300).
    #[serde(default = "default_prompt_timeout")]
    pub prompt_timeout_seconds: u64,
    /// How long before a lease ends the portal warns (default 600; 0: no warning).
    #[serde(default = "default_warn_before")]
    pub warn_before_seconds: u64,
    /// Rules per device group id.
    #[serde(default)]
    pub device_groups: BTreeMap<GroupId, DeviceGroupRule>,
    /// Rules per user group id.
    #[serde(default)]
    pub user_groups: BTreeMap<GroupId, UserGroupRule>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            show_keep_signed_in: true,
            prompt_timeout_seconds: DEFAULT_PROMPT_TIMEOUT_SECONDS,
            warn_before_seconds: DEFAULT_WARN_BEFORE_SECONDS,
            device_groups: BTreeMap::new(),
            user_groups: BTreeMap::new(),
        }
    }
}

/// What a device group says about sessions on its devices. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroupRule {
    /// Shared mode on (true) or off (false); absent: no opinion. Devices are in shared mode
    /// unless a group says false and none says true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_mode: Option<bool>,
    /// The longest a non-persistent sign-in lasts on these devices, seconds; overrides the
    /// server's default lease (several groups: the shortest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
    /// Times of day (UTC) at which every non-persistent session on these devices ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shift_ends: Vec<ShiftTime>,
}

/// Whether a user group's members may keep a persistent session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PersistentSessions {
    /// The "Stay signed in?" answer Yes is honoured (default).
    #[default]
    Allowed,
    /// Never persistent: no prompt, every sign-in is leased.
    Never,
}

/// What a user group says about its members' sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserGroupRule {
    /// Allowed (default) or never.
    #[serde(default)]
    pub persistent_sessions: PersistentSessions,
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A rule names a group that does not exist.
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    /// A device rule names a user group, or a user rule a device group.
    #[error("group {id} is a {found} group; {section} takes {wanted} groups")]
    WrongGroupKind {
        /// The group.
        id: GroupId,
        /// Its kind (`user` or `device`).
        found: &'static str,
        /// The kind the section takes.
        wanted: &'static str,
        /// `device_groups` or `user_groups`.
        section: &'static str,
    },
    /// A value is outside its bounds.
    #[error("{field} must be between {min} and {max} seconds, got {got}")]
    OutOfRange {
        /// The field.
        field: String,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
        /// Given.
        got: u64,
    },
    /// Too many shift ends in one group.
    #[error("device group {0} has more than {MAX_SHIFT_ENDS} shift ends")]
    TooManyShiftEnds(GroupId),
}

fn kind_name(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Users => "user",
        _ => "device",
    }
}

fn in_range(field: String, got: u64, min: Duration, max: Duration) -> Result<(), PolicyError> {
    if got < min.as_secs() || got > max.as_secs() {
        return Err(PolicyError::OutOfRange {
            field,
            min: min.as_secs(),
            max: max.as_secs(),
            got,
        });
    }
    Ok(())
}

/// True when `lease` is within [`MIN_LEASE`]..=[`MAX_LEASE`].
pub fn lease_in_bounds(lease: Duration) -> bool {
    (MIN_LEASE..=MAX_LEASE).contains(&lease)
}

impl SessionPolicy {
    /// The prompt timeout.
    pub fn prompt_timeout(&self) -> Duration {
        Duration::from_secs(self.prompt_timeout_seconds)
    }

    /// The expiry warning lead time (zero: no warning).
    pub fn warn_before(&self) -> Duration {
        Duration::from_secs(self.warn_before_seconds)
    }

    /// Checks bounds, and that every group exists in `config` and has the right kind.
    pub fn validate(&self, config: &Config) -> Result<(), PolicyError> {
        in_range(
            "prompt_timeout_seconds".into(),
            self.prompt_timeout_seconds,
            MIN_PROMPT_TIMEOUT,
            MAX_PROMPT_TIMEOUT,
        )?;
        in_range(
            "warn_before_seconds".into(),
            self.warn_before_seconds,
            Duration::ZERO,
            MAX_WARN_BEFORE,
        )?;
        for (id, rule) in &self.device_groups {
            check_group(config, id, GroupKind::Devices, "device_groups")?;
            if let Some(lease) = rule.lease_seconds {
                in_range(
                    format!("device_groups.{id}.lease_seconds"),
                    lease,
                    MIN_LEASE,
                    MAX_LEASE,
                )?;
            }
            if rule.shift_ends.len() > MAX_SHIFT_ENDS {
                return Err(PolicyError::TooManyShiftEnds(id.clone()));
            }
        }
        for id in self.user_groups.keys() {
            check_group(config, id, GroupKind::Users, "user_groups")?;
        }
        Ok(())
    }

    /// Rules naming groups that no longer exist or changed kind (a group deleted after the
    /// policy was saved). Such rules are ignored; `GET` lists them as warnings.
    pub fn dangling(&self, config: &Config) -> Vec<String> {
        let device = self
            .device_groups
            .keys()
            .filter_map(|id| check_group(config, id, GroupKind::Devices, "device_groups").err());
        let user = self
            .user_groups
            .keys()
            .filter_map(|id| check_group(config, id, GroupKind::Users, "user_groups").err());
        device
            .chain(user)
            .map(|e| format!("{e}; the rule is ignored"))
            .collect()
    }
}

fn check_group(
    config: &Config,
    id: &GroupId,
    wanted: GroupKind,
    section: &'static str,
) -> Result<(), PolicyError> {
    let group = config
        .directory
        .group(id)
        .ok_or_else(|| PolicyError::UnknownGroup(id.clone()))?;
    let found = group.members.kind();
    if found != wanted {
        return Err(PolicyError::WrongGroupKind {
            id: id.clone(),
            found: kind_name(found),
            wanted: kind_name(wanted),
            section,
        });
    }
    Ok(())
}

/// The stored policy, or the defaults when none was saved.
pub fn load(store: &dyn Keyspace) -> Result<SessionPolicy, RecordError> {
    Ok(read_json(store, POLICY_COLLECTION, POLICY_KEY)?.unwrap_or_default())
}

/// Stores `policy` (replacing the previous one).
pub fn save(store: &dyn Keyspace, policy: &SessionPolicy) -> Result<(), RecordError> {
    Ok(store.put(
        &collection(POLICY_COLLECTION)?,
        POLICY_KEY.as_bytes(),
        &encode(policy)?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_assign::{Group, Membership};

    fn config() -> Config {
        let mut c = Config::default();
        c.directory.groups = vec![
            Group {
                id: GroupId::new("ward-ipads").unwrap(),
                name: String::new(),
                members: Membership::Devices {
                    devices: Default::default(),
                },
            },
            Group {
                id: GroupId::new("doctors").unwrap(),
                name: String::new(),
                members: Membership::Users {
                    usernames: Default::default(),
                },
            },
        ];
        c
    }

    fn parse(json: &str) -> SessionPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn empty_body_gives_documented_defaults() {
        let p = parse("{}");
        assert_eq!(p, SessionPolicy::default());
        assert!(p.show_keep_signed_in);
        assert_eq!(p.prompt_timeout(), Duration::from_secs(300));
        assert_eq!(p.warn_before(), Duration::from_secs(600));
        p.validate(&config()).unwrap();
    }

    #[test]
    fn design_example_round_trips_and_validates() {
        let json = r#"{"show_keep_signed_in":true,"prompt_timeout_seconds":300,
            "warn_before_seconds":600,
            "device_groups":{"ward-ipads":{"shared_mode":false,"lease_seconds":28800,
                "shift_ends":["07:00","19:00"]}},
            "user_groups":{"doctors":{"persistent_sessions":"never"}}}"#;
        let p = parse(json);
        p.validate(&config()).unwrap();
        let back: SessionPolicy = serde_json::from_slice(&encode(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let rule = &p.user_groups[&GroupId::new("doctors").unwrap()];
        assert_eq!(rule.persistent_sessions, PersistentSessions::Never);
    }

    #[test]
    fn validation_refuses_unknown_and_wrong_kind_groups_and_bounds() {
        let c = config();
        let unknown = parse(r#"{"device_groups":{"nope":{"shared_mode":false}}}"#);
        assert!(matches!(
            unknown.validate(&c),
            Err(PolicyError::UnknownGroup(_))
        ));
        assert_eq!(unknown.dangling(&c).len(), 1);
        let wrong = parse(r#"{"device_groups":{"doctors":{"shared_mode":false}}}"#);
        assert!(matches!(
            wrong.validate(&c),
            Err(PolicyError::WrongGroupKind { .. })
        ));
        let wrong = parse(r#"{"user_groups":{"ward-ipads":{"persistent_sessions":"never"}}}"#);
        assert!(matches!(
            wrong.validate(&c),
            Err(PolicyError::WrongGroupKind { .. })
        ));
        for bad in [
            r#"{"prompt_timeout_seconds":5}"#,
            r#"{"prompt_timeout_seconds":3601}"#,
            r#"{"warn_before_seconds":86401}"#,
            r#"{"device_groups":{"ward-ipads":{"lease_seconds":0}}}"#,
            r#"{"device_groups":{"ward-ipads":{"lease_seconds":7776001}}}"#,
        ] {
            assert!(
                matches!(parse(bad).validate(&c), Err(PolicyError::OutOfRange { .. })),
                "{bad} accepted"
            );
        }
        assert!(parse(r#"{"warn_before_seconds":0}"#).validate(&c).is_ok());
        // Typos and bad values are refused by the decoder.
        for bad in [
            r#"{"show_keep_signed_inn":true}"#,
            r#"{"device_groups":{"ward-ipads":{"shift_ends":["7pm"]}}}"#,
            r#"{"user_groups":{"doctors":{"persistent_sessions":"sometimes"}}}"#,
            r#"{"device_groups":{"bad name":{}}}"#,
        ] {
            assert!(
                serde_json::from_str::<SessionPolicy>(bad).is_err(),
                "{bad} decoded"
            );
        }
    }

    #[test]
    fn load_defaults_then_saved_value() {
        let store = baton_store::SledStore::temporary().unwrap();
        assert_eq!(load(&store).unwrap(), SessionPolicy::default());
        let p = parse(r#"{"show_keep_signed_in":false}"#);
        save(&store, &p).unwrap();
        assert_eq!(load(&store).unwrap(), p);
        let q = parse(r#"{"warn_before_seconds":60}"#);
        save(&store, &q).unwrap();
        assert_eq!(load(&store).unwrap(), q);
    }
}

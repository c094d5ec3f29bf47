//! Distributions as the admin API takes them: an item and a target `"all"`, `"none"`,
//! `{"users":[..]}` or `{"groups":[..]}`. A `users` target becomes an implicit static user
//! group when the engine configuration is assembled, so `{"users":["nobody"]}` reaches every
//! signed-out device.

use std::collections::BTreeSet;

use baton_assign::{Distribution, DistributionId, Group, GroupId, ItemId, Membership, Target};
use serde::{Deserialize, Serialize};

/// Who a distribution targets, as the admin API says it. `{"users":[..],"groups":[..]}` and
/// other unknown fields are refused, not read as the first variant that fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum TargetInput {
    /// `"all"` or `"none"`.
    Keyword(String),
    /// `{"users":[..]}`.
    Users {
        /// Usernames.
        users: Vec<String>,
    },
    /// `{"groups":[..]}`.
    Groups {
        /// Group ids.
        groups: Vec<GroupId>,
    },
}

/// `POST /api/v1/distributions` body; unknown fields refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributionInput {
    /// The item id.
    pub item: ItemId,
    /// The target.
    pub target: TargetInput,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Explicit id (else generated).
    #[serde(default)]
    pub id: Option<DistributionId>,
}

/// A stored distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DistributionRecord {
    /// Its id.
    pub id: DistributionId,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The item.
    pub item: ItemId,
    /// The target as given.
    pub target: TargetInput,
}

impl TargetInput {
    /// Checks the keyword form.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            TargetInput::Keyword(k) if k == "all" || k == "none" => Ok(()),
            TargetInput::Keyword(k) => Err(format!(
                "unknown target {k:?}: use all, none, {{\"users\":[..]}} or {{\"groups\":[..]}}"
            )),
            _ => Ok(()),
        }
    }
}

impl DistributionRecord {
    /// The id of the implicit user group of a `users` target.
    pub fn implicit_group_id(&self) -> Result<GroupId, baton_assign::NameError> {
        GroupId::new(format!("users-of-{}", self.id))
    }

    /// The engine distribution, plus the implicit group a `users` target needs.
    pub fn to_engine(&self) -> Result<(Distribution, Option<Group>), baton_assign::NameError> {
        let (target, group) = match &self.target {
            TargetInput::Keyword(k) if k == "all" => (Target::AllDevices, None),
            TargetInput::Keyword(_) => (Target::NoDevices, None),
            TargetInput::Groups { groups } => (
                Target::Groups {
                    groups: groups.clone(),
                },
                None,
            ),
            TargetInput::Users { users } => {
                let id = self.implicit_group_id()?;
                let group = Group {
                    id: id.clone(),
                    name: format!("users of distribution {}", self.id),
                    members: Membership::Users {
                        usernames: users.iter().cloned().collect::<BTreeSet<_>>(),
                    },
                };
                (Target::Groups { groups: vec![id] }, Some(group))
            }
        };
        Ok((
            Distribution {
                id: self.id.clone(),
                name: self.name.clone(),
                item: self.item.clone(),
                target,
            },
            group,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        for json in [
            r#"{"users":["a"],"groups":["g"]}"#,
            r#"{"users":["a"],"user":["b"]}"#,
        ] {
            assert!(serde_json::from_str::<TargetInput>(json).is_err(), "{json}");
        }
        let error = serde_json::from_str::<DistributionInput>(
            r#"{"item":"wifi","target":"all","priority":1}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("unknown field `priority`"), "{error}");
    }

    #[test]
    fn targets_parse_and_map() {
        for (json, want_group) in [
            (r#""all""#, false),
            (r#""none""#, false),
            (r#"{"users":["nobody"]}"#, true),
            (r#"{"groups":["nurses"]}"#, false),
        ] {
            let target: TargetInput = serde_json::from_str(json).unwrap();
            target.validate().unwrap();
            let rec = DistributionRecord {
                id: DistributionId::new("d1").unwrap(),
                name: String::new(),
                item: ItemId::new("wifi").unwrap(),
                target,
            };
            let (d, g) = rec.to_engine().unwrap();
            assert_eq!(g.is_some(), want_group, "{json}");
            if want_group {
                assert_eq!(
                    d.target,
                    Target::Groups {
                        groups: vec![GroupId::new("users-of-d1").unwrap()]
                    }
                );
            }
        }
        let bad: TargetInput = serde_json::from_str(r#""everyone""#).unwrap();
        assert!(bad.validate().is_err());
    }
}

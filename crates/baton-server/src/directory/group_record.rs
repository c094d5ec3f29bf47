//! Groups as the admin API creates them: `{"name","kind":"user"|"device","members"?,"rule"?}`,
//! turned into the engine's [`Group`] (static members or a rule).

use std::collections::BTreeSet;

use baton_assign::{Group, GroupId, Membership, Rule};
use serde::{Deserialize, Serialize};

/// A stored group (the engine's group, as is).
pub type GroupRecord = Group;

/// Whether a new group holds users or devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupInputKind {
    /// Users.
    User,
    /// Devices.
    Device,
}

/// `POST /api/v1/groups` body; unknown fields refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// Name, also the id (letters, digits, `.`, `-`, `_`).
    pub name: String,
    /// User or device group.
    pub kind: GroupInputKind,
    /// Static members: usernames or device UDIDs/serials.
    #[serde(default)]
    pub members: Option<Vec<String>>,
    /// A rule over user or device attributes.
    #[serde(default)]
    pub rule: Option<String>,
    /// Device groups only: devices whose assignee is in this user group.
    #[serde(default)]
    pub assignee_in: Option<String>,
}

impl GroupInput {
    /// The engine group, or why the input is wrong.
    pub fn into_group(self) -> Result<Group, String> {
        let id = GroupId::new(self.name.clone()).map_err(|e| e.to_string())?;
        let rule = self
            .rule
            .as_deref()
            .map(Rule::parse)
            .transpose()
            .map_err(|e| format!("rule: {e}"))?;
        let members: BTreeSet<String> = self.members.unwrap_or_default().into_iter().collect();
        let membership = match (self.kind, rule, self.assignee_in) {
            (GroupInputKind::Device, rule, Some(user_group)) => Membership::AssigneeIn {
                user_group: GroupId::new(user_group).map_err(|e| e.to_string())?,
                rule,
            },
            (_, Some(_), _) if !members.is_empty() => {
                return Err("give either members or a rule, not both".into());
            }
            (GroupInputKind::User, Some(rule), None) => Membership::UserRule { rule },
            (GroupInputKind::Device, Some(rule), None) => Membership::DeviceRule { rule },
            (GroupInputKind::User, None, None) => Membership::Users { usernames: members },
            (GroupInputKind::Device, None, None) => Membership::Devices { devices: members },
            (GroupInputKind::User, _, Some(_)) => {
                return Err("assignee_in is for device groups".into());
            }
        };
        Ok(Group {
            id,
            name: self.name,
            members: membership,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_map_to_memberships() {
        let g: GroupInput =
            serde_json::from_str(r#"{"name":"nurses","kind":"user","members":["alice"]}"#).unwrap();
        assert!(matches!(
            g.into_group().unwrap().members,
            Membership::Users { .. }
        ));
        let g: GroupInput =
            serde_json::from_str(r#"{"name":"ipads","kind":"device","rule":"model = \"iPad\""}"#)
                .unwrap();
        assert!(matches!(
            g.into_group().unwrap().members,
            Membership::DeviceRule { .. }
        ));
        let g: GroupInput = serde_json::from_str(r#"{"name":"bad name","kind":"user"}"#).unwrap();
        assert!(g.into_group().is_err());
    }
}

//! The directory: users (including the nobody user) and groups of users or devices.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::attribute::{AttrRef, AttrValue};
use crate::ids::GroupId;
use crate::rule::{Attributes, Rule};

/// Username of the nobody user, the assignee of every signed-out device.
pub const NOBODY_USERNAME: &str = "nobody";

/// The user attribute that marks the nobody user (`multi-user-owner = true`).
pub const MULTI_USER_OWNER: &str = "multi-user-owner";

/// One person (or the nobody user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name; `$USER.username`; the Shared iPad `UserShortName`.
    pub username: String,
    /// `$USER.email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `$USER.full_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Custom attributes (`$USER.<name>`, rules), e.g. `multi-user-owner = true`.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrValue>,
}

impl User {
    /// A user with only a username.
    pub fn new(username: impl Into<String>) -> User {
        User {
            username: username.into(),
            email: None,
            full_name: None,
            attributes: BTreeMap::new(),
        }
    }

    /// The nobody user: username [`NOBODY_USERNAME`] and `multi-user-owner = true`.
    pub fn nobody() -> User {
        let mut u = User::new(NOBODY_USERNAME);
        u.attributes
            .insert(MULTI_USER_OWNER.to_owned(), AttrValue::Bool(true));
        u
    }

    /// True for the nobody user.
    pub fn is_nobody(&self) -> bool {
        self.username == NOBODY_USERNAME
    }
}

impl Attributes for User {
    fn attribute(&self, name: &str) -> Option<AttrRef<'_>> {
        match name {
            "username" => Some(AttrRef::Str(&self.username)),
            "email" => self.email.as_deref().map(AttrRef::Str),
            "full_name" => self.full_name.as_deref().map(AttrRef::Str),
            _ => self.attributes.get(name).map(AttrRef::from),
        }
    }
}

/// Who belongs to a group. User groups hold users, device groups hold devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Membership {
    /// A user group with static members (usernames).
    Users {
        /// Usernames.
        usernames: BTreeSet<String>,
    },
    /// A user group of every user matching a rule over user attributes
    /// (`username`, `email`, `full_name`, custom attributes).
    UserRule {
        /// The rule.
        rule: Rule,
    },
    /// A device group with static members (UDIDs or serial numbers).
    Devices {
        /// UDIDs or serial numbers.
        devices: BTreeSet<String>,
    },
    /// A device group of every device matching a rule over device attributes
    /// (`udid`, `serial`, `kind`, custom attributes such as `model`, `os`).
    DeviceRule {
        /// The rule.
        rule: Rule,
    },
    /// A device group tied to a user group: devices whose current assignee is in `user_group`
    /// (and that match `rule`, when given).
    AssigneeIn {
        /// The user group.
        user_group: GroupId,
        /// An optional extra rule over device attributes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<Rule>,
    },
}

impl Membership {
    /// Whether the group holds users or devices.
    pub fn kind(&self) -> GroupKind {
        match self {
            Membership::Users { .. } | Membership::UserRule { .. } => GroupKind::Users,
            Membership::Devices { .. }
            | Membership::DeviceRule { .. }
            | Membership::AssigneeIn { .. } => GroupKind::Devices,
        }
    }
}

/// Whether a group holds users or devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GroupKind {
    /// A user group: matches through the device's current assignee.
    Users,
    /// A device group: matches through the device itself.
    Devices,
}

/// A user group or device group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Its id (one namespace for user and device groups).
    pub id: GroupId,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Who belongs to it.
    pub members: Membership,
}

/// All users and groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Users, including the nobody user.
    #[serde(default)]
    pub users: Vec<User>,
    /// User groups and device groups.
    #[serde(default)]
    pub groups: Vec<Group>,
}

impl Directory {
    /// The user with this username.
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    /// The nobody user, if the directory has one.
    pub fn nobody(&self) -> Option<&User> {
        self.user(NOBODY_USERNAME)
    }

    /// The group with this id.
    pub fn group(&self, id: &GroupId) -> Option<&Group> {
        self.groups.iter().find(|g| &g.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_json_shape() {
        let g: Group = serde_json::from_str(
            r#"{"id":"nurses-ipads","members":{"type":"assignee_in","user_group":"nurses",
                "rule":"model = \"iPad\""}}"#,
        )
        .unwrap();
        assert_eq!(g.members.kind(), GroupKind::Devices);
        let g: Group = serde_json::from_str(
            r#"{"id":"owners","members":{"type":"user_rule","rule":"multi-user-owner = true"}}"#,
        )
        .unwrap();
        assert_eq!(g.members.kind(), GroupKind::Users);
        let Membership::UserRule { rule } = &g.members else {
            panic!("wrong variant")
        };
        assert!(rule.matches(&User::nobody()));
        assert!(!rule.matches(&User::new("alice")));
    }
}

//! Distributions: which devices and people an item goes to.

use serde::{Deserialize, Serialize};

use crate::ids::{DistributionId, GroupId, ItemId};

/// Who a distribution targets. A custom target matches when the device is in one of its device
/// groups or its current assignee is in one of its user groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// Every device, whoever is signed in (including nobody).
    AllDevices,
    /// No device (the default: a distribution being prepared).
    #[default]
    NoDevices,
    /// Custom user groups and/or device groups.
    Groups {
        /// The groups.
        groups: Vec<GroupId>,
    },
}

/// One distribution of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Distribution {
    /// Its id.
    pub id: DistributionId,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The item distributed.
    pub item: ItemId,
    /// Who gets it.
    #[serde(default)]
    pub target: Target,
}

//! Explain and preview: for a device and an assignee, every catalog item with the
//! distributions and groups that bring it, or why it is not there; and the plan that would
//! follow, without changing anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalog::ItemKind;
use crate::compiled::{CompiledConfig, CompiledTarget};
use crate::config::ItemFailures;
use crate::desired::{DesiredError, DesiredState, Problem};
use crate::device::{Channel, Device};
use crate::directory::GroupKind;
use crate::ids::{DistributionId, GroupId, ItemId, UnixTime};
use crate::intent::Intent;
use crate::observed::Observed;
use crate::plan::{Plan, plan};

/// How one matching distribution reaches the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Via {
    /// The distribution targets all devices.
    AllDevices {
        /// The distribution.
        distribution: DistributionId,
    },
    /// The assignee is in a user group the distribution targets.
    UserGroup {
        /// The distribution.
        distribution: DistributionId,
        /// The group.
        group: GroupId,
    },
    /// The device is in a device group the distribution targets.
    DeviceGroup {
        /// The distribution.
        distribution: DistributionId,
        /// The group.
        group: GroupId,
    },
}

/// Why an item is not wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Exclusion {
    /// No distribution names the item.
    NotDistributed,
    /// Its distributions all target no devices.
    NoDevicesTarget {
        /// The distributions.
        distributions: Vec<DistributionId>,
    },
    /// Neither the device nor the assignee is in any group its distributions target.
    NotInTargetGroups {
        /// The distributions with custom targets.
        distributions: Vec<DistributionId>,
        /// The groups they target.
        groups: Vec<GroupId>,
    },
}

/// The verdict on one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Wanted, and goes on this channel.
    Included {
        /// The channel.
        channel: Channel,
    },
    /// Wanted but cannot be installed.
    Blocked {
        /// Why.
        problem: Problem,
    },
    /// Wanted user item on a Shared iPad nobody is signed in to.
    NoUserChannel,
    /// Not wanted.
    Excluded {
        /// Why.
        reason: Exclusion,
    },
}

/// One catalog item's explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemExplanation {
    /// The item.
    pub item: ItemId,
    /// Its display name.
    pub name: String,
    /// Its kind.
    pub kind: ItemKind,
    /// The verdict.
    pub verdict: Verdict,
    /// The matching distributions and how they match (empty when excluded).
    pub via: Vec<Via>,
}

/// Why each item is or is not on a device for an assignee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The device's UDID.
    pub udid: String,
    /// The assignee explained.
    pub assignee: String,
    /// The groups (user and device) the pair is in.
    pub groups: Vec<GroupId>,
    /// Every catalog item, by id.
    pub items: Vec<ItemExplanation>,
}

/// "What would this user get on this device": the explanation and the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// Why each item is or is not wanted.
    pub explanation: Explanation,
    /// What would be sent.
    pub plan: Plan,
}

impl CompiledConfig {
    /// Explains every catalog item for `device` and assignee `username`.
    pub fn explain(&self, device: &Device, username: &str) -> Result<Explanation, DesiredError> {
        let desired = self.desired_for(device, username)?;
        Ok(self.explain_desired(&desired))
    }

    /// Explains a computed desired state.
    pub fn explain_desired(&self, desired: &DesiredState<'_>) -> Explanation {
        let members = &desired.members;
        let items = self
            .items
            .iter()
            .enumerate()
            .map(|(idx, it)| {
                let mut via = Vec::new();
                let mut none_targets = Vec::new();
                let mut custom = Vec::new();
                let mut targeted = Vec::new();
                for &di in self.item_distributions.get(idx).into_iter().flatten() {
                    let Some(d) = self.distributions.get(di) else {
                        continue;
                    };
                    match &d.target {
                        CompiledTarget::All => via.push(Via::AllDevices {
                            distribution: d.id.clone(),
                        }),
                        CompiledTarget::Nothing => none_targets.push(d.id.clone()),
                        CompiledTarget::Groups(gs) => {
                            custom.push(d.id.clone());
                            for &g in gs.iter().flatten() {
                                let Some(group) = self.groups.get(g) else {
                                    continue;
                                };
                                targeted.push(group.id.clone());
                                if members.get(g) {
                                    via.push(match group.kind {
                                        GroupKind::Users => Via::UserGroup {
                                            distribution: d.id.clone(),
                                            group: group.id.clone(),
                                        },
                                        GroupKind::Devices => Via::DeviceGroup {
                                            distribution: d.id.clone(),
                                            group: group.id.clone(),
                                        },
                                    });
                                }
                            }
                        }
                    }
                }
                let verdict = if desired.wanted.get(idx) {
                    if let Some(e) = desired.entry_by_index(idx) {
                        Verdict::Included {
                            channel: e.channel.clone(),
                        }
                    } else if let Some(p) = desired.problems.iter().find(|p| p.item == it.item.id) {
                        Verdict::Blocked {
                            problem: p.problem.clone(),
                        }
                    } else {
                        Verdict::NoUserChannel
                    }
                } else if custom.is_empty() && none_targets.is_empty() {
                    Verdict::Excluded {
                        reason: Exclusion::NotDistributed,
                    }
                } else if custom.is_empty() {
                    Verdict::Excluded {
                        reason: Exclusion::NoDevicesTarget {
                            distributions: none_targets,
                        },
                    }
                } else {
                    targeted.sort();
                    targeted.dedup();
                    Verdict::Excluded {
                        reason: Exclusion::NotInTargetGroups {
                            distributions: custom,
                            groups: targeted,
                        },
                    }
                };
                ItemExplanation {
                    item: it.item.id.clone(),
                    name: it.item.name.clone(),
                    kind: it.kind,
                    verdict,
                    via,
                }
            })
            .collect();
        Explanation {
            udid: desired.device.udid.to_string(),
            assignee: desired.user.username.clone(),
            groups: members
                .ones()
                .filter_map(|g| self.groups.get(g).map(|g| g.id.clone()))
                .collect(),
            items,
        }
    }

    /// What `username` would get on `device` from its current inventory, without changing
    /// anything.
    pub fn preview(
        &self,
        device: &Device,
        username: &str,
        observed: &Observed,
        in_flight: &[Intent],
        failures: &BTreeMap<ItemId, ItemFailures>,
        now: UnixTime,
    ) -> Result<Preview, DesiredError> {
        let desired = self.desired_for(device, username)?;
        Ok(Preview {
            explanation: self.explain_desired(&desired),
            plan: plan(&desired, observed, in_flight, failures, now),
        })
    }
}

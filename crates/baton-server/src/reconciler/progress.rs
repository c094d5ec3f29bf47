//! How far a device is from its desired state: per item of the current assignee's desired
//! state, installed / pending / failed, plus pending removals, and whether the device is
//! "ready". Computed by planning against the observed inventory with nothing in flight: an item
//! the planner would still send is not installed yet.

use std::collections::BTreeSet;

use baton_assign::{CompiledConfig, DesiredState, ItemFailures, ItemId, Observed, UnixTime, plan};
use serde::Serialize;
use std::collections::BTreeMap;

/// Where one desired item stands on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemState {
    /// The device reported it installed (acknowledged install, or listed).
    Installed,
    /// Queued or about to be queued; the device has not confirmed it.
    Pending,
    /// The device refused it repeatedly; Baton gave up or waits for a retry.
    Failed,
}

/// One desired item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemProgress {
    /// The catalog item id.
    pub item: String,
    /// Its display name.
    pub name: String,
    /// Where it stands.
    pub state: ItemState,
}

/// The progress of a device towards its assignee's desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceProgress {
    /// The assignee it is measured for.
    pub assignee: String,
    /// The assignee's items, ordered by item id.
    pub items: Vec<ItemProgress>,
    /// Items the device still has and must lose (the previous person's).
    pub removals_pending: usize,
    /// True when every item is installed and nothing remains to remove.
    pub ready: bool,
}

/// Measures `desired` (computed from `compiled`) against `observed` (in-flight commands are
/// ignored on purpose).
pub fn measure(
    compiled: &CompiledConfig,
    desired: &DesiredState<'_>,
    observed: &Observed,
    failures: &BTreeMap<ItemId, ItemFailures>,
    now: UnixTime,
) -> DeviceProgress {
    let planned = plan(desired, observed, &[], failures, now);
    let mut installing: BTreeSet<&ItemId> = BTreeSet::new();
    let mut removals_pending = 0;
    for intent in &planned.intents {
        match (intent.is_removal(), intent.item()) {
            (true, _) => removals_pending += 1,
            (false, Some(item)) => {
                installing.insert(item);
            }
            (false, None) => {}
        }
    }
    let failed: BTreeSet<&ItemId> = planned
        .gave_up
        .iter()
        .map(|g| &g.item)
        .chain(planned.deferred.iter().map(|d| &d.item))
        .collect();
    let catalog = &compiled.config().catalog;
    let items: Vec<ItemProgress> = desired
        .entries
        .iter()
        .map(|e| ItemProgress {
            item: e.item.to_string(),
            name: catalog
                .item(e.item)
                .map_or_else(|| e.item.to_string(), |i| i.name.clone()),
            state: if failed.contains(e.item) {
                ItemState::Failed
            } else if installing.contains(e.item) {
                ItemState::Pending
            } else {
                ItemState::Installed
            },
        })
        .collect();
    let ready = removals_pending == 0 && items.iter().all(|i| i.state == ItemState::Installed);
    DeviceProgress {
        assignee: desired.user().username.clone(),
        items,
        removals_pending,
        ready,
    }
}

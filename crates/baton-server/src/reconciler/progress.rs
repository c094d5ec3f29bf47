//! How far a device is from its desired state: per item of the current assignee's desired
//! state, installed / pending / failed, plus pending removals, and whether the device is
//! "ready". Computed by planning against the observed inventory with nothing in flight: an item
//! the planner would still send is not installed yet.

use std::collections::BTreeSet;

use baton_assign::{
    AppStatus, CompiledConfig, DesiredEntry, DesiredState, Intent, ItemFailures, ItemId, ItemKind,
    Observed, UnixTime, plan,
};
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
    /// Failed: Baton gave up on it (no retry until the failures are cleared).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub given_up: bool,
    /// Failed: why the last attempt failed, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    /// What those removals are: the catalog item's name, else the app's bundle id or the
    /// profile's or certificate's identifier.
    pub removals: Vec<String>,
    /// True when every item is installed and nothing remains to remove; after a sign-out,
    /// also only once the hand-off was verified clean.
    pub ready: bool,
    /// With nobody signed in: the latest sign-out's hand-off check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hand_off: Option<super::hand_off::HandOff>,
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
    let mut removals = Vec::new();
    let catalog = &compiled.config().catalog;
    for intent in &planned.intents {
        match (intent.is_removal(), intent.item()) {
            (true, item) => {
                removals_pending += 1;
                removals.push(
                    item.and_then(|i| catalog.item(i))
                        .map_or_else(|| removal_label(intent), |i| i.name.clone()),
                );
            }
            (false, Some(item)) => {
                installing.insert(item);
            }
            (false, None) => {}
        }
    }
    let given_up: BTreeSet<&ItemId> = planned.gave_up.iter().map(|g| &g.item).collect();
    let failed: BTreeSet<&ItemId> = given_up
        .iter()
        .copied()
        .chain(planned.deferred.iter().map(|d| &d.item))
        .collect();
    // An app is installed only when the device's ManagedApplicationList says `Managed`; an
    // acknowledged InstallApplication only means "accepted" [Y application.install].
    let app_managed = |e: &DesiredEntry<'_>| {
        observed
            .channel(&e.channel)
            .and_then(|c| c.apps.get(e.key))
            .is_some_and(|a| a.status == AppStatus::Managed)
    };
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
            } else if installing.contains(e.item) || (e.kind == ItemKind::App && !app_managed(e)) {
                ItemState::Pending
            } else {
                ItemState::Installed
            },
            given_up: given_up.contains(e.item),
            reason: None,
        })
        .collect();
    let ready = removals_pending == 0 && items.iter().all(|i| i.state == ItemState::Installed);
    DeviceProgress {
        assignee: desired.user().username.clone(),
        items,
        removals_pending,
        removals,
        ready,
        hand_off: None,
    }
}

/// What a removal of something no longer in the catalog is called.
fn removal_label(intent: &Intent) -> String {
    match intent {
        Intent::RemoveApplication { bundle_id, .. } => bundle_id.to_string(),
        Intent::RemoveProfile { identifier, .. } => identifier.to_string(),
        Intent::RemoveCertificate { identifier, .. } => identifier.to_string(),
        other => other.request_type().unwrap_or("").to_owned(),
    }
}

//! What changed between two compiled configurations, so a fleet that was converged under the
//! old one can be re-planned by looking only at the items that changed
//! ([`crate::plan_change`]).

use std::sync::Arc;

use crate::catalog::ItemKind;
use crate::compiled::{Body, CompiledConfig};
use crate::distribution::Target;
use crate::ids::ItemId;

/// One item whose content, scope or distributions changed (or that was added or deleted).
#[derive(Debug, Clone)]
pub(crate) struct ChangedItem {
    /// Index in the new configuration, if it still exists.
    pub(crate) new: Option<usize>,
    /// PayloadIdentifier (the same in both: the prefix did not change).
    pub(crate) identifier: Arc<str>,
    /// Bundle ids the item had as an app, old and new.
    pub(crate) bundle_ids: Vec<Arc<str>>,
    /// Whether it is or was a Settings item.
    pub(crate) settings: bool,
}

/// The difference between two compiled configurations.
#[derive(Debug, Clone)]
pub struct ConfigChange {
    /// Users, groups, the prefix or the retry policy changed: every item may be affected.
    pub(crate) everything: bool,
    /// Changed items, by id.
    pub(crate) items: Vec<ChangedItem>,
    /// When users changed and nothing else that makes `everything` true: the usernames added,
    /// removed or modified, sorted. None otherwise.
    pub(crate) users_only: Option<Vec<String>>,
}

impl ConfigChange {
    /// True when users, groups, the identifier prefix or the retry policy changed, so an
    /// incremental re-plan is a full one.
    pub fn is_everything(&self) -> bool {
        self.everything
    }

    /// How many items changed.
    pub fn changed_items(&self) -> usize {
        self.items.len()
    }

    /// When the only change besides items is to some users (added, removed or modified, no
    /// group, prefix or retry change), their usernames: only devices assigned to one of them
    /// can have a different desired state because of it (group membership rules and templates
    /// over user attributes only concern the user's own devices). None when the change is
    /// wider or users did not change.
    pub fn changed_users_only(&self) -> Option<&[String]> {
        self.users_only.as_deref()
    }

    pub(crate) fn touches_settings(&self) -> bool {
        self.everything || self.items.iter().any(|c| c.settings)
    }
}

/// Distribution targets of each item (by compiled index), in a canonical order.
fn targets_per_item(cfg: &CompiledConfig) -> Vec<Vec<&Target>> {
    let mut v: Vec<Vec<&Target>> = vec![Vec::new(); cfg.items.len()];
    for d in &cfg.config.distributions {
        if let Some(t) = cfg
            .item_index
            .get(d.item.as_str())
            .and_then(|&i| v.get_mut(i))
        {
            t.push(&d.target);
        }
    }
    for t in &mut v {
        t.sort_by_cached_key(|t| format!("{t:?}"));
    }
    v
}

impl CompiledConfig {
    /// What changed from `old` to `self`.
    pub fn changes_since(&self, old: &CompiledConfig) -> ConfigChange {
        let same_users = {
            let mut a: Vec<_> = self.config.directory.users.iter().collect();
            let mut b: Vec<_> = old.config.directory.users.iter().collect();
            a.sort_by(|x, y| x.username.cmp(&y.username));
            b.sort_by(|x, y| x.username.cmp(&y.username));
            a == b
        };
        let same_groups = {
            let mut a: Vec<_> = self.config.directory.groups.iter().collect();
            let mut b: Vec<_> = old.config.directory.groups.iter().collect();
            a.sort_by(|x, y| x.id.cmp(&y.id));
            b.sort_by(|x, y| x.id.cmp(&y.id));
            a == b
        };
        let rest_same = same_groups
            && self.config.identifier_prefix == old.config.identifier_prefix
            && self.config.retry == old.config.retry;
        let everything = !same_users || !rest_same;
        let users_only = (!same_users && rest_same).then(|| {
            fn by_name(users: &[crate::User]) -> std::collections::BTreeMap<&str, &crate::User> {
                users.iter().map(|u| (u.username.as_str(), u)).collect()
            }
            let new_users = by_name(&self.config.directory.users);
            let old_users = by_name(&old.config.directory.users);
            let mut names: Vec<String> = new_users
                .iter()
                .filter(|(name, u)| old_users.get(*name) != Some(*u))
                .map(|(name, _)| (*name).to_owned())
                .chain(
                    old_users
                        .keys()
                        .filter(|name| !new_users.contains_key(*name))
                        .map(|name| (*name).to_owned()),
                )
                .collect();
            names.sort();
            names.dedup();
            names
        });
        // Distribution targets per item, computed once for each side.
        let new_targets = targets_per_item(self);
        let old_targets = targets_per_item(old);
        let mut ids: Vec<&ItemId> = self
            .items
            .iter()
            .chain(&old.items)
            .map(|i| &i.item.id)
            .collect();
        ids.sort();
        ids.dedup();
        let differs = |id: &ItemId| {
            let n = self.item_index.get(id.as_str()).copied();
            let o = old.item_index.get(id.as_str()).copied();
            match (n, o) {
                (Some(n), Some(o)) => {
                    self.items[n].item != old.items[o].item || new_targets[n] != old_targets[o]
                }
                _ => true,
            }
        };
        let directly: Vec<&ItemId> = ids.iter().copied().filter(|id| differs(id)).collect();
        // A profile is also affected when a certificate it uses changed (it may become
        // installable or blocked).
        let uses_changed = |id: &ItemId| {
            self.item_index
                .get(id.as_str())
                .and_then(|&n| self.items.get(n))
                .is_some_and(|it| match &it.item.content {
                    crate::ItemContent::Profile { certificates, .. } => certificates
                        .iter()
                        .any(|c| directly.binary_search(&c).is_ok()),
                    _ => false,
                })
        };
        let mut items = Vec::new();
        for id in ids {
            if directly.binary_search(&id).is_err() && !uses_changed(id) {
                continue;
            }
            let n = self.item_index.get(id.as_str()).copied();
            let o = old.item_index.get(id.as_str()).copied();
            let sides = [n.map(|i| &self.items[i]), o.map(|i| &old.items[i])];
            let mut bundle_ids: Vec<Arc<str>> = sides
                .iter()
                .flatten()
                .filter_map(|it| match &it.body {
                    Body::App { bundle_id, .. } => Some(bundle_id.clone()),
                    _ => None,
                })
                .collect();
            bundle_ids.sort();
            bundle_ids.dedup();
            items.push(ChangedItem {
                new: n,
                identifier: Arc::from(format!("{}{id}", self.item_prefix)),
                bundle_ids,
                settings: sides
                    .iter()
                    .flatten()
                    .any(|it| it.kind == ItemKind::Settings),
            });
        }
        ConfigChange {
            everything,
            items,
            users_only,
        }
    }
}

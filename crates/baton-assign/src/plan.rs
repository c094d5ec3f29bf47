//! The planner: desired state vs observed inventory vs in-flight commands -> ordered intents.
//!
//! In-flight intents are first applied to a copy of the observed inventory (as if the device
//! had acknowledged them), so the plan never repeats a queued command and a device that was
//! offline converges in one go. Then, for each channel the desired state covers:
//! removals come first (apps, then profiles and web clips, then certificates), then installs
//! (certificates, then profiles and web clips that may use them, then apps), then one Settings
//! intent, and last the removals of full-screen web clips (a person may be watching the portal
//! in one: removing it closes that web app, so the clip that replaces it comes first). A profile is reinstalled only when its content-derived PayloadUUID differs from the
//! one the device reports. Only profiles under `<prefix>.item.` and apps Baton installed are
//! ever removed. A wanted item with a [`Problem`](crate::Problem) counts as not wanted: it is
//! reported and, if a rendition of it is on the device (someone else's), removed.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::ItemKind;
use crate::change::ConfigChange;
use crate::compiled::uuid_string;
use crate::config::{ItemFailures, RetryPolicy};
use crate::desired::{DesiredEntry, DesiredState, ItemProblem};
use crate::device::Channel;
use crate::ids::{ItemId, UnixTime};
use crate::intent::Intent;
use crate::observed::{ChannelInventory, Observed, ObservedApp, ObservedProfile};

/// An item whose failures exhausted the retry policy; no intent is planned for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GaveUp {
    /// The item.
    pub item: ItemId,
    /// The channel.
    pub channel: Channel,
    /// Failed attempts.
    pub attempts: u32,
}

/// An item that failed and waits for its next retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    /// The item.
    pub item: ItemId,
    /// The channel.
    pub channel: Channel,
    /// Earliest time of the next attempt.
    pub retry_at: UnixTime,
}

/// The result of planning one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Intents in the order they must be queued.
    pub intents: Vec<Intent>,
    /// Items given up after repeated failures.
    pub gave_up: Vec<GaveUp>,
    /// Items waiting for a retry.
    pub deferred: Vec<Deferred>,
    /// Wanted items that cannot be installed (copied from the desired state).
    pub problems: Vec<ItemProblem>,
    /// Wanted user items with no channel (Shared iPad, nobody signed in).
    pub no_channel: Vec<ItemId>,
}

impl Plan {
    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
    }
}

const REMOVE_APP: usize = 0;
const REMOVE_PROFILE: usize = 1;
const REMOVE_CERT: usize = 2;
const INSTALL_CERT: usize = 3;
const INSTALL_PROFILE: usize = 4;
const INSTALL_APP: usize = 5;
const SETTINGS: usize = 6;
/// Removals of full-screen web clips go last: removing one closes the web app a person may be
/// watching (the portal's "Sign in" and "Sign out" clips), so its replacement and everything
/// else is on the device first, and the device is never left without a portal clip.
const REMOVE_WEB_APP: usize = 7;

struct Gate<'a> {
    failures: &'a BTreeMap<ItemId, ItemFailures>,
    retry: RetryPolicy,
    now: UnixTime,
    gave_up: Vec<GaveUp>,
    deferred: Vec<Deferred>,
}

impl Gate<'_> {
    /// Whether an intent for `item` may be planned now (recording why not).
    fn allows(&mut self, item: Option<&ItemId>, channel: &Channel) -> bool {
        let Some((item, f)) = item.and_then(|i| self.failures.get(i).map(|f| (i, f))) else {
            return true;
        };
        match self.retry.retry_at(f) {
            None => {
                self.gave_up.push(GaveUp {
                    item: item.clone(),
                    channel: channel.clone(),
                    attempts: f.attempts,
                });
                false
            }
            Some(t) if self.now < t => {
                self.deferred.push(Deferred {
                    item: item.clone(),
                    channel: channel.clone(),
                    retry_at: t,
                });
                false
            }
            Some(_) => true,
        }
    }
}

/// One step of merging two sorted sequences.
enum Merge<L, R> {
    Left(L),
    Right(R),
    Both(L, R),
}

/// Merges two sequences sorted by the same key (`cmp` compares a left and a right element).
fn merge<L, R>(
    left: impl Iterator<Item = L>,
    right: impl Iterator<Item = R>,
    cmp: impl Fn(&L, &R) -> Ordering,
) -> impl Iterator<Item = Merge<L, R>> {
    let mut left = left.peekable();
    let mut right = right.peekable();
    std::iter::from_fn(move || match (left.peek(), right.peek()) {
        (Some(l), Some(r)) => match cmp(l, r) {
            Ordering::Less => left.next().map(Merge::Left),
            Ordering::Greater => right.next().map(Merge::Right),
            Ordering::Equal => match (left.next(), right.next()) {
                (Some(l), Some(r)) => Some(Merge::Both(l, r)),
                _ => None,
            },
        },
        (Some(_), None) => left.next().map(Merge::Left),
        (None, Some(_)) => right.next().map(Merge::Right),
        (None, None) => None,
    })
}

/// Plans the intents that take the device from `observed` (+ `in_flight`) to `desired`.
///
/// `failures` holds the failure records of items on this device; `now` decides whether a
/// failed item is due for a retry. Deterministic: the same inputs give the same plan.
pub fn plan(
    desired: &DesiredState<'_>,
    observed: &Observed,
    in_flight: &[Intent],
    failures: &BTreeMap<ItemId, ItemFailures>,
    now: UnixTime,
) -> Plan {
    plan_scoped(desired, observed, in_flight, failures, now, None)
}

/// Like [`plan`], but looks only at the items in `change` (from
/// [`CompiledConfig::changes_since`](crate::CompiledConfig::changes_since)).
///
/// For a device whose inventory had converged under the old configuration the result equals
/// [`plan`]'s, at a fraction of the cost: use it to re-plan a fleet after a configuration
/// edit. Devices that were not converged (offline, with failures) need [`plan`].
pub fn plan_change(
    desired: &DesiredState<'_>,
    observed: &Observed,
    in_flight: &[Intent],
    failures: &BTreeMap<ItemId, ItemFailures>,
    now: UnixTime,
    change: &ConfigChange,
) -> Plan {
    if change.is_everything() {
        return plan(desired, observed, in_flight, failures, now);
    }
    plan_scoped(desired, observed, in_flight, failures, now, Some(change))
}

fn plan_scoped(
    desired: &DesiredState<'_>,
    observed: &Observed,
    in_flight: &[Intent],
    failures: &BTreeMap<ItemId, ItemFailures>,
    now: UnixTime,
    change: Option<&ConfigChange>,
) -> Plan {
    let projected: Cow<'_, Observed> = if in_flight.is_empty() {
        Cow::Borrowed(observed)
    } else {
        let mut o = observed.clone();
        for i in in_flight {
            o.apply(i);
        }
        Cow::Owned(o)
    };
    let cfg = desired.config;
    let mut gate = Gate {
        failures,
        retry: cfg.retry,
        now,
        gave_up: Vec::new(),
        deferred: Vec::new(),
    };
    let mut buckets: [Vec<Intent>; 8] = Default::default();
    let empty = ChannelInventory::default();

    for ch in &desired.channels {
        let inv = projected.channel(ch).unwrap_or(&empty);
        let mut profiles: Vec<&DesiredEntry<'_>> = Vec::new();
        let mut apps: Vec<&DesiredEntry<'_>> = Vec::new();
        let mut settings: Vec<&DesiredEntry<'_>> = Vec::new();
        // Scoped to a change: only the changed items (settings need all of them, see below).
        let source: Box<dyn Iterator<Item = &DesiredEntry<'_>>> = match change {
            Some(c) if !c.touches_settings() => Box::new(
                c.items
                    .iter()
                    .filter_map(|c| desired.entry_by_index(c.new?)),
            ),
            _ => Box::new(desired.entries.iter()),
        };
        for e in source.filter(|e| &e.channel == ch) {
            match e.kind {
                ItemKind::App => apps.push(e),
                ItemKind::Settings => settings.push(e),
                _ => profiles.push(e),
            }
        }
        let mut scoped_profiles = Vec::new();
        let mut scoped_apps = Vec::new();
        if let Some(change) = change {
            if change.touches_settings() {
                let changed: Vec<usize> = change.items.iter().filter_map(|c| c.new).collect();
                let is_changed = |e: &&DesiredEntry<'_>| changed.binary_search(&e.index).is_ok();
                profiles.retain(is_changed);
                apps.retain(is_changed);
            }
            for c in &change.items {
                scoped_profiles.extend(inv.profiles.get_key_value(&*c.identifier));
                scoped_apps.extend(
                    c.bundle_ids
                        .iter()
                        .filter_map(|b| inv.apps.get_key_value(&**b)),
                );
            }
            scoped_apps.sort_by(|a, b| a.0.cmp(b.0));
            scoped_apps.dedup_by(|a, b| a.0 == b.0);
        }
        // Entries are in item-id order, which is also PayloadIdentifier order (one common
        // prefix), so the observed profiles under the prefix and the wanted ones merge in one
        // pass. Apps merge the same way after sorting by bundle id.
        apps.sort_by(|a, b| a.key.cmp(b.key));
        // Two app items with one bundle id (a lint error): the first one wins.
        apps.dedup_by(|a, b| a.key == b.key);
        let prefix = cfg.item_prefix.as_str();
        let observed_profiles: Box<dyn Iterator<Item = (&String, &ObservedProfile)>> = match change
        {
            Some(_) => Box::new(scoped_profiles.into_iter()),
            None => Box::new(
                inv.profiles
                    .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(|(k, _)| k.starts_with(prefix)),
            ),
        };
        let observed_apps: Box<dyn Iterator<Item = (&String, &ObservedApp)>> = match change {
            Some(_) => Box::new(scoped_apps.into_iter()),
            None => Box::new(inv.apps.iter()),
        };
        for step in merge(observed_profiles, profiles.iter().copied(), |(k, _), e| {
            k.as_str().cmp(e.key)
        }) {
            match step {
                Merge::Both((_, p), e) if Some(&*p.payload_uuid) == e.content.as_deref() => {}
                Merge::Both(_, e) | Merge::Right(e) => {
                    if gate.allows(Some(e.item), ch)
                        && let Some(intent) = desired.install_intent(e)
                    {
                        let bucket = if e.kind == ItemKind::Certificate {
                            INSTALL_CERT
                        } else {
                            INSTALL_PROFILE
                        };
                        buckets[bucket].push(intent);
                    }
                }
                Merge::Left((identifier, _)) => {
                    let rest = &identifier[prefix.len()..];
                    let known = cfg.item_index.get(rest).and_then(|&i| cfg.items.get(i));
                    let item = known
                        .map(|it| it.item.id.clone())
                        .or_else(|| ItemId::new(rest).ok());
                    if !gate.allows(item.as_ref(), ch) {
                        continue;
                    }
                    let identifier = identifier.as_str().into();
                    match (known, item) {
                        (Some(it), Some(item)) if it.kind == ItemKind::Certificate => {
                            buckets[REMOVE_CERT].push(Intent::RemoveCertificate {
                                channel: ch.clone(),
                                item,
                                identifier,
                            });
                        }
                        (known, item) => {
                            let web_app = known.is_some_and(|it| {
                                matches!(
                                    it.item.content,
                                    crate::catalog::ItemContent::WebClip {
                                        full_screen: true,
                                        ..
                                    }
                                )
                            });
                            let bucket = if web_app {
                                REMOVE_WEB_APP
                            } else {
                                REMOVE_PROFILE
                            };
                            buckets[bucket].push(Intent::RemoveProfile {
                                channel: ch.clone(),
                                item: known.and(item),
                                identifier,
                            });
                        }
                    }
                }
            }
        }
        for step in merge(observed_apps, apps.iter().copied(), |(k, _), e| {
            k.as_str().cmp(e.key)
        }) {
            match step {
                Merge::Both((_, a), e)
                    if a.status.is_present()
                        && a.baton_managed
                        && a.config_hash.as_deref() == e.content.as_deref() => {}
                Merge::Both(_, e) | Merge::Right(e) => {
                    if gate.allows(Some(e.item), ch)
                        && let Some(intent) = desired.install_intent(e)
                    {
                        buckets[INSTALL_APP].push(intent);
                    }
                }
                Merge::Left((bundle, app)) => {
                    if !app.baton_managed {
                        continue;
                    }
                    let item = cfg
                        .app_index
                        .get(bundle)
                        .and_then(|&i| cfg.items.get(i))
                        .map(|it| it.item.id.clone());
                    if gate.allows(item.as_ref(), ch) {
                        buckets[REMOVE_APP].push(Intent::RemoveApplication {
                            channel: ch.clone(),
                            item,
                            bundle_id: bundle.as_str().into(),
                        });
                    }
                }
            }
        }

        // A Settings item the device refused waits like any failed item (retry policy); while
        // it waits, or once given up, the others are applied without it.
        settings.retain(|e| gate.allows(Some(e.item), ch));
        let settings_hash = (!settings.is_empty()).then(|| {
            let mut h = Sha256::new();
            for e in &settings {
                h.update(e.item.as_str().as_bytes());
                h.update([0]);
                h.update(e.content.as_deref().unwrap_or("").as_bytes());
                h.update([0]);
            }
            std::sync::Arc::from(uuid_string(&h.finalize()))
        });
        if settings_hash != inv.settings_hash && change.is_none_or(ConfigChange::touches_settings) {
            buckets[SETTINGS].push(Intent::ApplySettings {
                channel: ch.clone(),
                settings_hash,
                settings: settings
                    .iter()
                    .filter_map(|e| desired.render_settings(e))
                    .collect(),
            });
        }
    }

    let mut intents: Vec<Intent> = buckets.into_iter().flatten().collect();
    if !in_flight.is_empty() {
        intents.retain(|i| !in_flight.contains(i));
    }
    Plan {
        intents,
        gave_up: gate.gave_up,
        deferred: gate.deferred,
        problems: desired.problems.clone(),
        no_channel: desired.no_channel.clone(),
    }
}

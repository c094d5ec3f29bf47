//! The compiled, indexed form of a [`Config`]: what the planner runs on.
//!
//! Compiling sorts items and groups by id, parses every template once, evaluates user-group
//! membership for every user, and inverts the distributions into one item bitset per group
//! (plus one for "all devices"). The desired item set of a (device, assignee) is then the union
//! of the bitsets of the groups the pair is in: a few hundred word operations, independent of
//! the number of distributions. Content hashes of templates without variables are computed
//! here; templated items are hashed from their variable values, and rendered only when an
//! intent is emitted.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use crate::catalog::{CatalogItem, IssuedPer, ItemContent, ItemKind};
use crate::config::{CompileError, Config, RetryPolicy};
use crate::device::Device;
use crate::directory::{GroupKind, Membership, User};
use crate::distribution::Target;
use crate::ids::{DistributionId, GroupId};
use crate::rule::Rule;
use crate::template::{
    PlistTemplate, RenderContext, TemplateError, TextTemplate, TopLevel, VarScope, Variable,
    user_value,
};

/// Content hashes of one user's templated items, by slot (None: a variable is missing).
pub(crate) type UserHashes = Box<[Option<Arc<str>>]>;

/// A fixed-size bitset over groups or items.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    pub(crate) fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    pub(crate) fn get(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    pub(crate) fn or_assign(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
    pub(crate) fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

/// How a group's membership is evaluated.
#[derive(Debug)]
pub(crate) enum GroupEval {
    /// User groups are evaluated per user at compile time.
    User,
    DeviceStatic(HashSet<String>),
    DeviceRule(Rule),
    AssigneeIn(Option<usize>, Option<Rule>),
}

#[derive(Debug)]
pub(crate) struct CompiledGroup {
    pub(crate) id: GroupId,
    pub(crate) kind: GroupKind,
    pub(crate) eval: GroupEval,
}

/// Parsed templates of an item.
#[derive(Debug)]
pub(crate) enum Body {
    Profile(Option<PlistTemplate>),
    App {
        bundle_id: Arc<str>,
        configuration: Option<PlistTemplate>,
    },
    Certificate {
        subject: TextTemplate,
        email: Option<TextTemplate>,
    },
    WebClip {
        label: TextTemplate,
        url: TextTemplate,
    },
    Settings(Option<PlistTemplate>),
}

#[derive(Debug)]
pub(crate) struct CompiledItem {
    pub(crate) item: CatalogItem,
    pub(crate) kind: ItemKind,
    pub(crate) identifier: Arc<str>,
    pub(crate) body: Body,
    /// Every variable the item's content depends on (sorted, unique).
    pub(crate) variables: Vec<Variable>,
    pub(crate) template_error: Option<TemplateError>,
    pub(crate) static_hash: [u8; 32],
    /// Content hash when `variables` is empty (None for an app without configuration).
    pub(crate) static_content: Option<Arc<str>>,
    /// Referenced certificate items (None: unknown or not a certificate).
    pub(crate) certificates: Vec<Option<usize>>,
    /// Slot in the per-user hash cache, for templated items that read only `$USER.` variables.
    pub(crate) user_slot: Option<usize>,
    /// The first payload type of a profile item that a Shared iPad accepts on one channel
    /// only, with that channel (certificate items on a user channel are refused when the
    /// server builds them: `BuildError::CertificateOnUserChannel`).
    pub(crate) channel_only: Option<(Arc<str>, baton_proto::SharedIpadChannels)>,
}

/// The first payload of a profile template that a Shared iPad accepts on one channel only.
fn channel_only(item: &CatalogItem) -> Option<(Arc<str>, baton_proto::SharedIpadChannels)> {
    use baton_proto::plist::Value;
    use baton_proto::{SharedIpadChannels, shared_ipad_channels};
    match &item.content {
        ItemContent::Profile { template, .. } => {
            let Ok(Value::Dictionary(top)) = Value::from_reader_xml(template.as_bytes()) else {
                return None;
            };
            let Some(Value::Array(payloads)) = top.get("PayloadContent") else {
                return None;
            };
            payloads.iter().find_map(|p| {
                let t = p.as_dictionary()?.get("PayloadType")?.as_string()?;
                match shared_ipad_channels(t) {
                    SharedIpadChannels::Both => None,
                    only => Some((Arc::from(t), only)),
                }
            })
        }
        _ => None,
    }
}

#[derive(Debug)]
pub(crate) enum CompiledTarget {
    All,
    Nothing,
    Groups(Vec<Option<usize>>),
}

#[derive(Debug)]
pub(crate) struct CompiledDistribution {
    pub(crate) id: DistributionId,
    pub(crate) target: CompiledTarget,
}

/// A configuration compiled for planning. Immutable and `Sync`: share it (e.g. in an `Arc`)
/// between all reconciliations until the configuration changes.
#[derive(Debug)]
pub struct CompiledConfig {
    pub(crate) config: Config,
    pub(crate) item_prefix: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) users: HashMap<String, usize>,
    pub(crate) user_groups: Vec<Bits>,
    pub(crate) groups: Vec<CompiledGroup>,
    pub(crate) group_index: HashMap<GroupId, usize>,
    pub(crate) device_groups: Vec<usize>,
    pub(crate) items: Vec<CompiledItem>,
    pub(crate) item_index: HashMap<String, usize>,
    pub(crate) app_index: HashMap<String, usize>,
    pub(crate) group_items: Vec<Bits>,
    pub(crate) all_items: Bits,
    pub(crate) distributions: Vec<CompiledDistribution>,
    pub(crate) item_distributions: Vec<Vec<usize>>,
    /// Items with a user slot, by slot.
    pub(crate) user_slot_items: Vec<usize>,
    /// Per user (directory order): content hashes of the user-templated items, by slot,
    /// computed the first time the user is planned.
    pub(crate) user_hashes: Vec<OnceLock<UserHashes>>,
}

fn valid_prefix(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.split('.').all(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Formats the first 16 bytes of a hash as an upper-case UUID string.
pub(crate) fn uuid_string(hash: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(36);
    for (i, b) in hash.iter().take(16).enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 0xf)] as char);
    }
    s
}

fn compile_item(item: &CatalogItem) -> CompiledItem {
    let mut variables: Vec<Variable> = Vec::new();
    let mut template_error = None;
    let mut plist = |xml: &str, top| match PlistTemplate::parse(xml, top) {
        Ok(t) => {
            variables.extend(t.variables().iter().cloned());
            Some(t)
        }
        Err(e) => {
            template_error.get_or_insert(e);
            None
        }
    };
    let body = match &item.content {
        ItemContent::Profile { template, .. } => {
            Body::Profile(plist(template, TopLevel::Dictionary))
        }
        ItemContent::App {
            bundle_id,
            configuration,
            ..
        } => Body::App {
            bundle_id: Arc::from(bundle_id.as_str()),
            configuration: configuration
                .as_deref()
                .and_then(|c| plist(c, TopLevel::Dictionary)),
        },
        ItemContent::Settings { template } => Body::Settings(plist(template, TopLevel::Array)),
        ItemContent::Certificate {
            subject,
            email,
            issued_per,
            ..
        } => {
            let mut text = |s: &str| match TextTemplate::parse(s) {
                Ok(t) => {
                    variables.extend(t.variables().cloned());
                    t
                }
                Err(e) => {
                    template_error.get_or_insert(e);
                    // An empty template renders nothing; the item is blocked by the error.
                    TextTemplate::empty()
                }
            };
            let subject = text(subject);
            let email = email.as_deref().map(&mut text);
            // A per-user certificate is re-issued for each person, a per-device one for each
            // device, even when the subject does not mention them.
            variables.push(match issued_per {
                IssuedPer::User => Variable {
                    scope: VarScope::User,
                    name: "username".into(),
                },
                IssuedPer::Device => Variable {
                    scope: VarScope::Device,
                    name: "udid".into(),
                },
            });
            Body::Certificate { subject, email }
        }
        ItemContent::WebClip { label, url, .. } => {
            let mut text = |s: &str| match TextTemplate::parse(s) {
                Ok(t) => {
                    variables.extend(t.variables().cloned());
                    t
                }
                Err(e) => {
                    template_error.get_or_insert(e);
                    TextTemplate::empty()
                }
            };
            Body::WebClip {
                label: text(label),
                url: text(url),
            }
        }
    };
    variables.sort();
    variables.dedup();
    let mut h = Sha256::new();
    h.update(item.id.as_str().as_bytes());
    h.update([0]);
    h.update(item.name.as_bytes());
    h.update([0]);
    // serde_json of plain data cannot fail; an empty fallback would only weaken the hash.
    h.update(serde_json::to_vec(&item.content).unwrap_or_default());
    let static_hash: [u8; 32] = h.finalize().into();
    let has_content = !matches!(
        item.content,
        ItemContent::App {
            configuration: None,
            ..
        }
    );
    let static_content =
        (has_content && variables.is_empty()).then(|| Arc::from(uuid_string(&static_hash)));
    CompiledItem {
        kind: item.content.kind(),
        identifier: Arc::from(""),
        item: item.clone(),
        body,
        variables,
        template_error,
        static_hash,
        static_content,
        certificates: Vec::new(),
        user_slot: None,
        channel_only: channel_only(item),
    }
}

impl Config {
    /// Compiles the configuration for planning.
    pub fn compile(&self) -> Result<CompiledConfig, CompileError> {
        if !valid_prefix(&self.identifier_prefix) {
            return Err(CompileError::BadPrefix {
                prefix: self.identifier_prefix.clone(),
            });
        }
        let item_prefix = format!("{}.item.", self.identifier_prefix);

        let mut users = HashMap::new();
        for (i, u) in self.directory.users.iter().enumerate() {
            if users.insert(u.username.clone(), i).is_some() {
                return Err(CompileError::DuplicateUser {
                    username: u.username.clone(),
                });
            }
        }

        let mut sorted_groups: Vec<_> = self.directory.groups.iter().collect();
        sorted_groups.sort_by(|a, b| a.id.cmp(&b.id));
        let mut group_index = HashMap::new();
        for (i, g) in sorted_groups.iter().enumerate() {
            if group_index.insert(g.id.clone(), i).is_some() {
                return Err(CompileError::DuplicateGroup { id: g.id.clone() });
            }
        }
        let groups: Vec<CompiledGroup> = sorted_groups
            .iter()
            .map(|g| CompiledGroup {
                id: g.id.clone(),
                kind: g.members.kind(),
                eval: match &g.members {
                    Membership::Users { .. } | Membership::UserRule { .. } => GroupEval::User,
                    Membership::Devices { devices } => {
                        GroupEval::DeviceStatic(devices.iter().cloned().collect())
                    }
                    Membership::DeviceRule { rule } => GroupEval::DeviceRule(rule.clone()),
                    Membership::AssigneeIn { user_group, rule } => GroupEval::AssigneeIn(
                        group_index
                            .get(user_group)
                            .copied()
                            .filter(|&i| sorted_groups[i].members.kind() == GroupKind::Users),
                        rule.clone(),
                    ),
                },
            })
            .collect();
        let device_groups = (0..groups.len())
            .filter(|&i| groups[i].kind == GroupKind::Devices)
            .collect();
        let user_groups = self
            .directory
            .users
            .iter()
            .map(|u| {
                let mut bits = Bits::new(groups.len());
                for (i, g) in sorted_groups.iter().enumerate() {
                    let member = match &g.members {
                        Membership::Users { usernames } => usernames.contains(&u.username),
                        Membership::UserRule { rule } => rule.matches(u),
                        _ => false,
                    };
                    if member {
                        bits.set(i);
                    }
                }
                bits
            })
            .collect();

        let mut sorted_items: Vec<_> = self.catalog.items.iter().collect();
        sorted_items.sort_by(|a, b| a.id.cmp(&b.id));
        let mut item_index = HashMap::new();
        for (i, it) in sorted_items.iter().enumerate() {
            if item_index.insert(it.id.as_str().to_owned(), i).is_some() {
                return Err(CompileError::DuplicateItem { id: it.id.clone() });
            }
        }
        let mut items: Vec<CompiledItem> = sorted_items.iter().map(|i| compile_item(i)).collect();
        let mut app_index = HashMap::new();
        let mut user_slot_items = Vec::new();
        for (i, it) in items.iter_mut().enumerate() {
            if !it.variables.is_empty() && it.variables.iter().all(|v| v.scope == VarScope::User) {
                it.user_slot = Some(user_slot_items.len());
                user_slot_items.push(i);
            }
            it.identifier = Arc::from(format!("{item_prefix}{}", it.item.id));
            if let ItemContent::Profile { certificates, .. } = &it.item.content {
                it.certificates = certificates
                    .iter()
                    .map(|c| {
                        item_index
                            .get(c.as_str())
                            .copied()
                            .filter(|&ci| sorted_items[ci].content.kind() == ItemKind::Certificate)
                    })
                    .collect();
            }
            if let Body::App { bundle_id, .. } = &it.body {
                app_index.entry(bundle_id.to_string()).or_insert(i);
            }
        }

        let mut seen = HashSet::new();
        let mut dists: Vec<_> = self.distributions.iter().collect();
        dists.sort_by(|a, b| a.id.cmp(&b.id));
        let mut group_items = vec![Bits::new(items.len()); groups.len()];
        let mut all_items = Bits::new(items.len());
        let mut item_distributions = vec![Vec::new(); items.len()];
        let mut distributions = Vec::with_capacity(dists.len());
        for (di, d) in dists.iter().enumerate() {
            if !seen.insert(&d.id) {
                return Err(CompileError::DuplicateDistribution { id: d.id.clone() });
            }
            let item = item_index.get(d.item.as_str()).copied();
            let target = match &d.target {
                Target::AllDevices => CompiledTarget::All,
                Target::NoDevices => CompiledTarget::Nothing,
                Target::Groups { groups } => CompiledTarget::Groups(
                    groups.iter().map(|g| group_index.get(g).copied()).collect(),
                ),
            };
            if let Some(ii) = item {
                item_distributions[ii].push(di);
                match &target {
                    CompiledTarget::All => all_items.set(ii),
                    CompiledTarget::Nothing => {}
                    CompiledTarget::Groups(gs) => {
                        for g in gs.iter().flatten() {
                            group_items[*g].set(ii);
                        }
                    }
                }
            }
            distributions.push(CompiledDistribution {
                id: d.id.clone(),
                target,
            });
        }

        Ok(CompiledConfig {
            config: self.clone(),
            item_prefix,
            retry: self.retry,
            users,
            user_groups,
            groups,
            group_index,
            device_groups,
            items,
            item_index,
            app_index,
            group_items,
            all_items,
            distributions,
            item_distributions,
            user_slot_items,
            user_hashes: self
                .directory
                .users
                .iter()
                .map(|_| OnceLock::new())
                .collect(),
        })
    }
}

impl CompiledConfig {
    /// The configuration this was compiled from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The PayloadIdentifier prefix of items (`<prefix>.item.`).
    pub fn item_identifier_prefix(&self) -> &str {
        &self.item_prefix
    }

    /// The user with this username.
    pub fn user(&self, username: &str) -> Option<&User> {
        self.users
            .get(username)
            .and_then(|&i| self.config.directory.users.get(i))
    }

    /// The ids of the groups (user groups, then device groups, each sorted) that `username`
    /// and `device` are in when `username` is signed in on it. Empty for an unknown user.
    /// Session policy uses this to find the rules that apply to a sign-in.
    pub fn groups_of(&self, device: &Device, username: &str) -> Vec<GroupId> {
        let Some(&ui) = self.users.get(username) else {
            return Vec::new();
        };
        let bits = self.member_groups(device, ui);
        let mut ids: Vec<&CompiledGroup> = bits.ones().filter_map(|g| self.groups.get(g)).collect();
        ids.sort_by_key(|g| (g.kind == GroupKind::Devices, g.id.clone()));
        ids.into_iter().map(|g| g.id.clone()).collect()
    }

    /// The groups (user and device) the pair (device, user) is in.
    pub(crate) fn member_groups(&self, device: &Device, user_index: usize) -> Bits {
        let mut bits = self
            .user_groups
            .get(user_index)
            .cloned()
            .unwrap_or_else(|| Bits::new(self.groups.len()));
        let user_bits = bits.clone();
        for &gi in &self.device_groups {
            let member = match &self.groups[gi].eval {
                GroupEval::User => false,
                GroupEval::DeviceStatic(set) => {
                    set.contains(device.udid.as_str())
                        || device.serial.as_ref().is_some_and(|s| set.contains(s))
                }
                GroupEval::DeviceRule(rule) => rule.matches(device),
                GroupEval::AssigneeIn(ug, rule) => {
                    ug.is_some_and(|ug| user_bits.get(ug))
                        && rule.as_ref().is_none_or(|r| r.matches(device))
                }
            };
            if member {
                bits.set(gi);
            }
        }
        bits
    }

    /// The items brought by the groups in `members` (plus those for all devices).
    pub(crate) fn items_for(&self, members: &Bits) -> Bits {
        let mut items = self.all_items.clone();
        for g in members.ones() {
            if let Some(b) = self.group_items.get(g) {
                items.or_assign(b);
            }
        }
        items
    }

    /// Content hash of an item for a (user, device); None when it has no content (an app
    /// without configuration) or when a variable is missing.
    pub(crate) fn content_hash<'c>(
        &'c self,
        item: &'c CompiledItem,
        user_index: usize,
        ctx: &RenderContext<'_>,
    ) -> Option<Cow<'c, str>> {
        if item.variables.is_empty() {
            return item.static_content.as_deref().map(Cow::Borrowed);
        }
        if let (Some(slot), Some(cell)) = (item.user_slot, self.user_hashes.get(user_index)) {
            let hashes = cell.get_or_init(|| {
                self.user_slot_items
                    .iter()
                    .map(|&i| {
                        let it = self.items.get(i)?;
                        hash_values(it, |v| user_value(ctx.user, &v.name)).map(Arc::from)
                    })
                    .collect()
            });
            return hashes.get(slot)?.as_deref().map(Cow::Borrowed);
        }
        hash_values(item, |v| ctx.lookup(v)).map(Cow::Owned)
    }
}

/// Hash of an item's static content and the values of its variables.
fn hash_values<'v>(
    item: &CompiledItem,
    lookup: impl Fn(&Variable) -> Option<Cow<'v, str>>,
) -> Option<String> {
    let mut h = Sha256::new();
    h.update(item.static_hash);
    for v in &item.variables {
        let value = lookup(v)?;
        h.update(v.name.as_bytes());
        h.update([0x1f]);
        h.update(value.as_bytes());
        h.update([0x1e]);
    }
    Some(uuid_string(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_ops() {
        let mut a = Bits::new(130);
        a.set(0);
        a.set(129);
        let mut b = Bits::new(130);
        b.set(64);
        a.or_assign(&b);
        assert_eq!(a.ones().collect::<Vec<_>>(), vec![0, 64, 129]);
        assert!(a.get(64) && !a.get(65));
    }

    #[test]
    fn uuid_format() {
        let s = uuid_string(&[0xab; 32]);
        assert_eq!(s, "ABABABAB-ABAB-ABAB-ABAB-ABABABABABAB");
    }
}

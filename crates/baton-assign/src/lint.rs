//! Lints over a whole configuration: mistakes that would silently do the wrong thing on
//! shared devices (the sign-in web clip not reaching nobody, a "must leave" item nobody keeps,
//! a profile whose certificate is never delivered, variables nobody has) and plain dangling
//! references.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalog::{AppLicensing, AppSource, ItemContent};
use crate::compiled::{CompiledConfig, CompiledTarget, GroupEval};
use crate::config::Config;
use crate::directory::{GroupKind, MULTI_USER_OWNER, Membership, NOBODY_USERNAME};
use crate::distribution::Target;
use crate::ids::{DistributionId, GroupId, ItemId};
use crate::template::{VarScope, user_has};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// The configuration does something wrong.
    Error,
    /// Probably a mistake.
    Warning,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LintCode {
    /// The configuration does not compile (duplicate ids, bad prefix).
    InvalidConfig,
    /// There is no user named `nobody`.
    NoNobodyUser,
    /// The nobody user lacks `multi-user-owner = true`.
    NobodyNotMultiUserOwner,
    /// No web clip is marked as the sign-in clip.
    NoSignInClip,
    /// More than one web clip is marked as the sign-in clip.
    MultipleSignInClips,
    /// The sign-in web clip does not reach the nobody user.
    SignInClipNotForNobody,
    /// The sign-in web clip reaches nobody only on some devices (device groups).
    SignInClipSomeDevices,
    /// An item marked "must leave on sign-out" is also distributed to nobody.
    LeavingItemKeptByNobody,
    /// A profile uses a certificate that no distribution delivers.
    CertificateNotDelivered,
    /// A profile names a certificate item that does not exist or is not a certificate.
    UnknownCertificate,
    /// A template uses a `$USER.` variable no user has.
    UnknownUserVariable,
    /// An item nobody gets uses a `$USER.` variable the nobody user lacks.
    NobodyLacksVariable,
    /// A template does not parse.
    InvalidTemplate,
    /// A distribution names an item that does not exist.
    UnknownItem,
    /// A distribution or device group names a group that does not exist.
    UnknownGroup,
    /// A custom target lists no groups.
    EmptyCustomTarget,
    /// A device group is tied to a group that is not a user group.
    TiedToDeviceGroup,
    /// A static user group lists a username that is not in the directory.
    UnknownMember,
    /// Two app items have the same bundle id.
    DuplicateBundleId,
    /// A distributed App Store app is licensed through an Apple ID, not VPP: a shared device
    /// with no Apple ID signed in prompts whoever holds it or refuses, and a Shared iPad
    /// refuses it (the planner reports it as a problem there).
    StoreAppWithoutVpp,
    /// A profile's scope sends it, on a Shared iPad, to a channel that refuses one of its
    /// payloads (e.g. Wi-Fi with user scope, mail with device scope).
    PayloadWrongChannel,
    /// A device rule compares `model` (the product code iOS reports, e.g. `iPad13,18`) with a
    /// family name such as `"iPad"`: it never matches.
    ModelNeverMatches,
    /// An item only the nobody user gets (besides the sign-in clip): it is removed at every
    /// sign-in and installed again at every sign-out. Right when meant ("only while nobody is
    /// signed in"); a mistake when the operator meant "always" (target `all`).
    NobodyOnlyItem,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lint {
    /// How bad.
    pub severity: Severity,
    /// What.
    pub code: LintCode,
    /// For people.
    pub message: String,
    /// The item concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemId>,
    /// The distribution concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<DistributionId>,
    /// The group concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
}

impl Lint {
    fn new(severity: Severity, code: LintCode, message: String) -> Lint {
        Lint {
            severity,
            code,
            message,
            item: None,
            distribution: None,
            group: None,
        }
    }
    fn item(mut self, id: &ItemId) -> Lint {
        self.item = Some(id.clone());
        self
    }
    fn distribution(mut self, id: &DistributionId) -> Lint {
        self.distribution = Some(id.clone());
        self
    }
    fn group(mut self, id: &GroupId) -> Lint {
        self.group = Some(id.clone());
        self
    }
}

/// How far an item's distributions reach the nobody user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Reach {
    None,
    SomeDevices,
    Everywhere,
}

/// Lints a configuration (compiling it first; a compile error is itself a finding).
pub fn lint(config: &Config) -> Vec<Lint> {
    match config.compile() {
        Ok(c) => c.lint(),
        Err(e) => vec![Lint::new(
            Severity::Error,
            LintCode::InvalidConfig,
            e.to_string(),
        )],
    }
}

impl CompiledConfig {
    /// How far item `idx` reaches the nobody user.
    fn nobody_reach(&self, idx: usize, nobody: Option<usize>) -> Reach {
        let nobody_in = |g: usize| {
            nobody
                .and_then(|u| self.user_groups.get(u))
                .is_some_and(|b| b.get(g))
        };
        let mut reach = Reach::None;
        for &di in self.item_distributions.get(idx).into_iter().flatten() {
            let r = match self.distributions.get(di).map(|d| &d.target) {
                Some(CompiledTarget::All) => Reach::Everywhere,
                Some(CompiledTarget::Groups(gs)) => gs
                    .iter()
                    .flatten()
                    .map(|&g| match self.groups.get(g).map(|g| &g.eval) {
                        Some(GroupEval::User) if nobody_in(g) => Reach::Everywhere,
                        Some(GroupEval::DeviceStatic(_) | GroupEval::DeviceRule(_)) => {
                            Reach::SomeDevices
                        }
                        Some(GroupEval::AssigneeIn(Some(ug), rule)) if nobody_in(*ug) => {
                            if rule.is_some() {
                                Reach::SomeDevices
                            } else {
                                Reach::Everywhere
                            }
                        }
                        _ => Reach::None,
                    })
                    .max()
                    .unwrap_or(Reach::None),
                _ => Reach::None,
            };
            reach = reach.max(r);
        }
        reach
    }

    /// True when some distribution of item `idx` reaches a user other than nobody, or devices
    /// whoever is signed in (device groups).
    fn reaches_others(&self, idx: usize, nobody: Option<usize>) -> bool {
        let someone_else_in = |g: usize| {
            self.user_groups
                .iter()
                .enumerate()
                .any(|(u, bits)| Some(u) != nobody && bits.get(g))
        };
        self.item_distributions
            .get(idx)
            .into_iter()
            .flatten()
            .any(|&di| match self.distributions.get(di).map(|d| &d.target) {
                Some(CompiledTarget::All) => true,
                Some(CompiledTarget::Groups(gs)) => {
                    gs.iter()
                        .flatten()
                        .any(|&g| match self.groups.get(g).map(|g| &g.eval) {
                            Some(GroupEval::User) => someone_else_in(g),
                            Some(GroupEval::DeviceStatic(_) | GroupEval::DeviceRule(_)) => true,
                            Some(GroupEval::AssigneeIn(Some(ug), _)) => someone_else_in(*ug),
                            _ => false,
                        })
                }
                _ => false,
            })
    }

    /// Lints this configuration.
    pub fn lint(&self) -> Vec<Lint> {
        use LintCode as C;
        use Severity::{Error, Warning};
        let cfg = &self.config;
        let mut out = Vec::new();

        let nobody = self.users.get(NOBODY_USERNAME).copied();
        match cfg.directory.nobody() {
            None => out.push(Lint::new(
                Error,
                C::NoNobodyUser,
                format!("there is no user named {NOBODY_USERNAME:?}; signed-out devices need one"),
            )),
            Some(u)
                if u.attributes.get(MULTI_USER_OWNER) != Some(&crate::AttrValue::Bool(true)) =>
            {
                out.push(Lint::new(
                    Warning,
                    C::NobodyNotMultiUserOwner,
                    format!("the nobody user should have {MULTI_USER_OWNER} = true"),
                ));
            }
            Some(_) => {}
        }

        // Payloads a Shared iPad accepts on one channel only, against the item's scope.
        for it in &self.items {
            let Some((t, only)) = &it.channel_only else {
                continue;
            };
            let scope = crate::desired::effective_scope(it);
            let wrong = match (only, scope) {
                (baton_proto::SharedIpadChannels::DeviceOnly, crate::Scope::User) => Some(
                    "user scope, but on a Shared iPad it is accepted on the device channel only",
                ),
                (baton_proto::SharedIpadChannels::UserOnly, crate::Scope::Device)
                    if it.kind != crate::ItemKind::WebClip =>
                {
                    Some("device scope, but on a Shared iPad it is accepted on user channels only")
                }
                _ => None,
            };
            if let Some(why) = wrong {
                out.push(
                    Lint::new(
                        Warning,
                        C::PayloadWrongChannel,
                        format!(
                            "item {} has payload {t} with {why}; change its scope",
                            it.item.id
                        ),
                    )
                    .item(&it.item.id),
                );
            }
        }

        // Groups.
        for g in &cfg.directory.groups {
            let device_rule = match &g.members {
                Membership::DeviceRule { rule } => Some(rule),
                Membership::AssigneeIn { rule, .. } => rule.as_ref(),
                _ => None,
            };
            for (name, value) in device_rule.map(|r| r.equalities()).unwrap_or_default() {
                if let ("model" | "product_name", crate::AttrValue::Str(v)) = (name, value)
                    && !v.bytes().any(|b| b.is_ascii_digit())
                {
                    out.push(
                        Lint::new(
                            Warning,
                            C::ModelNeverMatches,
                            format!(
                                "device group {}: `{name}` is the product code a device reports \
                                 (e.g. \"iPad13,18\"), so `{name} = {value}` never matches; use \
                                 `model_name = {value}` (from DeviceInformation)",
                                g.id
                            ),
                        )
                        .group(&g.id),
                    );
                }
            }
            match &g.members {
                Membership::AssigneeIn { user_group, .. } => match cfg.directory.group(user_group)
                {
                    None => out.push(
                        Lint::new(
                            Error,
                            C::UnknownGroup,
                            format!("device group {} is tied to unknown group {user_group}", g.id),
                        )
                        .group(&g.id),
                    ),
                    Some(t) if t.members.kind() != GroupKind::Users => out.push(
                        Lint::new(
                            Error,
                            C::TiedToDeviceGroup,
                            format!("device group {} is tied to {user_group}, which is not a user group", g.id),
                        )
                        .group(&g.id),
                    ),
                    Some(_) => {}
                },
                Membership::Users { usernames } => {
                    for u in usernames.iter().filter(|u| !self.users.contains_key(*u)) {
                        out.push(
                            Lint::new(
                                Warning,
                                C::UnknownMember,
                                format!("user group {} lists unknown user {u:?}", g.id),
                            )
                            .group(&g.id),
                        );
                    }
                }
                _ => {}
            }
        }

        // Distributions.
        for d in &cfg.distributions {
            if cfg.catalog.item(&d.item).is_none() {
                out.push(
                    Lint::new(
                        Error,
                        C::UnknownItem,
                        format!("distribution {} names unknown item {}", d.id, d.item),
                    )
                    .distribution(&d.id),
                );
            }
            if let Target::Groups { groups } = &d.target {
                if groups.is_empty() {
                    out.push(
                        Lint::new(
                            Warning,
                            C::EmptyCustomTarget,
                            format!("distribution {} has a custom target without groups", d.id),
                        )
                        .distribution(&d.id),
                    );
                }
                for g in groups.iter().filter(|g| !self.group_index.contains_key(*g)) {
                    out.push(
                        Lint::new(
                            Error,
                            C::UnknownGroup,
                            format!("distribution {} targets unknown group {g}", d.id),
                        )
                        .distribution(&d.id)
                        .group(g),
                    );
                }
            }
        }

        // Items.
        let mut sign_in_clips = Vec::new();
        let mut bundles: BTreeMap<&str, Vec<&ItemId>> = BTreeMap::new();
        let delivered = |idx: usize| {
            self.item_distributions
                .get(idx)
                .into_iter()
                .flatten()
                .any(|&di| match self.distributions.get(di).map(|d| &d.target) {
                    Some(CompiledTarget::All) => true,
                    Some(CompiledTarget::Groups(gs)) => gs.iter().any(Option::is_some),
                    _ => false,
                })
        };
        for (idx, it) in self.items.iter().enumerate() {
            let id = &it.item.id;
            let reach = self.nobody_reach(idx, nobody);
            if let Some(e) = &it.template_error {
                out.push(Lint::new(Error, C::InvalidTemplate, format!("item {id}: {e}")).item(id));
            }
            match &it.item.content {
                ItemContent::WebClip { sign_in: true, .. } => sign_in_clips.push((id, reach)),
                ItemContent::App {
                    bundle_id, source, ..
                } => {
                    bundles.entry(bundle_id).or_default().push(id);
                    if delivered(idx)
                        && let AppSource::AppStore {
                            licensing: AppLicensing::AppleId,
                            ..
                        } = source
                    {
                        out.push(
                            Lint::new(
                                Warning,
                                C::StoreAppWithoutVpp,
                                format!(
                                    "app {id} is licensed through the device's Apple ID: on a \
                                     shared device with no Apple ID the install prompts or fails, \
                                     and a Shared iPad refuses it; use licensing \"vpp\""
                                ),
                            )
                            .item(id),
                        );
                    }
                }
                ItemContent::Profile { certificates, .. } => {
                    for (name, ci) in certificates.iter().zip(&it.certificates) {
                        match ci {
                            None => out.push(
                                Lint::new(
                                    Error,
                                    C::UnknownCertificate,
                                    format!("profile {id} uses {name}, which is not a certificate item"),
                                )
                                .item(id),
                            ),
                            Some(ci) if delivered(idx) && !delivered(*ci) => out.push(
                                Lint::new(
                                    Error,
                                    C::CertificateNotDelivered,
                                    format!("profile {id} uses certificate {name}, which no distribution delivers"),
                                )
                                .item(id),
                            ),
                            Some(_) => {}
                        }
                    }
                }
                _ => {}
            }
            let sign_in_clip =
                matches!(it.item.content, ItemContent::WebClip { sign_in: true, .. });
            if reach != Reach::None && !sign_in_clip && !self.reaches_others(idx, nobody) {
                out.push(
                    Lint::new(
                        Warning,
                        C::NobodyOnlyItem,
                        format!(
                            "item {id} goes only to the nobody user: it is removed at every \
                             sign-in and installed again at every sign-out; to keep it on the \
                             device for everyone, distribute it to all"
                        ),
                    )
                    .item(id),
                );
            }
            if it.item.leaves_on_sign_out && reach != Reach::None {
                out.push(
                    Lint::new(
                        Error,
                        C::LeavingItemKeptByNobody,
                        format!("item {id} must leave on sign-out, but the nobody user also gets it, so it stays"),
                    )
                    .item(id),
                );
            }
            let user_vars: BTreeSet<&str> = it
                .variables
                .iter()
                .filter(|v| v.scope == VarScope::User)
                .map(|v| v.name.as_str())
                .collect();
            for name in user_vars {
                if !cfg.directory.users.iter().any(|u| user_has(u, name)) {
                    out.push(
                        Lint::new(
                            Warning,
                            C::UnknownUserVariable,
                            format!("item {id} uses $USER.{name}, which no user has"),
                        )
                        .item(id),
                    );
                } else if reach != Reach::None
                    && cfg.directory.nobody().is_some_and(|n| !user_has(n, name))
                {
                    out.push(
                        Lint::new(
                            Warning,
                            C::NobodyLacksVariable,
                            format!("item {id} reaches the nobody user but uses $USER.{name}, which nobody lacks"),
                        )
                        .item(id),
                    );
                }
            }
        }
        for (bundle, ids) in bundles.iter().filter(|(_, ids)| ids.len() > 1) {
            out.push(
                Lint::new(
                    Error,
                    C::DuplicateBundleId,
                    format!("{} app items install {bundle}", ids.len()),
                )
                .item(ids[0]),
            );
        }
        match sign_in_clips.as_slice() {
            [] => out.push(Lint::new(
                Warning,
                C::NoSignInClip,
                "no web clip is marked as the sign-in clip".into(),
            )),
            clips => {
                if clips.len() > 1 {
                    out.push(Lint::new(
                        Warning,
                        C::MultipleSignInClips,
                        format!("{} web clips are marked as the sign-in clip", clips.len()),
                    ));
                }
                for (id, reach) in clips {
                    match reach {
                        Reach::None => out.push(
                            Lint::new(
                                Error,
                                C::SignInClipNotForNobody,
                                format!("sign-in web clip {id} does not reach the nobody user: signed-out devices cannot be signed in to"),
                            )
                            .item(id),
                        ),
                        Reach::SomeDevices => out.push(
                            Lint::new(
                                Warning,
                                C::SignInClipSomeDevices,
                                format!("sign-in web clip {id} reaches the nobody user only through device groups"),
                            )
                            .item(id),
                        ),
                        Reach::Everywhere => {}
                    }
                }
            }
        }
        out.sort_by(|a, b| (a.severity, a.code, &a.message).cmp(&(b.severity, b.code, &b.message)));
        out
    }
}

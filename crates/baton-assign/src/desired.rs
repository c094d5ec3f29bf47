//! The desired state of one device for one assignee: which items, on which channel, with which
//! content hash; and the rendering of an item into its install intent.

use std::borrow::Cow;
use std::sync::Arc;

use baton_proto::SharedIpadChannels;
use serde::{Deserialize, Serialize};

use crate::catalog::{AppLicensing, AppSource, ItemContent, ItemKind, Scope};
use crate::compiled::{Bits, Body, CompiledConfig, CompiledItem};
use crate::device::{Channel, Device, DeviceKind};
use crate::directory::User;
use crate::ids::ItemId;
use crate::intent::{Intent, RenderedSettings};
use crate::template::{RenderContext, TemplateError, to_xml};

/// Why a desired state cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DesiredError {
    /// The assignee is not in the directory.
    #[error("unknown user {username:?}")]
    UnknownUser {
        /// The username.
        username: String,
    },
}

/// Why a wanted item cannot be put on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Problem {
    /// Template variables the user or device does not have (e.g. `$USER.email`).
    MissingVariables {
        /// The variables, as written (`$USER.email`).
        variables: Vec<String>,
    },
    /// The item's template does not parse.
    InvalidTemplate {
        /// The error.
        error: TemplateError,
    },
    /// A certificate the profile uses is not delivered to this device and assignee (or
    /// cannot be issued).
    MissingCertificate {
        /// The certificate item (as written in the profile item).
        certificate: String,
    },
    /// An App Store app licensed through an Apple ID (`PurchaseMethod` 0) on a Shared iPad:
    /// iOS refuses it (`PurchaseMethodNotSupportedInMultiUser`, 12008); it needs `vpp`.
    StoreAppNeedsVpp,
    /// On a Shared iPad the item would go to a channel that refuses one of its payloads
    /// (Apple's schema: Wi-Fi, certificates, VPN ... device channel only; mail, Exchange,
    /// CalDAV ... user channels only). Change the item's scope.
    WrongChannel {
        /// The payload type.
        payload_type: String,
        /// The channel the item's scope sends it to (`device` or `user`).
        channel: String,
    },
}

/// A wanted item that cannot be put on the device, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemProblem {
    /// The item.
    pub item: ItemId,
    /// Why.
    pub problem: Problem,
}

/// One item the device should have. Borrows from the compiled configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredEntry<'c> {
    /// The item.
    pub item: &'c ItemId,
    /// Its kind.
    pub kind: ItemKind,
    /// The channel it goes on.
    pub channel: Channel,
    /// PayloadIdentifier for profiles, web clips, certificates and settings; the bundle id for
    /// apps.
    pub key: &'c str,
    /// PayloadUUID for profile-like items, config hash for apps (None without configuration),
    /// content hash for settings.
    pub content: Option<Cow<'c, str>>,
    #[serde(skip)]
    pub(crate) index: usize,
}

/// The desired state of a device for an assignee. Borrows the compiled configuration, the
/// device and the user so install intents can be rendered lazily by the planner.
#[derive(Debug, Clone)]
pub struct DesiredState<'c> {
    pub(crate) config: &'c CompiledConfig,
    pub(crate) device: &'c Device,
    pub(crate) user: &'c User,
    pub(crate) members: Bits,
    pub(crate) wanted: Bits,
    /// Channels this state covers (the device channel; plus the assignee's user channel on a
    /// Shared iPad with someone signed in). The planner touches no other channel.
    pub channels: Vec<Channel>,
    /// Items to have, ordered by item id.
    pub entries: Vec<DesiredEntry<'c>>,
    /// Items that are wanted but cannot be installed (they are neither installed nor removed).
    pub problems: Vec<ItemProblem>,
    /// Items that are wanted but have no channel: user items on a Shared iPad nobody is
    /// signed in to.
    pub no_channel: Vec<ItemId>,
}

impl CompiledConfig {
    /// The desired state of `device` for its current assignee.
    pub fn desired<'c>(&'c self, device: &'c Device) -> Result<DesiredState<'c>, DesiredError> {
        self.desired_for(device, &device.assignee)
    }

    /// The desired state of `device` if `username` were its assignee (preview).
    pub fn desired_for<'c>(
        &'c self,
        device: &'c Device,
        username: &str,
    ) -> Result<DesiredState<'c>, DesiredError> {
        let (ui, user) = self
            .users
            .get(username)
            .and_then(|&i| self.config.directory.users.get(i).map(|u| (i, u)))
            .ok_or_else(|| DesiredError::UnknownUser {
                username: username.to_owned(),
            })?;
        let members = self.member_groups(device, ui);
        let wanted = self.items_for(&members);
        let ctx = RenderContext { user, device };
        let user_channel =
            (device.kind == DeviceKind::SharedIpad && !user.is_nobody()).then(|| Channel::User {
                short_name: user.username.clone(),
            });
        let mut channels = vec![Channel::Device];
        channels.extend(user_channel.clone());
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        let mut no_channel = Vec::new();
        for idx in wanted.ones() {
            let Some(it) = self.items.get(idx) else {
                continue;
            };
            let channel = match (device.kind, effective_scope(it)) {
                (DeviceKind::SharedIpad, Scope::User) => match &user_channel {
                    Some(c) => c.clone(),
                    None => {
                        no_channel.push(it.item.id.clone());
                        continue;
                    }
                },
                _ => Channel::Device,
            };
            let wrong_channel = match (&it.channel_only, &channel, device.kind) {
                (Some((t, SharedIpadChannels::DeviceOnly)), Channel::User { .. }, _) => {
                    Some((t, "user"))
                }
                (
                    Some((t, SharedIpadChannels::UserOnly)),
                    Channel::Device,
                    DeviceKind::SharedIpad,
                ) => Some((t, "device")),
                _ => None,
            };
            if let Some((payload_type, channel)) = wrong_channel {
                problems.push(ItemProblem {
                    item: it.item.id.clone(),
                    problem: Problem::WrongChannel {
                        payload_type: payload_type.to_string(),
                        channel: channel.to_owned(),
                    },
                });
                continue;
            }
            if let Some(problem) = self.problem(it, &ctx, &wanted) {
                problems.push(ItemProblem {
                    item: it.item.id.clone(),
                    problem,
                });
                continue;
            }
            let key: &str = match &it.body {
                Body::App { bundle_id, .. } => bundle_id,
                _ => &it.identifier,
            };
            entries.push(DesiredEntry {
                item: &it.item.id,
                kind: it.kind,
                channel,
                key,
                content: self.content_hash(it, ui, &ctx),
                index: idx,
            });
        }
        Ok(DesiredState {
            config: self,
            device,
            user,
            members,
            wanted,
            channels,
            entries,
            problems,
            no_channel,
        })
    }

    /// Why an item cannot be installed for this context, if it cannot.
    fn problem(
        &self,
        it: &CompiledItem,
        ctx: &RenderContext<'_>,
        wanted: &Bits,
    ) -> Option<Problem> {
        if let Some(e) = &it.template_error {
            return Some(Problem::InvalidTemplate { error: e.clone() });
        }
        let missing: Vec<String> = it
            .variables
            .iter()
            .filter(|v| ctx.lookup(v).is_none())
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            return Some(Problem::MissingVariables { variables: missing });
        }
        if ctx.device.kind == DeviceKind::SharedIpad
            && let ItemContent::App {
                source:
                    AppSource::AppStore {
                        licensing: AppLicensing::AppleId,
                        ..
                    },
                ..
            } = &it.item.content
        {
            return Some(Problem::StoreAppNeedsVpp);
        }
        if let ItemContent::Profile { certificates, .. } = &it.item.content {
            for (name, idx) in certificates.iter().zip(&it.certificates) {
                let ok = idx.is_some_and(|ci| {
                    wanted.get(ci)
                        && self.items.get(ci).is_some_and(|c| {
                            c.template_error.is_none()
                                && c.variables.iter().all(|v| ctx.lookup(v).is_some())
                        })
                });
                if !ok {
                    return Some(Problem::MissingCertificate {
                        certificate: name.to_string(),
                    });
                }
            }
        }
        None
    }
}

/// Web clips are user items and apps device items whatever their scope says.
pub(crate) fn effective_scope(it: &CompiledItem) -> Scope {
    match it.kind {
        ItemKind::WebClip => Scope::User,
        ItemKind::App => Scope::Device,
        _ => it.item.scope,
    }
}

impl DesiredState<'_> {
    /// The user whose state this is.
    pub fn user(&self) -> &User {
        self.user
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.device
    }

    /// The entry for a catalog index, if wanted and installable.
    pub(crate) fn entry_by_index(&self, idx: usize) -> Option<&DesiredEntry<'_>> {
        self.entries
            .binary_search_by(|e| e.index.cmp(&idx))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    pub(crate) fn ctx(&self) -> RenderContext<'_> {
        RenderContext {
            user: self.user,
            device: self.device,
        }
    }

    /// Renders the install intent of an entry (not for settings).
    pub(crate) fn install_intent(&self, e: &DesiredEntry<'_>) -> Option<Intent> {
        let it = self.config.items.get(e.index)?;
        let ctx = self.ctx();
        let mut missing = Vec::new();
        let channel = e.channel.clone();
        let item = e.item.clone();
        let content: Option<Arc<str>> = e.content.as_deref().map(Arc::from);
        let intent = match (&it.body, &it.item.content) {
            (Body::Profile(Some(t)), _) => {
                let mut v = t.render(&ctx, &mut missing);
                let uuid = content.clone()?;
                if let Some(d) = v.as_dictionary_mut() {
                    d.insert(
                        "PayloadIdentifier".into(),
                        plist::Value::String(it.identifier.to_string()),
                    );
                    d.insert("PayloadUUID".into(), plist::Value::String(uuid.to_string()));
                    if !d.contains_key("PayloadType") {
                        d.insert(
                            "PayloadType".into(),
                            plist::Value::String("Configuration".into()),
                        );
                    }
                    if !d.contains_key("PayloadVersion") {
                        d.insert("PayloadVersion".into(), plist::Value::Integer(1.into()));
                    }
                    if !d.contains_key("PayloadDisplayName") && !it.item.name.is_empty() {
                        d.insert(
                            "PayloadDisplayName".into(),
                            plist::Value::String(it.item.name.clone()),
                        );
                    }
                }
                Intent::InstallProfile {
                    channel,
                    item,
                    identifier: it.identifier.clone(),
                    payload_uuid: uuid,
                    profile: Arc::from(to_xml(&v)),
                }
            }
            (
                Body::App {
                    bundle_id,
                    configuration,
                },
                ItemContent::App { source, .. },
            ) => Intent::InstallApplication {
                channel,
                item,
                bundle_id: bundle_id.clone(),
                source: source.clone(),
                configuration: configuration
                    .as_ref()
                    .map(|t| Arc::from(to_xml(&t.render(&ctx, &mut missing)))),
                config_hash: content,
            },
            (
                Body::Certificate { subject, email },
                ItemContent::Certificate {
                    issued_per,
                    validity_days,
                    ..
                },
            ) => Intent::InstallCertificate {
                channel,
                item,
                identifier: it.identifier.clone(),
                payload_uuid: content.clone()?,
                issued_per: *issued_per,
                subject: subject.render(&ctx, &mut missing),
                email: email.as_ref().map(|t| t.render(&ctx, &mut missing)),
                validity_days: *validity_days,
            },
            (
                Body::WebClip { label, url },
                ItemContent::WebClip {
                    full_screen,
                    removable,
                    ..
                },
            ) => Intent::InstallWebClip {
                channel,
                item,
                identifier: it.identifier.clone(),
                payload_uuid: content.clone()?,
                label: label.render(&ctx, &mut missing),
                url: url.render(&ctx, &mut missing),
                full_screen: *full_screen,
                removable: *removable,
            },
            _ => return None,
        };
        // Entries exist only for items whose variables all resolve.
        missing.is_empty().then_some(intent)
    }

    /// Renders one Settings entry.
    pub(crate) fn render_settings(&self, e: &DesiredEntry<'_>) -> Option<RenderedSettings> {
        let it = self.config.items.get(e.index)?;
        let Body::Settings(Some(t)) = &it.body else {
            return None;
        };
        let mut missing = Vec::new();
        let v = t.render(&self.ctx(), &mut missing);
        missing.is_empty().then(|| RenderedSettings {
            item: e.item.clone(),
            settings: Arc::from(to_xml(&v)),
        })
    }
}

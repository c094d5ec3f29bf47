//! Intents: what the engine wants done on one channel. The server turns each into an MDM
//! command (InstallProfile, RemoveProfile, InstallApplication, RemoveApplication, Settings) and
//! passes queued, unanswered ones back as `in_flight`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::catalog::{AppSource, IssuedPer};
use crate::device::Channel;
use crate::ids::ItemId;

/// One rendered Settings item of an [`Intent::ApplySettings`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RenderedSettings {
    /// The Settings catalog item.
    pub item: ItemId,
    /// Plist XML of an array of Settings-command dictionaries.
    pub settings: Arc<str>,
}

/// One command intent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "intent", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Intent {
    /// `RemoveApplication` of a managed app Baton installed.
    RemoveApplication {
        /// Target channel.
        channel: Channel,
        /// The catalog item, when it still exists.
        item: Option<ItemId>,
        /// Bundle id.
        bundle_id: Arc<str>,
    },
    /// `RemoveProfile` of a Baton profile (a profile or web clip, or one whose item is gone).
    RemoveProfile {
        /// Target channel.
        channel: Channel,
        /// The catalog item, when it still exists.
        item: Option<ItemId>,
        /// PayloadIdentifier.
        identifier: Arc<str>,
    },
    /// `RemoveProfile` of the profile carrying an issued certificate (ordered after other
    /// profile removals).
    RemoveCertificate {
        /// Target channel.
        channel: Channel,
        /// The certificate item.
        item: ItemId,
        /// PayloadIdentifier of the carrying profile.
        identifier: Arc<str>,
    },
    /// Issue a certificate and install it with `InstallProfile` as a profile with a PKCS#12
    /// payload, top-level PayloadIdentifier `identifier` and PayloadUUID `payload_uuid`.
    InstallCertificate {
        /// Target channel.
        channel: Channel,
        /// The certificate item.
        item: ItemId,
        /// PayloadIdentifier.
        identifier: Arc<str>,
        /// PayloadUUID (content-derived).
        payload_uuid: Arc<str>,
        /// Per user or per device.
        issued_per: IssuedPer,
        /// Rendered subject (e.g. `CN=alice`).
        subject: String,
        /// Rendered rfc822Name SAN.
        email: Option<String>,
        /// Validity in days.
        validity_days: u32,
    },
    /// `InstallProfile` of a rendered configuration profile.
    InstallProfile {
        /// Target channel.
        channel: Channel,
        /// The profile item.
        item: ItemId,
        /// PayloadIdentifier (also set inside `profile`).
        identifier: Arc<str>,
        /// PayloadUUID (content-derived, also set inside `profile`).
        payload_uuid: Arc<str>,
        /// The complete profile as plist XML text (unsigned).
        profile: Arc<str>,
    },
    /// `InstallProfile` of a profile with one `com.apple.webClip.managed` payload.
    InstallWebClip {
        /// Target channel.
        channel: Channel,
        /// The web clip item.
        item: ItemId,
        /// PayloadIdentifier.
        identifier: Arc<str>,
        /// PayloadUUID (content-derived).
        payload_uuid: Arc<str>,
        /// Rendered label.
        label: String,
        /// Rendered URL.
        url: String,
        /// `FullScreen`.
        full_screen: bool,
        /// `IsRemovable`.
        removable: bool,
    },
    /// `InstallApplication` (also used to change an installed app's configuration).
    InstallApplication {
        /// Target channel.
        channel: Channel,
        /// The app item.
        item: ItemId,
        /// Bundle id.
        bundle_id: Arc<str>,
        /// Where it comes from.
        source: AppSource,
        /// Rendered `Configuration` dictionary as plist XML text.
        configuration: Option<Arc<str>>,
        /// Content hash of `configuration`; record it on acknowledgement.
        config_hash: Option<Arc<str>>,
    },
    /// A `Settings` command with every Settings item the channel should have, in item order.
    /// When `settings` is empty nothing needs sending: record `settings_hash` (None) only.
    ApplySettings {
        /// Target channel.
        channel: Channel,
        /// Combined hash; record it on acknowledgement.
        settings_hash: Option<Arc<str>>,
        /// The rendered items.
        settings: Vec<RenderedSettings>,
    },
}

impl Intent {
    /// The channel the intent is for.
    pub fn channel(&self) -> &Channel {
        match self {
            Intent::RemoveApplication { channel, .. }
            | Intent::RemoveProfile { channel, .. }
            | Intent::RemoveCertificate { channel, .. }
            | Intent::InstallCertificate { channel, .. }
            | Intent::InstallProfile { channel, .. }
            | Intent::InstallWebClip { channel, .. }
            | Intent::InstallApplication { channel, .. }
            | Intent::ApplySettings { channel, .. } => channel,
        }
    }

    /// The catalog item the intent is about (None for settings and for removals of items
    /// that no longer exist).
    pub fn item(&self) -> Option<&ItemId> {
        match self {
            Intent::RemoveApplication { item, .. } | Intent::RemoveProfile { item, .. } => {
                item.as_ref()
            }
            Intent::RemoveCertificate { item, .. }
            | Intent::InstallCertificate { item, .. }
            | Intent::InstallProfile { item, .. }
            | Intent::InstallWebClip { item, .. }
            | Intent::InstallApplication { item, .. } => Some(item),
            Intent::ApplySettings { .. } => None,
        }
    }

    /// True for the removal intents.
    pub fn is_removal(&self) -> bool {
        matches!(
            self,
            Intent::RemoveApplication { .. }
                | Intent::RemoveProfile { .. }
                | Intent::RemoveCertificate { .. }
        )
    }

    /// The MDM `RequestType` the server sends for this intent (None for an empty
    /// [`Intent::ApplySettings`], which is only recorded).
    pub fn request_type(&self) -> Option<&'static str> {
        match self {
            Intent::RemoveApplication { .. } => Some("RemoveApplication"),
            Intent::RemoveProfile { .. } | Intent::RemoveCertificate { .. } => {
                Some("RemoveProfile")
            }
            Intent::InstallCertificate { .. }
            | Intent::InstallProfile { .. }
            | Intent::InstallWebClip { .. } => Some("InstallProfile"),
            Intent::InstallApplication { .. } => Some("InstallApplication"),
            Intent::ApplySettings { settings, .. } if settings.is_empty() => None,
            Intent::ApplySettings { .. } => Some("Settings"),
        }
    }
}

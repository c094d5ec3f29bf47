//! The catalog: configuration profiles, apps, certificates, web clips and Settings that can be
//! distributed. Text fields marked "template" accept `$USER.…` / `$DEVICE.…` variables.

use serde::{Deserialize, Serialize};

use crate::ids::ItemId;

/// Where an item belongs on a Shared iPad: the device channel or the signed-in user's channel.
/// Ordinary devices have one channel and ignore it. Web clips are always user items, apps
/// always device items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// A device item (device channel).
    #[default]
    Device,
    /// A user item (user channel on Shared iPad).
    User,
}

/// For whom a certificate is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IssuedPer {
    /// One certificate per person (re-issued for each assignee).
    User,
    /// One certificate per device.
    Device,
}

/// Where an app comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppSource {
    /// An App Store app (`iTunesStoreID`).
    AppStore {
        /// The store id.
        itunes_store_id: u64,
        /// How the app is licensed (sent as `Options.PurchaseMethod`).
        #[serde(default)]
        licensing: AppLicensing,
        /// Take over the app when the person installed it themselves (sends
        /// `ChangeManagementState: Managed`; else iOS refuses with `AppAlreadyInstalled`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        take_over_user_installed: bool,
    },
    /// An enterprise app by manifest URL (`ManifestURL`).
    Manifest {
        /// The manifest URL.
        url: String,
    },
}

impl AppSource {
    /// An App Store app licensed through the device's Apple ID, not taken over.
    pub fn app_store(itunes_store_id: u64) -> Self {
        AppSource::AppStore {
            itunes_store_id,
            licensing: AppLicensing::default(),
            take_over_user_installed: false,
        }
    }
}

/// How an App Store app is licensed on the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppLicensing {
    /// The device's own Apple ID (`PurchaseMethod` 0, what iOS assumes without `Options`):
    /// a device with no Apple ID signed in prompts whoever holds it, and a Shared iPad
    /// refuses it (`PurchaseMethodNotSupportedInMultiUser`).
    #[default]
    AppleId,
    /// An Apps and Books (VPP) licence assigned to the device (`PurchaseMethod` 1): no prompt.
    Vpp,
}

impl AppLicensing {
    /// The `Options.PurchaseMethod` value.
    pub fn purchase_method(self) -> i64 {
        match self {
            AppLicensing::AppleId => 0,
            AppLicensing::Vpp => 1,
        }
    }
}

/// What an item is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemContent {
    /// A configuration profile template: plist XML text whose top level is a dictionary.
    /// Baton sets the top-level `PayloadIdentifier` (`<prefix>.item.<id>`) and `PayloadUUID`
    /// (derived from the rendered content) itself.
    Profile {
        /// Plist XML template.
        template: String,
        /// Certificate items the profile uses (e.g. an Exchange identity); it is only installed
        /// where they are delivered too.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        certificates: Vec<ItemId>,
    },
    /// A managed app, optionally with a managed app configuration.
    App {
        /// The bundle id.
        bundle_id: String,
        /// Where it comes from.
        source: AppSource,
        /// Plist XML template of the `Configuration` dictionary.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        configuration: Option<String>,
    },
    /// A certificate the server issues (delivered as a profile with a PKCS#12 payload).
    Certificate {
        /// Per user or per device.
        issued_per: IssuedPer,
        /// Subject template, e.g. `CN=$USER.username`.
        subject: String,
        /// Optional rfc822Name SAN template, e.g. `$USER.email`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
        /// Validity in days.
        #[serde(default = "default_validity")]
        validity_days: u32,
    },
    /// A web clip (delivered as a profile with a `com.apple.webClip.managed` payload).
    WebClip {
        /// Label template.
        label: String,
        /// URL template (e.g. `https://baton.example/sign-in/$DEVICE.sign_in_token`).
        url: String,
        /// Whether this is the sign-in web clip, which must reach the nobody user.
        #[serde(default)]
        sign_in: bool,
        /// Open full screen.
        #[serde(default)]
        full_screen: bool,
        /// Whether the person may delete it.
        #[serde(default)]
        removable: bool,
    },
    /// Settings-command entries: plist XML template whose top level is an array of
    /// dictionaries (each with an `Item` key, as the Settings command expects).
    Settings {
        /// Plist XML template.
        template: String,
    },
}

fn default_validity() -> u32 {
    365
}

/// Kind of an item, without its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ItemKind {
    /// Configuration profile.
    Profile,
    /// Managed app.
    App,
    /// Issued certificate.
    Certificate,
    /// Web clip.
    WebClip,
    /// Settings entries.
    Settings,
}

impl ItemContent {
    /// The item's kind.
    pub fn kind(&self) -> ItemKind {
        match self {
            ItemContent::Profile { .. } => ItemKind::Profile,
            ItemContent::App { .. } => ItemKind::App,
            ItemContent::Certificate { .. } => ItemKind::Certificate,
            ItemContent::WebClip { .. } => ItemKind::WebClip,
            ItemContent::Settings { .. } => ItemKind::Settings,
        }
    }
}

/// One catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CatalogItem {
    /// Its id.
    pub id: ItemId,
    /// Display name (also the profile's `PayloadDisplayName` when the template has none).
    #[serde(default)]
    pub name: String,
    /// Device or user item (matters on Shared iPad).
    #[serde(default)]
    pub scope: Scope,
    /// The operator says this item must leave the device on sign-out (lint: nobody must not
    /// get it).
    #[serde(default)]
    pub leaves_on_sign_out: bool,
    /// What it is.
    pub content: ItemContent,
}

/// Every item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The items.
    #[serde(default)]
    pub items: Vec<CatalogItem>,
}

impl Catalog {
    /// The item with this id.
    pub fn item(&self, id: &ItemId) -> Option<&CatalogItem> {
        self.items.iter().find(|i| &i.id == id)
    }
}

//! How a simulated device behaves: signature digest and message encoding, NotNow policy,
//! latency, failure injection, Shared iPad mode and app-installation timing. Plain data, saved
//! with the device.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use baton_proto::ErrorChainItem;
use serde::{Deserialize, Serialize};

use crate::{MessageEncoding, SignatureDigest};

/// Request types iOS defers (answers NotNow) while the device is locked before its first unlock
/// after a restart: they need the keychain or the data-protection class that is still locked.
pub const DEFERRED_WHILE_LOCKED: &[&str] = &[
    "InstallProfile",
    "RemoveProfile",
    "InstallApplication",
    "RemoveApplication",
    "Settings",
];

/// When the device answers NotNow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum NotNowPolicy {
    /// Never.
    #[default]
    Never,
    /// While the device is locked (see [`crate::SimDevice::lock`]), for
    /// [`DEFERRED_WHILE_LOCKED`]; like iOS before the first unlock.
    LockedUntilFirstUnlock,
    /// Always, for these request types.
    RequestTypes {
        /// The request types answered NotNow.
        request_types: BTreeSet<String>,
    },
}

/// When a managed app goes from Installing to Managed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppInstallTiming {
    /// At once: InstallApplication leaves the app Managed.
    Immediate,
    /// The app reports Installing until the next command-channel session starts.
    #[default]
    NextSession,
}

/// The device's behaviour settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimOptions {
    /// Digest of `Mdm-Signature` (SHA-1 by default, like iOS).
    pub digest: SignatureDigest,
    /// Encoding of `Mdm-Signature` and of the SCEP PKCSReq (BER as iOS streams it by default).
    #[serde(default)]
    pub encoding: MessageEncoding,
    /// Sign messages at all (the enrollment profile's `SignMessage`).
    pub sign_messages: bool,
    /// When to answer NotNow.
    pub not_now: NotNowPolicy,
    /// Delay before every HTTP request the device sends.
    #[serde(with = "duration_ms")]
    pub latency: Duration,
    /// Request types that fail with the given ErrorChain.
    pub fail_request_types: BTreeMap<String, Vec<ErrorChainItem>>,
    /// Act as a Shared iPad (multi-user, user channels).
    pub shared_ipad: bool,
    /// When installing apps become Managed.
    pub app_install: AppInstallTiming,
    /// Safety bound on commands processed in one command-channel session.
    pub max_commands_per_session: usize,
    /// What the App Store would install for an `iTunesStoreID` (decimal, as text): the app's
    /// bundle identifier, which iOS then reports in ManagedApplicationList and accepts in
    /// RemoveApplication. Store ids not listed install as `store.app<id>`.
    #[serde(default)]
    pub app_store: BTreeMap<String, String>,
    /// The device is supervised (DeviceInformation `IsSupervised`; a Shared iPad always is).
    /// Unsupervised devices refuse supervised-only payloads and Settings items.
    #[serde(default)]
    pub supervised: bool,
    /// Lenient: Authenticate also carries `DeviceName`, `Model` and `ModelName`, which iOS
    /// never sends (macOS only [Y authenticate.yaml], [MD]).
    #[serde(default)]
    pub authenticate_device_facts: bool,
    /// Lenient: accept every command and payload on every channel and in every supervision
    /// state (iOS enforces [P MDMUserParser] and the schema's channel flags [Y mdm/profiles]).
    #[serde(default)]
    pub ignore_channel_scope: bool,
    /// Lenient: acknowledge every Settings item (iOS answers per item [P `_settings:`]).
    #[serde(default)]
    pub settings_all_acknowledged: bool,
    /// Lenient: UserList items carry `FullName` (macOS only in Apple's schema).
    #[serde(default)]
    pub user_list_full_name: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            digest: SignatureDigest::Sha1,
            encoding: MessageEncoding::IosBer,
            sign_messages: true,
            not_now: NotNowPolicy::Never,
            latency: Duration::ZERO,
            fail_request_types: BTreeMap::new(),
            shared_ipad: false,
            app_install: AppInstallTiming::NextSession,
            max_commands_per_session: 10_000,
            app_store: BTreeMap::new(),
            supervised: false,
            authenticate_device_facts: false,
            ignore_channel_scope: false,
            settings_all_acknowledged: false,
            user_list_full_name: false,
        }
    }
}

impl SimOptions {
    /// The old, kinder simulator: what [`Self::default`] did before it followed iOS.
    #[must_use]
    pub fn lenient() -> Self {
        Self::default().lenient_device_facts()
    }

    /// Device facts, channels and Settings as the simulator had them before it followed iOS:
    /// Authenticate with DeviceName/Model/ModelName, no channel or supervision scope, every
    /// Settings item acknowledged, UserList with FullName.
    #[must_use]
    pub fn lenient_device_facts(mut self) -> Self {
        self.authenticate_device_facts = true;
        self.ignore_channel_scope = true;
        self.settings_all_acknowledged = true;
        self.user_list_full_name = true;
        self
    }

    /// Fails every `request_type` command with one ErrorChain item.
    #[must_use]
    pub fn failing(mut self, request_type: &str, domain: &str, code: i64, text: &str) -> Self {
        self.fail_request_types.insert(
            request_type.to_owned(),
            vec![ErrorChainItem {
                code,
                domain: domain.to_owned(),
                localized_description: Some(text.to_owned()),
                us_english_description: Some(text.to_owned()),
            }],
        );
        self
    }
}

mod duration_ms {
    //! Durations as whole milliseconds in JSON.
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

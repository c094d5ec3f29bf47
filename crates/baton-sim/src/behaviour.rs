//! How a simulated device behaves: signature digest and message encoding, NotNow policy,
//! latency, failure injection, Shared iPad mode and app-installation timing. Plain data, saved
//! with the device.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use baton_proto::ErrorChainItem;
use serde::{Deserialize, Serialize};

use crate::{MessageEncoding, SignatureDigest};

/// The simulator's first guess at what a locked device defers (answers NotNow), kept for
/// [`NotNowPolicy::LockedUntilFirstUnlock`]. iOS's real sets are
/// [`crate::lock::DEFERRED_WHILE_PASSCODE_LOCKED`] and
/// [`crate::lock::DEFERRED_BEFORE_FIRST_UNLOCK`] ([`NotNowPolicy::IosLockState`]).
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
    /// Never (the simulator's old default: [`SimOptions::lenient`]).
    Never,
    /// While the device is locked in either way (see [`crate::SimDevice::lock`]), for
    /// [`DEFERRED_WHILE_LOCKED`]: the simulator's old guess, kept reachable.
    LockedUntilFirstUnlock,
    /// As iOS does, by lock state (see [`crate::LockState`]): passcode-locked defers
    /// [`crate::lock::DEFERRED_WHILE_PASSCODE_LOCKED`], before the first unlock also
    /// [`crate::lock::DEFERRED_BEFORE_FIRST_UNLOCK`]; an unlocked device defers nothing.
    /// [P MDMParser `processRequest:`, `_unavailableCommandsWhileLocked`,
    /// `_unavailableCommandsBeforeFirstUnlock`; AF; M984]
    #[default]
    IosLockState,
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
    /// After a connection whose last status was NotNow, the device polls by itself when it is
    /// unlocked ([`crate::SimDevice::unlock`]); after any other last status it waits for a push.
    /// [NN "Understand device polling"; P MDMServerCore `_pollFromServerIfNeeded:`]
    #[serde(default = "yes")]
    pub poll_after_not_now: bool,
    /// A result whose HTTP reply was lost is kept and sent as the first message of the next
    /// connection instead of Idle. [P MDMServerCore `_pollFromServerIfNeeded:`] UNCONFIRMED on
    /// a device.
    #[serde(default = "yes")]
    pub resend_lost_result: bool,
    /// Per-command delays and dropped connections (off by default).
    #[serde(default)]
    pub pacing: crate::pacing::Pacing,
}

fn yes() -> bool {
    true
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            digest: SignatureDigest::Sha1,
            encoding: MessageEncoding::IosBer,
            sign_messages: true,
            not_now: NotNowPolicy::IosLockState,
            latency: Duration::ZERO,
            fail_request_types: BTreeMap::new(),
            shared_ipad: false,
            app_install: AppInstallTiming::NextSession,
            max_commands_per_session: 10_000,
            app_store: BTreeMap::new(),
            poll_after_not_now: true,
            resend_lost_result: true,
            pacing: crate::pacing::Pacing::default(),
        }
    }
}

impl SimOptions {
    /// The simulator's old, kinder behaviour, for tests written against it: no NotNow, no poll
    /// of its own after unlock, a lost result forgotten (the next connection opens with Idle).
    #[must_use]
    pub fn lenient() -> Self {
        Self {
            not_now: NotNowPolicy::Never,
            poll_after_not_now: false,
            resend_lost_result: false,
            ..Self::default()
        }
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

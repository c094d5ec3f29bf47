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
    /// At once: InstallApplication leaves the app Managed (lenient, not iOS).
    Immediate,
    /// The app reports Installing until the next command-channel session starts (lenient).
    NextSession,
    /// Like iOS: the Ack says `Queued`; each later command-channel session start moves the
    /// install one step (`Queued` -> `Installing` -> how it ends, see
    /// [`AppInstallOutcome`]); only ManagedApplicationList shows the progress
    /// [Y application.install, application.managed.list; P `_performInstallApplication…`].
    /// How many sessions a real install takes is the simulator's choice.
    #[default]
    Asynchronous,
}

/// How a pending app install ends (the knob for installs that settle to a failure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppInstallOutcome {
    /// `Managed`.
    #[default]
    Managed,
    /// `Failed`: reported once by ManagedApplicationList, then gone [Y application.managed.list].
    Failed,
    /// `UserRejected`: the person declined; reported once, then gone [Y application.managed.list].
    UserRejected,
}

/// The App Store account of the device, for `PurchaseMethod` 0 installs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AppStoreAccount {
    /// No Apple ID signed in (a shared iPhone): iOS prompts the person to sign in and a
    /// refusal answers `Error` 12040 [P `_installApplication:…`,
    /// `promptUserToLoginToiTunesIfNeeded`]. The sim models the person refusing at once;
    /// that iOS holds the answer until the person responds is UNCONFIRMED and not modelled.
    #[default]
    SignedOut,
    /// An Apple ID is signed in: PurchaseMethod 0 installs (lenient for shared devices).
    SignedIn,
}

/// Which Apps and Books (VPP) licences the device's assignment has, for `PurchaseMethod` 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VppLicences {
    /// A licence for every store id of [`SimOptions::app_store`] (the apps the test declares);
    /// others give `LicenseNotFound` 12064 [P `_performInstallApplication…`].
    #[default]
    AppStoreMap,
    /// A licence for every store id.
    All,
    /// No licence at all: every PurchaseMethod 1 install gives 12064.
    Missing,
}

/// How the device answers InstallProfile and RemoveProfile of its MDM (enrollment) profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MdmProfileCommands {
    /// As iOS: InstallProfile with the same identifier replaces the MDM profile and the
    /// identity when the replacement-invariant fields match (else 12012, or 4015 without an
    /// MDM payload); RemoveProfile of it is acknowledged, then the device unenrolls (CheckOut
    /// when `CheckOutWhenRemoved`). [I; M903; P `processRequest:`]
    #[default]
    Ios,
    /// The old simulator: both refused (InstallProfile 4001, RemoveProfile 12075).
    Refuse,
}

/// Which codes the device's refusals carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCodes {
    /// As iOS (decompiled MDM.framework \[P\]): unknown or unsupported RequestType Error 12021,
    /// CommandFormatError for a missing Payload/Identifier/Settings/UserName, 12008 for a
    /// malformed InstallApplication, Identifiers or ManagedOnly, RemoveProfile 12075/12013,
    /// DeleteUser 12071-12074.
    #[default]
    Ios,
    /// The old simulator's codes: CommandFormatError for unknown request types, 12021 for any
    /// undecodable command, 12075 for every RemoveProfile refusal, 12070 for DeleteUser,
    /// supervised-only commands acknowledged everywhere.
    Lenient,
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
    /// How pending app installs end.
    #[serde(default)]
    pub app_install_outcome: AppInstallOutcome,
    /// The App Store account (PurchaseMethod 0 installs).
    #[serde(default)]
    pub app_store_account: AppStoreAccount,
    /// The VPP licences (PurchaseMethod 1 installs).
    #[serde(default)]
    pub vpp_licences: VppLicences,
    /// InstallProfile/RemoveProfile of the MDM profile.
    #[serde(default)]
    pub mdm_profile_commands: MdmProfileCommands,
    /// The codes of refusals.
    #[serde(default)]
    pub refusal_codes: RefusalCodes,
    /// Supervised (a Shared iPad always is): supervised-only commands run, RemoveProfile
    /// removes any profile.
    #[serde(default)]
    pub supervised: bool,
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
    /// Removals the device refuses: identifier (an app's bundle id for RemoveApplication, a
    /// profile's PayloadIdentifier for RemoveProfile) to the iOS error code it answers with
    /// (e.g. 12130 for an app, 12013 for a profile). The item stays installed. Real devices
    /// refuse for their own reasons (a removal that fails, an app that is not managed).
    #[serde(default)]
    pub refuse_removals: BTreeMap<String, i64>,
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
            app_install: AppInstallTiming::Asynchronous,
            max_commands_per_session: 10_000,
            app_store: BTreeMap::new(),
            app_install_outcome: AppInstallOutcome::Managed,
            app_store_account: AppStoreAccount::SignedOut,
            vpp_licences: VppLicences::AppStoreMap,
            mdm_profile_commands: MdmProfileCommands::Ios,
            refusal_codes: RefusalCodes::Ios,
            supervised: false,
            poll_after_not_now: true,
            resend_lost_result: true,
            pacing: crate::pacing::Pacing::default(),
            authenticate_device_facts: false,
            ignore_channel_scope: false,
            settings_all_acknowledged: false,
            user_list_full_name: false,
            refuse_removals: BTreeMap::new(),
        }
    }
}

impl SimOptions {
    /// The old, kind simulator: every behaviour where the sim used to say yes to everything
    /// (no NotNow, no poll of its own after unlock, a lost result forgotten, every app install
    /// succeeding, the old refusal codes, MDM-profile commands refused, the old device facts,
    /// channels and Settings answers).
    #[must_use]
    pub fn lenient() -> Self {
        let mut o = Self {
            mdm_profile_commands: MdmProfileCommands::Refuse,
            refusal_codes: RefusalCodes::Lenient,
            not_now: NotNowPolicy::Never,
            poll_after_not_now: false,
            resend_lost_result: false,
            ..Self::default()
        };
        o.lenient_apps();
        o.lenient_device_facts()
    }

    /// App installs as the sim used to do them: any store id installs with any PurchaseMethod,
    /// and the app is Managed at the next session.
    pub fn lenient_apps(&mut self) {
        self.app_install = AppInstallTiming::NextSession;
        self.app_store_account = AppStoreAccount::SignedIn;
        self.vpp_licences = VppLicences::All;
    }

    /// Supervised, or a Shared iPad (always supervised).
    pub fn is_supervised(&self) -> bool {
        self.supervised || self.shared_ipad
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

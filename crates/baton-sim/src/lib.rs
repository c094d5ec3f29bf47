//! Simulated iOS devices for Baton: single devices for end-to-end tests, fleets of thousands
//! for load, and the benchmark that measures a server with them.
//!
//! - [`SimDevice`]: enrolls (from an enrollment profile URL with SCEP or PKCS#12, by SCEP
//!   directly, or with a pre-made [`SimIdentity`] and explicit [`ServerEndpoints`]), signs every
//!   message (`Mdm-Signature`), sends Authenticate, TokenUpdate and CheckOut, and on "push" runs
//!   a command-channel session until the server has nothing left
//!   ([`SimDevice::connect_until_idle`]).
//! - CMS as iOS writes it, by default: the `Mdm-Signature` and the SCEP PKCSReq are BER with
//!   indefinite lengths as Apple's streaming encoder emits them, signed with SHA-1, with
//!   signingTime and the certificate chain ([`MessageEncoding::IosBer`],
//!   [`SignatureDigest::Sha1`]); strict DER and SHA-256 are options.
//! - [`ios_commands`]: how iOS answers the commands Baton uses, with state ([`Inventory`]):
//!   profiles, certificates, web clips, managed apps, device facts, Shared iPad users; and the
//!   refusals (ErrorChain) iOS sends for malformed input.
//! - [`SimOptions`]: digest and encoding, NotNow policy, latency, failure injection, Shared
//!   iPad mode.
//! - [`Fleet`]: many devices concurrently, saved to a directory; [`PushWatcher`] reads a mock
//!   APNs server's records.
//! - [`browser`] and [`html_form`]: the person at the device, opening a web clip's URL,
//!   reading forms and submitting them with cookies, as the sign-in portal needs.
//! - [`bench`]: the load scenarios behind `baton-sim bench`.
//!
//! - [`mdm_profile`]: the MDM profile as iOS guards it: a replacement (identity renewal) must
//!   keep the invariant fields (else 12012); removing it unenrolls the device.
//!
//! What it is not: a model of iOS beyond the commands listed in [`ios_commands`]; unknown
//! request types are answered Error 12021, as iOS does.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod admin_api;
mod behaviour;
pub mod bench;
pub mod browser;
pub mod channel_scope;
mod device;
mod enrollment_profile;
mod error;
mod fleet;
pub mod html_form;
mod identity;
mod inventory;
pub mod ios_apps;
pub mod ios_commands;
pub mod lock;
pub mod mdm_profile;
pub mod pacing;
mod push;
pub mod scep;
pub mod settings_items;
mod transport;

pub use admin_api::AdminApi;
pub use behaviour::{
    AppInstallOutcome, AppInstallTiming, AppStoreAccount, DEFERRED_WHILE_LOCKED,
    MdmProfileCommands, NotNowPolicy, RefusalCodes, SimOptions, VppLicences,
};
pub use device::{
    CHECKIN_CONTENT_TYPE, DeviceRecord, PendingResult, ProcessedCommand, SimDevice, UserChannel,
    random_udid, random_uuid,
};
pub use enrollment_profile::{
    DEFAULT_TOPIC, EnrollmentSettings, IdentitySource, ServerEndpoints, read_enrollment_profile,
};
pub use error::SimError;
pub use fleet::{DeviceOutcome, Fleet, FleetConfig, FleetEnrollment};
pub use identity::{MessageEncoding, SignatureDigest, SimIdentity};
pub use inventory::{
    AppStatus, InstalledCertificate, InstalledPayload, InstalledProfile, Inventory, ManagedApp,
    WebClip,
};
pub use ios_commands::{DeviceFacts, SharedUser};
pub use lock::LockState;
pub use pacing::Pacing;
pub use push::PushWatcher;
pub use transport::{HttpReply, ServerTrust, Transport, client_tls_config, origin_of};

//! Apple MDM wire types for Baton.
//!
//! This crate owns the protocol's shapes and nothing else:
//!
//! - [`CheckinMessage`]: check-in bodies (Authenticate, TokenUpdate, CheckOut, ...) decoded once
//!   into an enum, each with its channel identity ([`Enrollment`]) normalised to an
//!   [`EnrollmentId`] (`device` or `device:user`; Shared iPad users are named by UserShortName).
//! - [`CommandReport`]: what a device PUTs on the command channel (Status, CommandUUID,
//!   ErrorChain), with typed views over ProfileList, InstalledApplicationList,
//!   ManagedApplicationList, CertificateList, DeviceInformation, SecurityInfo and UserList.
//! - [`Command`] / [`CommandRequest`]: typed commands encoded to the exact plist a device expects
//!   and decoded back; any other RequestType passes through as [`CommandRequest::Raw`].
//! - [`Profile`] / [`Payload`] and the typed payload builders ([`MdmPayload`], [`ScepPayload`],
//!   [`Pkcs12Payload`], [`RootCertificatePayload`], [`WebClipPayload`]): building .mobileconfig
//!   files and reading uploaded unsigned ones.
//! - [`Limits`]: body size, nesting depth and element count, checked before any parsing
//!   ([`check_limits`]). Only XML plists are read; binary plists are refused (see `plist_read`).
//! - Identifier newtypes ([`Udid`], [`EnrollmentId`], [`CommandUuid`], [`Topic`], [`PushToken`],
//!   [`PushMagic`]) and [`Status`].
//!
//! It is pure: it takes bytes and returns values or typed errors, never panics on input, does no
//! IO, reads no clock, draws no random numbers (UUIDs come from the caller or [`derive_uuid`]) and
//! has no async runtime, TLS, storage or OpenSSL dependency. Signatures (Mdm-Signature, signed
//! profiles), transport and persistence belong to the server.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod checkin;
mod command;
mod enrollment;
mod field;
mod ids;
mod limits;
mod payload;
mod payload_channel;
mod plist_read;
mod plist_write;
mod profile;
mod report;
mod response;
mod status;

pub use checkin::{
    Authenticate, CheckOut, CheckinError, CheckinMessage, DeclarativeManagement, GetBootstrapToken,
    GetToken, MessageType, SetBootstrapToken, TokenUpdate, UserAuthenticate,
};
pub use command::{
    AppSource, Command, CommandError, CommandRequest, InstallApplication, Setting,
    TYPED_REQUEST_TYPES,
};
pub use enrollment::{Enrollment, EnrollmentKeys};
pub use field::{FieldError, Fields};
pub use ids::{
    CommandUuid, EnrollmentId, IdError, MAX_ID_LEN, PushMagic, PushToken, SHARED_IPAD_USER_ID,
    Topic, Udid,
};
pub use limits::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS, Limits};
pub use payload::{
    ACCESS_RIGHTS_ALL, CAPABILITY_PER_USER_CONNECTIONS, MdmPayload, Pkcs12Payload,
    RootCertificatePayload, ScepPayload, WebClipPayload,
};
pub use payload_channel::{SharedIpadChannels, shared_ipad_channels, supervised_only};
pub use plist_read::{PlistError, check_limits, read_dictionary, value_kind};
pub use plist_write::{EncodeError, to_xml};
pub use profile::{Payload, PayloadScope, Profile, ProfileError, derive_uuid};
pub use report::{CommandReport, ReportError, ResponseKind};
pub use response::{
    CertificateListItem, DeviceInformation, InstalledApplication, ManagedApplication,
    ManagementStatus, ProfileListItem, ProfilePayloadSummary, SecurityInfo, UserListItem,
};
pub use status::{ErrorChainItem, Status, UnknownStatus};

/// Re-export of the `plist` crate, whose `Dictionary` and `Value` appear in this crate's API.
pub use plist;

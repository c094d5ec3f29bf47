//! How a simulated device answers commands, the way iOS does: the pure part (no IO).
//!
//! [`answer`] takes a decoded command and the channel's state and returns the report's status,
//! ErrorChain and response keys, mutating the inventory. Refusals follow iOS: a malformed
//! profile is refused with `MCInstallationErrorDomain` 4000 over `MCProfileErrorDomain`
//! 1000/1002/1003, a RemoveProfile of a profile that is not installed with `MDMErrorDomain`
//! 12075 (captured from an iPhone); the codes read from decompiled iOS MDM.framework \[P\] and
//! profiled \[I\] (12012/4015 for the MDM profile's replacement, 12013, 12021, 12008,
//! 12071-12074, CommandFormatError for missing keys) carry their source where they are made.
//! Where no source was available the code is the simulator's own choice and marked so
//! (`SIM_CHOSEN_*`): tests should check the domain and status, not those numbers.
//! [`RefusalCodes::Lenient`] and [`MdmProfileCommands::Refuse`] give the old simulator's answers.
//!
//! SCEP payloads inside InstallProfile need network IO; the device runs them first
//! ([`scep_payloads`]) and passes the outcomes in [`ChannelContext::scep_results`].

use std::collections::BTreeMap;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    Command, CommandRequest, ErrorChainItem, Limits, Payload, Profile, ProfileError, Status,
};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use serde::{Deserialize, Serialize};

use crate::behaviour::{
    DEFERRED_WHILE_LOCKED, MdmProfileCommands, NotNowPolicy, RefusalCodes, SimOptions,
};
use crate::identity::common_name;
use crate::inventory::{
    InstalledCertificate, InstalledPayload, InstalledProfile, Inventory, WebClip,
};
use crate::ios_apps;
use crate::lock::LockState;

/// `MCInstallationErrorDomain`.
pub const INSTALLATION_DOMAIN: &str = "MCInstallationErrorDomain";
/// `MCProfileErrorDomain`.
pub const PROFILE_DOMAIN: &str = "MCProfileErrorDomain";
/// `MDMErrorDomain`.
pub const MDM_DOMAIN: &str = "MDMErrorDomain";
/// `MCMDMErrorDomain`.
pub const MCMDM_DOMAIN: &str = "MCMDMErrorDomain";
/// Code for a command missing a required key or with a mistyped key (simulator's choice).
pub const SIM_CHOSEN_INVALID_REQUEST: i64 = 12021;
/// Code for RemoveApplication of an app that is not managed (simulator's choice).
pub const SIM_CHOSEN_APP_NOT_MANAGED: i64 = 12036;
/// Code for Shared iPad commands on other devices, and user commands that cannot run
/// (simulator's choice).
pub const SIM_CHOSEN_NOT_SUPPORTED: i64 = 12070;

/// Facts about the device that answers depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFacts {
    /// `UDID`.
    pub udid: String,
    /// `SerialNumber`.
    pub serial_number: String,
    /// `Model`, e.g. `iPhone15,2`.
    pub model: String,
    /// `ModelName`, e.g. `iPhone`.
    pub model_name: String,
    /// `ProductName`.
    pub product_name: String,
    /// `OSVersion`.
    pub os_version: String,
    /// `BuildVersion`.
    pub build_version: String,
    /// `DeviceName`.
    pub device_name: String,
}

/// A Shared iPad user known to the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedUser {
    /// The Managed Apple Account (`UserShortName`).
    pub short_name: String,
    /// Currently signed in.
    pub logged_in: bool,
    /// Has data not yet synced to iCloud.
    pub has_data_to_sync: bool,
}

/// A SCEP payload of an InstallProfile command, for the device to enroll before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepPayloadRequest {
    /// `PayloadUUID` of the payload (key of [`ChannelContext::scep_results`]).
    pub payload_uuid: String,
    /// SCEP `URL`.
    pub url: String,
    /// `Challenge`.
    pub challenge: Option<String>,
    /// Common name from `Subject` (or the payload identifier).
    pub common_name: String,
}

/// The issued certificate of a SCEP payload, or why there is none.
pub type ScepResult = Result<Vec<u8>, String>;

/// Everything [`answer`] reads and changes.
#[derive(Debug)]
pub struct ChannelContext<'a> {
    /// Device facts.
    pub facts: &'a DeviceFacts,
    /// The device's MDM identity certificate (DER), listed by CertificateList.
    pub identity_cert_der: &'a [u8],
    /// The enrollment profile, listed by ProfileList on the device channel.
    pub enrollment_profile: Option<&'a InstalledProfile>,
    /// This channel's inventory.
    pub inventory: &'a mut Inventory,
    /// The device's Shared iPad users (empty otherwise).
    pub users: &'a mut Vec<SharedUser>,
    /// True on a Shared iPad user channel.
    pub user_channel: bool,
    /// Locked (passcode-locked, or before the first unlock).
    pub locked: bool,
    /// Locked and not unlocked since the device started (implies `locked`).
    pub before_first_unlock: bool,
    /// Behaviour.
    pub options: &'a SimOptions,
    /// Outcomes of the SCEP payloads of this command, by PayloadUUID.
    pub scep_results: &'a BTreeMap<String, ScepResult>,
}

/// What the device reports for one command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandAnswer {
    /// `Status`.
    pub status: Status,
    /// `ErrorChain` (Error only).
    pub error_chain: Option<Vec<ErrorChainItem>>,
    /// Response keys.
    pub response: Dictionary,
}

impl CommandAnswer {
    fn ack() -> Self {
        Self::ack_with(Dictionary::new())
    }

    pub(crate) fn ack_with(response: Dictionary) -> Self {
        Self {
            status: Status::Acknowledged,
            error_chain: None,
            response,
        }
    }

    fn status(status: Status) -> Self {
        Self {
            status,
            error_chain: None,
            response: Dictionary::new(),
        }
    }

    pub(crate) fn error(chain: Vec<ErrorChainItem>) -> Self {
        Self {
            status: Status::Error,
            error_chain: Some(chain),
            response: Dictionary::new(),
        }
    }
}

/// One ErrorChain item with the same text in both descriptions.
pub fn chain_item(domain: &str, code: i64, text: impl Into<String>) -> ErrorChainItem {
    let text = text.into();
    ErrorChainItem {
        code,
        domain: domain.to_owned(),
        localized_description: Some(text.clone()),
        us_english_description: Some(text),
    }
}

/// The answer to a command dictionary whose request part could not be decoded (a missing or
/// mistyped key): iOS refuses it with an ErrorChain.
pub fn answer_undecodable(request_type: Option<&str>, reason: &str) -> CommandAnswer {
    CommandAnswer::error(vec![chain_item(
        MCMDM_DOMAIN,
        SIM_CHOSEN_INVALID_REQUEST,
        format!(
            "Invalid {} request: {reason}",
            request_type.unwrap_or("MDM")
        ),
    )])
}

/// Decodes a command dictionary whose `CommandUUID` was already read. A request iOS cannot
/// read (missing or mistyped key, e.g. InstallApplication without an app) gives the answer the
/// device sends instead: Error with an ErrorChain.
pub fn decode_command(dict: &Dictionary) -> Result<Command, CommandAnswer> {
    decode_command_for(dict, &SimOptions::default())
}

/// [`decode_command`] for a device with `options`: with [`RefusalCodes::Ios`], a request iOS
/// reads as malformed gets iOS's answer ([`malformed_request`]).
pub fn decode_command_for(
    dict: &Dictionary,
    options: &SimOptions,
) -> Result<Command, CommandAnswer> {
    if options.refusal_codes == RefusalCodes::Ios
        && let Some(request) = dict.get("Command").and_then(Value::as_dictionary)
        && let Some(answer) = malformed_request(request)
    {
        return Err(answer);
    }
    Command::from_dictionary(dict).map_err(|e| {
        let request_type = dict
            .get("Command")
            .and_then(Value::as_dictionary)
            .and_then(|c| c.get("RequestType"))
            .and_then(Value::as_string);
        answer_undecodable(request_type, &e.to_string())
    })
}

/// iOS's code for a malformed request ("bad request") [P `_installApplication:…`, list
/// commands].
pub const MALFORMED_REQUEST: i64 = 12008;

/// What iOS answers a command whose keys it cannot use, by decompiled MDM.framework [P
/// `processRequest:` and the command methods]: `CommandFormatError` for InstallProfile without
/// a data `Payload`, RemoveProfile without a string `Identifier`, Settings without an array and
/// DeleteUser without `UserName` (and without `DeleteAllUsers`); Error 12008 for
/// InstallApplication with no or several sources or a source of the wrong type, an `Identifiers`
/// that is not an array of strings, and a `ManagedOnly` that is not a boolean. `None`: not one
/// of these.
pub fn malformed_request(request: &Dictionary) -> Option<CommandAnswer> {
    let request_type = request.get("RequestType").and_then(Value::as_string)?;
    let format_error = || Some(CommandAnswer::status(Status::CommandFormatError));
    let malformed = |what: &str| {
        // Domain: MDMErrorDomain as on iOS 26 (UNCONFIRMED for this code).
        Some(CommandAnswer::error(vec![chain_item(
            MDM_DOMAIN,
            MALFORMED_REQUEST,
            format!("Malformed {request_type} request: {what}"),
        )]))
    };
    let is = |key: &str, ok: fn(&Value) -> bool| request.get(key).is_some_and(ok);
    let absent_or = |key: &str, ok: fn(&Value) -> bool| request.get(key).is_none_or(ok);
    match request_type {
        "InstallProfile" if !is("Payload", |v| v.as_data().is_some()) => format_error(),
        "RemoveProfile" if !is("Identifier", |v| v.as_string().is_some()) => format_error(),
        "Settings" if !is("Settings", |v| v.as_array().is_some()) => format_error(),
        "DeleteUser"
            if !is("UserName", |v| v.as_string().is_some())
                && !is("DeleteAllUsers", |v| v.as_boolean() == Some(true)) =>
        {
            format_error()
        }
        "InstallApplication" => {
            type Check = fn(&Value) -> bool;
            let sources: [(&str, Check); 3] = [
                ("iTunesStoreID", |v| v.as_signed_integer().is_some()),
                ("ManifestURL", |v| v.as_string().is_some()),
                ("Identifier", |v| v.as_string().is_some()),
            ];
            let present = sources
                .iter()
                .filter(|(k, _)| request.contains_key(k))
                .count();
            if present != 1 {
                return malformed("exactly one of iTunesStoreID, ManifestURL, Identifier");
            }
            if sources.iter().any(|(k, ok)| !absent_or(k, *ok)) {
                return malformed("the app source has the wrong type");
            }
            None
        }
        "InstalledApplicationList" | "ManagedApplicationList"
            if !absent_or("Identifiers", |v| {
                v.as_array()
                    .is_some_and(|a| a.iter().all(|i| i.as_string().is_some()))
            }) =>
        {
            malformed("Identifiers must be an array of strings")
        }
        "ProfileList" | "CertificateList"
            if !absent_or("ManagedOnly", |v| v.as_boolean().is_some()) =>
        {
            malformed("ManagedOnly must be a boolean")
        }
        _ => None,
    }
}

/// The SCEP payloads of an InstallProfile command (empty for anything else or a bad profile).
pub fn scep_payloads(command: &Command) -> Vec<ScepPayloadRequest> {
    let CommandRequest::InstallProfile { payload } = &command.request else {
        return Vec::new();
    };
    let Ok(profile) = read_profile(payload) else {
        return Vec::new();
    };
    profile
        .payloads
        .iter()
        .filter(|p| p.payload_type == "com.apple.security.scep")
        .filter_map(|p| {
            let content = p.content.get("PayloadContent")?.as_dictionary()?;
            let url = content.get("URL")?.as_string()?.to_owned();
            Some(ScepPayloadRequest {
                payload_uuid: p.uuid.clone(),
                url,
                challenge: content
                    .get("Challenge")
                    .and_then(Value::as_string)
                    .map(str::to_owned),
                common_name: subject_common_name(content).unwrap_or_else(|| p.identifier.clone()),
            })
        })
        .collect()
}

/// `CN` from a SCEP `Subject` (`[[["CN", "name"]], ...]`).
fn subject_common_name(scep: &Dictionary) -> Option<String> {
    scep.get("Subject")?.as_array()?.iter().find_map(|rdn| {
        rdn.as_array()?.iter().find_map(|pair| {
            let pair = pair.as_array()?;
            let key = pair.first()?.as_string()?;
            (key == "CN" || key == "2.5.4.3")
                .then(|| pair.get(1)?.as_string().map(str::to_owned))
                .flatten()
        })
    })
}

/// Answers `command` on the channel described by `ctx`.
pub fn answer(ctx: &mut ChannelContext<'_>, command: &Command) -> CommandAnswer {
    let request_type = command.request_type();
    if let Some(chain) = ctx.options.fail_request_types.get(request_type) {
        return CommandAnswer::error(chain.clone());
    }
    if let Some(refusal) = crate::channel_scope::refuse_command(ctx, request_type) {
        return refusal;
    }
    if defers(ctx, request_type) {
        return CommandAnswer::status(Status::NotNow);
    }
    match &command.request {
        CommandRequest::InstallProfile { payload } => install_profile(ctx, payload),
        CommandRequest::RemoveProfile { identifier } => remove_profile(ctx, identifier),
        CommandRequest::ProfileList => profile_list(ctx),
        CommandRequest::InstallApplication(app) => ios_apps::install_application(ctx, app),
        CommandRequest::RemoveApplication { identifier } => {
            ios_apps::remove_application(ctx, identifier)
        }
        CommandRequest::InstalledApplicationList {
            identifiers,
            managed_apps_only,
        } => ios_apps::installed_application_list(
            ctx,
            identifiers.as_deref(),
            managed_apps_only.unwrap_or(false),
        ),
        CommandRequest::ManagedApplicationList { identifiers } => {
            ios_apps::managed_application_list(ctx, identifiers.as_deref())
        }
        CommandRequest::CertificateList { .. } => certificate_list(ctx),
        CommandRequest::DeviceInformation { queries } => device_information(ctx, queries),
        CommandRequest::SecurityInfo => security_info(),
        CommandRequest::Settings { settings } => crate::settings_items::answer(ctx, settings),
        CommandRequest::LogOutUser => shared_only(ctx, log_out_user),
        CommandRequest::UserList => shared_only(ctx, user_list),
        CommandRequest::DeleteUser {
            user_name,
            delete_all_users,
            force_deletion,
        } => {
            let user_name = user_name.clone();
            let all = delete_all_users.unwrap_or(false);
            let force = force_deletion.unwrap_or(false);
            shared_only(ctx, |ctx| {
                delete_user(ctx, user_name.as_deref(), all, force)
            })
        }
        CommandRequest::DeviceConfigured | CommandRequest::UserConfigured => CommandAnswer::ack(),
        CommandRequest::Raw { request_type, .. } => raw_command(ctx, request_type),
        _ => unknown_request_type(ctx, request_type),
    }
}

/// Commands iOS runs only on supervised devices (`_commandSetSupervised` \[P\]).
pub const SUPERVISED_ONLY: &[&str] = &[
    "RestartDevice",
    "ShutDownDevice",
    "StopMirroring",
    "ClearRestrictionsPassword",
];

/// iOS's code for a RequestType it does not know or does not run on this device
/// (`_invalidRequestTypeError` [P `processRequest:`]).
pub const INVALID_REQUEST_TYPE: i64 = 12021;

/// Commands the simulator has no model of but acknowledges (with [`SUPERVISED_ONLY`] only when
/// supervised).
fn raw_command(ctx: &ChannelContext<'_>, request_type: &str) -> CommandAnswer {
    let lenient = ctx.options.refusal_codes == RefusalCodes::Lenient;
    match request_type {
        "DeviceLock" | "ClearPasscode" | "RequestMirroring" => CommandAnswer::ack(),
        t if SUPERVISED_ONLY.contains(&t) && (lenient || ctx.options.is_supervised()) => {
            CommandAnswer::ack()
        }
        t => unknown_request_type(ctx, t),
    }
}

/// An unknown RequestType, or one outside the device's command set: Error 12021 [P]
/// (the old simulator: CommandFormatError).
fn unknown_request_type(ctx: &ChannelContext<'_>, request_type: &str) -> CommandAnswer {
    if ctx.options.refusal_codes == RefusalCodes::Lenient {
        return CommandAnswer::status(Status::CommandFormatError);
    }
    // Domain: MDM.framework's constant, MDMErrorDomain on iOS 26 (UNCONFIRMED for this code).
    CommandAnswer::error(vec![chain_item(
        MDM_DOMAIN,
        INVALID_REQUEST_TYPE,
        format!("The request type \u{201c}{request_type}\u{201d} is not supported."),
    )])
}

fn defers(ctx: &ChannelContext<'_>, request_type: &str) -> bool {
    match &ctx.options.not_now {
        NotNowPolicy::Never => false,
        NotNowPolicy::LockedUntilFirstUnlock => {
            ctx.locked && DEFERRED_WHILE_LOCKED.contains(&request_type)
        }
        NotNowPolicy::RequestTypes { request_types } => request_types.contains(request_type),
        NotNowPolicy::IosLockState => {
            let state = if ctx.before_first_unlock {
                LockState::BeforeFirstUnlock
            } else if ctx.locked {
                LockState::PasscodeLocked
            } else {
                LockState::Unlocked
            };
            crate::lock::ios_defers(state, request_type)
        }
    }
}

// ---- profiles ----

/// Why a profile is refused, turned into an iOS-like ErrorChain.
#[derive(Debug)]
enum Refusal {
    /// Unreadable (not a plist, bad signature wrapper, not a Configuration profile).
    Malformed(String),
    /// A required field is missing.
    MissingField { profile: String, field: String },
    /// A field has a wrong type or value.
    InvalidField { profile: String, field: String },
    /// A profile with the same identifier was installed by someone else.
    NotOwned { profile: String },
    /// A SCEP payload could not get its certificate.
    Scep { profile: String, reason: String },
}

impl Refusal {
    fn chain(&self) -> Vec<ErrorChainItem> {
        let top = chain_item(INSTALLATION_DOMAIN, 4000, "Invalid Profile");
        match self {
            Refusal::Malformed(reason) => vec![
                top,
                chain_item(
                    PROFILE_DOMAIN,
                    1000,
                    format!("The profile is malformed. ({reason})"),
                ),
            ],
            Refusal::MissingField { profile, field } => vec![
                top,
                chain_item(
                    PROFILE_DOMAIN,
                    1000,
                    format!("The profile \u{201c}{profile}\u{201d} is invalid."),
                ),
                chain_item(
                    PROFILE_DOMAIN,
                    1002,
                    format!("The required field \u{201c}{field}\u{201d} is missing."),
                ),
            ],
            Refusal::InvalidField { profile, field } => vec![
                top,
                chain_item(
                    PROFILE_DOMAIN,
                    1000,
                    format!("The profile \u{201c}{profile}\u{201d} is invalid."),
                ),
                chain_item(
                    PROFILE_DOMAIN,
                    1003,
                    format!("The field \u{201c}{field}\u{201d} is invalid."),
                ),
            ],
            Refusal::NotOwned { profile } => vec![chain_item(
                INSTALLATION_DOMAIN,
                4001,
                format!(
                    "The profile \u{201c}{profile}\u{201d} is already installed and was not \
                     installed by this MDM server."
                ),
            )],
            Refusal::Scep { profile, reason } => vec![
                chain_item(INSTALLATION_DOMAIN, 4001, "Profile Installation Failed"),
                chain_item(
                    INSTALLATION_DOMAIN,
                    4000,
                    format!(
                        "The SCEP server of profile \u{201c}{profile}\u{201d} did not issue a \
                         certificate: {reason}"
                    ),
                ),
            ],
        }
    }
}

/// Unwraps a signed profile (CMS; the signature is not checked, as iOS accepts unverified
/// signers for MDM-installed profiles) and parses it.
fn read_profile(bytes: &[u8]) -> Result<Profile, Refusal> {
    let limits = Limits::default();
    match Profile::parse(bytes, &limits) {
        Ok(p) => Ok(p),
        Err(ProfileError::Signed) => {
            let inner = unwrap_signed(bytes).map_err(Refusal::Malformed)?;
            Profile::parse(&inner, &limits).map_err(|e| refusal_of(&e))
        }
        Err(e) => Err(refusal_of(&e)),
    }
}

fn refusal_of(e: &ProfileError) -> Refusal {
    match e {
        ProfileError::Field(baton_proto::FieldError::Missing { key }) => Refusal::MissingField {
            profile: "profile".into(),
            field: key.clone(),
        },
        ProfileError::Field(other) => Refusal::InvalidField {
            profile: "profile".into(),
            field: other.to_string(),
        },
        other => Refusal::Malformed(other.to_string()),
    }
}

fn unwrap_signed(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let p7 = Pkcs7::from_der(bytes).map_err(|e| format!("not CMS: {e}"))?;
    let certs = Stack::<X509>::new().map_err(|e| e.to_string())?;
    let store = X509StoreBuilder::new().map_err(|e| e.to_string())?.build();
    let mut out = Vec::new();
    p7.verify(
        &certs,
        &store,
        None,
        Some(&mut out),
        Pkcs7Flags::NOVERIFY | Pkcs7Flags::NOSIGS,
    )
    .map_err(|e| format!("unreadable signed profile: {e}"))?;
    Ok(out)
}

fn data_field<'p>(profile: &str, p: &'p Payload, key: &str) -> Result<&'p [u8], Refusal> {
    match p.content.get(key) {
        None => Err(Refusal::MissingField {
            profile: profile.into(),
            field: key.into(),
        }),
        Some(Value::Data(d)) => Ok(d),
        Some(_) => Err(Refusal::InvalidField {
            profile: profile.into(),
            field: key.into(),
        }),
    }
}

fn string_field<'p>(profile: &str, p: &'p Payload, key: &str) -> Result<&'p str, Refusal> {
    match p.content.get(key) {
        None => Err(Refusal::MissingField {
            profile: profile.into(),
            field: key.into(),
        }),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Refusal::InvalidField {
            profile: profile.into(),
            field: key.into(),
        }),
    }
}

/// What installing a profile adds besides the profile itself.
#[derive(Default)]
struct Installed {
    certificates: Vec<InstalledCertificate>,
    web_clips: Vec<WebClip>,
}

fn certificate(
    profile: &Profile,
    p: &Payload,
    cert: &openssl::x509::X509Ref,
    is_identity: bool,
) -> Result<InstalledCertificate, Refusal> {
    let der = cert
        .to_der()
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    Ok(InstalledCertificate {
        common_name: common_name(cert).unwrap_or_default(),
        is_identity,
        der_hex: hex::encode(der),
        profile_identifier: profile.identifier.clone(),
        payload_identifier: p.identifier.clone(),
    })
}

fn install_payloads(ctx: &ChannelContext<'_>, profile: &Profile) -> Result<Installed, Refusal> {
    let name = profile
        .display_name
        .clone()
        .unwrap_or_else(|| profile.identifier.clone());
    let mut out = Installed::default();
    for p in &profile.payloads {
        match p.payload_type.as_str() {
            "com.apple.webClip.managed" => {
                let url = string_field(&name, p, "URL")?;
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(Refusal::InvalidField {
                        profile: name,
                        field: "URL".into(),
                    });
                }
                let label = string_field(&name, p, "Label")?;
                out.web_clips.push(WebClip {
                    label: label.to_owned(),
                    url: url.to_owned(),
                    is_removable: p
                        .content
                        .get("IsRemovable")
                        .and_then(Value::as_boolean)
                        .unwrap_or(true),
                    profile_identifier: profile.identifier.clone(),
                    payload_identifier: p.identifier.clone(),
                });
            }
            "com.apple.security.pkcs12" => {
                let der = data_field(&name, p, "PayloadContent")?;
                let password = p
                    .content
                    .get("Password")
                    .and_then(Value::as_string)
                    .unwrap_or("");
                let parsed = Pkcs12::from_der(der)
                    .and_then(|p12| p12.parse2(password))
                    .map_err(|_| Refusal::InvalidField {
                        profile: name.clone(),
                        field: "PayloadContent".into(),
                    })?;
                let cert = parsed.cert.ok_or_else(|| Refusal::InvalidField {
                    profile: name.clone(),
                    field: "PayloadContent".into(),
                })?;
                out.certificates
                    .push(certificate(profile, p, &cert, parsed.pkey.is_some())?);
            }
            "com.apple.security.root" | "com.apple.security.pkcs1" | "com.apple.security.pem" => {
                let bytes = data_field(&name, p, "PayloadContent")?;
                let cert = X509::from_der(bytes)
                    .or_else(|_| X509::from_pem(bytes))
                    .map_err(|_| Refusal::InvalidField {
                        profile: name.clone(),
                        field: "PayloadContent".into(),
                    })?;
                out.certificates
                    .push(certificate(profile, p, &cert, false)?);
            }
            "com.apple.security.scep" => {
                if p.content
                    .get("PayloadContent")
                    .and_then(Value::as_dictionary)
                    .and_then(|d| d.get("URL"))
                    .and_then(Value::as_string)
                    .is_none()
                {
                    return Err(Refusal::MissingField {
                        profile: name,
                        field: "URL".into(),
                    });
                }
                let der = match ctx.scep_results.get(&p.uuid) {
                    Some(Ok(der)) => der,
                    Some(Err(reason)) => {
                        return Err(Refusal::Scep {
                            profile: name,
                            reason: reason.clone(),
                        });
                    }
                    None => {
                        return Err(Refusal::Scep {
                            profile: name,
                            reason: "not attempted".into(),
                        });
                    }
                };
                let cert = X509::from_der(der).map_err(|e| Refusal::Scep {
                    profile: name.clone(),
                    reason: e.to_string(),
                })?;
                out.certificates.push(certificate(profile, p, &cert, true)?);
            }
            // Other payload types (restrictions, Wi-Fi, VPN...) are accepted as they are.
            _ => {}
        }
    }
    Ok(out)
}

fn install_profile(ctx: &mut ChannelContext<'_>, payload: &[u8]) -> CommandAnswer {
    let profile = match read_profile(payload) {
        Ok(p) => p,
        Err(refusal) => return CommandAnswer::error(refusal.chain()),
    };
    if let Some(chain) = crate::channel_scope::refuse_payloads(ctx, &profile) {
        return CommandAnswer::error(chain);
    }
    if let Some(existing) = ctx.inventory.profile(&profile.identifier)
        && !existing.managed
    {
        return CommandAnswer::error(
            Refusal::NotOwned {
                profile: profile.identifier.clone(),
            }
            .chain(),
        );
    }
    if let Some(enrollment) = ctx
        .enrollment_profile
        .filter(|e| e.identifier == profile.identifier)
    {
        return replace_mdm_profile(ctx, enrollment, &profile);
    }
    let installed = match install_payloads(ctx, &profile) {
        Ok(i) => i,
        Err(refusal) => return CommandAnswer::error(refusal.chain()),
    };
    // Same PayloadIdentifier: the new profile replaces the old one.
    ctx.inventory.remove_profile(&profile.identifier);
    ctx.inventory
        .profiles
        .push(installed_profile(&profile, true));
    ctx.inventory.certificates.extend(installed.certificates);
    ctx.inventory.web_clips.extend(installed.web_clips);
    CommandAnswer::ack()
}

/// InstallProfile with the MDM profile's identifier. iOS replaces the MDM profile, and the
/// identity with it, when the replacement keeps the invariant fields and does not add access
/// rights; else `MCMDMErrorDomain` 12012, or `MCInstallationErrorDomain` 4015 without an MDM
/// payload [I `_validateMDMReplacementNewProfile:`; M903]. The answer is Acknowledged once the
/// identity payload produced a certificate (SCEP ran before, see [`scep_payloads`]); the device
/// ([`crate::SimDevice`]) then switches to the new identity. The inventory is not touched: the
/// MDM profile's payloads are not part of it. With [`MdmProfileCommands::Refuse`] (the old
/// simulator), refused as a profile not installed by this MDM.
fn replace_mdm_profile(
    ctx: &ChannelContext<'_>,
    installed: &InstalledProfile,
    profile: &Profile,
) -> CommandAnswer {
    let refuse = || {
        CommandAnswer::error(
            Refusal::NotOwned {
                profile: profile.identifier.clone(),
            }
            .chain(),
        )
    };
    if ctx.options.mdm_profile_commands == MdmProfileCommands::Refuse || ctx.user_channel {
        return refuse();
    }
    let Some(terms) = &installed.mdm else {
        // Not an MDM profile the device knows the terms of: nothing to compare with.
        return refuse();
    };
    if let Err(refusal) = crate::mdm_profile::check_replacement(terms, profile) {
        return CommandAnswer::error(refusal.chain());
    }
    match install_payloads(ctx, profile) {
        Ok(_) => CommandAnswer::ack(),
        Err(refusal) => CommandAnswer::error(refusal.chain()),
    }
}

/// True when `command` is an InstallProfile replacing the MDM profile `enrollment` that iOS
/// refuses on its invariant fields (12012, 4015) before installing any payload: the device then
/// runs none of its SCEP payloads.
pub fn refuses_mdm_replacement(
    enrollment: Option<&InstalledProfile>,
    options: &SimOptions,
    command: &Command,
) -> bool {
    let CommandRequest::InstallProfile { payload } = &command.request else {
        return false;
    };
    let (Some(installed), MdmProfileCommands::Ios) = (enrollment, options.mdm_profile_commands)
    else {
        return false;
    };
    let (Some(terms), Ok(profile)) = (&installed.mdm, read_profile(payload)) else {
        return false;
    };
    profile.identifier == installed.identifier
        && crate::mdm_profile::check_replacement(terms, &profile).is_err()
}

/// The inventory record of a parsed profile.
pub fn installed_profile(profile: &Profile, managed: bool) -> InstalledProfile {
    InstalledProfile {
        identifier: profile.identifier.clone(),
        uuid: profile.uuid.clone(),
        version: profile.version,
        display_name: profile.display_name.clone(),
        description: profile.description.clone(),
        organization: profile.organization.clone(),
        removal_disallowed: profile.removal_disallowed.unwrap_or(false),
        managed,
        payloads: profile
            .payloads
            .iter()
            .map(|p| InstalledPayload {
                payload_type: p.payload_type.clone(),
                identifier: p.identifier.clone(),
                uuid: p.uuid.clone(),
                version: p.version,
                display_name: p.display_name.clone(),
            })
            .collect(),
        mdm: crate::mdm_profile::mdm_terms(profile),
    }
}

/// Code for RemoveProfile of a profile that is installed but not by this MDM, on an unsupervised
/// device [P `_removeProfileWithIdentifier:…`].
pub const PROFILE_NOT_OWNED: i64 = 12013;
/// Code for RemoveProfile of a profile that is not installed [P; captured from an iPhone].
pub const PROFILE_NOT_INSTALLED: i64 = 12075;

/// True when `request` is a RemoveProfile the device answers Acknowledged and then unenrolls
/// for: its MDM profile, on the device channel, with [`MdmProfileCommands::Ios`]
/// [P `processRequest:`, managing-profile branch].
pub fn removes_mdm_profile(ctx: &ChannelContext<'_>, identifier: &str) -> bool {
    ctx.options.mdm_profile_commands == MdmProfileCommands::Ios
        && !ctx.user_channel
        && ctx
            .enrollment_profile
            .is_some_and(|e| e.identifier == identifier)
}

fn remove_profile(ctx: &mut ChannelContext<'_>, identifier: &str) -> CommandAnswer {
    let lenient = ctx.options.refusal_codes == RefusalCodes::Lenient;
    let not_owned = |code: i64| {
        CommandAnswer::error(vec![chain_item(
            MDM_DOMAIN,
            code,
            format!(
                "The profile \u{201c}{identifier}\u{201d} was not installed by MDM and cannot \
                 be removed with RemoveProfile."
            ),
        )])
    };
    if let Some(&code) = ctx.options.refuse_removals.get(identifier) {
        return CommandAnswer::error(vec![chain_item(
            MDM_DOMAIN,
            code,
            format!("The profile \u{201c}{identifier}\u{201d} could not be removed."),
        )]);
    }
    if removes_mdm_profile(ctx, identifier) {
        // Acknowledged; the device unenrolls after sending the report.
        return CommandAnswer::ack();
    }
    match ctx.inventory.profile(identifier) {
        None => {
            if ctx
                .enrollment_profile
                .is_some_and(|e| e.identifier == identifier)
            {
                return not_owned(PROFILE_NOT_INSTALLED);
            }
            CommandAnswer::error(vec![chain_item(
                MDM_DOMAIN,
                PROFILE_NOT_INSTALLED,
                format!("The profile \u{201c}{identifier}\u{201d} is not installed."),
            )])
        }
        Some(p) if !p.managed && lenient => not_owned(PROFILE_NOT_INSTALLED),
        // Unsupervised: only what this MDM installed; supervised: any profile [P].
        Some(p) if !p.managed && !ctx.options.is_supervised() => not_owned(PROFILE_NOT_OWNED),
        Some(_) => {
            ctx.inventory.remove_profile(identifier);
            CommandAnswer::ack()
        }
    }
}

fn profile_item(p: &InstalledProfile) -> Value {
    let mut d = Dictionary::new();
    d.insert(
        "PayloadIdentifier".into(),
        Value::String(p.identifier.clone()),
    );
    d.insert("PayloadUUID".into(), Value::String(p.uuid.clone()));
    d.insert("PayloadVersion".into(), Value::Integer(p.version.into()));
    if let Some(n) = &p.display_name {
        d.insert("PayloadDisplayName".into(), Value::String(n.clone()));
    }
    if let Some(n) = &p.description {
        d.insert("PayloadDescription".into(), Value::String(n.clone()));
    }
    if let Some(n) = &p.organization {
        d.insert("PayloadOrganization".into(), Value::String(n.clone()));
    }
    d.insert(
        "PayloadRemovalDisallowed".into(),
        Value::Boolean(p.removal_disallowed),
    );
    d.insert("HasRemovalPasscode".into(), Value::Boolean(false));
    d.insert("IsEncrypted".into(), Value::Boolean(false));
    d.insert("IsManaged".into(), Value::Boolean(p.managed));
    let payloads = p
        .payloads
        .iter()
        .map(|pl| {
            let mut s = Dictionary::new();
            s.insert("PayloadType".into(), Value::String(pl.payload_type.clone()));
            s.insert(
                "PayloadIdentifier".into(),
                Value::String(pl.identifier.clone()),
            );
            s.insert("PayloadUUID".into(), Value::String(pl.uuid.clone()));
            s.insert("PayloadVersion".into(), Value::Integer(pl.version.into()));
            if let Some(n) = &pl.display_name {
                s.insert("PayloadDisplayName".into(), Value::String(n.clone()));
            }
            Value::Dictionary(s)
        })
        .collect();
    d.insert("PayloadContent".into(), Value::Array(payloads));
    Value::Dictionary(d)
}

fn profile_list(ctx: &ChannelContext<'_>) -> CommandAnswer {
    let mut items: Vec<Value> = Vec::new();
    if !ctx.user_channel
        && let Some(e) = ctx.enrollment_profile
    {
        items.push(profile_item(e));
    }
    items.extend(ctx.inventory.profiles.iter().map(profile_item));
    let mut response = Dictionary::new();
    response.insert("ProfileList".into(), Value::Array(items));
    CommandAnswer::ack_with(response)
}

// ---- apps: see `ios_apps` ----

// ---- certificates, device facts ----

fn certificate_list(ctx: &ChannelContext<'_>) -> CommandAnswer {
    let mut items = Vec::new();
    if !ctx.user_channel {
        let mut d = Dictionary::new();
        let cn = X509::from_der(ctx.identity_cert_der)
            .ok()
            .and_then(|c| common_name(&c))
            .unwrap_or_default();
        d.insert("CommonName".into(), Value::String(cn));
        d.insert("IsIdentity".into(), Value::Boolean(true));
        d.insert("Data".into(), Value::Data(ctx.identity_cert_der.to_vec()));
        items.push(Value::Dictionary(d));
    }
    for c in &ctx.inventory.certificates {
        let mut d = Dictionary::new();
        d.insert("CommonName".into(), Value::String(c.common_name.clone()));
        d.insert("IsIdentity".into(), Value::Boolean(c.is_identity));
        d.insert(
            "Data".into(),
            Value::Data(hex::decode(&c.der_hex).unwrap_or_default()),
        );
        items.push(Value::Dictionary(d));
    }
    let mut response = Dictionary::new();
    response.insert("CertificateList".into(), Value::Array(items));
    CommandAnswer::ack_with(response)
}

fn device_information(ctx: &ChannelContext<'_>, queries: &[String]) -> CommandAnswer {
    let f = ctx.facts;
    let shared = ctx.options.shared_ipad;
    let mut answers = Dictionary::new();
    for q in queries {
        let value = match q.as_str() {
            "UDID" => Value::String(f.udid.clone()),
            "DeviceName" => Value::String(f.device_name.clone()),
            "OSVersion" => Value::String(f.os_version.clone()),
            "BuildVersion" => Value::String(f.build_version.clone()),
            "ModelName" => Value::String(f.model_name.clone()),
            "Model" => Value::String(f.model.clone()),
            "ProductName" => Value::String(f.product_name.clone()),
            "SerialNumber" => Value::String(f.serial_number.clone()),
            "IsSupervised" => Value::Boolean(crate::channel_scope::supervised(ctx)),
            "IsMultiUser" => Value::Boolean(shared),
            "AwaitingConfiguration" => Value::Boolean(false),
            "DeviceCapacity" => Value::Real(64.0),
            "AvailableDeviceCapacity" => Value::Real(41.5),
            "IsActivationLockEnabled"
            | "IsDeviceLocatorServiceEnabled"
            | "IsCloudBackupEnabled" => Value::Boolean(false),
            "BatteryLevel" => Value::Real(0.87),
            // iOS leaves out queries it does not know or that do not apply.
            _ => continue,
        };
        answers.insert(q.clone(), value);
    }
    let mut response = Dictionary::new();
    response.insert("QueryResponses".into(), Value::Dictionary(answers));
    CommandAnswer::ack_with(response)
}

fn security_info() -> CommandAnswer {
    let mut status = Dictionary::new();
    status.insert("EnrolledViaDEP".into(), Value::Boolean(false));
    status.insert("UserApprovedEnrollment".into(), Value::Boolean(true));
    status.insert("IsUserEnrollment".into(), Value::Boolean(false));
    let mut s = Dictionary::new();
    s.insert("HardwareEncryptionCaps".into(), Value::Integer(3.into()));
    s.insert("PasscodePresent".into(), Value::Boolean(true));
    s.insert("PasscodeCompliant".into(), Value::Boolean(true));
    s.insert("PasscodeCompliantWithProfiles".into(), Value::Boolean(true));
    s.insert(
        "PasscodeLockGracePeriodEnforced".into(),
        Value::Integer(0.into()),
    );
    s.insert("ManagementStatus".into(), Value::Dictionary(status));
    let mut response = Dictionary::new();
    response.insert("SecurityInfo".into(), Value::Dictionary(s));
    CommandAnswer::ack_with(response)
}

// ---- Shared iPad ----

fn shared_only(
    ctx: &mut ChannelContext<'_>,
    f: impl FnOnce(&mut ChannelContext<'_>) -> CommandAnswer,
) -> CommandAnswer {
    if !ctx.options.shared_ipad || ctx.user_channel {
        return CommandAnswer::error(vec![chain_item(
            MCMDM_DOMAIN,
            SIM_CHOSEN_NOT_SUPPORTED,
            "This command is supported only on the device channel of a Shared iPad.",
        )]);
    }
    f(ctx)
}

fn log_out_user(ctx: &mut ChannelContext<'_>) -> CommandAnswer {
    for u in ctx.users.iter_mut() {
        u.logged_in = false;
    }
    CommandAnswer::ack()
}

fn user_list(ctx: &mut ChannelContext<'_>) -> CommandAnswer {
    let users = ctx
        .users
        .iter()
        .map(|u| {
            let mut d = Dictionary::new();
            d.insert("UserName".into(), Value::String(u.short_name.clone()));
            // `FullName` is macOS only in Apple's schema [Y user.list]; kept by the lenient
            // simulator.
            if ctx.options.user_list_full_name {
                d.insert("FullName".into(), Value::String(u.short_name.clone()));
            }
            d.insert("IsLoggedIn".into(), Value::Boolean(u.logged_in));
            d.insert("HasDataToSync".into(), Value::Boolean(u.has_data_to_sync));
            d.insert("DataQuota".into(), Value::Integer(8_589_934_592u64.into()));
            d.insert("DataUsed".into(), Value::Integer(104_857_600u64.into()));
            Value::Dictionary(d)
        })
        .collect();
    let mut response = Dictionary::new();
    response.insert("Users".into(), Value::Array(users));
    CommandAnswer::ack_with(response)
}

/// DeleteUser codes [P `_deleteUser:`, `_deleteAllUsersWithForceDeletion:`].
pub mod delete_user_codes {
    /// The user does not exist on the device.
    pub const UNKNOWN_USER: i64 = 12071;
    /// The user is logged in.
    pub const LOGGED_IN: i64 = 12072;
    /// The user has data to sync and `ForceDeletion` was not set.
    pub const DATA_TO_SYNC: i64 = 12073;
    /// The deletion failed (DeleteAllUsers: some user could not be deleted).
    pub const FAILED: i64 = 12074;
}

fn delete_user(
    ctx: &mut ChannelContext<'_>,
    user_name: Option<&str>,
    all: bool,
    force: bool,
) -> CommandAnswer {
    use delete_user_codes::*;
    if ctx.options.refusal_codes == RefusalCodes::Lenient {
        return delete_user_lenient(ctx, user_name, all);
    }
    // Domain: MDMErrorDomain as on iOS 26 (UNCONFIRMED for these codes).
    let refuse =
        |code: i64, text: String| CommandAnswer::error(vec![chain_item(MDM_DOMAIN, code, text)]);
    let deletable = |u: &SharedUser| !u.logged_in && (force || !u.has_data_to_sync);
    if all {
        let before = ctx.users.len();
        ctx.users.retain(|u| !deletable(u));
        let kept: Vec<String> = ctx.users.iter().map(|u| u.short_name.clone()).collect();
        if kept.is_empty() {
            return CommandAnswer::ack();
        }
        return refuse(
            FAILED,
            format!(
                "{} of {before} users could not be deleted: {}",
                kept.len(),
                kept.join(", ")
            ),
        );
    }
    let Some(name) = user_name else {
        return CommandAnswer::status(Status::CommandFormatError);
    };
    match ctx.users.iter().position(|u| u.short_name == name) {
        None => refuse(
            UNKNOWN_USER,
            format!("The user \u{201c}{name}\u{201d} does not exist on this device."),
        ),
        Some(i) if ctx.users[i].logged_in => refuse(
            LOGGED_IN,
            format!("The user \u{201c}{name}\u{201d} is logged in and cannot be deleted."),
        ),
        Some(i) if ctx.users[i].has_data_to_sync && !force => refuse(
            DATA_TO_SYNC,
            format!("The user \u{201c}{name}\u{201d} has data that has not been synced."),
        ),
        Some(i) => {
            ctx.users.remove(i);
            CommandAnswer::ack()
        }
    }
}

/// The old simulator's DeleteUser: 12070 for unknown and logged-in users, data to sync
/// ignored, DeleteAllUsers acknowledged while the logged-in user stays.
fn delete_user_lenient(
    ctx: &mut ChannelContext<'_>,
    user_name: Option<&str>,
    all: bool,
) -> CommandAnswer {
    if all {
        ctx.users.retain(|u| u.logged_in);
        return CommandAnswer::ack();
    }
    let Some(name) = user_name else {
        return answer_undecodable(Some("DeleteUser"), "UserName or DeleteAllUsers is required");
    };
    match ctx.users.iter().position(|u| u.short_name == name) {
        None => CommandAnswer::error(vec![chain_item(
            MCMDM_DOMAIN,
            SIM_CHOSEN_NOT_SUPPORTED,
            format!("The user \u{201c}{name}\u{201d} does not exist on this device."),
        )]),
        Some(i) if ctx.users[i].logged_in => CommandAnswer::error(vec![chain_item(
            MCMDM_DOMAIN,
            SIM_CHOSEN_NOT_SUPPORTED,
            format!("The user \u{201c}{name}\u{201d} is logged in and cannot be deleted."),
        )]),
        Some(i) => {
            ctx.users.remove(i);
            CommandAnswer::ack()
        }
    }
}

/// Parses a (possibly signed) profile, with the refusal as text.
pub(crate) fn parse_profile(bytes: &[u8]) -> Result<Profile, String> {
    read_profile(bytes).map_err(|r| {
        r.chain()
            .last()
            .and_then(|i| i.localized_description.clone())
            .unwrap_or_else(|| "invalid profile".into())
    })
}

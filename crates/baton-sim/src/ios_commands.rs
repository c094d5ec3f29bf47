//! How a simulated device answers commands, the way iOS does: the pure part (no IO).
//!
//! [`answer`] takes a decoded command and the channel's state and returns the report's status,
//! ErrorChain and response keys, mutating the inventory. Refusals follow iOS: a malformed
//! profile is refused with `MCInstallationErrorDomain` 4000 over `MCProfileErrorDomain`
//! 1000/1002/1003, a RemoveProfile of a profile that is not installed with `MDMErrorDomain`
//! 12075 (captured from an iPhone). Where no device capture was available the code is the
//! simulator's own choice and marked so (`SIM_CHOSEN_*`): tests should check the domain and
//! status, not those numbers.
//!
//! SCEP payloads inside InstallProfile need network IO; the device runs them first
//! ([`scep_payloads`]) and passes the outcomes in [`ChannelContext::scep_results`].

use std::collections::BTreeMap;

use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, Command, CommandRequest, ErrorChainItem, InstallApplication, Limits, Payload,
    Profile, ProfileError, Status,
};
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkcs12::Pkcs12;
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
use serde::{Deserialize, Serialize};

use crate::behaviour::{AppInstallTiming, DEFERRED_WHILE_LOCKED, NotNowPolicy, SimOptions};
use crate::identity::common_name;
use crate::inventory::{
    AppStatus, InstalledCertificate, InstalledPayload, InstalledProfile, Inventory, ManagedApp,
    WebClip,
};

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
    /// Locked before first unlock.
    pub locked: bool,
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
    Command::from_dictionary(dict).map_err(|e| {
        let request_type = dict
            .get("Command")
            .and_then(Value::as_dictionary)
            .and_then(|c| c.get("RequestType"))
            .and_then(Value::as_string);
        answer_undecodable(request_type, &e.to_string())
    })
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
        CommandRequest::InstallApplication(app) => install_application(ctx, app),
        CommandRequest::RemoveApplication { identifier } => remove_application(ctx, identifier),
        CommandRequest::InstalledApplicationList { identifiers, .. } => {
            installed_application_list(ctx, identifiers.as_deref())
        }
        CommandRequest::ManagedApplicationList { identifiers } => {
            managed_application_list(ctx, identifiers.as_deref())
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
            ..
        } => {
            let user_name = user_name.clone();
            let all = delete_all_users.unwrap_or(false);
            shared_only(ctx, |ctx| delete_user(ctx, user_name.as_deref(), all))
        }
        CommandRequest::DeviceConfigured | CommandRequest::UserConfigured => CommandAnswer::ack(),
        CommandRequest::Raw { request_type, .. } => match request_type.as_str() {
            "RestartDevice"
            | "ShutDownDevice"
            | "DeviceLock"
            | "ClearPasscode"
            | "RequestMirroring"
            | "StopMirroring"
            | "ClearRestrictionsPassword" => CommandAnswer::ack(),
            _ => CommandAnswer::status(Status::CommandFormatError),
        },
        _ => CommandAnswer::status(Status::CommandFormatError),
    }
}

fn defers(ctx: &ChannelContext<'_>, request_type: &str) -> bool {
    match &ctx.options.not_now {
        NotNowPolicy::Never => false,
        NotNowPolicy::LockedUntilFirstUnlock => {
            ctx.locked && DEFERRED_WHILE_LOCKED.contains(&request_type)
        }
        NotNowPolicy::RequestTypes { request_types } => request_types.contains(request_type),
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
    if ctx
        .enrollment_profile
        .is_some_and(|e| e.identifier == profile.identifier)
    {
        return CommandAnswer::error(
            Refusal::NotOwned {
                profile: profile.identifier.clone(),
            }
            .chain(),
        );
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
    }
}

fn remove_profile(ctx: &mut ChannelContext<'_>, identifier: &str) -> CommandAnswer {
    let not_installed = || {
        CommandAnswer::error(vec![chain_item(
            MDM_DOMAIN,
            12075,
            format!("The profile \u{201c}{identifier}\u{201d} is not installed."),
        )])
    };
    match ctx.inventory.profile(identifier) {
        None => {
            if ctx
                .enrollment_profile
                .is_some_and(|e| e.identifier == identifier)
            {
                return CommandAnswer::error(vec![chain_item(
                    MDM_DOMAIN,
                    12075,
                    format!(
                        "The profile \u{201c}{identifier}\u{201d} was not installed by MDM and \
                         cannot be removed with RemoveProfile."
                    ),
                )]);
            }
            not_installed()
        }
        Some(p) if !p.managed => CommandAnswer::error(vec![chain_item(
            MDM_DOMAIN,
            12075,
            format!(
                "The profile \u{201c}{identifier}\u{201d} was not installed by MDM and cannot \
                 be removed with RemoveProfile."
            ),
        )]),
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

// ---- apps ----

fn install_application(ctx: &mut ChannelContext<'_>, app: &InstallApplication) -> CommandAnswer {
    let (identifier, source) = match &app.source {
        AppSource::Identifier(id) => (id.clone(), id.clone()),
        AppSource::ITunesStoreId(n) => (
            ctx.options
                .app_store
                .get(&n.to_string())
                .cloned()
                .unwrap_or_else(|| format!("store.app{n}")),
            format!("iTunesStoreID {n}"),
        ),
        AppSource::ManifestUrl(url) => {
            let stem = url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".plist");
            (format!("enterprise.{stem}"), url.clone())
        }
        _ => {
            return answer_undecodable(Some("InstallApplication"), "unsupported app source");
        }
    };
    let status = match ctx.options.app_install {
        AppInstallTiming::Immediate => AppStatus::Managed,
        AppInstallTiming::NextSession => AppStatus::Installing,
    };
    let status = match ctx.inventory.apps.get(&identifier) {
        Some(existing) if existing.status == AppStatus::Managed => AppStatus::Managed,
        _ => status,
    };
    let name = identifier
        .rsplit('.')
        .next()
        .unwrap_or(&identifier)
        .to_owned();
    ctx.inventory.apps.insert(
        identifier.clone(),
        ManagedApp {
            identifier: identifier.clone(),
            name,
            version: "1.0".into(),
            status,
            management_flags: app.management_flags.unwrap_or(0),
            has_configuration: app.configuration.is_some(),
            source,
        },
    );
    let mut response = Dictionary::new();
    response.insert("Identifier".into(), Value::String(identifier));
    response.insert("State".into(), Value::String(status.as_str().into()));
    CommandAnswer::ack_with(response)
}

fn remove_application(ctx: &mut ChannelContext<'_>, identifier: &str) -> CommandAnswer {
    if ctx.inventory.apps.remove(identifier).is_some() {
        CommandAnswer::ack()
    } else {
        CommandAnswer::error(vec![chain_item(
            MCMDM_DOMAIN,
            SIM_CHOSEN_APP_NOT_MANAGED,
            format!("The app \u{201c}{identifier}\u{201d} is not managed."),
        )])
    }
}

fn wanted(filter: Option<&[String]>, id: &str) -> bool {
    filter.is_none_or(|ids| ids.iter().any(|i| i == id))
}

fn installed_application_list(
    ctx: &ChannelContext<'_>,
    filter: Option<&[String]>,
) -> CommandAnswer {
    let items = ctx
        .inventory
        .apps
        .values()
        .filter(|a| wanted(filter, &a.identifier))
        .map(|a| {
            let mut d = Dictionary::new();
            d.insert("Identifier".into(), Value::String(a.identifier.clone()));
            d.insert("Name".into(), Value::String(a.name.clone()));
            d.insert("Version".into(), Value::String(a.version.clone()));
            d.insert("ShortVersion".into(), Value::String(a.version.clone()));
            d.insert("BundleSize".into(), Value::Integer(10_485_760u64.into()));
            d.insert("DynamicSize".into(), Value::Integer(1_048_576u64.into()));
            d.insert(
                "Installing".into(),
                Value::Boolean(a.status != AppStatus::Managed),
            );
            d.insert("IsValidated".into(), Value::Boolean(true));
            d.insert("HasUpdateAvailable".into(), Value::Boolean(false));
            d.insert("IsAppClip".into(), Value::Boolean(false));
            Value::Dictionary(d)
        })
        .collect();
    let mut response = Dictionary::new();
    response.insert("InstalledApplicationList".into(), Value::Array(items));
    CommandAnswer::ack_with(response)
}

fn managed_application_list(ctx: &ChannelContext<'_>, filter: Option<&[String]>) -> CommandAnswer {
    let mut apps = Dictionary::new();
    for a in ctx
        .inventory
        .apps
        .values()
        .filter(|a| wanted(filter, &a.identifier))
    {
        let mut d = Dictionary::new();
        d.insert("Status".into(), Value::String(a.status.as_str().into()));
        d.insert(
            "ManagementFlags".into(),
            Value::Integer(a.management_flags.into()),
        );
        d.insert(
            "HasConfiguration".into(),
            Value::Boolean(a.has_configuration),
        );
        d.insert("HasFeedback".into(), Value::Boolean(false));
        d.insert("IsValidated".into(), Value::Boolean(true));
        apps.insert(a.identifier.clone(), Value::Dictionary(d));
    }
    let mut response = Dictionary::new();
    response.insert("ManagedApplicationList".into(), Value::Dictionary(apps));
    CommandAnswer::ack_with(response)
}

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

fn delete_user(ctx: &mut ChannelContext<'_>, user_name: Option<&str>, all: bool) -> CommandAnswer {
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

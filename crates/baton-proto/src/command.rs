//! Commands the server sends: typed values encoded to the exact plist a device expects,
//! `{CommandUUID, Command: {RequestType, ...}}`, and decoded back (for simulators and tests).

use plist::{Dictionary, Value};

use crate::field::{FieldError, Fields};
use crate::plist_read::{PlistError, read_dictionary};
use crate::plist_write::{DictionaryExt, EncodeError, string_array, to_xml};
use crate::{CommandUuid, Limits};

/// Why a command body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The body is not an acceptable plist dictionary.
    #[error(transparent)]
    Plist(#[from] PlistError),
    /// A key is missing, mistyped or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Where InstallApplication gets the app from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AppSource {
    /// `iTunesStoreID`: an App Store app.
    ITunesStoreId(i64),
    /// `ManifestURL`: an enterprise app's manifest (https).
    ManifestUrl(String),
    /// `Identifier`: an App Store app by bundle id (usually with VPP, PurchaseMethod 1).
    Identifier(String),
}

/// The keys of an InstallApplication command.
#[derive(Debug, Clone, PartialEq)]
pub struct InstallApplication {
    /// Which app.
    pub source: AppSource,
    /// `ManagementFlags`: 1 = remove with the MDM profile, 4 = prevent backup.
    pub management_flags: Option<i64>,
    /// `Configuration`: the managed app configuration.
    pub configuration: Option<Dictionary>,
    /// `Attributes`: per-app VPN UUID, associated domains...
    pub attributes: Option<Dictionary>,
    /// `Options.PurchaseMethod`: 0 = free/redemption code, 1 = VPP assignment.
    pub purchase_method: Option<i64>,
    /// `ChangeManagementState`: `Managed` takes over a user-installed app.
    pub change_management_state: Option<String>,
}

impl InstallApplication {
    /// Installs `source` with no other keys.
    pub fn new(source: AppSource) -> Self {
        Self {
            source,
            management_flags: None,
            configuration: None,
            attributes: None,
            purchase_method: None,
            change_management_state: None,
        }
    }
}

/// One entry of a Settings command: an `Item` name and that item's keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// `Item`: `DeviceName`, `ApplicationConfiguration`, `MaximumResidentUsers`...
    pub item: String,
    /// The other keys of the entry.
    pub keys: Dictionary,
}

impl Setting {
    /// A setting with only its `Item`.
    pub fn new(item: impl Into<String>) -> Self {
        Self {
            item: item.into(),
            keys: Dictionary::new(),
        }
    }

    /// Adds one key.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.keys.put(key, value);
        self
    }

    /// `DeviceName`: renames the device (supervised).
    pub fn device_name(name: impl Into<String>) -> Self {
        Self::new("DeviceName").with("DeviceName", name.into())
    }

    /// `ApplicationConfiguration`: replaces a managed app's configuration.
    pub fn application_configuration(
        identifier: impl Into<String>,
        configuration: Dictionary,
    ) -> Self {
        Self::new("ApplicationConfiguration")
            .with("Identifier", identifier.into())
            .with("Configuration", configuration)
    }

    /// `MaximumResidentUsers`: Shared iPad user slots.
    pub fn maximum_resident_users(count: i64) -> Self {
        Self::new("MaximumResidentUsers").with("MaximumResidentUsers", count)
    }

    fn to_value(&self) -> Value {
        let mut d = Dictionary::new();
        d.put("Item", self.item.as_str());
        d.put_extra(&self.keys);
        Value::Dictionary(d)
    }
}

/// The request of a command: its `RequestType` and that type's keys.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CommandRequest {
    /// `InstallProfile`: `Payload` is the (signed or unsigned) .mobileconfig bytes.
    InstallProfile {
        /// `Payload`.
        payload: Vec<u8>,
    },
    /// `RemoveProfile` by `Identifier` (the profile's PayloadIdentifier).
    RemoveProfile {
        /// `Identifier`.
        identifier: String,
    },
    /// `ProfileList`.
    ProfileList,
    /// `InstallApplication`.
    InstallApplication(InstallApplication),
    /// `RemoveApplication` by bundle `Identifier`.
    RemoveApplication {
        /// `Identifier`.
        identifier: String,
    },
    /// `InstalledApplicationList`.
    InstalledApplicationList {
        /// `Identifiers`: only these apps.
        identifiers: Option<Vec<String>>,
        /// `ManagedAppsOnly`.
        managed_apps_only: Option<bool>,
    },
    /// `ManagedApplicationList`.
    ManagedApplicationList {
        /// `Identifiers`: only these apps.
        identifiers: Option<Vec<String>>,
    },
    /// `CertificateList`.
    CertificateList {
        /// `ManagedOnly`.
        managed_only: Option<bool>,
    },
    /// `DeviceInformation` with its `Queries`.
    DeviceInformation {
        /// `Queries`: `UDID`, `DeviceName`, `OSVersion`, `IsMultiUser`...
        queries: Vec<String>,
    },
    /// `SecurityInfo`.
    SecurityInfo,
    /// `Settings`.
    Settings {
        /// `Settings`: one dictionary per item.
        settings: Vec<Setting>,
    },
    /// `LogOutUser` (Shared iPad).
    LogOutUser,
    /// `DeleteUser` (Shared iPad).
    DeleteUser {
        /// `UserName`: the Managed Apple Account.
        user_name: Option<String>,
        /// `ForceDeletion`: delete even with data left to sync.
        force_deletion: Option<bool>,
        /// `DeleteAllUsers`.
        delete_all_users: Option<bool>,
    },
    /// `UserList`.
    UserList,
    /// `DeviceConfigured`: releases a device awaiting configuration.
    DeviceConfigured,
    /// `UserConfigured`: releases a user channel awaiting configuration.
    UserConfigured,
    /// Any other `RequestType`, with its keys as given.
    Raw {
        /// `RequestType`.
        request_type: String,
        /// The other keys of the `Command` dictionary.
        keys: Dictionary,
    },
}

/// Every `RequestType` with a typed variant in [`CommandRequest`].
pub const TYPED_REQUEST_TYPES: &[&str] = &[
    "InstallProfile",
    "RemoveProfile",
    "ProfileList",
    "InstallApplication",
    "RemoveApplication",
    "InstalledApplicationList",
    "ManagedApplicationList",
    "CertificateList",
    "DeviceInformation",
    "SecurityInfo",
    "Settings",
    "LogOutUser",
    "DeleteUser",
    "UserList",
    "DeviceConfigured",
    "UserConfigured",
];

impl CommandRequest {
    /// The `RequestType`.
    pub fn request_type(&self) -> &str {
        match self {
            CommandRequest::InstallProfile { .. } => "InstallProfile",
            CommandRequest::RemoveProfile { .. } => "RemoveProfile",
            CommandRequest::ProfileList => "ProfileList",
            CommandRequest::InstallApplication(_) => "InstallApplication",
            CommandRequest::RemoveApplication { .. } => "RemoveApplication",
            CommandRequest::InstalledApplicationList { .. } => "InstalledApplicationList",
            CommandRequest::ManagedApplicationList { .. } => "ManagedApplicationList",
            CommandRequest::CertificateList { .. } => "CertificateList",
            CommandRequest::DeviceInformation { .. } => "DeviceInformation",
            CommandRequest::SecurityInfo => "SecurityInfo",
            CommandRequest::Settings { .. } => "Settings",
            CommandRequest::LogOutUser => "LogOutUser",
            CommandRequest::DeleteUser { .. } => "DeleteUser",
            CommandRequest::UserList => "UserList",
            CommandRequest::DeviceConfigured => "DeviceConfigured",
            CommandRequest::UserConfigured => "UserConfigured",
            CommandRequest::Raw { request_type, .. } => request_type,
        }
    }

    /// Writes this request's keys (not `RequestType`) into `d`.
    fn write(&self, d: &mut Dictionary) {
        match self {
            CommandRequest::InstallProfile { payload } => {
                d.put("Payload", Value::Data(payload.clone()));
            }
            CommandRequest::RemoveProfile { identifier }
            | CommandRequest::RemoveApplication { identifier } => {
                d.put("Identifier", identifier.as_str());
            }
            CommandRequest::InstallApplication(app) => {
                match &app.source {
                    AppSource::ITunesStoreId(id) => d.put("iTunesStoreID", *id),
                    AppSource::ManifestUrl(url) => d.put("ManifestURL", url.as_str()),
                    AppSource::Identifier(id) => d.put("Identifier", id.as_str()),
                }
                d.put_opt("ManagementFlags", app.management_flags);
                d.put_opt("Configuration", app.configuration.clone());
                d.put_opt("Attributes", app.attributes.clone());
                if let Some(method) = app.purchase_method {
                    let mut options = Dictionary::new();
                    options.put("PurchaseMethod", method);
                    d.put("Options", options);
                }
                d.put_opt("ChangeManagementState", app.change_management_state.clone());
            }
            CommandRequest::InstalledApplicationList {
                identifiers,
                managed_apps_only,
            } => {
                d.put_opt("Identifiers", identifiers.as_deref().map(string_array));
                d.put_opt("ManagedAppsOnly", *managed_apps_only);
            }
            CommandRequest::ManagedApplicationList { identifiers } => {
                d.put_opt("Identifiers", identifiers.as_deref().map(string_array));
            }
            CommandRequest::CertificateList { managed_only } => {
                d.put_opt("ManagedOnly", *managed_only);
            }
            CommandRequest::DeviceInformation { queries } => {
                d.put("Queries", string_array(queries));
            }
            CommandRequest::Settings { settings } => {
                d.put(
                    "Settings",
                    Value::Array(settings.iter().map(Setting::to_value).collect()),
                );
            }
            CommandRequest::DeleteUser {
                user_name,
                force_deletion,
                delete_all_users,
            } => {
                d.put_opt("UserName", user_name.clone());
                d.put_opt("ForceDeletion", *force_deletion);
                d.put_opt("DeleteAllUsers", *delete_all_users);
            }
            CommandRequest::Raw { keys, .. } => d.put_extra(keys),
            CommandRequest::ProfileList
            | CommandRequest::SecurityInfo
            | CommandRequest::LogOutUser
            | CommandRequest::UserList
            | CommandRequest::DeviceConfigured
            | CommandRequest::UserConfigured => {}
        }
    }

    /// Reads the request from the `Command` dictionary; returns it and the keys it used.
    fn read(f: &Fields<'_>) -> Result<(Self, &'static [&'static str]), FieldError> {
        let request_type = f.string("RequestType")?;
        Ok(match request_type.as_str() {
            "InstallProfile" => (
                CommandRequest::InstallProfile {
                    payload: f.data("Payload")?.to_vec(),
                },
                &["Payload"],
            ),
            "RemoveProfile" => (
                CommandRequest::RemoveProfile {
                    identifier: f.string("Identifier")?,
                },
                &["Identifier"],
            ),
            "ProfileList" => (CommandRequest::ProfileList, &[]),
            "InstallApplication" => (
                CommandRequest::InstallApplication(read_install_application(f)?),
                &[
                    "iTunesStoreID",
                    "ManifestURL",
                    "Identifier",
                    "ManagementFlags",
                    "Configuration",
                    "Attributes",
                    "Options",
                    "ChangeManagementState",
                ],
            ),
            "RemoveApplication" => (
                CommandRequest::RemoveApplication {
                    identifier: f.string("Identifier")?,
                },
                &["Identifier"],
            ),
            "InstalledApplicationList" => (
                CommandRequest::InstalledApplicationList {
                    identifiers: f.opt_string_array("Identifiers")?,
                    managed_apps_only: f.opt_bool("ManagedAppsOnly")?,
                },
                &["Identifiers", "ManagedAppsOnly"],
            ),
            "ManagedApplicationList" => (
                CommandRequest::ManagedApplicationList {
                    identifiers: f.opt_string_array("Identifiers")?,
                },
                &["Identifiers"],
            ),
            "CertificateList" => (
                CommandRequest::CertificateList {
                    managed_only: f.opt_bool("ManagedOnly")?,
                },
                &["ManagedOnly"],
            ),
            "DeviceInformation" => (
                CommandRequest::DeviceInformation {
                    queries: f
                        .opt_string_array("Queries")?
                        .ok_or_else(|| FieldError::Missing {
                            key: f.path_of("Queries"),
                        })?,
                },
                &["Queries"],
            ),
            "SecurityInfo" => (CommandRequest::SecurityInfo, &[]),
            "Settings" => (
                CommandRequest::Settings {
                    settings: read_settings(f)?,
                },
                &["Settings"],
            ),
            "LogOutUser" => (CommandRequest::LogOutUser, &[]),
            "DeleteUser" => (
                CommandRequest::DeleteUser {
                    user_name: f.opt_string("UserName")?,
                    force_deletion: f.opt_bool("ForceDeletion")?,
                    delete_all_users: f.opt_bool("DeleteAllUsers")?,
                },
                &["UserName", "ForceDeletion", "DeleteAllUsers"],
            ),
            "UserList" => (CommandRequest::UserList, &[]),
            "DeviceConfigured" => (CommandRequest::DeviceConfigured, &[]),
            "UserConfigured" => (CommandRequest::UserConfigured, &[]),
            _ => (
                CommandRequest::Raw {
                    keys: f.extra(&["RequestType"]),
                    request_type,
                },
                &[],
            ),
        })
    }
}

fn read_install_application(f: &Fields<'_>) -> Result<InstallApplication, FieldError> {
    let store_id = f.opt_i64("iTunesStoreID")?;
    let manifest = f.opt_string("ManifestURL")?;
    let identifier = f.opt_string("Identifier")?;
    let source = match (store_id, manifest, identifier) {
        (Some(id), None, None) => AppSource::ITunesStoreId(id),
        (None, Some(url), None) => AppSource::ManifestUrl(url),
        (None, None, Some(id)) => AppSource::Identifier(id),
        (None, None, None) => {
            return Err(FieldError::Missing {
                key: f.path_of("iTunesStoreID, ManifestURL or Identifier"),
            });
        }
        _ => {
            return Err(FieldError::InvalidValue {
                key: f.path_of("iTunesStoreID"),
                reason: "only one of iTunesStoreID, ManifestURL and Identifier may be set"
                    .to_owned(),
            });
        }
    };
    let purchase_method = match f.opt_dict("Options")? {
        None => None,
        Some(options) => {
            let path = f.path_of("Options");
            let o = Fields::at(options, &path);
            if let Some(other) = options.keys().find(|k| *k != "PurchaseMethod") {
                return Err(FieldError::InvalidValue {
                    key: o.path_of(other),
                    reason: "unknown InstallApplication option".to_owned(),
                });
            }
            o.opt_i64("PurchaseMethod")?
        }
    };
    Ok(InstallApplication {
        source,
        management_flags: f.opt_i64("ManagementFlags")?,
        configuration: f.opt_dict("Configuration")?.cloned(),
        attributes: f.opt_dict("Attributes")?.cloned(),
        purchase_method,
        change_management_state: f.opt_string("ChangeManagementState")?,
    })
}

fn read_settings(f: &Fields<'_>) -> Result<Vec<Setting>, FieldError> {
    let items = f
        .opt_dict_array("Settings")?
        .ok_or_else(|| FieldError::Missing {
            key: f.path_of("Settings"),
        })?;
    items
        .iter()
        .map(|(path, d)| {
            let s = Fields::at(d, path);
            Ok(Setting {
                item: s.string("Item")?,
                keys: s.extra(&["Item"]),
            })
        })
        .collect()
}

/// A command: its `CommandUUID` and request.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// `CommandUUID`.
    pub uuid: CommandUuid,
    /// The request (`Command` dictionary).
    pub request: CommandRequest,
    /// Keys of the `Command` dictionary the typed request does not model; written after the
    /// typed keys (never overriding them). Empty for commands Baton builds.
    pub extra: Dictionary,
}

impl Command {
    /// A command with no extra keys.
    pub fn new(uuid: CommandUuid, request: CommandRequest) -> Self {
        Self {
            uuid,
            request,
            extra: Dictionary::new(),
        }
    }

    /// The `RequestType`.
    pub fn request_type(&self) -> &str {
        self.request.request_type()
    }

    /// The command as the plist dictionary a device expects.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut inner = Dictionary::new();
        inner.put("RequestType", self.request_type());
        self.request.write(&mut inner);
        inner.put_extra(&self.extra);
        let mut d = Dictionary::new();
        d.put("CommandUUID", self.uuid.as_str());
        d.put("Command", inner);
        d
    }

    /// Encodes the command as the XML plist body of a command response.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        to_xml(&self.to_dictionary())
    }

    /// Decodes a command body under `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, CommandError> {
        Self::from_dictionary(&read_dictionary(bytes, limits)?)
    }

    /// Decodes an already parsed plist dictionary.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, CommandError> {
        let f = Fields::new(dict);
        let uuid = f.id("CommandUUID")?;
        let inner = f.dict("Command")?;
        let fields = Fields::at(inner, "Command");
        let (request, used) = CommandRequest::read(&fields)?;
        let mut known = vec!["RequestType"];
        known.extend_from_slice(used);
        let extra = match request {
            CommandRequest::Raw { .. } => Dictionary::new(),
            _ => fields.extra(&known),
        };
        Ok(Self {
            uuid,
            request,
            extra,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid() -> CommandUuid {
        CommandUuid::new("0C2B7E4A-5D1F-4B8E-9A3C-6F2D1E0B9A87").unwrap()
    }

    #[test]
    fn install_application_encodes_options_and_round_trips() {
        let mut app = InstallApplication::new(AppSource::ITunesStoreId(361_309_726));
        app.management_flags = Some(1);
        app.purchase_method = Some(1);
        app.change_management_state = Some("Managed".into());
        let cmd = Command::new(uuid(), CommandRequest::InstallApplication(app));
        let d = cmd.to_dictionary();
        let inner = d.get("Command").and_then(Value::as_dictionary).unwrap();
        assert_eq!(
            inner.get("RequestType").and_then(Value::as_string),
            Some("InstallApplication")
        );
        assert_eq!(
            inner
                .get("Options")
                .and_then(Value::as_dictionary)
                .and_then(|o| o.get("PurchaseMethod"))
                .and_then(Value::as_signed_integer),
            Some(1)
        );
        let back = Command::decode(&cmd.encode().unwrap(), &Limits::default()).unwrap();
        assert_eq!(back, cmd);
    }

    #[test]
    fn unknown_request_types_pass_through_raw() {
        let mut keys = Dictionary::new();
        keys.put("NotifyUser", true);
        let cmd = Command::new(
            uuid(),
            CommandRequest::Raw {
                request_type: "RestartDevice".into(),
                keys,
            },
        );
        let back = Command::decode(&cmd.encode().unwrap(), &Limits::default()).unwrap();
        assert_eq!(back.request_type(), "RestartDevice");
        assert_eq!(back, cmd);
    }

    #[test]
    fn conflicting_app_sources_are_rejected() {
        let mut inner = Dictionary::new();
        inner.put("RequestType", "InstallApplication");
        inner.put("iTunesStoreID", 1);
        inner.put("Identifier", "com.example.app");
        let mut d = Dictionary::new();
        d.put("CommandUUID", "x");
        d.put("Command", inner);
        assert!(matches!(
            Command::from_dictionary(&d),
            Err(CommandError::Field(FieldError::InvalidValue { .. }))
        ));
    }
}

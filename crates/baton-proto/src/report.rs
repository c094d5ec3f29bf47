//! Command reports: what a device PUTs to the server URL (Idle, or the result of a command).
//!
//! The command-specific part of a report is kept as a dictionary ([`CommandReport::response`]);
//! typed views over the responses Baton acts on live in [`crate::response`] and are reached through
//! the accessors on [`CommandReport`].

use std::fmt;

use plist::{Dictionary, Value};

use crate::enrollment::ENROLLMENT_KEYS;
use crate::field::{FieldError, Fields};
use crate::plist_read::{PlistError, read_dictionary};
use crate::plist_write::{DictionaryExt, EncodeError, to_xml};
use crate::response::{
    CertificateListItem, DeviceInformation, InstalledApplication, ManagedApplication,
    ProfileListItem, SecurityInfo, UserListItem,
};
use crate::{CommandUuid, Enrollment, EnrollmentId, ErrorChainItem, Limits, Status, UnknownStatus};

/// Why a command report could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The body is not an acceptable plist dictionary.
    #[error(transparent)]
    Plist(#[from] PlistError),
    /// A key is missing, mistyped or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `Status` holds a value this crate does not know.
    #[error(transparent)]
    UnknownStatus(#[from] UnknownStatus),
    /// A report other than Idle has no `CommandUUID`.
    #[error("{status} report without CommandUUID")]
    MissingCommandUuid {
        /// The report's status.
        status: Status,
    },
}

/// The command-specific responses this crate has typed views for, recognised by their key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResponseKind {
    /// `ProfileList` (answer to ProfileList).
    ProfileList,
    /// `InstalledApplicationList`.
    InstalledApplicationList,
    /// `ManagedApplicationList`.
    ManagedApplicationList,
    /// `CertificateList`.
    CertificateList,
    /// `QueryResponses` (answer to DeviceInformation).
    DeviceInformation,
    /// `SecurityInfo`.
    SecurityInfo,
    /// `Users` (answer to UserList).
    UserList,
}

impl ResponseKind {
    /// Every kind, in the order [`CommandReport::response_kind`] looks for them.
    pub const ALL: [ResponseKind; 7] = [
        ResponseKind::ProfileList,
        ResponseKind::InstalledApplicationList,
        ResponseKind::ManagedApplicationList,
        ResponseKind::CertificateList,
        ResponseKind::DeviceInformation,
        ResponseKind::SecurityInfo,
        ResponseKind::UserList,
    ];

    /// The report key that carries this response.
    pub fn key(self) -> &'static str {
        match self {
            ResponseKind::ProfileList => "ProfileList",
            ResponseKind::InstalledApplicationList => "InstalledApplicationList",
            ResponseKind::ManagedApplicationList => "ManagedApplicationList",
            ResponseKind::CertificateList => "CertificateList",
            ResponseKind::DeviceInformation => "QueryResponses",
            ResponseKind::SecurityInfo => "SecurityInfo",
            ResponseKind::UserList => "Users",
        }
    }

    /// The RequestType of the command this responds to.
    pub fn request_type(self) -> &'static str {
        match self {
            ResponseKind::ProfileList => "ProfileList",
            ResponseKind::InstalledApplicationList => "InstalledApplicationList",
            ResponseKind::ManagedApplicationList => "ManagedApplicationList",
            ResponseKind::CertificateList => "CertificateList",
            ResponseKind::DeviceInformation => "DeviceInformation",
            ResponseKind::SecurityInfo => "SecurityInfo",
            ResponseKind::UserList => "UserList",
        }
    }
}

impl fmt::Display for ResponseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.request_type())
    }
}

/// A decoded command report.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReport {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `Status`.
    pub status: Status,
    /// `CommandUUID` of the command answered; absent for Idle.
    pub command_uuid: Option<CommandUuid>,
    /// `ErrorChain`, when sent (Error and sometimes CommandFormatError).
    pub error_chain: Option<Vec<ErrorChainItem>>,
    /// Every other key: the command-specific response, `RequestType` when a device sends it,
    /// `NotOnConsole`, and so on.
    pub response: Dictionary,
}

const REPORT_KEYS: &[&str] = &["Status", "CommandUUID", "ErrorChain"];

fn read_error_chain(f: &Fields<'_>) -> Result<Option<Vec<ErrorChainItem>>, FieldError> {
    let Some(items) = f.opt_dict_array("ErrorChain")? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|(path, d)| {
            let item = Fields::at(d, path);
            Ok(ErrorChainItem {
                code: item
                    .opt_i64("ErrorCode")?
                    .ok_or_else(|| FieldError::Missing {
                        key: item.path_of("ErrorCode"),
                    })?,
                domain: item.string("ErrorDomain")?,
                localized_description: item.opt_string("LocalizedDescription")?,
                us_english_description: item.opt_string("USEnglishDescription")?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn write_error_chain(chain: &[ErrorChainItem]) -> Value {
    Value::Array(
        chain
            .iter()
            .map(|item| {
                let mut d = Dictionary::new();
                d.put("ErrorCode", item.code);
                d.put("ErrorDomain", item.domain.as_str());
                d.put_opt("LocalizedDescription", item.localized_description.clone());
                d.put_opt("USEnglishDescription", item.us_english_description.clone());
                Value::Dictionary(d)
            })
            .collect(),
    )
}

impl CommandReport {
    /// Decodes a report body under `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, ReportError> {
        Self::from_dictionary(&read_dictionary(bytes, limits)?)
    }

    /// Decodes an already parsed plist dictionary.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, ReportError> {
        let f = Fields::new(dict);
        let status: Status = f.string("Status")?.parse()?;
        let enrollment = Enrollment::read(&f)?;
        let command_uuid = f.opt_id("CommandUUID")?;
        if command_uuid.is_none() && status != Status::Idle {
            return Err(ReportError::MissingCommandUuid { status });
        }
        let mut known = REPORT_KEYS.to_vec();
        known.extend_from_slice(ENROLLMENT_KEYS);
        Ok(Self {
            enrollment,
            status,
            command_uuid,
            error_chain: read_error_chain(&f)?,
            response: f.extra(&known),
        })
    }

    /// A report for `command_uuid` with `status` and an empty response, for simulators.
    pub fn new(enrollment: Enrollment, status: Status, command_uuid: Option<CommandUuid>) -> Self {
        Self {
            enrollment,
            status,
            command_uuid,
            error_chain: None,
            response: Dictionary::new(),
        }
    }

    /// The normalised id of the channel that sent the report.
    pub fn enrollment_id(&self) -> &EnrollmentId {
        self.enrollment.id()
    }

    /// The id of the device channel the report belongs to.
    pub fn device_id(&self) -> EnrollmentId {
        self.enrollment.device_id()
    }

    /// `RequestType`, when the device echoed it (some macOS versions do; iOS does not).
    pub fn request_type(&self) -> Option<&str> {
        self.response.get("RequestType").and_then(Value::as_string)
    }

    /// The first response kind with a typed view whose key is present.
    pub fn response_kind(&self) -> Option<ResponseKind> {
        ResponseKind::ALL
            .into_iter()
            .find(|k| self.response.contains_key(k.key()))
    }

    fn fields(&self) -> Fields<'_> {
        Fields::new(&self.response)
    }

    /// The `ProfileList` response.
    pub fn profile_list(&self) -> Result<Option<Vec<ProfileListItem>>, FieldError> {
        ProfileListItem::read_list(&self.fields())
    }

    /// The `InstalledApplicationList` response.
    pub fn installed_application_list(
        &self,
    ) -> Result<Option<Vec<InstalledApplication>>, FieldError> {
        InstalledApplication::read_list(&self.fields())
    }

    /// The `ManagedApplicationList` response, one entry per bundle identifier.
    pub fn managed_application_list(&self) -> Result<Option<Vec<ManagedApplication>>, FieldError> {
        ManagedApplication::read_list(&self.fields())
    }

    /// The `CertificateList` response.
    pub fn certificate_list(&self) -> Result<Option<Vec<CertificateListItem>>, FieldError> {
        CertificateListItem::read_list(&self.fields())
    }

    /// The `QueryResponses` of a DeviceInformation command.
    pub fn device_information(&self) -> Result<Option<DeviceInformation>, FieldError> {
        DeviceInformation::read(&self.fields())
    }

    /// The `SecurityInfo` response.
    pub fn security_info(&self) -> Result<Option<SecurityInfo>, FieldError> {
        SecurityInfo::read(&self.fields())
    }

    /// The `Users` of a UserList response.
    pub fn user_list(&self) -> Result<Option<Vec<UserListItem>>, FieldError> {
        UserListItem::read_list(&self.fields())
    }

    /// The report as a plist dictionary.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        self.enrollment.write(&mut d);
        d.put("Status", self.status.as_str());
        d.put_opt(
            "CommandUUID",
            self.command_uuid.as_ref().map(CommandUuid::as_str),
        );
        d.put_opt(
            "ErrorChain",
            self.error_chain.as_deref().map(write_error_chain),
        );
        d.put_extra(&self.response);
        d
    }

    /// Encodes the report as an XML plist, as a device would send it.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        to_xml(&self.to_dictionary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EnrollmentKeys;

    fn enrollment() -> Enrollment {
        Enrollment::new(EnrollmentKeys::device("00008030-001A2B3C4D5E802E")).unwrap()
    }

    #[test]
    fn idle_needs_no_command_uuid_but_others_do() {
        let idle = CommandReport::new(enrollment(), Status::Idle, None);
        let decoded = CommandReport::decode(&idle.encode().unwrap(), &Limits::default()).unwrap();
        assert_eq!(decoded, idle);
        let ack = CommandReport::new(enrollment(), Status::Acknowledged, None);
        assert_eq!(
            CommandReport::decode(&ack.encode().unwrap(), &Limits::default()),
            Err(ReportError::MissingCommandUuid {
                status: Status::Acknowledged
            })
        );
    }

    #[test]
    fn error_chain_round_trips_and_unknown_status_is_typed() {
        let mut r = CommandReport::new(
            enrollment(),
            Status::Error,
            Some(CommandUuid::new("7C9E6679-7425-40DE-944B-E07FC1F90AE7").unwrap()),
        );
        r.error_chain = Some(vec![ErrorChainItem {
            code: 4001,
            domain: "MCInstallationErrorDomain".into(),
            localized_description: Some("Profile Installation Failed".into()),
            us_english_description: None,
        }]);
        let bytes = r.encode().unwrap();
        assert_eq!(
            CommandReport::decode(&bytes, &Limits::default()).unwrap(),
            r
        );
        let text = String::from_utf8(bytes)
            .unwrap()
            .replace(">Error<", ">Exploded<");
        assert_eq!(
            CommandReport::decode(text.as_bytes(), &Limits::default()),
            Err(ReportError::UnknownStatus(UnknownStatus("Exploded".into())))
        );
    }
}

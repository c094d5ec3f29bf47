//! Check-in protocol messages (`PUT /checkin`), decoded once into [`CheckinMessage`].
//!
//! Every message carries its channel identity ([`Enrollment`]); keys the decoder does not know are
//! kept in each message's `extra` dictionary, so re-encoding loses nothing.

use std::fmt;

use plist::{Dictionary, Value};

use crate::enrollment::ENROLLMENT_KEYS;
use crate::field::{FieldError, Fields};
use crate::plist_read::{PlistError, read_dictionary};
use crate::plist_write::{DictionaryExt, EncodeError, to_xml};
use crate::{Enrollment, EnrollmentId, Limits, PushMagic, PushToken, Topic};

/// Why a check-in body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckinError {
    /// The body is not an acceptable plist dictionary.
    #[error(transparent)]
    Plist(#[from] PlistError),
    /// The dictionary has no `MessageType` string.
    #[error("missing MessageType")]
    MissingMessageType,
    /// `MessageType` names a message this crate does not know.
    #[error("unknown MessageType {0:?}")]
    UnknownMessageType(String),
    /// A key is missing, mistyped or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// The `MessageType` of a check-in message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageType {
    /// `Authenticate`: first message of an enrollment.
    Authenticate,
    /// `TokenUpdate`: push token and PushMagic of a channel.
    TokenUpdate,
    /// `CheckOut`: the MDM profile was removed.
    CheckOut,
    /// `DeclarativeManagement`: a declarative-management request.
    DeclarativeManagement,
    /// `GetToken`: the device asks the server for a token.
    GetToken,
    /// `UserAuthenticate`: macOS network/mobile user authentication.
    UserAuthenticate,
    /// `GetBootstrapToken`: macOS asks for its bootstrap token.
    GetBootstrapToken,
    /// `SetBootstrapToken`: macOS escrows its bootstrap token.
    SetBootstrapToken,
}

impl MessageType {
    /// Every message type, in protocol order.
    pub const ALL: [MessageType; 8] = [
        MessageType::Authenticate,
        MessageType::TokenUpdate,
        MessageType::CheckOut,
        MessageType::DeclarativeManagement,
        MessageType::GetToken,
        MessageType::UserAuthenticate,
        MessageType::GetBootstrapToken,
        MessageType::SetBootstrapToken,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Authenticate => "Authenticate",
            MessageType::TokenUpdate => "TokenUpdate",
            MessageType::CheckOut => "CheckOut",
            MessageType::DeclarativeManagement => "DeclarativeManagement",
            MessageType::GetToken => "GetToken",
            MessageType::UserAuthenticate => "UserAuthenticate",
            MessageType::GetBootstrapToken => "GetBootstrapToken",
            MessageType::SetBootstrapToken => "SetBootstrapToken",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Authenticate`: the device starts enrolling.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticate {
    /// Channel identity (always a device channel in practice).
    pub enrollment: Enrollment,
    /// `Topic`: the APNs topic the device will subscribe to.
    pub topic: Topic,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `Model`, e.g. `iPhone15,2`... on macOS the model identifier.
    pub model: Option<String>,
    /// `ModelName`, e.g. `iPhone`.
    pub model_name: Option<String>,
    /// `ProductName`, e.g. `iPad2,5`.
    pub product_name: Option<String>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `DeviceName`.
    pub device_name: Option<String>,
    /// `IMEI`.
    pub imei: Option<String>,
    /// `MEID`.
    pub meid: Option<String>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `TokenUpdate`: the push token and PushMagic of a device or user channel.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenUpdate {
    /// Channel identity: a device channel, or a user channel (Shared iPad: `UserShortName`).
    pub enrollment: Enrollment,
    /// `Topic`.
    pub topic: Topic,
    /// `Token`: the APNs device token.
    pub token: PushToken,
    /// `PushMagic`: goes into the push payload. Never logged.
    pub push_magic: PushMagic,
    /// `UnlockToken`: lets ClearPasscode work later. A secret.
    pub unlock_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration`: the device waits for DeviceConfigured / UserConfigured.
    pub awaiting_configuration: Option<bool>,
    /// `NotOnConsole` (macOS user channel).
    pub not_on_console: Option<bool>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `CheckOut`: the device's MDM profile was removed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckOut {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `Topic`.
    pub topic: Option<Topic>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `DeclarativeManagement`: a declarative-management request on the check-in channel.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclarativeManagement {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `Endpoint`: `tokens`, `declaration-items`, `status`, `declaration/...`.
    pub endpoint: String,
    /// `Data`: the request body (JSON), when any.
    pub data: Option<Vec<u8>>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `GetToken`: the device asks for a token of some service.
#[derive(Debug, Clone, PartialEq)]
pub struct GetToken {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `TokenServiceType`, e.g. `com.apple.maid`.
    pub token_service_type: String,
    /// `TokenParameters`.
    pub token_parameters: Option<Dictionary>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `UserAuthenticate`: macOS user authentication (first without, then with `DigestResponse`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserAuthenticate {
    /// Channel identity (a user channel).
    pub enrollment: Enrollment,
    /// `DigestResponse`, on the second request.
    pub digest_response: Option<String>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `GetBootstrapToken`: macOS asks for its escrowed bootstrap token.
#[derive(Debug, Clone, PartialEq)]
pub struct GetBootstrapToken {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `AwaitingConfiguration`.
    pub awaiting_configuration: Option<bool>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// `SetBootstrapToken`: macOS escrows (or clears) its bootstrap token.
#[derive(Debug, Clone, PartialEq)]
pub struct SetBootstrapToken {
    /// Channel identity.
    pub enrollment: Enrollment,
    /// `BootstrapToken`: absent to clear the escrowed token. A secret.
    pub bootstrap_token: Option<Vec<u8>>,
    /// `AwaitingConfiguration`.
    pub awaiting_configuration: Option<bool>,
    /// Keys this crate does not model.
    pub extra: Dictionary,
}

/// A decoded check-in message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CheckinMessage {
    /// `Authenticate`.
    Authenticate(Authenticate),
    /// `TokenUpdate`.
    TokenUpdate(TokenUpdate),
    /// `CheckOut`.
    CheckOut(CheckOut),
    /// `DeclarativeManagement`.
    DeclarativeManagement(DeclarativeManagement),
    /// `GetToken`.
    GetToken(GetToken),
    /// `UserAuthenticate`.
    UserAuthenticate(UserAuthenticate),
    /// `GetBootstrapToken`.
    GetBootstrapToken(GetBootstrapToken),
    /// `SetBootstrapToken`.
    SetBootstrapToken(SetBootstrapToken),
}

fn known(specific: &[&'static str]) -> Vec<&'static str> {
    let mut keys = vec!["MessageType"];
    keys.extend_from_slice(ENROLLMENT_KEYS);
    keys.extend_from_slice(specific);
    keys
}

const AUTHENTICATE_KEYS: &[&str] = &[
    "Topic",
    "SerialNumber",
    "Model",
    "ModelName",
    "ProductName",
    "OSVersion",
    "BuildVersion",
    "DeviceName",
    "IMEI",
    "MEID",
];
const TOKEN_UPDATE_KEYS: &[&str] = &[
    "Topic",
    "Token",
    "PushMagic",
    "UnlockToken",
    "AwaitingConfiguration",
    "NotOnConsole",
];

impl CheckinMessage {
    /// Decodes a check-in body under `limits`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Self, CheckinError> {
        Self::from_dictionary(&read_dictionary(bytes, limits)?)
    }

    /// Decodes an already parsed plist dictionary.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, CheckinError> {
        let f = Fields::new(dict);
        let message_type = match f.opt_str("MessageType")? {
            None => return Err(CheckinError::MissingMessageType),
            Some(s) => {
                MessageType::parse(s).ok_or_else(|| CheckinError::UnknownMessageType(s.into()))?
            }
        };
        let enrollment = Enrollment::read(&f)?;
        Ok(match message_type {
            MessageType::Authenticate => CheckinMessage::Authenticate(Authenticate {
                enrollment,
                topic: f.id("Topic")?,
                serial_number: f.opt_string("SerialNumber")?,
                model: f.opt_string("Model")?,
                model_name: f.opt_string("ModelName")?,
                product_name: f.opt_string("ProductName")?,
                os_version: f.opt_string("OSVersion")?,
                build_version: f.opt_string("BuildVersion")?,
                device_name: f.opt_string("DeviceName")?,
                imei: f.opt_string("IMEI")?,
                meid: f.opt_string("MEID")?,
                extra: f.extra(&known(AUTHENTICATE_KEYS)),
            }),
            MessageType::TokenUpdate => CheckinMessage::TokenUpdate(TokenUpdate {
                enrollment,
                topic: f.id("Topic")?,
                token: PushToken::new(f.data("Token")?.to_vec()).map_err(|source| {
                    FieldError::InvalidId {
                        key: "Token".into(),
                        source,
                    }
                })?,
                push_magic: f.id("PushMagic")?,
                unlock_token: f.opt_data("UnlockToken")?.map(<[u8]>::to_vec),
                awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                not_on_console: f.opt_bool("NotOnConsole")?,
                extra: f.extra(&known(TOKEN_UPDATE_KEYS)),
            }),
            MessageType::CheckOut => CheckinMessage::CheckOut(CheckOut {
                enrollment,
                topic: f.opt_id("Topic")?,
                extra: f.extra(&known(&["Topic"])),
            }),
            MessageType::DeclarativeManagement => {
                CheckinMessage::DeclarativeManagement(DeclarativeManagement {
                    enrollment,
                    endpoint: f.string("Endpoint")?,
                    data: f.opt_data("Data")?.map(<[u8]>::to_vec),
                    extra: f.extra(&known(&["Endpoint", "Data"])),
                })
            }
            MessageType::GetToken => CheckinMessage::GetToken(GetToken {
                enrollment,
                token_service_type: f.string("TokenServiceType")?,
                token_parameters: f.opt_dict("TokenParameters")?.cloned(),
                extra: f.extra(&known(&["TokenServiceType", "TokenParameters"])),
            }),
            MessageType::UserAuthenticate => CheckinMessage::UserAuthenticate(UserAuthenticate {
                enrollment,
                digest_response: f.opt_string("DigestResponse")?,
                extra: f.extra(&known(&["DigestResponse"])),
            }),
            MessageType::GetBootstrapToken => {
                CheckinMessage::GetBootstrapToken(GetBootstrapToken {
                    enrollment,
                    awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                    extra: f.extra(&known(&["AwaitingConfiguration"])),
                })
            }
            MessageType::SetBootstrapToken => {
                CheckinMessage::SetBootstrapToken(SetBootstrapToken {
                    enrollment,
                    bootstrap_token: f.opt_data("BootstrapToken")?.map(<[u8]>::to_vec),
                    awaiting_configuration: f.opt_bool("AwaitingConfiguration")?,
                    extra: f.extra(&known(&["BootstrapToken", "AwaitingConfiguration"])),
                })
            }
        })
    }

    /// The message's `MessageType`.
    pub fn message_type(&self) -> MessageType {
        match self {
            CheckinMessage::Authenticate(_) => MessageType::Authenticate,
            CheckinMessage::TokenUpdate(_) => MessageType::TokenUpdate,
            CheckinMessage::CheckOut(_) => MessageType::CheckOut,
            CheckinMessage::DeclarativeManagement(_) => MessageType::DeclarativeManagement,
            CheckinMessage::GetToken(_) => MessageType::GetToken,
            CheckinMessage::UserAuthenticate(_) => MessageType::UserAuthenticate,
            CheckinMessage::GetBootstrapToken(_) => MessageType::GetBootstrapToken,
            CheckinMessage::SetBootstrapToken(_) => MessageType::SetBootstrapToken,
        }
    }

    /// The channel identity.
    pub fn enrollment(&self) -> &Enrollment {
        match self {
            CheckinMessage::Authenticate(m) => &m.enrollment,
            CheckinMessage::TokenUpdate(m) => &m.enrollment,
            CheckinMessage::CheckOut(m) => &m.enrollment,
            CheckinMessage::DeclarativeManagement(m) => &m.enrollment,
            CheckinMessage::GetToken(m) => &m.enrollment,
            CheckinMessage::UserAuthenticate(m) => &m.enrollment,
            CheckinMessage::GetBootstrapToken(m) => &m.enrollment,
            CheckinMessage::SetBootstrapToken(m) => &m.enrollment,
        }
    }

    /// The normalised id of the channel that sent the message.
    pub fn enrollment_id(&self) -> &EnrollmentId {
        self.enrollment().id()
    }

    /// The id of the device channel the message belongs to.
    pub fn device_id(&self) -> EnrollmentId {
        self.enrollment().device_id()
    }

    /// Keys the decoder did not model.
    pub fn extra(&self) -> &Dictionary {
        match self {
            CheckinMessage::Authenticate(m) => &m.extra,
            CheckinMessage::TokenUpdate(m) => &m.extra,
            CheckinMessage::CheckOut(m) => &m.extra,
            CheckinMessage::DeclarativeManagement(m) => &m.extra,
            CheckinMessage::GetToken(m) => &m.extra,
            CheckinMessage::UserAuthenticate(m) => &m.extra,
            CheckinMessage::GetBootstrapToken(m) => &m.extra,
            CheckinMessage::SetBootstrapToken(m) => &m.extra,
        }
    }

    /// The message as a plist dictionary (typed keys plus `extra`).
    pub fn to_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.put("MessageType", self.message_type().as_str());
        self.enrollment().write(&mut d);
        match self {
            CheckinMessage::Authenticate(m) => {
                d.put("Topic", m.topic.as_str());
                d.put_opt("SerialNumber", m.serial_number.clone());
                d.put_opt("Model", m.model.clone());
                d.put_opt("ModelName", m.model_name.clone());
                d.put_opt("ProductName", m.product_name.clone());
                d.put_opt("OSVersion", m.os_version.clone());
                d.put_opt("BuildVersion", m.build_version.clone());
                d.put_opt("DeviceName", m.device_name.clone());
                d.put_opt("IMEI", m.imei.clone());
                d.put_opt("MEID", m.meid.clone());
            }
            CheckinMessage::TokenUpdate(m) => {
                d.put("Topic", m.topic.as_str());
                d.put("Token", Value::Data(m.token.as_bytes().to_vec()));
                d.put("PushMagic", m.push_magic.as_str());
                d.put_opt("UnlockToken", m.unlock_token.clone().map(Value::Data));
                d.put_opt("AwaitingConfiguration", m.awaiting_configuration);
                d.put_opt("NotOnConsole", m.not_on_console);
            }
            CheckinMessage::CheckOut(m) => {
                d.put_opt("Topic", m.topic.as_ref().map(Topic::as_str));
            }
            CheckinMessage::DeclarativeManagement(m) => {
                d.put("Endpoint", m.endpoint.as_str());
                d.put_opt("Data", m.data.clone().map(Value::Data));
            }
            CheckinMessage::GetToken(m) => {
                d.put("TokenServiceType", m.token_service_type.as_str());
                d.put_opt("TokenParameters", m.token_parameters.clone());
            }
            CheckinMessage::UserAuthenticate(m) => {
                d.put_opt("DigestResponse", m.digest_response.clone());
            }
            CheckinMessage::GetBootstrapToken(m) => {
                d.put_opt("AwaitingConfiguration", m.awaiting_configuration);
            }
            CheckinMessage::SetBootstrapToken(m) => {
                d.put_opt("BootstrapToken", m.bootstrap_token.clone().map(Value::Data));
                d.put_opt("AwaitingConfiguration", m.awaiting_configuration);
            }
        }
        d.put_extra(self.extra());
        d
    }

    /// Encodes the message as an XML plist, as a device would send it.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        to_xml(&self.to_dictionary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDID: &str = "00008030-001A2B3C4D5E802E";

    fn body(entries: &[(&str, Value)]) -> Vec<u8> {
        let d: Dictionary = entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        to_xml(&d).unwrap()
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn shared_ipad_token_update_is_a_user_channel() {
        let bytes = body(&[
            ("MessageType", s("TokenUpdate")),
            ("UDID", s(UDID)),
            ("UserID", s(crate::SHARED_IPAD_USER_ID)),
            ("UserShortName", s("maria@school.example")),
            ("Topic", s("com.apple.mgmt.External.1")),
            ("Token", Value::Data(vec![7; 32])),
            ("PushMagic", s("8F3D2C1B-0A9E-4D7C-B6A5-F4E3D2C1B0A9")),
            ("Unmodelled", Value::Boolean(true)),
        ]);
        let msg = CheckinMessage::decode(&bytes, &Limits::default()).unwrap();
        assert_eq!(msg.message_type(), MessageType::TokenUpdate);
        assert_eq!(
            msg.enrollment_id().as_str(),
            format!("{UDID}:maria@school.example")
        );
        assert_eq!(msg.device_id().as_str(), UDID);
        assert!(msg.extra().contains_key("Unmodelled"));
        let again = CheckinMessage::decode(&msg.encode().unwrap(), &Limits::default()).unwrap();
        assert_eq!(again, msg);
    }

    #[test]
    fn message_type_errors_are_typed() {
        let unknown = body(&[("MessageType", s("Frobnicate")), ("UDID", s(UDID))]);
        assert_eq!(
            CheckinMessage::decode(&unknown, &Limits::default()),
            Err(CheckinError::UnknownMessageType("Frobnicate".into()))
        );
        let none = body(&[("UDID", s(UDID))]);
        assert_eq!(
            CheckinMessage::decode(&none, &Limits::default()),
            Err(CheckinError::MissingMessageType)
        );
        let no_token = body(&[
            ("MessageType", s("TokenUpdate")),
            ("UDID", s(UDID)),
            ("Topic", s("t")),
            ("PushMagic", s("m")),
        ]);
        assert_eq!(
            CheckinMessage::decode(&no_token, &Limits::default()),
            Err(CheckinError::Field(FieldError::Missing {
                key: "Token".into()
            }))
        );
    }
}

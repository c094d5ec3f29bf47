//! Turns an admin API command body into the command plist a device receives.
//!
//! Two forms are accepted:
//! - a raw plist (`application/x-apple-plist` or `application/xml`): either a full command
//!   `{CommandUUID, Command: {RequestType, ...}}` or just the `Command` dictionary
//!   (`{RequestType, ...}`); a missing CommandUUID is generated;
//! - JSON naming a typed command: `{"request_type": "ProfileList"}`,
//!   `{"request_type": "InstallProfile", "payload": "<base64>"}`, ... (see [`CommandSpec`]);
//!   other request types pass through with their keys in `"keys"`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, Command, CommandRequest, CommandUuid, InstallApplication, Limits,
    TYPED_REQUEST_TYPES, read_dictionary,
};
use baton_store::{NewCommand, Priority};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::error_response::ApiError;

/// DeviceInformation queries asked for when none are given.
const DEFAULT_QUERIES: &[&str] = &[
    "UDID",
    "DeviceName",
    "OSVersion",
    "BuildVersion",
    "ModelName",
    "Model",
    "ProductName",
    "SerialNumber",
    "IsSupervised",
    "IsMultiUser",
];

/// A JSON command: `request_type`, optional `command_uuid` and `priority` (0-255, default 128),
/// and the request's own fields (snake_case).
#[derive(Debug, Clone, Deserialize)]
pub struct CommandSpec {
    /// The `RequestType`.
    pub request_type: String,
    /// The `CommandUUID` to use; generated when absent.
    #[serde(default)]
    pub command_uuid: Option<String>,
    /// Queue priority.
    #[serde(default)]
    pub priority: Option<u8>,
    /// The request's fields.
    #[serde(flatten)]
    pub fields: Map<String, Json>,
}

/// A new random CommandUUID (upper-case UUID v4).
pub fn new_command_uuid() -> Result<CommandUuid, ApiError> {
    CommandUuid::new(uuid::Uuid::new_v4().to_string().to_uppercase())
        .map_err(|e| ApiError::Internal(format!("generated CommandUUID rejected: {e}")))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn to_new_command(command: &Command, priority: Priority) -> Result<NewCommand, ApiError> {
    Ok(NewCommand {
        uuid: command.uuid.clone(),
        request_type: command.request_type().to_owned(),
        body: command
            .encode()
            .map_err(|e| ApiError::Internal(format!("cannot encode command: {e}")))?,
        priority,
    })
}

/// A command from a raw plist body.
pub fn from_plist(body: &[u8], limits: &Limits) -> Result<NewCommand, ApiError> {
    let mut dict = read_dictionary(body, limits).map_err(|e| bad(format!("plist: {e}")))?;
    if !dict.contains_key("Command") {
        if !dict.contains_key("RequestType") {
            return Err(bad("plist has neither Command nor RequestType"));
        }
        let mut outer = Dictionary::new();
        outer.insert("Command".to_owned(), Value::Dictionary(dict));
        dict = outer;
    }
    if !dict.contains_key("CommandUUID") {
        dict.insert(
            "CommandUUID".to_owned(),
            Value::String(new_command_uuid()?.to_string()),
        );
    }
    let command = Command::from_dictionary(&dict).map_err(|e| bad(format!("command: {e}")))?;
    to_new_command(&command, Priority::NORMAL)
}

/// A command from a JSON body.
pub fn from_json(body: &[u8]) -> Result<NewCommand, ApiError> {
    let spec: CommandSpec = serde_json::from_slice(body).map_err(|e| bad(format!("JSON: {e}")))?;
    from_spec(spec)
}

/// A command from an already parsed spec.
pub fn from_spec(spec: CommandSpec) -> Result<NewCommand, ApiError> {
    let uuid = match &spec.command_uuid {
        Some(s) => CommandUuid::new(s.clone()).map_err(|e| bad(format!("command_uuid: {e}")))?,
        None => new_command_uuid()?,
    };
    let priority = spec.priority.map_or(Priority::NORMAL, Priority);
    let request = typed_request(&spec.request_type, spec.fields)?;
    to_new_command(&Command::new(uuid, request), priority)
}

/// Reads fields out of the spec, refusing any left over (typos should not pass silently).
struct Fields {
    map: Map<String, Json>,
}

impl Fields {
    fn string(&mut self, key: &str) -> Result<String, ApiError> {
        self.opt_string(key)?
            .ok_or_else(|| bad(format!("missing field {key}")))
    }

    fn opt_string(&mut self, key: &str) -> Result<Option<String>, ApiError> {
        match self.map.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) => Ok(Some(s)),
            Some(_) => Err(bad(format!("{key} must be a string"))),
        }
    }

    fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.map.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(bad(format!("{key} must be a boolean"))),
        }
    }

    fn opt_i64(&mut self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.map.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| bad(format!("{key} must be an integer"))),
            Some(_) => Err(bad(format!("{key} must be an integer"))),
        }
    }

    fn opt_strings(&mut self, key: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.map.remove(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Json::String(s) => Ok(s),
                    _ => Err(bad(format!("{key} must be an array of strings"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(bad(format!("{key} must be an array of strings"))),
        }
    }

    fn done(self, request_type: &str) -> Result<(), ApiError> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(key) => Err(bad(format!("unknown field {key} for {request_type}"))),
        }
    }
}

fn typed_request(
    request_type: &str,
    fields: Map<String, Json>,
) -> Result<CommandRequest, ApiError> {
    let mut f = Fields { map: fields };
    let request = match request_type {
        "ProfileList" => CommandRequest::ProfileList,
        "SecurityInfo" => CommandRequest::SecurityInfo,
        "UserList" => CommandRequest::UserList,
        "LogOutUser" => CommandRequest::LogOutUser,
        "DeviceConfigured" => CommandRequest::DeviceConfigured,
        "UserConfigured" => CommandRequest::UserConfigured,
        "InstallProfile" => {
            let payload = STANDARD
                .decode(f.string("payload")?.trim())
                .map_err(|_| bad("payload must be base64"))?;
            if payload.is_empty() {
                return Err(bad("payload is empty"));
            }
            CommandRequest::InstallProfile { payload }
        }
        "RemoveProfile" => CommandRequest::RemoveProfile {
            identifier: f.string("identifier")?,
        },
        "RemoveApplication" => CommandRequest::RemoveApplication {
            identifier: f.string("identifier")?,
        },
        "DeviceInformation" => CommandRequest::DeviceInformation {
            queries: f
                .opt_strings("queries")?
                .unwrap_or_else(|| DEFAULT_QUERIES.iter().map(|q| (*q).to_owned()).collect()),
        },
        "CertificateList" => CommandRequest::CertificateList {
            managed_only: f.opt_bool("managed_only")?,
        },
        "InstalledApplicationList" => CommandRequest::InstalledApplicationList {
            identifiers: f.opt_strings("identifiers")?,
            managed_apps_only: f.opt_bool("managed_apps_only")?,
        },
        "ManagedApplicationList" => CommandRequest::ManagedApplicationList {
            identifiers: f.opt_strings("identifiers")?,
        },
        "DeleteUser" => CommandRequest::DeleteUser {
            user_name: f.opt_string("user_name")?,
            force_deletion: f.opt_bool("force_deletion")?,
            delete_all_users: f.opt_bool("delete_all_users")?,
        },
        "InstallApplication" => {
            let source = match (
                f.opt_i64("itunes_store_id")?,
                f.opt_string("manifest_url")?,
                f.opt_string("identifier")?,
            ) {
                (Some(id), None, None) => AppSource::ITunesStoreId(id),
                (None, Some(url), None) => AppSource::ManifestUrl(url),
                (None, None, Some(id)) => AppSource::Identifier(id),
                _ => {
                    return Err(bad(
                        "InstallApplication needs exactly one of itunes_store_id, manifest_url, identifier",
                    ));
                }
            };
            let mut app = InstallApplication::new(source);
            app.management_flags = f.opt_i64("management_flags")?;
            app.purchase_method = f.opt_i64("purchase_method")?;
            CommandRequest::InstallApplication(app)
        }
        other if TYPED_REQUEST_TYPES.contains(&other) => {
            return Err(bad(format!(
                "{other} cannot be built from JSON yet; send the command as a plist"
            )));
        }
        other => {
            if other.is_empty() {
                return Err(bad("request_type is empty"));
            }
            let keys = match f.map.remove("keys") {
                None | Some(Json::Null) => Dictionary::new(),
                Some(Json::Object(map)) => json_to_dictionary(map)?,
                Some(_) => return Err(bad("keys must be an object")),
            };
            CommandRequest::Raw {
                request_type: other.to_owned(),
                keys,
            }
        }
    };
    f.done(request_type)?;
    Ok(request)
}

fn json_to_dictionary(map: Map<String, Json>) -> Result<Dictionary, ApiError> {
    map.into_iter()
        .map(|(k, v)| Ok((k, json_to_plist(v)?)))
        .collect()
}

fn json_to_plist(v: Json) -> Result<Value, ApiError> {
    Ok(match v {
        Json::Null => return Err(bad("null is not a plist value")),
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::Integer(i.into()),
            (None, Some(f)) => Value::Real(f),
            _ => return Err(bad("number out of range")),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(
            items
                .into_iter()
                .map(json_to_plist)
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Value::Dictionary(json_to_dictionary(map)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(c: &NewCommand) -> Command {
        Command::decode(&c.body, &Limits::default()).unwrap()
    }

    #[test]
    fn json_profile_list_gets_a_uuid() {
        let c = from_json(br#"{"request_type":"ProfileList"}"#).unwrap();
        assert_eq!(c.request_type, "ProfileList");
        let cmd = decode(&c);
        assert_eq!(cmd.uuid, c.uuid);
        assert_eq!(cmd.request, CommandRequest::ProfileList);
        assert_eq!(c.uuid.as_str().len(), 36);
    }

    #[test]
    fn json_install_profile_decodes_base64_payload() {
        let c = from_json(
            br#"{"request_type":"InstallProfile","payload":"aGVsbG8=","command_uuid":"C-1"}"#,
        )
        .unwrap();
        assert_eq!(c.uuid.as_str(), "C-1");
        assert_eq!(
            decode(&c).request,
            CommandRequest::InstallProfile {
                payload: b"hello".to_vec()
            }
        );
        assert!(from_json(br#"{"request_type":"InstallProfile","payload":"%%%"}"#).is_err());
        assert!(from_json(br#"{"request_type":"InstallProfile"}"#).is_err());
    }

    #[test]
    fn unknown_fields_and_bad_types_are_refused() {
        assert!(from_json(br#"{"request_type":"ProfileList","bogus":1}"#).is_err());
        assert!(from_json(br#"{"request_type":"RemoveProfile","identifier":5}"#).is_err());
        assert!(from_json(br#"{"request_type":""}"#).is_err());
        assert!(from_json(b"not json").is_err());
    }

    #[test]
    fn other_request_types_pass_through_raw() {
        let c =
            from_json(br#"{"request_type":"RestartDevice","keys":{"NotifyUser":true}}"#).unwrap();
        let cmd = decode(&c);
        assert_eq!(cmd.request_type(), "RestartDevice");
        let d = cmd.to_dictionary();
        let inner = d.get("Command").and_then(Value::as_dictionary).unwrap();
        assert_eq!(inner.get("NotifyUser"), Some(&Value::Boolean(true)));
    }

    #[test]
    fn raw_plist_bare_command_is_wrapped_with_a_generated_uuid() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>RequestType</key><string>ProfileList</string></dict></plist>"#;
        let c = from_plist(body, &Limits::default()).unwrap();
        assert_eq!(c.request_type, "ProfileList");
        assert_eq!(decode(&c).uuid, c.uuid);
        let full = br#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>CommandUUID</key><string>X-1</string>
<key>Command</key><dict><key>RequestType</key><string>SecurityInfo</string></dict></dict></plist>"#;
        let c = from_plist(full, &Limits::default()).unwrap();
        assert_eq!(c.uuid.as_str(), "X-1");
        assert!(from_plist(b"<plist><dict></dict></plist>", &Limits::default()).is_err());
    }
}

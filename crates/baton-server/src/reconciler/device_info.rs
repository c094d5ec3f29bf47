//! What the device says about itself in DeviceInformation, stored per device
//! ([`DEVICE_INFO_COLLECTION`], device id -> [`DeviceInfo`] as JSON).
//!
//! iOS's Authenticate carries only BuildVersion, OSVersion, ProductName, SerialNumber, Topic and
//! UDID: `DeviceName`, `Model` and `ModelName` are macOS only (Apple's `authenticate.yaml`), and
//! nothing in Authenticate or the device channel's TokenUpdate says "Shared iPad". So after
//! enrollment the reconciler asks ([`QUERIES`]) and plans nothing for the device until the answer
//! (or a refusal) is in: rules on `model_name`, `device_name` or `supervised`, and the channel a
//! Shared iPad's items go to, depend on it.

use baton_proto::{CommandRequest, DeviceInformation, EnrollmentId};
use baton_store::{Keyspace, KeyspaceBatch};
use serde::{Deserialize, Serialize};

use crate::catalog::assignment_config::{RecordError, collection, encode, read_json};

/// Keyspace collection: device id -> [`DeviceInfo`].
pub const DEVICE_INFO_COLLECTION: &str = "device_info";

/// The RequestType of the query.
pub const REQUEST_TYPE: &str = "DeviceInformation";

/// What Baton asks for (Apple's `information.device.yaml`; all available on iOS with the
/// Device Information access right, which Baton's enrollment profile grants).
pub const QUERIES: &[&str] = &[
    "ModelName",
    "DeviceName",
    "Model",
    "ProductName",
    "IsSupervised",
    "IsMultiUser",
    "OSVersion",
    "BuildVersion",
    "SerialNumber",
];

/// The device's answer to [`QUERIES`], or why there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// `ModelName`, e.g. `iPad`.
    pub model_name: Option<String>,
    /// `DeviceName`, e.g. `Front desk iPad`.
    pub device_name: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `ProductName`, e.g. `iPad13,18`.
    pub product_name: Option<String>,
    /// `IsSupervised`.
    pub is_supervised: Option<bool>,
    /// `IsMultiUser`: a Shared iPad.
    pub is_multi_user: Option<bool>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// Unix ms of the answer.
    pub answered_at: u64,
    /// The device refused the query (its status, e.g. `Error`): planning goes on with what
    /// Authenticate said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl DeviceInfo {
    /// From an acknowledged DeviceInformation report.
    pub fn from_answer(a: DeviceInformation, now_ms: u64) -> Self {
        Self {
            model_name: a.model_name,
            device_name: a.device_name,
            model: a.model,
            product_name: a.product_name,
            is_supervised: a.is_supervised,
            is_multi_user: a.is_multi_user,
            os_version: a.os_version,
            build_version: a.build_version,
            serial_number: a.serial_number,
            answered_at: now_ms,
            refused: None,
        }
    }

    /// The device refused the query with `status`.
    pub fn refused(status: &str, now_ms: u64) -> Self {
        Self {
            answered_at: now_ms,
            refused: Some(status.to_owned()),
            ..Self::default()
        }
    }
}

/// The query command.
pub fn query() -> CommandRequest {
    CommandRequest::DeviceInformation {
        queries: QUERIES.iter().map(|q| (*q).to_owned()).collect(),
    }
}

/// The stored answer of `device`, if any.
pub fn of(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Option<DeviceInfo>, RecordError> {
    read_json(store, DEVICE_INFO_COLLECTION, device.as_str())
}

/// Stores `info` for `device` in `batch`.
pub fn put(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    info: &DeviceInfo,
) -> Result<(), RecordError> {
    batch.put(
        &collection(DEVICE_INFO_COLLECTION)?,
        device.as_str().as_bytes(),
        &encode(info)?,
    );
    Ok(())
}

/// Forgets the answer of `device` (it enrolled again: name and supervision may have changed).
pub fn forget(batch: &mut KeyspaceBatch, device: &EnrollmentId) -> Result<(), RecordError> {
    batch.delete(
        &collection(DEVICE_INFO_COLLECTION)?,
        device.as_str().as_bytes(),
    );
    Ok(())
}

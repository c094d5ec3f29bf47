//! Devices as the engine sees them, and the MDM channels intents are aimed at.

use std::collections::BTreeMap;

use baton_proto::{EnrollmentId, IdError, Udid};
use serde::{Deserialize, Serialize};

use crate::attribute::{AttrRef, AttrValue};
use crate::rule::Attributes;

/// Which family of shared device this is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceKind {
    /// Any iPhone/iPad with one device channel (the web-clip family): everything goes there.
    #[default]
    Ordinary,
    /// Shared iPad: user items go on the signed-in user's channel, device items on the device
    /// channel.
    SharedIpad,
}

/// One enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The UDID (`$DEVICE.udid`, rule attribute `udid`).
    pub udid: Udid,
    /// Serial number (`$DEVICE.serial`, rule attribute `serial`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Ordinary or Shared iPad.
    #[serde(default)]
    pub kind: DeviceKind,
    /// Username of the current assignee ([`crate::NOBODY_USERNAME`] when signed out).
    pub assignee: String,
    /// Other attributes (`model`, `os`, `product_name`, operator-defined ones).
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrValue>,
}

impl Attributes for Device {
    fn attribute(&self, name: &str) -> Option<AttrRef<'_>> {
        match name {
            "udid" => Some(AttrRef::Str(self.udid.as_str())),
            "serial" => self.serial.as_deref().map(AttrRef::Str),
            "kind" => Some(AttrRef::Str(match self.kind {
                DeviceKind::Ordinary => "ordinary",
                DeviceKind::SharedIpad => "shared_ipad",
            })),
            _ => self.attributes.get(name).map(AttrRef::from),
        }
    }
}

/// The MDM channel an intent is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Channel {
    /// The device channel.
    Device,
    /// A Shared iPad user channel, named by the user's `UserShortName`.
    User {
        /// The user's short name (the directory username).
        short_name: String,
    },
}

impl Channel {
    /// The enrollment id of this channel on the device whose device channel is `device`.
    pub fn enrollment_id(&self, device: &EnrollmentId) -> Result<EnrollmentId, IdError> {
        match self {
            Channel::Device => Ok(device.parent()),
            Channel::User { short_name } => EnrollmentId::user(device.device_part(), short_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_enrollment_ids() {
        let dev = EnrollmentId::device("UDID-1").unwrap();
        assert_eq!(Channel::Device.enrollment_id(&dev).unwrap(), dev);
        let u = Channel::User {
            short_name: "alice".into(),
        }
        .enrollment_id(&dev)
        .unwrap();
        assert_eq!(u.as_str(), "UDID-1:alice");
    }
}

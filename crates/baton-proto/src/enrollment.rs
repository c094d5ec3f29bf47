//! The identity keys every check-in message and command report carries, and the normalised
//! [`EnrollmentId`] derived from them.
//!
//! Rule: the device part is the `UDID`, else the `EnrollmentID` (User Enrollment). A message is on
//! a user channel when it carries `UserID`, `UserShortName` or `EnrollmentUserID`; the user part is
//! the `UserShortName` on Shared iPad (whose `UserID` is always [`SHARED_IPAD_USER_ID`]), else the
//! `EnrollmentUserID`, else the `UserID`, else the `UserShortName`.

use plist::Dictionary;

use crate::field::{FieldError, Fields};
use crate::plist_write::DictionaryExt;
use crate::{EnrollmentId, SHARED_IPAD_USER_ID};

/// The plist keys that identify a channel.
pub(crate) const ENROLLMENT_KEYS: &[&str] = &[
    "UDID",
    "EnrollmentID",
    "EnrollmentUserID",
    "UserID",
    "UserShortName",
    "UserLongName",
];

/// The identity keys of a message, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollmentKeys {
    /// `UDID`: the device's UDID (absent for User Enrollment).
    pub udid: Option<String>,
    /// `EnrollmentID`: the per-enrollment device id of User Enrollment.
    pub enrollment_id: Option<String>,
    /// `EnrollmentUserID`: the per-enrollment user id of User Enrollment.
    pub enrollment_user_id: Option<String>,
    /// `UserID`: the user's GUID (macOS), or [`SHARED_IPAD_USER_ID`] on Shared iPad.
    pub user_id: Option<String>,
    /// `UserShortName`: the Managed Apple Account on Shared iPad, the short name on macOS.
    pub user_short_name: Option<String>,
    /// `UserLongName`: the user's full name.
    pub user_long_name: Option<String>,
}

impl EnrollmentKeys {
    /// Keys for a device channel identified by its UDID.
    pub fn device(udid: impl Into<String>) -> Self {
        Self {
            udid: Some(udid.into()),
            ..Self::default()
        }
    }

    /// Keys for a Shared iPad user channel: `UserID` is [`SHARED_IPAD_USER_ID`] and the user is
    /// named by `short_name` (a Managed Apple Account).
    pub fn shared_ipad_user(udid: impl Into<String>, short_name: impl Into<String>) -> Self {
        Self {
            udid: Some(udid.into()),
            user_id: Some(SHARED_IPAD_USER_ID.to_owned()),
            user_short_name: Some(short_name.into()),
            ..Self::default()
        }
    }

    /// Reads the identity keys of a dictionary (type-checked, not yet normalised).
    pub fn read(fields: &Fields<'_>) -> Result<Self, FieldError> {
        Ok(Self {
            udid: fields.opt_string("UDID")?,
            enrollment_id: fields.opt_string("EnrollmentID")?,
            enrollment_user_id: fields.opt_string("EnrollmentUserID")?,
            user_id: fields.opt_string("UserID")?,
            user_short_name: fields.opt_string("UserShortName")?,
            user_long_name: fields.opt_string("UserLongName")?,
        })
    }

    /// Writes the keys that are set into `dict`.
    pub fn write(&self, dict: &mut Dictionary) {
        dict.put_opt("UDID", self.udid.clone());
        dict.put_opt("EnrollmentID", self.enrollment_id.clone());
        dict.put_opt("EnrollmentUserID", self.enrollment_user_id.clone());
        dict.put_opt("UserID", self.user_id.clone());
        dict.put_opt("UserShortName", self.user_short_name.clone());
        dict.put_opt("UserLongName", self.user_long_name.clone());
    }

    /// True when `UserID` is the Shared iPad placeholder.
    pub fn is_shared_ipad_user(&self) -> bool {
        self.user_id
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(SHARED_IPAD_USER_ID))
    }

    /// Which key names the device, and its value.
    fn device_part(&self) -> Result<(&'static str, &str), FieldError> {
        match (&self.udid, &self.enrollment_id) {
            (Some(udid), _) => Ok(("UDID", udid)),
            (None, Some(eid)) => Ok(("EnrollmentID", eid)),
            (None, None) => Err(FieldError::Missing {
                key: "UDID or EnrollmentID".to_owned(),
            }),
        }
    }

    /// Which key names the user, and its value; `None` on a device channel.
    fn user_part(&self) -> Result<Option<(&'static str, &str)>, FieldError> {
        if self.is_shared_ipad_user() {
            return match &self.user_short_name {
                Some(short) => Ok(Some(("UserShortName", short))),
                None => Err(FieldError::Missing {
                    key: "UserShortName".to_owned(),
                }),
            };
        }
        Ok(self
            .enrollment_user_id
            .as_deref()
            .map(|v| ("EnrollmentUserID", v))
            .or_else(|| self.user_id.as_deref().map(|v| ("UserID", v)))
            .or_else(|| {
                self.user_short_name
                    .as_deref()
                    .map(|v| ("UserShortName", v))
            }))
    }

    /// The normalised id of the channel these keys name.
    pub fn enrollment_id(&self) -> Result<EnrollmentId, FieldError> {
        let (device_key, device) = self.device_part()?;
        let device_id = EnrollmentId::device(device).map_err(|source| FieldError::InvalidId {
            key: device_key.to_owned(),
            source,
        })?;
        match self.user_part()? {
            None => Ok(device_id),
            Some((user_key, user)) => {
                EnrollmentId::user(device, user).map_err(|source| FieldError::InvalidId {
                    key: user_key.to_owned(),
                    source,
                })
            }
        }
    }
}

/// A channel's identity keys together with their normalised id, checked once at decode time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    keys: EnrollmentKeys,
    id: EnrollmentId,
}

impl Enrollment {
    /// Normalises `keys`; fails when no device id is present or an id does not validate.
    pub fn new(keys: EnrollmentKeys) -> Result<Self, FieldError> {
        let id = keys.enrollment_id()?;
        Ok(Self { keys, id })
    }

    /// Reads and normalises the identity keys of a dictionary.
    pub fn read(fields: &Fields<'_>) -> Result<Self, FieldError> {
        Self::new(EnrollmentKeys::read(fields)?)
    }

    /// The keys as sent.
    pub fn keys(&self) -> &EnrollmentKeys {
        &self.keys
    }

    /// The normalised id of this channel (`device` or `device:user`).
    pub fn id(&self) -> &EnrollmentId {
        &self.id
    }

    /// The id of the device channel this channel belongs to (the id itself on a device channel).
    pub fn device_id(&self) -> EnrollmentId {
        self.id.parent()
    }

    /// True on a user channel.
    pub fn is_user_channel(&self) -> bool {
        self.id.is_user_channel()
    }

    /// True for a Shared iPad user channel.
    pub fn is_shared_ipad_user(&self) -> bool {
        self.keys.is_shared_ipad_user()
    }

    /// The UDID, when sent.
    pub fn udid(&self) -> Option<&str> {
        self.keys.udid.as_deref()
    }

    /// Writes the identity keys into `dict`.
    pub fn write(&self, dict: &mut Dictionary) {
        self.keys.write(dict);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDID: &str = "00008030-001A2B3C4D5E802E";

    #[test]
    fn device_channel_uses_udid_then_enrollment_id() {
        let e = Enrollment::new(EnrollmentKeys::device(UDID)).unwrap();
        assert_eq!(e.id().as_str(), UDID);
        assert!(!e.is_user_channel());
        let ue = Enrollment::new(EnrollmentKeys {
            enrollment_id: Some("4F1A9C2E-7D3B-4E8A-9C1F-2B3D4E5F6A7B".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ue.id().as_str(), "4F1A9C2E-7D3B-4E8A-9C1F-2B3D4E5F6A7B");
        assert!(Enrollment::new(EnrollmentKeys::default()).is_err());
    }

    #[test]
    fn shared_ipad_user_is_named_by_short_name() {
        let e =
            Enrollment::new(EnrollmentKeys::shared_ipad_user(UDID, "alice@example.org")).unwrap();
        assert_eq!(e.id().as_str(), format!("{UDID}:alice@example.org"));
        assert_eq!(e.device_id().as_str(), UDID);
        assert!(e.is_shared_ipad_user());
        let mut keys = EnrollmentKeys::shared_ipad_user(UDID, "x");
        keys.user_short_name = None;
        assert_eq!(
            Enrollment::new(keys),
            Err(FieldError::Missing {
                key: "UserShortName".into()
            })
        );
    }

    #[test]
    fn other_user_channels_prefer_enrollment_user_id_then_user_id() {
        let mut keys = EnrollmentKeys::device(UDID);
        keys.user_id = Some("5DF1182E-C70B-4A3A-BADC-DD3E775040FB".into());
        keys.user_short_name = Some("groob".into());
        assert_eq!(
            Enrollment::new(keys.clone()).unwrap().id().user_part(),
            Some("5DF1182E-C70B-4A3A-BADC-DD3E775040FB")
        );
        keys.enrollment_user_id = Some("EU-1".into());
        assert_eq!(
            Enrollment::new(keys).unwrap().id().user_part(),
            Some("EU-1")
        );
    }

    #[test]
    fn invalid_ids_name_their_key() {
        let keys = EnrollmentKeys::device("bad udid");
        assert!(matches!(
            Enrollment::new(keys),
            Err(FieldError::InvalidId { key, .. }) if key == "UDID"
        ));
    }
}

//! Identifier newtypes shared by every Baton crate.
//!
//! Each is validated once at the edge (parse, don't validate): once a value of one of these types
//! exists it is non-empty, bounded in length and free of control characters, so storage keys,
//! log fields and URLs built from it are safe.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest identifier accepted anywhere in the protocol. Real UDIDs are 25 to 40 characters,
/// EnrollmentIDs and GUIDs 36; the bound leaves room for `device:user` pairs.
pub const MAX_ID_LEN: usize = 256;

/// The UserID every Shared iPad user channel reports; the user is named by UserShortName instead.
pub const SHARED_IPAD_USER_ID: &str = "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF";

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier.
        kind: &'static str,
    },
    /// The identifier is longer than [`MAX_ID_LEN`] bytes.
    #[error("{kind} is {len} bytes long, the limit is {MAX_ID_LEN}")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The identifier contains a control character, whitespace or another forbidden character.
    #[error("{kind} contains the forbidden character {ch:?}")]
    BadChar {
        /// Which identifier.
        kind: &'static str,
        /// The first offending character.
        ch: char,
    },
}

fn check(kind: &'static str, s: &str, forbid_colon: bool) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind, len: s.len() });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || *c == '/' || (forbid_colon && *c == ':'))
    {
        return Err(IdError::BadChar { kind, ch });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, forbid_colon = $fc:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check($kind, &s, $fc)?;
                Ok(Self(s))
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A device's UDID, as sent in the `UDID` key.
    Udid, "UDID", forbid_colon = true
);
string_id!(
    /// A command's `CommandUUID`. Apple allows any string; Baton generates UUIDs.
    CommandUuid, "CommandUUID", forbid_colon = false
);
string_id!(
    /// The APNs topic (`com.apple.mgmt.External.<uuid>`), the push certificate's UID.
    Topic, "Topic", forbid_colon = false
);

/// The normalised identity of one MDM channel.
///
/// - Device channel: the device's UDID, or its `EnrollmentID` for User Enrollment.
/// - User channel: `<device id>:<user>`, where user is the `UserShortName` on Shared iPad (whose
///   UserID is always [`SHARED_IPAD_USER_ID`]), else the `EnrollmentUserID` or `UserID`.
///
/// The device part never contains `:`, so [`EnrollmentId::parent`] is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnrollmentId(String);

impl EnrollmentId {
    /// The device-channel id for a device identifier (UDID or EnrollmentID).
    pub fn device(device: &str) -> Result<Self, IdError> {
        check("device id", device, true)?;
        Ok(Self(device.to_owned()))
    }

    /// The user-channel id for `user` on the device `device`.
    pub fn user(device: &str, user: &str) -> Result<Self, IdError> {
        check("device id", device, true)?;
        check("user id", user, false)?;
        let s = format!("{device}:{user}");
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong {
                kind: "enrollment id",
                len: s.len(),
            });
        }
        Ok(Self(s))
    }

    /// Parses a normalised id (`device` or `device:user`), e.g. from a URL path.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        match s.split_once(':') {
            Some((device, user)) => Self::user(device, user),
            None => Self::device(s),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a user channel (`device:user`).
    pub fn is_user_channel(&self) -> bool {
        self.0.contains(':')
    }

    /// The device part: the id itself for a device channel.
    pub fn device_part(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(d, _)| d)
    }

    /// The user part of a user channel.
    pub fn user_part(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, u)| u)
    }

    /// The device-channel id this channel belongs to (itself for a device channel).
    pub fn parent(&self) -> EnrollmentId {
        EnrollmentId(self.device_part().to_owned())
    }
}

impl fmt::Display for EnrollmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EnrollmentId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<EnrollmentId> for String {
    fn from(v: EnrollmentId) -> String {
        v.0
    }
}

impl AsRef<str> for EnrollmentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// An APNs device token (raw bytes; hex-encoded in the APNs URL path).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PushToken(Vec<u8>);

impl PushToken {
    /// Wraps a token; APNs tokens are 32 bytes today, but anything from 1 to 256 bytes is kept.
    pub fn new(bytes: Vec<u8>) -> Result<Self, IdError> {
        if bytes.is_empty() {
            return Err(IdError::Empty { kind: "push token" });
        }
        if bytes.len() > MAX_ID_LEN {
            return Err(IdError::TooLong {
                kind: "push token",
                len: bytes.len(),
            });
        }
        Ok(Self(bytes))
    }

    /// The raw token bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex, as used in the APNs request path.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(self.0.len() * 2);
        for b in &self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }
}

impl fmt::Debug for PushToken {
    // Tokens are secrets of a sort: show only a short prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        write!(f, "PushToken({}…)", &hex[..hex.len().min(8)])
    }
}

/// The `PushMagic` string a device expects in the push payload. Never logged.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PushMagic(String);

impl PushMagic {
    /// Wraps a PushMagic value.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        check("PushMagic", &s, false)?;
        Ok(Self(s))
    }

    /// The value, for building the push payload only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PushMagic {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl fmt::Debug for PushMagic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushMagic(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_ids_normalise_both_channels() {
        let d = EnrollmentId::device("00008020-000915083C80012E").unwrap();
        assert!(!d.is_user_channel());
        assert_eq!(d.parent(), d);
        let u = EnrollmentId::user("00008020-000915083C80012E", "alice").unwrap();
        assert_eq!(u.as_str(), "00008020-000915083C80012E:alice");
        assert!(u.is_user_channel());
        assert_eq!(u.parent(), d);
        assert_eq!(u.user_part(), Some("alice"));
        assert_eq!(EnrollmentId::parse(u.as_str()).unwrap(), u);
    }

    #[test]
    fn bad_ids_are_typed_errors() {
        assert!(matches!(
            EnrollmentId::device(""),
            Err(IdError::Empty { .. })
        ));
        assert!(matches!(
            EnrollmentId::device("a:b"),
            Err(IdError::BadChar { ch: ':', .. })
        ));
        assert!(matches!(
            EnrollmentId::device("a/b"),
            Err(IdError::BadChar { .. })
        ));
        assert!(matches!(
            EnrollmentId::device(&"x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong { .. })
        ));
        assert!(PushToken::new(vec![]).is_err());
    }

    #[test]
    fn push_token_hex() {
        let t = PushToken::new(vec![0x00, 0xab, 0xff]).unwrap();
        assert_eq!(t.to_hex(), "00abff");
        assert_eq!(format!("{t:?}"), "PushToken(00abff…)");
    }
}

//! Configuration profiles (.mobileconfig): building them and reading uploaded unsigned ones.
//!
//! A [`Profile`] holds the top-level keys and a list of [`Payload`]s; each payload keeps the
//! common `Payload*` keys typed and everything type-specific in `content`. Typed builders for the
//! payloads Baton itself issues live in [`crate::payload`]. Signed profiles (CMS, DER) are not
//! unwrapped here: [`Profile::parse`] reports them as [`ProfileError::Signed`] so the caller can
//! unwrap the CMS and parse the inner bytes.

use std::fmt;

use plist::{Dictionary, Value};

use crate::Limits;
use crate::field::{FieldError, Fields};
use crate::plist_read::{PlistError, read_dictionary};
use crate::plist_write::{DictionaryExt, EncodeError, to_xml};

/// Why bytes are not a usable configuration profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The bytes start with a DER SEQUENCE: a signed (CMS) profile, to be unwrapped first.
    #[error("signed (CMS) profile: unwrap the signature before parsing")]
    Signed,
    /// The bytes are not an acceptable plist dictionary.
    #[error(transparent)]
    Plist(#[from] PlistError),
    /// A key is missing, mistyped or invalid.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The top-level `PayloadType` is not `Configuration`.
    #[error("PayloadType is {found:?}, expected \"Configuration\"")]
    NotConfiguration {
        /// The PayloadType found.
        found: String,
    },
    /// The profile could not be serialised.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// `PayloadScope`: where a macOS profile installs (iOS ignores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PayloadScope {
    /// `System`.
    System,
    /// `User`.
    User,
}

impl PayloadScope {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadScope::System => "System",
            PayloadScope::User => "User",
        }
    }
}

impl fmt::Display for PayloadScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One payload of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    /// `PayloadType`, e.g. `com.apple.webClip.managed`.
    pub payload_type: String,
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion` (1).
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// Every type-specific key (including `PayloadContent` where a type has one).
    pub content: Dictionary,
}

const PAYLOAD_KEYS: &[&str] = &[
    "PayloadType",
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadVersion",
    "PayloadDisplayName",
    "PayloadDescription",
    "PayloadOrganization",
];

impl Payload {
    /// An arbitrary payload of `payload_type` with the given type-specific keys.
    pub fn new(
        payload_type: impl Into<String>,
        identifier: impl Into<String>,
        uuid: impl Into<String>,
        content: Dictionary,
    ) -> Self {
        Self {
            payload_type: payload_type.into(),
            identifier: identifier.into(),
            uuid: uuid.into(),
            version: 1,
            display_name: None,
            description: None,
            organization: None,
            content,
        }
    }

    /// Sets `PayloadDisplayName`.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    fn read(f: &Fields<'_>) -> Result<Self, FieldError> {
        Ok(Self {
            payload_type: f.string("PayloadType")?,
            identifier: f.string("PayloadIdentifier")?,
            uuid: f.string("PayloadUUID")?,
            version: f.opt_i64("PayloadVersion")?.unwrap_or(1),
            display_name: f.opt_string("PayloadDisplayName")?,
            description: f.opt_string("PayloadDescription")?,
            organization: f.opt_string("PayloadOrganization")?,
            content: f.extra(PAYLOAD_KEYS),
        })
    }

    /// The payload as a plist dictionary.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.put("PayloadType", self.payload_type.as_str());
        d.put("PayloadIdentifier", self.identifier.as_str());
        d.put("PayloadUUID", self.uuid.as_str());
        d.put("PayloadVersion", self.version);
        d.put_opt("PayloadDisplayName", self.display_name.clone());
        d.put_opt("PayloadDescription", self.description.clone());
        d.put_opt("PayloadOrganization", self.organization.clone());
        d.put_extra(&self.content);
        d
    }
}

/// A configuration profile (`PayloadType` = `Configuration`).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// `PayloadIdentifier`: what RemoveProfile and ProfileList use.
    pub identifier: String,
    /// `PayloadUUID`: should change whenever the content changes.
    pub uuid: String,
    /// `PayloadVersion` (1).
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: Option<bool>,
    /// `PayloadScope`.
    pub scope: Option<PayloadScope>,
    /// `PayloadContent`.
    pub payloads: Vec<Payload>,
    /// Other top-level keys (ConsentText, RemovalDate...).
    pub extra: Dictionary,
}

const PROFILE_KEYS: &[&str] = &[
    "PayloadType",
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadVersion",
    "PayloadDisplayName",
    "PayloadDescription",
    "PayloadOrganization",
    "PayloadRemovalDisallowed",
    "PayloadScope",
    "PayloadContent",
];

impl Profile {
    /// An empty profile with the given identifier and UUID.
    pub fn new(identifier: impl Into<String>, uuid: impl Into<String>) -> Self {
        Self {
            identifier: identifier.into(),
            uuid: uuid.into(),
            version: 1,
            display_name: None,
            description: None,
            organization: None,
            removal_disallowed: None,
            scope: None,
            payloads: Vec::new(),
            extra: Dictionary::new(),
        }
    }

    /// Sets `PayloadDisplayName`.
    #[must_use]
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Sets `PayloadDescription`.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets `PayloadOrganization`.
    #[must_use]
    pub fn with_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// Sets `PayloadRemovalDisallowed`.
    #[must_use]
    pub fn with_removal_disallowed(mut self, disallowed: bool) -> Self {
        self.removal_disallowed = Some(disallowed);
        self
    }

    /// Sets `PayloadScope`.
    #[must_use]
    pub fn with_scope(mut self, scope: PayloadScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Appends a payload.
    #[must_use]
    pub fn with_payload(mut self, payload: Payload) -> Self {
        self.payloads.push(payload);
        self
    }

    /// Reads an unsigned .mobileconfig under `limits`.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Self, ProfileError> {
        if bytes.first() == Some(&0x30) {
            return Err(ProfileError::Signed);
        }
        Self::from_dictionary(&read_dictionary(bytes, limits)?)
    }

    /// Reads an already parsed profile dictionary.
    pub fn from_dictionary(dict: &Dictionary) -> Result<Self, ProfileError> {
        let f = Fields::new(dict);
        let payload_type = f.string("PayloadType")?;
        if payload_type != "Configuration" {
            return Err(ProfileError::NotConfiguration {
                found: payload_type,
            });
        }
        let scope = match f.opt_str("PayloadScope")? {
            None => None,
            Some("System") => Some(PayloadScope::System),
            Some("User") => Some(PayloadScope::User),
            Some(other) => {
                return Err(FieldError::InvalidValue {
                    key: "PayloadScope".to_owned(),
                    reason: format!("{other:?} is neither System nor User"),
                }
                .into());
            }
        };
        let payloads = f
            .opt_dict_array("PayloadContent")?
            .unwrap_or_default()
            .iter()
            .map(|(path, d)| Payload::read(&Fields::at(d, path)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            identifier: f.string("PayloadIdentifier")?,
            uuid: f.string("PayloadUUID")?,
            version: f.opt_i64("PayloadVersion")?.unwrap_or(1),
            display_name: f.opt_string("PayloadDisplayName")?,
            description: f.opt_string("PayloadDescription")?,
            organization: f.opt_string("PayloadOrganization")?,
            removal_disallowed: f.opt_bool("PayloadRemovalDisallowed")?,
            scope,
            payloads,
            extra: f.extra(PROFILE_KEYS),
        })
    }

    /// The profile as a plist dictionary.
    pub fn to_dictionary(&self) -> Dictionary {
        let mut d = Dictionary::new();
        d.put("PayloadType", "Configuration");
        d.put("PayloadIdentifier", self.identifier.as_str());
        d.put("PayloadUUID", self.uuid.as_str());
        d.put("PayloadVersion", self.version);
        d.put_opt("PayloadDisplayName", self.display_name.clone());
        d.put_opt("PayloadDescription", self.description.clone());
        d.put_opt("PayloadOrganization", self.organization.clone());
        d.put_opt("PayloadRemovalDisallowed", self.removal_disallowed);
        d.put_opt("PayloadScope", self.scope.map(PayloadScope::as_str));
        d.put(
            "PayloadContent",
            Value::Array(
                self.payloads
                    .iter()
                    .map(|p| Value::Dictionary(p.to_dictionary()))
                    .collect(),
            ),
        );
        d.put_extra(&self.extra);
        d
    }

    /// The unsigned .mobileconfig bytes (XML plist).
    pub fn to_xml(&self) -> Result<Vec<u8>, ProfileError> {
        Ok(to_xml(&self.to_dictionary())?)
    }
}

/// A UUID-formatted string derived deterministically from `seed` (FNV-1a 128 over the seed,
/// stamped as a version-8 RFC 9562 UUID, upper case). Use it for payload UUIDs that must stay
/// stable for the same content and change when the seed (e.g. identifier plus content hash) does.
pub fn derive_uuid(seed: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    for b in seed.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // version 8 in bits 48..52 (from the top), variant 0b10 in bits 64..66.
    h = (h & !(0xf << 76)) | (0x8 << 76);
    h = (h & !(0x3 << 62)) | (0x2 << 62);
    let hex = format!("{h:032X}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_parses_and_round_trips() {
        let mut content = Dictionary::new();
        content.put("URL", "https://baton.example/portal/abc");
        content.put("Label", "Sign in");
        let p = Profile::new("org.example.signin", derive_uuid("org.example.signin"))
            .with_display_name("Sign in")
            .with_removal_disallowed(true)
            .with_payload(Payload::new(
                "com.apple.webClip.managed",
                "org.example.signin.webclip",
                derive_uuid("org.example.signin.webclip"),
                content,
            ));
        let xml = p.to_xml().unwrap();
        let back = Profile::parse(&xml, &Limits::default()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.payloads[0].payload_type, "com.apple.webClip.managed");
    }

    #[test]
    fn signed_and_non_configuration_bytes_are_typed_errors() {
        assert_eq!(
            Profile::parse(&[0x30, 0x82, 0x01, 0x00], &Limits::default()),
            Err(ProfileError::Signed)
        );
        let mut d = Dictionary::new();
        d.put("PayloadType", "com.apple.mdm");
        assert_eq!(
            Profile::from_dictionary(&d),
            Err(ProfileError::NotConfiguration {
                found: "com.apple.mdm".into()
            })
        );
    }

    #[test]
    fn derived_uuids_are_stable_distinct_and_well_formed() {
        let a = derive_uuid("a");
        assert_eq!(a, derive_uuid("a"));
        assert_ne!(a, derive_uuid("b"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8");
        assert!(matches!(&a[19..20], "8" | "9" | "A" | "B"));
    }
}

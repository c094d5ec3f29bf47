//! Names of configuration objects: catalog items, groups and distributions.
//!
//! They are chosen by operators and end up inside configuration-profile identifiers
//! (`<prefix>.item.<item id>`), so they are restricted to letters, digits, `.`, `-` and `_`.
//! They are shared strings: cloning one (the planner does, per device) does not allocate.
//! Device and channel identities come from `baton_proto`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest configuration name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Why a string is not a valid configuration name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which kind of name.
        kind: &'static str,
    },
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("{kind} is {len} bytes long, the limit is {MAX_NAME_LEN}")]
    TooLong {
        /// Which kind of name.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains a character other than ASCII letters, digits, `.`, `-`, `_`.
    #[error("{kind} contains the forbidden character {ch:?}")]
    BadChar {
        /// Which kind of name.
        kind: &'static str,
        /// The first offending character.
        ch: char,
    },
}

fn check(kind: &'static str, s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if s.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { kind, len: s.len() });
    }
    if let Some(ch) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(NameError::BadChar { kind, ch });
    }
    Ok(())
}

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
                let s = s.into();
                check($kind, &s)?;
                Ok(Self(Arc::from(s)))
            }

            /// The name as a string slice.
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
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_id!(
    /// A catalog item's id; part of the PayloadIdentifier `<prefix>.item.<id>`.
    ItemId, "item id"
);
name_id!(
    /// A user group's or device group's id (one namespace for both).
    GroupId, "group id"
);
name_id!(
    /// A distribution's id.
    DistributionId, "distribution id"
);

/// A point in time as whole seconds since the Unix epoch. The engine never reads a clock:
/// callers pass `now` in.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// `self + secs`, saturating.
    pub fn plus_secs(self, secs: u64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(ItemId::new("wifi-corp_2.x").is_ok());
        assert!(matches!(ItemId::new(""), Err(NameError::Empty { .. })));
        assert!(matches!(
            ItemId::new("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            GroupId::new("x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
        let parsed: Result<ItemId, _> = serde_json::from_str("\"a/b\"");
        assert!(parsed.is_err());
    }
}

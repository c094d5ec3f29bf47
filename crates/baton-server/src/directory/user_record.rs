//! A stored user: the engine's [`User`] plus its password hash, and what the admin API
//! accepts ([`UserInput`]) and shows ([`UserView`], never the hash).

use std::collections::BTreeMap;

use baton_assign::{AttrValue, User};
use serde::{Deserialize, Serialize};

use super::password::{PasswordError, hash_password};

/// A user as stored in the `users` collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The directory entry the engine sees.
    #[serde(flatten)]
    pub user: User,
    /// argon2id PHC string; None for users that cannot sign in with a password (nobody).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created_at: u64,
}

/// `POST /api/v1/users` body (and one entry of an import). Its `Debug` output hides the
/// password.
#[derive(Clone, Deserialize)]
pub struct UserInput {
    /// Login name.
    pub username: String,
    /// Clear-text password (hashed at once, never stored or logged).
    #[serde(default)]
    pub password: Option<String>,
    /// Display name.
    #[serde(default)]
    pub full_name: Option<String>,
    /// E-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// Custom attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, AttrValue>,
}

impl std::fmt::Debug for UserInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInput")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("full_name", &self.full_name)
            .field("email", &self.email)
            .field("attributes", &self.attributes)
            .finish()
    }
}

/// Longest accepted username.
pub const MAX_USERNAME_LEN: usize = 128;

impl UserInput {
    /// Validates the input and hashes the password.
    pub fn into_record(self, now: u64) -> Result<UserRecord, UserInputError> {
        let name = self.username.trim();
        if name.is_empty()
            || name.len() > MAX_USERNAME_LEN
            || name.chars().any(|c| c.is_control() || c == '/' || c == ':')
        {
            return Err(UserInputError::BadUsername(self.username.clone()));
        }
        if name == baton_assign::NOBODY_USERNAME {
            return Err(UserInputError::Reserved);
        }
        let password_hash = match self.password.as_deref() {
            None | Some("") => return Err(UserInputError::NoPassword),
            Some(p) => Some(hash_password(p)?),
        };
        Ok(UserRecord {
            user: User {
                username: name.to_owned(),
                email: self.email.filter(|e| !e.is_empty()),
                full_name: self.full_name.filter(|e| !e.is_empty()),
                attributes: self.attributes,
            },
            password_hash,
            created_at: now,
        })
    }
}

/// Why a user input was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserInputError {
    /// Empty, too long, or with control characters, `/` or `:`.
    #[error("invalid username {0:?}")]
    BadUsername(String),
    /// `nobody` is created by the server itself.
    #[error("the username \"nobody\" is reserved")]
    Reserved,
    /// A password is required.
    #[error("a password is required")]
    NoPassword,
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// A user as the admin API shows it (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    /// Same as the username.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Display name.
    pub full_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Custom attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// Whether a password is set.
    pub has_password: bool,
}

impl From<&UserRecord> for UserView {
    fn from(r: &UserRecord) -> Self {
        UserView {
            id: r.user.username.clone(),
            username: r.user.username.clone(),
            full_name: r.user.full_name.clone(),
            email: r.user.email.clone(),
            attributes: r.user.attributes.clone(),
            has_password: r.password_hash.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_view_hides_hash() {
        let input: UserInput = serde_json::from_str(
            r#"{"username":"alice","password":"pw","email":"a@x","attributes":{"ward":"3"}}"#,
        )
        .unwrap();
        let rec = input.into_record(5).unwrap();
        let json = serde_json::to_string(&rec).unwrap();
        let back: UserRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
        let view = serde_json::to_string(&UserView::from(&rec)).unwrap();
        assert!(!view.contains("argon2"));
        assert!(view.contains("\"has_password\":true"));
        let bad: UserInput =
            serde_json::from_str(r#"{"username":"nobody","password":"x"}"#).unwrap();
        assert!(!format!("{bad:?}").contains("\"x\""));
        assert!(matches!(bad.into_record(0), Err(UserInputError::Reserved)));
    }
}

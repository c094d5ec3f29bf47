//! A stored user: the engine's [`User`] plus its password hash and whether it is disabled,
//! and what the admin API accepts ([`UserInput`], [`UserPatch`]) and shows ([`UserView`],
//! never the hash). A disabled user cannot sign in and is signed out of every device by the
//! session sweeper ([`is_disabled`]).

use std::collections::BTreeMap;

use baton_assign::{AttrValue, NOBODY_USERNAME, User};
use baton_store::Keyspace;
use serde::{Deserialize, Serialize};

use super::USERS_COLLECTION;
use super::password::{PasswordError, hash_password};
use crate::catalog::assignment_config::{RecordError, read_json};

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
    /// Disabled by an operator: refused at sign-in, signed out everywhere. Records written
    /// before this field existed read as enabled.
    #[serde(default)]
    pub disabled: bool,
}

/// True when `username` is a disabled user. Unknown users are not disabled (their sign-in
/// fails on the password instead).
pub fn is_disabled(store: &dyn Keyspace, username: &str) -> Result<bool, RecordError> {
    Ok(read_json::<UserRecord>(store, USERS_COLLECTION, username)?.is_some_and(|r| r.disabled))
}

/// `POST /api/v1/users` body (and one entry of an import); unknown fields refused. Its `Debug`
/// output hides the password.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pub fn into_record(
        self,
        now: u64,
        policy: &super::PasswordPolicy,
    ) -> Result<UserRecord, UserInputError> {
        let name = self.username.trim();
        if name.is_empty()
            || name.len() > MAX_USERNAME_LEN
            || name.chars().any(|c| c.is_control() || c == '/' || c == ':')
        {
            return Err(UserInputError::BadUsername(self.username.clone()));
        }
        if super::username::same(name, baton_assign::NOBODY_USERNAME) {
            return Err(UserInputError::Reserved);
        }
        let password_hash = match self.password.as_deref() {
            None | Some("") => return Err(UserInputError::NoPassword),
            Some(p) => {
                policy.check(p).map_err(UserInputError::Policy)?;
                Some(hash_password(p)?)
            }
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
            disabled: false,
        })
    }
}

/// `PATCH /api/v1/users/{name}` body: every field optional, unknown fields refused. Its
/// `Debug` output hides the password.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// Disable (true) or enable (false) the user.
    #[serde(default)]
    pub disabled: Option<bool>,
    /// New display name; `""` clears it.
    #[serde(default)]
    pub full_name: Option<String>,
    /// New e-mail address; `""` clears it.
    #[serde(default)]
    pub email: Option<String>,
    /// New clear-text password (hashed at once); must not be empty.
    #[serde(default)]
    pub password: Option<String>,
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("disabled", &self.disabled)
            .field("full_name", &self.full_name)
            .field("email", &self.email)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a patch changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PatchEffect {
    /// `disabled` changed.
    pub disabled_changed: bool,
    /// Something the engine sees (`full_name`, `email`) changed: reconcile.
    pub directory_changed: bool,
}

impl UserPatch {
    /// Applies the patch to `record` (hashing a new password).
    pub fn apply(
        self,
        record: &mut UserRecord,
        policy: &super::PasswordPolicy,
    ) -> Result<PatchEffect, UserInputError> {
        let mut effect = PatchEffect::default();
        if record.user.username == NOBODY_USERNAME
            && (self.disabled == Some(true) || self.password.is_some())
        {
            return Err(UserInputError::NobodyFixed);
        }
        if let Some(disabled) = self.disabled {
            effect.disabled_changed = disabled != record.disabled;
            record.disabled = disabled;
        }
        for (new, field) in [
            (self.full_name, &mut record.user.full_name),
            (self.email, &mut record.user.email),
        ] {
            if let Some(v) = new {
                let v = Some(v).filter(|s| !s.is_empty());
                effect.directory_changed |= v != *field;
                *field = v;
            }
        }
        match self.password.as_deref() {
            None => {}
            Some("") => return Err(UserInputError::NoPassword),
            Some(p) => {
                policy.check(p).map_err(UserInputError::Policy)?;
                record.password_hash = Some(hash_password(p)?);
            }
        }
        Ok(effect)
    }
}

/// Why a user input was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UserInputError {
    /// Empty, too long, or with control characters, `/` or `:`.
    #[error("invalid username {0:?}")]
    BadUsername(String),
    /// `nobody` (in any case) is created by the server itself.
    #[error("the username \"nobody\" is reserved")]
    Reserved,
    /// A password is required.
    #[error("a password is required")]
    NoPassword,
    /// The password breaks the password policy (the message says how).
    #[error("{0}")]
    Policy(String),
    /// The nobody user cannot be disabled or given a password.
    #[error("the nobody user cannot be disabled or given a password")]
    NobodyFixed,
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
    /// Disabled: cannot sign in, signed out everywhere.
    pub disabled: bool,
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
            disabled: r.disabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests' passwords are short; the policy has its own tests.
    const LAX: crate::directory::PasswordPolicy =
        crate::directory::PasswordPolicy { min_length: 1 };

    #[test]
    fn record_round_trips_and_view_hides_hash() {
        let input: UserInput = serde_json::from_str(
            r#"{"username":"alice","password":"pw","email":"a@x","attributes":{"ward":"3"}}"#,
        )
        .unwrap();
        let rec = input.into_record(5, &LAX).unwrap();
        let json = serde_json::to_string(&rec).unwrap();
        let back: UserRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, rec);
        let view = serde_json::to_string(&UserView::from(&rec)).unwrap();
        assert!(!view.contains("argon2"));
        assert!(view.contains("\"has_password\":true"));
        let bad: UserInput =
            serde_json::from_str(r#"{"username":"nobody","password":"x"}"#).unwrap();
        assert!(!format!("{bad:?}").contains("\"x\""));
        assert!(matches!(
            bad.into_record(0, &LAX),
            Err(UserInputError::Reserved)
        ));
    }

    fn record(name: &str) -> UserRecord {
        UserRecord {
            user: User::new(name),
            password_hash: None,
            created_at: 1,
            disabled: false,
        }
    }

    #[test]
    fn old_records_read_as_enabled() {
        let old: UserRecord =
            serde_json::from_str(r#"{"username":"alice","password_hash":"h","created_at":3}"#)
                .unwrap();
        assert!(!old.disabled);
        let view = serde_json::to_value(UserView::from(&old)).unwrap();
        assert_eq!(view["disabled"], false);
    }

    #[test]
    fn patch_disables_and_edits() {
        let mut r = record("alice");
        let patch: UserPatch =
            serde_json::from_str(r#"{"disabled":true,"email":"a@x","full_name":""}"#).unwrap();
        let effect = patch.apply(&mut r, &LAX).unwrap();
        assert!(r.disabled);
        assert_eq!(r.user.email.as_deref(), Some("a@x"));
        assert_eq!(
            effect,
            PatchEffect {
                disabled_changed: true,
                directory_changed: true
            }
        );
        // Same value again: nothing changed.
        let again: UserPatch = serde_json::from_str(r#"{"disabled":true}"#).unwrap();
        assert_eq!(again.apply(&mut r, &LAX).unwrap(), PatchEffect::default());
        let enable: UserPatch = serde_json::from_str(r#"{"disabled":false}"#).unwrap();
        assert!(enable.apply(&mut r, &LAX).unwrap().disabled_changed);
        assert!(!r.disabled);
        // Unknown fields, empty passwords and disabling nobody are refused.
        assert!(serde_json::from_str::<UserPatch>(r#"{"disable":true}"#).is_err());
        let empty: UserPatch = serde_json::from_str(r#"{"password":""}"#).unwrap();
        assert!(matches!(
            empty.apply(&mut r, &LAX),
            Err(UserInputError::NoPassword)
        ));
        let mut nobody = record(NOBODY_USERNAME);
        let off: UserPatch = serde_json::from_str(r#"{"disabled":true}"#).unwrap();
        assert!(matches!(
            off.apply(&mut nobody, &LAX),
            Err(UserInputError::NobodyFixed)
        ));
        assert!(!nobody.disabled);
        let secret: UserPatch = serde_json::from_str(r#"{"password":"hunter2"}"#).unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn is_disabled_reads_the_store() {
        let store = baton_store::SledStore::temporary().unwrap();
        let users = baton_store::Collection::new(USERS_COLLECTION).unwrap();
        let mut r = record("alice");
        store
            .put(&users, b"alice", &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert!(!is_disabled(&store, "alice").unwrap());
        r.disabled = true;
        store
            .put(&users, b"alice", &serde_json::to_vec(&r).unwrap())
            .unwrap();
        assert!(is_disabled(&store, "alice").unwrap());
        assert!(!is_disabled(&store, "nobody-such").unwrap());
    }
}

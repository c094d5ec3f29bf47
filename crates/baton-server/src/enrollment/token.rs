//! Enrollment tokens: what an operator hands out so that a device may download an enrollment
//! profile (`GET /mdm/enroll?token=...`). Pure: records, validation and the use rule, with `now`
//! as an argument; [`super::store_token`] keeps them.
//!
//! A token string is `<id>.<secret>`: the id names the stored record (shown in lists, on the
//! devices it enrolled, in logs); the secret is 24 random bytes (base64url), stored only as its
//! SHA-256 and compared in constant time. Each profile download takes one use. The one-time
//! SCEP challenge (or the PKCS#12 identity) of that profile carries the enrollment hint
//! `enrollment-token:<id>/<use>`, which the CA copies to the certificate it issues, so the
//! Authenticate signed with that certificate names the token that let the device in.

use std::collections::BTreeSet;

use baton_proto::EnrollmentId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of the enrollment hint of certificates obtained with a token; the rest is
/// `<token id>/<use number>`.
pub const TOKEN_HINT_PREFIX: &str = "enrollment-token:";
/// Separator between a token's id and its secret.
pub const SECRET_SEPARATOR: char = '.';
/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 128;
/// Most uses one token may allow.
pub const MAX_USES: u32 = 100_000;
/// Longest lifetime, in seconds (one year).
pub const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;
/// Default lifetime, in seconds (seven days).
pub const DEFAULT_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Most entries in a serial allow-list or a re-enrollment list.
pub const MAX_LIST_ENTRIES: usize = 10_000;
/// Longest serial number accepted in an allow-list.
pub const MAX_SERIAL_CHARS: usize = 64;

/// A stored enrollment token (no secret, only its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentToken {
    /// The public id (12 hex characters).
    pub id: String,
    /// What the operator calls it.
    pub label: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was created, Unix milliseconds.
    pub created_at_ms: u64,
    /// Downloads are refused from this instant on, Unix milliseconds.
    pub expires_at_ms: u64,
    /// How many profile downloads it allows.
    pub max_uses: u32,
    /// How many it has had.
    pub uses: u32,
    /// When it was last used, Unix milliseconds.
    #[serde(default)]
    pub last_used_at_ms: Option<u64>,
    /// The static device group a device enrolled with it joins.
    #[serde(default)]
    pub device_group: Option<String>,
    /// When not empty, only devices reporting one of these serial numbers may enroll with it.
    #[serde(default)]
    pub serials: BTreeSet<String>,
    /// Devices (UDIDs) whose active enrollment a certificate obtained with it may replace.
    #[serde(default)]
    pub re_enroll: BTreeSet<String>,
    /// When an operator revoked it, Unix milliseconds.
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

/// Where a token stands at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TokenState {
    /// Downloads are accepted.
    Active,
    /// Past its expiry.
    Expired,
    /// Every use taken.
    UsedUp,
    /// Revoked by an operator.
    Revoked,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRefusal {
    /// No token was given (and open enrollment is off).
    #[error("an enrollment token is required: ask an operator for an enrollment URL")]
    Required,
    /// No token has this id, or the secret does not match.
    #[error("the enrollment token is not valid")]
    Invalid,
    /// The token expired.
    #[error("the enrollment token has expired")]
    Expired,
    /// Every use of the token was taken.
    #[error("the enrollment token has no uses left")]
    UsedUp,
    /// An operator revoked the token.
    #[error("the enrollment token was revoked")]
    Revoked,
}

impl TokenRefusal {
    /// The stable error code (`enrollment_token_required`, `_invalid`, `_expired`, `_used_up`,
    /// `_revoked`).
    pub fn code(self) -> &'static str {
        match self {
            TokenRefusal::Required => "enrollment_token_required",
            TokenRefusal::Invalid => "enrollment_token_invalid",
            TokenRefusal::Expired => "enrollment_token_expired",
            TokenRefusal::UsedUp => "enrollment_token_used_up",
            TokenRefusal::Revoked => "enrollment_token_revoked",
        }
    }
}

impl EnrollmentToken {
    /// Where the token stands at `now_ms` (revocation first, then expiry, then uses).
    pub fn state(&self, now_ms: u64) -> TokenState {
        if self.revoked_at_ms.is_some() {
            TokenState::Revoked
        } else if now_ms >= self.expires_at_ms {
            TokenState::Expired
        } else if self.uses >= self.max_uses {
            TokenState::UsedUp
        } else {
            TokenState::Active
        }
    }

    /// The record after one more use at `now_ms`, and that use's number (1-based); or why no
    /// use is left.
    pub fn take_use(&self, now_ms: u64) -> Result<(EnrollmentToken, u32), TokenRefusal> {
        match self.state(now_ms) {
            TokenState::Active => {}
            TokenState::Expired => return Err(TokenRefusal::Expired),
            TokenState::UsedUp => return Err(TokenRefusal::UsedUp),
            TokenState::Revoked => return Err(TokenRefusal::Revoked),
        }
        let number = self.uses + 1;
        Ok((
            EnrollmentToken {
                uses: number,
                last_used_at_ms: Some(now_ms),
                ..self.clone()
            },
            number,
        ))
    }

    /// True when `secret` (the part after the id) is this token's, compared in constant time.
    pub fn secret_matches(&self, secret: &str) -> bool {
        let presented = hex::encode(Sha256::digest(secret.as_bytes()));
        presented.len() == self.secret_sha256.len()
            && openssl::memcmp::eq(presented.as_bytes(), self.secret_sha256.as_bytes())
    }

    /// True when a device reporting `serial` may enroll with this token.
    pub fn allows_serial(&self, serial: Option<&str>) -> bool {
        self.serials.is_empty() || serial.is_some_and(|s| self.serials.contains(s))
    }

    /// True when a certificate obtained with this token may replace `device`'s active binding.
    pub fn allows_re_enrollment_of(&self, device: &EnrollmentId) -> bool {
        self.re_enroll.contains(device.device_part())
    }
}

/// SHA-256 of a secret, hex, as stored.
pub fn secret_sha256(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits a token string into (id, secret); `None` when it has no separator or an empty part.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once(SECRET_SEPARATOR)?;
    (!id.is_empty() && !secret.is_empty() && is_token_id(id)).then_some((id, secret))
}

/// True for a well-formed token id (1 to 32 lower-case hex digits).
pub fn is_token_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The enrollment hint of the `number`th use of token `id`.
pub fn hint(id: &str, number: u32) -> String {
    format!("{TOKEN_HINT_PREFIX}{id}/{number}")
}

/// The token id in an enrollment hint, when the certificate was obtained with a token.
pub fn token_of_hint(hint: &str) -> Option<&str> {
    let rest = hint.strip_prefix(TOKEN_HINT_PREFIX)?;
    let id = rest.split('/').next()?;
    is_token_id(id).then_some(id)
}

/// The use number in an enrollment hint (`enrollment-token:<id>/<n>`).
pub fn use_of_hint(hint: &str) -> Option<u32> {
    token_of_hint(hint)?;
    hint.rsplit_once('/')?.1.parse().ok()
}

/// A new token as the admin API takes it (`POST /api/v1/enrollment-tokens`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    /// What to call it (required, 1 to 128 characters).
    pub label: String,
    /// Seconds until it expires (60 s to one year; default seven days).
    #[serde(default)]
    pub expires_in_seconds: Option<u64>,
    /// How many downloads it allows (1 to 100,000; default 1).
    #[serde(default)]
    pub uses: Option<u32>,
    /// A static device group that enrolled devices join.
    #[serde(default)]
    pub device_group: Option<String>,
    /// Serial numbers allowed to enroll with it (empty: any).
    #[serde(default)]
    pub serials: Vec<String>,
    /// UDIDs whose active enrollment a device enrolling with it may replace.
    #[serde(default)]
    pub re_enroll: Vec<String>,
}

/// A validated [`TokenInput`]: everything but the id, secret and times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The label.
    pub label: String,
    /// Lifetime in milliseconds.
    pub lifetime_ms: u64,
    /// Uses.
    pub max_uses: u32,
    /// The device group.
    pub device_group: Option<String>,
    /// The serial allow-list.
    pub serials: BTreeSet<String>,
    /// The re-enrollment list (device ids).
    pub re_enroll: BTreeSet<String>,
}

impl TokenInput {
    /// Checks the bounds; the message says what is wrong.
    pub fn validate(self) -> Result<TokenSpec, String> {
        let label = self.label.trim().to_owned();
        if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
            return Err(format!("label must be 1 to {MAX_LABEL_CHARS} characters"));
        }
        if label.chars().any(char::is_control) {
            return Err("label must not contain control characters".into());
        }
        let lifetime = self.expires_in_seconds.unwrap_or(DEFAULT_LIFETIME_SECS);
        if !(60..=MAX_LIFETIME_SECS).contains(&lifetime) {
            return Err(format!(
                "expires_in_seconds must be between 60 and {MAX_LIFETIME_SECS}"
            ));
        }
        let max_uses = self.uses.unwrap_or(1);
        if !(1..=MAX_USES).contains(&max_uses) {
            return Err(format!("uses must be between 1 and {MAX_USES}"));
        }
        if self.serials.len() > MAX_LIST_ENTRIES || self.re_enroll.len() > MAX_LIST_ENTRIES {
            return Err(format!(
                "serials and re_enroll take at most {MAX_LIST_ENTRIES} entries"
            ));
        }
        let mut serials = BTreeSet::new();
        for s in self.serials {
            let s = s.trim().to_owned();
            if s.is_empty()
                || s.len() > MAX_SERIAL_CHARS
                || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(format!("invalid serial number {s:?}"));
            }
            serials.insert(s);
        }
        let mut re_enroll = BTreeSet::new();
        for udid in self.re_enroll {
            let id = EnrollmentId::device(udid.trim())
                .map_err(|e| format!("re_enroll: invalid device id {udid:?}: {e}"))?;
            re_enroll.insert(id.as_str().to_owned());
        }
        let device_group = match self.device_group.map(|g| g.trim().to_owned()) {
            Some(g) if g.is_empty() => None,
            other => other,
        };
        Ok(TokenSpec {
            label,
            lifetime_ms: lifetime * 1000,
            max_uses,
            device_group,
            serials,
            re_enroll,
        })
    }
}

impl TokenSpec {
    /// The record for a new token `id` with secret hash `secret_sha256`, created at `now_ms`.
    pub fn into_token(self, id: String, secret_sha256: String, now_ms: u64) -> EnrollmentToken {
        EnrollmentToken {
            id,
            label: self.label,
            secret_sha256,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.lifetime_ms),
            max_uses: self.max_uses,
            uses: 0,
            last_used_at_ms: None,
            device_group: self.device_group,
            serials: self.serials,
            re_enroll: self.re_enroll,
            revoked_at_ms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn token(uses: u32) -> EnrollmentToken {
        TokenInput {
            label: "cart 3".into(),
            uses: Some(uses),
            expires_in_seconds: Some(3600),
            ..TokenInput::default()
        }
        .validate()
        .unwrap()
        .into_token("0a1b2c3d4e5f".into(), secret_sha256("s3cret"), T0)
    }

    #[test]
    fn uses_are_counted_until_none_is_left() {
        let t = token(2);
        let (t, n) = t.take_use(T0 + 1).unwrap();
        assert_eq!((n, t.uses, t.last_used_at_ms), (1, 1, Some(T0 + 1)));
        let (t, n) = t.take_use(T0 + 2).unwrap();
        assert_eq!(n, 2);
        assert_eq!(t.take_use(T0 + 3), Err(TokenRefusal::UsedUp));
        assert_eq!(t.state(T0 + 3), TokenState::UsedUp);
    }

    #[test]
    fn expiry_and_revocation_win_over_uses() {
        let t = token(5);
        assert_eq!(
            t.take_use(T0 + 3_600_000),
            Err(TokenRefusal::Expired),
            "refused from the expiry instant on"
        );
        assert!(t.take_use(T0 + 3_599_999).is_ok());
        let revoked = EnrollmentToken {
            revoked_at_ms: Some(T0),
            ..t
        };
        assert_eq!(revoked.take_use(T0 + 1), Err(TokenRefusal::Revoked));
    }

    #[test]
    fn secrets_serials_and_re_enrollment() {
        let mut t = token(1);
        assert!(t.secret_matches("s3cret"));
        assert!(!t.secret_matches("s3cre"));
        assert!(t.allows_serial(None), "no allow-list: anyone");
        t.serials.insert("F9FXK1ABCD".into());
        assert!(t.allows_serial(Some("F9FXK1ABCD")));
        assert!(!t.allows_serial(Some("OTHER")));
        assert!(!t.allows_serial(None));
        t.re_enroll.insert("UDID-1".into());
        assert!(t.allows_re_enrollment_of(&EnrollmentId::device("UDID-1").unwrap()));
        assert!(!t.allows_re_enrollment_of(&EnrollmentId::device("UDID-2").unwrap()));
    }

    #[test]
    fn token_strings_and_hints() {
        assert_eq!(split_token("0a1b.c2d3"), Some(("0a1b", "c2d3")));
        assert_eq!(split_token("0a1b"), None);
        assert_eq!(split_token(".x"), None);
        assert_eq!(split_token("0a1b."), None);
        assert_eq!(split_token("ZZ.x"), None, "ids are lower-case hex");
        let h = hint("0a1b2c3d4e5f", 7);
        assert_eq!(h, "enrollment-token:0a1b2c3d4e5f/7");
        assert_eq!(token_of_hint(&h), Some("0a1b2c3d4e5f"));
        assert_eq!(use_of_hint(&h), Some(7));
        assert_eq!(use_of_hint("renewal:UDID/3"), None);
        assert_eq!(token_of_hint("renewal:UDID"), None);
        assert_eq!(token_of_hint("enrollment-token:../x"), None);
    }

    #[test]
    fn input_bounds() {
        let ok = |input: TokenInput| input.validate();
        let base = || TokenInput {
            label: "x".into(),
            ..TokenInput::default()
        };
        let spec = ok(base()).unwrap();
        assert_eq!(spec.max_uses, 1);
        assert_eq!(spec.lifetime_ms, DEFAULT_LIFETIME_SECS * 1000);
        assert!(
            ok(TokenInput {
                label: " ".into(),
                ..base()
            })
            .is_err()
        );
        assert!(
            ok(TokenInput {
                uses: Some(0),
                ..base()
            })
            .is_err()
        );
        assert!(
            ok(TokenInput {
                expires_in_seconds: Some(59),
                ..base()
            })
            .is_err()
        );
        assert!(
            ok(TokenInput {
                serials: vec!["bad serial".into()],
                ..base()
            })
            .is_err()
        );
        assert!(
            ok(TokenInput {
                re_enroll: vec!["a:b".into()],
                ..base()
            })
            .is_err(),
            "a user channel is not a device"
        );
        let json = r#"{"label":"x","uses":3,"colour":"red"}"#;
        assert!(
            serde_json::from_str::<TokenInput>(json).is_err(),
            "unknown fields are refused"
        );
    }
}

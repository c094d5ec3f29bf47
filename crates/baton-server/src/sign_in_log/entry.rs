//! One sign-in log entry and its stable codes: [`SignInResult`], [`ReasonCode`] and
//! [`SignInHow`], spelled in snake_case in JSON, CSV and the API's filters.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use baton_store::unix_millis;
use serde::{Deserialize, Serialize};

use crate::sign_in_risk::{Risk, RiskLevel};
use crate::timestamp::rfc3339_millis;

/// Longest stored username, in characters (longer typed names are cut).
pub const MAX_USERNAME_CHARS: usize = 128;
/// Longest stored device id, in characters.
pub const MAX_DEVICE_CHARS: usize = 256;
/// Longest stored source address, in characters.
pub const MAX_SOURCE_ADDRESS_CHARS: usize = 64;
/// Longest stored detail text, in characters.
pub const MAX_DETAIL_CHARS: usize = 512;
/// Most risk reasons kept on one entry.
pub const MAX_RISK_REASONS: usize = 8;

/// One sign-in attempt (or automatic sign-out), as stored, listed and sent to webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInEntry {
    /// When, RFC 3339 UTC with milliseconds (`2024-05-01T12:34:56.789Z`).
    pub time: String,
    /// When, Unix milliseconds (the same instant as `time`).
    pub time_ms: u64,
    /// The username: as typed for failures, the directory name for successes.
    pub username: String,
    /// The device's enrollment id (its UDID, or EnrollmentID).
    pub device: String,
    /// The client's address as the server saw it, when known.
    #[serde(default)]
    pub source_address: Option<String>,
    /// Where the attempt came from.
    pub how: SignInHow,
    /// The outcome.
    pub result: SignInResult,
    /// The stable reason code.
    pub reason: ReasonCode,
    /// The sign-in risk level.
    #[serde(default)]
    pub risk: RiskLevel,
    /// Why the risk is high (`recent_failures_user`, `recent_failures_device`,
    /// `new_device_for_user`, `lockout_just_ended`).
    #[serde(default)]
    pub risk_reasons: Vec<String>,
    /// True when the "Stay signed in?" prompt was shown.
    #[serde(default)]
    pub kmsi_shown: bool,
    /// The prompt's answer: true for yes, false for no, none when not shown or not answered.
    #[serde(default)]
    pub kmsi_answer: Option<bool>,
    /// A short human-readable note (e.g. the lockout end), never a secret.
    #[serde(default)]
    pub detail: Option<String>,
}

impl SignInEntry {
    /// An entry at `now` with low risk, no prompt and no detail. Text fields are bounded
    /// (see [`SignInEntry::bounded`]).
    pub fn new(
        now: SystemTime,
        username: &str,
        device: &str,
        how: SignInHow,
        result: SignInResult,
        reason: ReasonCode,
    ) -> Self {
        let time_ms = unix_millis(now);
        Self {
            time: rfc3339_millis(time_ms),
            time_ms,
            username: username.to_owned(),
            device: device.to_owned(),
            source_address: None,
            how,
            result,
            reason,
            risk: RiskLevel::Low,
            risk_reasons: Vec::new(),
            kmsi_shown: false,
            kmsi_answer: None,
            detail: None,
        }
        .bounded()
    }

    /// Sets the source address.
    #[must_use]
    pub fn with_source_address(mut self, address: Option<String>) -> Self {
        self.source_address = address.map(|a| cut(&a, MAX_SOURCE_ADDRESS_CHARS));
        self
    }

    /// Sets the risk level and reasons.
    #[must_use]
    pub fn with_risk(mut self, risk: &Risk) -> Self {
        self.risk = risk.level;
        self.risk_reasons = risk.reason_codes();
        self
    }

    /// Sets whether the prompt was shown and its answer.
    #[must_use]
    pub fn with_kmsi(mut self, shown: bool, answer: Option<bool>) -> Self {
        self.kmsi_shown = shown;
        self.kmsi_answer = answer;
        self
    }

    /// Sets the detail text.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(cut(&detail.into(), MAX_DETAIL_CHARS));
        self
    }

    /// The entry with every text field cut to its bound and `time` re-derived from
    /// `time_ms` (so the two always agree in storage).
    #[must_use]
    pub fn bounded(mut self) -> Self {
        self.time = rfc3339_millis(self.time_ms);
        self.username = cut(&self.username, MAX_USERNAME_CHARS);
        self.device = cut(&self.device, MAX_DEVICE_CHARS);
        self.source_address = self
            .source_address
            .map(|a| cut(&a, MAX_SOURCE_ADDRESS_CHARS));
        self.detail = self.detail.map(|d| cut(&d, MAX_DETAIL_CHARS));
        self.risk_reasons.truncate(MAX_RISK_REASONS);
        for r in &mut self.risk_reasons {
            *r = cut(r, 64);
        }
        self
    }
}

/// The first `max` characters of `s`.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => s[..end].to_owned(),
        None => s.to_owned(),
    }
}

/// A filter value that is not one of the codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {expected})")]
pub struct UnknownCode {
    /// What was parsed (`result`, `reason`, `how`).
    pub kind: &'static str,
    /// The value given.
    pub value: String,
    /// The accepted codes, comma-separated.
    pub expected: String,
}

/// Defines a snake_case code enum with `as_str`, `ALL`, `Display` and `FromStr`.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every code, in documentation order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable snake_case code.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $code),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let wanted = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|c| c.as_str().eq_ignore_ascii_case(wanted))
                    .ok_or_else(|| UnknownCode {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: $name::ALL
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }
    };
}

code_enum!(
    /// The outcome of an attempt.
    SignInResult, "result" {
        /// The person was signed in.
        Success => "success",
        /// The attempt was refused.
        Failure => "failure",
        /// The password was right and the person is signed in; "Stay signed in?" is being
        /// asked (logged when shown; the answer follows as `success`, or `interrupted`).
        Prompted => "prompted",
        /// The "Stay signed in?" prompt was shown and not answered in time.
        Interrupted => "interrupted",
        /// An automatic sign-out (lease or shift end, disabled user, re-enrollment).
        SignedOut => "signed_out",
    }
);

code_enum!(
    /// Why an attempt ended the way it did.
    ReasonCode, "reason" {
        /// Signed in.
        Success => "success",
        /// Unknown user or wrong password (the two are not told apart).
        BadCredentials => "bad_credentials",
        /// The user or the device is locked out after repeated failures; the password was not
        /// checked.
        LockedOut => "locked_out",
        /// The user is disabled (refused at sign-in, or signed out automatically).
        DisabledUser => "disabled_user",
        /// Refused by a rule, e.g. the device is in use by someone else.
        Policy => "policy",
        /// Signed in; "Stay signed in?" shown.
        StaySignedInPrompt => "stay_signed_in_prompt",
        /// The prompt was not answered within the prompt timeout.
        Interrupted => "interrupted",
        /// An automatic sign-out at the end of a lease or shift.
        Expired => "expired",
        /// The device enrolled again (a new Authenticate) while someone was signed in.
        ReEnrolled => "re_enrolled",
        /// The device left management (CheckOut, e.g. its MDM profile was removed) while
        /// someone was signed in.
        CheckedOut => "checked_out",
        /// The person signed out in the portal, or an operator signed them out.
        SignOut => "sign_out",
    }
);

code_enum!(
    /// Where an attempt came from.
    SignInHow, "how" {
        /// The sign-in portal on the device.
        Portal => "portal",
        /// An operator through the admin API.
        Admin => "admin",
        /// The server itself (lease sweeper).
        Automatic => "automatic",
    }
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn codes_serialize_in_snake_case_and_parse_back() {
        let entry = SignInEntry::new(
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            "Alice",
            "UDID-1",
            SignInHow::Portal,
            SignInResult::SignedOut,
            ReasonCode::BadCredentials,
        );
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["result"], "signed_out");
        assert_eq!(json["reason"], "bad_credentials");
        assert_eq!(json["how"], "portal");
        assert_eq!(json["risk"], "low");
        assert_eq!(json["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(json["time_ms"], 1_700_000_000_123_u64);
        let back: SignInEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
        for r in ReasonCode::ALL {
            assert_eq!(r.as_str().parse::<ReasonCode>().unwrap(), *r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        for r in SignInResult::ALL {
            assert_eq!(r.as_str().parse::<SignInResult>().unwrap(), *r);
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(
            "LOCKED_OUT".parse::<ReasonCode>().unwrap(),
            ReasonCode::LockedOut
        );
        let err = "nope".parse::<SignInResult>().unwrap_err();
        assert!(err.to_string().contains("signed_out"), "{err}");
    }

    #[test]
    fn text_fields_are_bounded_by_characters() {
        let long = "é".repeat(MAX_USERNAME_CHARS + 50);
        let entry = SignInEntry::new(
            SystemTime::UNIX_EPOCH,
            &long,
            "D",
            SignInHow::Portal,
            SignInResult::Failure,
            ReasonCode::BadCredentials,
        )
        .with_detail("x".repeat(10_000))
        .with_source_address(Some("1".repeat(500)));
        assert_eq!(entry.username.chars().count(), MAX_USERNAME_CHARS);
        assert_eq!(
            entry.detail.as_deref().map(|d| d.chars().count()),
            Some(MAX_DETAIL_CHARS)
        );
        assert_eq!(
            entry.source_address.as_deref().map(str::len),
            Some(MAX_SOURCE_ADDRESS_CHARS)
        );
        let short = SignInEntry::new(
            SystemTime::UNIX_EPOCH,
            "bob",
            "D",
            SignInHow::Admin,
            SignInResult::Success,
            ReasonCode::Success,
        );
        assert_eq!(short.username, "bob");
    }
}

//! What a device's MDM profile says that iOS will not let a replacement change, pure.
//!
//! Identity renewal replaces the MDM profile with a fresh one of the same identifier. iOS accepts
//! the replacement only when `Topic`, `ServerURL`, `CheckInURL` (and `EnrollmentMode`,
//! `ManagedAppleID`, `RequiredAppIDForMDM`, which Baton never sets) and the per-user-connections
//! server capability are unchanged and `AccessRights` does not grow; otherwise it answers
//! Error 12012 (decompiled iOS `MCInstaller`; micromdm issue 903). So a renewal profile must carry
//! the values the device enrolled with, not the server's current ones: [`EnrollmentTerms`] is
//! recorded per device at enrollment ([`super::store_terms`]) and renewal profiles keep it.
//! [`EnrollmentTerms::drift`] names what an operator changed since (the public URL, the APNs
//! topic, …): the devices keep the old values until they enroll again.
//!
//! iOS versions spell the 12012 ErrorDomain differently (`MCMDMErrorDomain`, `MDMErrorDomain`):
//! refusals are recognised by code alone ([`is_replacement_refusal`]).

use baton_proto::{ACCESS_RIGHTS_ALL, ErrorChainItem};
use serde::{Deserialize, Serialize};

/// iOS's code for a replacement MDM profile that changes an invariant field or adds access
/// rights (`MDM_ERROR_REPLACEMENT_MISMATCH` / `…TOO_MUCH_RIGHTS`).
pub const REPLACEMENT_REFUSED: i64 = 12012;

/// True when the ErrorChain holds iOS's replacement refusal, in any ErrorDomain.
pub fn is_replacement_refusal(chain: &[ErrorChainItem]) -> bool {
    chain.iter().any(|item| item.code == REPLACEMENT_REFUSED)
}

/// The replacement-invariant fields of an MDM profile Baton issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentTerms {
    /// `ServerURL`.
    pub server_url: String,
    /// `CheckInURL`.
    pub check_in_url: String,
    /// `Topic`.
    pub topic: String,
    /// `AccessRights`.
    pub access_rights: i64,
    /// `ServerCapabilities` holds `com.apple.mdm.per-user-connections`.
    pub per_user_connections: bool,
}

/// A field whose current value differs from what a device enrolled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum TermDrift {
    /// The public URL changed: `ServerURL` differs.
    ServerUrl,
    /// `CheckInURL` differs.
    CheckInUrl,
    /// The APNs topic (push certificate) changed.
    Topic,
    /// The server now asks for access rights the device did not grant.
    AccessRightsGrew,
    /// The per-user-connections capability differs.
    Capabilities,
}

impl TermDrift {
    /// The MDM payload key.
    pub fn field(self) -> &'static str {
        match self {
            TermDrift::ServerUrl => "ServerURL",
            TermDrift::CheckInUrl => "CheckInURL",
            TermDrift::Topic => "Topic",
            TermDrift::AccessRightsGrew => "AccessRights",
            TermDrift::Capabilities => "ServerCapabilities",
        }
    }
}

impl EnrollmentTerms {
    /// The terms of a profile this server issues now: Baton's paths under `public_url`, `topic`,
    /// every access right and the per-user-connections capability.
    pub fn issued_now(public_url: &str, topic: &str) -> Self {
        let base = public_url.trim_end_matches('/');
        Self {
            server_url: format!("{base}/mdm/connect"),
            check_in_url: format!("{base}/mdm/checkin"),
            topic: topic.to_owned(),
            access_rights: ACCESS_RIGHTS_ALL,
            per_user_connections: true,
        }
    }

    /// What differs in `current` from these (enrolled) terms in a way iOS would refuse in a
    /// replacement. Fewer access rights are no drift.
    pub fn drift(&self, current: &EnrollmentTerms) -> Vec<TermDrift> {
        let mut out = Vec::new();
        if self.server_url != current.server_url {
            out.push(TermDrift::ServerUrl);
        }
        if self.check_in_url != current.check_in_url {
            out.push(TermDrift::CheckInUrl);
        }
        if self.topic != current.topic {
            out.push(TermDrift::Topic);
        }
        if current.access_rights & !self.access_rights != 0 {
            out.push(TermDrift::AccessRightsGrew);
        }
        if self.per_user_connections != current.per_user_connections {
            out.push(TermDrift::Capabilities);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_names_what_ios_would_refuse_to_change() {
        let enrolled = EnrollmentTerms::issued_now("https://old.example/", "topic");
        assert_eq!(enrolled.server_url, "https://old.example/mdm/connect");
        assert!(enrolled.drift(&enrolled).is_empty());
        let moved = EnrollmentTerms::issued_now("https://new.example", "other");
        assert_eq!(
            enrolled.drift(&moved),
            [
                TermDrift::ServerUrl,
                TermDrift::CheckInUrl,
                TermDrift::Topic
            ]
        );
        let fewer = EnrollmentTerms {
            access_rights: 4095,
            ..enrolled.clone()
        };
        assert!(enrolled.drift(&fewer).is_empty(), "fewer rights are fine");
        assert_eq!(fewer.drift(&enrolled), [TermDrift::AccessRightsGrew]);
        assert_eq!(TermDrift::AccessRightsGrew.field(), "AccessRights");
    }

    #[test]
    fn refusals_are_recognised_by_code_in_any_domain() {
        let item = |domain: &str, code| ErrorChainItem {
            code,
            domain: domain.into(),
            localized_description: None,
            us_english_description: None,
        };
        assert!(is_replacement_refusal(&[item("MCMDMErrorDomain", 12012)]));
        assert!(is_replacement_refusal(&[
            item("MCInstallationErrorDomain", 4001),
            item("MDMErrorDomain", 12012)
        ]));
        assert!(!is_replacement_refusal(&[item("MCMDMErrorDomain", 12021)]));
    }
}

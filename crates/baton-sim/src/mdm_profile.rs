//! The MDM (enrollment) profile as iOS guards it, pure: what an InstallProfile with the same
//! identifier may change when it replaces the installed MDM profile (Baton's identity renewal).
//!
//! iOS's profiled (`-[MCInstaller _validateMDMReplacementNewProfile:oldProfile:client:]`,
//! decompiled iOS 18.0 \[I\]; peers' reports \[M903\]) replaces the MDM profile, and with it the
//! device identity, only when `Topic`, `ServerURL`, `CheckInURL`, `EnrollmentMode`,
//! `ManagedAppleID`, `RequiredAppIDForMDM` and the per-user-connections server capability are
//! unchanged and `AccessRights` does not grow; otherwise it answers `MCMDMErrorDomain` 12012
//! (`MDM_ERROR_REPLACEMENT_MISMATCH` / `…TOO_MUCH_RIGHTS`). A replacement without an MDM
//! payload is refused with `MCInstallationErrorDomain` 4015.

use baton_proto::plist::Value;
use baton_proto::{CAPABILITY_PER_USER_CONNECTIONS, ErrorChainItem, Profile};
use serde::{Deserialize, Serialize};

use crate::ios_commands::{INSTALLATION_DOMAIN, MCMDM_DOMAIN, chain_item};

/// The `com.apple.mdm` payload type.
pub const MDM_PAYLOAD_TYPE: &str = "com.apple.mdm";

/// iOS's code for a replacement MDM profile that changes an invariant field or adds access
/// rights \[I\].
pub const REPLACEMENT_MISMATCH: i64 = 12012;

/// iOS's code for replacing the MDM profile with a profile that has no MDM payload \[I\].
pub const REPLACEMENT_WITHOUT_MDM: i64 = 4015;

/// What an installed MDM payload says, as far as a replacement and removal care.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmTerms {
    /// `Topic`.
    pub topic: Option<String>,
    /// `ServerURL`.
    pub server_url: Option<String>,
    /// `CheckInURL`.
    pub check_in_url: Option<String>,
    /// `EnrollmentMode` (user enrollment).
    pub enrollment_mode: Option<String>,
    /// `ManagedAppleID`.
    pub managed_apple_id: Option<String>,
    /// `RequiredAppIDForMDM`.
    pub required_app_id_for_mdm: Option<String>,
    /// `ServerCapabilities` holds `com.apple.mdm.per-user-connections`.
    pub per_user_connections: bool,
    /// `AccessRights`.
    pub access_rights: i64,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: bool,
}

/// Why a replacement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplacementRefusal {
    /// The new profile has no `com.apple.mdm` payload.
    NoMdmPayload,
    /// A field iOS keeps was changed.
    Mismatch {
        /// The payload key.
        field: &'static str,
    },
    /// `AccessRights` grew (bits the installed profile does not have).
    TooManyRights {
        /// The installed rights.
        installed: i64,
        /// The new profile's rights.
        requested: i64,
    },
}

impl ReplacementRefusal {
    /// The ErrorChain iOS sends.
    pub fn chain(&self) -> Vec<ErrorChainItem> {
        match self {
            ReplacementRefusal::NoMdmPayload => vec![chain_item(
                INSTALLATION_DOMAIN,
                REPLACEMENT_WITHOUT_MDM,
                "The replacement profile does not contain an MDM payload.",
            )],
            ReplacementRefusal::Mismatch { field } => vec![chain_item(
                MCMDM_DOMAIN,
                REPLACEMENT_MISMATCH,
                format!("The new MDM payload does not match the old payload ({field})."),
            )],
            ReplacementRefusal::TooManyRights { .. } => vec![chain_item(
                MCMDM_DOMAIN,
                REPLACEMENT_MISMATCH,
                "The new MDM payload requests more access rights than the old payload.",
            )],
        }
    }
}

fn text(content: &baton_proto::plist::Dictionary, key: &str) -> Option<String> {
    content
        .get(key)
        .and_then(Value::as_string)
        .map(str::to_owned)
}

/// The MDM terms of `profile`, or `None` without a `com.apple.mdm` payload.
pub fn mdm_terms(profile: &Profile) -> Option<MdmTerms> {
    let mdm = profile
        .payloads
        .iter()
        .find(|p| p.payload_type == MDM_PAYLOAD_TYPE)?;
    let c = &mdm.content;
    Some(MdmTerms {
        topic: text(c, "Topic"),
        server_url: text(c, "ServerURL"),
        check_in_url: text(c, "CheckInURL"),
        enrollment_mode: text(c, "EnrollmentMode"),
        managed_apple_id: text(c, "ManagedAppleID"),
        required_app_id_for_mdm: text(c, "RequiredAppIDForMDM"),
        per_user_connections: c
            .get("ServerCapabilities")
            .and_then(Value::as_array)
            .is_some_and(|caps| {
                caps.iter()
                    .any(|v| v.as_string() == Some(CAPABILITY_PER_USER_CONNECTIONS))
            }),
        access_rights: c
            .get("AccessRights")
            .and_then(Value::as_signed_integer)
            .unwrap_or(0),
        check_out_when_removed: c
            .get("CheckOutWhenRemoved")
            .and_then(Value::as_boolean)
            .unwrap_or(false),
    })
}

/// Whether `new` may replace an MDM profile installed with `installed` \[I\]: the new terms, or
/// the refusal.
pub fn check_replacement(
    installed: &MdmTerms,
    new: &Profile,
) -> Result<MdmTerms, ReplacementRefusal> {
    let terms = mdm_terms(new).ok_or(ReplacementRefusal::NoMdmPayload)?;
    let same: [(&'static str, bool); 7] = [
        ("Topic", installed.topic == terms.topic),
        ("ServerURL", installed.server_url == terms.server_url),
        ("CheckInURL", installed.check_in_url == terms.check_in_url),
        (
            "EnrollmentMode",
            installed.enrollment_mode == terms.enrollment_mode,
        ),
        (
            "ManagedAppleID",
            installed.managed_apple_id == terms.managed_apple_id,
        ),
        (
            "RequiredAppIDForMDM",
            installed.required_app_id_for_mdm == terms.required_app_id_for_mdm,
        ),
        (
            "ServerCapabilities",
            installed.per_user_connections == terms.per_user_connections,
        ),
    ];
    if let Some((field, _)) = same.iter().find(|(_, same)| !same) {
        return Err(ReplacementRefusal::Mismatch { field });
    }
    if terms.access_rights & !installed.access_rights != 0 {
        return Err(ReplacementRefusal::TooManyRights {
            installed: installed.access_rights,
            requested: terms.access_rights,
        });
    }
    Ok(terms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::MdmPayload;

    fn profile(mdm: Option<MdmPayload>) -> Profile {
        let p = Profile::new("io.baton.enrollment", "P");
        match mdm {
            Some(m) => p.with_payload(m.into_payload("io.baton.enrollment.mdm", "M")),
            None => p,
        }
    }

    fn payload() -> MdmPayload {
        MdmPayload::new(
            "ID",
            "topic",
            "https://a/mdm/connect",
            "https://a/mdm/checkin",
        )
    }

    #[test]
    fn invariant_fields_and_rights_decide() {
        let installed = mdm_terms(&profile(Some(payload()))).unwrap();
        assert!(installed.per_user_connections && installed.check_out_when_removed);
        assert_eq!(
            check_replacement(&installed, &profile(Some(payload()))),
            Ok(installed.clone())
        );
        let mut fewer = payload();
        fewer.access_rights = 4095;
        assert!(check_replacement(&installed, &profile(Some(fewer.clone()))).is_ok());
        let smaller = mdm_terms(&profile(Some(fewer))).unwrap();
        assert!(matches!(
            check_replacement(&smaller, &profile(Some(payload()))),
            Err(ReplacementRefusal::TooManyRights {
                installed: 4095,
                requested: 8191
            })
        ));
        let mut moved = payload();
        moved.check_in_url = Some("https://b/mdm/checkin".into());
        assert_eq!(
            check_replacement(&installed, &profile(Some(moved))),
            Err(ReplacementRefusal::Mismatch {
                field: "CheckInURL"
            })
        );
        let mut no_caps = payload();
        no_caps.server_capabilities.clear();
        assert_eq!(
            check_replacement(&installed, &profile(Some(no_caps))),
            Err(ReplacementRefusal::Mismatch {
                field: "ServerCapabilities"
            })
        );
        let refusal = check_replacement(&installed, &profile(None)).unwrap_err();
        assert_eq!(refusal, ReplacementRefusal::NoMdmPayload);
        assert_eq!(refusal.chain()[0].code, 4015);
    }
}

//! Reading an MDM enrollment profile the way a device does: the `com.apple.mdm` payload
//! (ServerURL, CheckInURL, Topic, SignMessage) and the identity payload it names
//! (`com.apple.security.scep` or `com.apple.security.pkcs12`).

use baton_proto::Profile;
use baton_proto::plist::Value;
use serde::{Deserialize, Serialize};

use crate::SimError;
use crate::inventory::InstalledProfile;
use crate::ios_commands::{installed_profile, parse_profile};

/// The URLs and topic a device talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEndpoints {
    /// `ServerURL`: the command channel.
    pub server_url: String,
    /// `CheckInURL`: the check-in channel.
    pub check_in_url: String,
    /// `Topic`.
    pub topic: String,
}

/// The APNs topic simulated devices report when none is given.
pub const DEFAULT_TOPIC: &str = "com.apple.mgmt.External.5a1f7c2e-0b6d-4e8a-9c3f-1d2e3f4a5b6c";

impl ServerEndpoints {
    /// Baton's paths under `origin` (`/mdm/connect`, `/mdm/checkin`) with the default topic.
    pub fn baton(origin: &str) -> Self {
        let origin = origin.trim_end_matches('/');
        Self {
            server_url: format!("{origin}/mdm/connect"),
            check_in_url: format!("{origin}/mdm/checkin"),
            topic: DEFAULT_TOPIC.to_owned(),
        }
    }
}

/// Where the device gets its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// Enroll with SCEP.
    Scep {
        /// SCEP URL.
        url: String,
        /// Challenge. A secret.
        challenge: Option<String>,
        /// Key size.
        key_bits: u32,
    },
    /// A PKCS#12 in the profile.
    Pkcs12 {
        /// The PKCS#12 bytes.
        der: Vec<u8>,
        /// Its password. A secret.
        password: String,
    },
}

/// What an enrollment profile tells the device.
#[derive(Debug, Clone)]
pub struct EnrollmentSettings {
    /// URLs and topic.
    pub endpoints: ServerEndpoints,
    /// `SignMessage`.
    pub sign_message: bool,
    /// The identity payload.
    pub identity: IdentitySource,
    /// The profile as ProfileList will show it.
    pub profile: InstalledProfile,
}

fn bad(reason: impl Into<String>) -> SimError {
    SimError::EnrollmentProfile(reason.into())
}

/// Reads an enrollment profile (signed or not).
pub fn read_enrollment_profile(bytes: &[u8]) -> Result<EnrollmentSettings, SimError> {
    let profile: Profile = parse_profile(bytes).map_err(bad)?;
    let mdm = profile
        .payloads
        .iter()
        .find(|p| p.payload_type == "com.apple.mdm")
        .ok_or_else(|| bad("no com.apple.mdm payload"))?;
    let text = |key: &str| mdm.content.get(key).and_then(Value::as_string);
    let server_url = text("ServerURL").ok_or_else(|| bad("ServerURL missing"))?;
    let check_in_url = text("CheckInURL").unwrap_or(server_url);
    let topic = text("Topic").ok_or_else(|| bad("Topic missing"))?;
    let sign_message = mdm
        .content
        .get("SignMessage")
        .and_then(Value::as_boolean)
        .unwrap_or(false);
    let identity_uuid =
        text("IdentityCertificateUUID").ok_or_else(|| bad("IdentityCertificateUUID missing"))?;
    let id_payload = profile
        .payloads
        .iter()
        .find(|p| p.uuid == identity_uuid)
        .ok_or_else(|| bad("no payload has the IdentityCertificateUUID"))?;
    let identity = match id_payload.payload_type.as_str() {
        "com.apple.security.scep" => {
            let scep = id_payload
                .content
                .get("PayloadContent")
                .and_then(Value::as_dictionary)
                .ok_or_else(|| bad("SCEP payload has no PayloadContent"))?;
            IdentitySource::Scep {
                url: scep
                    .get("URL")
                    .and_then(Value::as_string)
                    .ok_or_else(|| bad("SCEP URL missing"))?
                    .to_owned(),
                challenge: scep
                    .get("Challenge")
                    .and_then(Value::as_string)
                    .map(str::to_owned),
                key_bits: scep
                    .get("Keysize")
                    .and_then(Value::as_signed_integer)
                    .and_then(|k| u32::try_from(k).ok())
                    .unwrap_or(2048),
            }
        }
        "com.apple.security.pkcs12" => IdentitySource::Pkcs12 {
            der: id_payload
                .content
                .get("PayloadContent")
                .and_then(Value::as_data)
                .ok_or_else(|| bad("PKCS#12 payload has no PayloadContent"))?
                .to_vec(),
            password: id_payload
                .content
                .get("Password")
                .and_then(Value::as_string)
                .unwrap_or_default()
                .to_owned(),
        },
        other => return Err(bad(format!("identity payload of type {other}"))),
    };
    Ok(EnrollmentSettings {
        endpoints: ServerEndpoints {
            server_url: server_url.to_owned(),
            check_in_url: check_in_url.to_owned(),
            topic: topic.to_owned(),
        },
        sign_message,
        identity,
        profile: installed_profile(&profile, false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::{MdmPayload, Pkcs12Payload, ScepPayload};

    #[test]
    fn reads_scep_and_pkcs12_enrollment_profiles() {
        let mut scep = ScepPayload::new("https://mdm.example/scep");
        scep.challenge = Some("s3cret".into());
        let mdm = MdmPayload::new(
            "SCEP-UUID",
            "com.apple.mgmt.External.x",
            "https://mdm.example/mdm/connect",
            "https://mdm.example/mdm/checkin",
        );
        let bytes = Profile::new("com.example.enroll", "P-UUID")
            .with_payload(scep.into_payload("com.example.enroll.scep", "SCEP-UUID"))
            .with_payload(mdm.into_payload("com.example.enroll.mdm", "MDM-UUID"))
            .to_xml()
            .unwrap();
        let s = read_enrollment_profile(&bytes).unwrap();
        assert_eq!(s.endpoints.check_in_url, "https://mdm.example/mdm/checkin");
        assert_eq!(s.endpoints.topic, "com.apple.mgmt.External.x");
        assert!(s.sign_message);
        assert_eq!(
            s.identity,
            IdentitySource::Scep {
                url: "https://mdm.example/scep".into(),
                challenge: Some("s3cret".into()),
                key_bits: 2048
            }
        );
        assert!(!s.profile.managed);
        assert_eq!(s.profile.payloads.len(), 2);

        let mdm = MdmPayload::new("P12", "t", "https://m/connect", "https://m/checkin");
        let bytes = Profile::new("e", "u")
            .with_payload(
                Pkcs12Payload::new(vec![1, 2, 3], Some("pw".into())).into_payload("e.p12", "P12"),
            )
            .with_payload(mdm.into_payload("e.mdm", "M"))
            .to_xml()
            .unwrap();
        let s = read_enrollment_profile(&bytes).unwrap();
        assert!(
            matches!(s.identity, IdentitySource::Pkcs12 { ref password, .. } if password == "pw")
        );

        // No MDM payload: refused.
        let bytes = Profile::new("e", "u").to_xml().unwrap();
        assert!(read_enrollment_profile(&bytes).is_err());
    }
}

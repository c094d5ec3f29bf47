//! The enrollment profile's content, built from plain values (no store, no clock, no keys): the
//! identity payload (SCEP with a challenge, or a server-made PKCS#12), the `com.apple.mdm`
//! payload pointing at it, and the root certificate when the server's TLS chain is private.
//! The root comes first: iOS installs a profile's payloads in order, and a root installed by the
//! same profile as an MDM payload is trusted for the server's TLS during that enrollment (SCEP,
//! Authenticate, TokenUpdate), without the person touching Certificate Trust Settings.
//!
//! Also the trust profile ([`TrustProfileSpec`], served at `/mdm/trust`): that root alone, for
//! when a device must trust the server before it enrolls.
//!
//! Identifiers are stable (`<prefix>.enrollment`, `<prefix>.enrollment.scep`, …) so a renewal
//! replaces the installed profile; the caller supplies fresh UUIDs for every download.

use baton_proto::{
    MdmPayload, Payload, Pkcs12Payload, Profile, RootCertificatePayload, ScepPayload,
};

use super::enrollment_terms::EnrollmentTerms;

/// The device identity the profile carries.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityPayload {
    /// The device enrolls over SCEP.
    Scep {
        /// The SCEP URL.
        url: String,
        /// The challenge password. Secret.
        challenge: String,
        /// The requested subject as (short name, value) pairs.
        subject: Vec<(String, String)>,
    },
    /// A ready-made identity.
    Pkcs12 {
        /// The PKCS#12 bytes.
        content: Vec<u8>,
        /// Its password. Secret.
        password: String,
    },
}

impl std::fmt::Debug for IdentityPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Scep { url, subject, .. } => f
                .debug_struct("Scep")
                .field("url", url)
                .field("subject", subject)
                .finish_non_exhaustive(),
            Self::Pkcs12 { content, .. } => f
                .debug_struct("Pkcs12")
                .field("content_len", &content.len())
                .finish_non_exhaustive(),
        }
    }
}

/// Everything the enrollment profile is made of.
#[derive(Debug, Clone)]
pub struct EnrollmentProfileSpec {
    /// Identifier prefix (`io.baton` gives `io.baton.enrollment`).
    pub identifier_prefix: String,
    /// `PayloadOrganization`.
    pub organization: String,
    /// The server's public URL, without a trailing slash.
    pub public_url: String,
    /// The APNs topic.
    pub topic: String,
    /// The identity payload.
    pub identity: IdentityPayload,
    /// DER of a root certificate devices must trust to reach the server, if any.
    pub root_certificate: Option<Vec<u8>>,
    /// A renewal's: the replacement-invariant fields of the profile the device enrolled with,
    /// which the MDM payload keeps instead of `public_url` and `topic` (iOS refuses a changed
    /// MDM profile with 12012). The SCEP URL still follows `public_url`.
    pub kept: Option<EnrollmentTerms>,
}

/// Payload UUIDs of one profile download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileUuids {
    /// The profile's.
    pub profile: String,
    /// The identity payload's (also the MDM payload's `IdentityCertificateUUID`).
    pub identity: String,
    /// The MDM payload's.
    pub mdm: String,
    /// The root certificate payload's.
    pub root: String,
}

impl ProfileUuids {
    /// Fresh random UUIDs (upper case, as Apple writes them).
    pub fn random() -> Self {
        let fresh = || uuid::Uuid::new_v4().to_string().to_uppercase();
        Self {
            profile: fresh(),
            identity: fresh(),
            mdm: fresh(),
            root: fresh(),
        }
    }
}

/// The identifier of the enrollment profile for `prefix`.
pub fn profile_identifier(prefix: &str) -> String {
    format!("{prefix}.enrollment")
}

/// The identifier of the trust profile for `prefix`.
pub fn trust_profile_identifier(prefix: &str) -> String {
    format!("{prefix}.trust")
}

/// The `com.apple.security.root` payload for `der`, identified `<profile id>.root`.
fn root_payload(profile_id: &str, der: Vec<u8>, uuid: String, organization: &str) -> Payload {
    let mut root = RootCertificatePayload::new(der);
    root.file_name = Some("baton-ca.cer".to_owned());
    root.into_payload(format!("{profile_id}.root"), uuid)
        .with_display_name(format!("{organization} server CA"))
}

/// The trust profile: the root certificate of the server's TLS chain, nothing else.
#[derive(Debug, Clone)]
pub struct TrustProfileSpec {
    /// Identifier prefix (`io.baton` gives `io.baton.trust`).
    pub identifier_prefix: String,
    /// `PayloadOrganization`.
    pub organization: String,
    /// DER of the root certificate.
    pub root_certificate: Vec<u8>,
}

impl TrustProfileSpec {
    /// The profile (`uuids.profile` and `uuids.root` are used).
    pub fn build(self, uuids: &ProfileUuids) -> Profile {
        let id = trust_profile_identifier(&self.identifier_prefix);
        Profile::new(id.clone(), uuids.profile.clone())
            .with_display_name(format!("{} server CA", self.organization))
            .with_description(
                "Lets this device trust the Baton server's certificate before enrolling. \
                 Enrollment does not need it: the enrollment profile carries the same root.",
            )
            .with_organization(self.organization.clone())
            .with_payload(root_payload(
                &id,
                self.root_certificate,
                uuids.root.clone(),
                &self.organization,
            ))
    }
}

impl EnrollmentProfileSpec {
    /// The profile.
    pub fn build(self, uuids: &ProfileUuids) -> Profile {
        let id = profile_identifier(&self.identifier_prefix);
        let base = self.public_url.trim_end_matches('/');
        let mut profile = Profile::new(id.clone(), uuids.profile.clone())
            .with_display_name(format!("{} device management", self.organization))
            .with_description(
                "Enrolls this device in Baton: installs its identity certificate and lets the \
                 server manage it.",
            )
            .with_organization(self.organization.clone());
        // First: the root must be in place before the SCEP and MDM payloads reach the server.
        if let Some(der) = self.root_certificate {
            profile = profile.with_payload(root_payload(
                &id,
                der,
                uuids.root.clone(),
                &self.organization,
            ));
        }
        let identity = match self.identity {
            IdentityPayload::Scep {
                url,
                challenge,
                subject,
            } => {
                let mut scep = ScepPayload::new(url);
                scep.name = Some(format!("{} CA", self.organization));
                scep.challenge = Some(challenge);
                scep.subject = subject;
                scep.into_payload(format!("{id}.scep"), uuids.identity.clone())
            }
            IdentityPayload::Pkcs12 { content, password } => {
                let mut p12 = Pkcs12Payload::new(content, Some(password));
                p12.file_name = Some("device-identity.p12".to_owned());
                p12.into_payload(format!("{id}.identity"), uuids.identity.clone())
                    .with_display_name("Device identity")
            }
        };
        let terms = self
            .kept
            .unwrap_or_else(|| EnrollmentTerms::issued_now(base, &self.topic));
        let mut mdm = MdmPayload::new(
            uuids.identity.clone(),
            terms.topic,
            terms.server_url,
            terms.check_in_url,
        );
        mdm.access_rights = terms.access_rights;
        if !terms.per_user_connections {
            mdm.server_capabilities
                .retain(|c| c != baton_proto::CAPABILITY_PER_USER_CONNECTIONS);
        }
        profile
            .with_payload(identity)
            .with_payload(mdm.into_payload(format!("{id}.mdm"), uuids.mdm.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_proto::Limits;
    use baton_proto::plist::Value;

    fn spec(identity: IdentityPayload, root: Option<Vec<u8>>) -> EnrollmentProfileSpec {
        EnrollmentProfileSpec {
            identifier_prefix: "io.baton".into(),
            organization: "Baton".into(),
            public_url: "https://mdm.example:8443/".into(),
            topic: "com.apple.mgmt.External.abc".into(),
            identity,
            root_certificate: root,
            kept: None,
        }
    }

    #[test]
    fn scep_profile_points_the_mdm_payload_at_the_scep_identity() {
        let uuids = ProfileUuids::random();
        let profile = spec(
            IdentityPayload::Scep {
                url: "https://mdm.example:8443/scep".into(),
                challenge: "one-time".into(),
                subject: vec![("CN".into(), "Baton device 1".into())],
            },
            Some(vec![0x30, 0x00]),
        )
        .build(&uuids);
        let xml = profile.to_xml().unwrap();
        let parsed = Profile::parse(&xml, &Limits::default()).unwrap();
        assert_eq!(parsed.identifier, "io.baton.enrollment");
        let types: Vec<_> = parsed
            .payloads
            .iter()
            .map(|p| p.payload_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "com.apple.security.root",
                "com.apple.security.scep",
                "com.apple.mdm"
            ]
        );
        let scep = &parsed.payloads[1];
        assert_eq!(scep.uuid, uuids.identity);
        let content = scep.content["PayloadContent"].as_dictionary().unwrap();
        assert_eq!(content["Challenge"].as_string(), Some("one-time"));
        assert_eq!(content["Keysize"].as_signed_integer(), Some(2048));
        let mdm = &parsed.payloads[2].content;
        assert_eq!(
            mdm["IdentityCertificateUUID"].as_string(),
            Some(uuids.identity.as_str())
        );
        assert_eq!(
            mdm["ServerURL"].as_string(),
            Some("https://mdm.example:8443/mdm/connect")
        );
        assert_eq!(
            mdm["CheckInURL"].as_string(),
            Some("https://mdm.example:8443/mdm/checkin")
        );
        assert_eq!(mdm["SignMessage"], Value::Boolean(true));
        assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(8191));
        assert_eq!(mdm["CheckOutWhenRemoved"], Value::Boolean(true));
    }

    #[test]
    fn a_renewal_profile_keeps_the_enrolled_terms() {
        let mut renewal = spec(
            IdentityPayload::Scep {
                url: "https://new.example/scep".into(),
                challenge: "one-time".into(),
                subject: Vec::new(),
            },
            None,
        );
        renewal.kept = Some(EnrollmentTerms {
            server_url: "https://old.example/mdm/connect".into(),
            check_in_url: "https://old.example/mdm/checkin".into(),
            topic: "com.apple.mgmt.External.old".into(),
            access_rights: 4095,
            per_user_connections: false,
        });
        let profile = renewal.build(&ProfileUuids::random());
        let mdm = &profile.payloads[1].content;
        assert_eq!(
            mdm["ServerURL"].as_string(),
            Some("https://old.example/mdm/connect")
        );
        assert_eq!(
            mdm["CheckInURL"].as_string(),
            Some("https://old.example/mdm/checkin")
        );
        assert_eq!(
            mdm["Topic"].as_string(),
            Some("com.apple.mgmt.External.old")
        );
        assert_eq!(mdm["AccessRights"].as_signed_integer(), Some(4095));
        assert!(!mdm.contains_key("ServerCapabilities"));
        // The SCEP URL follows the current configuration.
        let scep = profile.payloads[0].content["PayloadContent"]
            .as_dictionary()
            .unwrap();
        assert_eq!(scep["URL"].as_string(), Some("https://new.example/scep"));
    }

    #[test]
    fn trust_profile_is_the_root_alone() {
        let uuids = ProfileUuids::random();
        let profile = TrustProfileSpec {
            identifier_prefix: "io.baton".into(),
            organization: "Baton".into(),
            root_certificate: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        }
        .build(&uuids);
        let parsed = Profile::parse(&profile.to_xml().unwrap(), &Limits::default()).unwrap();
        assert_eq!(parsed.identifier, "io.baton.trust");
        assert_eq!(parsed.uuid, uuids.profile);
        assert_eq!(parsed.payloads.len(), 1);
        let root = &parsed.payloads[0];
        assert_eq!(root.payload_type, "com.apple.security.root");
        assert_eq!(root.identifier, "io.baton.trust.root");
        assert_eq!(
            root.content["PayloadContent"].as_data(),
            Some(&[0x30, 0x03, 0x02, 0x01, 0x01][..])
        );
    }

    #[test]
    fn pkcs12_profile_carries_the_password_and_no_root_when_public() {
        let uuids = ProfileUuids::random();
        let profile = spec(
            IdentityPayload::Pkcs12 {
                content: vec![1, 2, 3],
                password: "pw".into(),
            },
            None,
        )
        .build(&uuids);
        assert_eq!(profile.payloads.len(), 2);
        let p12 = &profile.payloads[0];
        assert_eq!(p12.payload_type, "com.apple.security.pkcs12");
        assert_eq!(p12.content["Password"].as_string(), Some("pw"));
        assert_ne!(ProfileUuids::random(), uuids);
    }
}

//! Typed builders for the profile payloads Baton issues: MDM enrollment, SCEP, PKCS#12 identity,
//! root certificate and web clip. Each turns into a generic [`Payload`] with
//! `into_payload(identifier, uuid)`; anything else is built with [`Payload::new`].

use plist::{Dictionary, Value};

use crate::Payload;
use crate::plist_write::{DictionaryExt, string_array};

/// Every MDM access right (`AccessRights` = 8191).
pub const ACCESS_RIGHTS_ALL: i64 = 8191;

/// The `com.apple.mdm.per-user-connections` server capability (Shared iPad user channels).
pub const CAPABILITY_PER_USER_CONNECTIONS: &str = "com.apple.mdm.per-user-connections";

/// The `com.apple.mdm` enrollment payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdmPayload {
    /// `IdentityCertificateUUID`: the PayloadUUID of the SCEP or PKCS#12 payload.
    pub identity_certificate_uuid: String,
    /// `Topic`: the push certificate's topic.
    pub topic: String,
    /// `ServerURL`: the command channel.
    pub server_url: String,
    /// `CheckInURL`: the check-in channel.
    pub check_in_url: Option<String>,
    /// `SignMessage`: sign bodies with `Mdm-Signature`.
    pub sign_message: Option<bool>,
    /// `AccessRights`.
    pub access_rights: i64,
    /// `ServerCapabilities`.
    pub server_capabilities: Vec<String>,
    /// `CheckOutWhenRemoved`.
    pub check_out_when_removed: Option<bool>,
    /// `UseDevelopmentAPNS`.
    pub use_development_apns: Option<bool>,
}

impl MdmPayload {
    /// An MDM payload with every access right, signed messages, CheckOut on removal and the
    /// per-user-connections capability.
    pub fn new(
        identity_certificate_uuid: impl Into<String>,
        topic: impl Into<String>,
        server_url: impl Into<String>,
        check_in_url: impl Into<String>,
    ) -> Self {
        Self {
            identity_certificate_uuid: identity_certificate_uuid.into(),
            topic: topic.into(),
            server_url: server_url.into(),
            check_in_url: Some(check_in_url.into()),
            sign_message: Some(true),
            access_rights: ACCESS_RIGHTS_ALL,
            server_capabilities: vec![CAPABILITY_PER_USER_CONNECTIONS.to_owned()],
            check_out_when_removed: Some(true),
            use_development_apns: None,
        }
    }

    /// The generic payload.
    pub fn into_payload(self, identifier: impl Into<String>, uuid: impl Into<String>) -> Payload {
        let mut c = Dictionary::new();
        c.put("IdentityCertificateUUID", self.identity_certificate_uuid);
        c.put("Topic", self.topic);
        c.put("ServerURL", self.server_url);
        c.put_opt("CheckInURL", self.check_in_url);
        c.put_opt("SignMessage", self.sign_message);
        c.put("AccessRights", self.access_rights);
        if !self.server_capabilities.is_empty() {
            c.put(
                "ServerCapabilities",
                string_array(&self.server_capabilities),
            );
        }
        c.put_opt("CheckOutWhenRemoved", self.check_out_when_removed);
        c.put_opt("UseDevelopmentAPNS", self.use_development_apns);
        Payload::new("com.apple.mdm", identifier, uuid, c).with_display_name("MDM")
    }
}

/// The `com.apple.security.scep` payload: the device enrolls for its identity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepPayload {
    /// `URL` of the SCEP server.
    pub url: String,
    /// `Name`: the CA instance name.
    pub name: Option<String>,
    /// `Subject` as (OID or short name, value) pairs, one RDN each, e.g. `("CN", "device")`.
    pub subject: Vec<(String, String)>,
    /// `Challenge`: the SCEP challenge password. A secret.
    pub challenge: Option<String>,
    /// `Keysize` (2048).
    pub keysize: Option<i64>,
    /// `Key Type` (`RSA`).
    pub key_type: Option<String>,
    /// `Key Usage` bit field (1 signing, 4 encryption, 5 both).
    pub key_usage: Option<i64>,
    /// `CAFingerprint`: SHA-1 or MD5 of the CA certificate.
    pub ca_fingerprint: Option<Vec<u8>>,
    /// `Retries`.
    pub retries: Option<i64>,
    /// `RetryDelay` in seconds.
    pub retry_delay: Option<i64>,
}

impl ScepPayload {
    /// A SCEP payload for `url` with a 2048-bit RSA key usable for signing and encryption.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: None,
            subject: Vec::new(),
            challenge: None,
            keysize: Some(2048),
            key_type: Some("RSA".to_owned()),
            key_usage: Some(5),
            ca_fingerprint: None,
            retries: None,
            retry_delay: None,
        }
    }

    /// The generic payload (`PayloadContent` is the SCEP dictionary).
    pub fn into_payload(self, identifier: impl Into<String>, uuid: impl Into<String>) -> Payload {
        let mut s = Dictionary::new();
        s.put("URL", self.url);
        s.put_opt("Name", self.name);
        if !self.subject.is_empty() {
            let rdns = self
                .subject
                .into_iter()
                .map(|(k, v)| {
                    Value::Array(vec![Value::Array(vec![Value::String(k), Value::String(v)])])
                })
                .collect();
            s.put("Subject", Value::Array(rdns));
        }
        s.put_opt("Challenge", self.challenge);
        s.put_opt("Keysize", self.keysize);
        s.put_opt("Key Type", self.key_type);
        s.put_opt("Key Usage", self.key_usage);
        s.put_opt("CAFingerprint", self.ca_fingerprint.map(Value::Data));
        s.put_opt("Retries", self.retries);
        s.put_opt("RetryDelay", self.retry_delay);
        let mut c = Dictionary::new();
        c.put("PayloadContent", s);
        Payload::new("com.apple.security.scep", identifier, uuid, c)
            .with_display_name("Device identity (SCEP)")
    }
}

/// The `com.apple.security.pkcs12` payload: an identity (certificate and key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs12Payload {
    /// `PayloadContent`: the PKCS#12 bytes.
    pub content: Vec<u8>,
    /// `Password` of the PKCS#12. A secret.
    pub password: Option<String>,
    /// `PayloadCertificateFileName`.
    pub file_name: Option<String>,
    /// `KeyIsExtractable`.
    pub key_is_extractable: Option<bool>,
    /// `AllowAllAppsAccess`.
    pub allow_all_apps_access: Option<bool>,
}

impl Pkcs12Payload {
    /// A PKCS#12 payload with the given bytes and password.
    pub fn new(content: Vec<u8>, password: Option<String>) -> Self {
        Self {
            content,
            password,
            file_name: None,
            key_is_extractable: None,
            allow_all_apps_access: None,
        }
    }

    /// The generic payload.
    pub fn into_payload(self, identifier: impl Into<String>, uuid: impl Into<String>) -> Payload {
        let mut c = Dictionary::new();
        c.put("PayloadContent", Value::Data(self.content));
        c.put_opt("Password", self.password);
        c.put_opt("PayloadCertificateFileName", self.file_name);
        c.put_opt("KeyIsExtractable", self.key_is_extractable);
        c.put_opt("AllowAllAppsAccess", self.allow_all_apps_access);
        Payload::new("com.apple.security.pkcs12", identifier, uuid, c)
    }
}

/// The `com.apple.security.root` payload: a trusted root certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootCertificatePayload {
    /// `PayloadContent`: the DER certificate.
    pub content: Vec<u8>,
    /// `PayloadCertificateFileName`.
    pub file_name: Option<String>,
}

impl RootCertificatePayload {
    /// A root certificate payload.
    pub fn new(der: Vec<u8>) -> Self {
        Self {
            content: der,
            file_name: None,
        }
    }

    /// The generic payload.
    pub fn into_payload(self, identifier: impl Into<String>, uuid: impl Into<String>) -> Payload {
        let mut c = Dictionary::new();
        c.put("PayloadContent", Value::Data(self.content));
        c.put_opt("PayloadCertificateFileName", self.file_name);
        Payload::new("com.apple.security.root", identifier, uuid, c)
    }
}

/// The `com.apple.webClip.managed` payload: a home-screen link (Baton's sign-in/sign-out clips).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebClipPayload {
    /// `URL`.
    pub url: String,
    /// `Label` under the icon.
    pub label: String,
    /// `Icon`: PNG bytes.
    pub icon: Option<Vec<u8>>,
    /// `IsRemovable`: Baton's clips are not.
    pub is_removable: Option<bool>,
    /// `FullScreen`.
    pub full_screen: Option<bool>,
    /// `Precomposed`.
    pub precomposed: Option<bool>,
    /// `IgnoreManifestScope`.
    pub ignore_manifest_scope: Option<bool>,
    /// `TargetApplicationBundleIdentifier`.
    pub target_application_bundle_identifier: Option<String>,
}

impl WebClipPayload {
    /// A web clip the user cannot remove.
    pub fn new(url: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            label: label.into(),
            icon: None,
            is_removable: Some(false),
            full_screen: None,
            precomposed: None,
            ignore_manifest_scope: None,
            target_application_bundle_identifier: None,
        }
    }

    /// The generic payload.
    pub fn into_payload(self, identifier: impl Into<String>, uuid: impl Into<String>) -> Payload {
        let mut c = Dictionary::new();
        c.put("URL", self.url);
        c.put("Label", self.label.clone());
        c.put_opt("Icon", self.icon.map(Value::Data));
        c.put_opt("IsRemovable", self.is_removable);
        c.put_opt("FullScreen", self.full_screen);
        c.put_opt("Precomposed", self.precomposed);
        c.put_opt("IgnoreManifestScope", self.ignore_manifest_scope);
        c.put_opt(
            "TargetApplicationBundleIdentifier",
            self.target_application_bundle_identifier,
        );
        Payload::new("com.apple.webClip.managed", identifier, uuid, c).with_display_name(self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Profile, derive_uuid};

    #[test]
    fn enrollment_profile_links_mdm_to_scep_identity() {
        let scep_uuid = derive_uuid("scep");
        let mut scep = ScepPayload::new("https://baton.example/scep");
        scep.subject = vec![("O".into(), "Baton".into()), ("CN".into(), "device".into())];
        scep.challenge = Some("s3cret".into());
        let profile = Profile::new("org.example.enroll", derive_uuid("enroll"))
            .with_payload(scep.into_payload("org.example.enroll.scep", scep_uuid.clone()))
            .with_payload(
                MdmPayload::new(
                    scep_uuid.clone(),
                    "com.apple.mgmt.External.0f1e2d3c",
                    "https://baton.example/mdm/server",
                    "https://baton.example/mdm/checkin",
                )
                .into_payload("org.example.enroll.mdm", derive_uuid("mdm")),
            );
        let parsed = Profile::parse(&profile.to_xml().unwrap(), &Limits::default()).unwrap();
        let mdm = &parsed.payloads[1];
        assert_eq!(mdm.payload_type, "com.apple.mdm");
        assert_eq!(
            mdm.content
                .get("IdentityCertificateUUID")
                .and_then(Value::as_string),
            Some(scep_uuid.as_str())
        );
        let subject = parsed.payloads[0]
            .content
            .get("PayloadContent")
            .and_then(Value::as_dictionary)
            .and_then(|d| d.get("Subject"))
            .and_then(Value::as_array)
            .unwrap();
        assert_eq!(subject.len(), 2);
    }
}

//! `POST /api/v1/items` bodies: a profile (base64 .mobileconfig, signed or not), an app, a web
//! clip, a certificate or Settings, turned into the engine's [`CatalogItem`].

use base64::Engine;
use baton_assign::{AppLicensing, AppSource, CatalogItem, IssuedPer, ItemContent, ItemId, Scope};
use baton_proto::plist::Value;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use serde::Deserialize;

/// Why an item body was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ItemInputError {
    /// The base64 text does not decode.
    #[error("mobileconfig is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The CMS envelope of a signed profile cannot be read.
    #[error("signed mobileconfig: {0}")]
    Cms(#[from] openssl::error::ErrorStack),
    /// The profile is not a property list with a dictionary at the top.
    #[error("mobileconfig: {0}")]
    Plist(String),
    /// A field is missing or wrong.
    #[error("{0}")]
    Field(String),
}

/// `POST /api/v1/items` body; unknown fields refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Explicit id (else derived from the name).
    #[serde(default)]
    pub id: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `profile`, `app`, `web_clip`, `certificate` or `settings`.
    pub kind: String,
    /// `device` (default) or `user` (Shared iPad user channel).
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Must leave the device on sign-out.
    #[serde(default)]
    pub leaves_on_sign_out: bool,
    /// profile: base64 of the .mobileconfig.
    #[serde(default)]
    pub mobileconfig: Option<String>,
    /// app: bundle id.
    #[serde(default)]
    pub bundle_id: Option<String>,
    /// app: App Store id.
    #[serde(default)]
    pub itunes_store_id: Option<u64>,
    /// app (App Store): `apple_id` (default; `PurchaseMethod` 0) or `vpp` (an Apps and Books
    /// licence; `PurchaseMethod` 1).
    #[serde(default)]
    pub licensing: Option<AppLicensing>,
    /// app (App Store): take over the app when the person installed it themselves
    /// (`ChangeManagementState: Managed`).
    #[serde(default)]
    pub take_over_user_installed: bool,
    /// app: enterprise manifest URL.
    #[serde(default)]
    pub manifest_url: Option<String>,
    /// app: managed configuration, plist XML text or a JSON object.
    #[serde(default)]
    pub configuration: Option<serde_json::Value>,
    /// web clip: label.
    #[serde(default)]
    pub label: Option<String>,
    /// web clip: URL.
    #[serde(default)]
    pub url: Option<String>,
    /// web clip: the sign-in clip.
    #[serde(default)]
    pub sign_in: bool,
    /// web clip: full screen.
    #[serde(default)]
    pub full_screen: bool,
    /// web clip: removable.
    #[serde(default)]
    pub removable: bool,
    /// certificate: per `user` or `device`.
    #[serde(default)]
    pub issued_per: Option<IssuedPer>,
    /// certificate: subject template.
    #[serde(default)]
    pub subject: Option<String>,
    /// certificate: rfc822Name template.
    #[serde(default)]
    pub email: Option<String>,
    /// certificate: validity in days (default 365).
    #[serde(default)]
    pub validity_days: Option<u32>,
    /// settings: plist XML of an array of Settings dictionaries.
    #[serde(default)]
    pub settings: Option<String>,
}

fn field(name: &str, kind: &str) -> ItemInputError {
    ItemInputError::Field(format!("{kind} items need {name:?}"))
}

/// The inner plist of a .mobileconfig, as XML text: a signed profile's CMS envelope is opened
/// without checking the signer (operators upload what they trust).
pub fn profile_template(bytes: &[u8]) -> Result<String, ItemInputError> {
    let inner = if bytes.first() == Some(&0x30) {
        let cms = Pkcs7::from_der(bytes)?;
        let certs = Stack::new()?;
        let store = X509StoreBuilder::new()?.build();
        let mut out = Vec::new();
        cms.verify(&certs, &store, None, Some(&mut out), Pkcs7Flags::NOVERIFY)?;
        out
    } else {
        bytes.to_vec()
    };
    // The plist parser's own message is a Rust debug dump (`ExpectedEndOfEventStream
    // { found: String }`): say what is wrong instead.
    let value = Value::from_reader(std::io::Cursor::new(&inner)).map_err(|_| {
        ItemInputError::Plist(
            "this is not a configuration profile: a .mobileconfig is a property list (XML, \
             binary, or either signed with CMS) and this one could not be read as one"
                .into(),
        )
    })?;
    if value.as_dictionary().is_none() {
        return Err(ItemInputError::Plist(
            "this is not a configuration profile: its top level is not a dictionary".into(),
        ));
    }
    let mut xml = Vec::new();
    value
        .to_writer_xml(&mut xml)
        .map_err(|e| ItemInputError::Plist(e.to_string()))?;
    String::from_utf8(xml).map_err(|e| ItemInputError::Plist(e.to_string()))
}

fn configuration_xml(v: &serde_json::Value) -> Result<String, ItemInputError> {
    if let Some(text) = v.as_str() {
        return Ok(text.to_owned());
    }
    let value: Value = serde_json::from_value(v.clone())
        .map_err(|e| ItemInputError::Field(format!("configuration: {e}")))?;
    if value.as_dictionary().is_none() {
        return Err(ItemInputError::Field(
            "configuration must be an object".into(),
        ));
    }
    let mut xml = Vec::new();
    value
        .to_writer_xml(&mut xml)
        .map_err(|e| ItemInputError::Plist(e.to_string()))?;
    String::from_utf8(xml).map_err(|e| ItemInputError::Plist(e.to_string()))
}

/// A name turned into an item id (forbidden characters become `-`).
pub fn slug(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    if s.is_empty() { "item".to_owned() } else { s }
}

impl ItemInput {
    /// The item's content.
    pub fn content(&self) -> Result<ItemContent, ItemInputError> {
        let kind = self.kind.as_str();
        Ok(match kind {
            "profile" => {
                let b64 = self
                    .mobileconfig
                    .as_deref()
                    .ok_or_else(|| field("mobileconfig", kind))?;
                let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim())?;
                ItemContent::Profile {
                    template: profile_template(&bytes)?,
                    certificates: Vec::new(),
                }
            }
            "app" => {
                let bundle_id = self
                    .bundle_id
                    .clone()
                    .ok_or_else(|| field("bundle_id", kind))?;
                let source = match (self.itunes_store_id, &self.manifest_url) {
                    (Some(id), None) => AppSource::AppStore {
                        itunes_store_id: id,
                        licensing: self.licensing.unwrap_or_default(),
                        take_over_user_installed: self.take_over_user_installed,
                    },
                    (None, Some(url)) => AppSource::Manifest { url: url.clone() },
                    _ => {
                        return Err(ItemInputError::Field(
                            "app items need exactly one of itunes_store_id, manifest_url".into(),
                        ));
                    }
                };
                ItemContent::App {
                    bundle_id,
                    source,
                    configuration: self
                        .configuration
                        .as_ref()
                        .map(configuration_xml)
                        .transpose()?,
                }
            }
            "web_clip" => ItemContent::WebClip {
                label: self.label.clone().ok_or_else(|| field("label", kind))?,
                url: self.url.clone().ok_or_else(|| field("url", kind))?,
                sign_in: self.sign_in,
                full_screen: self.full_screen,
                removable: self.removable,
            },
            "certificate" => ItemContent::Certificate {
                issued_per: self.issued_per.unwrap_or(IssuedPer::User),
                subject: self.subject.clone().ok_or_else(|| field("subject", kind))?,
                email: self.email.clone(),
                validity_days: match self.validity_days {
                    None => 365,
                    Some(days @ 1..=3650) => days,
                    Some(_) => {
                        return Err(ItemInputError::Field(
                            "certificate validity_days must be 1..=3650".into(),
                        ));
                    }
                },
            },
            "settings" => ItemContent::Settings {
                template: self
                    .settings
                    .clone()
                    .ok_or_else(|| field("settings", kind))?,
            },
            other => {
                return Err(ItemInputError::Field(format!(
                    "unknown item kind {other:?}"
                )));
            }
        })
    }

    /// The catalog item with id `id`.
    pub fn into_item(self, id: ItemId) -> Result<CatalogItem, ItemInputError> {
        let content = self.content()?;
        let scope = self.scope.unwrap_or(match content {
            ItemContent::WebClip { .. } => Scope::User,
            _ => Scope::Device,
        });
        Ok(CatalogItem {
            id: id.clone(),
            name: self.name.clone().unwrap_or_else(|| id.to_string()),
            scope,
            leaves_on_sign_out: self.leaves_on_sign_out,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict><key>PayloadType</key><string>Configuration</string>
<key>PayloadDisplayName</key><string>$USER.email</string></dict></plist>"#;

    #[test]
    fn unsigned_profile_is_normalised() {
        let t = profile_template(XML.as_bytes()).unwrap();
        assert!(t.contains("$USER.email"));
        assert!(profile_template(b"<plist><array/></plist>").is_err());
    }

    #[test]
    fn signed_profile_is_unwrapped() {
        use openssl::pkey::PKey;
        use openssl::rsa::Rsa;
        use openssl::x509::{X509Builder, X509NameBuilder};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "signer").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        let cert = b.build();
        let signed = Pkcs7::sign(
            &cert,
            &key,
            &Stack::new().unwrap(),
            XML.as_bytes(),
            Pkcs7Flags::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap();
        let t = profile_template(&signed).unwrap();
        assert!(t.contains("PayloadDisplayName"));
    }

    #[test]
    fn web_clip_and_app_inputs() {
        let i: ItemInput = serde_json::from_str(
            r#"{"kind":"web_clip","label":"Intranet","url":"https://x/$USER.username"}"#,
        )
        .unwrap();
        let item = i.into_item(ItemId::new("intranet").unwrap()).unwrap();
        assert_eq!(item.scope, Scope::User);
        let i: ItemInput = serde_json::from_str(
            r#"{"kind":"app","bundle_id":"com.x","itunes_store_id":12,"configuration":{"k":"$USER.email"}}"#,
        )
        .unwrap();
        let ItemContent::App {
            configuration: Some(c),
            ..
        } = i.content().unwrap()
        else {
            panic!("not an app with configuration")
        };
        assert!(c.contains("$USER.email"));
        let i: ItemInput = serde_json::from_str(r#"{"kind":"app"}"#).unwrap();
        assert!(i.content().is_err());
        assert_eq!(slug("Wi-Fi Corp!"), "wi-fi-corp-");
    }
}

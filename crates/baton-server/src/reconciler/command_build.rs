//! Turns an engine [`Intent`] into the MDM [`CommandRequest`] that carries it out: rendered
//! profiles as InstallProfile, web clips as a profile with one `com.apple.webClip.managed`
//! payload, removals by PayloadIdentifier or bundle id, apps, and Settings.

use baton_assign::{AppSource as EngineSource, Intent};
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, CommandRequest, InstallApplication, Profile, Setting, WebClipPayload, derive_uuid,
};

/// Why an intent cannot become a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Issuing certificates from the built-in CA for catalog items is not built yet.
    #[error("certificate items are not built yet (item {0})")]
    CertificateNotBuilt(String),
    /// A rendered plist (configuration, settings) is not what the command needs.
    #[error("rendered plist: {0}")]
    Plist(String),
    /// The App Store id does not fit the command.
    #[error("iTunesStoreID {0} is out of range")]
    StoreId(u64),
    /// Nothing to send (an empty Settings intent: only recorded).
    #[error("nothing to send")]
    Empty,
}

fn dictionary(xml: &str) -> Result<Dictionary, BuildError> {
    match Value::from_reader_xml(xml.as_bytes()) {
        Ok(Value::Dictionary(d)) => Ok(d),
        Ok(_) => Err(BuildError::Plist("expected a dictionary".into())),
        Err(e) => Err(BuildError::Plist(e.to_string())),
    }
}

/// The command request for `intent`.
pub fn command_request(intent: &Intent) -> Result<CommandRequest, BuildError> {
    Ok(match intent {
        Intent::RemoveApplication { bundle_id, .. } => CommandRequest::RemoveApplication {
            identifier: bundle_id.to_string(),
        },
        Intent::RemoveProfile { identifier, .. } | Intent::RemoveCertificate { identifier, .. } => {
            CommandRequest::RemoveProfile {
                identifier: identifier.to_string(),
            }
        }
        Intent::InstallCertificate { item, .. } => {
            return Err(BuildError::CertificateNotBuilt(item.to_string()));
        }
        Intent::InstallProfile { profile, .. } => CommandRequest::InstallProfile {
            payload: profile.as_bytes().to_vec(),
        },
        Intent::InstallWebClip {
            identifier,
            payload_uuid,
            label,
            url,
            full_screen,
            removable,
            ..
        } => {
            let mut clip = WebClipPayload::new(url.clone(), label.clone());
            clip.full_screen = Some(*full_screen);
            clip.is_removable = Some(*removable);
            let profile = Profile::new(identifier.to_string(), payload_uuid.to_string())
                .with_display_name(label.clone())
                .with_payload(clip.into_payload(
                    format!("{identifier}.webclip"),
                    derive_uuid(&format!("{payload_uuid}.webclip")),
                ));
            CommandRequest::InstallProfile {
                payload: profile
                    .to_xml()
                    .map_err(|e| BuildError::Plist(e.to_string()))?,
            }
        }
        Intent::InstallApplication {
            source,
            configuration,
            ..
        } => {
            let source = match source {
                EngineSource::AppStore { itunes_store_id } => AppSource::ITunesStoreId(
                    i64::try_from(*itunes_store_id)
                        .map_err(|_| BuildError::StoreId(*itunes_store_id))?,
                ),
                EngineSource::Manifest { url } => AppSource::ManifestUrl(url.clone()),
                other => {
                    return Err(BuildError::Plist(format!(
                        "unsupported app source {other:?}"
                    )));
                }
            };
            let mut install = InstallApplication::new(source);
            install.management_flags = Some(1);
            install.configuration = configuration.as_deref().map(dictionary).transpose()?;
            CommandRequest::InstallApplication(install)
        }
        Intent::ApplySettings { settings, .. } => {
            if settings.is_empty() {
                return Err(BuildError::Empty);
            }
            let mut out = Vec::new();
            for rendered in settings {
                let Value::Array(entries) = Value::from_reader_xml(rendered.settings.as_bytes())
                    .map_err(|e| BuildError::Plist(e.to_string()))?
                else {
                    return Err(BuildError::Plist("settings must be an array".into()));
                };
                for entry in entries {
                    let Value::Dictionary(mut d) = entry else {
                        return Err(BuildError::Plist(
                            "settings entries must be dictionaries".into(),
                        ));
                    };
                    let Some(Value::String(item)) = d.remove("Item") else {
                        return Err(BuildError::Plist("a settings entry lacks Item".into()));
                    };
                    let mut setting = Setting::new(item);
                    setting.keys = d;
                    out.push(setting);
                }
            }
            CommandRequest::Settings { settings: out }
        }
        other => return Err(BuildError::Plist(format!("unsupported intent {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use baton_assign::{Channel, ItemId};
    use baton_proto::Limits;

    use super::*;

    #[test]
    fn web_clip_becomes_a_profile_with_a_web_clip_payload() {
        let intent = Intent::InstallWebClip {
            channel: Channel::Device,
            item: ItemId::new("sign-in").unwrap(),
            identifier: Arc::from("com.baton.item.sign-in"),
            payload_uuid: Arc::from("11111111-2222-3333-4444-555555555555"),
            label: "Sign in".into(),
            url: "https://b/portal/TOKEN".into(),
            full_screen: true,
            removable: false,
        };
        let CommandRequest::InstallProfile { payload } = command_request(&intent).unwrap() else {
            panic!("not InstallProfile")
        };
        let profile = Profile::parse(&payload, &Limits::default()).unwrap();
        assert_eq!(profile.identifier, "com.baton.item.sign-in");
        assert_eq!(profile.payloads.len(), 1);
        assert_eq!(
            profile.payloads[0].payload_type,
            "com.apple.webClip.managed"
        );
        let text = String::from_utf8(payload).unwrap();
        assert!(text.contains("https://b/portal/TOKEN"));
    }

    #[test]
    fn removals_and_certificates() {
        let intent = Intent::RemoveProfile {
            channel: Channel::Device,
            item: None,
            identifier: Arc::from("com.baton.item.x"),
        };
        assert_eq!(
            command_request(&intent).unwrap(),
            CommandRequest::RemoveProfile {
                identifier: "com.baton.item.x".into()
            }
        );
        let empty = Intent::ApplySettings {
            channel: Channel::Device,
            settings_hash: None,
            settings: vec![],
        };
        assert_eq!(command_request(&empty), Err(BuildError::Empty));
    }
}

//! Turns an engine [`Intent`] into the MDM [`CommandRequest`] that carries it out: rendered
//! profiles as InstallProfile, web clips as a profile with one `com.apple.webClip.managed`
//! payload, issued certificates as a profile with one `com.apple.security.pkcs12` payload,
//! removals by PayloadIdentifier or bundle id, apps, and Settings.
//!
//! [`command_request`] is pure; [`build_command`] also issues the certificate of an
//! InstallCertificate intent through a [`CertificateIssuer`] (a new key and certificate each
//! time: the PKCS#12 is only ever in the queued command).

use std::time::SystemTime;

use baton_assign::{AppSource as EngineSource, Channel, Intent};
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    AppSource, CommandRequest, EnrollmentId, InstallApplication, Pkcs12Payload, Profile, Setting,
    WebClipPayload, derive_uuid,
};

use super::certificate_issuer::{CertificateIssuer, ItemCertificateRequest};

/// Why an intent cannot become a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The server has no certificate authority to issue certificate items from (it runs
    /// without the built-in CA).
    #[error("certificate item {0} not sent: this server has no built-in CA to issue it")]
    NoCertificateAuthority(String),
    /// `com.apple.security.pkcs12` is not allowed on a Shared iPad user channel (Apple's
    /// profile schema); certificate items must have device scope.
    #[error(
        "certificate item {0} not sent: PKCS#12 payloads are not allowed on a Shared iPad user \
         channel (give the item device scope)"
    )]
    CertificateOnUserChannel(String),
    /// Issuing the certificate failed (e.g. a rendered subject that is not a valid name).
    #[error("certificate item {item} not issued: {reason}")]
    Certificate {
        /// The certificate item.
        item: String,
        /// Why.
        reason: String,
    },
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

/// The command for an intent, with the serial number of the certificate issued for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltCommand {
    /// The command.
    pub request: CommandRequest,
    /// The serial of the certificate issued for an InstallCertificate intent.
    pub issued_serial: Option<u64>,
}

/// The command for `intent` on `device`; InstallCertificate intents issue a new certificate
/// with `issuer` (none: [`BuildError::NoCertificateAuthority`]).
pub fn build_command(
    intent: &Intent,
    issuer: Option<&dyn CertificateIssuer>,
    device: &EnrollmentId,
    now: SystemTime,
) -> Result<BuiltCommand, BuildError> {
    let Intent::InstallCertificate {
        channel,
        item,
        identifier,
        payload_uuid,
        subject,
        email,
        validity_days,
        ..
    } = intent
    else {
        return Ok(BuiltCommand {
            request: command_request(intent)?,
            issued_serial: None,
        });
    };
    if matches!(channel, Channel::User { .. }) {
        return Err(BuildError::CertificateOnUserChannel(item.to_string()));
    }
    let Some(issuer) = issuer else {
        return Err(BuildError::NoCertificateAuthority(item.to_string()));
    };
    let failed = |reason: String| BuildError::Certificate {
        item: item.to_string(),
        reason,
    };
    let identity = issuer
        .issue(
            &ItemCertificateRequest {
                subject,
                email: email.as_deref(),
                validity_days: *validity_days,
                hint: format!("{device} item:{item}"),
                friendly_name: item.as_str(),
            },
            now,
        )
        .map_err(|e| failed(e.to_string()))?;
    let mut p12 = Pkcs12Payload::new(identity.pkcs12, Some(identity.password));
    p12.file_name = Some(format!("{item}.p12"));
    let profile = Profile::new(identifier.to_string(), payload_uuid.to_string())
        .with_display_name(format!("Certificate {}", identity.subject))
        .with_payload(p12.into_payload(
            format!("{identifier}.pkcs12"),
            derive_uuid(&format!("{payload_uuid}.pkcs12")),
        ));
    let payload = profile.to_xml().map_err(|e| failed(e.to_string()))?;
    Ok(BuiltCommand {
        request: CommandRequest::InstallProfile { payload },
        issued_serial: Some(identity.serial),
    })
}

fn dictionary(xml: &str) -> Result<Dictionary, BuildError> {
    match Value::from_reader_xml(xml.as_bytes()) {
        Ok(Value::Dictionary(d)) => Ok(d),
        Ok(_) => Err(BuildError::Plist("expected a dictionary".into())),
        Err(e) => Err(BuildError::Plist(e.to_string())),
    }
}

/// The command request for `intent`; certificates need [`build_command`]
/// ([`BuildError::NoCertificateAuthority`] here).
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
            return Err(BuildError::NoCertificateAuthority(item.to_string()));
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
            let mut purchase_method = None;
            let mut change_management_state = None;
            let source = match source {
                EngineSource::AppStore {
                    itunes_store_id,
                    licensing,
                    take_over_user_installed,
                } => {
                    purchase_method = Some(licensing.purchase_method());
                    if *take_over_user_installed {
                        change_management_state = Some("Managed".to_owned());
                    }
                    AppSource::ITunesStoreId(
                        i64::try_from(*itunes_store_id)
                            .map_err(|_| BuildError::StoreId(*itunes_store_id))?,
                    )
                }
                EngineSource::Manifest { url } => AppSource::ManifestUrl(url.clone()),
                other => {
                    return Err(BuildError::Plist(format!(
                        "unsupported app source {other:?}"
                    )));
                }
            };
            let mut install = InstallApplication::new(source);
            install.management_flags = Some(1);
            install.purchase_method = purchase_method;
            install.change_management_state = change_management_state;
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

    use baton_assign::ItemId;
    use baton_proto::Limits;

    use super::*;
    use crate::enrollment::ca::{CaConfig, CertificateAuthority};
    use crate::enrollment::registry::InMemoryCertificateRegistry;
    use crate::reconciler::certificate_issuer::BuiltInCaIssuer;

    #[test]
    fn store_apps_carry_their_purchase_method_and_take_over() {
        let intent = |licensing, take_over| Intent::InstallApplication {
            channel: Channel::Device,
            item: ItemId::new("ward").unwrap(),
            bundle_id: "com.example.ward".into(),
            source: EngineSource::AppStore {
                itunes_store_id: 361_309_726,
                licensing,
                take_over_user_installed: take_over,
            },
            configuration: None,
            config_hash: None,
        };
        let CommandRequest::InstallApplication(vpp) =
            command_request(&intent(baton_assign::AppLicensing::Vpp, true)).unwrap()
        else {
            panic!("not InstallApplication");
        };
        assert_eq!(vpp.purchase_method, Some(1));
        assert_eq!(vpp.change_management_state.as_deref(), Some("Managed"));
        let CommandRequest::InstallApplication(apple_id) =
            command_request(&intent(baton_assign::AppLicensing::AppleId, false)).unwrap()
        else {
            panic!("not InstallApplication");
        };
        assert_eq!(apple_id.purchase_method, Some(0));
        assert_eq!(apple_id.change_management_state, None);
    }

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

    fn certificate_intent(channel: Channel, subject: &str) -> Intent {
        Intent::InstallCertificate {
            channel,
            item: ItemId::new("vpn-cert").unwrap(),
            identifier: Arc::from("com.baton.item.vpn-cert"),
            payload_uuid: Arc::from("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE"),
            issued_per: baton_assign::IssuedPer::User,
            subject: subject.into(),
            email: Some("alice@example.com".into()),
            validity_days: 7,
        }
    }

    fn issuer() -> BuiltInCaIssuer {
        let now = SystemTime::now();
        let ca = CertificateAuthority::generate(&CaConfig::default(), now).unwrap();
        BuiltInCaIssuer::new(Arc::new(ca), Arc::new(InMemoryCertificateRegistry::new()))
    }

    #[test]
    fn certificate_becomes_a_pkcs12_profile_with_the_intent_identifiers() {
        let issuer = issuer();
        let device = EnrollmentId::device("UDID-1").unwrap();
        let intent = certificate_intent(Channel::Device, "CN=alice,O=Example");
        let built = build_command(&intent, Some(&issuer), &device, SystemTime::now()).unwrap();
        let serial = built.issued_serial.unwrap();
        let CommandRequest::InstallProfile { payload } = built.request else {
            panic!("not InstallProfile")
        };
        let profile = Profile::parse(&payload, &Limits::default()).unwrap();
        assert_eq!(profile.identifier, "com.baton.item.vpn-cert");
        assert_eq!(profile.uuid, "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE");
        assert_eq!(profile.payloads.len(), 1);
        let p = &profile.payloads[0];
        assert_eq!(p.payload_type, "com.apple.security.pkcs12");
        assert_eq!(p.identifier, "com.baton.item.vpn-cert.pkcs12");
        let Some(Value::Data(der)) = p.content.get("PayloadContent") else {
            panic!("no PayloadContent data: {:?}", p.content)
        };
        let Some(Value::String(password)) = p.content.get("Password") else {
            panic!("no Password")
        };
        let parsed = openssl::pkcs12::Pkcs12::from_der(der)
            .unwrap()
            .parse2(password)
            .unwrap();
        let cert = parsed.cert.unwrap();
        assert_eq!(
            crate::enrollment::ca::name_one_line(cert.subject_name()),
            "CN=alice, O=Example"
        );
        let serial_bn = cert.serial_number().to_bn().unwrap();
        assert_eq!(
            serial_bn.to_dec_str().unwrap().to_string(),
            serial.to_string()
        );
        // Two builds of the same intent issue two certificates.
        let again = build_command(&intent, Some(&issuer), &device, SystemTime::now()).unwrap();
        assert_ne!(again.issued_serial, Some(serial));
    }

    #[test]
    fn certificates_without_a_ca_on_a_user_channel_or_with_a_bad_subject_are_not_built() {
        let device = EnrollmentId::device("UDID-1").unwrap();
        let now = SystemTime::now();
        let intent = certificate_intent(Channel::Device, "CN=alice");
        assert_eq!(
            build_command(&intent, None, &device, now),
            Err(BuildError::NoCertificateAuthority("vpn-cert".into()))
        );
        assert_eq!(
            command_request(&intent),
            Err(BuildError::NoCertificateAuthority("vpn-cert".into()))
        );
        let issuer = issuer();
        let user = certificate_intent(
            Channel::User {
                short_name: "alice".into(),
            },
            "CN=alice",
        );
        assert_eq!(
            build_command(&user, Some(&issuer), &device, now),
            Err(BuildError::CertificateOnUserChannel("vpn-cert".into()))
        );
        let bad = certificate_intent(Channel::Device, "CN=alice\nO=evil");
        let err = build_command(&bad, Some(&issuer), &device, now).unwrap_err();
        assert!(
            matches!(&err, BuildError::Certificate { item, reason } if item == "vpn-cert" && reason.contains("control")),
            "{err}"
        );
        assert!(err.to_string().contains("vpn-cert"));
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

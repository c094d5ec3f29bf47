//! Serving enrollment profiles: [`EnrollmentProfiles::issue`] gathers what a profile needs at
//! download time (the APNs topic from the stored push certificate, a fresh one-time SCEP
//! challenge or a server-made PKCS#12 identity), builds it with [`super::profile`] and, when
//! configured, signs it (CMS SignedData) with the server's TLS identity.
//!
//! Also the trust profile of `GET /mdm/trust` (the same root certificate alone).
//!
//! Used by `GET /mdm/enroll` and by the identity-renewal task. Synchronous: call it from the
//! blocking pool (RSA-2048 key generation for the PKCS#12 variant takes about a third of a second
//! of CPU; `GET /mdm/enroll` only does it for a valid token, a few at a time).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use baton_proto::ProfileError;
use baton_store::{Store, StoreError};
use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Name};
use thiserror::Error;

use super::ca::{CaError, CertificateAuthority, IssueRequest};
use super::certificate_profile::CertificateProfile;
use super::challenge::{ChallengeError, ChallengeHash, challenge_hash};
use super::enrollment_terms::EnrollmentTerms;
use super::profile::{
    EnrollmentProfileSpec, IdentityPayload, ProfileUuids, TrustProfileSpec, profile_identifier,
    trust_profile_identifier,
};
use super::scep::ScepService;
use super::settings::EnrollmentSettings;
use crate::tls::{RotatingCertificate, TlsIdentity};

/// Content type of configuration profiles.
pub const PROFILE_CONTENT_TYPE: &str = "application/x-apple-aspen-config";

/// Common name prefix of device identity subjects.
pub const DEVICE_SUBJECT_PREFIX: &str = "Baton device";

/// Why no profile could be served.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnrollProfileError {
    /// No push certificate is stored and no topic is configured.
    #[error(
        "no APNs push certificate: the server's operator must upload one (its topic goes into \
         the enrollment profile) before devices can enroll: `baton push-cert csr`, then \
         `baton push-cert upload` (docs/operations.md); a lab without pushes can start the \
         server with --enrollment-push-topic"
    )]
    NoPushCertificate,
    /// Creating the one-time challenge failed.
    #[error("SCEP challenge: {0}")]
    Challenge(#[from] ChallengeError),
    /// Issuing the PKCS#12 identity failed.
    #[error("issuing the device identity: {0}")]
    Ca(#[from] CaError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The profile could not be encoded.
    #[error("profile: {0}")]
    Profile(#[from] ProfileError),
    /// Key generation, PKCS#12 or signing failed.
    #[error("openssl: {0}")]
    Openssl(#[from] ErrorStack),
    /// The enrollment token could not be read or updated.
    #[error("enrollment token: {0}")]
    Token(#[from] super::store_token::TokenStoreError),
}

/// Which identity payload a profile carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityKind {
    /// `com.apple.security.scep` with a challenge (the default).
    Scep,
    /// `com.apple.security.pkcs12` with an identity the server generated.
    Pkcs12,
}

/// A served profile.
#[derive(Debug, Clone)]
pub struct IssuedProfile {
    /// The bytes (XML plist, or DER CMS when signed).
    pub bytes: Vec<u8>,
    /// True when signed.
    pub signed: bool,
    /// The profile's `PayloadIdentifier`.
    pub identifier: String,
    /// SHA-256 of the one-time SCEP challenge in the profile (none for PKCS#12).
    pub challenge: Option<ChallengeHash>,
}

/// The identity that signs profiles: the certificate and key the server serves over TLS at the
/// time of signing, so profiles are signed by the renewed certificate once TLS renews it.
pub struct ProfileSigner {
    certificates: Arc<RotatingCertificate>,
}

impl std::fmt::Debug for ProfileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSigner")
            .field("serial", &self.certificates.current().serial_hex())
            .finish_non_exhaustive()
    }
}

impl ProfileSigner {
    /// Signs with whatever `certificates` serves.
    pub fn new(certificates: Arc<RotatingCertificate>) -> Self {
        Self { certificates }
    }

    /// `data` wrapped in a CMS SignedData (content attached), DER, signed by the current TLS
    /// leaf and key with the rest of the chain embedded.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, ErrorStack> {
        let served = self.certificates.current();
        let identity = served.identity();
        let mut certs = identity
            .cert_chain
            .iter()
            .map(|c| X509::from_der(c.as_ref()))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let Some(cert) = certs.next() else {
            return Err(ErrorStack::get());
        };
        let key = PKey::private_key_from_der(identity.key.secret_der())?;
        let mut chain = Stack::new()?;
        for c in certs {
            chain.push(c)?;
        }
        Pkcs7::sign(&cert, &key, &chain, data, Pkcs7Flags::BINARY)?.to_der()
    }
}

/// The root certificate a device must trust to reach a server with this TLS chain: the built-in
/// CA when it issued the chain's top certificate, the top certificate itself when it is
/// self-signed, else none (a publicly trusted chain).
pub fn private_root(
    chain: &TlsIdentity,
    ca: &CertificateAuthority,
) -> Result<Option<Vec<u8>>, ErrorStack> {
    let Some(top) = chain.cert_chain.last() else {
        return Ok(None);
    };
    let top = X509::from_der(top.as_ref())?;
    if ca.issued(&top) {
        return Ok(Some(ca.certificate_der().to_vec()));
    }
    let self_signed = top.issued(&top) == openssl::x509::X509VerifyResult::OK
        && top
            .public_key()
            .and_then(|k| top.verify(&k))
            .unwrap_or(false);
    self_signed.then(|| top.to_der()).transpose()
}

/// Prefix of the enrollment hint recorded with certificates obtained through a renewal profile;
/// the rest is the device id the renewal was queued for.
pub const RENEWAL_HINT_PREFIX: &str = "renewal:";
/// Prefix of the enrollment hint of certificates obtained through a profile served without a
/// token (`--open-enrollment`).
pub const OPEN_ENROLLMENT_HINT_PREFIX: &str = "open-enrollment:";

/// Serves enrollment profiles.
pub struct EnrollmentProfiles {
    store: Arc<dyn Store>,
    scep: Arc<ScepService>,
    settings: EnrollmentSettings,
    public_url: String,
    root_certificate: Option<Vec<u8>>,
    signer: Option<ProfileSigner>,
}

impl std::fmt::Debug for EnrollmentProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentProfiles")
            .field("public_url", &self.public_url)
            .field("settings", &self.settings)
            .field("root_certificate", &self.root_certificate.is_some())
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

fn random_token(bytes: usize) -> Result<String, ErrorStack> {
    let mut raw = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(URL_SAFE_NO_PAD.encode(raw))
}

fn random_hex(bytes: usize) -> Result<String, ErrorStack> {
    let mut raw = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut raw)?;
    Ok(hex::encode(raw))
}

impl EnrollmentProfiles {
    /// A profile server. `root_certificate` is the DER of a private TLS root to include;
    /// `signer` signs profiles when `settings.sign_profile` is set.
    ///
    /// Profiles always carry a fresh one-time challenge, never the static `--scep-challenge`
    /// (which is for SCEP clients that are not given a profile): a served profile is handed to
    /// whoever downloads it, so what it carries must be good for one device only.
    pub fn new(
        store: Arc<dyn Store>,
        scep: Arc<ScepService>,
        settings: EnrollmentSettings,
        public_url: &str,
        root_certificate: Option<Vec<u8>>,
        signer: Option<ProfileSigner>,
    ) -> Self {
        Self {
            store,
            scep,
            settings,
            public_url: public_url.trim_end_matches('/').to_owned(),
            root_certificate,
            signer,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EnrollmentSettings {
        &self.settings
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The SCEP service (CA, registry, challenges).
    pub fn scep(&self) -> &Arc<ScepService> {
        &self.scep
    }

    /// The topic for new profiles: the configured one, else the first stored push certificate's.
    pub fn default_topic(&self) -> Result<Option<String>, StoreError> {
        if let Some(topic) = &self.settings.push_topic {
            return Ok(Some(topic.clone()));
        }
        Ok(self
            .store
            .push_certificates()?
            .into_iter()
            .next()
            .map(|c| c.topic.as_str().to_owned()))
    }

    /// Builds (and signs, when configured) a fresh enrollment profile with the default topic.
    /// `enrollment_hint` goes with its one-time challenge (or PKCS#12 identity) to the CA
    /// registry record of the certificate the device gets: the enrollment token's use
    /// ([`super::token::hint`]); without one (open enrollment) `open-enrollment:<suffix>`.
    pub fn issue(
        &self,
        kind: IdentityKind,
        enrollment_hint: Option<String>,
        now: SystemTime,
    ) -> Result<IssuedProfile, EnrollProfileError> {
        self.issue_with_hint(
            kind,
            None,
            enrollment_hint,
            self.settings.challenge_ttl,
            now,
        )
    }

    /// Builds a renewal profile for `device`: a SCEP identity whose one-time challenge carries
    /// the hint `renewal:<device id>`, so the certificate it yields may take over the device's
    /// binding (see [`crate::device_identity::check_binding`]) even if the device does not send
    /// Authenticate again after installing it.
    ///
    /// The challenge lives until `challenge_expires_at` (the expiring identity's `notAfter`),
    /// at least `challenge_ttl`: a locked or switched-off device installs the profile hours or
    /// days after it was queued.
    ///
    /// The MDM payload keeps `kept`: the replacement-invariant fields of the profile the device
    /// enrolled with ([`super::enrollment_terms`]), whatever the public URL and topic are now.
    pub fn issue_renewal(
        &self,
        device: &baton_proto::EnrollmentId,
        kept: EnrollmentTerms,
        challenge_expires_at: SystemTime,
        now: SystemTime,
    ) -> Result<IssuedProfile, EnrollProfileError> {
        let hint = format!("{RENEWAL_HINT_PREFIX}{}", device.parent());
        let ttl = challenge_expires_at
            .duration_since(now)
            .unwrap_or_default()
            .max(self.settings.challenge_ttl);
        let topic = kept.topic.clone();
        self.issue_with_hint(
            IdentityKind::Scep,
            Some((topic, Some(kept))),
            Some(hint),
            ttl,
            now,
        )
    }

    /// The terms of a profile issued now with `topic` (none: the default topic).
    pub fn terms_now(&self, topic: Option<String>) -> Result<EnrollmentTerms, EnrollProfileError> {
        let topic = match topic {
            Some(t) => t,
            None => self
                .default_topic()?
                .ok_or(EnrollProfileError::NoPushCertificate)?,
        };
        Ok(EnrollmentTerms::issued_now(&self.public_url, &topic))
    }

    /// The public URL profiles point at.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    fn issue_with_hint(
        &self,
        kind: IdentityKind,
        topic: Option<(String, Option<EnrollmentTerms>)>,
        hint: Option<String>,
        challenge_ttl: Duration,
        now: SystemTime,
    ) -> Result<IssuedProfile, EnrollProfileError> {
        let (topic, kept) = match topic {
            Some(t) => t,
            None => (
                self.default_topic()?
                    .ok_or(EnrollProfileError::NoPushCertificate)?,
                None,
            ),
        };
        let suffix = random_hex(4)?;
        let common_name = format!("{DEVICE_SUBJECT_PREFIX} {suffix}");
        let hint = hint.unwrap_or_else(|| format!("{OPEN_ENROLLMENT_HINT_PREFIX}{suffix}"));
        let mut one_time = None;
        let identity = match kind {
            IdentityKind::Scep => {
                let challenge =
                    self.scep
                        .challenges()
                        .create_one_time(challenge_ttl, Some(hint), now)?;
                one_time = Some(challenge_hash(&challenge));
                IdentityPayload::Scep {
                    url: format!("{}/scep", self.public_url),
                    challenge,
                    subject: vec![
                        ("O".to_owned(), self.settings.organization.clone()),
                        ("CN".to_owned(), common_name),
                    ],
                }
            }
            IdentityKind::Pkcs12 => self.pkcs12_identity(&common_name, hint, now)?,
        };
        let spec = EnrollmentProfileSpec {
            identifier_prefix: self.settings.identifier_prefix.clone(),
            organization: self.settings.organization.clone(),
            public_url: self.public_url.clone(),
            topic,
            identity,
            root_certificate: self.root_certificate.clone(),
            kept,
        };
        let xml = spec.build(&ProfileUuids::random()).to_xml()?;
        self.finish(
            xml,
            profile_identifier(&self.settings.identifier_prefix),
            one_time,
        )
    }

    /// The trust profile (the root certificate of the server's TLS chain alone), signed like the
    /// enrollment profile; `None` when the chain needs no root (publicly trusted, or plain HTTP).
    pub fn trust_profile(&self) -> Result<Option<IssuedProfile>, EnrollProfileError> {
        let Some(root) = &self.root_certificate else {
            return Ok(None);
        };
        let xml = TrustProfileSpec {
            identifier_prefix: self.settings.identifier_prefix.clone(),
            organization: self.settings.organization.clone(),
            root_certificate: root.clone(),
        }
        .build(&ProfileUuids::random())
        .to_xml()?;
        self.finish(
            xml,
            trust_profile_identifier(&self.settings.identifier_prefix),
            None,
        )
        .map(Some)
    }

    /// `xml` as served: signed when configured. `one_time` is the hash of the profile's one-time
    /// SCEP challenge, if it has one.
    fn finish(
        &self,
        xml: Vec<u8>,
        identifier: String,
        one_time: Option<ChallengeHash>,
    ) -> Result<IssuedProfile, EnrollProfileError> {
        match (&self.signer, self.settings.sign_profile) {
            (Some(signer), true) => Ok(IssuedProfile {
                bytes: signer.sign(&xml)?,
                signed: true,
                identifier,
                challenge: one_time,
            }),
            _ => Ok(IssuedProfile {
                bytes: xml,
                signed: false,
                identifier,
                challenge: one_time,
            }),
        }
    }

    /// A device identity made here: RSA-2048 key, certificate from the built-in CA, PKCS#12
    /// with a random password (legacy 3DES/SHA-1 algorithms, which every iOS version reads).
    fn pkcs12_identity(
        &self,
        common_name: &str,
        hint: String,
        now: SystemTime,
    ) -> Result<IdentityPayload, EnrollProfileError> {
        let key = PKey::from_rsa(Rsa::generate(2048)?)?;
        let mut name = X509Name::builder()?;
        name.append_entry_by_text("O", &self.settings.organization)?;
        name.append_entry_by_text("CN", common_name)?;
        let name = name.build();
        let public_key = PKey::public_key_from_der(&key.public_key_to_der()?)?;
        let issued = self.scep.ca().issue(
            self.scep.registry().as_ref(),
            &IssueRequest {
                public_key: &public_key,
                subject: &name,
                profile: CertificateProfile::DeviceIdentity,
                validity: self.settings.device_validity,
                enrollment_hint: Some(hint),
            },
            now,
        )?;
        let password = random_token(18)?;
        let mut ca_certs = Stack::new()?;
        ca_certs.push(self.scep.ca().certificate().to_owned())?;
        let p12 = Pkcs12::builder()
            .name(common_name)
            .pkey(&key)
            .cert(&issued.certificate)
            .ca(ca_certs)
            .key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .mac_md(MessageDigest::sha1())
            .build2(&password)?;
        tracing::info!(serial = issued.record.serial, subject = %issued.record.subject,
            "issued a PKCS#12 device identity for an enrollment profile");
        Ok(IdentityPayload::Pkcs12 {
            content: p12.to_der()?,
            password,
        })
    }
}

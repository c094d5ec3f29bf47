//! The identity verifier: turns an `Mdm-Signature` header (or a TLS client certificate) into a
//! [`VerifiedIdentity`], doing as little work per request as possible.
//!
//! Fast path, per request: base64-decode the header, walk the CMS structure with the in-house
//! DER reader, hash the body and compare it with the signed messageDigest, look the signer
//! certificate up by its SHA-256 in the cache, judge the cached validity window against `now`,
//! and verify one signature with the cached public key. A certificate not seen before is parsed
//! by openssl and chain-verified against the [`TrustAnchors`] once, then cached.
//!
//! What this module does not do: bind the certificate to an enrollment (the server checks
//! `cert_sha256` against the store) or map errors to HTTP (the server answers 400 to all).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use openssl::hash::hash;
use openssl::pkey::Id;
use openssl::sign::Verifier;

use crate::ber;

use super::algorithm::{DigestAlgorithm, KeyAlgorithm, SignatureAlgorithm};
use super::asn1_time::{self, unix_seconds};
use super::certificate_cache::{CertificateCache, CertificateHash};
use super::error::IdentityError;
use super::signed_data::SignedMessage;
use super::trust::{CertificateFacts, TrustAnchors, ValidityWindow};

/// The HTTP header carrying the device's detached CMS signature over the body.
pub const SIGNATURE_HEADER: &str = "Mdm-Signature";

/// Standard base64, padding optional (devices pad; some tools do not).
const HEADER_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Tunables of the verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// How far in the future a certificate's NotBefore may be and still be accepted (device and
    /// server clocks disagree; a freshly issued SCEP certificate is used at once). Default 5 min.
    pub clock_skew: Duration,
    /// Maximum number of verified certificates kept in the cache. Default 100,000.
    pub cache_capacity: usize,
    /// Maximum length of the `Mdm-Signature` header value, in bytes. Default 32 KiB.
    pub max_signature_header_len: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            clock_skew: Duration::from_secs(5 * 60),
            cache_capacity: 100_000,
            max_signature_header_len: 32 * 1024,
        }
    }
}

/// How the device proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentitySource {
    /// A detached CMS signature in the `Mdm-Signature` header.
    MdmSignature,
    /// The TLS client certificate of the connection.
    TlsClientCertificate,
}

/// A device certificate that chains to a trusted CA, is within its validity dates, and (for a
/// signature) signed this very body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// SHA-256 of the certificate's DER: the value the server binds to an enrollment.
    pub cert_sha256: [u8; 32],
    /// One-line subject of the certificate (`CN=…, O=…`).
    pub subject: String,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
    /// The certificate's own NotBefore.
    pub not_before: SystemTime,
    /// The certificate's own NotAfter.
    pub not_after: SystemTime,
    /// The signingTime signed attribute, when the signature carries one (informational only).
    pub signing_time: Option<SystemTime>,
    /// Signature header or TLS client certificate.
    pub source: IdentitySource,
}

impl VerifiedIdentity {
    /// Lower-case hex of [`Self::cert_sha256`].
    pub fn cert_sha256_hex(&self) -> String {
        hex::encode(self.cert_sha256)
    }

    pub(crate) fn from_facts(
        cert_sha256: CertificateHash,
        facts: &CertificateFacts,
        signing_time: Option<i64>,
        source: IdentitySource,
    ) -> Self {
        Self {
            cert_sha256,
            subject: facts.subject.clone(),
            common_name: facts.common_name.clone(),
            not_before: asn1_time::system_time(facts.leaf_window.not_before),
            not_after: asn1_time::system_time(facts.leaf_window.not_after),
            signing_time: signing_time.map(asn1_time::system_time),
            source,
        }
    }
}

/// Verifies device identities against a fixed set of trust anchors, caching verified
/// certificates. Share one per server (`Arc<IdentityVerifier>`); all methods take `&self`.
#[derive(Debug)]
pub struct IdentityVerifier {
    anchors: TrustAnchors,
    config: IdentityConfig,
    cache: CertificateCache,
}

impl IdentityVerifier {
    /// A verifier trusting `anchors`.
    pub fn new(anchors: TrustAnchors, config: IdentityConfig) -> Self {
        let cache = CertificateCache::new(config.cache_capacity);
        Self {
            anchors,
            config,
            cache,
        }
    }

    /// The trust anchors in use.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// The configuration in use.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Number of certificates currently cached as verified.
    pub fn cached_certificates(&self) -> usize {
        self.cache.len()
    }

    /// Forgets every cached certificate; the next use of each takes the full path again.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// Verifies a request's identity: the `Mdm-Signature` header if present, otherwise the TLS
    /// client certificate (its DER, without intermediates), otherwise
    /// [`IdentityError::MissingIdentity`].
    pub fn verify_request(
        &self,
        signature_header: Option<&[u8]>,
        peer_certificate: Option<&[u8]>,
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, IdentityError> {
        match (signature_header, peer_certificate) {
            (Some(header), _) => self.verify_signature(header, body, now),
            (None, Some(cert)) => self.verify_client_certificate(cert, &[], now),
            (None, None) => Err(IdentityError::MissingIdentity),
        }
    }

    /// Verifies an `Mdm-Signature` header value (base64 of a detached CMS SignedData) over `body`.
    pub fn verify_signature(
        &self,
        header: &[u8],
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, IdentityError> {
        let der = self.decode_header(header)?;
        self.verify_signature_der(&der, body, now)
    }

    /// Verifies a detached CMS SignedData, already decoded from base64, over `body`.
    pub fn verify_signature_der(
        &self,
        der: &[u8],
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, IdentityError> {
        // Devices send BER (indefinite lengths from Apple's streaming encoder); DER input is
        // borrowed as is.
        let der = ber::to_der(der, &ber::BerLimits::DEVICE_CMS)
            .map_err(|e| IdentityError::MalformedCms(e.reason()))?;
        let message = SignedMessage::parse(&der)?;
        if message.content.is_some_and(|content| content != body) {
            return Err(IdentityError::MalformedCms(
                "the signature embeds content other than the request body",
            ));
        }
        let digest = message
            .signature_algorithm
            .effective_digest(message.digest)
            .ok_or(IdentityError::UnsupportedAlgorithm(
                "signature algorithm names another digest than the SignerInfo",
            ))?;
        // Cheapest rejection first: a body that was altered fails here before any certificate work.
        if let Some(attributes) = &message.signed_attributes {
            let actual = hash(message.digest.message_digest(), body)?;
            if attributes.message_digest.len() != actual.len()
                || !openssl::memcmp::eq(attributes.message_digest, &actual)
            {
                return Err(IdentityError::DigestMismatch);
            }
        }
        let signer_der = message.signer_certificate()?;
        let (cert_sha256, facts) = self.certificate_facts(signer_der, || {
            message
                .certificates()
                .filter_map(Result::ok)
                .filter(|cert| !std::ptr::eq(cert.as_ptr(), signer_der.as_ptr()))
                .collect()
        })?;
        self.check_dates(facts.chain_window, now)?;

        let verified = match &message.signed_attributes {
            Some(attributes) => {
                // The signature covers the DER of the attributes as a SET OF (tag 0x31), not the
                // [0] IMPLICIT tag they are sent with (RFC 5652 5.4): re-encoded in DER when the
                // signer sent another encoding.
                let attributes_der =
                    ber::to_canonical_der(attributes.raw, &ber::BerLimits::DEVICE_CMS)
                        .map_err(|e| IdentityError::MalformedCms(e.reason()))?;
                let rest = attributes_der.get(1..).unwrap_or_default();
                verify_with_key(
                    &facts,
                    message.signature_algorithm,
                    digest,
                    &[&[0x31], rest],
                    message.signature,
                )?
            }
            None => verify_with_key(
                &facts,
                message.signature_algorithm,
                digest,
                &[body],
                message.signature,
            )?,
        };
        if !verified {
            return Err(IdentityError::BadSignature);
        }
        let signing_time = message
            .signed_attributes
            .as_ref()
            .and_then(|attributes| attributes.signing_time);
        Ok(VerifiedIdentity::from_facts(
            cert_sha256,
            &facts,
            signing_time,
            IdentitySource::MdmSignature,
        ))
    }

    /// Verifies a TLS client certificate (DER) with optional intermediates. The TLS layer has
    /// already proven possession of the key; this checks trust and dates.
    pub fn verify_client_certificate(
        &self,
        certificate: &[u8],
        intermediates: &[&[u8]],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, IdentityError> {
        let (cert_sha256, facts) =
            self.certificate_facts(certificate, || intermediates.to_vec())?;
        self.check_dates(facts.chain_window, now)?;
        Ok(VerifiedIdentity::from_facts(
            cert_sha256,
            &facts,
            None,
            IdentitySource::TlsClientCertificate,
        ))
    }

    /// Decodes the header value, refusing oversized ones before any work.
    pub(crate) fn decode_header(&self, header: &[u8]) -> Result<Vec<u8>, IdentityError> {
        let max = self.config.max_signature_header_len;
        if header.len() > max {
            return Err(IdentityError::HeaderTooLarge {
                len: header.len(),
                max,
            });
        }
        let trimmed = header.trim_ascii();
        HEADER_BASE64
            .decode(trimmed)
            .or_else(|_| general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| IdentityError::BadBase64)
    }

    /// The cached facts for a certificate, taking the full path (openssl parse and chain
    /// verification) on a miss. `intermediates` is only called on a miss.
    pub(crate) fn certificate_facts<'c>(
        &self,
        certificate: &[u8],
        intermediates: impl FnOnce() -> Vec<&'c [u8]>,
    ) -> Result<(CertificateHash, Arc<CertificateFacts>), IdentityError> {
        let cert_sha256 = sha256(certificate);
        if let Some(facts) = self.cache.get(&cert_sha256) {
            return Ok((cert_sha256, facts));
        }
        let facts = Arc::new(
            self.anchors
                .verify_certificate(certificate, &intermediates())?,
        );
        self.cache.insert(cert_sha256, Arc::clone(&facts));
        Ok((cert_sha256, facts))
    }

    /// Judges a validity window against `now`, allowing the configured skew before NotBefore.
    pub(crate) fn check_dates(
        &self,
        window: ValidityWindow,
        now: SystemTime,
    ) -> Result<(), IdentityError> {
        let now = unix_seconds(now);
        let skew = i64::try_from(self.config.clock_skew.as_secs()).unwrap_or(i64::MAX);
        if now.saturating_add(skew) < window.not_before {
            return Err(IdentityError::NotYetValid {
                not_before: asn1_time::system_time(window.not_before),
            });
        }
        if now > window.not_after {
            return Err(IdentityError::Expired {
                not_after: asn1_time::system_time(window.not_after),
            });
        }
        Ok(())
    }
}

/// SHA-256 of some bytes, as an array.
pub(crate) fn sha256(data: &[u8]) -> CertificateHash {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// Verifies `signature` over the concatenation of `parts` with the cached public key.
/// `Ok(false)` for a signature that does not verify (including a malformed one).
fn verify_with_key(
    facts: &CertificateFacts,
    algorithm: SignatureAlgorithm,
    digest: DigestAlgorithm,
    parts: &[&[u8]],
    signature: &[u8],
) -> Result<bool, IdentityError> {
    let key = &facts.public_key;
    let key_matches = match algorithm.key {
        KeyAlgorithm::Rsa => key.id() == Id::RSA,
        KeyAlgorithm::Ecdsa => key.id() == Id::EC,
    };
    if !key_matches {
        return Err(IdentityError::UnsupportedAlgorithm(
            "signature algorithm does not match the certificate's key",
        ));
    }
    // A key openssl cannot use for this digest (a garbled or exotic certificate key) is the
    // certificate's fault, not the server's.
    let mut verifier =
        Verifier::new(digest.message_digest(), key).map_err(|_| IdentityError::BadCertificate)?;
    for part in parts {
        verifier
            .update(part)
            .map_err(|_| IdentityError::BadCertificate)?;
    }
    // openssl reports a structurally invalid signature (bad ECDSA DER, wrong RSA length) as an
    // error rather than `false`; either way the signature is not valid.
    Ok(verifier.verify(signature).unwrap_or(false))
}

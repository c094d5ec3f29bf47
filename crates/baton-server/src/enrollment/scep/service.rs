//! The SCEP server core: turns a PKIOperation message into a CertRep, without any HTTP.
//!
//! Steps for a request: decode the SignedData (strict DER, with a re-encoding through OpenSSL
//! for BER input), read messageType / transactionID / senderNonce, verify the signature with the
//! signer certificate carried in the message, decrypt the EnvelopedData with the CA key, check
//! the CSR (RSA 1024–4096 only), authorize (challenge for PKCSReq; for RenewalReq a valid,
//! unrevoked certificate issued by this CA), issue, and answer a CertRep whose degenerate
//! certs-only PKCS#7 is encrypted to the requester's certificate with the cipher the request
//! used. Every refusal after the signed attributes are readable is a CertRep with
//! pkiStatus=FAILURE and a failInfo; only undecodable input is an error (HTTP 400).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKey, Public};
use openssl::stack::Stack;
use openssl::x509::{X509, X509Req};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::message::{FailInfo, MessageType, PkiStatus};
use crate::ber;
use crate::enrollment::ca::{CaError, CertificateAuthority, IssueRequest};
use crate::enrollment::certificate_profile::CertificateProfile;
use crate::enrollment::certificate_request;
use crate::enrollment::challenge::{ChallengeGrant, ChallengePolicy};
use crate::enrollment::cms::{self, CmsError, ContentCipher, DigestAlgorithm, SignedMessage};
use crate::enrollment::der::{self, Tlv};
use crate::enrollment::envelope;
use crate::enrollment::oid;
use crate::enrollment::registry::{CertificateRegistry, IssuedCertificateRecord};

/// The GetCACaps answer.
pub const CA_CAPS: &str =
    "POSTPKIOperation\nSHA-256\nSHA-512\nSHA-1\nAES\nDES3\nRenewal\nSCEPStandard\n";

/// SCEP issuance settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScepConfig {
    /// Validity of issued device identity certificates.
    pub device_validity: Duration,
    /// Smallest accepted RSA key, in bits.
    pub min_rsa_bits: u32,
    /// Largest accepted RSA key, in bits.
    pub max_rsa_bits: u32,
}

impl Default for ScepConfig {
    fn default() -> Self {
        Self {
            device_validity: Duration::from_secs(365 * 24 * 3600),
            min_rsa_bits: 1024,
            max_rsa_bits: 4096,
        }
    }
}

/// A PKIOperation that gets no CertRep at all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PkiOperationError {
    /// The message cannot be decoded far enough to answer it (HTTP 400).
    #[error("undecodable SCEP message: {0}")]
    Malformed(String),
    /// A server-side failure (registry, signing) (HTTP 500).
    #[error("SCEP server failure: {0}")]
    Internal(String),
}

/// The answer to a PKIOperation.
#[derive(Debug, Clone)]
pub struct PkiReply {
    /// The DER CertRep.
    pub der: Vec<u8>,
    /// Its pkiStatus.
    pub status: PkiStatus,
    /// Its failInfo, when the status is FAILURE.
    pub fail_info: Option<FailInfo>,
    /// The request's message type, when known.
    pub message_type: Option<MessageType>,
    /// The registry record of the issued certificate, on success.
    pub issued: Option<IssuedCertificateRecord>,
}

/// The SCEP server core: the CA, the registry and the challenge policy.
#[derive(Debug)]
pub struct ScepService {
    ca: Arc<CertificateAuthority>,
    registry: Arc<dyn CertificateRegistry>,
    challenges: ChallengePolicy,
    config: ScepConfig,
}

/// What the request asks, read from its signed attributes.
struct RequestHeader<'a> {
    message_type: Option<MessageType>,
    transaction_id: Tlv<'a>,
    sender_nonce: &'a [u8],
    digest: DigestAlgorithm,
}

/// A refusal: the failInfo and the reason for the log.
struct Refusal {
    fail_info: FailInfo,
    reason: String,
}

impl Refusal {
    fn new(fail_info: FailInfo, reason: impl Into<String>) -> Self {
        Self {
            fail_info,
            reason: reason.into(),
        }
    }
}

/// The outcome of the enrollment steps before the reply is built.
enum Handled {
    Issued {
        der: Vec<u8>,
        record: IssuedCertificateRecord,
        recipient: X509,
        cipher: ContentCipher,
    },
    Refused(Refusal),
}

impl ScepService {
    /// A SCEP service issuing with `ca`, recording in `registry`, authorizing with `challenges`.
    pub fn new(
        ca: Arc<CertificateAuthority>,
        registry: Arc<dyn CertificateRegistry>,
        challenges: ChallengePolicy,
        config: ScepConfig,
    ) -> Self {
        Self {
            ca,
            registry,
            challenges,
            config,
        }
    }

    /// The CA.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<dyn CertificateRegistry> {
        &self.registry
    }

    /// The challenge policy (to create one-time challenges).
    pub fn challenges(&self) -> &ChallengePolicy {
        &self.challenges
    }

    /// Handles one PKIOperation message (DER) at `now`.
    pub fn pki_operation(
        &self,
        message: &[u8],
        now: SystemTime,
    ) -> Result<PkiReply, PkiOperationError> {
        // Apple's devices send BER (indefinite lengths, chunked content); DER is borrowed as is.
        let message = ber::to_der(message, &ber::BerLimits::DEVICE_CMS)
            .map_err(|e| PkiOperationError::Malformed(e.to_string()))?;
        let signed = SignedMessage::parse(&message)
            .map_err(|e| PkiOperationError::Malformed(e.to_string()))?;
        let header = read_header(&signed)?;
        let handled = match header.message_type {
            Some(MessageType::PkcsReq | MessageType::RenewalReq | MessageType::UpdateReq) => {
                self.enroll(&signed, &header, now)?
            }
            Some(other) => Handled::Refused(Refusal::new(
                FailInfo::BadRequest,
                format!("{other} is not supported"),
            )),
            None => Handled::Refused(Refusal::new(FailInfo::BadRequest, "unknown messageType")),
        };
        let transaction_id = der::read_string(header.transaction_id).unwrap_or_default();
        match handled {
            Handled::Issued {
                der,
                record,
                recipient,
                cipher,
            } => {
                let reply = self.success_reply(&header, &der, &recipient, cipher)?;
                tracing::info!(
                    transaction_id = %transaction_id,
                    message_type = ?header.message_type,
                    serial = record.serial,
                    subject = %record.subject,
                    "SCEP certificate issued"
                );
                Ok(PkiReply {
                    der: reply,
                    status: PkiStatus::Success,
                    fail_info: None,
                    message_type: header.message_type,
                    issued: Some(record),
                })
            }
            Handled::Refused(refusal) => {
                tracing::warn!(
                    transaction_id = %transaction_id,
                    message_type = ?header.message_type,
                    fail_info = %refusal.fail_info,
                    reason = %refusal.reason,
                    "SCEP request refused"
                );
                let reply =
                    self.reply(&header, PkiStatus::Failure, Some(refusal.fail_info), None)?;
                Ok(PkiReply {
                    der: reply,
                    status: PkiStatus::Failure,
                    fail_info: Some(refusal.fail_info),
                    message_type: header.message_type,
                    issued: None,
                })
            }
        }
    }

    fn enroll(
        &self,
        signed: &SignedMessage<'_>,
        header: &RequestHeader<'_>,
        now: SystemTime,
    ) -> Result<Handled, PkiOperationError> {
        use Handled::Refused;
        let refuse = |fail_info, reason: String| Ok(Refused(Refusal::new(fail_info, reason)));

        let Ok(signer_der) = signed.signer_certificate() else {
            return refuse(
                FailInfo::BadMessageCheck,
                "signer certificate missing".into(),
            );
        };
        let Ok(signer) = X509::from_der(signer_der) else {
            return refuse(
                FailInfo::BadMessageCheck,
                "signer certificate unreadable".into(),
            );
        };
        match signed.verify(&signer) {
            Ok(()) => {}
            Err(e @ (CmsError::UnsupportedDigest | CmsError::UnsupportedSignatureAlgorithm)) => {
                return refuse(FailInfo::BadAlg, e.to_string());
            }
            Err(e) => return refuse(FailInfo::BadMessageCheck, e.to_string()),
        }
        let signer_key = signer.public_key().map_err(internal)?;
        if signer_key.id() != Id::RSA {
            return refuse(FailInfo::BadAlg, "signer key is not RSA".into());
        }
        let Some(enveloped) = signed.content else {
            return refuse(FailInfo::BadRequest, "no pkcsPKIEnvelope".into());
        };
        let (csr_der, cipher) =
            match envelope::open(enveloped, self.ca.private_key(), self.ca.certificate()) {
                Ok(opened) => (opened.content, opened.reply_cipher),
                Err(e) => {
                    return refuse(FailInfo::BadMessageCheck, format!("envelope: {e}"));
                }
            };
        let Ok(csr) = X509Req::from_der(&csr_der) else {
            return refuse(
                FailInfo::BadRequest,
                "envelope holds no PKCS#10 request".into(),
            );
        };
        let Ok(public_key) = csr.public_key() else {
            return refuse(FailInfo::BadAlg, "unreadable CSR public key".into());
        };
        if let Err(reason) = self.check_key(&public_key) {
            return refuse(FailInfo::BadAlg, reason);
        }
        if !csr.verify(&public_key).unwrap_or(false) {
            return refuse(
                FailInfo::BadMessageCheck,
                "CSR signature does not verify".into(),
            );
        }

        let enrollment_hint = if header.message_type == Some(MessageType::PkcsReq) {
            // openssl read the CSR as sent (its signature covers those bytes); the attribute
            // reader wants DER.
            let csr_attributes = match ber::to_der(&csr_der, &ber::BerLimits::DEVICE_CMS) {
                Ok(der) => der,
                Err(e) => return refuse(FailInfo::BadRequest, format!("CSR: {e}")),
            };
            let presented = match certificate_request::challenge_password(&csr_attributes) {
                Ok(p) => p,
                Err(e) => return refuse(FailInfo::BadRequest, format!("CSR attributes: {e}")),
            };
            match self
                .challenges
                .check(presented.as_deref(), now)
                .map_err(internal)?
            {
                Ok(ChallengeGrant::Static) => None,
                Ok(ChallengeGrant::OneTime { enrollment_hint }) => enrollment_hint,
                Err(rejection) => return refuse(FailInfo::BadRequest, rejection.to_string()),
            }
        } else {
            match self.check_renewal_signer(&signer, signer_der, now)? {
                Ok(record) => record.enrollment_hint,
                Err(refusal) => return Ok(Refused(refusal)),
            }
        };

        let issued = self.ca.issue(
            self.registry.as_ref(),
            &IssueRequest {
                public_key: &public_key,
                subject: csr.subject_name(),
                profile: CertificateProfile::DeviceIdentity,
                validity: self.config.device_validity,
                enrollment_hint,
            },
            now,
        );
        match issued {
            Ok(issued) => Ok(Handled::Issued {
                der: issued.der,
                record: issued.record,
                recipient: signer,
                cipher,
            }),
            Err(CaError::Registry(e)) => Err(internal(e)),
            Err(e) => refuse(FailInfo::BadRequest, format!("cannot issue: {e}")),
        }
    }

    fn check_key(&self, key: &PKey<Public>) -> Result<(), String> {
        if key.id() != Id::RSA {
            return Err(format!("key type {:?} refused (RSA only)", key.id()));
        }
        let bits = key.bits();
        if bits < self.config.min_rsa_bits || bits > self.config.max_rsa_bits {
            return Err(format!("RSA key of {bits} bits refused"));
        }
        Ok(())
    }

    fn check_renewal_signer(
        &self,
        signer: &X509,
        signer_der: &[u8],
        now: SystemTime,
    ) -> Result<Result<IssuedCertificateRecord, Refusal>, PkiOperationError> {
        if !self.ca.issued(signer) {
            return Ok(Err(Refusal::new(
                FailInfo::BadCertId,
                "renewal not signed by a certificate of this CA",
            )));
        }
        let now_unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let now_asn1 = openssl::asn1::Asn1Time::from_unix(now_unix).map_err(internal)?;
        if signer.not_before() > now_asn1 || signer.not_after() < now_asn1 {
            return Ok(Err(Refusal::new(
                FailInfo::BadTime,
                "renewal signer certificate outside its validity",
            )));
        }
        let hash: [u8; 32] = Sha256::digest(signer_der).into();
        Ok(match self.registry.by_sha256(&hash).map_err(internal)? {
            None => Err(Refusal::new(
                FailInfo::BadCertId,
                "renewal signer not in the registry",
            )),
            Some(record) if record.revoked_at.is_some() => Err(Refusal::new(
                FailInfo::BadCertId,
                format!("renewal signer serial {} is revoked", record.serial),
            )),
            Some(record) => Ok(record),
        })
    }

    fn success_reply(
        &self,
        header: &RequestHeader<'_>,
        issued_der: &[u8],
        recipient: &X509,
        cipher: ContentCipher,
    ) -> Result<Vec<u8>, PkiOperationError> {
        let degenerate = cms::degenerate_certificates(&[issued_der]);
        let mut recipients = Stack::new().map_err(internal)?;
        recipients.push(recipient.clone()).map_err(internal)?;
        let enveloped = Pkcs7::encrypt(
            &recipients,
            &degenerate,
            cipher.cipher(),
            Pkcs7Flags::BINARY,
        )
        .and_then(|p7| p7.to_der())
        .map_err(internal)?;
        self.reply(header, PkiStatus::Success, None, Some(&enveloped))
    }

    fn reply(
        &self,
        header: &RequestHeader<'_>,
        status: PkiStatus,
        fail_info: Option<FailInfo>,
        content: Option<&[u8]>,
    ) -> Result<Vec<u8>, PkiOperationError> {
        let mut nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut nonce).map_err(internal)?;
        let mut builder = cms::SignedDataBuilder::new(header.digest, content)
            .certificate(self.ca.certificate_der())
            .attribute(
                oid::SCEP_MESSAGE_TYPE,
                &der::printable_string(MessageType::CertRep.as_str()),
            )
            .attribute(
                oid::SCEP_PKI_STATUS,
                &der::printable_string(status.as_str()),
            )
            .attribute(oid::SCEP_TRANSACTION_ID, header.transaction_id.raw)
            .attribute(oid::SCEP_SENDER_NONCE, &der::octet_string(&nonce))
            .attribute(
                oid::SCEP_RECIPIENT_NONCE,
                &der::octet_string(header.sender_nonce),
            );
        if let Some(fail_info) = fail_info {
            builder = builder.attribute(
                oid::SCEP_FAIL_INFO,
                &der::printable_string(fail_info.as_str()),
            );
        }
        builder
            .sign(self.ca.certificate_der(), self.ca.private_key())
            .map_err(internal)
    }
}

fn read_header<'a>(signed: &SignedMessage<'a>) -> Result<RequestHeader<'a>, PkiOperationError> {
    let malformed =
        |what: &str| PkiOperationError::Malformed(format!("{what} attribute missing or invalid"));
    let message_type = signed
        .attribute(oid::SCEP_MESSAGE_TYPE)
        .ok_or_else(|| malformed("messageType"))?;
    let message_type = der::read_string(message_type).map_err(|_| malformed("messageType"))?;
    let transaction_id = signed
        .attribute(oid::SCEP_TRANSACTION_ID)
        .filter(|t| der::read_string(*t).is_ok_and(|s| !s.is_empty()))
        .ok_or_else(|| malformed("transactionID"))?;
    let sender_nonce = signed
        .attribute(oid::SCEP_SENDER_NONCE)
        .filter(|n| n.tag == der::TAG_OCTET_STRING && !n.value.is_empty())
        .ok_or_else(|| malformed("senderNonce"))?
        .value;
    Ok(RequestHeader {
        message_type: MessageType::parse(&message_type),
        transaction_id,
        sender_nonce,
        digest: signed.digest.unwrap_or(DigestAlgorithm::Sha256),
    })
}

fn internal(e: impl std::fmt::Display) -> PkiOperationError {
    PkiOperationError::Internal(e.to_string())
}

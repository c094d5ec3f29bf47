//! A SCEP client: builds PKCSReq / RenewalReq messages and reads CertRep replies.
//!
//! Used by the tests and by simulated devices. Everything is synchronous and transport-free:
//! the caller sends [`PkiRequest::der`] (POST body, or base64 in the `message` parameter) and
//! hands the reply to [`decode_cert_rep`].
//!
//! Requests are strict DER unless [`PkiRequestParams::encoding`] asks for the BER form iOS sends
//! ([`CmsEncoding::IosBer`]: the SignedData and the pkcsPKIEnvelope inside it streamed with
//! indefinite lengths, as Apple's `SecSCEPGenerateCertificateRequest` writes them).
//!
//! ```no_run
//! # use baton_server::enrollment::scep::client::*;
//! # fn send(_: &[u8]) -> Vec<u8> { Vec::new() }
//! # fn demo(ca_cert: &openssl::x509::X509Ref) -> Result<(), ClientError> {
//! let key = generate_rsa_key(2048)?;
//! let identity = self_signed_certificate(&key, "iPhone 42")?;
//! let subject = subject_name("iPhone 42")?;
//! let csr = certificate_request(&key, &subject, Some("challenge"))?;
//! let request = PkiRequestParams::pkcs_req(&csr, &key, &identity, ca_cert).build()?;
//! let reply = send(&request.der);
//! let outcome = decode_cert_rep(&reply, &request, ca_cert, &key, &identity)?;
//! # let _ = outcome; Ok(()) }
//! ```

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Name, X509NameRef, X509Ref};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::message::{FailInfo, MessageType, PkiStatus};
use crate::enrollment::certificate_request;
use crate::enrollment::cms::{CmsError, SignedDataBuilder, SignedMessage};
use crate::enrollment::der;
use crate::enrollment::oid;

pub use crate::enrollment::cms::{ContentCipher, DigestAlgorithm};
pub use crate::identity::testing::{CmsEncoding, CmsEncodingError};

/// A client-side failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Building or reading CMS failed.
    #[error(transparent)]
    Cms(#[from] CmsError),
    /// OpenSSL failed.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// The reply is not a valid CertRep for this request.
    #[error("invalid CertRep: {0}")]
    InvalidReply(&'static str),
    /// The request could not be re-encoded in the requested [`CmsEncoding`].
    #[error(transparent)]
    Encoding(#[from] CmsEncodingError),
}

/// What a CertRep says.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CertRepOutcome {
    /// The issued certificate.
    Issued(X509),
    /// Refused, with the reason.
    Failed(FailInfo),
    /// Waiting for approval.
    Pending,
}

/// A built request and what is needed to check its reply.
#[derive(Debug, Clone)]
pub struct PkiRequest {
    /// The encoded message: DER, or BER when built with [`CmsEncoding::IosBer`].
    pub der: Vec<u8>,
    /// Its transactionID.
    pub transaction_id: String,
    /// Its senderNonce (the reply's recipientNonce must equal it).
    pub sender_nonce: [u8; 16],
}

/// Generates an RSA key.
pub fn generate_rsa_key(bits: u32) -> Result<PKey<Private>, ClientError> {
    Ok(PKey::from_rsa(Rsa::generate(bits)?)?)
}

/// A subject with only a common name.
pub fn subject_name(common_name: &str) -> Result<X509Name, ClientError> {
    let mut name = X509Name::builder()?;
    name.append_entry_by_text("CN", common_name)?;
    Ok(name.build())
}

/// A self-signed certificate for `key` (valid from an hour ago for a day), to sign a PKCSReq.
pub fn self_signed_certificate(
    key: &PKeyRef<Private>,
    common_name: &str,
) -> Result<X509, ClientError> {
    let name = subject_name(common_name)?;
    let mut serial = BigNum::new()?;
    serial.rand(63, MsbOption::MAYBE_ZERO, false)?;
    let mut builder = X509::builder()?;
    builder.set_version(2)?;
    let serial = serial.to_asn1_integer()?;
    builder.set_serial_number(&serial)?;
    builder.set_subject_name(&name)?;
    builder.set_issuer_name(&name)?;
    builder.set_pubkey(key)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let not_before = Asn1Time::from_unix(now.saturating_sub(3600))?;
    let not_after = Asn1Time::from_unix(now.saturating_add(86_400))?;
    builder.set_not_before(&not_before)?;
    builder.set_not_after(&not_after)?;
    builder.sign(key, MessageDigest::sha256())?;
    Ok(builder.build())
}

/// A DER PKCS#10 request with an optional challengePassword.
pub fn certificate_request(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
    challenge: Option<&str>,
) -> Result<Vec<u8>, ClientError> {
    Ok(certificate_request::build(key, subject, challenge)?)
}

/// Everything a PKCSReq or RenewalReq is made of.
#[derive(Clone)]
pub struct PkiRequestParams<'a> {
    /// PKCSReq or RenewalReq.
    pub message_type: MessageType,
    /// The DER CSR.
    pub csr_der: &'a [u8],
    /// The key that signs the message.
    pub signer_key: &'a PKeyRef<Private>,
    /// Its certificate (self-signed for PKCSReq, the current identity for RenewalReq); the
    /// reply is encrypted to it.
    pub signer_cert: &'a X509Ref,
    /// The CA certificate (the CSR is encrypted to it).
    pub ca_cert: &'a X509Ref,
    /// Digest for the signature.
    pub digest: DigestAlgorithm,
    /// Cipher for the envelope.
    pub cipher: ContentCipher,
    /// DER, or the BER form of iOS for both the SignedData and the envelope inside it.
    pub encoding: CmsEncoding,
}

impl std::fmt::Debug for PkiRequestParams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PkiRequestParams")
            .field("message_type", &self.message_type)
            .field("digest", &self.digest)
            .field("cipher", &self.cipher)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl<'a> PkiRequestParams<'a> {
    /// A PKCSReq with SHA-256 and AES-128-CBC, in DER.
    pub fn pkcs_req(
        csr_der: &'a [u8],
        signer_key: &'a PKeyRef<Private>,
        signer_cert: &'a X509Ref,
        ca_cert: &'a X509Ref,
    ) -> Self {
        Self {
            message_type: MessageType::PkcsReq,
            csr_der,
            signer_key,
            signer_cert,
            ca_cert,
            digest: DigestAlgorithm::Sha256,
            cipher: ContentCipher::Aes128Cbc,
            encoding: CmsEncoding::Der,
        }
    }

    /// A RenewalReq signed with the current identity, SHA-256 and AES-128-CBC, in DER.
    pub fn renewal_req(
        csr_der: &'a [u8],
        identity_key: &'a PKeyRef<Private>,
        identity_cert: &'a X509Ref,
        ca_cert: &'a X509Ref,
    ) -> Self {
        Self {
            message_type: MessageType::RenewalReq,
            ..Self::pkcs_req(csr_der, identity_key, identity_cert, ca_cert)
        }
    }

    /// Builds the signed, encrypted message. In the iOS form the envelope is re-encoded before
    /// it is signed: the messageDigest covers the envelope's bytes as sent.
    pub fn build(&self) -> Result<PkiRequest, ClientError> {
        let mut recipients = Stack::new()?;
        recipients.push(self.ca_cert.to_owned())?;
        let enveloped = self.encoding.encode(
            &Pkcs7::encrypt(
                &recipients,
                self.csr_der,
                self.cipher.cipher(),
                Pkcs7Flags::BINARY,
            )?
            .to_der()?,
        )?;
        let transaction_id = hex::encode(Sha256::digest(self.signer_key.public_key_to_der()?));
        let mut sender_nonce = [0u8; 16];
        openssl::rand::rand_bytes(&mut sender_nonce)?;
        let signer_der = self.signer_cert.to_der()?;
        let der = SignedDataBuilder::new(self.digest, Some(&enveloped))
            .certificate(&signer_der)
            .attribute(
                oid::SCEP_MESSAGE_TYPE,
                &der::printable_string(self.message_type.as_str()),
            )
            .attribute(
                oid::SCEP_TRANSACTION_ID,
                &der::printable_string(&transaction_id),
            )
            .attribute(oid::SCEP_SENDER_NONCE, &der::octet_string(&sender_nonce))
            .sign(&signer_der, self.signer_key)?;
        let der = self.encoding.encode(&der)?;
        Ok(PkiRequest {
            der,
            transaction_id,
            sender_nonce,
        })
    }
}

/// Verifies a CertRep against the CA and the request, and extracts its outcome (decrypting the
/// issued certificate with the signer's key and certificate).
pub fn decode_cert_rep(
    reply: &[u8],
    request: &PkiRequest,
    ca_cert: &X509Ref,
    signer_key: &PKeyRef<Private>,
    signer_cert: &X509Ref,
) -> Result<CertRepOutcome, ClientError> {
    let signed = SignedMessage::parse(reply)?;
    signed.verify(ca_cert)?;
    let text = |arcs: &[u64], what: &'static str| {
        signed
            .attribute(arcs)
            .and_then(|t| der::read_string(t).ok())
            .ok_or(ClientError::InvalidReply(what))
    };
    if MessageType::parse(&text(oid::SCEP_MESSAGE_TYPE, "messageType")?)
        != Some(MessageType::CertRep)
    {
        return Err(ClientError::InvalidReply("not a CertRep"));
    }
    if text(oid::SCEP_TRANSACTION_ID, "transactionID")? != request.transaction_id {
        return Err(ClientError::InvalidReply("transactionID mismatch"));
    }
    let recipient_nonce = signed
        .attribute(oid::SCEP_RECIPIENT_NONCE)
        .ok_or(ClientError::InvalidReply("recipientNonce missing"))?;
    if recipient_nonce.tag != der::TAG_OCTET_STRING || recipient_nonce.value != request.sender_nonce
    {
        return Err(ClientError::InvalidReply("recipientNonce mismatch"));
    }
    if signed
        .attribute(oid::SCEP_SENDER_NONCE)
        .is_none_or(|n| n.value.is_empty())
    {
        return Err(ClientError::InvalidReply("senderNonce missing"));
    }
    match PkiStatus::parse(&text(oid::SCEP_PKI_STATUS, "pkiStatus")?) {
        Some(PkiStatus::Success) => {
            let enveloped = signed
                .content
                .ok_or(ClientError::InvalidReply("no pkcsPKIEnvelope"))?;
            let degenerate =
                Pkcs7::from_der(enveloped)?.decrypt(signer_key, signer_cert, Pkcs7Flags::BINARY)?;
            let p7 = Pkcs7::from_der(&degenerate)?;
            let certs = p7
                .signed()
                .and_then(|s| s.certificates())
                .ok_or(ClientError::InvalidReply("no certificates in the reply"))?;
            // The issued certificate: the one for the signer's key (PKCSReq), else (renewal with
            // a new key) the first one that is not the CA's.
            let ca_der = ca_cert.to_der()?;
            let mut other = None;
            for cert in certs {
                if cert.public_key()?.public_eq(signer_key) {
                    return Ok(CertRepOutcome::Issued(cert.to_owned()));
                }
                if other.is_none() && cert.to_der()? != ca_der {
                    other = Some(cert.to_owned());
                }
            }
            other
                .map(CertRepOutcome::Issued)
                .ok_or(ClientError::InvalidReply(
                    "no issued certificate in the reply",
                ))
        }
        Some(PkiStatus::Failure) => FailInfo::parse(&text(oid::SCEP_FAIL_INFO, "failInfo")?)
            .map(CertRepOutcome::Failed)
            .ok_or(ClientError::InvalidReply("unknown failInfo")),
        Some(PkiStatus::Pending) => Ok(CertRepOutcome::Pending),
        None => Err(ClientError::InvalidReply("unknown pkiStatus")),
    }
}

#[cfg(test)]
mod tests {
    use openssl::x509::store::X509StoreBuilder;

    use super::*;
    use crate::identity::testing::TestCa;
    use crate::identity::testing::ios_encoding::definite_lengths_only;

    struct Fixture {
        ca: TestCa,
        key: PKey<Private>,
        signer: X509,
        csr: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let ca = TestCa::generate("scep encoding CA").unwrap();
        let key = generate_rsa_key(2048).unwrap();
        let signer = self_signed_certificate(&key, "iPhone").unwrap();
        let csr =
            certificate_request(&key, &subject_name("iPhone").unwrap(), Some("secret")).unwrap();
        Fixture {
            ca,
            key,
            signer,
            csr,
        }
    }

    fn build(f: &Fixture, encoding: CmsEncoding) -> PkiRequest {
        PkiRequestParams {
            encoding,
            ..PkiRequestParams::pkcs_req(&f.csr, &f.key, &f.signer, &f.ca.cert)
        }
        .build()
        .unwrap()
    }

    /// openssl verifies the SignedData (signer certificate taken from the message) and returns
    /// its content, the pkcsPKIEnvelope.
    fn verified_content(message: &[u8]) -> Vec<u8> {
        let p7 = Pkcs7::from_der(message).unwrap();
        let store = X509StoreBuilder::new().unwrap().build();
        let mut content = Vec::new();
        p7.verify(
            &Stack::new().unwrap(),
            &store,
            None,
            Some(&mut content),
            Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
        )
        .unwrap();
        content
    }

    fn decrypted(f: &Fixture, envelope: &[u8]) -> Vec<u8> {
        Pkcs7::from_der(envelope)
            .unwrap()
            .decrypt(&f.ca.key, &f.ca.cert, Pkcs7Flags::BINARY)
            .unwrap()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn ios_pkcs_req_streams_the_signed_data_and_the_envelope() {
        let f = fixture();
        let request = build(&f, CmsEncoding::IosBer { chunk_size: 100 });
        let message = &request.der;
        assert!(message.starts_with(&[0x30, 0x80, 0x06, 0x09]));
        // eContent: [0] EXPLICIT, constructed OCTET STRING, first substring of 100 bytes.
        assert!(contains(
            message,
            &[0xA0, 0x80, 0x24, 0x80, 0x04, 0x64, 0x30, 0x80]
        ));

        let envelope = verified_content(message);
        assert!(envelope.len() > 300, "several substrings");
        assert!(envelope.starts_with(&[0x30, 0x80, 0x06, 0x09]));
        assert!(contains(
            &envelope,
            &[
                0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03, 0xA0, 0x80, 0x30, 0x80
            ]
        ));
        // encryptedContent: [0] IMPLICIT in constructed form, substrings tagged OCTET STRING.
        assert!(contains(&envelope, &[0xA0, 0x80, 0x04, 0x64]));
        assert_eq!(decrypted(&f, &envelope), f.csr);
    }

    #[test]
    fn ios_pkcs_req_with_the_default_chunk_size_round_trips() {
        let f = fixture();
        let request = build(&f, CmsEncoding::IOS);
        assert!(request.der.starts_with(&[0x30, 0x80]));
        let envelope = verified_content(&request.der);
        assert!(envelope.starts_with(&[0x30, 0x80]));
        assert_eq!(decrypted(&f, &envelope), f.csr);
    }

    #[test]
    fn der_pkcs_req_is_strict_der() {
        let f = fixture();
        let request = build(&f, CmsEncoding::Der);
        assert_eq!(
            PkiRequestParams::pkcs_req(&f.csr, &f.key, &f.signer, &f.ca.cert).encoding,
            CmsEncoding::Der
        );
        // The server's strict DER reader takes it, and openssl finds the same envelope.
        let signed = SignedMessage::parse(&request.der).unwrap();
        signed.verify(&f.signer).unwrap();
        let envelope = signed.content.unwrap().to_vec();
        assert!(definite_lengths_only(&request.der));
        assert!(definite_lengths_only(&envelope));
        assert_eq!(verified_content(&request.der), envelope);
        assert_eq!(
            Pkcs7::from_der(&envelope).unwrap().to_der().unwrap(),
            envelope
        );
        assert_eq!(decrypted(&f, &envelope), f.csr);
    }
}

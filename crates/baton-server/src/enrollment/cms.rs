//! CMS (PKCS#7) SignedData as SCEP uses it: decoding a signed message with its signed
//! attributes, verifying it, and building one (CertRep, or a client's PKCSReq).
//!
//! The `openssl` crate can verify and decrypt PKCS#7 but cannot read or write custom signed
//! attributes (`PKCS7_add_signed_attribute` is not exposed), and SCEP lives in them. So the
//! SignedData layer is done here in DER ([`super::der`]), and OpenSSL does the cryptography: digests,
//! `Signer`/`Verifier` over the DER of the signed attributes, and the EnvelopedData layer
//! (`Pkcs7::encrypt` / `Pkcs7::decrypt`), which needs no custom attributes.

use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::sign::{Signer, Verifier};
use openssl::symm::Cipher;
use openssl::x509::X509Ref;
use thiserror::Error;

use super::der::{self, DerError, Tlv};
use super::oid;

/// A CMS failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CmsError {
    /// The DER structure is malformed.
    #[error("malformed CMS structure: {0}")]
    Der(#[from] DerError),
    /// The BER input could not be converted to DER.
    #[error("malformed CMS structure: {0}")]
    Ber(#[from] crate::ber::BerError),
    /// The ContentInfo does not hold the expected content type.
    #[error("unexpected CMS content type")]
    UnexpectedContentType,
    /// The SignedData has no SignerInfo, or more than one.
    #[error("expected exactly one signer, found {0}")]
    SignerCount(usize),
    /// The signer's certificate is not in the message.
    #[error("signer certificate not found in the message")]
    SignerCertificateMissing,
    /// The digest algorithm is not one SCEP uses.
    #[error("unsupported digest algorithm")]
    UnsupportedDigest,
    /// The signature algorithm is not PKCS#1 v1.5 RSA or ECDSA.
    #[error("unsupported signature algorithm")]
    UnsupportedSignatureAlgorithm,
    /// There are no signed attributes (SCEP requires them).
    #[error("signed attributes missing")]
    SignedAttributesMissing,
    /// The messageDigest attribute does not match the content.
    #[error("messageDigest does not match the content")]
    DigestMismatch,
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A key type that cannot sign CMS here.
    #[error("unsupported signing key type")]
    UnsupportedKey,
    /// OpenSSL failed.
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// A digest algorithm accepted in SCEP messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-1 (older clients, including older iOS).
    Sha1,
    /// SHA-256 (the default).
    Sha256,
    /// SHA-512.
    Sha512,
}

impl DigestAlgorithm {
    fn oid(self) -> &'static [u64] {
        match self {
            Self::Sha1 => oid::SHA1,
            Self::Sha256 => oid::SHA256,
            Self::Sha512 => oid::SHA512,
        }
    }

    /// The OpenSSL digest.
    pub fn message_digest(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }

    /// DER AlgorithmIdentifier (with NULL parameters).
    pub fn algorithm_identifier(self) -> Vec<u8> {
        der::sequence(&[&der::oid(self.oid()), &der::null()])
    }

    /// Reads an AlgorithmIdentifier.
    fn from_algorithm_identifier(tlv: Tlv<'_>) -> Result<Self, CmsError> {
        let mut reader = tlv.expect_tag(der::TAG_SEQUENCE)?.reader();
        let id = reader.read_tag(der::TAG_OID)?;
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|d| oid::is(id, d.oid()))
            .ok_or(CmsError::UnsupportedDigest)
    }
}

/// A content-encryption algorithm for EnvelopedData.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentCipher {
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-192-CBC.
    Aes192Cbc,
    /// AES-256-CBC.
    Aes256Cbc,
    /// Triple DES (DES-EDE3-CBC), for old clients.
    DesEde3Cbc,
}

impl ContentCipher {
    /// The OpenSSL cipher.
    pub fn cipher(self) -> Cipher {
        match self {
            Self::Aes128Cbc => Cipher::aes_128_cbc(),
            Self::Aes192Cbc => Cipher::aes_192_cbc(),
            Self::Aes256Cbc => Cipher::aes_256_cbc(),
            Self::DesEde3Cbc => Cipher::des_ede3_cbc(),
        }
    }

    fn oid(self) -> &'static [u64] {
        match self {
            Self::Aes128Cbc => oid::AES128_CBC,
            Self::Aes192Cbc => oid::AES192_CBC,
            Self::Aes256Cbc => oid::AES256_CBC,
            Self::DesEde3Cbc => oid::DES_EDE3_CBC,
        }
    }

    /// The cipher an EnvelopedData ContentInfo was encrypted with, if it is one of ours.
    pub fn of_enveloped_data(content_info: &[u8]) -> Option<Self> {
        let algorithm = enveloped_cipher_oid(content_info).ok()?;
        [
            Self::Aes128Cbc,
            Self::Aes192Cbc,
            Self::Aes256Cbc,
            Self::DesEde3Cbc,
        ]
        .into_iter()
        .find(|c| oid::is(algorithm, c.oid()))
    }
}

fn enveloped_cipher_oid(content_info: &[u8]) -> Result<Tlv<'_>, CmsError> {
    let mut ci = Tlv::parse_single(content_info)?
        .expect_tag(der::TAG_SEQUENCE)?
        .reader();
    if !oid::is(ci.read_tag(der::TAG_OID)?, oid::ENVELOPED_DATA) {
        return Err(CmsError::UnexpectedContentType);
    }
    let mut explicit = ci.read_tag(der::TAG_CONTEXT_0)?.reader();
    let mut enveloped = explicit.read_tag(der::TAG_SEQUENCE)?.reader();
    enveloped.read_tag(der::TAG_INTEGER)?;
    // originatorInfo [0] is optional (CMS only).
    enveloped.read_optional(der::TAG_CONTEXT_0)?;
    enveloped.read_tag(der::TAG_SET)?;
    let mut eci = enveloped.read_tag(der::TAG_SEQUENCE)?.reader();
    eci.read_tag(der::TAG_OID)?;
    let mut algorithm = eci.read_tag(der::TAG_SEQUENCE)?.reader();
    Ok(algorithm.read_tag(der::TAG_OID)?)
}

/// The issuer Name and serialNumber INTEGER of a certificate, as raw DER TLVs.
pub fn issuer_and_serial(certificate_der: &[u8]) -> Result<(Tlv<'_>, Tlv<'_>), CmsError> {
    let mut cert = Tlv::parse_single(certificate_der)?
        .expect_tag(der::TAG_SEQUENCE)?
        .reader();
    let mut tbs = cert.read_tag(der::TAG_SEQUENCE)?.reader();
    tbs.read_optional(der::TAG_CONTEXT_0)?;
    let serial = tbs.read_tag(der::TAG_INTEGER)?;
    tbs.read_tag(der::TAG_SEQUENCE)?;
    let issuer = tbs.read_tag(der::TAG_SEQUENCE)?;
    Ok((issuer, serial))
}

/// One signed attribute: its type and its first (SCEP: only) value.
#[derive(Debug, Clone, Copy)]
pub struct SignedAttribute<'a> {
    /// The attribute type OID TLV.
    pub attr_type: Tlv<'a>,
    /// The first value of the attribute.
    pub value: Tlv<'a>,
}

/// A decoded SignedData with exactly one signer.
#[derive(Debug, Clone)]
pub struct SignedMessage<'a> {
    /// The encapsulated content octets (eContent), if present.
    pub content: Option<&'a [u8]>,
    /// Certificates carried in the message (DER).
    pub certificates: Vec<&'a [u8]>,
    /// The signer's digest algorithm (`None`: not one SCEP accepts).
    pub digest: Option<DigestAlgorithm>,
    signer_issuer: Option<&'a [u8]>,
    signer_serial: Option<&'a [u8]>,
    signed_attributes_raw: Option<&'a [u8]>,
    attributes: Vec<SignedAttribute<'a>>,
    signature_algorithm: Tlv<'a>,
    signature: &'a [u8],
}

impl<'a> SignedMessage<'a> {
    /// Decodes a ContentInfo holding SignedData (strict DER: convert BER with [`crate::ber`] first).
    pub fn parse(input: &'a [u8]) -> Result<Self, CmsError> {
        let mut ci = Tlv::parse_single(input)?
            .expect_tag(der::TAG_SEQUENCE)?
            .reader();
        if !oid::is(ci.read_tag(der::TAG_OID)?, oid::SIGNED_DATA) {
            return Err(CmsError::UnexpectedContentType);
        }
        let mut explicit = ci.read_tag(der::TAG_CONTEXT_0)?.reader();
        ci.finish()?;
        let mut sd = explicit.read_tag(der::TAG_SEQUENCE)?.reader();
        explicit.finish()?;
        sd.read_tag(der::TAG_INTEGER)?;
        sd.read_tag(der::TAG_SET)?;
        let mut encap = sd.read_tag(der::TAG_SEQUENCE)?.reader();
        encap.read_tag(der::TAG_OID)?;
        let content = match encap.read_optional(der::TAG_CONTEXT_0)? {
            Some(wrapper) => {
                let mut inner = wrapper.reader();
                let octets = inner.read_tag(der::TAG_OCTET_STRING)?;
                inner.finish()?;
                Some(octets.value)
            }
            None => None,
        };
        let mut certificates = Vec::new();
        if let Some(certs) = sd.read_optional(der::TAG_CONTEXT_0)? {
            let mut reader = certs.reader();
            while !reader.is_empty() {
                let cert = reader.read()?;
                // Only X.509 certificates (SEQUENCE); other choices are skipped.
                if cert.tag == der::TAG_SEQUENCE {
                    certificates.push(cert.raw);
                }
            }
        }
        // CRLs [1] are ignored.
        sd.read_optional(der::TAG_CONTEXT_1)?;
        let mut signer_infos = sd.read_tag(der::TAG_SET)?.reader();
        let mut infos = Vec::new();
        while !signer_infos.is_empty() {
            infos.push(signer_infos.read_tag(der::TAG_SEQUENCE)?);
        }
        let [info] = infos[..] else {
            return Err(CmsError::SignerCount(infos.len()));
        };
        let mut si = info.reader();
        si.read_tag(der::TAG_INTEGER)?;
        let sid = si.read()?;
        let (signer_issuer, signer_serial) = if sid.tag == der::TAG_SEQUENCE {
            let mut ias = sid.reader();
            let issuer = ias.read_tag(der::TAG_SEQUENCE)?;
            let serial = ias.read_tag(der::TAG_INTEGER)?;
            (Some(issuer.raw), Some(serial.raw))
        } else {
            (None, None)
        };
        let digest = DigestAlgorithm::from_algorithm_identifier(si.read()?).ok();
        let mut attributes = Vec::new();
        let signed_attributes_raw = match si.read_optional(der::TAG_CONTEXT_0)? {
            Some(attrs) => {
                let mut reader = attrs.reader();
                while !reader.is_empty() {
                    let mut attr = reader.read_tag(der::TAG_SEQUENCE)?.reader();
                    let attr_type = attr.read_tag(der::TAG_OID)?;
                    let mut values = attr.read_tag(der::TAG_SET)?.reader();
                    let value = values.read()?;
                    attributes.push(SignedAttribute { attr_type, value });
                }
                Some(attrs.raw)
            }
            None => None,
        };
        let signature_algorithm = si.read_tag(der::TAG_SEQUENCE)?;
        let signature = si.read_tag(der::TAG_OCTET_STRING)?.value;
        Ok(Self {
            content,
            certificates,
            digest,
            signer_issuer,
            signer_serial,
            signed_attributes_raw,
            attributes,
            signature_algorithm,
            signature,
        })
    }

    /// The value of the signed attribute `arcs`, if present.
    pub fn attribute(&self, arcs: &[u64]) -> Option<Tlv<'a>> {
        self.attributes
            .iter()
            .find(|a| oid::is(a.attr_type, arcs))
            .map(|a| a.value)
    }

    /// The signer's certificate (DER) among the message's certificates.
    pub fn signer_certificate(&self) -> Result<&'a [u8], CmsError> {
        if let (Some(issuer), Some(serial)) = (self.signer_issuer, self.signer_serial) {
            for cert in &self.certificates {
                if let Ok((i, s)) = issuer_and_serial(cert)
                    && i.raw == issuer
                    && s.raw == serial
                {
                    return Ok(cert);
                }
            }
            Err(CmsError::SignerCertificateMissing)
        } else if let [only] = self.certificates[..] {
            Ok(only)
        } else {
            Err(CmsError::SignerCertificateMissing)
        }
    }

    /// Verifies the messageDigest attribute and the signature with `signer`'s public key.
    pub fn verify(&self, signer: &X509Ref) -> Result<(), CmsError> {
        let digest = self.digest.ok_or(CmsError::UnsupportedDigest)?;
        let mut algorithm = self.signature_algorithm.reader();
        let algorithm = algorithm.read_tag(der::TAG_OID)?;
        if oid::is(algorithm, oid::RSASSA_PSS) {
            return Err(CmsError::UnsupportedSignatureAlgorithm);
        }
        let attrs = self
            .signed_attributes_raw
            .ok_or(CmsError::SignedAttributesMissing)?;
        let expected = self
            .attribute(oid::MESSAGE_DIGEST)
            .ok_or(CmsError::SignedAttributesMissing)?
            .expect_tag(der::TAG_OCTET_STRING)?;
        let actual = hash(digest.message_digest(), self.content.unwrap_or_default())?;
        if !openssl_eq(&actual, expected.value) {
            return Err(CmsError::DigestMismatch);
        }
        // The signature covers the DER of the attributes encoded as a SET OF, not with the [0]
        // tag (RFC 5652 5.4): re-encoded in DER when the signer sent another encoding.
        let mut to_verify =
            crate::ber::to_canonical_der(attrs, &crate::ber::BerLimits::DEVICE_CMS)?.into_owned();
        if let Some(first) = to_verify.first_mut() {
            *first = der::TAG_SET;
        }
        let key = signer.public_key()?;
        let mut verifier = Verifier::new(digest.message_digest(), &key)?;
        if verifier.verify_oneshot(self.signature, &to_verify)? {
            Ok(())
        } else {
            Err(CmsError::BadSignature)
        }
    }
}

fn openssl_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// An encoded Attribute: `SEQUENCE { type, SET { value } }`.
pub fn attribute(arcs: &[u64], value: &[u8]) -> Vec<u8> {
    der::sequence(&[&der::oid(arcs), &der::set_of(&[value])])
}

/// Builds a SignedData ContentInfo with one signer and signed attributes.
#[derive(Debug)]
pub struct SignedDataBuilder<'a> {
    content: Option<&'a [u8]>,
    certificates: Vec<&'a [u8]>,
    attributes: Vec<Vec<u8>>,
    digest: DigestAlgorithm,
}

impl<'a> SignedDataBuilder<'a> {
    /// A builder using `digest`, with `content` as the id-data eContent (absent when `None`).
    pub fn new(digest: DigestAlgorithm, content: Option<&'a [u8]>) -> Self {
        Self {
            content,
            certificates: Vec::new(),
            attributes: Vec::new(),
            digest,
        }
    }

    /// Adds a certificate (DER) to the `certificates` field.
    pub fn certificate(mut self, der: &'a [u8]) -> Self {
        self.certificates.push(der);
        self
    }

    /// Adds a signed attribute whose value is the DER TLV `value`.
    pub fn attribute(mut self, arcs: &[u64], value: &[u8]) -> Self {
        self.attributes.push(attribute(arcs, value));
        self
    }

    /// Signs with `key` (whose certificate is `signer_der`) and encodes the ContentInfo.
    pub fn sign(self, signer_der: &[u8], key: &PKeyRef<Private>) -> Result<Vec<u8>, CmsError> {
        let digest_value = hash(
            self.digest.message_digest(),
            self.content.unwrap_or_default(),
        )?;
        let mut attrs = self.attributes;
        attrs.push(attribute(oid::CONTENT_TYPE, &der::oid(oid::DATA)));
        attrs.push(attribute(
            oid::MESSAGE_DIGEST,
            &der::octet_string(&digest_value),
        ));
        let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
        let signed_attrs = der::set_of(&attr_refs);
        let signature_algorithm = match (key.id(), self.digest) {
            (Id::RSA, _) => der::sequence(&[&der::oid(oid::RSA_ENCRYPTION), &der::null()]),
            (Id::EC, DigestAlgorithm::Sha256) => {
                der::sequence(&[&der::oid(oid::ECDSA_WITH_SHA256)])
            }
            _ => return Err(CmsError::UnsupportedKey),
        };
        let mut signer = Signer::new(self.digest.message_digest(), key)?;
        let signature = signer.sign_oneshot_to_vec(&signed_attrs)?;
        let (issuer, serial) = issuer_and_serial(signer_der)?;
        let mut implicit_attrs = signed_attrs;
        if let Some(first) = implicit_attrs.first_mut() {
            *first = der::TAG_CONTEXT_0;
        }
        let signer_info = der::sequence(&[
            &der::integer_u64(1),
            &der::sequence(&[issuer.raw, serial.raw]),
            &self.digest.algorithm_identifier(),
            &implicit_attrs,
            &signature_algorithm,
            &der::octet_string(&signature),
        ]);
        let encap = match self.content {
            Some(content) => der::sequence(&[
                &der::oid(oid::DATA),
                &der::constructed(der::TAG_CONTEXT_0, &[&der::octet_string(content)]),
            ]),
            None => der::sequence(&[&der::oid(oid::DATA)]),
        };
        let mut fields: Vec<Vec<u8>> = vec![
            der::integer_u64(1),
            der::set_of(&[&self.digest.algorithm_identifier()]),
            encap,
        ];
        if !self.certificates.is_empty() {
            fields.push(der::constructed(der::TAG_CONTEXT_0, &self.certificates));
        }
        fields.push(der::set_of(&[&signer_info]));
        let field_refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
        Ok(content_info(oid::SIGNED_DATA, &der::sequence(&field_refs)))
    }
}

fn content_info(content_type: &[u64], content: &[u8]) -> Vec<u8> {
    der::sequence(&[
        &der::oid(content_type),
        &der::constructed(der::TAG_CONTEXT_0, &[content]),
    ])
}

/// A "degenerate" certs-only SignedData ContentInfo carrying `certificates` (DER).
pub fn degenerate_certificates(certificates: &[&[u8]]) -> Vec<u8> {
    let signed_data = der::sequence(&[
        &der::integer_u64(1),
        &der::set_of(&[]),
        &der::sequence(&[&der::oid(oid::DATA)]),
        &der::constructed(der::TAG_CONTEXT_0, certificates),
        &der::set_of(&[]),
    ]);
    content_info(oid::SIGNED_DATA, &signed_data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::pkcs7::Pkcs7;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509, X509Name};

    fn self_signed() -> (PKey<Private>, X509) {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "cms test").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(&BigNum::from_u32(4242).unwrap().to_asn1_integer().unwrap())
            .unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        (key, b.build())
    }

    #[test]
    fn built_signed_data_parses_verifies_and_openssl_agrees() {
        let (key, cert) = self_signed();
        let cert_der = cert.to_der().unwrap();
        let der = SignedDataBuilder::new(DigestAlgorithm::Sha256, Some(b"hello"))
            .certificate(&cert_der)
            .attribute(oid::SCEP_MESSAGE_TYPE, &der::printable_string("19"))
            .sign(&cert_der, &key)
            .unwrap();
        let msg = SignedMessage::parse(&der).unwrap();
        assert_eq!(msg.content, Some(&b"hello"[..]));
        assert_eq!(msg.signer_certificate().unwrap(), &cert_der[..]);
        msg.verify(&cert).unwrap();
        let mt = msg.attribute(oid::SCEP_MESSAGE_TYPE).unwrap();
        assert_eq!(der::read_string(mt).unwrap(), "19");

        // OpenSSL's own PKCS#7 verification accepts what we built.
        let p7 = Pkcs7::from_der(&der).unwrap();
        let store = openssl::x509::store::X509StoreBuilder::new()
            .unwrap()
            .build();
        let certs = openssl::stack::Stack::new().unwrap();
        let mut out = Vec::new();
        p7.verify(
            &certs,
            &store,
            None,
            Some(&mut out),
            openssl::pkcs7::Pkcs7Flags::NOVERIFY,
        )
        .unwrap();
        assert_eq!(out, b"hello");
    }

    #[test]
    fn tampered_content_fails_digest_check() {
        let (key, cert) = self_signed();
        let cert_der = cert.to_der().unwrap();
        let mut der = SignedDataBuilder::new(DigestAlgorithm::Sha1, Some(b"hello"))
            .certificate(&cert_der)
            .sign(&cert_der, &key)
            .unwrap();
        let pos = der.windows(5).position(|w| w == b"hello").unwrap();
        der[pos] = b'j';
        let msg = SignedMessage::parse(&der).unwrap();
        assert!(matches!(msg.verify(&cert), Err(CmsError::DigestMismatch)));
    }

    #[test]
    fn degenerate_is_readable_by_openssl() {
        let (_key, cert) = self_signed();
        let cert_der = cert.to_der().unwrap();
        let der = degenerate_certificates(&[&cert_der]);
        let p7 = Pkcs7::from_der(&der).unwrap();
        let certs = p7.signed().unwrap().certificates().unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs.get(0).unwrap().to_der().unwrap(), cert_der);
    }
}

//! Reading the CMS SignedData (RFC 5652) a device sends in `Mdm-Signature`, without openssl.
//! The input is DER: BER from devices is converted by [`crate::ber`] first.
//!
//! One pass over the DER pulls out what verification needs and borrows it from the input: the
//! embedded certificates, the single SignerInfo's signer identifier, digest algorithm, signed
//! attributes (raw, plus the messageDigest and signingTime values), signature algorithm and
//! signature. Nothing is verified here; see `verifier`.

use super::algorithm::{DigestAlgorithm, SignatureAlgorithm};
use super::asn1_time;
use super::der::{
    DerError, DerReader, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET, Tlv,
    context_constructed, context_primitive,
};
use super::error::IdentityError;

/// 1.2.840.113549.1.7.2 id-signedData.
const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
/// 1.2.840.113549.1.9.4 id-messageDigest.
const OID_MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];
/// 1.2.840.113549.1.9.5 id-signingTime.
const OID_SIGNING_TIME: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05];
/// 2.5.29.14 id-ce-subjectKeyIdentifier.
const OID_SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1D, 0x0E];

/// How a SignerInfo names its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignerId<'a> {
    /// The issuer's Name (whole DER element) and the serial number (INTEGER contents).
    IssuerAndSerial {
        /// DER of the issuer Name.
        issuer: &'a [u8],
        /// Content octets of the serial number INTEGER.
        serial: &'a [u8],
    },
    /// The subjectKeyIdentifier extension value.
    SubjectKeyId(&'a [u8]),
}

/// The signed attributes of a SignerInfo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SignedAttributes<'a> {
    /// The whole `[0] IMPLICIT` element as sent. The signature covers the same bytes with the
    /// first octet replaced by a SET tag (0x31).
    pub(crate) raw: &'a [u8],
    /// The messageDigest attribute's value (the digest of the content).
    pub(crate) message_digest: &'a [u8],
    /// The signingTime attribute, in Unix seconds, if present and readable.
    pub(crate) signing_time: Option<i64>,
}

/// The parts of a detached CMS SignedData needed to verify it.
#[derive(Debug, Clone)]
pub(crate) struct SignedMessage<'a> {
    /// The encapsulated content, when the signature is not detached (devices sign detached).
    pub(crate) content: Option<&'a [u8]>,
    /// Contents of the `certificates [0] IMPLICIT` set (concatenated certificate choices).
    certificate_set: &'a [u8],
    /// The signer identifier.
    pub(crate) signer_id: SignerId<'a>,
    /// The SignerInfo's digest algorithm.
    pub(crate) digest: DigestAlgorithm,
    /// The signed attributes, if any. Without them the signature is over the content itself.
    pub(crate) signed_attributes: Option<SignedAttributes<'a>>,
    /// The signature algorithm.
    pub(crate) signature_algorithm: SignatureAlgorithm,
    /// The signature value.
    pub(crate) signature: &'a [u8],
}

/// Maps a DER walk error to the identity error, naming the structure being read.
fn malformed(context: &'static str) -> impl Fn(DerError) -> IdentityError {
    move |_| IdentityError::MalformedCms(context)
}

/// Reads an AlgorithmIdentifier and returns its OID content octets (parameters are ignored).
fn algorithm_oid<'a>(
    reader: &mut DerReader<'a>,
    context: &'static str,
) -> Result<&'a [u8], IdentityError> {
    let alg = reader.read(TAG_SEQUENCE).map_err(malformed(context))?;
    let mut inner = alg.contents();
    Ok(inner.read(TAG_OID).map_err(malformed(context))?.value)
}

impl<'a> SignedMessage<'a> {
    /// Reads a DER ContentInfo holding a SignedData with exactly one signer.
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, IdentityError> {
        let mut outer = DerReader::new(der);
        let content_info = outer.read(TAG_SEQUENCE).map_err(malformed("ContentInfo"))?;
        outer
            .finish()
            .map_err(malformed("data after ContentInfo"))?;

        let mut ci = content_info.contents();
        let content_type = ci
            .read(TAG_OID)
            .map_err(malformed("ContentInfo.contentType"))?;
        if content_type.value != OID_SIGNED_DATA {
            return Err(IdentityError::MalformedCms(
                "content type is not signedData",
            ));
        }
        let explicit = ci
            .read(context_constructed(0))
            .map_err(malformed("ContentInfo.content"))?;
        let mut explicit_reader = explicit.contents();
        let signed_data = explicit_reader
            .read(TAG_SEQUENCE)
            .map_err(malformed("SignedData"))?;

        let mut sd = signed_data.contents();
        sd.read(TAG_INTEGER)
            .map_err(malformed("SignedData.version"))?;
        sd.read(TAG_SET)
            .map_err(malformed("SignedData.digestAlgorithms"))?;
        let encap = sd
            .read(TAG_SEQUENCE)
            .map_err(malformed("SignedData.encapContentInfo"))?;
        let mut encap_reader = encap.contents();
        encap_reader
            .read(TAG_OID)
            .map_err(malformed("encapContentInfo.eContentType"))?;
        // Devices sign detached. Tools that stream (`openssl cms -sign -stream`) embed the
        // content; the verifier accepts that only when it is the request body itself.
        let content = match encap_reader
            .read_optional(context_constructed(0))
            .map_err(malformed("encapContentInfo.eContent"))?
        {
            Some(explicit) => {
                let mut inner = explicit.contents();
                let octets = inner
                    .read(TAG_OCTET_STRING)
                    .map_err(malformed("encapContentInfo.eContent"))?;
                inner
                    .finish()
                    .map_err(malformed("encapContentInfo.eContent"))?;
                Some(octets.value)
            }
            None => None,
        };
        encap_reader
            .finish()
            .map_err(malformed("data after encapContentInfo"))?;
        let certificate_set = sd
            .read_optional(context_constructed(0))
            .map_err(malformed("SignedData.certificates"))?
            .map_or(&[][..], |set| set.value);
        sd.read_optional(context_constructed(1))
            .map_err(malformed("SignedData.crls"))?;
        let signer_infos = sd
            .read(TAG_SET)
            .map_err(malformed("SignedData.signerInfos"))?;
        sd.finish().map_err(malformed("data after signerInfos"))?;

        let mut signers = signer_infos.contents();
        let signer_info = signers
            .read(TAG_SEQUENCE)
            .map_err(malformed("SignerInfo"))?;
        if !signers.is_empty() {
            return Err(IdentityError::MalformedCms("more than one SignerInfo"));
        }
        let mut message = Self::parse_signer_info(signer_info, certificate_set)?;
        message.content = content;
        Ok(message)
    }

    fn parse_signer_info(
        signer_info: Tlv<'a>,
        certificate_set: &'a [u8],
    ) -> Result<Self, IdentityError> {
        let mut si = signer_info.contents();
        si.read(TAG_INTEGER)
            .map_err(malformed("SignerInfo.version"))?;
        let sid = si.read_any().map_err(malformed("SignerInfo.sid"))?;
        let signer_id = match sid.tag {
            TAG_SEQUENCE => {
                let mut ias = sid.contents();
                let issuer = ias
                    .read(TAG_SEQUENCE)
                    .map_err(malformed("IssuerAndSerialNumber.issuer"))?
                    .raw;
                let serial = ias
                    .read(TAG_INTEGER)
                    .map_err(malformed("IssuerAndSerialNumber.serialNumber"))?
                    .value;
                SignerId::IssuerAndSerial { issuer, serial }
            }
            tag if tag == context_primitive(0) => SignerId::SubjectKeyId(sid.value),
            _ => return Err(IdentityError::MalformedCms("SignerInfo.sid")),
        };
        let digest_oid = algorithm_oid(&mut si, "SignerInfo.digestAlgorithm")?;
        let digest = DigestAlgorithm::from_oid(digest_oid)
            .ok_or(IdentityError::UnsupportedAlgorithm("digest algorithm"))?;
        let signed_attributes = si
            .read_optional(context_constructed(0))
            .map_err(malformed("SignerInfo.signedAttrs"))?
            .map(parse_signed_attributes)
            .transpose()?;
        let signature_oid = algorithm_oid(&mut si, "SignerInfo.signatureAlgorithm")?;
        let signature_algorithm = SignatureAlgorithm::from_oid(signature_oid)
            .ok_or(IdentityError::UnsupportedAlgorithm("signature algorithm"))?;
        let signature = si
            .read(TAG_OCTET_STRING)
            .map_err(malformed("SignerInfo.signature"))?
            .value;
        // Unsigned attributes ([1]) may follow; they are not covered by the signature.
        si.read_optional(context_constructed(1))
            .map_err(malformed("SignerInfo.unsignedAttrs"))?;
        si.finish().map_err(malformed("data after SignerInfo"))?;
        Ok(Self {
            content: None,
            certificate_set,
            signer_id,
            digest,
            signed_attributes,
            signature_algorithm,
            signature,
        })
    }

    /// The DER of every embedded certificate (other CertificateChoices are skipped).
    pub(crate) fn certificates(
        &self,
    ) -> impl Iterator<Item = Result<&'a [u8], IdentityError>> + use<'a> {
        DerReader::new(self.certificate_set).filter_map(|item| match item {
            Ok(cert) if cert.tag == TAG_SEQUENCE => Some(Ok(cert.raw)),
            Ok(_) => None,
            Err(_) => Some(Err(IdentityError::MalformedCms("SignedData.certificates"))),
        })
    }

    /// Finds the signer's certificate among the embedded ones and returns its DER.
    pub(crate) fn signer_certificate(&self) -> Result<&'a [u8], IdentityError> {
        for cert in self.certificates() {
            let cert = cert?;
            let mut reader = DerReader::new(cert);
            let tlv = reader
                .read(TAG_SEQUENCE)
                .map_err(malformed("Certificate"))?;
            if certificate_matches(tlv, self.signer_id)? {
                return Ok(cert);
            }
        }
        Err(IdentityError::SignerCertificateMissing)
    }
}

/// Reads the signed attributes, requiring exactly one messageDigest.
fn parse_signed_attributes(attrs: Tlv<'_>) -> Result<SignedAttributes<'_>, IdentityError> {
    let mut message_digest = None;
    let mut signing_time = None;
    for item in attrs.contents() {
        let attribute = item.map_err(malformed("Attribute"))?;
        if attribute.tag != TAG_SEQUENCE {
            return Err(IdentityError::MalformedCms("Attribute"));
        }
        let mut a = attribute.contents();
        let attr_type = a.read(TAG_OID).map_err(malformed("Attribute.attrType"))?;
        let values = a.read(TAG_SET).map_err(malformed("Attribute.attrValues"))?;
        a.finish().map_err(malformed("data after Attribute"))?;
        let mut values = values.contents();
        if attr_type.value == OID_MESSAGE_DIGEST {
            let value = values
                .read(TAG_OCTET_STRING)
                .map_err(malformed("messageDigest"))?;
            values.finish().map_err(malformed("messageDigest"))?;
            if message_digest.replace(value.value).is_some() {
                return Err(IdentityError::MalformedCms("two messageDigest attributes"));
            }
        } else if attr_type.value == OID_SIGNING_TIME {
            let value = values.read_any().map_err(malformed("signingTime"))?;
            signing_time = asn1_time::parse_time(value.tag, value.value);
        }
    }
    Ok(SignedAttributes {
        raw: attrs.raw,
        message_digest: message_digest.ok_or(IdentityError::MalformedCms(
            "signed attributes lack messageDigest",
        ))?,
        signing_time,
    })
}

/// Does this Certificate (whole DER element) match the signer identifier? Reads only the
/// TBSCertificate header, or its extensions for a subjectKeyIdentifier.
fn certificate_matches(cert: Tlv<'_>, signer_id: SignerId<'_>) -> Result<bool, IdentityError> {
    let bad = malformed("Certificate");
    let mut c = cert.contents();
    let tbs = c.read(TAG_SEQUENCE).map_err(&bad)?;
    let mut t = tbs.contents();
    t.read_optional(context_constructed(0)).map_err(&bad)?;
    let serial = t.read(TAG_INTEGER).map_err(&bad)?.value;
    t.read(TAG_SEQUENCE).map_err(&bad)?; // signature algorithm
    let issuer = t.read(TAG_SEQUENCE).map_err(&bad)?.raw;
    match signer_id {
        SignerId::IssuerAndSerial {
            issuer: want_issuer,
            serial: want_serial,
        } => Ok(issuer == want_issuer && serial == want_serial),
        SignerId::SubjectKeyId(want) => {
            t.read(TAG_SEQUENCE).map_err(&bad)?; // validity
            t.read(TAG_SEQUENCE).map_err(&bad)?; // subject
            t.read(TAG_SEQUENCE).map_err(&bad)?; // subjectPublicKeyInfo
            t.read_optional(context_primitive(1)).map_err(&bad)?;
            t.read_optional(context_primitive(2)).map_err(&bad)?;
            let Some(explicit) = t.read_optional(context_constructed(3)).map_err(&bad)? else {
                return Ok(false);
            };
            let mut explicit_reader = explicit.contents();
            let extensions = explicit_reader.read(TAG_SEQUENCE).map_err(&bad)?;
            for item in extensions.contents() {
                let extension = item.map_err(&bad)?;
                let mut e = extension.contents();
                let id = e.read(TAG_OID).map_err(&bad)?;
                if id.value != OID_SUBJECT_KEY_ID {
                    continue;
                }
                e.read_optional(0x01).map_err(&bad)?; // critical BOOLEAN
                let wrapped = e.read(TAG_OCTET_STRING).map_err(&bad)?;
                let mut inner = wrapped.contents();
                let key_id = inner.read(TAG_OCTET_STRING).map_err(&bad)?;
                return Ok(key_id.value == want);
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_other_content_types() {
        // ContentInfo { id-data, [0] { OCTET STRING "" } }
        let data = [
            0x30, 0x11, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0xA0,
            0x04, 0x04, 0x02, 0x00, 0x00,
        ];
        assert!(matches!(
            SignedMessage::parse(&data),
            Err(IdentityError::MalformedCms(
                "content type is not signedData"
            ))
        ));
    }

    #[test]
    fn refuses_empty_and_garbage() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x00],
            &[0xFF; 16],
            &[0x30, 0x80, 0, 0],
        ] {
            assert!(matches!(
                SignedMessage::parse(input),
                Err(IdentityError::MalformedCms(_))
            ));
        }
    }
}

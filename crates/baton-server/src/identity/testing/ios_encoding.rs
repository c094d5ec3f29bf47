//! The CMS encoding iOS sends: BER with indefinite lengths, as Apple's streaming encoder writes
//! it, re-encoded from the DER that this crate's builders (and openssl) produce.
//!
//! Where the layout comes from: Apple's open-source Security framework, which iOS uses for both
//! the `Mdm-Signature` header and the SCEP PKCSReq.
//!
//! - `SecCMSCreateSignedData` and `SecCMSCreateEnvelopedData` (`SecCMS.c`) encode with
//!   `SecCmsMessageEncode`, i.e. `SecCmsEncoderCreate` + one `SecCmsEncoderUpdate` with the whole
//!   content + `SecCmsEncoderFinish` (`libsecurity_smime/lib/cmsencode.c`). The encoder is put in
//!   streaming mode (`SEC_ASN1EncoderSetStreaming`) until the content bytes have been written.
//!   `SecSCEPGenerateCertificateRequest` (`SecSCEP.c`) builds the EnvelopedData first, then signs
//!   those bytes as the content of a SignedData: two separate messages, both streamed.
//! - In streaming mode the ASN.1 encoder (`libsecurity_asn1` `secasn1e.c`,
//!   `sec_asn1e_write_header`) gives an indefinite length to every field whose template is
//!   `SEC_ASN1_MAY_STREAM`, and writes a string taken from the caller's buffer as a constructed
//!   string of primitive substrings tagged with the *underlying* universal type, even under an
//!   IMPLICIT tag (`sec_asn1e_write_contents_from_buf`), each closed by end-of-contents.
//! - The templates (`libsecurity_smime/lib/cmsasn1.c`) mark MAY_STREAM: the ContentInfo SEQUENCE
//!   and its `[0] EXPLICIT` content; the SignedData SEQUENCE; the EncapsulatedContentInfo SEQUENCE
//!   and its `[0] EXPLICIT` eContent (a pointer to OCTET STRING, so `a0 80 24 80 04 ..`); the
//!   EnvelopedData SEQUENCE; the EncryptedContentInfo SEQUENCE and its `[0] IMPLICIT`
//!   encryptedContent (`a0 80 04 ..`). Everything else (version, digestAlgorithms,
//!   certificates, signerInfos, recipientInfos, algorithm identifiers) has definite lengths;
//!   signed attributes are DER because the signature covers their DER.
//!
//! A detached `Mdm-Signature` therefore reads `30 80 06 09 <signedData> a0 80 30 80 02 01 01
//! 31 .. 30 80 06 09 <data> 00 00 a0 .. 31 .. 00 00 00 00 00 00`, as other MDM servers saw from
//! devices (micromdm issue 211, nanomdm issue 32, fullsailor/pkcs7 PR 17).
//!
//! Chunks: Apple's encoder writes one substring per update it receives: the whole content for a
//! SignedData (one `SecCmsEncoderUpdate`), and for encrypted content what the cipher context
//! returns (the whole blocks, then the padded last block on finish). Here content is cut into
//! substrings of at most `chunk_size` bytes instead, so tests can force as many as they like; a
//! decoder must accept any split.

use thiserror::Error;

/// Default bytes of content per primitive OCTET STRING substring of the iOS form.
pub const DEFAULT_CHUNK_SIZE: usize = 4096;

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OCTET_STRING_CONSTRUCTED: u8 = 0x24;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_SET: u8 = 0x31;
const TAG_CONTEXT_0: u8 = 0xA0;
const TAG_CONTEXT_1: u8 = 0xA1;
/// `[0] IMPLICIT OCTET STRING`, primitive (encryptedContent in DER).
const TAG_CONTEXT_0_PRIMITIVE: u8 = 0x80;

const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
const OID_ENVELOPED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03];

/// How a CMS message (SignedData or EnvelopedData ContentInfo) is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmsEncoding {
    /// Strict DER: definite lengths everywhere, content in one primitive OCTET STRING.
    #[default]
    Der,
    /// BER as iOS streams it (see the module documentation): indefinite lengths on the
    /// ContentInfo, SignedData / EnvelopedData and content info, content in a constructed OCTET
    /// STRING of primitive substrings.
    IosBer {
        /// Largest number of content bytes in one substring (at least 1).
        chunk_size: usize,
    },
}

impl CmsEncoding {
    /// The iOS form with [`DEFAULT_CHUNK_SIZE`].
    pub const IOS: Self = Self::IosBer {
        chunk_size: DEFAULT_CHUNK_SIZE,
    };

    /// Re-encodes a DER ContentInfo holding a SignedData or an EnvelopedData. [`Self::Der`]
    /// returns the input unchanged.
    pub fn encode(self, content_info_der: &[u8]) -> Result<Vec<u8>, CmsEncodingError> {
        match self {
            Self::Der => Ok(content_info_der.to_vec()),
            Self::IosBer { chunk_size: 0 } => Err(CmsEncodingError::ZeroChunkSize),
            Self::IosBer { chunk_size } => {
                let mut out = Vec::with_capacity(content_info_der.len() + 64);
                content_info(&mut out, content_info_der, chunk_size)?;
                Ok(out)
            }
        }
    }
}

/// Why a message could not be re-encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CmsEncodingError {
    /// The input is not the DER this writer knows; names the element that is wrong.
    #[error("not a DER CMS message: {0}")]
    Malformed(&'static str),
    /// The ContentInfo holds neither a SignedData nor an EnvelopedData.
    #[error("content type is neither SignedData nor EnvelopedData")]
    UnsupportedContentType,
    /// `IosBer { chunk_size: 0 }`.
    #[error("chunk size must be at least one byte")]
    ZeroChunkSize,
}

/// One DER element: its tag, contents and whole encoding.
#[derive(Debug, Clone, Copy)]
struct Element<'a> {
    tag: u8,
    content: &'a [u8],
    raw: &'a [u8],
}

/// The DER elements of a constructed element's contents, in order.
#[derive(Debug)]
struct Elements<'a> {
    rest: &'a [u8],
}

impl<'a> Elements<'a> {
    fn new(contents: &'a [u8]) -> Self {
        Self { rest: contents }
    }

    /// The next element, which must carry `tag`.
    fn next(&mut self, tag: u8, what: &'static str) -> Result<Element<'a>, CmsEncodingError> {
        self.optional(tag, what)?
            .ok_or(CmsEncodingError::Malformed(what))
    }

    /// The next element if it carries `tag`.
    fn optional(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<Element<'a>>, CmsEncodingError> {
        if self.rest.first() != Some(&tag) {
            return Ok(None);
        }
        let (element, rest) = element(self.rest, what)?;
        self.rest = rest;
        Ok(Some(element))
    }

    fn finish(&self, what: &'static str) -> Result<(), CmsEncodingError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CmsEncodingError::Malformed(what))
        }
    }
}

/// Splits the first DER element off `input`. Low tag numbers and definite lengths only (all
/// of CMS that this module walks); lengths are checked against the input.
fn element<'a>(
    input: &'a [u8],
    what: &'static str,
) -> Result<(Element<'a>, &'a [u8]), CmsEncodingError> {
    let malformed = CmsEncodingError::Malformed(what);
    let (&tag, after_tag) = input.split_first().ok_or(malformed.clone())?;
    if tag & 0x1F == 0x1F {
        return Err(malformed);
    }
    let (&first, after_length_byte) = after_tag.split_first().ok_or(malformed.clone())?;
    let (length, after_length) = match first {
        short @ 0..=0x7F => (usize::from(short), after_length_byte),
        // 0x80 is BER's indefinite length: not DER. More than 4 length bytes: not a message.
        0x81..=0x84 => {
            let count = usize::from(first & 0x7F);
            let bytes = after_length_byte.get(..count).ok_or(malformed.clone())?;
            let length = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, &after_length_byte[count..])
        }
        _ => return Err(malformed),
    };
    let content = after_length.get(..length).ok_or(malformed)?;
    let header = input.len() - after_length.len();
    let raw = &input[..header + length];
    Ok((Element { tag, content, raw }, &after_length[length..]))
}

/// Opens a constructed element with an indefinite length.
fn open(out: &mut Vec<u8>, tag: u8) {
    out.extend_from_slice(&[tag, 0x80]);
}

/// Closes the innermost open element (end-of-contents).
fn close(out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00]);
}

/// Primitive OCTET STRING substrings of at most `chunk_size` bytes each.
fn octet_string_chunks(out: &mut Vec<u8>, content: &[u8], chunk_size: usize) {
    for chunk in content.chunks(chunk_size) {
        out.push(TAG_OCTET_STRING);
        let len = chunk.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(chunk);
    }
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }`.
fn content_info(out: &mut Vec<u8>, der: &[u8], chunk_size: usize) -> Result<(), CmsEncodingError> {
    let (info, trailing) = element(der, "ContentInfo")?;
    if info.tag != TAG_SEQUENCE || !trailing.is_empty() {
        return Err(CmsEncodingError::Malformed("ContentInfo"));
    }
    let mut fields = Elements::new(info.content);
    let content_type = fields.next(TAG_OID, "contentType")?;
    let explicit = fields.next(TAG_CONTEXT_0, "content")?;
    fields.finish("ContentInfo")?;
    let mut inner = Elements::new(explicit.content);
    let content = inner.next(TAG_SEQUENCE, "content")?;
    inner.finish("content")?;

    open(out, TAG_SEQUENCE);
    out.extend_from_slice(content_type.raw);
    open(out, TAG_CONTEXT_0);
    match content_type.content {
        OID_SIGNED_DATA => signed_data(out, content, chunk_size)?,
        OID_ENVELOPED_DATA => enveloped_data(out, content, chunk_size)?,
        _ => return Err(CmsEncodingError::UnsupportedContentType),
    }
    close(out);
    close(out);
    Ok(())
}

/// `SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo,
/// certificates [0] OPTIONAL, crls [1] OPTIONAL, signerInfos SET }`.
fn signed_data(
    out: &mut Vec<u8>,
    signed: Element<'_>,
    chunk_size: usize,
) -> Result<(), CmsEncodingError> {
    let mut fields = Elements::new(signed.content);
    let version = fields.next(TAG_INTEGER, "SignedData version")?;
    let digest_algorithms = fields.next(TAG_SET, "digestAlgorithms")?;
    let encapsulated = fields.next(TAG_SEQUENCE, "encapContentInfo")?;
    let certificates = fields.optional(TAG_CONTEXT_0, "certificates")?;
    let crls = fields.optional(TAG_CONTEXT_1, "crls")?;
    let signer_infos = fields.next(TAG_SET, "signerInfos")?;
    fields.finish("SignedData")?;

    open(out, TAG_SEQUENCE);
    out.extend_from_slice(version.raw);
    out.extend_from_slice(digest_algorithms.raw);
    encapsulated_content_info(out, encapsulated, chunk_size)?;
    for written_after_streaming in [certificates, crls, Some(signer_infos)]
        .into_iter()
        .flatten()
    {
        out.extend_from_slice(written_after_streaming.raw);
    }
    close(out);
    Ok(())
}

/// `EncapsulatedContentInfo ::= SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET
/// STRING OPTIONAL }`.
fn encapsulated_content_info(
    out: &mut Vec<u8>,
    info: Element<'_>,
    chunk_size: usize,
) -> Result<(), CmsEncodingError> {
    let mut fields = Elements::new(info.content);
    let content_type = fields.next(TAG_OID, "eContentType")?;
    let explicit = fields.optional(TAG_CONTEXT_0, "eContent")?;
    fields.finish("encapContentInfo")?;

    open(out, TAG_SEQUENCE);
    out.extend_from_slice(content_type.raw);
    if let Some(explicit) = explicit {
        let mut inner = Elements::new(explicit.content);
        let octets = inner.next(TAG_OCTET_STRING, "eContent")?;
        inner.finish("eContent")?;
        open(out, TAG_CONTEXT_0);
        open(out, TAG_OCTET_STRING_CONSTRUCTED);
        octet_string_chunks(out, octets.content, chunk_size);
        close(out);
        close(out);
    }
    close(out);
    Ok(())
}

/// `EnvelopedData ::= SEQUENCE { version, originatorInfo [0] OPTIONAL, recipientInfos SET,
/// encryptedContentInfo, unprotectedAttrs [1] OPTIONAL }`.
fn enveloped_data(
    out: &mut Vec<u8>,
    enveloped: Element<'_>,
    chunk_size: usize,
) -> Result<(), CmsEncodingError> {
    let mut fields = Elements::new(enveloped.content);
    let version = fields.next(TAG_INTEGER, "EnvelopedData version")?;
    let originator = fields.optional(TAG_CONTEXT_0, "originatorInfo")?;
    let recipient_infos = fields.next(TAG_SET, "recipientInfos")?;
    let encrypted = fields.next(TAG_SEQUENCE, "encryptedContentInfo")?;
    let unprotected = fields.optional(TAG_CONTEXT_1, "unprotectedAttrs")?;
    fields.finish("EnvelopedData")?;

    open(out, TAG_SEQUENCE);
    out.extend_from_slice(version.raw);
    if let Some(originator) = originator {
        out.extend_from_slice(originator.raw);
    }
    out.extend_from_slice(recipient_infos.raw);
    encrypted_content_info(out, encrypted, chunk_size)?;
    if let Some(unprotected) = unprotected {
        out.extend_from_slice(unprotected.raw);
    }
    close(out);
    Ok(())
}

/// `EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm,
/// encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }`.
fn encrypted_content_info(
    out: &mut Vec<u8>,
    info: Element<'_>,
    chunk_size: usize,
) -> Result<(), CmsEncodingError> {
    let mut fields = Elements::new(info.content);
    let content_type = fields.next(TAG_OID, "encryptedContentInfo contentType")?;
    let algorithm = fields.next(TAG_SEQUENCE, "contentEncryptionAlgorithm")?;
    let content = fields.optional(TAG_CONTEXT_0_PRIMITIVE, "encryptedContent")?;
    fields.finish("encryptedContentInfo")?;

    open(out, TAG_SEQUENCE);
    out.extend_from_slice(content_type.raw);
    out.extend_from_slice(algorithm.raw);
    if let Some(content) = content {
        // IMPLICIT [0] in constructed form; the substrings keep the universal OCTET STRING tag.
        open(out, TAG_CONTEXT_0);
        octet_string_chunks(out, content.content, chunk_size);
        close(out);
    }
    close(out);
    Ok(())
}

/// Whether `bytes` is a run of DER elements with definite lengths all the way down, for tests
/// that pin the DER form.
#[cfg(test)]
pub(crate) fn definite_lengths_only(mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        let Ok((element, rest)) = element(bytes, "element") else {
            return false;
        };
        if element.tag & 0x20 != 0 && !definite_lengths_only(element.content) {
            return false;
        }
        bytes = rest;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SignedData ContentInfo with `content` (when given) and placeholder other fields.
    fn signed(content: Option<&[u8]>) -> Vec<u8> {
        fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            if content.len() < 0x80 {
                out.push(content.len() as u8);
            } else {
                out.extend_from_slice(&[0x82, (content.len() >> 8) as u8, content.len() as u8]);
            }
            out.extend_from_slice(content);
            out
        }
        let data_oid = tlv(
            TAG_OID,
            &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01],
        );
        let encap = match content {
            Some(c) => tlv(
                TAG_SEQUENCE,
                &[data_oid, tlv(TAG_CONTEXT_0, &tlv(TAG_OCTET_STRING, c))].concat(),
            ),
            None => tlv(TAG_SEQUENCE, &data_oid),
        };
        let signed_data = tlv(
            TAG_SEQUENCE,
            &[
                tlv(TAG_INTEGER, &[1]),
                tlv(TAG_SET, &[]),
                encap,
                tlv(TAG_SET, &[]),
            ]
            .concat(),
        );
        tlv(
            TAG_SEQUENCE,
            &[
                tlv(TAG_OID, OID_SIGNED_DATA),
                tlv(TAG_CONTEXT_0, &signed_data),
            ]
            .concat(),
        )
    }

    #[test]
    fn der_is_returned_unchanged() {
        let der = signed(Some(b"body"));
        assert_eq!(CmsEncoding::Der.encode(&der).unwrap(), der);
        assert_eq!(CmsEncoding::default(), CmsEncoding::Der);
    }

    #[test]
    fn content_is_cut_into_primitive_substrings() {
        let content = [7u8; 10];
        let ber = CmsEncoding::IosBer { chunk_size: 4 }
            .encode(&signed(Some(&content)))
            .unwrap();
        let expected_content = [
            &[0xA0, 0x80, 0x24, 0x80][..],
            &[0x04, 0x04, 7, 7, 7, 7],
            &[0x04, 0x04, 7, 7, 7, 7],
            &[0x04, 0x02, 7, 7],
            &[0x00, 0x00, 0x00, 0x00],
        ]
        .concat();
        assert!(ber.starts_with(&[0x30, 0x80, 0x06, 0x09]));
        assert!(
            ber.windows(expected_content.len())
                .any(|w| w == expected_content.as_slice())
        );
        // signerInfos, then SignedData, [0] and ContentInfo closed.
        assert!(ber.ends_with(&[0x31, 0x00, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn long_substrings_use_long_form_lengths() {
        let content = vec![1u8; 300];
        let ber = CmsEncoding::IosBer { chunk_size: 256 }
            .encode(&signed(Some(&content)))
            .unwrap();
        let first = [0x24, 0x80, 0x04, 0x82, 0x01, 0x00, 1];
        assert!(ber.windows(first.len()).any(|w| w == first));
        let second = [0x04, 0x2C, 1];
        assert!(ber.windows(second.len()).any(|w| w == second));
    }

    #[test]
    fn detached_content_info_is_indefinite_and_empty() {
        let ber = CmsEncoding::IOS.encode(&signed(None)).unwrap();
        let encap = [
            0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0x00,
            0x00,
        ];
        assert!(ber.windows(encap.len()).any(|w| w == encap));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        let der = signed(Some(b"x"));
        assert_eq!(
            CmsEncoding::IosBer { chunk_size: 0 }.encode(&der),
            Err(CmsEncodingError::ZeroChunkSize)
        );
        for len in 0..der.len() {
            assert!(
                CmsEncoding::IOS.encode(&der[..len]).is_err(),
                "prefix {len}"
            );
        }
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(CmsEncoding::IOS.encode(&trailing).is_err());
        // Already BER (indefinite length): not the DER this writer reads.
        let ber = CmsEncoding::IOS.encode(&der).unwrap();
        assert!(definite_lengths_only(&der));
        assert!(!definite_lengths_only(&ber));
        assert!(CmsEncoding::IOS.encode(&ber).is_err());
        // Another content type (id-data).
        let mut data = der.clone();
        data[12] = 0x01;
        assert_eq!(
            CmsEncoding::IOS.encode(&data),
            Err(CmsEncodingError::UnsupportedContentType)
        );
    }
}

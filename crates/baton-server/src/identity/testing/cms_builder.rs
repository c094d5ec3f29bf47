//! Builds real detached CMS SignedData signatures, the way a device does, for tests and the
//! simulator.
//!
//! openssl does the cryptography (digest and RSA/ECDSA signature); the SignedData around it is
//! encoded here because the `openssl` crate's `Pkcs7::sign` cannot choose the digest (it always
//! uses SHA-256 for RSA) and devices sign with SHA-1. [`sign_message_openssl`] is the all-openssl
//! variant (SHA-256 only); the tests check that openssl itself verifies what this module builds.
//!
//! The SignedData is built in DER; [`SignatureEncoding::IosBer`] then re-encodes it in the BER
//! form iOS streams ([`super::ios_encoding`]). The signature does not change: it covers the DER
//! of the signed attributes, which stay DER in both forms.

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use openssl::error::ErrorStack;
use openssl::hash::hash;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::sign::Signer;
use openssl::stack::Stack;
use openssl::x509::{X509, X509Ref};

use super::super::DigestAlgorithm;
use super::super::asn1_time::{format_utc_time, unix_seconds};
use super::super::der::{
    DerReader, TAG_INTEGER, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_SET, TAG_UTC_TIME,
    context_constructed,
};
use super::ios_encoding::CmsEncoding;

const OID_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];
const OID_SIGNED_DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02];
const OID_CONTENT_TYPE: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04];
const OID_SIGNING_TIME: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05];
const OID_RSA_ENCRYPTION: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
const OID_ECDSA_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01];
const ECDSA_SHA2_ARC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03];

/// How a signature is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureEncoding {
    /// Strict DER (what openssl writes).
    #[default]
    Der,
    /// BER with indefinite lengths, as iOS's Security framework streams it
    /// ([`super::ios_encoding`]).
    IosBer,
}

/// How to build a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// Digest for the content and the signature. Default SHA-1, like iOS.
    pub digest: DigestAlgorithm,
    /// Include signed attributes (contentType, signingTime, messageDigest), as devices do.
    /// Without them the signature is over the body itself. Default true.
    pub signed_attributes: bool,
    /// The signingTime attribute's value. Default: now.
    pub signing_time: SystemTime,
    /// DER or the BER form of iOS. Default DER, the form the server's own tests pin; the device
    /// simulator defaults to [`SignatureEncoding::IosBer`].
    pub encoding: SignatureEncoding,
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            digest: DigestAlgorithm::Sha1,
            signed_attributes: true,
            signing_time: SystemTime::now(),
            encoding: SignatureEncoding::Der,
        }
    }
}

/// An `Mdm-Signature` header value: base64 of a detached CMS SignedData over `body`, signed by
/// `key` with `digest`, embedding `cert`, with signed attributes.
pub fn sign_message(
    body: &[u8],
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    digest: DigestAlgorithm,
) -> Result<String, ErrorStack> {
    let options = SignOptions {
        digest,
        ..SignOptions::default()
    };
    sign_message_with(body, cert, key, &[], &options)
}

/// Like [`sign_message`], with intermediates to embed after `cert` and full control of the options.
pub fn sign_message_with(
    body: &[u8],
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    chain: &[X509],
    options: &SignOptions,
) -> Result<String, ErrorStack> {
    let der = signed_data_der(body, cert, key, chain, options)?;
    let encoded = match options.encoding {
        SignatureEncoding::Der => der,
        // The DER was built just above, so the re-encoding cannot fail; report the impossible
        // case as an openssl error rather than panicking.
        SignatureEncoding::IosBer => CmsEncoding::IOS
            .encode(&der)
            .map_err(|_| ErrorStack::get())?,
    };
    Ok(STANDARD.encode(encoded))
}

/// The all-openssl signer: `Pkcs7::sign` with `DETACHED | BINARY` (SHA-256, signed attributes).
pub fn sign_message_openssl(
    body: &[u8],
    cert: &X509Ref,
    key: &PKeyRef<Private>,
) -> Result<String, ErrorStack> {
    let extra = Stack::new()?;
    let pkcs7 = Pkcs7::sign(
        cert,
        key,
        &extra,
        body,
        Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY,
    )?;
    Ok(STANDARD.encode(pkcs7.to_der()?))
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 6);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// AlgorithmIdentifier with optional NULL parameters.
fn algorithm(oid: &[u8], null_params: bool) -> Vec<u8> {
    let oid = tlv(TAG_OID, oid);
    if null_params {
        tlv(TAG_SEQUENCE, &concat(&[&oid, &[0x05, 0x00]]))
    } else {
        tlv(TAG_SEQUENCE, &oid)
    }
}

fn attribute(oid: &[u8], value: &[u8]) -> Vec<u8> {
    tlv(
        TAG_SEQUENCE,
        &concat(&[&tlv(TAG_OID, oid), &tlv(TAG_SET, value)]),
    )
}

/// Raw (issuer Name, serial INTEGER) elements of a certificate, read from its DER.
fn issuer_and_serial(cert_der: &[u8]) -> Result<Vec<u8>, ErrorStack> {
    let read = || -> Option<Vec<u8>> {
        let mut outer = DerReader::new(cert_der);
        let cert = outer.read(TAG_SEQUENCE).ok()?;
        let mut c = cert.contents();
        let tbs = c.read(TAG_SEQUENCE).ok()?;
        let mut t = tbs.contents();
        t.read_optional(context_constructed(0)).ok()?;
        let serial = t.read(TAG_INTEGER).ok()?.raw;
        t.read(TAG_SEQUENCE).ok()?;
        let issuer = t.read(TAG_SEQUENCE).ok()?.raw;
        Some(tlv(TAG_SEQUENCE, &concat(&[issuer, serial])))
    };
    // openssl produced this DER, so it is well formed; report the impossible case as an
    // openssl error rather than panicking.
    read().ok_or_else(ErrorStack::get)
}

fn signed_data_der(
    body: &[u8],
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    chain: &[X509],
    options: &SignOptions,
) -> Result<Vec<u8>, ErrorStack> {
    let md = options.digest.message_digest();
    let digest_algorithm = algorithm(options.digest.oid(), true);
    let cert_der = cert.to_der()?;

    let (signed_attributes, to_sign) = if options.signed_attributes {
        let content_digest = hash(md, body)?;
        let signing_time = format_utc_time(unix_seconds(options.signing_time))
            .unwrap_or_else(|| "700101000000Z".to_owned());
        let mut attributes = [
            attribute(OID_CONTENT_TYPE, &tlv(TAG_OID, OID_DATA)),
            attribute(
                OID_SIGNING_TIME,
                &tlv(TAG_UTC_TIME, signing_time.as_bytes()),
            ),
            attribute(OID_MESSAGE_DIGEST, &tlv(TAG_OCTET_STRING, &content_digest)),
        ];
        // DER orders a SET OF by the encodings of its elements.
        attributes.sort();
        let content = attributes.concat();
        (
            tlv(context_constructed(0), &content),
            tlv(TAG_SET, &content),
        )
    } else {
        (Vec::new(), body.to_vec())
    };

    let mut signer = Signer::new(md, key)?;
    signer.update(&to_sign)?;
    let signature = signer.sign_to_vec()?;
    let signature_algorithm = if key.id() == Id::EC {
        let oid = match options.digest {
            DigestAlgorithm::Sha1 => OID_ECDSA_SHA1.to_vec(),
            DigestAlgorithm::Sha256 => concat(&[ECDSA_SHA2_ARC, &[0x02]]),
            DigestAlgorithm::Sha384 => concat(&[ECDSA_SHA2_ARC, &[0x03]]),
            DigestAlgorithm::Sha512 => concat(&[ECDSA_SHA2_ARC, &[0x04]]),
        };
        algorithm(&oid, false)
    } else {
        algorithm(OID_RSA_ENCRYPTION, true)
    };

    let signer_info = tlv(
        TAG_SEQUENCE,
        &concat(&[
            &tlv(TAG_INTEGER, &[1]),
            &issuer_and_serial(&cert_der)?,
            &digest_algorithm,
            &signed_attributes,
            &signature_algorithm,
            &tlv(TAG_OCTET_STRING, &signature),
        ]),
    );
    let mut certificates = cert_der;
    for extra in chain {
        certificates.extend(extra.to_der()?);
    }
    let signed_data = tlv(
        TAG_SEQUENCE,
        &concat(&[
            &tlv(TAG_INTEGER, &[1]),
            &tlv(TAG_SET, &digest_algorithm),
            &tlv(TAG_SEQUENCE, &tlv(TAG_OID, OID_DATA)),
            &tlv(context_constructed(0), &certificates),
            &tlv(TAG_SET, &signer_info),
        ]),
    );
    Ok(tlv(
        TAG_SEQUENCE,
        &concat(&[
            &tlv(TAG_OID, OID_SIGNED_DATA),
            &tlv(context_constructed(0), &signed_data),
        ]),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use base64::Engine as _;
    use openssl::x509::store::X509StoreBuilder;

    use super::*;
    use crate::identity::testing::ios_encoding::definite_lengths_only;
    use crate::identity::testing::{DeviceCertificateSpec, TestCa, TestKeyKind};

    const BODY: &[u8] = b"<plist><dict><key>MessageType</key><string>Idle</string></dict></plist>";
    const SIGNED_DATA_HEADER: &[u8] = &[
        0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02, 0xA0, 0x80,
        0x30, 0x80,
    ];
    const DETACHED_CONTENT_INFO: &[u8] = &[
        0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01, 0x00, 0x00,
    ];

    fn device(key: TestKeyKind) -> (crate::identity::testing::DeviceIdentity, TestCa) {
        let root = TestCa::generate("ios encoding root").unwrap();
        let intermediate = root
            .issue_intermediate("ios encoding intermediate")
            .unwrap();
        let spec = DeviceCertificateSpec {
            key,
            ..DeviceCertificateSpec::default()
        };
        (intermediate.issue_device("dev", &spec).unwrap(), root)
    }

    fn options(digest: DigestAlgorithm, encoding: SignatureEncoding) -> SignOptions {
        SignOptions {
            digest,
            signing_time: UNIX_EPOCH + Duration::from_secs(1_750_000_000),
            encoding,
            ..SignOptions::default()
        }
    }

    fn sign(
        id: &crate::identity::testing::DeviceIdentity,
        body: &[u8],
        options: &SignOptions,
    ) -> Vec<u8> {
        let header = sign_message_with(body, &id.cert, &id.key, &id.chain, options).unwrap();
        STANDARD.decode(header).unwrap()
    }

    #[test]
    fn ios_ber_signature_is_streamed_like_ios() {
        let (id, _) = device(TestKeyKind::Rsa2048);
        let ber = sign(
            &id,
            BODY,
            &options(DigestAlgorithm::Sha1, SignatureEncoding::IosBer),
        );
        assert!(ber.starts_with(SIGNED_DATA_HEADER), "{:02x?}", &ber[..17]);
        assert!(
            ber.windows(DETACHED_CONTENT_INFO.len())
                .any(|w| w == DETACHED_CONTENT_INFO)
        );
        // Certificates (leaf then intermediate) stay definite: `a0 82 ..` after the content info.
        let certs_at = ber
            .windows(DETACHED_CONTENT_INFO.len())
            .position(|w| w == DETACHED_CONTENT_INFO)
            .unwrap()
            + DETACHED_CONTENT_INFO.len();
        assert_eq!(ber[certs_at..certs_at + 2], [0xA0, 0x82]);
        let leaf = id.cert.to_der().unwrap();
        assert_eq!(ber[certs_at + 4..certs_at + 4 + leaf.len()], leaf[..]);
        assert!(ber.ends_with(&[0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn openssl_verifies_the_ios_ber_signature() {
        for key in [TestKeyKind::Rsa2048, TestKeyKind::EcP256] {
            let (id, _) = device(key);
            for digest in [DigestAlgorithm::Sha1, DigestAlgorithm::Sha256] {
                let ber = sign(&id, BODY, &options(digest, SignatureEncoding::IosBer));
                let p7 = Pkcs7::from_der(&ber).unwrap();
                let certs = p7.signed().and_then(|s| s.certificates()).unwrap();
                assert_eq!(certs.len(), 2, "leaf and intermediate embedded");
                let no_extra = Stack::new().unwrap();
                let store = X509StoreBuilder::new().unwrap().build();
                p7.verify(
                    &no_extra,
                    &store,
                    Some(BODY),
                    None,
                    Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
                )
                .unwrap_or_else(|e| panic!("{key:?} {digest:?}: {e}"));
                assert!(
                    p7.verify(
                        &no_extra,
                        &store,
                        Some(b"another body"),
                        None,
                        Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
                    )
                    .is_err()
                );
            }
        }
    }

    #[test]
    fn ios_ber_is_the_der_message_reencoded() {
        // RSA PKCS#1 v1.5 is deterministic, so both forms carry the same signature: openssl,
        // reading the BER and writing DER, gives back the DER form byte for byte.
        let (id, _) = device(TestKeyKind::Rsa2048);
        let der = sign(
            &id,
            BODY,
            &options(DigestAlgorithm::Sha1, SignatureEncoding::Der),
        );
        let ber = sign(
            &id,
            BODY,
            &options(DigestAlgorithm::Sha1, SignatureEncoding::IosBer),
        );
        assert_ne!(der, ber);
        assert_eq!(Pkcs7::from_der(&ber).unwrap().to_der().unwrap(), der);
    }

    #[test]
    fn der_option_is_strict_der_and_unchanged() {
        let (id, _) = device(TestKeyKind::Rsa2048);
        let options = options(DigestAlgorithm::Sha1, SignatureEncoding::Der);
        assert_eq!(SignOptions::default().encoding, SignatureEncoding::Der);
        let der = sign(&id, BODY, &options);
        // What the builder wrote before it could re-encode: the DER SignedData itself.
        assert_eq!(
            der,
            signed_data_der(BODY, &id.cert, &id.key, &id.chain, &options).unwrap()
        );
        assert_eq!(der[..2], [0x30, 0x82]);
        assert!(definite_lengths_only(&der));
    }
}

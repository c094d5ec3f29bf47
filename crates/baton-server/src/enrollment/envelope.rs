//! Opening a SCEP pkcsPKIEnvelope (PKCS#7 EnvelopedData encrypted to the CA).
//!
//! OpenSSL's `Pkcs7::decrypt` handles AES and triple DES. Single DES-CBC, which some clients
//! still use by default (micromdm's `scepclient` among them), lives in OpenSSL 3's legacy
//! provider; rather than loading that provider process-wide, DES-CBC envelopes are opened here:
//! the content key is decrypted with the CA key by OpenSSL (RSA PKCS#1 v1.5) and the content with
//! the `des` crate in CBC mode.

use openssl::encrypt::Decrypter;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{PKeyRef, Private};
use openssl::rsa::Padding;
use openssl::x509::X509Ref;
use thiserror::Error;

use super::cms::{self, CmsError, ContentCipher};
use super::der::{self, Tlv};
use super::oid;

/// Opening an envelope failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The structure is malformed.
    #[error(transparent)]
    Cms(#[from] CmsError),
    /// No RecipientInfo is addressed to the CA certificate.
    #[error("no recipient matches the CA certificate")]
    NoRecipient,
    /// The content key or content did not decrypt.
    #[error("decryption failed")]
    Decrypt,
}

/// Single DES-CBC (1.3.14.3.2.7).
const DES_CBC: &[u64] = &[1, 3, 14, 3, 2, 7];

/// What an opened envelope held.
#[derive(Debug)]
pub struct Opened {
    /// The decrypted content.
    pub content: Vec<u8>,
    /// The cipher to answer with: the request's, or triple DES for a single-DES request.
    pub reply_cipher: ContentCipher,
}

/// Decrypts an EnvelopedData ContentInfo addressed to `ca_cert` with `ca_key`.
pub fn open(
    content_info: &[u8],
    ca_key: &PKeyRef<Private>,
    ca_cert: &X509Ref,
) -> Result<Opened, EnvelopeError> {
    // Apple's encoder streams the envelope (indefinite lengths, chunked ciphertext).
    let content_info = &*crate::ber::to_der(content_info, &crate::ber::BerLimits::DEVICE_CMS)
        .map_err(CmsError::Ber)?;
    if let Some(cipher) = ContentCipher::of_enveloped_data(content_info) {
        let content = Pkcs7::from_der(content_info)
            .and_then(|p7| p7.decrypt(ca_key, ca_cert, Pkcs7Flags::BINARY))
            .map_err(|_| EnvelopeError::Decrypt)?;
        return Ok(Opened {
            content,
            reply_cipher: cipher,
        });
    }
    let content = open_des_cbc(content_info, ca_key, ca_cert)?;
    Ok(Opened {
        content,
        reply_cipher: ContentCipher::DesEde3Cbc,
    })
}

fn open_des_cbc(
    content_info: &[u8],
    ca_key: &PKeyRef<Private>,
    ca_cert: &X509Ref,
) -> Result<Vec<u8>, EnvelopeError> {
    let ca_der = ca_cert.to_der().map_err(CmsError::from)?;
    let (ca_issuer, ca_serial) = cms::issuer_and_serial(&ca_der)?;

    let mut ci = Tlv::parse_single(content_info)
        .and_then(|t| t.expect_tag(der::TAG_SEQUENCE))
        .map_err(CmsError::from)?
        .reader();
    let content_type = ci.read_tag(der::TAG_OID).map_err(CmsError::from)?;
    if !oid::is(content_type, oid::ENVELOPED_DATA) {
        return Err(CmsError::UnexpectedContentType.into());
    }
    let mut explicit = ci
        .read_tag(der::TAG_CONTEXT_0)
        .map_err(CmsError::from)?
        .reader();
    let mut enveloped = explicit
        .read_tag(der::TAG_SEQUENCE)
        .map_err(CmsError::from)?
        .reader();
    enveloped
        .read_tag(der::TAG_INTEGER)
        .map_err(CmsError::from)?;
    let mut recipients = enveloped
        .read_tag(der::TAG_SET)
        .map_err(CmsError::from)?
        .reader();
    let mut encrypted_key = None;
    while !recipients.is_empty() {
        let mut ri = recipients
            .read_tag(der::TAG_SEQUENCE)
            .map_err(CmsError::from)?
            .reader();
        ri.read_tag(der::TAG_INTEGER).map_err(CmsError::from)?;
        let mut ias = ri
            .read_tag(der::TAG_SEQUENCE)
            .map_err(CmsError::from)?
            .reader();
        let issuer = ias.read_tag(der::TAG_SEQUENCE).map_err(CmsError::from)?;
        let serial = ias.read_tag(der::TAG_INTEGER).map_err(CmsError::from)?;
        ri.read_tag(der::TAG_SEQUENCE).map_err(CmsError::from)?;
        let key = ri.read_tag(der::TAG_OCTET_STRING).map_err(CmsError::from)?;
        if issuer.raw == ca_issuer.raw && serial.raw == ca_serial.raw {
            encrypted_key = Some(key.value);
        }
    }
    let encrypted_key = encrypted_key.ok_or(EnvelopeError::NoRecipient)?;
    let mut eci = enveloped
        .read_tag(der::TAG_SEQUENCE)
        .map_err(CmsError::from)?
        .reader();
    eci.read_tag(der::TAG_OID).map_err(CmsError::from)?;
    let mut algorithm = eci
        .read_tag(der::TAG_SEQUENCE)
        .map_err(CmsError::from)?
        .reader();
    if !oid::is(
        algorithm.read_tag(der::TAG_OID).map_err(CmsError::from)?,
        DES_CBC,
    ) {
        return Err(CmsError::UnsupportedDigest.into());
    }
    let iv = algorithm
        .read_tag(der::TAG_OCTET_STRING)
        .map_err(CmsError::from)?
        .value;
    // [0] IMPLICIT OCTET STRING: primitive, or constructed from OCTET STRING chunks.
    let encrypted = eci.read().map_err(CmsError::from)?;
    let ciphertext = match encrypted.tag {
        0x80 => encrypted.value.to_vec(),
        0xa0 => {
            let mut chunks = encrypted.reader();
            let mut out = Vec::new();
            while !chunks.is_empty() {
                out.extend_from_slice(
                    chunks
                        .read_tag(der::TAG_OCTET_STRING)
                        .map_err(CmsError::from)?
                        .value,
                );
            }
            out
        }
        _ => return Err(CmsError::UnexpectedContentType.into()),
    };

    let mut decrypter = Decrypter::new(ca_key).map_err(|_| EnvelopeError::Decrypt)?;
    decrypter
        .set_rsa_padding(Padding::PKCS1)
        .map_err(|_| EnvelopeError::Decrypt)?;
    let mut key = vec![
        0u8;
        decrypter
            .decrypt_len(encrypted_key)
            .map_err(|_| EnvelopeError::Decrypt)?
    ];
    let len = decrypter
        .decrypt(encrypted_key, &mut key)
        .map_err(|_| EnvelopeError::Decrypt)?;
    key.truncate(len);
    des_cbc_decrypt(&key, iv, &ciphertext).ok_or(EnvelopeError::Decrypt)
}

/// DES-CBC decryption with PKCS#7 padding removal; `None` on any size or padding error.
fn des_cbc_decrypt(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
    use des::cipher::generic_array::GenericArray;
    use des::cipher::{BlockDecrypt as _, KeyInit as _};

    let cipher = des::Des::new_from_slice(key).ok()?;
    if iv.len() != 8 || ciphertext.is_empty() || !ciphertext.len().is_multiple_of(8) {
        return None;
    }
    let mut previous = [0u8; 8];
    previous.copy_from_slice(iv);
    let mut plain = Vec::with_capacity(ciphertext.len());
    for chunk in ciphertext.chunks_exact(8) {
        let mut block = GenericArray::clone_from_slice(chunk);
        cipher.decrypt_block(&mut block);
        plain.extend(block.iter().zip(previous.iter()).map(|(b, p)| b ^ p));
        previous.copy_from_slice(chunk);
    }
    let pad = usize::from(*plain.last()?);
    if pad == 0
        || pad > 8
        || plain[plain.len() - pad..]
            .iter()
            .any(|b| usize::from(*b) != pad)
    {
        return None;
    }
    plain.truncate(plain.len() - pad);
    Some(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn des_cbc_known_answer() {
        // FIPS 81 CBC example: key 0123456789abcdef, IV 1234567890abcdef,
        // "Now is the time for all " -> e5c7cdde872bf27c 43e934008c389c0f 683788499a7c05f6.
        let key = hex::decode("0123456789abcdef").unwrap();
        let iv = hex::decode("1234567890abcdef").unwrap();
        let mut ciphertext =
            hex::decode("e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6").unwrap();
        // Append one block of padding encrypted by chaining: easier to check without padding by
        // decrypting a padded message we cannot produce here, so verify the raw blocks instead.
        let cipher = des::Des::new_from_slice(&key).unwrap();
        use des::cipher::generic_array::GenericArray;
        use des::cipher::{BlockDecrypt as _, KeyInit as _};
        let mut block = GenericArray::clone_from_slice(&ciphertext[..8]);
        cipher.decrypt_block(&mut block);
        let first: Vec<u8> = block.iter().zip(iv.iter()).map(|(b, p)| b ^ p).collect();
        assert_eq!(first, b"Now is t");
        // Bad padding (the plaintext's last byte is ' ') is refused, not panicked on.
        assert_eq!(des_cbc_decrypt(&key, &iv, &ciphertext), None);
        ciphertext.pop();
        assert_eq!(des_cbc_decrypt(&key, &iv, &ciphertext), None);
        assert_eq!(des_cbc_decrypt(&key[..7], &iv, &ciphertext), None);
    }
}

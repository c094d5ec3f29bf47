//! The digest and signature algorithms a device may use in `Mdm-Signature`, identified by the
//! DER content of their object identifiers.
//!
//! Real devices and common simulators sign with SHA-1; SHA-256 (and SHA-384/512) are accepted too.
//! Signatures are RSA PKCS#1 v1.5 or ECDSA. RSA-PSS and anything else is refused.

use openssl::hash::MessageDigest;

/// A message digest algorithm allowed in a device signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm {
    /// SHA-1 (what iOS devices use for `Mdm-Signature`).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// The kind of public key a signature algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// RSA with PKCS#1 v1.5 padding.
    Rsa,
    /// ECDSA (P-256 and the other curves openssl knows).
    Ecdsa,
}

/// A SignerInfo's signature algorithm: the key kind and, when the identifier names one, the
/// digest it is bound to (`sha256WithRSAEncryption`); `rsaEncryption` names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SignatureAlgorithm {
    /// Which key kind verifies it.
    pub(crate) key: KeyAlgorithm,
    /// The digest named by the identifier, if any.
    pub(crate) digest: Option<DigestAlgorithm>,
}

const OID_SHA1: &[u8] = &[0x2B, 0x0E, 0x03, 0x02, 0x1A];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];

/// 1.2.840.113549.1.1 (PKCS#1) arc prefix.
const PKCS1_ARC: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
/// 1.2.840.10045.2.1 id-ecPublicKey.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// 1.2.840.10045.4.1 ecdsa-with-SHA1.
const OID_ECDSA_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x01];
/// 1.2.840.10045.4.3 ecdsa-with-SHA2 arc prefix.
const ECDSA_SHA2_ARC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03];

impl DigestAlgorithm {
    /// Recognises a digest algorithm by the content octets of its object identifier.
    pub(crate) fn from_oid(oid: &[u8]) -> Option<Self> {
        match oid {
            OID_SHA1 => Some(Self::Sha1),
            OID_SHA256 => Some(Self::Sha256),
            OID_SHA384 => Some(Self::Sha384),
            OID_SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The content octets of this algorithm's object identifier.
    pub(crate) fn oid(self) -> &'static [u8] {
        match self {
            Self::Sha1 => OID_SHA1,
            Self::Sha256 => OID_SHA256,
            Self::Sha384 => OID_SHA384,
            Self::Sha512 => OID_SHA512,
        }
    }

    /// The openssl digest implementing it.
    pub fn message_digest(self) -> MessageDigest {
        match self {
            Self::Sha1 => MessageDigest::sha1(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        }
    }
}

impl SignatureAlgorithm {
    /// Recognises a signature algorithm by the content octets of its object identifier.
    pub(crate) fn from_oid(oid: &[u8]) -> Option<Self> {
        let rsa = |digest| {
            Some(Self {
                key: KeyAlgorithm::Rsa,
                digest,
            })
        };
        let ecdsa = |digest| {
            Some(Self {
                key: KeyAlgorithm::Ecdsa,
                digest,
            })
        };
        if let Some(last) = oid.strip_prefix(PKCS1_ARC) {
            return match last {
                [0x01] => rsa(None),
                [0x05] => rsa(Some(DigestAlgorithm::Sha1)),
                [0x0B] => rsa(Some(DigestAlgorithm::Sha256)),
                [0x0C] => rsa(Some(DigestAlgorithm::Sha384)),
                [0x0D] => rsa(Some(DigestAlgorithm::Sha512)),
                _ => None,
            };
        }
        if let Some(last) = oid.strip_prefix(ECDSA_SHA2_ARC) {
            return match last {
                [0x02] => ecdsa(Some(DigestAlgorithm::Sha256)),
                [0x03] => ecdsa(Some(DigestAlgorithm::Sha384)),
                [0x04] => ecdsa(Some(DigestAlgorithm::Sha512)),
                _ => None,
            };
        }
        match oid {
            OID_EC_PUBLIC_KEY => ecdsa(None),
            OID_ECDSA_SHA1 => ecdsa(Some(DigestAlgorithm::Sha1)),
            _ => None,
        }
    }

    /// The digest this signature is computed with, given the SignerInfo's digest algorithm.
    /// `None` when the identifier names a different digest than the SignerInfo.
    pub(crate) fn effective_digest(
        self,
        signer_digest: DigestAlgorithm,
    ) -> Option<DigestAlgorithm> {
        match self.digest {
            None => Some(signer_digest),
            Some(named) if named == signer_digest => Some(named),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_oids_round_trip() {
        for alg in [
            DigestAlgorithm::Sha1,
            DigestAlgorithm::Sha256,
            DigestAlgorithm::Sha384,
            DigestAlgorithm::Sha512,
        ] {
            assert_eq!(DigestAlgorithm::from_oid(alg.oid()), Some(alg));
        }
        // md5 (1.2.840.113549.2.5) is not accepted.
        assert_eq!(
            DigestAlgorithm::from_oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x02, 0x05]),
            None
        );
    }

    #[test]
    fn signature_oids() {
        let sha1_rsa = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x05];
        let alg = SignatureAlgorithm::from_oid(&sha1_rsa).unwrap();
        assert_eq!(alg.key, KeyAlgorithm::Rsa);
        assert_eq!(alg.digest, Some(DigestAlgorithm::Sha1));
        assert_eq!(
            alg.effective_digest(DigestAlgorithm::Sha1),
            Some(DigestAlgorithm::Sha1)
        );
        assert_eq!(alg.effective_digest(DigestAlgorithm::Sha256), None);

        let rsa = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
        let alg = SignatureAlgorithm::from_oid(&rsa).unwrap();
        assert_eq!(
            alg.effective_digest(DigestAlgorithm::Sha256),
            Some(DigestAlgorithm::Sha256)
        );

        let ecdsa256 = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
        let alg = SignatureAlgorithm::from_oid(&ecdsa256).unwrap();
        assert_eq!(alg.key, KeyAlgorithm::Ecdsa);
        assert_eq!(alg.digest, Some(DigestAlgorithm::Sha256));

        // RSASSA-PSS (1.2.840.113549.1.1.10) is refused.
        let pss = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0A];
        assert_eq!(SignatureAlgorithm::from_oid(&pss), None);
    }
}

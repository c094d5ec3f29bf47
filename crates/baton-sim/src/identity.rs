//! A simulated device's identity: its certificate, private key and intermediates, and the
//! `Mdm-Signature` it puts on every message (detached CMS with signed attributes, signingTime and
//! the chain, streamed as BER with SHA-1 like iOS unless told otherwise).

use baton_server::enrollment::scep::client::CmsEncoding;
use baton_server::identity::DigestAlgorithm;
use baton_server::identity::testing::{
    DeviceIdentity, SignOptions, SignatureEncoding, sign_message_with,
};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use sha2_free::sha256_hex;

use crate::SimError;

/// The digest a device signs `Mdm-Signature` with. iOS uses SHA-1, and so does the simulator
/// by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SignatureDigest {
    /// SHA-1 (what real devices send).
    #[default]
    Sha1,
    /// SHA-256.
    Sha256,
}

impl SignatureDigest {
    fn algorithm(self) -> DigestAlgorithm {
        match self {
            SignatureDigest::Sha1 => DigestAlgorithm::Sha1,
            SignatureDigest::Sha256 => DigestAlgorithm::Sha256,
        }
    }
}

/// How a device encodes its CMS messages: the `Mdm-Signature` and the SCEP PKCSReq (with the
/// envelope inside it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageEncoding {
    /// BER with indefinite lengths, as iOS's Security framework streams it (the default).
    #[default]
    IosBer,
    /// Strict DER.
    Der,
}

impl MessageEncoding {
    fn signature(self) -> SignatureEncoding {
        match self {
            MessageEncoding::IosBer => SignatureEncoding::IosBer,
            MessageEncoding::Der => SignatureEncoding::Der,
        }
    }

    /// The encoding of a SCEP request.
    pub(crate) fn cms(self) -> CmsEncoding {
        match self {
            MessageEncoding::IosBer => CmsEncoding::IOS,
            MessageEncoding::Der => CmsEncoding::Der,
        }
    }
}

/// Certificate, key and intermediates.
#[derive(Debug, Clone)]
pub struct SimIdentity {
    /// The identity certificate.
    pub cert: X509,
    /// Its private key.
    pub key: PKey<Private>,
    /// Intermediate certificates embedded in signatures (empty under a root).
    pub chain: Vec<X509>,
}

impl From<DeviceIdentity> for SimIdentity {
    fn from(d: DeviceIdentity) -> Self {
        Self {
            cert: d.cert,
            key: d.key,
            chain: d.chain,
        }
    }
}

impl SimIdentity {
    /// An identity from a certificate and key.
    pub fn new(cert: X509, key: PKey<Private>) -> Self {
        Self {
            cert,
            key,
            chain: Vec::new(),
        }
    }

    /// The `Mdm-Signature` header value for `body` (signed attributes with signingTime, the
    /// intermediates embedded after the certificate).
    pub fn sign(
        &self,
        body: &[u8],
        digest: SignatureDigest,
        encoding: MessageEncoding,
    ) -> Result<String, SimError> {
        let options = SignOptions {
            digest: digest.algorithm(),
            encoding: encoding.signature(),
            ..SignOptions::default()
        };
        Ok(sign_message_with(
            body,
            &self.cert,
            &self.key,
            &self.chain,
            &options,
        )?)
    }

    /// The certificate and intermediates as PEM text.
    pub fn cert_chain_pem(&self) -> Result<String, SimError> {
        let mut pem = self.cert.to_pem()?;
        for c in &self.chain {
            pem.extend(c.to_pem()?);
        }
        Ok(String::from_utf8_lossy(&pem).into_owned())
    }

    /// The private key as PKCS#8 PEM. A secret: never log it.
    pub fn key_pem(&self) -> Result<Vec<u8>, SimError> {
        Ok(self.key.private_key_to_pem_pkcs8()?)
    }

    /// Reads an identity back from [`Self::cert_chain_pem`] and [`Self::key_pem`].
    pub fn from_pem(cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, SimError> {
        let mut certs = X509::stack_from_pem(cert_chain_pem)?.into_iter();
        let cert = certs.next().ok_or_else(|| SimError::Saved {
            path: "certificate".into(),
            reason: "no certificate in the PEM".into(),
        })?;
        Ok(Self {
            cert,
            key: PKey::private_key_from_pem(key_pem)?,
            chain: certs.collect(),
        })
    }

    /// The certificate's common name, if any.
    pub fn common_name(&self) -> Option<String> {
        common_name(&self.cert)
    }

    /// Lower-case hex SHA-256 of the certificate DER.
    pub fn cert_sha256_hex(&self) -> Result<String, SimError> {
        Ok(sha256_hex(&self.cert.to_der()?)?)
    }
}

/// The first common name of a certificate's subject.
pub fn common_name(cert: &openssl::x509::X509Ref) -> Option<String> {
    cert.subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

mod sha2_free {
    //! SHA-256 through openssl (the crate does not otherwise need a hash crate).
    pub(super) fn sha256_hex(data: &[u8]) -> Result<String, openssl::error::ErrorStack> {
        Ok(hex::encode(openssl::hash::hash(
            openssl::hash::MessageDigest::sha256(),
            data,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use baton_server::identity::testing::{DeviceCertificateSpec, TestCa};

    #[test]
    fn pem_round_trip_keeps_key_and_chain() {
        let ca = TestCa::generate("sim test root").unwrap();
        let inter = ca.issue_intermediate("sim test intermediate").unwrap();
        let id: SimIdentity = inter
            .issue_device("dev", &DeviceCertificateSpec::default())
            .unwrap()
            .into();
        assert_eq!(id.chain.len(), 1);
        let back = SimIdentity::from_pem(
            id.cert_chain_pem().unwrap().as_bytes(),
            &id.key_pem().unwrap(),
        )
        .unwrap();
        assert_eq!(back.cert.to_der().unwrap(), id.cert.to_der().unwrap());
        assert_eq!(back.chain.len(), 1);
        assert!(back.key.public_eq(&id.key));
        assert_eq!(back.common_name().as_deref(), Some("dev"));
        // Both digests produce a signature (base64 text, distinct).
        let a = id
            .sign(b"body", SignatureDigest::Sha1, MessageEncoding::Der)
            .unwrap();
        let b = id
            .sign(b"body", SignatureDigest::Sha256, MessageEncoding::Der)
            .unwrap();
        assert_ne!(a, b);
    }

    /// The decoded signature, parsed and verified over `body` by openssl; its first bytes and
    /// its digest algorithm's OID.
    fn signature(id: &SimIdentity, digest: SignatureDigest, encoding: MessageEncoding) -> Vec<u8> {
        use base64::Engine as _;
        use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
        let header = id.sign(b"body", digest, encoding).unwrap();
        let cms = base64::engine::general_purpose::STANDARD
            .decode(header)
            .unwrap();
        let p7 = Pkcs7::from_der(&cms).unwrap();
        p7.verify(
            &openssl::stack::Stack::new().unwrap(),
            &openssl::x509::store::X509StoreBuilder::new()
                .unwrap()
                .build(),
            Some(b"body"),
            None,
            Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
        )
        .unwrap();
        assert_eq!(
            p7.signed().and_then(|s| s.certificates()).map(|c| c.len()),
            Some(1 + id.chain.len()),
            "chain embedded"
        );
        cms
    }

    #[test]
    fn signs_like_ios_by_default_and_der_on_request() {
        let ca = TestCa::generate("sim test root").unwrap();
        let inter = ca.issue_intermediate("sim test intermediate").unwrap();
        let id: SimIdentity = inter
            .issue_device("dev", &DeviceCertificateSpec::default())
            .unwrap()
            .into();
        assert_eq!(SignatureDigest::default(), SignatureDigest::Sha1);
        assert_eq!(MessageEncoding::default(), MessageEncoding::IosBer);
        const SHA1: &[u8] = &[0x06, 0x05, 0x2B, 0x0E, 0x03, 0x02, 0x1A];
        let contains = |cms: &[u8], what: &[u8]| cms.windows(what.len()).any(|w| w == what);

        let ios = signature(&id, SignatureDigest::default(), MessageEncoding::default());
        assert_eq!(ios[..2], [0x30, 0x80]);
        assert!(contains(&ios, SHA1));
        let der = signature(&id, SignatureDigest::Sha1, MessageEncoding::Der);
        assert_eq!(der[..2], [0x30, 0x82]);
        let sha256 = signature(&id, SignatureDigest::Sha256, MessageEncoding::IosBer);
        assert_eq!(sha256[..2], [0x30, 0x80]);
        assert!(!contains(&sha256, SHA1));
    }
}

//! Object identifiers used by enrollment (CMS, PKCS#9, SCEP, X.509), as dotted arcs.

use super::der::{self, Tlv};

/// id-data (1.2.840.113549.1.7.1).
pub const DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 1];
/// id-signedData (1.2.840.113549.1.7.2).
pub const SIGNED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 2];
/// id-envelopedData (1.2.840.113549.1.7.3).
pub const ENVELOPED_DATA: &[u64] = &[1, 2, 840, 113_549, 1, 7, 3];

/// PKCS#9 contentType attribute.
pub const CONTENT_TYPE: &[u64] = &[1, 2, 840, 113_549, 1, 9, 3];
/// PKCS#9 messageDigest attribute.
pub const MESSAGE_DIGEST: &[u64] = &[1, 2, 840, 113_549, 1, 9, 4];
/// PKCS#9 signingTime attribute.
pub const SIGNING_TIME: &[u64] = &[1, 2, 840, 113_549, 1, 9, 5];
/// PKCS#9 challengePassword attribute.
pub const CHALLENGE_PASSWORD: &[u64] = &[1, 2, 840, 113_549, 1, 9, 7];

/// SCEP messageType attribute.
pub const SCEP_MESSAGE_TYPE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 2];
/// SCEP pkiStatus attribute.
pub const SCEP_PKI_STATUS: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 3];
/// SCEP failInfo attribute.
pub const SCEP_FAIL_INFO: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 4];
/// SCEP senderNonce attribute.
pub const SCEP_SENDER_NONCE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 5];
/// SCEP recipientNonce attribute.
pub const SCEP_RECIPIENT_NONCE: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 6];
/// SCEP transactionID attribute.
pub const SCEP_TRANSACTION_ID: &[u64] = &[2, 16, 840, 1, 113_733, 1, 9, 7];

/// SHA-1.
pub const SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
/// SHA-256.
pub const SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];
/// SHA-384.
pub const SHA384: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 2];
/// SHA-512.
pub const SHA512: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 3];

/// rsaEncryption.
pub const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113_549, 1, 1, 1];
/// RSASSA-PSS (refused: SCEP clients use PKCS#1 v1.5).
pub const RSASSA_PSS: &[u64] = &[1, 2, 840, 113_549, 1, 1, 10];
/// sha256WithRSAEncryption.
pub const SHA256_WITH_RSA: &[u64] = &[1, 2, 840, 113_549, 1, 1, 11];
/// ecdsa-with-SHA256.
pub const ECDSA_WITH_SHA256: &[u64] = &[1, 2, 840, 10_045, 4, 3, 2];

/// AES-128-CBC.
pub const AES128_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 2];
/// AES-192-CBC.
pub const AES192_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 22];
/// AES-256-CBC.
pub const AES256_CBC: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 1, 42];
/// DES-EDE3-CBC.
pub const DES_EDE3_CBC: &[u64] = &[1, 2, 840, 113_549, 3, 7];

/// True when the OBJECT IDENTIFIER TLV `tlv` is `arcs`.
pub fn is(tlv: Tlv<'_>, arcs: &[u64]) -> bool {
    tlv.tag == der::TAG_OID && der::oid(arcs).get(2..) == Some(tlv.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_oid() {
        let encoded = der::oid(SHA256);
        let parsed = Tlv::parse_single(&encoded).unwrap();
        assert!(is(parsed, SHA256));
        assert!(!is(parsed, SHA512));
    }
}

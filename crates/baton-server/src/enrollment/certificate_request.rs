//! PKCS#10 certificate requests: reading the challengePassword attribute (the `openssl` crate
//! exposes CSR attributes neither for reading nor writing) and building a CSR that carries one.

use openssl::hash::MessageDigest;
use openssl::pkey::{Id, PKeyRef, Private};
use openssl::sign::Signer;
use openssl::x509::X509NameRef;

use super::cms::CmsError;
use super::der::{self, DerError, Tlv};
use super::oid;

/// The challengePassword attribute of a DER CSR, if it has one.
pub fn challenge_password(csr_der: &[u8]) -> Result<Option<String>, DerError> {
    let mut csr = Tlv::parse_single(csr_der)?
        .expect_tag(der::TAG_SEQUENCE)?
        .reader();
    let mut info = csr.read_tag(der::TAG_SEQUENCE)?.reader();
    info.read_tag(der::TAG_INTEGER)?;
    info.read_tag(der::TAG_SEQUENCE)?;
    info.read_tag(der::TAG_SEQUENCE)?;
    let Some(attributes) = info.read_optional(der::TAG_CONTEXT_0)? else {
        return Ok(None);
    };
    let mut attributes = attributes.reader();
    while !attributes.is_empty() {
        let mut attribute = attributes.read_tag(der::TAG_SEQUENCE)?.reader();
        let attr_type = attribute.read_tag(der::TAG_OID)?;
        if oid::is(attr_type, oid::CHALLENGE_PASSWORD) {
            let mut values = attribute.read_tag(der::TAG_SET)?.reader();
            return der::read_string(values.read()?).map(Some);
        }
    }
    Ok(None)
}

/// Builds a DER PKCS#10 request for `key` (RSA or EC P-256) and `subject`, with an optional
/// challengePassword attribute, signed with SHA-256.
pub fn build(
    key: &PKeyRef<Private>,
    subject: &X509NameRef,
    challenge: Option<&str>,
) -> Result<Vec<u8>, CmsError> {
    let mut attributes = Vec::new();
    if let Some(challenge) = challenge {
        let value = if challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b))
        {
            der::printable_string(challenge)
        } else {
            der::tlv(der::TAG_UTF8_STRING, challenge.as_bytes())
        };
        attributes.push(der::sequence(&[
            &der::oid(oid::CHALLENGE_PASSWORD),
            &der::set_of(&[&value]),
        ]));
    }
    let attribute_refs: Vec<&[u8]> = attributes.iter().map(Vec::as_slice).collect();
    let info = der::sequence(&[
        &der::integer_u64(0),
        &subject.to_der()?,
        &key.public_key_to_der()?,
        &der::constructed(der::TAG_CONTEXT_0, &attribute_refs),
    ]);
    let algorithm = match key.id() {
        Id::RSA => der::sequence(&[&der::oid(oid::SHA256_WITH_RSA), &der::null()]),
        Id::EC => der::sequence(&[&der::oid(oid::ECDSA_WITH_SHA256)]),
        _ => return Err(CmsError::UnsupportedKey),
    };
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    let signature = signer.sign_oneshot_to_vec(&info)?;
    Ok(der::sequence(&[
        &info,
        &algorithm,
        &der::bit_string(&signature),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Name, X509Req};

    fn name() -> openssl::x509::X509Name {
        let mut b = X509Name::builder().unwrap();
        b.append_entry_by_text("CN", "device").unwrap();
        b.build()
    }

    #[test]
    fn built_csr_verifies_and_carries_the_challenge() {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        for challenge in ["simple-Challenge1", "with_underscore&ümlaut"] {
            let der = build(&key, &name(), Some(challenge)).unwrap();
            let req = X509Req::from_der(&der).unwrap();
            assert!(req.verify(&req.public_key().unwrap()).unwrap());
            assert_eq!(
                challenge_password(&der).unwrap().as_deref(),
                Some(challenge)
            );
        }
        let without = build(&key, &name(), None).unwrap();
        assert_eq!(challenge_password(&without).unwrap(), None);
    }

    #[test]
    fn ec_csr_is_valid() {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
        let der = build(&key, &name(), Some("x")).unwrap();
        let req = X509Req::from_der(&der).unwrap();
        assert!(req.verify(&req.public_key().unwrap()).unwrap());
    }
}

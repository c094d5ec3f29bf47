//! The straightforward verification path: openssl's own PKCS#7 parser and verifier on every
//! request, and a full chain verification every time (no cache).
//!
//! It is about ten times slower than [`IdentityVerifier::verify_signature`] (openssl 3 decodes
//! the embedded certificate on each parse). It exists as an independent cross-check for the fast
//! path in tests and as the baseline in the `identity` benchmark; the server does not use it.

use std::time::SystemTime;

use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::error::IdentityError;
use super::verifier::{IdentitySource, IdentityVerifier, VerifiedIdentity, sha256};

impl IdentityVerifier {
    /// Verifies an `Mdm-Signature` header like [`Self::verify_signature`], but with openssl's
    /// `Pkcs7::from_der` + `verify` and without the certificate cache. `signing_time` is not
    /// reported on this path.
    pub fn verify_naive(
        &self,
        header: &[u8],
        body: &[u8],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, IdentityError> {
        let der = self.decode_header(header)?;
        let pkcs7 = Pkcs7::from_der(&der)
            .map_err(|_| IdentityError::MalformedCms("openssl cannot parse the PKCS#7"))?;
        let embedded: Vec<X509> = pkcs7
            .signed()
            .and_then(|signed| signed.certificates())
            .map(|certs| certs.iter().map(ToOwned::to_owned).collect())
            .unwrap_or_default();

        // Signature and digest only: the chain is checked below with Baton's own rules (openssl's
        // PKCS#7 verify would also demand the S/MIME signing purpose and use the system clock).
        let no_extra_certs = Stack::<X509>::new()?;
        let empty_store = X509StoreBuilder::new()?.build();
        let flags = Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY | Pkcs7Flags::NOVERIFY;
        if let Err(error) = pkcs7.verify(&no_extra_certs, &empty_store, Some(body), None, flags) {
            let digest_failure = error
                .errors()
                .iter()
                .any(|e| e.reason().is_some_and(|r| r.contains("digest")));
            return Err(if digest_failure {
                IdentityError::DigestMismatch
            } else {
                IdentityError::BadSignature
            });
        }
        let signers = pkcs7
            .signers(&no_extra_certs, Pkcs7Flags::NOVERIFY)
            .map_err(|_| IdentityError::SignerCertificateMissing)?;
        let signer = signers
            .iter()
            .next()
            .ok_or(IdentityError::SignerCertificateMissing)?;
        let signer_der = signer.to_der()?;
        let others: Vec<Vec<u8>> = embedded
            .iter()
            .map(|cert| cert.to_der())
            .collect::<Result<_, _>>()?;
        let others: Vec<&[u8]> = others
            .iter()
            .map(Vec::as_slice)
            .filter(|der| *der != signer_der.as_slice())
            .collect();
        let facts = self.anchors().verify_certificate(&signer_der, &others)?;
        self.check_dates(facts.chain_window, now)?;
        Ok(VerifiedIdentity::from_facts(
            sha256(&signer_der),
            &facts,
            None,
            IdentitySource::MdmSignature,
        ))
    }
}

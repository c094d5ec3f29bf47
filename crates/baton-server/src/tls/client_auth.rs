//! Whether the listener asks clients for a TLS certificate ([`ClientAuth`]), and the verifier it
//! uses when it does: the certificate is optional, any chain is accepted at the TLS layer (only
//! the handshake signature is checked), and the CertificateRequest names the device CAs so a
//! client offers only identities issued by them.
//!
//! MDM does not need client certificates: every check-in and command report carries an
//! `Mdm-Signature` (the enrollment profile sets `SignMessage`). Asking for one has a cost: iOS
//! then offers the installed identities, and on a shared phone a person may be asked to choose
//! one, or present the previous person's. So the default is [`ClientAuth::Off`].

use std::fmt;
use std::str::FromStr;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Whether the TLS listener sends a CertificateRequest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// No CertificateRequest: devices are identified by `Mdm-Signature` alone (the default).
    #[default]
    Off,
    /// A CertificateRequest naming the device CAs on every handshake; a client may answer
    /// without a certificate. A certificate sent is judged by [`crate::identity`].
    Optional,
}

impl ClientAuth {
    /// The setting's value as written in flags and config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Optional => "optional",
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--tls-client-auth` value other than `off` or `optional`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS client authentication must be off or optional, not {0:?}")]
pub struct ParseClientAuthError(String);

impl FromStr for ClientAuth {
    type Err = ParseClientAuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            other => Err(ParseClientAuthError(other.to_owned())),
        }
    }
}

/// Requests a client certificate, accepts any chain, and checks only the handshake signature
/// (proof that the client holds the certificate's key). Trust is decided by the identity module.
#[derive(Debug)]
pub(super) struct OptionalClientCertificate {
    pub(super) algorithms: WebPkiSupportedAlgorithms,
    /// DER subjects of the device CAs, sent as the CertificateRequest's CA list.
    pub(super) hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for OptionalClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_flag_values() {
        for value in [ClientAuth::Off, ClientAuth::Optional] {
            assert_eq!(value.as_str().parse::<ClientAuth>(), Ok(value));
        }
        assert_eq!(ClientAuth::default(), ClientAuth::Off);
        assert!("required".parse::<ClientAuth>().is_err());
        assert!("".parse::<ClientAuth>().is_err());
    }
}

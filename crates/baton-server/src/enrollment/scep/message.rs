//! SCEP message vocabulary (RFC 8894 section 3.2.1): message types, pkiStatus and failInfo values,
//! as they appear (PrintableString decimal numbers) in the signed attributes.

use std::fmt;

/// The SCEP messageType attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageType {
    /// Response to a request (3).
    CertRep,
    /// Renewal signed by an existing certificate (17).
    RenewalReq,
    /// Legacy update request (18); handled like a renewal.
    UpdateReq,
    /// Initial enrollment (19).
    PkcsReq,
    /// Poll for a pending request (20), also known as GetCertInitial.
    CertPoll,
    /// Fetch a certificate (21).
    GetCert,
    /// Fetch a CRL (22).
    GetCrl,
}

impl MessageType {
    /// The attribute text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CertRep => "3",
            Self::RenewalReq => "17",
            Self::UpdateReq => "18",
            Self::PkcsReq => "19",
            Self::CertPoll => "20",
            Self::GetCert => "21",
            Self::GetCrl => "22",
        }
    }

    /// Parses the attribute text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "3" => Self::CertRep,
            "17" => Self::RenewalReq,
            "18" => Self::UpdateReq,
            "19" => Self::PkcsReq,
            "20" => Self::CertPoll,
            "21" => Self::GetCert,
            "22" => Self::GetCrl,
            _ => return None,
        })
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::CertRep => "CertRep",
            Self::RenewalReq => "RenewalReq",
            Self::UpdateReq => "UpdateReq",
            Self::PkcsReq => "PKCSReq",
            Self::CertPoll => "CertPoll",
            Self::GetCert => "GetCert",
            Self::GetCrl => "GetCRL",
        };
        f.write_str(name)
    }
}

/// The SCEP pkiStatus attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PkiStatus {
    /// Granted (0).
    Success,
    /// Rejected (2); a failInfo says why.
    Failure,
    /// Waiting for manual approval (3).
    Pending,
}

impl PkiStatus {
    /// The attribute text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::Failure => "2",
            Self::Pending => "3",
        }
    }

    /// Parses the attribute text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "0" => Self::Success,
            "2" => Self::Failure,
            "3" => Self::Pending,
            _ => return None,
        })
    }
}

/// The SCEP failInfo attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm (0), including refused key types and sizes.
    BadAlg,
    /// Integrity check (signature, digest, decryption) failed (1).
    BadMessageCheck,
    /// Transaction not permitted or supported (2), including a wrong challenge.
    BadRequest,
    /// Time outside the allowed window (3), e.g. an expired certificate for renewal.
    BadTime,
    /// No certificate matching the criteria (4), e.g. renewal with an unknown or revoked one.
    BadCertId,
}

impl FailInfo {
    /// The attribute text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadAlg => "0",
            Self::BadMessageCheck => "1",
            Self::BadRequest => "2",
            Self::BadTime => "3",
            Self::BadCertId => "4",
        }
    }

    /// Parses the attribute text.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.trim() {
            "0" => Self::BadAlg,
            "1" => Self::BadMessageCheck,
            "2" => Self::BadRequest,
            "3" => Self::BadTime,
            "4" => Self::BadCertId,
            _ => return None,
        })
    }
}

impl fmt::Display for FailInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertId",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for t in [
            MessageType::CertRep,
            MessageType::RenewalReq,
            MessageType::UpdateReq,
            MessageType::PkcsReq,
            MessageType::CertPoll,
            MessageType::GetCert,
            MessageType::GetCrl,
        ] {
            assert_eq!(MessageType::parse(t.as_str()), Some(t));
        }
        for s in [PkiStatus::Success, PkiStatus::Failure, PkiStatus::Pending] {
            assert_eq!(PkiStatus::parse(s.as_str()), Some(s));
        }
        for f in [
            FailInfo::BadAlg,
            FailInfo::BadMessageCheck,
            FailInfo::BadRequest,
            FailInfo::BadTime,
            FailInfo::BadCertId,
        ] {
            assert_eq!(FailInfo::parse(f.as_str()), Some(f));
        }
        assert_eq!(MessageType::parse("99"), None);
        assert_eq!(PkiStatus::parse("1"), None);
    }
}

//! The re-enrollment rule (decision 0010): may the certificate of an Authenticate be bound to a
//! device whose enrollment is bound to another certificate? Pure: the facts are gathered by the
//! check-in service ([`crate::checkin`]), the verdict is data.
//!
//! A binding is *active* when the device channel is enabled: it completed a TokenUpdate since its
//! last Authenticate and has not checked out. Replacing an active binding needs a reason the
//! device's current holder or an operator gave: the old certificate was revoked, the new one is a
//! renewal queued for this very device, an operator approved a re-enrollment of it (for a
//! while), or the certificate was obtained with an enrollment token naming the device in its
//! `re_enroll` list. Anything else is refused, so a certificate obtained anonymously (open
//! enrollment) or with a token meant for another device cannot claim an enrolled UDID. A renewal
//! certificate belongs to the device it was queued for and authenticates no other.

use serde::{Deserialize, Serialize};

/// The device's binding before the Authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviousBinding {
    /// The device channel is enabled (TokenUpdate received, no CheckOut since).
    pub active: bool,
    /// The built-in CA revoked the bound certificate.
    pub revoked: bool,
}

/// What is known when a certificate authenticates for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindingFacts {
    /// The device's current binding to another certificate, if any.
    pub previous: Option<PreviousBinding>,
    /// The certificate is the one already bound to the device.
    pub same_certificate: bool,
    /// The certificate came from a renewal profile queued for this device.
    pub renewal_for_device: bool,
    /// The certificate came from a renewal profile queued for another device.
    pub renewal_for_other_device: bool,
    /// The certificate was obtained with a token that lists this device in `re_enroll`.
    pub token_names_device: bool,
    /// An operator's approval of a re-enrollment of this device is pending and unexpired.
    pub operator_approved: bool,
}

/// Why a binding is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Allowed {
    /// The device was never bound.
    NewDevice,
    /// The certificate is the one already bound (the device authenticated again).
    SameCertificate,
    /// The previous binding ended: the device checked out, or never completed its enrollment.
    PreviousEnded,
    /// The previous certificate was revoked.
    PreviousRevoked,
    /// The certificate renews the device's identity.
    Renewal,
    /// The enrollment token lists the device for re-enrollment.
    TokenReEnrollment,
    /// An operator approved a re-enrollment of the device.
    OperatorApproval,
}

impl Allowed {
    /// True when another certificate's binding is replaced.
    pub fn replaces_binding(self) -> bool {
        !matches!(self, Allowed::NewDevice | Allowed::SameCertificate)
    }

    /// True when the pending operator approval is used up by this binding.
    pub fn uses_approval(self) -> bool {
        self == Allowed::OperatorApproval
    }
}

/// Why an Authenticate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refused {
    /// The device is enrolled with another certificate and nothing allows replacing it.
    ActiveBinding,
    /// The certificate renews another device's identity (decision 0004): it is that device's.
    RenewalForAnotherDevice,
}

impl Refused {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Refused::ActiveBinding => "active_binding",
            Refused::RenewalForAnotherDevice => "renewal_for_another_device",
        }
    }
}

/// The verdict: bind (and why), or refuse.
pub fn decide(facts: &BindingFacts) -> Result<Allowed, Refused> {
    if facts.same_certificate {
        return Ok(Allowed::SameCertificate);
    }
    if facts.renewal_for_other_device {
        return Err(Refused::RenewalForAnotherDevice);
    }
    let Some(previous) = facts.previous else {
        return Ok(Allowed::NewDevice);
    };
    if previous.revoked {
        Ok(Allowed::PreviousRevoked)
    } else if !previous.active {
        Ok(Allowed::PreviousEnded)
    } else if facts.renewal_for_device {
        Ok(Allowed::Renewal)
    } else if facts.token_names_device {
        Ok(Allowed::TokenReEnrollment)
    } else if facts.operator_approved {
        Ok(Allowed::OperatorApproval)
    } else {
        Err(Refused::ActiveBinding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIVE: PreviousBinding = PreviousBinding {
        active: true,
        revoked: false,
    };

    fn facts(previous: Option<PreviousBinding>) -> BindingFacts {
        BindingFacts {
            previous,
            same_certificate: false,
            renewal_for_device: false,
            renewal_for_other_device: false,
            token_names_device: false,
            operator_approved: false,
        }
    }

    #[test]
    fn an_active_binding_is_never_replaced_without_a_reason() {
        assert_eq!(decide(&facts(Some(ACTIVE))), Err(Refused::ActiveBinding));
        assert_eq!(decide(&facts(None)), Ok(Allowed::NewDevice));
        let same = BindingFacts {
            same_certificate: true,
            ..facts(Some(ACTIVE))
        };
        assert_eq!(decide(&same), Ok(Allowed::SameCertificate));
        let stolen_renewal = BindingFacts {
            renewal_for_other_device: true,
            ..facts(None)
        };
        assert_eq!(
            decide(&stolen_renewal),
            Err(Refused::RenewalForAnotherDevice),
            "not even for a device that was never enrolled"
        );
    }

    #[test]
    fn each_reason_allows_a_replacement() {
        let ended = PreviousBinding {
            active: false,
            revoked: false,
        };
        assert_eq!(decide(&facts(Some(ended))), Ok(Allowed::PreviousEnded));
        let revoked = PreviousBinding {
            active: true,
            revoked: true,
        };
        assert_eq!(decide(&facts(Some(revoked))), Ok(Allowed::PreviousRevoked));
        for (f, want) in [
            (
                BindingFacts {
                    renewal_for_device: true,
                    ..facts(Some(ACTIVE))
                },
                Allowed::Renewal,
            ),
            (
                BindingFacts {
                    token_names_device: true,
                    ..facts(Some(ACTIVE))
                },
                Allowed::TokenReEnrollment,
            ),
            (
                BindingFacts {
                    operator_approved: true,
                    ..facts(Some(ACTIVE))
                },
                Allowed::OperatorApproval,
            ),
        ] {
            assert_eq!(decide(&f), Ok(want));
            assert!(want.replaces_binding());
        }
        // An approval is only used when nothing else allows the replacement.
        let both = BindingFacts {
            token_names_device: true,
            operator_approved: true,
            ..facts(Some(ACTIVE))
        };
        assert!(!decide(&both).unwrap().uses_approval());
    }
}

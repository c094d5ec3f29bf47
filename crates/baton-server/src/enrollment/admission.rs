//! Admission at Authenticate: may this certificate be bound to this device? Gathers the facts
//! from the store (the device's current binding, the CA registry's record of the certificate,
//! the enrollment token it was obtained with, a pending operator approval), applies the token's
//! rules and the re-enrollment rule ([`super::re_enrollment::decide`]), and audits refusals
//! (log at warn, [`super::store_re_enrollment`], webhook event `device.re_enrollment_refused`).
//!
//! Called by [`crate::checkin`] before anything is written for the Authenticate.

use std::time::SystemTime;

use baton_proto::EnrollmentId;
use baton_store::{CertHash, Store, unix_millis};

use super::profile_issuer::RENEWAL_HINT_PREFIX;
use super::re_enrollment::{Allowed, BindingFacts, PreviousBinding, Refused, decide};
use super::store_re_enrollment::{self, Refusal};
use super::store_registry::{issued_by_hash, revoked_serial};
use super::store_token::EnrollmentTokens;
use super::token::{EnrollmentToken, token_of_hint, use_of_hint};
use crate::error_response::DeviceError;
use crate::webhook::{EventPayload, EventSink, ReEnrollmentRefusedEvent};

/// What an Authenticate presents.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The device (device channel).
    pub device: &'a EnrollmentId,
    /// SHA-256 of the signing certificate.
    pub cert: CertHash,
    /// The serial number the message reports.
    pub serial_number: Option<&'a str>,
}

/// An admitted Authenticate.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Why the binding is allowed.
    pub allowed: Allowed,
    /// The certificate bound before, when another one is replaced.
    pub replaced: Option<CertHash>,
    /// The enrollment token the certificate was obtained with, and the use's number.
    pub token: Option<(EnrollmentToken, Option<u32>)>,
}

impl Admitted {
    /// True when the device's record of its enrollment token should be rewritten (a new
    /// certificate that is not a renewal of the same device).
    pub fn records_token(&self) -> bool {
        !matches!(self.allowed, Allowed::SameCertificate | Allowed::Renewal)
    }
}

fn internal(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Internal(format!("enrollment admission: {e}"))
}

/// Decides whether `candidate` may be bound; refusals are audited before they are returned.
pub fn admit(
    store: &dyn Store,
    tokens: &EnrollmentTokens,
    events: &EventSink,
    candidate: Candidate<'_>,
    now: SystemTime,
) -> Result<Admitted, DeviceError> {
    let device = candidate.device.parent();
    let current = store.enrollment_cert(&device)?;
    if current == Some(candidate.cert) {
        return Ok(Admitted {
            allowed: Allowed::SameCertificate,
            replaced: None,
            token: None,
        });
    }
    let record = issued_by_hash(store, &candidate.cert)?;
    let hint = record.as_ref().and_then(|r| r.enrollment_hint.as_deref());
    let renewal_of = hint.and_then(|h| h.strip_prefix(RENEWAL_HINT_PREFIX));
    let renewal_for_device = renewal_of.is_some_and(|d| d == device.as_str());
    let token = match hint.and_then(token_of_hint) {
        None => None,
        Some(id) => Some((
            token_rules(tokens, id, &device, candidate.serial_number)?,
            hint.and_then(use_of_hint),
        )),
    };
    let previous = match current {
        None => None,
        Some(hash) => Some(PreviousBinding {
            active: store.enrollment(&device)?.is_some_and(|e| e.enabled),
            revoked: revoked_serial(store, &hash)?.is_some(),
        }),
    };
    let mut facts = BindingFacts {
        previous,
        same_certificate: false,
        renewal_for_device,
        renewal_for_other_device: renewal_of.is_some() && !renewal_for_device,
        token_names_device: token
            .as_ref()
            .is_some_and(|(t, _)| t.allows_re_enrollment_of(&device)),
        operator_approved: false,
    };
    let verdict = match decide(&facts) {
        Err(Refused::ActiveBinding) => {
            // The approval is only used when nothing else allows the replacement.
            facts.operator_approved = store_re_enrollment::take_approval(store, &device, now)?;
            decide(&facts)
        }
        other => other,
    };
    match verdict {
        Ok(allowed) => Ok(Admitted {
            allowed,
            replaced: current.filter(|_| allowed.replaces_binding()),
            token,
        }),
        Err(reason) => {
            let refusal = Refusal {
                at_ms: unix_millis(now),
                reason,
                cert_sha256: hex::encode(candidate.cert.0),
                cert_serial: record.as_ref().map(|r| r.serial),
                serial_number: candidate.serial_number.map(str::to_owned),
                enrollment_token: token.as_ref().map(|(t, _)| t.id.clone()),
            };
            let (stored, due) =
                store_re_enrollment::record_refusal(store, &device, refusal.clone())?;
            tracing::warn!(
                enrollment_id = %device,
                reason = reason.code(),
                cert_sha256 = %refusal.cert_sha256,
                cert_serial = refusal.cert_serial,
                serial_number = refusal.serial_number.as_deref().unwrap_or(""),
                enrollment_token = refusal.enrollment_token.as_deref().unwrap_or(""),
                refusals = stored.refusals,
                "authenticate refused by the re-enrollment rule (an active binding to another \
                 certificate: approve a re-enrollment to allow it)"
            );
            if due {
                events.record(
                    &device,
                    EventPayload::ReEnrollmentRefused(ReEnrollmentRefusedEvent {
                        reason: reason.code().to_owned(),
                        cert_sha256: refusal.cert_sha256,
                        serial_number: refusal.serial_number,
                        enrollment_token: refusal.enrollment_token,
                        refusals: stored.refusals,
                    }),
                    now,
                );
            }
            Err(DeviceError::ReEnrollmentRefused {
                device,
                reason: reason.code(),
            })
        }
    }
}

/// The token `id` when it still allows an enrollment of `device` reporting `serial`: it exists,
/// is not revoked, and its serial allow-list (if any) names the serial. Expiry and uses were
/// checked when the profile was downloaded.
fn token_rules(
    tokens: &EnrollmentTokens,
    id: &str,
    device: &EnrollmentId,
    serial: Option<&str>,
) -> Result<EnrollmentToken, DeviceError> {
    let refuse = |reason: &'static str| {
        tracing::warn!(enrollment_id = %device, token_id = id, reason,
            serial_number = serial.unwrap_or(""), "authenticate refused by its enrollment token");
        DeviceError::EnrollmentTokenRefused {
            token: id.to_owned(),
            reason,
        }
    };
    let Some(token) = tokens.get(id).map_err(internal)? else {
        return Err(refuse("unknown_token"));
    };
    if token.revoked_at_ms.is_some() {
        return Err(refuse("token_revoked"));
    }
    if !token.allows_serial(serial) {
        return Err(refuse("serial_not_allowed"));
    }
    Ok(token)
}

//! The JSON documents a webhook receives.

use std::time::SystemTime;

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, Status};
use serde::{Deserialize, Serialize};

use crate::timestamp::rfc3339;

/// One event, as POSTed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Unique id of the event (also sent as `X-Baton-Delivery`); receivers de-duplicate on it.
    pub id: String,
    /// When the server recorded it (RFC 3339).
    pub created_at: String,
    /// The channel the event is about.
    pub enrollment_id: EnrollmentId,
    /// What happened.
    #[serde(flatten)]
    pub payload: EventPayload,
    /// True when the payload was cut to fit [`MAX_EVENT_BYTES`]: the ErrorChain (or, if that
    /// was not enough, every field but the type) was left out. Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Largest JSON document POSTed for one event; larger events are cut (see
/// [`WebhookEvent::truncated`]).
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Fields an event keeps when even its payload without the ErrorChain is too large.
const KEPT_WHEN_CUT: [&str; 7] = [
    "id",
    "created_at",
    "enrollment_id",
    "type",
    "command_uuid",
    "status",
    "truncated",
];

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum EventPayload {
    /// A check-in message was accepted.
    #[serde(rename = "checkin")]
    Checkin {
        /// Its MessageType.
        message_type: String,
        /// For TokenUpdate: true when this one enabled the channel.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        first_token_update: Option<bool>,
    },
    /// A device answered a command (any status but Idle).
    #[serde(rename = "command.result")]
    CommandResult {
        /// The command.
        command_uuid: CommandUuid,
        /// The reported status.
        status: Status,
        /// The command's RequestType, when known.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        request_type: Option<String>,
        /// The ErrorChain, for Error reports.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        error_chain: Vec<ErrorChainItem>,
    },
    /// A sign-in log entry was written (every attempt and automatic sign-out).
    #[serde(rename = "sign_in.logged")]
    SignInLogged(crate::sign_in_log::SignInEntry),
    /// An identity renewal attempt failed; another follows at `next_attempt_at`.
    #[serde(rename = "identity_renewal.failed")]
    IdentityRenewalFailed(RenewalEvent),
    /// A device's identity expired before its renewal completed: the device can no longer
    /// reach the server and must enroll again.
    #[serde(rename = "identity_renewal.expired")]
    IdentityRenewalExpired(RenewalEvent),
    /// An Authenticate tried to replace an enrolled device's active binding and was refused
    /// (at most one event per device per minute; `refusals` counts them all).
    #[serde(rename = "device.re_enrollment_refused")]
    ReEnrollmentRefused(ReEnrollmentRefusedEvent),
    /// A sign-out's hand-off check found something of the previous session on the device
    /// (sent when first found and again when Baton gives up).
    #[serde(rename = "device.hand_off_not_clean")]
    HandOffNotClean(HandOffEvent),
    /// A hand-off that was not clean was verified clean by a later check.
    #[serde(rename = "device.hand_off_clean")]
    HandOffClean(HandOffEvent),
}

/// A hand-off check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandOffEvent {
    /// `not_clean` (retrying), `given_up` or `clean`.
    pub state: crate::reconciler::hand_off::HandOffState,
    /// Who was signed out.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    /// What remains on the device.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub remaining: Vec<crate::reconciler::hand_off::Remaining>,
    /// Checks that found something so far.
    pub rounds_not_clean: u32,
    /// When the next check starts (RFC 3339), while retrying.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_check_at: Option<String>,
}

/// A refused re-enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReEnrollmentRefusedEvent {
    /// The rule's reason code (`active_binding`, `renewal_for_another_device`).
    pub reason: String,
    /// SHA-256 of the refused certificate, hex.
    pub cert_sha256: String,
    /// The serial number the Authenticate reported.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub serial_number: Option<String>,
    /// The enrollment token the certificate was obtained with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub enrollment_token: Option<String>,
    /// Refused attempts for this device so far.
    pub refusals: u64,
}

/// An identity renewal event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalEvent {
    /// The failed attempt's InstallProfile.
    pub command_uuid: CommandUuid,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the latest attempt failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// When the next attempt is queued (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_attempt_at: Option<String>,
    /// When the identity being renewed expires (RFC 3339).
    pub identity_expires_at: String,
    /// Why, as a code: `mdm_profile_replacement_refused` when the device refused the renewal
    /// profile (12012) because it differs from the profile it enrolled with.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
}

impl EventPayload {
    /// The event type (`checkin`, `command.result`, `sign_in.logged`,
    /// `identity_renewal.failed`, `identity_renewal.expired`, `device.re_enrollment_refused`,
    /// `device.hand_off_not_clean`, `device.hand_off_clean`),
    /// sent as `X-Baton-Event`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventPayload::Checkin { .. } => "checkin",
            EventPayload::CommandResult { .. } => "command.result",
            EventPayload::SignInLogged(_) => "sign_in.logged",
            EventPayload::IdentityRenewalFailed(_) => "identity_renewal.failed",
            EventPayload::IdentityRenewalExpired(_) => "identity_renewal.expired",
            EventPayload::ReEnrollmentRefused(_) => "device.re_enrollment_refused",
            EventPayload::HandOffNotClean(_) => "device.hand_off_not_clean",
            EventPayload::HandOffClean(_) => "device.hand_off_clean",
        }
    }
}

impl WebhookEvent {
    /// A new event with a fresh id.
    pub fn new(enrollment_id: EnrollmentId, payload: EventPayload, now: SystemTime) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: rfc3339(now),
            enrollment_id,
            payload,
            truncated: false,
        }
    }

    /// The JSON body to POST, at most [`MAX_EVENT_BYTES`]: the event as it is when it fits;
    /// else with `truncated: true` and without its ErrorChain; else only the fields that say
    /// what the event is about (id, time, enrollment, type, CommandUUID, status). The flag
    /// returned says whether it was cut.
    pub fn to_bounded_json(&self) -> Result<(Vec<u8>, bool), serde_json::Error> {
        let body = serde_json::to_vec(self)?;
        if body.len() <= MAX_EVENT_BYTES {
            return Ok((body, false));
        }
        let mut value = serde_json::to_value(self)?;
        if let Some(fields) = value.as_object_mut() {
            fields.insert("truncated".into(), serde_json::Value::Bool(true));
            fields.remove("error_chain");
        }
        let body = serde_json::to_vec(&value)?;
        if body.len() <= MAX_EVENT_BYTES {
            return Ok((body, true));
        }
        if let Some(fields) = value.as_object_mut() {
            fields
                .retain(|k, v| KEPT_WHEN_CUT.contains(&k.as_str()) && v.to_string().len() <= 1024);
        }
        Ok((serde_json::to_vec(&value)?, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_result_serializes_flat_with_its_type() {
        let event = WebhookEvent::new(
            EnrollmentId::device("UDID-1").unwrap(),
            EventPayload::CommandResult {
                command_uuid: CommandUuid::new("C-1").unwrap(),
                status: Status::Acknowledged,
                request_type: Some("ProfileList".into()),
                error_chain: Vec::new(),
            },
            SystemTime::UNIX_EPOCH,
        );
        let json: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "command.result");
        assert_eq!(json["status"], "Acknowledged");
        assert_eq!(json["enrollment_id"], "UDID-1");
        assert_eq!(json["created_at"], "1970-01-01T00:00:00.000Z");
        assert!(json.get("error_chain").is_none());
        assert!(json.get("truncated").is_none());
        let back: WebhookEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn oversize_events_are_cut_and_flagged() {
        let item = ErrorChainItem {
            code: 1,
            domain: "D".into(),
            localized_description: Some("x".repeat(MAX_EVENT_BYTES)),
            us_english_description: None,
        };
        let event = WebhookEvent::new(
            EnrollmentId::device("UDID-1").unwrap(),
            EventPayload::CommandResult {
                command_uuid: CommandUuid::new("C-1").unwrap(),
                status: Status::Error,
                request_type: Some("InstallProfile".into()),
                error_chain: vec![item],
            },
            SystemTime::UNIX_EPOCH,
        );
        let (body, cut) = event.to_bounded_json().unwrap();
        assert!(cut);
        assert!(body.len() <= MAX_EVENT_BYTES);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["truncated"], true);
        assert_eq!(json["type"], "command.result");
        assert_eq!(json["command_uuid"], "C-1");
        assert_eq!(json["request_type"], "InstallProfile");
        assert!(json.get("error_chain").is_none());
        // Still a valid event for receivers that decode it.
        let back: WebhookEvent = serde_json::from_slice(&body).unwrap();
        assert!(back.truncated);
        let (small, cut) = WebhookEvent::new(
            EnrollmentId::device("UDID-1").unwrap(),
            EventPayload::Checkin {
                message_type: "Authenticate".into(),
                first_token_update: None,
            },
            SystemTime::UNIX_EPOCH,
        )
        .to_bounded_json()
        .unwrap();
        assert!(!cut && small.len() < 300);
    }
}

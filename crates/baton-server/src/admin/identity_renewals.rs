//! Device identities and their renewal as operators see them: the `identity` and `renewal`
//! fields of a device ([`identity_of`], [`RenewalView`]) and `GET /api/v1/identity-renewals`
//! (every device's renewal, `?state=failed` for the ones to look at).

use axum::Json;
use axum::extract::{Query, State};
use baton_proto::{CommandUuid, EnrollmentId};
use baton_store::Store;
use serde::{Deserialize, Serialize};

use super::blocking;
use crate::enrollment::enrollment_terms::EnrollmentTerms;
use crate::enrollment::renewal;
use crate::enrollment::renewal_record::{RenewalRecord, RenewalState};
use crate::enrollment::store_registry::issued_by_hash;
use crate::enrollment::store_terms;
use crate::error_response::ApiError;
use crate::state::AppState;
use crate::timestamp::{rfc3339, rfc3339_millis};

/// The identity certificate a device is bound to, when the built-in CA issued it.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityView {
    /// Its serial.
    pub serial: u64,
    /// Its `notAfter` (RFC 3339).
    pub expires_at: String,
}

/// A device's identity renewal.
#[derive(Debug, Clone, Serialize)]
pub struct RenewalView {
    /// The device.
    pub device: EnrollmentId,
    /// `queued`, `acknowledged`, `failed`, `completed` or `expired`.
    pub state: RenewalState,
    /// Serial of the identity being renewed.
    pub renewing_serial: u64,
    /// When that identity expires (RFC 3339).
    pub identity_expires_at: String,
    /// Attempts queued so far.
    pub attempts: u32,
    /// The current attempt's InstallProfile.
    pub command_uuid: CommandUuid,
    /// When the first attempt was queued.
    pub first_queued_at: String,
    /// When the current attempt was queued.
    pub queued_at: String,
    /// When the current attempt was acknowledged.
    pub acknowledged_at: Option<String>,
    /// Why the latest failed attempt failed.
    pub last_error: Option<String>,
    /// When it failed.
    pub failed_at: Option<String>,
    /// When the next attempt is queued (state `failed`).
    pub next_attempt_at: Option<String>,
    /// When the renewal completed or expired.
    pub finished_at: Option<String>,
    /// The latest failure was the device refusing the renewal profile (iOS 12012): it differs
    /// from the profile the device enrolled with.
    pub replacement_refused: bool,
    /// What the device enrolled with (ServerURL, CheckInURL, Topic, AccessRights, per-user
    /// connections), which its renewal profiles keep; none for devices enrolled before Baton
    /// recorded it.
    pub enrolled_with: Option<EnrollmentTerms>,
    /// The fields of `enrolled_with` that differ from what the server issues now (the public
    /// URL or topic changed): the renewal keeps the enrolled values, so the device keeps using
    /// them until it enrolls again. In `GET /api/v1/identity-renewals` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub differs_from_current: Option<Vec<&'static str>>,
}

impl From<&RenewalRecord> for RenewalView {
    fn from(r: &RenewalRecord) -> Self {
        Self {
            device: r.device.clone(),
            state: r.state,
            renewing_serial: r.serial,
            identity_expires_at: rfc3339(r.expires_at()),
            attempts: r.attempts,
            command_uuid: r.command_uuid.clone(),
            first_queued_at: rfc3339_millis(r.first_queued_at_ms),
            queued_at: rfc3339_millis(r.queued_at_ms),
            acknowledged_at: r.acknowledged_at_ms.map(rfc3339_millis),
            last_error: r.last_error.clone(),
            failed_at: r.failed_at_ms.map(rfc3339_millis),
            next_attempt_at: r.next_attempt_at_ms.map(rfc3339_millis),
            finished_at: r.finished_at_ms.map(rfc3339_millis),
            replacement_refused: r.replacement_refused,
            enrolled_with: None,
            differs_from_current: None,
        }
    }
}

impl RenewalView {
    /// Adds what the device enrolled with, compared with `current` when given (URLs and
    /// rights from the public URL; the topic only when `current` has one).
    fn with_terms(
        mut self,
        store: &dyn Store,
        current: Option<&CurrentTerms>,
    ) -> Result<Self, ApiError> {
        let Some(enrolled) = store_terms::get(store, &self.device)? else {
            return Ok(self);
        };
        if let Some(current) = current {
            let now = EnrollmentTerms::issued_now(
                &current.public_url,
                current.topic.as_deref().unwrap_or(&enrolled.topic),
            );
            self.differs_from_current =
                Some(enrolled.drift(&now).iter().map(|d| d.field()).collect());
        }
        self.enrolled_with = Some(enrolled);
        Ok(self)
    }
}

/// What profiles say now, as far as the admin API knows: the public URL and the stored push
/// certificate's topic.
struct CurrentTerms {
    public_url: String,
    topic: Option<String>,
}

impl CurrentTerms {
    fn of(state: &crate::state::Services) -> Result<Self, ApiError> {
        Ok(Self {
            public_url: state.enrollment_tokens.public_url().to_owned(),
            topic: state
                .store
                .push_certificates()?
                .into_iter()
                .next()
                .map(|c| c.topic.as_str().to_owned()),
        })
    }
}

/// The built-in CA identity `device` is bound to (none: unbound, or another CA's).
pub fn identity_of(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<Option<IdentityView>, ApiError> {
    let Some(hash) = store.enrollment_cert(device)? else {
        return Ok(None);
    };
    Ok(issued_by_hash(store, &hash)?.map(|record| IdentityView {
        serial: record.serial,
        expires_at: rfc3339(record.not_after),
    }))
}

/// The renewal of `device`, if it ever needed one.
pub fn renewal_of(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<Option<RenewalView>, ApiError> {
    let Some(record) = renewal::record_of(store, device)? else {
        return Ok(None);
    };
    Ok(Some(RenewalView::from(&record).with_terms(store, None)?))
}

/// `?state=failed`.
#[derive(Debug, Deserialize)]
pub struct RenewalQuery {
    /// Only renewals in this state.
    pub state: Option<String>,
}

/// `GET /api/v1/identity-renewals[?state=S]`: every device's renewal, soonest expiry first.
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<RenewalQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = q
        .state
        .as_deref()
        .map(|s| {
            RenewalState::parse(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown state {s:?} (queued, acknowledged, failed, completed, expired)"
                ))
            })
        })
        .transpose()?;
    let views: Vec<RenewalView> = blocking(move || {
        let store = state.store.as_ref();
        let mut records = renewal::records(store, filter)?;
        records.sort_by(|a, b| (a.expires_at_ms, &a.device).cmp(&(b.expires_at_ms, &b.device)));
        let current = CurrentTerms::of(&state)?;
        records
            .iter()
            .map(|r| RenewalView::from(r).with_terms(store, Some(&current)))
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(Json(serde_json::json!({ "renewals": views })))
}

//! `GET /api/v1/devices` and `GET /api/v1/devices/{id}`: enrollments as operators see them.
//!
//! Device facts (serial, model, OS, name) come from the device's DeviceInformation answer
//! ([`crate::reconciler::device_info`]) and the stored Authenticate message. The `assignee`
//! is read from keyspace collection [`ASSIGNEE_COLLECTION`] (written by the sign-in feature);
//! a device nobody signed in to is assigned to `nobody`. The identity certificate and its renewal
//! come from [`super::identity_renewals`]; the enrollment token it enrolled with and its
//! re-enrollment state from [`crate::enrollment`].

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use baton_proto::{CheckinMessage, EnrollmentId, Limits};
use baton_store::{Collection, Enrollment, Store};
use serde::Serialize;

use super::blocking;
use super::identity_renewals::{IdentityView, RenewalView, identity_of, renewal_of};
use crate::enrollment::store_re_enrollment::{self, ReEnrollmentRecord};
use crate::enrollment::store_token::device_token;
use crate::error_response::ApiError;
use crate::reconciler::device_info::{self, DeviceInfo};
use crate::reconciler::settings_result::{self, FailedSetting};
use crate::state::AppState;
use crate::timestamp::rfc3339_millis;

/// Keyspace collection: device id -> username of the current assignee (UTF-8).
pub const ASSIGNEE_COLLECTION: &str = "device_assignee";
/// Keyspace collection: channel id -> present when APNs reported the push token invalid.
pub const INVALID_PUSH_TOKEN_COLLECTION: &str = "push_token_invalid";
/// The assignee of a device nobody is signed in to.
pub const NOBODY: &str = "nobody";

/// Facts the device reported: its DeviceInformation answer (after enrollment Baton asks for
/// it: iOS's Authenticate has no `DeviceName`, `Model` or `ModelName`), else its Authenticate
/// message. A fact the device has not reported yet is null.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeviceFacts {
    /// `UDID`.
    pub udid: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// The product code (`ProductName`, e.g. `iPad13,18`; a Mac's Authenticate `Model`).
    pub model: Option<String>,
    /// `ModelName` (e.g. `iPad`), from DeviceInformation on iOS.
    pub model_name: Option<String>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `DeviceName`, from DeviceInformation on iOS.
    pub device_name: Option<String>,
    /// `IsSupervised` (DeviceInformation).
    pub supervised: Option<bool>,
    /// `IsMultiUser`: a Shared iPad (DeviceInformation).
    pub shared_ipad: Option<bool>,
    /// The device's DeviceInformation answer: `pending` (not answered yet), `answered`, or
    /// `refused` (its status; facts then come from Authenticate alone).
    pub device_information: &'static str,
}

impl DeviceFacts {
    fn of(record: &Enrollment, info: Option<DeviceInfo>) -> Self {
        let mut facts = match record
            .authenticate_raw
            .as_ref()
            .map(|raw| CheckinMessage::decode(raw, &Limits::default()))
        {
            Some(Ok(CheckinMessage::Authenticate(a))) => Self {
                udid: a.enrollment.udid().map(str::to_owned),
                serial_number: a.serial_number,
                model: a.product_name.or(a.model),
                model_name: a.model_name,
                os_version: a.os_version,
                build_version: a.build_version,
                device_name: a.device_name,
                ..Self::default()
            },
            _ => Self::default(),
        };
        facts.device_information = "pending";
        if let Some(i) = info {
            facts.device_information = if i.refused.is_some() {
                "refused"
            } else {
                "answered"
            };
            let merge = |a: &mut Option<String>, b: Option<String>| {
                if b.is_some() {
                    *a = b;
                }
            };
            merge(&mut facts.serial_number, i.serial_number);
            merge(&mut facts.model, i.product_name);
            merge(&mut facts.model_name, i.model_name);
            merge(&mut facts.os_version, i.os_version);
            merge(&mut facts.build_version, i.build_version);
            merge(&mut facts.device_name, i.device_name);
            facts.supervised = i.is_supervised;
            facts.shared_ipad = i.is_multi_user;
        }
        facts
    }
}

/// One channel of a device.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelView {
    /// The enrollment id (`UDID` or `UDID:user`).
    pub id: EnrollmentId,
    /// The user part, for a user channel.
    pub user: Option<String>,
    /// False until the first TokenUpdate and after CheckOut.
    pub enabled: bool,
    /// A push token is stored.
    pub push_token_present: bool,
    /// APNs reported the push token invalid.
    pub push_token_invalid: bool,
    /// The APNs topic.
    pub topic: Option<String>,
    /// TokenUpdates since Authenticate.
    pub token_update_tally: u64,
    /// When enrolled (RFC 3339).
    pub enrolled_at: String,
    /// Last message from this channel (RFC 3339).
    pub last_seen: Option<String>,
}

/// A device with its facts and channels.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// The device's enrollment id.
    pub id: EnrollmentId,
    /// Facts from DeviceInformation and Authenticate.
    #[serde(flatten)]
    pub facts: DeviceFacts,
    /// The device channel is enabled.
    pub enabled: bool,
    /// Newest last-seen time over all channels (RFC 3339).
    pub last_seen: Option<String>,
    /// The device channel has a push token.
    pub push_token_present: bool,
    /// APNs reported the device channel's push token invalid.
    pub push_token_invalid: bool,
    /// Who the device is assigned to (`nobody` when signed out).
    pub assignee: String,
    /// The identity certificate the device is bound to, when the built-in CA issued it.
    pub identity: Option<IdentityView>,
    /// The device's identity renewal, if it ever needed one.
    pub renewal: Option<RenewalView>,
    /// The enrollment token the device enrolled with (none: open enrollment, the static SCEP
    /// challenge, or a certificate from another CA).
    pub enrollment_token: Option<EnrollmentTokenRef>,
    /// A pending re-enrollment approval and refused re-enrollment attempts, if any.
    pub re_enrollment: Option<ReEnrollmentView>,
    /// Settings entries the device refused, by Settings catalog item (iOS acknowledges the
    /// command and fails single items); retried under the retry policy.
    pub settings_failures: BTreeMap<String, Vec<FailedSetting>>,
    /// The device channel and the user channels.
    pub channels: Vec<ChannelView>,
}

/// The enrollment token a device enrolled with.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollmentTokenRef {
    /// The token's id.
    pub id: String,
    /// Its label when the device enrolled.
    pub label: String,
}

/// A device's re-enrollment state (decision 0010).
#[derive(Debug, Clone, Serialize)]
pub struct ReEnrollmentView {
    /// Until when an operator's approval lets a new certificate replace the binding
    /// (RFC 3339), if one is pending.
    pub approved_until: Option<String>,
    /// Authenticates refused because the device is enrolled with another certificate.
    pub refusals: u64,
    /// The last refused attempt.
    pub last_refused: Option<RefusalView>,
}

/// A refused re-enrollment attempt.
#[derive(Debug, Clone, Serialize)]
pub struct RefusalView {
    /// When (RFC 3339).
    pub at: String,
    /// Why (`active_binding`, `renewal_for_another_device`).
    pub reason: &'static str,
    /// SHA-256 of the refused certificate.
    pub cert_sha256: String,
    /// Its serial at the built-in CA.
    pub cert_serial: Option<u64>,
    /// The serial number the Authenticate reported.
    pub serial_number: Option<String>,
    /// The enrollment token the certificate was obtained with.
    pub enrollment_token: Option<String>,
}

impl ReEnrollmentView {
    fn of(record: &ReEnrollmentRecord) -> Option<Self> {
        if record.approval.is_none() && record.last_refusal.is_none() {
            return None;
        }
        Some(Self {
            approved_until: record
                .approval
                .as_ref()
                .map(|a| rfc3339_millis(a.approved_until_ms)),
            refusals: record.refusals,
            last_refused: record.last_refusal.as_ref().map(|r| RefusalView {
                at: rfc3339_millis(r.at_ms),
                reason: r.reason.code(),
                cert_sha256: r.cert_sha256.clone(),
                cert_serial: r.cert_serial,
                serial_number: r.serial_number.clone(),
                enrollment_token: r.enrollment_token.clone(),
            }),
        })
    }
}

fn channel_view(store: &dyn Store, e: &Enrollment) -> Result<ChannelView, ApiError> {
    let invalid = Collection::new(INVALID_PUSH_TOKEN_COLLECTION)?;
    Ok(ChannelView {
        id: e.id.clone(),
        user: e.id.user_part().map(str::to_owned),
        enabled: e.enabled,
        push_token_present: e.push_token.is_some(),
        push_token_invalid: store.get(&invalid, e.id.as_str().as_bytes())?.is_some(),
        topic: e.topic.as_ref().map(|t| t.as_str().to_owned()),
        token_update_tally: e.token_update_tally,
        enrolled_at: rfc3339_millis(e.enrolled_at),
        last_seen: e.last_seen.map(rfc3339_millis),
    })
}

/// Builds the view of one device from its channels (device channel first).
pub fn device_view(
    store: &dyn Store,
    channels: &[Enrollment],
) -> Result<Option<DeviceView>, ApiError> {
    let Some(device) = channels.iter().find(|c| !c.id.is_user_channel()) else {
        return Ok(None);
    };
    let assignees = Collection::new(ASSIGNEE_COLLECTION)?;
    let assignee = store
        .get(&assignees, device.id.as_str().as_bytes())?
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_else(|| NOBODY.to_owned());
    let views = channels
        .iter()
        .map(|c| channel_view(store, c))
        .collect::<Result<Vec<_>, _>>()?;
    let device_channel = views.iter().find(|c| c.user.is_none());
    Ok(Some(DeviceView {
        id: device.id.clone(),
        facts: DeviceFacts::of(device, device_info::of(store, &device.id)?),
        enabled: device.enabled,
        last_seen: channels
            .iter()
            .filter_map(|c| c.last_seen)
            .max()
            .map(rfc3339_millis),
        push_token_present: device_channel.is_some_and(|c| c.push_token_present),
        push_token_invalid: device_channel.is_some_and(|c| c.push_token_invalid),
        assignee,
        identity: identity_of(store, &device.id)?,
        renewal: renewal_of(store, &device.id)?,
        enrollment_token: device_token(store, &device.id)?.map(|t| EnrollmentTokenRef {
            id: t.id,
            label: t.label,
        }),
        re_enrollment: ReEnrollmentView::of(&store_re_enrollment::get(store, &device.id)?),
        settings_failures: settings_result::of(store, &device.id)?
            .into_iter()
            .collect(),
        channels: views,
    }))
}

/// Parses an `{id}` path segment.
pub(crate) fn parse_id(raw: &str) -> Result<EnrollmentId, ApiError> {
    EnrollmentId::parse(raw).map_err(|e| ApiError::BadRequest(format!("invalid id: {e}")))
}

/// `GET /api/v1/devices`: every device with its channels.
pub async fn list(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let devices = blocking(move || {
        let store = state.store.as_ref();
        let mut by_device: BTreeMap<String, Vec<Enrollment>> = BTreeMap::new();
        for e in store.enrollments()? {
            by_device
                .entry(e.id.device_part().to_owned())
                .or_default()
                .push(e);
        }
        let mut out = Vec::new();
        for channels in by_device.values() {
            if let Some(view) = device_view(store, channels)? {
                out.push(view);
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(serde_json::json!({ "devices": devices })))
}

/// `GET /api/v1/devices/{id}`: one device (a user-channel id shows its device).
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let id = parse_id(&id)?;
    let view = blocking(move || {
        let store = state.store.as_ref();
        let channels = store.device_channels(&id.parent())?;
        device_view(store, &channels)?
            .ok_or_else(|| ApiError::NotFound(format!("unknown device {id}")))
    })
    .await?;
    Ok(Json(view))
}

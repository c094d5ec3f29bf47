//! The check-in endpoint's core (`PUT /mdm/checkin`), synchronous and HTTP-free: verify the
//! sender, decode the message once, apply it to the store, answer.
//!
//! - Authenticate: admitted first ([`crate::enrollment::admission`]: the enrollment token's
//!   rules, and decision 0010's re-enrollment rule: an active binding to another certificate is
//!   never silently replaced; refused with 403). Then the device channel is (re-)created
//!   disabled, its queues cleared, and the certificate bound to it; the signed-in person is
//!   signed out (`re_enrolled`) and the portal token rotated. A replaced certificate is revoked
//!   and the escrowed bootstrap token dropped. The token the device enrolled with is recorded,
//!   and the device joins the token's device group.
//! - TokenUpdate (device or user channel): push token, PushMagic and topic stored; the first one
//!   enables the channel.
//! - CheckOut: the channel (and a device's user channels) disabled.
//! - GetBootstrapToken / SetBootstrapToken: the escrowed token (keyspace `bootstrap_tokens`).
//! - DeclarativeManagement: a minimal valid answer (no declarations).
//! - UserAuthenticate: 410, Apple's documented "no digest challenge" answer (the device then does
//!   not ask again for that user).
//! - GetToken: an empty dictionary (no token services are offered).
//!
//! Everything but Authenticate requires the device to be known and the certificate bound to it.

use std::time::SystemTime;

use axum::http::StatusCode;
use baton_assign::NOBODY_USERNAME;
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{Authenticate, CheckinMessage, EnrollmentId, TokenUpdate, to_xml};
use baton_store::{AuthenticateRecord, Collection, KeyspaceBatch, Store, TokenUpdateRecord};

use crate::device_identity::{self, DeviceRequest, cert_hash};
use crate::device_reply::DeviceReply;
use crate::directory::{GroupJoin, add_device_member};
use crate::enrollment::admission::{self, Candidate};
use crate::enrollment::re_enrollment::Allowed;
use crate::enrollment::store_token;
use crate::enrollment::token::EnrollmentToken;
use crate::error_response::DeviceError;
use crate::identity::VerifiedIdentity;
use crate::sign_in_log::{ReasonCode, SignInEntry, SignInHow, SignInResult};
use crate::state::Services;
use crate::webhook::EventPayload;

/// Keyspace collection of escrowed bootstrap tokens, by device id. Secrets.
pub const BOOTSTRAP_TOKEN_COLLECTION: &str = "bootstrap_tokens";

/// The token the minimal declarative-management answer reports.
const EMPTY_DECLARATIONS_TOKEN: &str = "baton-no-declarations";

/// Handles one check-in request.
pub fn handle(
    services: &Services,
    request: &DeviceRequest,
    now: SystemTime,
) -> Result<DeviceReply, DeviceError> {
    let identity = device_identity::verify(&services.verifier, request, now)?;
    let message = CheckinMessage::decode(&request.body, &services.plist_limits)?;
    let store = services.store.as_ref();
    let id = message.enrollment_id().clone();
    let mut first_token_update = None;
    let reply = match &message {
        CheckinMessage::Authenticate(m) => authenticate(services, &identity, m, request, now)?,
        other => {
            device_identity::check_binding(store, &identity, &id, now)?;
            if store.enrollment(&id.parent())?.is_none() {
                return Err(DeviceError::UnknownEnrollment(id.parent()));
            }
            match other {
                CheckinMessage::TokenUpdate(m) => {
                    let first = token_update(services, m, request, now)?;
                    if first && let Err(error) = services.reconciler.channel_enabled(&id, now) {
                        tracing::warn!(enrollment_id = %id, %error, "token update: reconcile failed");
                    }
                    first_token_update = Some(first);
                    DeviceReply::empty()
                }
                CheckinMessage::CheckOut(_) => {
                    store.check_out(&id, now)?;
                    tracing::info!(enrollment_id = %id, "check-out: enrollment disabled");
                    if !id.is_user_channel() {
                        revoke_identity(services, &identity, &id, now)?;
                        let cancelled = cancel_queued(services, &id, now)?;
                        end_session(services, &id, now, Ending::CheckedOut);
                        tracing::info!(enrollment_id = %id, cancelled_commands = cancelled,
                            "check-out: the device left management; its queue and session ended");
                    }
                    DeviceReply::empty()
                }
                CheckinMessage::GetBootstrapToken(_) => get_bootstrap_token(store, &id)?,
                CheckinMessage::SetBootstrapToken(m) => {
                    let collection = Collection::new(BOOTSTRAP_TOKEN_COLLECTION)?;
                    let key = id.parent();
                    match &m.bootstrap_token {
                        Some(token) => store.put(&collection, key.as_str().as_bytes(), token)?,
                        None => {
                            store.delete(&collection, key.as_str().as_bytes())?;
                        }
                    }
                    DeviceReply::empty()
                }
                CheckinMessage::DeclarativeManagement(m) => declarative_management(&m.endpoint),
                CheckinMessage::UserAuthenticate(_) => DeviceReply {
                    status: StatusCode::GONE,
                    content_type: None,
                    body: Vec::new(),
                },
                _ => empty_dictionary()?,
            }
        }
    };
    store.touch(&id, now)?;
    services.events.record(
        &id,
        EventPayload::Checkin {
            message_type: message.message_type().as_str().to_owned(),
            first_token_update,
        },
        now,
    );
    Ok(reply)
}

fn authenticate(
    services: &Services,
    identity: &VerifiedIdentity,
    m: &Authenticate,
    request: &DeviceRequest,
    now: SystemTime,
) -> Result<DeviceReply, DeviceError> {
    let id = m.enrollment.id();
    if id.is_user_channel() {
        return Err(DeviceError::InvalidChannel(
            "Authenticate must come from a device channel",
        ));
    }
    let store = services.store.as_ref();
    device_identity::check_bindable(store, identity, id)?;
    let hash = cert_hash(identity);
    let admitted = admission::admit(
        store,
        &services.enrollment_tokens,
        &services.events,
        Candidate {
            device: id,
            cert: hash,
            serial_number: m.serial_number.as_deref(),
        },
        now,
    )?;
    let cleared = queued_on_device(store, id)?;
    store.authenticate(
        &AuthenticateRecord {
            id: id.clone(),
            topic: m.topic.clone(),
            raw: request.body.to_vec(),
        },
        now,
    )?;
    store.bind_certificate(id, &hash)?;
    services.metrics.add_queue_depth(-cleared);
    if let Some(previous) = admitted.replaced {
        replace_identity(services, id, previous, admitted.allowed, now)?;
    }
    if admitted.records_token() {
        record_token(services, id, admitted.token.as_ref(), now);
    }
    record_terms(services, id, &m.topic, admitted.allowed);
    end_session(services, id, now, Ending::ReEnrolled);
    tracing::info!(
        enrollment_id = %id,
        serial = m.serial_number.as_deref().unwrap_or(""),
        model = m.model.as_deref().unwrap_or(""),
        cert_sha256 = %identity.cert_sha256_hex(),
        admitted = ?admitted.allowed,
        enrollment_token = admitted.token.as_ref().map_or("", |(t, _)| t.id.as_str()),
        cleared_commands = cleared,
        "authenticate: enrollment created, disabled until TokenUpdate"
    );
    Ok(DeviceReply::empty())
}

/// Records the terms the device enrolled with (what a profile issued now says, with the topic it
/// reports), which its renewal profiles keep. A renewal or a repeated Authenticate with the same
/// certificate installed no new enrollment profile: the recorded terms stay. Failures are
/// logged: the enrollment itself stands (the renewal then uses the current values).
fn record_terms(
    services: &Services,
    id: &EnrollmentId,
    topic: &baton_proto::Topic,
    allowed: Allowed,
) {
    if matches!(allowed, Allowed::Renewal | Allowed::SameCertificate) {
        return;
    }
    let terms = crate::enrollment::enrollment_terms::EnrollmentTerms::issued_now(
        services.enrollment_tokens.public_url(),
        topic.as_str(),
    );
    if let Err(error) = crate::enrollment::store_terms::put(services.store.as_ref(), id, &terms) {
        tracing::warn!(enrollment_id = %id, %error, "authenticate: recording the enrollment terms failed");
    }
}

/// After another certificate's binding was replaced: revoke that certificate (a no-op for other
/// CAs') and drop the escrowed bootstrap token, which belonged to the previous enrollment.
fn replace_identity(
    services: &Services,
    id: &EnrollmentId,
    previous: baton_store::CertHash,
    allowed: Allowed,
    now: SystemTime,
) -> Result<(), DeviceError> {
    let revoked =
        crate::enrollment::store_registry::revoke_by_hash(&services.store, &previous, now)
            .map_err(|e| DeviceError::Internal(format!("revoking the replaced identity: {e}")))?;
    let bootstrap = Collection::new(BOOTSTRAP_TOKEN_COLLECTION)?;
    let dropped = services
        .store
        .delete(&bootstrap, id.parent().as_str().as_bytes())?;
    tracing::info!(enrollment_id = %id, reason = ?allowed, revoked_serial = revoked,
        bootstrap_token_dropped = dropped, previous_cert_sha256 = %hex::encode(previous.0),
        "authenticate: re-enrollment replaced the previous identity");
    Ok(())
}

/// Records the token the device enrolled with (none: the record is dropped) and adds the
/// device to the token's device group. Failures are logged: the enrollment itself stands.
fn record_token(
    services: &Services,
    id: &EnrollmentId,
    token: Option<&(EnrollmentToken, Option<u32>)>,
    now: SystemTime,
) {
    let store = services.store.as_ref();
    let mut batch = KeyspaceBatch::new();
    let written =
        store_token::record_device_token(&mut batch, id, token.map(|(t, n)| (t, *n)), now)
            .map_err(|e| e.to_string())
            .and_then(|()| store.apply(&batch).map_err(|e| e.to_string()));
    if let Err(error) = written {
        tracing::warn!(enrollment_id = %id, %error, "authenticate: recording the enrollment token failed");
    }
    let Some(group) = token.and_then(|(t, _)| t.device_group.as_deref()) else {
        return;
    };
    match add_device_member(store, group, id.device_part()) {
        Ok(GroupJoin::Added) => {
            services.reconciler.invalidate();
            tracing::info!(enrollment_id = %id, group, "device joined its enrollment token's group");
        }
        Ok(GroupJoin::AlreadyMember) => {}
        Ok(other) => tracing::warn!(enrollment_id = %id, group, outcome = ?other,
            "the enrollment token's device group takes no static members; device not added"),
        Err(error) => tracing::warn!(enrollment_id = %id, group, %error,
            "adding the device to its enrollment token's group failed"),
    }
}

/// Ends the device's session like a sign-out (`re_enrolled`): lease deleted, a sign-in log
/// entry for whoever was signed in, assignment state forgotten and the portal token rotated,
/// in one transaction; then the sign-in log's webhook event.
/// Why a device's session and assignment state are reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Authenticate: the device enrolled (again).
    ReEnrolled,
    /// CheckOut: the device left management.
    CheckedOut,
}

/// After a device channel's CheckOut: cancels every command still queued on the device's
/// channels (nobody will fetch them); returns how many.
fn cancel_queued(
    services: &Services,
    id: &EnrollmentId,
    now: SystemTime,
) -> Result<i64, DeviceError> {
    let store = services.store.as_ref();
    let mut cancelled = 0i64;
    for channel in store.device_channels(id)? {
        for result in store.list(&channel.id)? {
            if result.state.is_queued() && store.cancel(&channel.id, &result.uuid, now)? {
                cancelled += 1;
            }
        }
    }
    services.metrics.add_queue_depth(-cancelled);
    Ok(cancelled)
}

fn end_session(services: &Services, id: &EnrollmentId, now: SystemTime, ending: Ending) {
    let (reason, detail) = match ending {
        Ending::ReEnrolled => (ReasonCode::ReEnrolled, "the device enrolled again"),
        Ending::CheckedOut => (
            ReasonCode::CheckedOut,
            "the device left management (CheckOut)",
        ),
    };
    let device = id.parent();
    let ended = (|| -> Result<Option<SignInEntry>, String> {
        let mut batch = KeyspaceBatch::new();
        crate::session_policy::lease::delete(&mut batch, &device).map_err(|e| e.to_string())?;
        let assignee = services
            .reconciler
            .assignee(&device)
            .map_err(|e| e.to_string())?;
        let entry = (assignee != NOBODY_USERNAME).then(|| {
            SignInEntry::new(
                now,
                &assignee,
                device.as_str(),
                SignInHow::Automatic,
                SignInResult::SignedOut,
                reason,
            )
            .with_detail(detail)
        });
        if let Some(entry) = &entry {
            crate::sign_in_log::append_to_batch(&mut batch, entry).map_err(|e| e.to_string())?;
        }
        match ending {
            Ending::ReEnrolled => services
                .reconciler
                .device_authenticated_with(&device, now, batch),
            Ending::CheckedOut => services
                .reconciler
                .device_checked_out_with(&device, now, batch),
        }
        .map_err(|e| e.to_string())?;
        Ok(entry)
    })();
    match ended {
        Ok(Some(entry)) => {
            tracing::info!(enrollment_id = %device, username = %entry.username,
                reason = reason.as_str(), "automatic sign-out");
            crate::sign_in_log::publish(&services.events, &entry);
        }
        Ok(None) => {}
        Err(error) => {
            tracing::warn!(enrollment_id = %device, %error, ?ending, "resetting assignment state failed");
        }
    }
}

/// Stores a TokenUpdate; true when it was the first one (the channel just became enabled).
fn token_update(
    services: &Services,
    m: &TokenUpdate,
    request: &DeviceRequest,
    now: SystemTime,
) -> Result<bool, DeviceError> {
    let id = m.enrollment.id();
    let outcome = services.store.token_update(
        &TokenUpdateRecord {
            id: id.clone(),
            topic: m.topic.clone(),
            push_token: m.token.clone(),
            push_magic: m.push_magic.clone(),
            unlock_token: m.unlock_token.clone(),
            raw: request.body.to_vec(),
        },
        now,
    )?;
    if crate::push::invalid_token::clear(services.store.as_ref(), id)? {
        tracing::info!(enrollment_id = %id, "token update: invalid push token mark cleared");
    }
    if outcome.first {
        tracing::info!(enrollment_id = %id, user_channel = id.is_user_channel(),
            "token update: enrollment enabled");
    } else {
        tracing::debug!(enrollment_id = %id, "token update");
    }
    Ok(outcome.first)
}

/// Revokes the device's identity certificate at the built-in CA (a no-op for certificates from
/// other CAs), so the removed device cannot come back with it.
fn revoke_identity(
    services: &Services,
    identity: &VerifiedIdentity,
    id: &EnrollmentId,
    now: SystemTime,
) -> Result<(), DeviceError> {
    let revoked = crate::enrollment::store_registry::revoke_by_hash(
        &services.store,
        &cert_hash(identity),
        now,
    )
    .map_err(|e| DeviceError::Internal(format!("revoking the identity: {e}")))?;
    if let Some(serial) = revoked {
        tracing::info!(enrollment_id = %id, serial, "check-out: identity certificate revoked");
    }
    Ok(())
}

fn get_bootstrap_token(store: &dyn Store, id: &EnrollmentId) -> Result<DeviceReply, DeviceError> {
    let collection = Collection::new(BOOTSTRAP_TOKEN_COLLECTION)?;
    let mut d = Dictionary::new();
    if let Some(token) = store.get(&collection, id.parent().as_str().as_bytes())? {
        d.insert("BootstrapToken".to_owned(), Value::Data(token));
    }
    Ok(DeviceReply::plist(
        to_xml(&d).map_err(|e| DeviceError::Internal(e.to_string()))?,
    ))
}

fn empty_dictionary() -> Result<DeviceReply, DeviceError> {
    Ok(DeviceReply::plist(
        to_xml(&Dictionary::new()).map_err(|e| DeviceError::Internal(e.to_string()))?,
    ))
}

/// The smallest valid declarative-management answers: no declarations at all.
fn declarative_management(endpoint: &str) -> DeviceReply {
    let body = match endpoint {
        "tokens" => serde_json::json!({
            "SyncTokens": {
                "DeclarationsToken": EMPTY_DECLARATIONS_TOKEN,
                "Timestamp": "1970-01-01T00:00:00Z",
            }
        }),
        "declaration-items" => serde_json::json!({
            "Declarations": {
                "Activations": [],
                "Assets": [],
                "Configurations": [],
                "Management": [],
            },
            "DeclarationsToken": EMPTY_DECLARATIONS_TOKEN,
        }),
        _ => return DeviceReply::empty(),
    };
    DeviceReply::json(body.to_string().into_bytes())
}

/// Commands queued on a device's channels (what an Authenticate is about to clear).
pub(crate) fn queued_on_device(
    store: &dyn Store,
    device: &EnrollmentId,
) -> Result<i64, DeviceError> {
    let mut n = 0i64;
    for channel in store.device_channels(device)? {
        n += store
            .list(&channel.id)?
            .iter()
            .filter(|r| r.state.is_queued())
            .count() as i64;
    }
    Ok(n)
}

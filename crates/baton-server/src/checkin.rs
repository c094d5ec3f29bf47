//! The check-in endpoint's core (`PUT /mdm/checkin`), synchronous and HTTP-free: verify the
//! sender, decode the message once, apply it to the store, answer.
//!
//! - Authenticate: the device channel is (re-)created disabled, its queues cleared, and the
//!   certificate bound to it.
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
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{Authenticate, CheckinMessage, EnrollmentId, TokenUpdate, to_xml};
use baton_store::{AuthenticateRecord, Collection, Store, TokenUpdateRecord};

use crate::device_identity::{self, DeviceRequest, cert_hash};
use crate::device_reply::DeviceReply;
use crate::error_response::DeviceError;
use crate::identity::VerifiedIdentity;
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
        CheckinMessage::Authenticate(m) => {
            let reply = authenticate(services, &identity, m, request, now)?;
            if let Err(error) = services.reconciler.device_authenticated(&id, now) {
                tracing::warn!(enrollment_id = %id, %error, "authenticate: resetting assignment state failed");
            }
            reply
        }
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
    let cleared = queued_on_device(store, id)?;
    store.authenticate(
        &AuthenticateRecord {
            id: id.clone(),
            topic: m.topic.clone(),
            raw: request.body.to_vec(),
        },
        now,
    )?;
    store.bind_certificate(id, &cert_hash(identity))?;
    services.metrics.add_queue_depth(-cleared);
    tracing::info!(
        enrollment_id = %id,
        serial = m.serial_number.as_deref().unwrap_or(""),
        model = m.model.as_deref().unwrap_or(""),
        cert_sha256 = %identity.cert_sha256_hex(),
        cleared_commands = cleared,
        "authenticate: enrollment created, disabled until TokenUpdate"
    );
    Ok(DeviceReply::empty())
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

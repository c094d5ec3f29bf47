//! The enrollment role: check-in records (Authenticate, TokenUpdate, CheckOut) and what they leave
//! behind for an MDM channel: push token, PushMagic, topic, unlock token, enabled flag, TokenUpdate
//! tally and last-seen time.

use std::time::SystemTime;

use baton_proto::{EnrollmentId, PushMagic, PushToken, Topic};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// What an `Authenticate` check-in leaves in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticateRecord {
    /// The device channel that authenticated.
    pub id: EnrollmentId,
    /// The `Topic` the device reported.
    pub topic: Topic,
    /// The raw check-in body, kept as received.
    pub raw: Vec<u8>,
}

/// What a `TokenUpdate` check-in leaves in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUpdateRecord {
    /// The channel (device or `device:user`).
    pub id: EnrollmentId,
    /// The `Topic`.
    pub topic: Topic,
    /// The APNs device token.
    pub push_token: PushToken,
    /// The PushMagic the device expects in pushes.
    pub push_magic: PushMagic,
    /// The `UnlockToken`, when the message carries one; an absent one keeps the stored token.
    pub unlock_token: Option<Vec<u8>>,
    /// The raw check-in body, kept as received.
    pub raw: Vec<u8>,
}

/// One MDM channel as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The channel id.
    pub id: EnrollmentId,
    /// The APNs topic (from Authenticate, then TokenUpdate).
    pub topic: Option<Topic>,
    /// The push token from the latest TokenUpdate.
    pub push_token: Option<PushToken>,
    /// The PushMagic from the latest TokenUpdate.
    pub push_magic: Option<PushMagic>,
    /// The latest UnlockToken seen.
    pub unlock_token: Option<Vec<u8>>,
    /// False after Authenticate (until TokenUpdate) and after CheckOut.
    pub enabled: bool,
    /// TokenUpdates since the last Authenticate (user channels: since creation).
    pub token_update_tally: u64,
    /// The raw Authenticate body (device channels only).
    pub authenticate_raw: Option<Vec<u8>>,
    /// The raw body of the latest TokenUpdate.
    pub token_update_raw: Option<Vec<u8>>,
    /// When the channel was (re-)enrolled, Unix milliseconds.
    pub enrolled_at: u64,
    /// Last change of this record, Unix milliseconds.
    pub updated_at: u64,
    /// Last time the device was seen, Unix milliseconds (written in batches; see
    /// [`EnrollmentStore::touch`]).
    pub last_seen: Option<u64>,
}

impl Enrollment {
    /// A fresh, disabled record.
    pub fn new(id: EnrollmentId, now_ms: u64) -> Self {
        Self {
            id,
            topic: None,
            push_token: None,
            push_magic: None,
            unlock_token: None,
            enabled: false,
            token_update_tally: 0,
            authenticate_raw: None,
            token_update_raw: None,
            enrolled_at: now_ms,
            updated_at: now_ms,
            last_seen: None,
        }
    }
}

/// What a TokenUpdate changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenUpdateOutcome {
    /// True for the first TokenUpdate since Authenticate: the channel just became enabled, time
    /// to assign the device to the nobody user and reconcile.
    pub first: bool,
}

/// Enrollments and their check-in records.
///
/// Every mutating call except [`touch`](Self::touch) is durable when it returns.
pub trait EnrollmentStore {
    /// Records an Authenticate: the device channel is (re-)created disabled with a zero tally,
    /// its queue and the queues of its user channels are cleared (queued commands become
    /// `Cancelled`), and its user channels are disabled.
    fn authenticate(&self, record: &AuthenticateRecord, now: SystemTime) -> StoreResult<()>;

    /// Records a TokenUpdate and enables the channel. A user channel is created on its first
    /// TokenUpdate; its device channel must exist. A device channel must have authenticated.
    fn token_update(
        &self,
        record: &TokenUpdateRecord,
        now: SystemTime,
    ) -> StoreResult<TokenUpdateOutcome>;

    /// Records a CheckOut: disables the channel, and for a device channel also its user channels.
    fn check_out(&self, id: &EnrollmentId, now: SystemTime) -> StoreResult<()>;

    /// The stored record, with the newest last-seen time (including not yet written ones).
    fn enrollment(&self, id: &EnrollmentId) -> StoreResult<Option<Enrollment>>;

    /// The device channel and all user channels of a device, device first.
    fn device_channels(&self, device: &EnrollmentId) -> StoreResult<Vec<Enrollment>>;

    /// Every enrollment, in id order.
    fn enrollments(&self) -> StoreResult<Vec<Enrollment>>;

    /// Notes that the channel was seen at `now`. Cheap: buffered and written in batches, with no
    /// fsync of its own; a crash may lose the newest last-seen times.
    fn touch(&self, id: &EnrollmentId, now: SystemTime) -> StoreResult<()>;

    /// Writes buffered last-seen times now (the server calls this periodically and at shutdown).
    fn flush_last_seen(&self) -> StoreResult<()>;
}

//! [`EnrollmentStore`] on sled.
//!
//! Raw check-in bodies are stored packed ([`super::raw_body`], with the values stored from the
//! same message as context). Check-ins that change several channels (Authenticate, CheckOut of a device) lock
//! those channels in id order and write in one transaction.

use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use baton_proto::{EnrollmentId, PushMagic, PushToken, Topic};
use sled::Transactional;

use super::channel_index::{ChannelRef, lock};
use super::layout::{self, DELIVERIES, ENROLLMENTS, delivery_key, user_channels_prefix};
use super::raw_body::BodyContext;
use super::rows::{DeliveryRow, decode, decode_id, encode};
use super::{SledStore, abort, raw_body, tx_error};
use crate::{
    AuthenticateRecord, CommandState, Enrollment, EnrollmentStore, StoreError, StoreResult,
    TokenUpdateOutcome, TokenUpdateRecord, unix_millis,
};

/// The packing context of an Authenticate body. Not the topic: a TokenUpdate may change it.
fn authenticate_context(id: &EnrollmentId) -> BodyContext<'_> {
    BodyContext::Authenticate {
        channel: id.as_str(),
    }
}

/// The packing context of a TokenUpdate body: the values stored from the same message, which
/// only the next TokenUpdate (replacing the body too) or Authenticate (removing it) change.
fn token_update_context<'a>(
    id: &'a EnrollmentId,
    topic: Option<&'a Topic>,
    push_magic: Option<&'a PushMagic>,
    token_b64: &'a str,
) -> BodyContext<'a> {
    BodyContext::TokenUpdate {
        channel: id.as_str(),
        topic: topic.map_or("", Topic::as_str),
        push_magic: push_magic.map_or("", PushMagic::as_str),
        token: token_b64,
    }
}

fn token_b64(token: Option<&PushToken>) -> String {
    token.map_or_else(String::new, |t| B64.encode(t.as_bytes()))
}

/// An Authenticate body as stored.
fn pack_authenticate(id: &EnrollmentId, raw: &[u8]) -> Vec<u8> {
    raw_body::pack(raw, authenticate_context(id))
}

/// A stored enrollment with its raw bodies unpacked.
pub(crate) fn unpack_enrollment(mut e: Enrollment) -> StoreResult<Enrollment> {
    if let Some(r) = e.authenticate_raw.take() {
        e.authenticate_raw = Some(raw_body::unpack(
            ENROLLMENTS,
            &r,
            authenticate_context(&e.id),
        )?);
    }
    if let Some(r) = e.token_update_raw.take() {
        let token = token_b64(e.push_token.as_ref());
        let ctx = token_update_context(&e.id, e.topic.as_ref(), e.push_magic.as_ref(), &token);
        e.token_update_raw = Some(raw_body::unpack(ENROLLMENTS, &r, ctx)?);
    }
    Ok(e)
}

impl SledStore {
    /// Keys of `tree` under `prefix`.
    pub(crate) fn keys_with_prefix(
        tree: &sled::Tree,
        prefix: &[u8],
    ) -> StoreResult<Vec<sled::IVec>> {
        tree.scan_prefix(prefix)
            .keys()
            .map(|k| k.map_err(StoreError::from))
            .collect()
    }

    fn with_last_seen(&self, e: Enrollment) -> StoreResult<Enrollment> {
        let mut e = unpack_enrollment(e)?;
        e.last_seen = match self.last_seen.get(&e.id) {
            Some(ms) => Some(ms),
            None => self
                .t
                .last_seen
                .get(e.id.as_str().as_bytes())?
                .and_then(|v| layout::read_u64_be(&v)),
        };
        Ok(e)
    }

    /// `id` and, for a device channel, its stored user channels, in id order (the lock order).
    fn channels_of(&self, id: &EnrollmentId) -> StoreResult<Vec<EnrollmentId>> {
        let mut ids = vec![id.clone()];
        if !id.is_user_channel() {
            for k in Self::keys_with_prefix(&self.t.enrollments, &user_channels_prefix(id))? {
                ids.push(decode_id(ENROLLMENTS, &k)?);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Disables `id` and, for a device channel, its user channels; optionally clears their
    /// queues too (Authenticate, which also replaces the device record).
    fn disable_channels(
        &self,
        id: &EnrollmentId,
        replacement: Option<&Enrollment>,
        clear_queues: bool,
        now_ms: u64,
    ) -> StoreResult<()> {
        let ids = self.channels_of(id)?;
        let session = self.next_seq()?;
        // A new device is indexed before its row is written; if the write fails, the channel
        // stays indexed, disabled and empty, and the next Authenticate writes its row.
        let refs: Vec<(EnrollmentId, ChannelRef)> = ids
            .into_iter()
            .filter_map(|i| {
                let r = if replacement.is_some() && i == *id {
                    Some(self.index.get_or_create(&i, session))
                } else {
                    self.index.get(&i)
                };
                r.map(|r| (i, r))
            })
            .collect();
        let mut guards: Vec<_> = refs.iter().map(|(i, r)| (i, lock(r))).collect();
        // Deliveries leaving the queues: key, new row.
        let mut cancelled = Vec::new();
        if clear_queues {
            for (cid, g) in &guards {
                for e in g.queue.values() {
                    let dk = delivery_key(cid, e.info.seq);
                    let mut row = if e.explicit {
                        match self.t.deliveries.get(&dk)? {
                            Some(v) => decode::<DeliveryRow>(DELIVERIES, &v)?,
                            None => DeliveryRow::implied(e.info.command.created_at),
                        }
                    } else {
                        DeliveryRow::implied(e.info.command.created_at)
                    };
                    row.state = CommandState::Cancelled;
                    row.updated_at = now_ms;
                    row.not_now_session = None;
                    cancelled.push((dk, encode("delivery", &row)?));
                }
            }
        }
        let replacement = replacement
            .map(|e| {
                let mut stored = e.clone();
                stored.authenticate_raw = e
                    .authenticate_raw
                    .as_deref()
                    .map(|r| pack_authenticate(&e.id, r));
                stored.token_update_raw = None;
                stored.last_seen = None;
                encode("enrollment", &stored)
            })
            .transpose()?;
        let idk = id.as_str().as_bytes();
        let found = (&self.t.enrollments, &self.t.deliveries)
            .transaction(|(en, d)| {
                let mut found = false;
                if let Some(r) = &replacement {
                    en.insert(idk, r.as_slice())?;
                    found = true;
                }
                for (cid, _) in &refs {
                    let key = cid.as_str().as_bytes();
                    if replacement.is_some() && key == idk {
                        continue;
                    }
                    let Some(v) = en.get(key)? else { continue };
                    found = true;
                    let mut e: Enrollment = decode(ENROLLMENTS, &v).map_err(abort)?;
                    if e.enabled {
                        e.enabled = false;
                        e.updated_at = now_ms;
                        en.insert(key, encode("enrollment", &e).map_err(abort)?)?;
                    }
                }
                for (dk, row) in &cancelled {
                    d.insert(dk.as_slice(), row.as_slice())?;
                }
                Ok(found)
            })
            .map_err(tx_error)?;
        if !found {
            return Err(StoreError::UnknownEnrollment(id.clone()));
        }
        for (_, g) in &mut guards {
            g.enabled = false;
            if clear_queues {
                g.queue.clear();
            }
        }
        drop(guards);
        self.commit()
    }
}

impl EnrollmentStore for SledStore {
    fn authenticate(&self, record: &AuthenticateRecord, now: SystemTime) -> StoreResult<()> {
        let now_ms = unix_millis(now);
        let mut e = Enrollment::new(record.id.clone(), now_ms);
        e.topic = Some(record.topic.clone());
        e.authenticate_raw = Some(record.raw.clone());
        self.disable_channels(&record.id, Some(&e), true, now_ms)
    }

    fn token_update(
        &self,
        record: &TokenUpdateRecord,
        now: SystemTime,
    ) -> StoreResult<TokenUpdateOutcome> {
        let now_ms = unix_millis(now);
        let id = &record.id;
        let parent = id.parent();
        let channel = match self.index.get(id) {
            Some(c) => c,
            None if id.is_user_channel() && self.index.get(&parent).is_some() => {
                self.index.get_or_create(id, self.next_seq()?)
            }
            None if id.is_user_channel() => return Err(StoreError::UnknownEnrollment(parent)),
            None => return Err(StoreError::UnknownEnrollment(id.clone())),
        };
        let mut c = lock(&channel);
        let token = token_b64(Some(&record.push_token));
        let packed_tu = raw_body::pack(
            &record.raw,
            token_update_context(id, Some(&record.topic), Some(&record.push_magic), &token),
        );
        let first = self
            .t
            .enrollments
            .transaction(|en| {
                let mut e = match en.get(id.as_str().as_bytes())? {
                    Some(v) => decode::<Enrollment>(ENROLLMENTS, &v).map_err(abort)?,
                    None if id.is_user_channel() => {
                        if en.get(parent.as_str().as_bytes())?.is_none() {
                            return Err(abort(StoreError::UnknownEnrollment(parent.clone())));
                        }
                        Enrollment::new(id.clone(), now_ms)
                    }
                    None => return Err(abort(StoreError::UnknownEnrollment(id.clone()))),
                };
                e.topic = Some(record.topic.clone());
                e.push_token = Some(record.push_token.clone());
                e.push_magic = Some(record.push_magic.clone());
                if let Some(u) = &record.unlock_token {
                    e.unlock_token = Some(u.clone());
                }
                // Stored rows hold packed bodies already; this one is packed too.
                e.token_update_raw = Some(packed_tu.clone());
                e.token_update_tally += 1;
                e.enabled = true;
                e.updated_at = now_ms;
                e.last_seen = None;
                en.insert(
                    id.as_str().as_bytes(),
                    encode("enrollment", &e).map_err(abort)?,
                )?;
                Ok(e.token_update_tally == 1)
            })
            .map_err(tx_error)?;
        c.enabled = true;
        drop(c);
        self.commit()?;
        Ok(TokenUpdateOutcome { first })
    }

    fn check_out(&self, id: &EnrollmentId, now: SystemTime) -> StoreResult<()> {
        self.disable_channels(id, None, false, unix_millis(now))
    }

    fn enrollment(&self, id: &EnrollmentId) -> StoreResult<Option<Enrollment>> {
        match self.t.enrollments.get(id.as_str().as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(self.with_last_seen(decode(ENROLLMENTS, &v)?)?)),
        }
    }

    fn device_channels(&self, device: &EnrollmentId) -> StoreResult<Vec<Enrollment>> {
        let device = device.parent();
        let mut out = Vec::new();
        if let Some(e) = self.enrollment(&device)? {
            out.push(e);
        }
        for kv in self
            .t
            .enrollments
            .scan_prefix(user_channels_prefix(&device))
        {
            let (_, v) = kv?;
            out.push(self.with_last_seen(decode(ENROLLMENTS, &v)?)?);
        }
        Ok(out)
    }

    fn enrollments(&self) -> StoreResult<Vec<Enrollment>> {
        self.t
            .enrollments
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let _: EnrollmentId = decode_id(ENROLLMENTS, &k)?;
                self.with_last_seen(decode(ENROLLMENTS, &v)?)
            })
            .collect()
    }

    fn touch(&self, id: &EnrollmentId, now: SystemTime) -> StoreResult<()> {
        if let Some(batch) = self.last_seen.note(id, unix_millis(now)) {
            self.write_last_seen(batch)?;
        }
        Ok(())
    }

    fn flush_last_seen(&self) -> StoreResult<()> {
        self.write_last_seen(self.last_seen.drain())
    }
}

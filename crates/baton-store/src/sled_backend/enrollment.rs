//! [`EnrollmentStore`] on sled.

use std::time::SystemTime;

use baton_proto::EnrollmentId;
use sled::Transactional;

use super::layout::{self, DELIVERIES, ENROLLMENTS, QUEUE, channel_prefix, user_channels_prefix};
use super::rows::{DeliveryRow, QueueEntryRow, decode, decode_id, encode};
use super::{SledStore, abort, tx_error};
use crate::{
    AuthenticateRecord, CommandState, Enrollment, EnrollmentStore, StoreError, StoreResult,
    TokenUpdateOutcome, TokenUpdateRecord, unix_millis,
};

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

    fn with_last_seen(&self, mut e: Enrollment) -> StoreResult<Enrollment> {
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

    /// Disables `id` and, for a device channel, its user channels; optionally clears their
    /// queues too (Authenticate) and replaces the device record.
    fn disable_channels(
        &self,
        id: &EnrollmentId,
        replacement: Option<&Enrollment>,
        clear_queues: bool,
        now_ms: u64,
    ) -> StoreResult<()> {
        let mut channels = vec![sled::IVec::from(id.as_str().as_bytes())];
        let mut queue_keys = Vec::new();
        if clear_queues {
            queue_keys = Self::keys_with_prefix(&self.t.queue, &channel_prefix(id))?;
        }
        if !id.is_user_channel() {
            let users = user_channels_prefix(id);
            channels.extend(Self::keys_with_prefix(&self.t.enrollments, &users)?);
            if clear_queues {
                queue_keys.extend(Self::keys_with_prefix(&self.t.queue, &users)?);
            }
        }
        let replacement = replacement.map(|e| encode("enrollment", e)).transpose()?;
        let found = (&self.t.enrollments, &self.t.queue, &self.t.deliveries)
            .transaction(|(en, q, d)| {
                let mut found = false;
                for (i, key) in channels.iter().enumerate() {
                    if let (0, Some(r)) = (i, &replacement) {
                        en.insert(key, r.as_slice())?;
                        found = true;
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
                for qk in &queue_keys {
                    let Some(v) = q.remove(qk)? else { continue };
                    let entry: QueueEntryRow = decode(QUEUE, &v).map_err(abort)?;
                    let Some(chan) = layout::key_channel(qk) else {
                        continue;
                    };
                    let mut dk = chan.to_vec();
                    dk.push(0);
                    dk.extend_from_slice(entry.uuid.as_str().as_bytes());
                    if let Some(dv) = d.get(&dk)? {
                        let mut row: DeliveryRow = decode(DELIVERIES, &dv).map_err(abort)?;
                        if row.state.is_queued() {
                            row.state = CommandState::Cancelled;
                            row.updated_at = now_ms;
                            d.insert(dk, encode("delivery", &row).map_err(abort)?)?;
                        }
                    }
                }
                Ok(found)
            })
            .map_err(tx_error)?;
        if !found {
            return Err(StoreError::UnknownEnrollment(id.clone()));
        }
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
                e.token_update_raw = Some(record.raw.clone());
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

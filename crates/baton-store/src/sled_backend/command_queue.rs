//! [`CommandQueue`] and [`CommandResultStore`] on sled, the queue index rebuild and the
//! consistency check.
//!
//! A command is written once, however many channels get it: its rows (UUID index, command,
//! target list) by one atomic batch on COMMANDS. A channel's delivery of it is implied (queued)
//! until its state changes; then one DELIVERIES row holds the state and result. So an enqueue is one write,
//! and a report, NotNow or cancel is one write of one row. The in-memory index
//! ([`super::channel_index`]) holds every channel's queue in delivery order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

use baton_proto::{CommandUuid, EnrollmentId, Status};
use sled::transaction::{ConflictableTransactionResult, TransactionalTree};

use super::channel_index::{
    Channel, ChannelIndex, CommandInfo, IndexBuilder, QueueEntry, QueueOrder, lock,
};
use super::layout::{
    self, COMMANDS, DELIVERIES, ENROLLMENTS, ORPHANS, answered_key, channel_prefix, command_key,
    delivery_key, orphan_key, read_u64_be, targets_key, u64_be, user_channels_prefix, uuid_key,
};
use super::raw_body::BodyContext;
use super::rows::{CommandRow, DeliveryRow, decode, decode_id, encode};
use super::{SledStore, abort, raw_body, target_list};
use crate::{
    CommandQueue, CommandResult, CommandResultStore, CommandState, Enrollment,
    MAX_ORPHANS_PER_DEVICE, NewCommand, OrphanReport, QueuedCommand, Report, ReportOutcome,
    StoreError, StoreResult, StoredCommand, unix_millis,
};

/// An enqueue checked and encoded, ready to write.
#[derive(Debug)]
pub(crate) struct PreparedEnqueue {
    info: Arc<CommandInfo>,
    ids: Vec<EnrollmentId>,
    command_row: sled::IVec,
    targets_row: sled::IVec,
}

impl PreparedEnqueue {
    /// Writes the command row and target list inside a transaction on COMMANDS; aborts on a
    /// used CommandUUID.
    pub(crate) fn write_in(
        &self,
        commands: &TransactionalTree,
    ) -> ConflictableTransactionResult<(), StoreError> {
        let uuid = &self.info.command.uuid;
        if commands.get(uuid_key(uuid))?.is_some() {
            return Err(abort(StoreError::DuplicateCommand(uuid.clone())));
        }
        for (k, v) in self.rows() {
            commands.insert(k, v)?;
        }
        Ok(())
    }

    /// The COMMANDS rows to write.
    fn rows(&self) -> [(sled::IVec, sled::IVec); 3] {
        let seq = self.info.seq;
        [
            (
                uuid_key(&self.info.command.uuid).into(),
                u64_be(seq).as_slice().into(),
            ),
            (command_key(seq).as_slice().into(), self.command_row.clone()),
            (targets_key(seq).as_slice().into(), self.targets_row.clone()),
        ]
    }
}

/// The packing context of a delivery's raw response.
fn response_context<'a>(id: &'a EnrollmentId, uuid: &'a CommandUuid) -> BodyContext<'a> {
    BodyContext::Report {
        channel: id.as_str(),
        command: uuid.as_str(),
    }
}

/// Encodes a DELIVERIES row.
fn encode_delivery(row: &DeliveryRow) -> StoreResult<Vec<u8>> {
    encode("delivery", row)
}

impl SledStore {
    /// Checks the targets (every one must be a known channel), draws the sequence number and
    /// encodes the rows. Call with `enqueue_lock` held.
    pub(crate) fn prepare_enqueue(
        &self,
        command: &NewCommand,
        to: &[EnrollmentId],
        now: SystemTime,
    ) -> StoreResult<PreparedEnqueue> {
        let ids: BTreeSet<&EnrollmentId> = to.iter().collect();
        for id in &ids {
            // Channels are never deleted, so a channel known now is known at the write.
            if self.index.get(id).is_none() {
                return Err(StoreError::UnknownEnrollment((*id).clone()));
            }
        }
        let sorted: Vec<&EnrollmentId> = ids.into_iter().collect();
        let targets_row = target_list::encode(&sorted).into();
        let info = Arc::new(CommandInfo {
            command: StoredCommand {
                uuid: command.uuid.clone(),
                request_type: command.request_type.clone(),
                body: command.body.clone(),
                priority: command.priority,
                created_at: unix_millis(now),
            },
            seq: self.next_seq()?,
        });
        let command_row = encode(
            "command",
            &CommandRow {
                command: info.command.clone(),
                seq: info.seq,
            },
        )?
        .into();
        Ok(PreparedEnqueue {
            info,
            ids: sorted.into_iter().cloned().collect(),
            command_row,
            targets_row,
        })
    }

    /// Puts a written enqueue into the index.
    pub(crate) fn index_enqueue(&self, p: &PreparedEnqueue) {
        for id in &p.ids {
            let Some(c) = self.index.get(id) else {
                continue; // checked in prepare_enqueue; channels are never removed
            };
            lock(&c).queue.insert(
                p.info.order(),
                QueueEntry {
                    info: p.info.clone(),
                    explicit: false,
                    not_now_session: None,
                },
            );
        }
    }

    /// The sequence number of a command, None when it was never enqueued.
    pub(crate) fn seq_of(&self, uuid: &CommandUuid) -> StoreResult<Option<u64>> {
        self.t
            .commands
            .get(uuid_key(uuid))?
            .map(|v| read_u64_be(&v).ok_or_else(|| corrupt(COMMANDS, format!("seq of {uuid}"))))
            .transpose()
    }

    /// The command row of a sequence number (which must exist).
    pub(crate) fn command_at(&self, seq: u64) -> StoreResult<CommandRow> {
        match self.command_row(seq)? {
            Some(row) => Ok(row),
            None => Err(corrupt(COMMANDS, format!("command #{seq} missing"))),
        }
    }

    /// The command row of a sequence number, None when there is none (retention deleted it
    /// while the caller was reading its results).
    pub(crate) fn command_row(&self, seq: u64) -> StoreResult<Option<CommandRow>> {
        self.t
            .commands
            .get(command_key(seq))?
            .map(|v| decode(COMMANDS, &v))
            .transpose()
    }

    /// A delivery row as the API shows it.
    fn to_result(
        id: &EnrollmentId,
        command: &StoredCommand,
        row: DeliveryRow,
    ) -> StoreResult<CommandResult> {
        let raw_response = row
            .raw_response
            .map(|r| raw_body::unpack(DELIVERIES, &r, response_context(id, &command.uuid)))
            .transpose()?;
        Ok(CommandResult {
            id: id.clone(),
            uuid: command.uuid.clone(),
            request_type: command.request_type.clone(),
            priority: command.priority,
            state: row.state,
            queued_at: command.created_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            not_now_count: row.not_now_count,
            first_not_now_at: row.first_not_now_at,
            error_chain: row.error_chain,
            raw_response,
        })
    }

    pub(crate) fn delivery_row(&self, key: &[u8]) -> StoreResult<Option<DeliveryRow>> {
        self.t
            .deliveries
            .get(key)?
            .map(|v| decode(DELIVERIES, &v))
            .transpose()
    }

    /// Stores an orphan report, then deletes the device's oldest orphans beyond
    /// [`MAX_ORPHANS_PER_DEVICE`]; returns the outcome with how many were deleted. Serialised
    /// by `orphan_lock`, so concurrent orphans of one device cannot overshoot the bound.
    fn store_orphan(
        &self,
        report: &Report,
        uuid: &CommandUuid,
        now_ms: u64,
    ) -> StoreResult<ReportOutcome> {
        let orphan = OrphanReport {
            id: report.id.clone(),
            uuid: uuid.clone(),
            status: report.status,
            error_chain: report.error_chain.clone(),
            raw: report.raw.clone(),
            received_at: now_ms,
        };
        let key = orphan_key(&report.id, uuid);
        let _serial = self
            .orphan_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.t.orphans.insert(&key, encode("orphan", &orphan)?)?;
        // The device's other orphans, oldest first; the one just stored is the newest.
        let device = report.id.parent();
        let mut others: Vec<(u64, sled::IVec)> = Vec::new();
        for prefix in [channel_prefix(&device), user_channels_prefix(&device)] {
            for kv in self.t.orphans.scan_prefix(prefix) {
                let (k, v) = kv?;
                if k.as_ref() != key.as_slice() {
                    let o: OrphanReport = decode(ORPHANS, &v)?;
                    others.push((o.received_at, k));
                }
            }
        }
        let keep_others = MAX_ORPHANS_PER_DEVICE.saturating_sub(1);
        let excess = others.len().saturating_sub(keep_others);
        if excess > 0 {
            others.sort();
            let mut batch = sled::Batch::default();
            for (_, k) in others.into_iter().take(excess) {
                batch.remove(k);
            }
            self.t.orphans.apply_batch(batch)?;
        }
        Ok(ReportOutcome::Orphan {
            dropped: u32::try_from(excess).unwrap_or(u32::MAX),
        })
    }

    /// Applies a report to the channel's rows and index; the caller commits.
    fn store_report(
        &self,
        report: &Report,
        uuid: &CommandUuid,
        now_ms: u64,
    ) -> StoreResult<ReportOutcome> {
        let id = &report.id;
        let Some(channel) = self.index.get(id) else {
            return self.store_orphan(report, uuid, now_ms);
        };
        let mut c = lock(&channel);
        let final_state = CommandState::from_final_status(report.status);
        let not_now = report.status == Status::NotNow;
        let queued = c.find(uuid).map(|(k, e)| (k, e.clone()));
        let seq = match &queued {
            Some((_, e)) => e.info.seq,
            None => match self.seq_of(uuid)? {
                Some(seq) => seq,
                None => {
                    drop(c);
                    return self.store_orphan(report, uuid, now_ms);
                }
            },
        };
        let dk = delivery_key(id, seq);
        let (mut row, order): (DeliveryRow, Option<QueueOrder>) = match &queued {
            Some((k, e)) if e.explicit => match self.delivery_row(&dk)? {
                Some(row) => (row, Some(*k)),
                None => {
                    return Err(StoreError::Corrupt {
                        tree: DELIVERIES,
                        reason: format!("{id}/{uuid} indexed as answered but has no row"),
                    });
                }
            },
            Some((k, e)) => (DeliveryRow::implied(e.info.command.created_at), Some(*k)),
            None => match self.delivery_row(&dk)? {
                Some(row) => (row, None),
                None => {
                    drop(c);
                    return self.store_orphan(report, uuid, now_ms);
                }
            },
        };
        let packed_raw = || raw_body::pack(&report.raw, response_context(id, uuid));
        if let Some(state) = final_state {
            if row.state.is_final() {
                return Ok(ReportOutcome::Duplicate);
            }
            row.state = state;
            row.finished_at = Some(now_ms);
            row.updated_at = now_ms;
            row.not_now_session = None;
            row.error_chain = report.error_chain.clone();
            row.raw_response = Some(packed_raw());
            self.t.deliveries.insert(dk, encode_delivery(&row)?)?;
            if let Some(k) = order {
                c.queue.remove(&k);
            }
            Ok(ReportOutcome::Completed)
        } else if not_now {
            let Some(k) = order else {
                return Ok(ReportOutcome::Duplicate);
            };
            let session = c.session;
            row.state = CommandState::NotNow;
            row.not_now_count = row.not_now_count.saturating_add(1);
            row.first_not_now_at.get_or_insert(now_ms);
            row.updated_at = now_ms;
            row.not_now_session = Some(session);
            row.raw_response = Some(packed_raw());
            self.t.deliveries.insert(dk, encode_delivery(&row)?)?;
            if let Some(e) = c.queue.get_mut(&k) {
                e.explicit = true;
                e.not_now_session = Some(session);
            }
            Ok(ReportOutcome::Deferred)
        } else {
            // A status this build does not know: keep it as an orphan, change nothing.
            drop(c);
            self.store_orphan(report, uuid, now_ms)
        }
    }

    /// Recomputes the queue index from the trees; deliveries of unknown channels are skipped
    /// (and reported by `verify`). With `compact`, also deletes target lists
    /// whose every delivery has its own row (they no longer imply anything), so that opening
    /// costs memory in proportion to outstanding work, not history.
    pub(crate) fn rebuild_index(&self, compact: bool) -> StoreResult<ChannelIndex> {
        let session = self.next_seq()?;
        let mut b = IndexBuilder::default();
        for kv in self.t.enrollments.iter() {
            let (k, v) = kv?;
            let id: EnrollmentId = decode_id(ENROLLMENTS, &k)?;
            let e: Enrollment = decode(ENROLLMENTS, &v)?;
            b.channel(id, e.enabled, session);
        }
        let mut commands: HashMap<u64, Arc<CommandInfo>> = HashMap::new();
        let mut info = |seq: u64| -> StoreResult<Arc<CommandInfo>> {
            if let Some(i) = commands.get(&seq) {
                return Ok(i.clone());
            }
            let row = self.command_at(seq)?;
            let i = Arc::new(CommandInfo {
                command: row.command,
                seq: row.seq,
            });
            commands.insert(seq, i.clone());
            Ok(i)
        };
        // Deliveries implied by target lists, until a row shows they were answered.
        let mut implied: HashSet<(EnrollmentId, u64)> = HashSet::new();
        let mut remaining: HashMap<u64, usize> = HashMap::new();
        for kv in self.t.commands.scan_prefix(b"t") {
            let (k, v) = kv?;
            let seq = tagged_seq(&k)?;
            let ids = target_list::decode(COMMANDS, &v)?;
            remaining.insert(seq, ids.len());
            implied.extend(ids.into_iter().map(|id| (id, seq)));
        }
        for kv in self.t.deliveries.iter() {
            let (k, v) = kv?;
            let (id, seq) = delivery_ids(&k)?;
            let row: DeliveryRow = decode(DELIVERIES, &v)?;
            if row.state.is_queued() {
                let entry = QueueEntry {
                    info: info(seq)?,
                    explicit: true,
                    not_now_session: row.not_now_session,
                };
                if !b.queue(&id, entry) {
                    // verify() reports it; opening the store should not fail for it.
                    tracing::warn!(enrollment_id = %id, seq, "queued delivery of an unknown channel");
                }
            }
            let key = (id, seq);
            if implied.remove(&key)
                && let Some(n) = remaining.get_mut(&seq)
            {
                *n = n.saturating_sub(1);
            }
        }
        for (id, seq) in implied {
            let entry = QueueEntry {
                info: info(seq)?,
                explicit: false,
                not_now_session: None,
            };
            if !b.queue(&id, entry) {
                tracing::warn!(enrollment_id = %id, seq, "command targets an unknown channel");
            }
        }
        if compact {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for (seq, _) in remaining.into_iter().filter(|(_, left)| *left == 0) {
                // Renamed, not deleted: retention finds the command's results through it.
                if let Some(list) = self.t.commands.get(targets_key(seq))? {
                    batch.remove(targets_key(seq).as_slice());
                    batch.insert(answered_key(seq).as_slice(), list);
                    n += 1;
                }
            }
            if n > 0 {
                // Not flushed: a list renamed again after a crash is renamed at the next open.
                self.t.commands.apply_batch(batch)?;
                tracing::debug!(target_lists = n, "marked fully answered target lists");
            }
        }
        Ok(b.build())
    }
}

/// The channel and command sequence number of a DELIVERIES key.
pub(crate) fn delivery_ids(k: &[u8]) -> StoreResult<(EnrollmentId, u64)> {
    let chan = layout::key_channel(k).ok_or_else(|| corrupt(DELIVERIES, "bad key".into()))?;
    let seq = layout::key_rest(k)
        .and_then(read_u64_be)
        .ok_or_else(|| corrupt(DELIVERIES, "bad key".into()))?;
    Ok((decode_id(DELIVERIES, chan)?, seq))
}

/// The sequence number of a `'c'` or `'t'` COMMANDS key.
pub(crate) fn tagged_seq(k: &[u8]) -> StoreResult<u64> {
    k.get(1..)
        .and_then(read_u64_be)
        .ok_or_else(|| corrupt(COMMANDS, "bad key".into()))
}

impl SledStore {
    /// The queue entry `choose` picks on an enabled channel, as a command to hand out.
    fn pick(
        &self,
        id: &EnrollmentId,
        choose: fn(&Channel) -> Option<&QueueEntry>,
    ) -> StoreResult<Option<QueuedCommand>> {
        let Some(c) = self.index.get(id) else {
            return Ok(None);
        };
        let info = {
            let c = lock(&c);
            if !c.enabled {
                return Ok(None);
            }
            match choose(&c) {
                Some(e) => e.info.clone(),
                None => return Ok(None),
            }
        };
        let cmd = &info.command;
        Ok(Some(QueuedCommand {
            uuid: cmd.uuid.clone(),
            request_type: cmd.request_type.clone(),
            body: cmd.body.clone(),
            priority: cmd.priority,
        }))
    }
}

impl CommandQueue for SledStore {
    fn enqueue(
        &self,
        command: &NewCommand,
        to: &[EnrollmentId],
        now: SystemTime,
    ) -> StoreResult<()> {
        {
            let _serial = self
                .enqueue_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.t.commands.contains_key(uuid_key(&command.uuid))? {
                return Err(StoreError::DuplicateCommand(command.uuid.clone()));
            }
            let p = self.prepare_enqueue(command, to, now)?;
            let mut batch = sled::Batch::default();
            for (k, v) in p.rows() {
                batch.insert(k, v);
            }
            self.t.commands.apply_batch(batch)?;
            self.index_enqueue(&p);
        }
        self.commit()
    }

    fn next_command(&self, id: &EnrollmentId) -> StoreResult<Option<QueuedCommand>> {
        self.pick(id, Channel::next)
    }

    fn next_deferred(&self, id: &EnrollmentId) -> StoreResult<Option<QueuedCommand>> {
        self.pick(id, Channel::first_deferred)
    }

    fn report(&self, report: &Report, now: SystemTime) -> StoreResult<ReportOutcome> {
        if report.status == Status::Idle {
            self.begin_session(&report.id)?;
            return Ok(ReportOutcome::SessionStarted);
        }
        let Some(uuid) = &report.command_uuid else {
            return Err(StoreError::ReportWithoutCommand(report.status.as_str()));
        };
        let outcome = self.store_report(report, uuid, unix_millis(now))?;
        // Also for a duplicate: the first report's writer may still be waiting for its flush.
        self.commit()?;
        Ok(outcome)
    }

    fn begin_session(&self, id: &EnrollmentId) -> StoreResult<()> {
        if let Some(c) = self.index.get(id) {
            let session = self.next_seq()?;
            lock(&c).session = session;
        }
        Ok(())
    }

    fn cancel(&self, id: &EnrollmentId, uuid: &CommandUuid, now: SystemTime) -> StoreResult<bool> {
        let Some(channel) = self.index.get(id) else {
            return Ok(false);
        };
        {
            let mut c = lock(&channel);
            let Some((k, e)) = c.find(uuid).map(|(k, e)| (k, e.clone())) else {
                return Ok(false);
            };
            let dk = delivery_key(id, e.info.seq);
            let mut row = if e.explicit {
                self.delivery_row(&dk)?.ok_or_else(|| {
                    corrupt(DELIVERIES, format!("{id}/{uuid} indexed but has no row"))
                })?
            } else {
                DeliveryRow::implied(e.info.command.created_at)
            };
            row.state = CommandState::Cancelled;
            row.updated_at = unix_millis(now);
            row.not_now_session = None;
            self.t.deliveries.insert(dk, encode_delivery(&row)?)?;
            c.queue.remove(&k);
        }
        self.commit()?;
        Ok(true)
    }

    fn command(&self, uuid: &CommandUuid) -> StoreResult<Option<StoredCommand>> {
        match self.seq_of(uuid)? {
            Some(seq) => Ok(Some(self.command_at(seq)?.command)),
            None => Ok(None),
        }
    }

    fn list(&self, id: &EnrollmentId) -> StoreResult<Vec<CommandResult>> {
        let mut explicit = Vec::new();
        let mut implied = Vec::new();
        {
            let channel = self.index.get(id);
            let c = channel.as_ref().map(lock);
            let mut seen = HashSet::new();
            for kv in self.t.deliveries.scan_prefix(channel_prefix(id)) {
                let (k, v) = kv?;
                let (_, seq) = delivery_ids(&k)?;
                let row: DeliveryRow = decode(DELIVERIES, &v)?;
                seen.insert(seq);
                explicit.push((seq, row));
            }
            if let Some(c) = &c {
                for e in c.queue.values() {
                    if !seen.contains(&e.info.seq) {
                        implied.push(e.info.clone());
                    }
                }
            }
        }
        let mut rows = Vec::with_capacity(explicit.len() + implied.len());
        for (seq, row) in explicit {
            // None: retention deleted the command after the scan above.
            if let Some(cmd) = self.command_row(seq)? {
                rows.push((seq, Self::to_result(id, &cmd.command, row)?));
            }
        }
        for info in implied {
            let row = DeliveryRow::implied(info.command.created_at);
            rows.push((info.seq, Self::to_result(id, &info.command, row)?));
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.uuid.cmp(&b.1.uuid)));
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }
}

impl CommandResultStore for SledStore {
    fn command_result(
        &self,
        id: &EnrollmentId,
        uuid: &CommandUuid,
    ) -> StoreResult<Option<CommandResult>> {
        let Some(seq) = self.seq_of(uuid)? else {
            return Ok(None);
        };
        let channel = self.index.get(id);
        let c = channel.as_ref().map(lock);
        if let Some(row) = self.delivery_row(&delivery_key(id, seq))? {
            drop(c);
            // None: retention deleted the command after the reads above.
            return match self.command_row(seq)? {
                Some(cmd) => Ok(Some(Self::to_result(id, &cmd.command, row)?)),
                None => Ok(None),
            };
        }
        let Some(info) = c
            .as_ref()
            .and_then(|c| c.find(uuid))
            .map(|(_, e)| e.info.clone())
        else {
            return Ok(None);
        };
        drop(c);
        let row = DeliveryRow::implied(info.command.created_at);
        Ok(Some(Self::to_result(id, &info.command, row)?))
    }

    fn prune_finished(&self, before: SystemTime, budget: usize) -> StoreResult<crate::PruneReport> {
        self.prune_finished_commands(unix_millis(before), budget)
    }

    fn orphan_reports(&self, id: &EnrollmentId) -> StoreResult<Vec<OrphanReport>> {
        self.t
            .orphans
            .scan_prefix(channel_prefix(id))
            .map(|kv| {
                let (_, v) = kv?;
                decode(ORPHANS, &v)
            })
            .collect()
    }
}

fn corrupt(tree: &'static str, reason: String) -> StoreError {
    StoreError::Corrupt { tree, reason }
}

/// Reads every tree end to end, decodes every row of the fixed trees (raw bodies included),
/// checks that deliveries, target lists and commands refer to rows that exist, and that the
/// live queue index equals one rebuilt from disk. Returns the number of rows read.
pub(crate) fn verify(store: &SledStore) -> StoreResult<u64> {
    let t = &store.t;
    let mut rows = 0u64;
    let mut channels = HashSet::new();
    for kv in t.enrollments.iter() {
        let (k, v) = kv?;
        let id: EnrollmentId = decode_id(ENROLLMENTS, &k)?;
        let e: Enrollment = decode(ENROLLMENTS, &v)?;
        if e.id != id {
            return Err(corrupt(ENROLLMENTS, format!("row for {id} names {}", e.id)));
        }
        super::enrollment::unpack_enrollment(e)?;
        channels.insert(id);
        rows += 1;
    }
    for kv in t.commands.iter() {
        let (k, v) = kv?;
        match k.first() {
            Some(b'u') => {
                let uuid: CommandUuid = decode_id(COMMANDS, &k[1..])?;
                let seq = read_u64_be(&v).ok_or_else(|| corrupt(COMMANDS, "bad seq".into()))?;
                if store.command_at(seq)?.command.uuid != uuid {
                    return Err(corrupt(
                        COMMANDS,
                        format!("{uuid} points at another command"),
                    ));
                }
            }
            Some(b'c') => {
                let seq = tagged_seq(&k)?;
                let row: CommandRow = decode(COMMANDS, &v)?;
                if row.seq != seq || store.seq_of(&row.command.uuid)? != Some(seq) {
                    return Err(corrupt(COMMANDS, format!("command #{seq} is not indexed")));
                }
            }
            Some(b't' | b'a' | b'p') => {
                let seq = tagged_seq(&k)?;
                store.command_at(seq)?;
                for id in target_list::decode(COMMANDS, &v)? {
                    if !channels.contains(&id) {
                        return Err(corrupt(COMMANDS, format!("#{seq} targets unknown {id}")));
                    }
                }
            }
            _ => return Err(corrupt(COMMANDS, "key without a row tag".into())),
        }
        rows += 1;
    }
    for kv in t.deliveries.iter() {
        let (k, v) = kv?;
        let (id, seq) = delivery_ids(&k)?;
        let row: DeliveryRow = decode(DELIVERIES, &v)?;
        if !channels.contains(&id) {
            return Err(corrupt(DELIVERIES, format!("{id}/#{seq}: unknown channel")));
        }
        let cmd = store.command_at(seq)?;
        if let Some(raw) = &row.raw_response {
            raw_body::unpack(DELIVERIES, raw, response_context(&id, &cmd.command.uuid))?;
        }
        rows += 1;
    }
    for kv in t.orphans.iter() {
        let (_, v) = kv?;
        let _: OrphanReport = decode(ORPHANS, &v)?;
        rows += 1;
    }
    for tree in [&t.last_seen, &t.cert_by_hash, &t.cert_by_enrollment] {
        for kv in tree.iter() {
            kv?;
            rows += 1;
        }
    }
    for kv in t.push_certs.iter() {
        let (_, v) = kv?;
        let _: crate::PushCertificate = decode(layout::PUSH_CERTS, &v)?;
        rows += 1;
    }
    for name in store.db.tree_names() {
        if name.starts_with(layout::KEYSPACE_PREFIX.as_bytes()) {
            for kv in store.db.open_tree(&name)?.iter() {
                kv?;
                rows += 1;
            }
        }
    }
    let live = store.index.snapshot();
    let disk = store.rebuild_index(false)?.snapshot();
    if live != disk {
        let differing = live
            .iter()
            .find(|(id, c)| disk.get(*id) != Some(*c))
            .map_or_else(|| "a channel".to_owned(), |(id, _)| id.to_string());
        return Err(corrupt(
            DELIVERIES,
            format!("the queue index disagrees with disk for {differing}"),
        ));
    }
    Ok(rows)
}

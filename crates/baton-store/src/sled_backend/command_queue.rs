//! [`CommandQueue`] and [`CommandResultStore`] on sled, and the consistency check.
//!
//! A command is one COMMANDS row however many channels get it; each channel has a DELIVERIES
//! row (state and result) and, while queued, a QUEUE row (order). Enqueue, report, cancel and
//! Authenticate change DELIVERIES and QUEUE in one transaction, so a command is never both final
//! and queued.

use std::collections::BTreeSet;
use std::time::SystemTime;

use baton_proto::{CommandUuid, EnrollmentId, Status};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionResult, TransactionalTree};

use super::layout::{
    self, COMMANDS, DELIVERIES, ENROLLMENTS, ORPHANS, QUEUE, channel_prefix, delivery_key,
    queue_key,
};
use super::rows::{DeliveryRow, QueueEntryRow, decode, decode_id, encode};
use super::{SledStore, abort, tx_error};
use crate::{
    CommandQueue, CommandResult, CommandResultStore, CommandState, Enrollment, NewCommand,
    OrphanReport, Priority, QueuedCommand, Report, ReportOutcome, StoreError, StoreResult,
    StoredCommand, unix_millis,
};

/// An enqueue with its rows encoded, ready to run inside a transaction.
#[derive(Debug)]
pub(crate) struct PreparedEnqueue {
    uuid: CommandUuid,
    priority: Priority,
    seq: u64,
    ids: Vec<EnrollmentId>,
    command_row: sled::IVec,
    entry_row: sled::IVec,
    delivery_row: sled::IVec,
}

impl SledStore {
    /// Encodes an enqueue and draws its sequence number.
    pub(crate) fn prepare_enqueue(
        &self,
        command: &NewCommand,
        to: &[EnrollmentId],
        now: SystemTime,
    ) -> StoreResult<PreparedEnqueue> {
        let now_ms = unix_millis(now);
        let seq = self.next_seq()?;
        let ids: BTreeSet<&EnrollmentId> = to.iter().collect();
        let stored = StoredCommand {
            uuid: command.uuid.clone(),
            request_type: command.request_type.clone(),
            body: command.body.clone(),
            priority: command.priority,
            created_at: now_ms,
        };
        let entry = QueueEntryRow {
            uuid: command.uuid.clone(),
            not_now_session: None,
        };
        let delivery = DeliveryRow {
            priority: command.priority.0,
            seq,
            state: CommandState::Queued,
            queued_at: now_ms,
            updated_at: now_ms,
            finished_at: None,
            not_now_count: 0,
            first_not_now_at: None,
            error_chain: Vec::new(),
            raw_response: None,
        };
        Ok(PreparedEnqueue {
            uuid: command.uuid.clone(),
            priority: command.priority,
            seq,
            ids: ids.into_iter().cloned().collect(),
            command_row: encode("command", &stored)?.into(),
            entry_row: encode("queue entry", &entry)?.into(),
            delivery_row: encode("delivery", &delivery)?.into(),
        })
    }
}

/// Runs a prepared enqueue inside a transaction over ENROLLMENTS, COMMANDS, QUEUE, DELIVERIES.
pub(crate) fn enqueue_in(
    en: &TransactionalTree,
    commands: &TransactionalTree,
    queue: &TransactionalTree,
    deliveries: &TransactionalTree,
    p: &PreparedEnqueue,
) -> ConflictableTransactionResult<(), StoreError> {
    let uuid_key = p.uuid.as_str().as_bytes();
    if commands.get(uuid_key)?.is_some() {
        return Err(abort(StoreError::DuplicateCommand(p.uuid.clone())));
    }
    commands.insert(uuid_key, p.command_row.clone())?;
    for id in &p.ids {
        if en.get(id.as_str().as_bytes())?.is_none() {
            return Err(abort(StoreError::UnknownEnrollment(id.clone())));
        }
        queue.insert(queue_key(id, p.priority, p.seq), p.entry_row.clone())?;
        deliveries.insert(delivery_key(id, &p.uuid), p.delivery_row.clone())?;
    }
    Ok(())
}

impl SledStore {
    fn session(&self, id: &EnrollmentId) -> StoreResult<u64> {
        Ok(self
            .t
            .sessions
            .get(id.as_str().as_bytes())?
            .and_then(|v| layout::read_u64_be(&v))
            .unwrap_or(0))
    }

    fn request_type(&self, uuid: &CommandUuid) -> StoreResult<(String, Priority)> {
        match self.t.commands.get(uuid.as_str().as_bytes())? {
            Some(v) => {
                let c: StoredCommand = decode(COMMANDS, &v)?;
                Ok((c.request_type, c.priority))
            }
            None => Err(StoreError::Corrupt {
                tree: COMMANDS,
                reason: format!("command {uuid} missing"),
            }),
        }
    }

    fn to_result(
        &self,
        id: &EnrollmentId,
        uuid: CommandUuid,
        row: DeliveryRow,
    ) -> StoreResult<CommandResult> {
        let (request_type, _) = self.request_type(&uuid)?;
        Ok(CommandResult {
            id: id.clone(),
            uuid,
            request_type,
            priority: Priority(row.priority),
            state: row.state,
            queued_at: row.queued_at,
            updated_at: row.updated_at,
            finished_at: row.finished_at,
            not_now_count: row.not_now_count,
            first_not_now_at: row.first_not_now_at,
            error_chain: row.error_chain,
            raw_response: row.raw_response,
        })
    }

    fn store_report(
        &self,
        report: &Report,
        uuid: &CommandUuid,
        now_ms: u64,
    ) -> StoreResult<ReportOutcome> {
        let id = &report.id;
        let dk = delivery_key(id, uuid);
        let final_state = CommandState::from_final_status(report.status);
        let not_now = report.status == Status::NotNow;
        (
            &self.t.deliveries,
            &self.t.queue,
            &self.t.orphans,
            &self.t.sessions,
        )
            .transaction(|(d, q, o, s)| {
                let row = match d.get(&dk)? {
                    Some(v) => decode::<DeliveryRow>(DELIVERIES, &v).map_err(abort)?,
                    None => {
                        let orphan = OrphanReport {
                            id: id.clone(),
                            uuid: uuid.clone(),
                            status: report.status,
                            error_chain: report.error_chain.clone(),
                            raw: report.raw.clone(),
                            received_at: now_ms,
                        };
                        o.insert(dk.as_slice(), encode("orphan", &orphan).map_err(abort)?)?;
                        return Ok(ReportOutcome::Orphan);
                    }
                };
                let mut row = row;
                let qk = queue_key(id, Priority(row.priority), row.seq);
                if let Some(state) = final_state {
                    if row.state.is_final() {
                        return Ok(ReportOutcome::Duplicate);
                    }
                    if row.state.is_queued() {
                        q.remove(qk)?;
                    }
                    row.state = state;
                    row.finished_at = Some(now_ms);
                    row.updated_at = now_ms;
                    row.error_chain = report.error_chain.clone();
                    row.raw_response = Some(report.raw.clone());
                    d.insert(dk.as_slice(), encode("delivery", &row).map_err(abort)?)?;
                    Ok(ReportOutcome::Completed)
                } else if not_now {
                    if !row.state.is_queued() {
                        return Ok(ReportOutcome::Duplicate);
                    }
                    let session = s
                        .get(id.as_str().as_bytes())?
                        .and_then(|v| layout::read_u64_be(&v))
                        .unwrap_or(0);
                    row.state = CommandState::NotNow;
                    row.not_now_count = row.not_now_count.saturating_add(1);
                    row.first_not_now_at.get_or_insert(now_ms);
                    row.updated_at = now_ms;
                    row.raw_response = Some(report.raw.clone());
                    d.insert(dk.as_slice(), encode("delivery", &row).map_err(abort)?)?;
                    let entry = QueueEntryRow {
                        uuid: uuid.clone(),
                        not_now_session: Some(session),
                    };
                    q.insert(qk, encode("queue entry", &entry).map_err(abort)?)?;
                    Ok(ReportOutcome::Deferred)
                } else {
                    // A status this build does not know: keep it as an orphan, change nothing.
                    let orphan = OrphanReport {
                        id: id.clone(),
                        uuid: uuid.clone(),
                        status: report.status,
                        error_chain: report.error_chain.clone(),
                        raw: report.raw.clone(),
                        received_at: now_ms,
                    };
                    o.insert(dk.as_slice(), encode("orphan", &orphan).map_err(abort)?)?;
                    Ok(ReportOutcome::Orphan)
                }
            })
            .map_err(tx_error)
    }
}

impl CommandQueue for SledStore {
    fn enqueue(
        &self,
        command: &NewCommand,
        to: &[EnrollmentId],
        now: SystemTime,
    ) -> StoreResult<()> {
        let p = self.prepare_enqueue(command, to, now)?;
        (
            &self.t.enrollments,
            &self.t.commands,
            &self.t.queue,
            &self.t.deliveries,
        )
            .transaction(|(en, c, q, d)| enqueue_in(en, c, q, d, &p))
            .map_err(tx_error)?;
        self.commit()
    }

    fn next_command(&self, id: &EnrollmentId) -> StoreResult<Option<QueuedCommand>> {
        let Some(e) = self.t.enrollments.get(id.as_str().as_bytes())? else {
            return Ok(None);
        };
        let e: Enrollment = decode(ENROLLMENTS, &e)?;
        if !e.enabled {
            return Ok(None);
        }
        let session = self.session(id)?;
        for kv in self.t.queue.scan_prefix(channel_prefix(id)) {
            let (_, v) = kv?;
            let entry: QueueEntryRow = decode(QUEUE, &v)?;
            if entry.not_now_session == Some(session) {
                continue;
            }
            let Some(c) = self.t.commands.get(entry.uuid.as_str().as_bytes())? else {
                return Err(StoreError::Corrupt {
                    tree: COMMANDS,
                    reason: format!("queued command {} missing", entry.uuid),
                });
            };
            let c: StoredCommand = decode(COMMANDS, &c)?;
            return Ok(Some(QueuedCommand {
                uuid: c.uuid,
                request_type: c.request_type,
                body: c.body,
                priority: c.priority,
            }));
        }
        Ok(None)
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
        self.t
            .sessions
            .update_and_fetch(id.as_str().as_bytes(), |old| {
                let n = old.and_then(layout::read_u64_be).unwrap_or(0);
                Some(layout::u64_be(n.wrapping_add(1)).to_vec())
            })?;
        Ok(())
    }

    fn cancel(&self, id: &EnrollmentId, uuid: &CommandUuid, now: SystemTime) -> StoreResult<bool> {
        let now_ms = unix_millis(now);
        let dk = delivery_key(id, uuid);
        let cancelled = (&self.t.deliveries, &self.t.queue)
            .transaction(|(d, q)| {
                let Some(v) = d.get(&dk)? else {
                    return Ok(false);
                };
                let mut row: DeliveryRow = decode(DELIVERIES, &v).map_err(abort)?;
                if !row.state.is_queued() {
                    return Ok(false);
                }
                q.remove(queue_key(id, Priority(row.priority), row.seq))?;
                row.state = CommandState::Cancelled;
                row.updated_at = now_ms;
                d.insert(dk.as_slice(), encode("delivery", &row).map_err(abort)?)?;
                Ok(true)
            })
            .map_err(tx_error)?;
        if cancelled {
            self.commit()?;
        }
        Ok(cancelled)
    }

    fn command(&self, uuid: &CommandUuid) -> StoreResult<Option<StoredCommand>> {
        self.t
            .commands
            .get(uuid.as_str().as_bytes())?
            .map(|v| decode(COMMANDS, &v))
            .transpose()
    }

    fn list(&self, id: &EnrollmentId) -> StoreResult<Vec<CommandResult>> {
        let mut rows = Vec::new();
        for kv in self.t.deliveries.scan_prefix(channel_prefix(id)) {
            let (k, v) = kv?;
            let uuid: CommandUuid = decode_id(DELIVERIES, layout::key_rest(&k).unwrap_or(&[]))?;
            let row: DeliveryRow = decode(DELIVERIES, &v)?;
            rows.push((row.seq, self.to_result(id, uuid, row)?));
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
        match self.t.deliveries.get(delivery_key(id, uuid))? {
            None => Ok(None),
            Some(v) => {
                let row: DeliveryRow = decode(DELIVERIES, &v)?;
                Ok(Some(self.to_result(id, uuid.clone(), row)?))
            }
        }
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

/// Reads every tree end to end, decodes every row of the fixed trees and checks that QUEUE and
/// DELIVERIES agree. Returns the number of rows read.
pub(crate) fn verify(store: &SledStore) -> StoreResult<u64> {
    let t = &store.t;
    let mut rows = 0u64;
    for kv in t.enrollments.iter() {
        let (k, v) = kv?;
        let id: EnrollmentId = decode_id(ENROLLMENTS, &k)?;
        let e: Enrollment = decode(ENROLLMENTS, &v)?;
        if e.id != id {
            return Err(corrupt(ENROLLMENTS, format!("row for {id} names {}", e.id)));
        }
        rows += 1;
    }
    for kv in t.commands.iter() {
        let (_, v) = kv?;
        let _: StoredCommand = decode(COMMANDS, &v)?;
        rows += 1;
    }
    for kv in t.queue.iter() {
        let (k, v) = kv?;
        let entry: QueueEntryRow = decode(QUEUE, &v)?;
        let chan = layout::key_channel(&k).ok_or_else(|| corrupt(QUEUE, "bad key".into()))?;
        let id: EnrollmentId = decode_id(QUEUE, chan)?;
        let Some(dv) = t.deliveries.get(delivery_key(&id, &entry.uuid))? else {
            return Err(corrupt(
                QUEUE,
                format!("{id}/{} has no delivery", entry.uuid),
            ));
        };
        let row: DeliveryRow = decode(DELIVERIES, &dv)?;
        if !row.state.is_queued() || queue_key(&id, Priority(row.priority), row.seq) != *k {
            return Err(corrupt(
                QUEUE,
                format!("{id}/{} queued but {:?}", entry.uuid, row.state),
            ));
        }
        if t.commands.get(entry.uuid.as_str().as_bytes())?.is_none() {
            return Err(corrupt(COMMANDS, format!("{} missing", entry.uuid)));
        }
        rows += 1;
    }
    for kv in t.deliveries.iter() {
        let (k, v) = kv?;
        let chan = layout::key_channel(&k).ok_or_else(|| corrupt(DELIVERIES, "bad key".into()))?;
        let id: EnrollmentId = decode_id(DELIVERIES, chan)?;
        let uuid: CommandUuid = decode_id(DELIVERIES, layout::key_rest(&k).unwrap_or(&[]))?;
        let row: DeliveryRow = decode(DELIVERIES, &v)?;
        let queued = t
            .queue
            .get(queue_key(&id, Priority(row.priority), row.seq))?
            .map(|q| decode::<QueueEntryRow>(QUEUE, &q))
            .transpose()?
            .is_some_and(|q| q.uuid == uuid);
        if queued != row.state.is_queued() {
            return Err(corrupt(
                DELIVERIES,
                format!("{id}/{uuid} is {:?} but queued={queued}", row.state),
            ));
        }
        rows += 1;
    }
    for kv in t.orphans.iter() {
        let (_, v) = kv?;
        let _: OrphanReport = decode(ORPHANS, &v)?;
        rows += 1;
    }
    for tree in [
        &t.last_seen,
        &t.sessions,
        &t.cert_by_hash,
        &t.cert_by_enrollment,
    ] {
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
    Ok(rows)
}

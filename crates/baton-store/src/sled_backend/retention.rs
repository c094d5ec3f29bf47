//! Retention of finished commands and their results on sled
//! ([`crate::CommandResultStore::prune_finished`]).
//!
//! Commands are looked at in enqueue order (their `'c'` rows), from a cursor kept in memory, so
//! a pass over many calls does not look at the same command twice; it stops at the first
//! command enqueued at or after the horizon. A command goes when its delivery on every channel
//! of its target list (`'t'`, or `'a'` once answered everywhere) has a row that ended before
//! the horizon and is not in a queue. Deleting it renames its target list to `'p'` first (one
//! atomic write on COMMANDS: from then on nothing is implied by it), then deletes the delivery
//! rows in chunks, then the `'p'`, `'c'` and `'u'` rows in one batch. A crash in between
//! leaves a `'p'` row, which the next call finishes first. Nothing here is on a device's
//! request path, and no channel lock is held across more than one lookup.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use baton_proto::EnrollmentId;

use super::SledStore;
use super::channel_index::{CommandInfo, lock};
use super::command_queue::tagged_seq;
use super::layout::{
    COMMANDS, answered_key, command_key, delivery_key, pruning_key, targets_key, uuid_key,
};
use super::rows::CommandRow;
use super::target_list;
use crate::{PruneReport, StoreResult};

/// Delivery rows deleted per batch.
const DELETE_CHUNK: usize = 512;

/// Which target list a command has.
enum Targets {
    /// `'t'`: some deliveries may still be implied (queued).
    Listed(Vec<EnrollmentId>),
    /// `'a'`: every delivery has a row.
    Answered(Vec<EnrollmentId>),
}

impl SledStore {
    /// See [`crate::CommandResultStore::prune_finished`].
    pub(crate) fn prune_finished_commands(
        &self,
        before_ms: u64,
        budget: usize,
    ) -> StoreResult<PruneReport> {
        let _serial = self
            .prune_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let budget = budget.max(1);
        let mut report = PruneReport::default();
        let mut work = 0usize;
        // Commands a previous call began to delete.
        let pruning: Vec<(u64, Vec<EnrollmentId>)> = self
            .t
            .commands
            .scan_prefix(b"p")
            .map(|kv| {
                let (k, v) = kv?;
                Ok((tagged_seq(&k)?, target_list::decode(COMMANDS, &v)?))
            })
            .collect::<StoreResult<_>>()?;
        for (seq, ids) in pruning {
            work += ids.len().max(1);
            report.results += self.delete_command(seq, &ids)?;
            report.commands += 1;
        }
        let start = self.prune_cursor.load(Ordering::Relaxed);
        let mut done = true;
        for kv in self
            .t
            .commands
            .range(command_key(start).as_slice()..command_key(u64::MAX).as_slice())
        {
            if work >= budget {
                done = false;
                break;
            }
            let (k, v) = kv?;
            let seq = tagged_seq(&k)?;
            let row: CommandRow = super::rows::decode(COMMANDS, &v)?;
            if row.command.created_at >= before_ms {
                break;
            }
            self.prune_cursor.store(seq + 1, Ordering::Relaxed);
            let targets = self.targets_of(seq)?;
            let ids = match &targets {
                Some(Targets::Listed(ids) | Targets::Answered(ids)) => ids.as_slice(),
                None => &[],
            };
            work += ids.len().max(1);
            if !self.ended_everywhere_before(&row, targets.as_ref(), before_ms)? {
                continue;
            }
            // From here on the list implies nothing: it only says which rows to delete.
            let mut mark = sled::Batch::default();
            mark.remove(targets_key(seq).as_slice());
            mark.remove(answered_key(seq).as_slice());
            mark.insert(
                pruning_key(seq).as_slice(),
                target_list::encode(&ids.iter().collect::<Vec<_>>()),
            );
            self.t.commands.apply_batch(mark)?;
            report.results += self.delete_command(seq, ids)?;
            report.commands += 1;
        }
        if done {
            self.prune_cursor.store(0, Ordering::Relaxed);
        }
        report.done = done;
        if report.commands > 0 {
            self.commit()?;
        }
        Ok(report)
    }

    /// The command's target list, whichever it has.
    fn targets_of(&self, seq: u64) -> StoreResult<Option<Targets>> {
        if let Some(v) = self.t.commands.get(targets_key(seq))? {
            return Ok(Some(Targets::Listed(target_list::decode(COMMANDS, &v)?)));
        }
        if let Some(v) = self.t.commands.get(answered_key(seq))? {
            return Ok(Some(Targets::Answered(target_list::decode(COMMANDS, &v)?)));
        }
        Ok(None)
    }

    /// True when no channel has the command queued and every delivery row ended before
    /// `before_ms` (finished, or cancelled: then its last update counts).
    fn ended_everywhere_before(
        &self,
        row: &CommandRow,
        targets: Option<&Targets>,
        before_ms: u64,
    ) -> StoreResult<bool> {
        let (ids, all_answered) = match targets {
            Some(Targets::Listed(ids)) => (ids.as_slice(), false),
            Some(Targets::Answered(ids)) => (ids.as_slice(), true),
            // Cannot tell which rows are the command's: keep it.
            None => return Ok(false),
        };
        let order = CommandInfo {
            command: row.command.clone(),
            seq: row.seq,
        }
        .order();
        for id in ids {
            if let Some(c) = self.index.get(id)
                && lock(&c).queue.contains_key(&order)
            {
                return Ok(false);
            }
            match self.delivery_row(&delivery_key(id, row.seq))? {
                Some(d) => {
                    let ended = d.finished_at.unwrap_or(d.updated_at);
                    if d.state.is_queued() || ended >= before_ms {
                        return Ok(false);
                    }
                }
                // A listed delivery without a row is implied: queued.
                None if !all_answered => return Ok(false),
                None => {}
            }
        }
        Ok(true)
    }

    /// Deletes the delivery rows of command `seq` on `ids`, then its remaining rows. Returns
    /// how many delivery rows there were.
    fn delete_command(&self, seq: u64, ids: &[EnrollmentId]) -> StoreResult<u64> {
        let mut results = 0;
        for chunk in ids.chunks(DELETE_CHUNK) {
            let mut batch = sled::Batch::default();
            for id in chunk {
                let k = delivery_key(id, seq);
                if self.t.deliveries.contains_key(&k)? {
                    results += 1;
                }
                batch.remove(k);
            }
            self.t.deliveries.apply_batch(batch)?;
        }
        let mut batch = sled::Batch::default();
        if let Some(cmd) = self.command_row(seq)? {
            batch.remove(uuid_key(&cmd.command.uuid));
        }
        batch.remove(command_key(seq).as_slice());
        batch.remove(pruning_key(seq).as_slice());
        self.t.commands.apply_batch(batch)?;
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use baton_proto::{CommandUuid, PushMagic, PushToken, Status, Topic};

    use super::*;
    use crate::{
        AuthenticateRecord, CommandQueue, CommandResultStore, EnrollmentStore, NewCommand,
        Priority, Report, TokenUpdateRecord,
    };

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn enroll(s: &SledStore, name: &str) -> EnrollmentId {
        let id = EnrollmentId::device(name).unwrap();
        let topic = Topic::new("com.apple.mgmt.External.t").unwrap();
        s.authenticate(
            &AuthenticateRecord {
                id: id.clone(),
                topic: topic.clone(),
                raw: b"a".to_vec(),
            },
            at(0),
        )
        .unwrap();
        s.token_update(
            &TokenUpdateRecord {
                id: id.clone(),
                topic,
                push_token: PushToken::new(vec![1; 32]).unwrap(),
                push_magic: PushMagic::new("m").unwrap(),
                unlock_token: None,
                raw: b"t".to_vec(),
            },
            at(1),
        )
        .unwrap();
        id
    }

    fn enqueue_and_ack(s: &SledStore, name: &str, ids: &[EnrollmentId]) {
        let c = NewCommand {
            uuid: CommandUuid::new(name).unwrap(),
            request_type: "X".into(),
            body: b"<x/>".to_vec(),
            priority: Priority::NORMAL,
        };
        s.enqueue(&c, ids, at(10)).unwrap();
        for id in ids {
            s.report(
                &Report {
                    id: id.clone(),
                    status: Status::Acknowledged,
                    command_uuid: Some(c.uuid.clone()),
                    error_chain: Vec::new(),
                    raw: b"ack".to_vec(),
                },
                at(11),
            )
            .unwrap();
        }
    }

    /// A version-2 store lost the target lists of fully answered commands at open; the
    /// migration gives them back, so retention can delete those commands and their results.
    #[test]
    fn the_migration_from_version_2_lets_retention_find_old_results() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let ids = [enroll(&s, "d1"), enroll(&s, "d2")];
            enqueue_and_ack(&s, "c1", &ids);
        }
        {
            // What version 2 left: no list at all, schema_version 2.
            let db = sled::open(dir.path()).unwrap();
            let commands = db.open_tree(COMMANDS).unwrap();
            for prefix in [b"t", b"a"] {
                for kv in commands.scan_prefix(prefix) {
                    commands.remove(kv.unwrap().0).unwrap();
                }
            }
            super::super::schema::set_version(&db, 2).unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), super::super::SCHEMA_VERSION);
        let r = s.prune_finished(at(100), 100).unwrap();
        assert_eq!((r.results, r.commands, r.done), (2, 1, true));
        assert!(
            s.command(&CommandUuid::new("c1").unwrap())
                .unwrap()
                .is_none()
        );
        assert!(s.t.deliveries.is_empty());
        s.verify().unwrap();
    }

    /// A crash after a command was marked for deletion leaves a `'p'` row; the next call
    /// finishes the deletion, and the marked deliveries were never implied queued meanwhile.
    #[test]
    fn a_deletion_cut_short_is_finished_by_the_next_call() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStore::open(dir.path()).unwrap();
            let ids = [enroll(&s, "d1"), enroll(&s, "d2")];
            enqueue_and_ack(&s, "c1", &ids);
            // Mark as the first step of a deletion does, then "crash" (drop).
            let (k, v) = s.t.commands.scan_prefix(b"t").next().unwrap().unwrap();
            let seq = tagged_seq(&k).unwrap();
            s.t.commands.remove(&k).unwrap();
            s.t.commands.insert(pruning_key(seq).as_slice(), v).unwrap();
            s.t.deliveries.remove(delivery_key(&ids[0], seq)).unwrap();
            s.flush().unwrap();
        }
        let s = SledStore::open(dir.path()).unwrap();
        assert!(
            s.next_command(&EnrollmentId::device("d1").unwrap())
                .unwrap()
                .is_none()
        );
        // Any horizon: the command was already chosen.
        let r = s.prune_finished(at(0), 100).unwrap();
        assert_eq!((r.results, r.commands), (1, 1));
        assert!(
            s.command(&CommandUuid::new("c1").unwrap())
                .unwrap()
                .is_none()
        );
        assert!(s.t.deliveries.is_empty());
        assert!(s.t.commands.is_empty());
        s.verify().unwrap();
    }
}

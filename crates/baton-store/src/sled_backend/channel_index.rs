//! The in-memory index of every channel's command queue, rebuilt from disk at open.
//!
//! It answers `next_command` without touching sled and lets a report find its queue entry
//! without a scan. It is derived data: the trees are the truth, and [`ChannelIndex::rebuild`]
//! recomputes it from them (which `verify` uses to check the live index).
//!
//! Locking: each channel has its own mutex. A call holds at most one channel lock at a time,
//! except Authenticate and CheckOut, which lock a device's channels in id order. A channel lock
//! is held across the sled write of a change to that channel and the matching index update,
//! never across an fsync wait.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use baton_proto::{CommandUuid, EnrollmentId};

#[cfg(test)]
use crate::Priority;
use crate::StoredCommand;

/// A queued command as the index keeps it, shared by every channel it is queued on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CommandInfo {
    /// The command.
    pub(crate) command: StoredCommand,
    /// Its enqueue sequence number (FIFO order within a priority).
    pub(crate) seq: u64,
}

impl CommandInfo {
    /// The queue order key: higher priority first, then FIFO.
    pub(crate) fn order(&self) -> QueueOrder {
        (255 - self.command.priority.0, self.seq)
    }
}

/// `(255 - priority, seq)`: ascending order is delivery order.
pub(crate) type QueueOrder = (u8, u64);

/// One queued command on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueEntry {
    /// The command.
    pub(crate) info: Arc<CommandInfo>,
    /// True when a DELIVERIES row exists (the command was answered NotNow); false while the
    /// delivery is only implied by the command's target list.
    pub(crate) explicit: bool,
    /// The session in which the device last answered NotNow.
    pub(crate) not_now_session: Option<u64>,
}

/// A channel's state in memory.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    /// Whether the channel may be handed commands.
    pub(crate) enabled: bool,
    /// The current session (see `CommandQueue::begin_session`).
    pub(crate) session: u64,
    /// Queued commands in delivery order.
    pub(crate) queue: BTreeMap<QueueOrder, QueueEntry>,
}

impl Channel {
    /// The queue entry of a command, if it is queued here. Linear in the queue length, which is
    /// short in practice (a queue drains as the device works through it).
    pub(crate) fn find(&self, uuid: &CommandUuid) -> Option<(QueueOrder, &QueueEntry)> {
        self.queue
            .iter()
            .find(|(_, e)| e.info.command.uuid == *uuid)
            .map(|(k, e)| (*k, e))
    }

    /// The first command not deferred in the current session.
    pub(crate) fn next(&self) -> Option<&QueueEntry> {
        self.queue
            .values()
            .find(|e| e.not_now_session != Some(self.session))
    }
}

impl Channel {
    /// The first command deferred (answered NotNow) in the current session.
    pub(crate) fn first_deferred(&self) -> Option<&QueueEntry> {
        self.queue
            .values()
            .find(|e| e.not_now_session == Some(self.session))
    }
}

/// A shared handle to one channel.
pub(crate) type ChannelRef = Arc<Mutex<Channel>>;

/// Locks a channel; a poisoned lock is still usable because every change to a channel is
/// written to sled before the index, so the index never runs ahead of disk.
pub(crate) fn lock(c: &ChannelRef) -> MutexGuard<'_, Channel> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every channel, by id.
#[derive(Debug, Default)]
pub(crate) struct ChannelIndex {
    channels: RwLock<HashMap<EnrollmentId, ChannelRef>>,
}

impl ChannelIndex {
    /// The channel, if the store knows it.
    pub(crate) fn get(&self, id: &EnrollmentId) -> Option<ChannelRef> {
        self.channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// The channel, created (disabled, empty) if new.
    pub(crate) fn get_or_create(&self, id: &EnrollmentId, session: u64) -> ChannelRef {
        if let Some(c) = self.get(id) {
            return c;
        }
        self.channels
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Channel {
                    session,
                    ..Channel::default()
                }))
            })
            .clone()
    }

    /// Replaces the whole index (after import).
    pub(crate) fn replace(&self, other: ChannelIndex) {
        let other = other
            .channels
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        *self
            .channels
            .write()
            .unwrap_or_else(PoisonError::into_inner) = other;
    }

    /// A copy of every channel's state for comparisons: id -> (enabled, queue as
    /// `(order, uuid, explicit, not_now_session)`), without session numbers.
    pub(crate) fn snapshot(&self) -> BTreeMap<EnrollmentId, ChannelSnapshot> {
        let channels: Vec<(EnrollmentId, ChannelRef)> = self
            .channels
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        channels
            .into_iter()
            .map(|(id, c)| {
                let c = lock(&c);
                let queue = c
                    .queue
                    .iter()
                    .map(|(k, e)| {
                        (
                            *k,
                            e.info.command.uuid.clone(),
                            e.explicit,
                            e.not_now_session,
                        )
                    })
                    .collect();
                (id, (c.enabled, queue))
            })
            .collect()
    }
}

/// A channel as [`ChannelIndex::snapshot`] shows it.
pub(crate) type ChannelSnapshot = (bool, Vec<(QueueOrder, CommandUuid, bool, Option<u64>)>);

/// Builds an index from rows already decoded by the caller.
#[derive(Debug, Default)]
pub(crate) struct IndexBuilder {
    index: HashMap<EnrollmentId, Channel>,
}

impl IndexBuilder {
    /// Adds a channel.
    pub(crate) fn channel(&mut self, id: EnrollmentId, enabled: bool, session: u64) {
        let c = self.index.entry(id).or_default();
        c.enabled = enabled;
        c.session = session;
    }

    /// Queues a command on a channel; false when the channel is unknown.
    pub(crate) fn queue(&mut self, id: &EnrollmentId, entry: QueueEntry) -> bool {
        let Some(c) = self.index.get_mut(id) else {
            return false;
        };
        c.queue.insert(entry.info.order(), entry);
        true
    }

    /// The finished index.
    pub(crate) fn build(self) -> ChannelIndex {
        ChannelIndex {
            channels: RwLock::new(
                self.index
                    .into_iter()
                    .map(|(k, v)| (k, Arc::new(Mutex::new(v))))
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, priority: Priority, seq: u64) -> Arc<CommandInfo> {
        Arc::new(CommandInfo {
            command: StoredCommand {
                uuid: CommandUuid::new(name).unwrap(),
                request_type: "X".into(),
                body: vec![],
                priority,
                created_at: 0,
            },
            seq,
        })
    }

    #[test]
    fn next_skips_commands_deferred_in_this_session() {
        let mut b = IndexBuilder::default();
        let id = EnrollmentId::device("d").unwrap();
        b.channel(id.clone(), true, 7);
        for (name, p, seq, nn) in [
            ("late-high", Priority::HIGH, 9, Some(7)),
            ("early", Priority::NORMAL, 1, Some(6)),
            ("low", Priority::LOW, 0, None),
        ] {
            let entry = QueueEntry {
                info: info(name, p, seq),
                explicit: nn.is_some(),
                not_now_session: nn,
            };
            assert!(b.queue(&id, entry));
        }
        assert!(!b.queue(
            &EnrollmentId::device("other").unwrap(),
            QueueEntry {
                info: info("x", Priority::LOW, 1),
                explicit: false,
                not_now_session: None,
            }
        ));
        let index = b.build();
        let c = index.get(&id).unwrap();
        let c = lock(&c);
        assert_eq!(c.next().unwrap().info.command.uuid.as_str(), "early");
        let uuid = CommandUuid::new("low").unwrap();
        assert_eq!(c.find(&uuid).unwrap().0, (255 - Priority::LOW.0, 0));
    }
}

//! The command-queue role: enqueue a command to many channels, hand out the next one, record the
//! device's report, cancel and list.
//!
//! Sessions: a session of a channel's command channel begins when the device reports `Idle`. A
//! command answered `NotNow` in the current session is skipped by
//! [`next_command`](CommandQueue::next_command) until the next session begins.

use std::time::SystemTime;

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, Status};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// A command's priority: higher comes out first; equal priorities come out in enqueue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Priority(pub u8);

impl Priority {
    /// Background work (inventory refreshes).
    pub const LOW: Priority = Priority(64);
    /// The default.
    pub const NORMAL: Priority = Priority(128);
    /// Sign-out removals and other work a person waits for.
    pub const HIGH: Priority = Priority(192);
}

impl Default for Priority {
    fn default() -> Self {
        Priority::NORMAL
    }
}

/// A command to enqueue: the encoded command plist, opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// The command's `CommandUUID`; unique in the store.
    pub uuid: CommandUuid,
    /// The `RequestType` (for listings; the store does not interpret it).
    pub request_type: String,
    /// The encoded command plist sent to the device.
    pub body: Vec<u8>,
    /// Its priority.
    pub priority: Priority,
}

/// One command enqueued to several channels, for batch operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    /// The command.
    pub command: NewCommand,
    /// The channels whose queues get it.
    pub to: Vec<EnrollmentId>,
}

/// A stored command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCommand {
    /// Its `CommandUUID`.
    pub uuid: CommandUuid,
    /// Its `RequestType`.
    pub request_type: String,
    /// The encoded command plist.
    pub body: Vec<u8>,
    /// Its priority.
    pub priority: Priority,
    /// When it was enqueued, Unix milliseconds.
    pub created_at: u64,
}

/// A device's report on the command channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The reporting channel.
    pub id: EnrollmentId,
    /// The reported status.
    pub status: Status,
    /// The `CommandUUID` answered (absent for `Idle`).
    pub command_uuid: Option<CommandUuid>,
    /// The `ErrorChain` (for `Error`).
    pub error_chain: Vec<ErrorChainItem>,
    /// The raw report body, kept as received.
    pub raw: Vec<u8>,
}

/// What a report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportOutcome {
    /// `Idle`: a new session began.
    SessionStarted,
    /// A final status: the command left the queue and its result is stored.
    Completed,
    /// `NotNow`: the command stays queued, skipped for the rest of this session.
    Deferred,
    /// The command already had a final result; nothing changed.
    Duplicate,
    /// The command is not known for this channel; the report is stored as an orphan. The
    /// store keeps at most [`MAX_ORPHANS_PER_DEVICE`](crate::MAX_ORPHANS_PER_DEVICE) orphan
    /// reports per device (its channel and its user channels together): the most recent ones.
    Orphan {
        /// Older orphan reports of the device deleted to stay within that bound.
        dropped: u32,
    },
}

/// Where a command stands for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CommandState {
    /// Queued, never answered.
    Queued,
    /// Queued, answered `NotNow` at least once.
    NotNow,
    /// Final: `Acknowledged`.
    Acknowledged,
    /// Final: `Error`.
    Error,
    /// Final: `CommandFormatError`.
    CommandFormatError,
    /// Removed from the queue by [`CommandQueue::cancel`] or an Authenticate, unanswered.
    Cancelled,
}

impl CommandState {
    /// True while the command is in the queue.
    pub fn is_queued(self) -> bool {
        matches!(self, CommandState::Queued | CommandState::NotNow)
    }

    /// True once the device gave a final answer.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            CommandState::Acknowledged | CommandState::Error | CommandState::CommandFormatError
        )
    }

    /// The state a final report status leads to.
    pub fn from_final_status(status: Status) -> Option<Self> {
        match status {
            Status::Acknowledged => Some(CommandState::Acknowledged),
            Status::Error => Some(CommandState::Error),
            Status::CommandFormatError => Some(CommandState::CommandFormatError),
            _ => None,
        }
    }
}

/// A command handed to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedCommand {
    /// Its `CommandUUID`.
    pub uuid: CommandUuid,
    /// Its `RequestType`.
    pub request_type: String,
    /// The encoded command plist.
    pub body: Vec<u8>,
    /// Its priority.
    pub priority: Priority,
}

/// The command queues of all channels.
///
/// Every mutating call except [`begin_session`](Self::begin_session) is durable when it returns.
pub trait CommandQueue {
    /// Enqueues one command to every channel in `to`, atomically: either every channel gets it
    /// or none does. Duplicate ids in `to` are ignored. Fails for an unknown channel or an
    /// already used CommandUUID.
    fn enqueue(
        &self,
        command: &NewCommand,
        to: &[EnrollmentId],
        now: SystemTime,
    ) -> StoreResult<()>;

    /// The next command for the channel: highest priority first, then FIFO; commands answered
    /// NotNow in the current session are skipped. None for a disabled channel.
    fn next_command(&self, id: &EnrollmentId) -> StoreResult<Option<QueuedCommand>>;

    /// The first queued command answered NotNow in the current session (the one
    /// [`next_command`](Self::next_command) skips), in delivery order. The command channel
    /// offers it once more when nothing else is left, so that a session with deferred work
    /// ends on NotNow and the device polls by itself when its conditions change (decision
    /// 0015). None for a disabled channel.
    fn next_deferred(&self, id: &EnrollmentId) -> StoreResult<Option<QueuedCommand>>;

    /// Records a report. `Idle` begins a session; final statuses complete the command;
    /// `NotNow` defers it. Duplicates are harmless and unknown commands are stored as orphans,
    /// at most [`MAX_ORPHANS_PER_DEVICE`](crate::MAX_ORPHANS_PER_DEVICE) per device (storing
    /// one more deletes the device's oldest). The report is stored as given: bounding the size
    /// of its raw body and ErrorChain is the caller's policy.
    fn report(&self, report: &Report, now: SystemTime) -> StoreResult<ReportOutcome>;

    /// Begins a new session for the channel (what an `Idle` report does).
    fn begin_session(&self, id: &EnrollmentId) -> StoreResult<()>;

    /// Removes a queued command from the channel's queue; true when it was queued.
    fn cancel(&self, id: &EnrollmentId, uuid: &CommandUuid, now: SystemTime) -> StoreResult<bool>;

    /// The stored command, whatever its state on each channel.
    fn command(&self, uuid: &CommandUuid) -> StoreResult<Option<StoredCommand>>;

    /// Every command ever enqueued to the channel (queued, finished and cancelled), in enqueue
    /// order, with states and timestamps.
    fn list(&self, id: &EnrollmentId) -> StoreResult<Vec<crate::CommandResult>>;
}

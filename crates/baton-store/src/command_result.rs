//! The command-result role: what became of each command on each channel, and orphan reports.

use std::time::SystemTime;

use baton_proto::{CommandUuid, EnrollmentId, ErrorChainItem, Status};
use serde::{Deserialize, Serialize};

use crate::{CommandState, Priority, StoreResult};

/// A command's state and result on one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The channel.
    pub id: EnrollmentId,
    /// The command.
    pub uuid: CommandUuid,
    /// Its `RequestType`.
    pub request_type: String,
    /// Its priority.
    pub priority: Priority,
    /// Where it stands.
    pub state: CommandState,
    /// When it was enqueued, Unix milliseconds.
    pub queued_at: u64,
    /// Last change, Unix milliseconds.
    pub updated_at: u64,
    /// When a final report arrived, Unix milliseconds.
    pub finished_at: Option<u64>,
    /// How many times the device answered NotNow.
    pub not_now_count: u32,
    /// When the device first answered NotNow, Unix milliseconds.
    pub first_not_now_at: Option<u64>,
    /// The ErrorChain of an `Error` report.
    pub error_chain: Vec<ErrorChainItem>,
    /// The raw body of the latest report about the command.
    pub raw_response: Option<Vec<u8>>,
}

/// Most orphan reports kept per device (its own channel and its user channels together). A
/// device can send any number of reports about CommandUUIDs it made up; only the newest this
/// many are kept, so their disk cost is bounded per device.
pub const MAX_ORPHANS_PER_DEVICE: usize = 16;

/// A report about a command the channel was never sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanReport {
    /// The reporting channel.
    pub id: EnrollmentId,
    /// The unknown command.
    pub uuid: CommandUuid,
    /// The reported status.
    pub status: Status,
    /// The ErrorChain.
    pub error_chain: Vec<ErrorChainItem>,
    /// The raw body.
    pub raw: Vec<u8>,
    /// When it arrived, Unix milliseconds.
    pub received_at: u64,
}

/// What one [`CommandResultStore::prune_finished`] call deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Results (one command on one channel) deleted.
    pub results: u64,
    /// Commands deleted.
    pub commands: u64,
    /// True when every command old enough was looked at; false when the budget ran out and
    /// another call continues where this one stopped.
    pub done: bool,
}

/// Read access to command results, and their retention.
pub trait CommandResultStore {
    /// The command's state and result on a channel.
    fn command_result(
        &self,
        id: &EnrollmentId,
        uuid: &CommandUuid,
    ) -> StoreResult<Option<CommandResult>>;

    /// Orphan reports of a channel, by CommandUUID (the latest per CommandUUID; at most
    /// [`MAX_ORPHANS_PER_DEVICE`] for a device and its user channels together).
    fn orphan_reports(&self, id: &EnrollmentId) -> StoreResult<Vec<OrphanReport>>;

    /// Retention: deletes each command enqueued before `before` whose delivery on every
    /// channel ended (a final answer, or a cancel) before `before`, together with all its
    /// results. A command still queued (or NotNow'd) on any channel is never touched, nor are
    /// its results. Works through commands oldest first and stops after looking at about
    /// `budget` deliveries (at least one command), so one call is a bounded batch; call again
    /// until [`PruneReport::done`]. Afterwards the command and its results are gone from
    /// [`command`](crate::CommandQueue::command), [`list`](crate::CommandQueue::list) and
    /// [`command_result`](Self::command_result); a late report about it is an orphan.
    fn prune_finished(&self, before: SystemTime, budget: usize) -> StoreResult<PruneReport>;
}

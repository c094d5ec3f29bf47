//! The lock model: what a locked iPhone answers NotNow to, by lock state.
//!
//! iOS defers a command (answers `NotNow` without running it) when it needs data the lock keeps
//! out of reach. Two states matter [P MDMParser `processRequest:`]:
//! - passcode-locked (the screen is locked, the device was unlocked once since it started):
//!   [`DEFERRED_WHILE_PASSCODE_LOCKED`] (`_unavailableCommandsWhileLocked`; InstallProfile seen
//!   on devices too [M984, AF]);
//! - before the first unlock after a restart: those and [`DEFERRED_BEFORE_FIRST_UNLOCK`]
//!   (`_unavailableCommandsBeforeFirstUnlock`; CertificateList from iOS 15.4
//!   [Y certificate.list]).
//!
//! InstallApplication, RemoveApplication and Settings are not deferred for the lock [P].

use serde::{Deserialize, Serialize};

/// Deferred whenever the device is passcode-locked. [P `_unavailableCommandsWhileLocked`; M984]
pub const DEFERRED_WHILE_PASSCODE_LOCKED: &[&str] = &[
    "InstallProfile",
    "SecurityInfo",
    "InstallProvisioningProfile",
    "RequestUnlockToken",
];

/// Deferred, in addition, before the first unlock after a restart, including the media (book)
/// commands. [P `_unavailableCommandsBeforeFirstUnlock`; Y certificate.list]
pub const DEFERRED_BEFORE_FIRST_UNLOCK: &[&str] = &[
    "RemoveProfile",
    "CertificateList",
    "DeclarativeManagement",
    "InstallMedia",
    "RemoveMedia",
    "ManagedMediaList",
];

/// How the device is locked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LockState {
    /// Unlocked: nothing is deferred for the lock.
    #[default]
    Unlocked,
    /// The screen is locked with a passcode, after the first unlock since the device started.
    PasscodeLocked,
    /// Started and not unlocked since (the data-protection keys are still locked).
    BeforeFirstUnlock,
}

impl LockState {
    /// True unless unlocked.
    pub fn is_locked(self) -> bool {
        self != LockState::Unlocked
    }
}

/// True when iOS, in `state`, answers NotNow to `request_type` for the lock.
pub fn ios_defers(state: LockState, request_type: &str) -> bool {
    match state {
        LockState::Unlocked => false,
        LockState::PasscodeLocked => DEFERRED_WHILE_PASSCODE_LOCKED.contains(&request_type),
        LockState::BeforeFirstUnlock => {
            DEFERRED_WHILE_PASSCODE_LOCKED.contains(&request_type)
                || DEFERRED_BEFORE_FIRST_UNLOCK.contains(&request_type)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_settings_commands_are_never_deferred_for_the_lock() {
        for state in [LockState::PasscodeLocked, LockState::BeforeFirstUnlock] {
            for rt in ["InstallApplication", "RemoveApplication", "Settings"] {
                assert!(!ios_defers(state, rt), "{state:?} {rt}");
            }
        }
    }
}

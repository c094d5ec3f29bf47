//! App installs the device accepted but has not shown `Managed` yet, per device
//! ([`APP_INSTALLS_COLLECTION`], by device id).
//!
//! iOS answers InstallApplication with `Acknowledged`, `Identifier` and the current `State`
//! (usually `Queued`) and installs afterwards without reporting back; only
//! ManagedApplicationList shows how an install ends, and failure states are listed once
//! [Y application.install, application.managed.list; F28738]. So an acknowledged install is
//! recorded here, ManagedApplicationList is asked for at the end of that command session, at
//! the start of each later session and on a timer ([`PendingInstalls::next_poll_at`]), and each
//! list settles the pending installs: `Managed` is installed, a failure state, absence or no
//! progress within the install timeout counts a failure of the item ([`judge`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Keyspace collection: device id -> [`PendingInstalls`].
pub const APP_INSTALLS_COLLECTION: &str = "app_installs";

/// One acknowledged install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstall {
    /// The catalog item.
    pub item: String,
    /// When the device acknowledged it (unix ms).
    pub acknowledged_at: u64,
    /// The Ack's `State`.
    pub state: String,
}

/// The pending installs of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstalls {
    /// By bundle id.
    pub apps: BTreeMap<String, PendingInstall>,
    /// When the next timed ManagedApplicationList is due (unix ms).
    pub next_poll_at: u64,
}

/// What one ManagedApplicationList says about a pending install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `Managed`: installed.
    Installed,
    /// Still on its way.
    Pending,
    /// It failed, with the reason shown to the operator and the person.
    Failed(String),
}

/// Judges a pending install from its `Status` in ManagedApplicationList (None: not listed).
pub fn judge(
    status: Option<&str>,
    pending: &PendingInstall,
    now_ms: u64,
    timeout_ms: u64,
) -> Verdict {
    let waited = now_ms.saturating_sub(pending.acknowledged_at);
    match status {
        Some("Managed") => Verdict::Installed,
        None => Verdict::Failed(
            "the device accepted the install but does not list the app as managed".into(),
        ),
        Some(s) => match baton_assign::AppStatus::from_report(s) {
            baton_assign::AppStatus::InProgress(_) if waited > timeout_ms => {
                Verdict::Failed(format!(
                    "the install did not finish within {} s (device status {s})",
                    timeout_ms / 1000
                ))
            }
            baton_assign::AppStatus::InProgress(_) => Verdict::Pending,
            _ => Verdict::Failed(format!("the device reported the install as {s}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> PendingInstall {
        PendingInstall {
            item: "app".into(),
            acknowledged_at: 1_000,
            state: "Queued".into(),
        }
    }

    #[test]
    fn only_managed_is_installed() {
        let p = pending();
        assert_eq!(
            judge(Some("Managed"), &p, 2_000, 10_000),
            Verdict::Installed
        );
        assert_eq!(judge(Some("Queued"), &p, 2_000, 10_000), Verdict::Pending);
        assert_eq!(
            judge(Some("Prompting"), &p, 2_000, 10_000),
            Verdict::Pending
        );
        for failed in [
            "Failed",
            "UserRejected",
            "ManagementRejected",
            "ManagedButUninstalled",
        ] {
            assert!(matches!(
                judge(Some(failed), &p, 2_000, 10_000),
                Verdict::Failed(r) if r.contains(failed)
            ));
        }
        assert!(matches!(judge(None, &p, 2_000, 10_000), Verdict::Failed(_)));
    }

    #[test]
    fn an_install_that_never_settles_fails_after_the_timeout() {
        let p = pending();
        assert_eq!(
            judge(Some("Installing"), &p, 11_000, 10_000),
            Verdict::Pending
        );
        assert!(matches!(
            judge(Some("Installing"), &p, 11_001, 10_000),
            Verdict::Failed(r) if r.contains("did not finish")
        ));
    }
}

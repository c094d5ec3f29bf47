//! Fleet gauges for `/metrics`, read from the store at each scrape: enrolled devices,
//! devices with someone signed in, leases (timed and persistent), and devices whose last
//! hand-off is not clean.
//!
//! "Not clean" is the device's hand-off record (`reconciler::hand_off`): `not_clean` or
//! `given_up`, until a round proves it clean or someone signs in. A scrape reads every
//! enrollment, hand-off, lease and assignment once: O(devices), meant for a scrape interval
//! of 15 s or more.

use std::fmt::Write;

use baton_assign::NOBODY_USERNAME;
use baton_store::{Collection, Store};

use crate::admin::devices::ASSIGNEE_COLLECTION;
use crate::catalog::assignment_config::RecordError;
use crate::reconciler::hand_off;
use crate::session_policy::lease;

/// The gauges at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetGauges {
    /// Enabled device enrollments (user channels not counted).
    pub enrolled: u64,
    /// Devices assigned to someone other than nobody.
    pub signed_in: u64,
    /// Leases with an end.
    pub leases_timed: u64,
    /// Persistent leases ("Stay signed in?" answered Yes).
    pub leases_persistent: u64,
    /// Enrolled devices whose latest hand-off is not clean or given up.
    pub not_clean: u64,
}

/// Why the gauges could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetGaugeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] baton_store::StoreError),
    /// A record did not decode.
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl FleetGauges {
    /// Reads the gauges from `store`.
    pub fn read(store: &dyn Store) -> Result<Self, FleetGaugeError> {
        let mut g = FleetGauges::default();
        for e in store.enrollments()? {
            if !e.enabled || e.id.parent() != e.id {
                continue;
            }
            g.enrolled += 1;
            if hand_off::of(store, &e.id)?.is_some_and(|h| h.state.is_not_clean()) {
                g.not_clean += 1;
            }
        }
        for (_, user) in store.scan_prefix(&Collection::new(ASSIGNEE_COLLECTION)?, b"")? {
            if user != NOBODY_USERNAME.as_bytes() {
                g.signed_in += 1;
            }
        }
        for l in lease::all(store)? {
            if l.lease.persistent {
                g.leases_persistent += 1;
            } else {
                g.leases_timed += 1;
            }
        }
        Ok(g)
    }

    /// Appends the gauges in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut gauge = |name: &str, help: &str, rows: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        gauge(
            "baton_devices_enrolled",
            "Enabled device enrollments.",
            &[("", self.enrolled)],
        );
        gauge(
            "baton_devices_signed_in",
            "Devices with someone signed in (assigned to a user other than nobody).",
            &[("", self.signed_in)],
        );
        gauge(
            "baton_leases",
            "Sign-in leases, by kind.",
            &[
                ("{kind=\"timed\"}", self.leases_timed),
                ("{kind=\"persistent\"}", self.leases_persistent),
            ],
        );
        gauge(
            "baton_devices_not_clean",
            "Devices whose last sign-out left something of the previous session (hand-off not \
             clean or given up).",
            &[("", self.not_clean)],
        );
    }
}

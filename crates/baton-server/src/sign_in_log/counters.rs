//! Counts of sign-in log entries by result and reason since the server started, for
//! `/metrics` (`baton_sign_ins_total{result,reason}`). Every stored entry passes through
//! [`super::publish`], which counts it here whether or not a webhook is configured; refused
//! attempts of locked-out users and devices are `result="failure",reason="locked_out"`.

use std::sync::atomic::{AtomicU64, Ordering};

use super::entry::{ReasonCode, SignInEntry, SignInResult};

/// Entries counted by (result, reason).
#[derive(Debug)]
pub struct SignInCounters {
    counts: Vec<AtomicU64>,
    /// Lockouts started, by scope: `[user, device]`.
    lockouts: [AtomicU64; 2],
}

impl Default for SignInCounters {
    fn default() -> Self {
        SignInCounters {
            counts: (0..SignInResult::ALL.len() * ReasonCode::ALL.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            lockouts: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

impl SignInCounters {
    fn slot(result: SignInResult, reason: ReasonCode) -> Option<usize> {
        let r = SignInResult::ALL.iter().position(|x| *x == result)?;
        let c = ReasonCode::ALL.iter().position(|x| *x == reason)?;
        Some(r * ReasonCode::ALL.len() + c)
    }

    /// Counts `entry`.
    pub fn count(&self, entry: &SignInEntry) {
        if let Some(i) = Self::slot(entry.result, entry.reason) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a lockout that started (a failed attempt crossed the threshold).
    pub fn lockout_started(&self, scope: crate::lockout::LockoutScope) {
        let i = match scope {
            crate::lockout::LockoutScope::Device => 1,
            _ => 0,
        };
        self.lockouts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The count for (result, reason).
    pub fn get(&self, result: SignInResult, reason: ReasonCode) -> u64 {
        Self::slot(result, reason).map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }

    /// Appends `baton_sign_ins_total` (non-zero rows only) and `baton_lockouts_total` to `out`.
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP baton_lockouts_total Lockouts started since start, by scope (a username or \
             a device).\n# TYPE baton_lockouts_total counter\n",
        );
        for (scope, n) in ["user", "device"].iter().zip(&self.lockouts) {
            out.push_str(&format!(
                "baton_lockouts_total{{scope=\"{scope}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP baton_sign_ins_total Sign-in log entries since start, by result and reason \
             (sign-ins, refusals incl. lockouts, interrupted prompts, sign-outs).\n",
        );
        out.push_str("# TYPE baton_sign_ins_total counter\n");
        for result in SignInResult::ALL {
            for reason in ReasonCode::ALL {
                let n = self.get(*result, *reason);
                if n > 0 {
                    out.push_str(&format!(
                        "baton_sign_ins_total{{result=\"{result}\",reason=\"{reason}\"}} {n}\n"
                    ));
                }
            }
        }
    }
}

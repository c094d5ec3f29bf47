//! Push counters for `/metrics`: pushes by result, coalesced requests, re-pushes, and the push
//! certificate's days left. Relaxed atomics; [`PushMetrics::render`] appends the text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use baton_apns::PushOutcome;

/// The `result` label values of `baton_push_total`.
pub const RESULTS: [&str; 5] = [
    "delivered",
    "token_invalid",
    "refused",
    "failed",
    "skipped_invalid_token",
];

/// Push counters.
#[derive(Debug)]
pub struct PushMetrics {
    results: [AtomicU64; RESULTS.len()],
    coalesced: AtomicU64,
    repushes: AtomicU64,
    certificate_days_left: AtomicI64,
}

impl Default for PushMetrics {
    fn default() -> Self {
        Self {
            results: std::array::from_fn(|_| AtomicU64::new(0)),
            coalesced: AtomicU64::new(0),
            repushes: AtomicU64::new(0),
            certificate_days_left: AtomicI64::new(-1),
        }
    }
}

/// The `result` label of an outcome.
pub fn result_label(outcome: &PushOutcome) -> &'static str {
    if outcome.is_delivered() {
        "delivered"
    } else if outcome.token_is_invalid() {
        "token_invalid"
    } else if matches!(outcome, PushOutcome::Permanent { .. }) {
        "refused"
    } else {
        "failed"
    }
}

impl PushMetrics {
    /// Counts one push (or skipped push) under `result`, one of [`RESULTS`].
    pub fn record(&self, result: &str) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.results[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Pushes counted under `result`.
    pub fn count(&self, result: &str) -> u64 {
        RESULTS
            .iter()
            .position(|r| *r == result)
            .map_or(0, |i| self.results[i].load(Ordering::Relaxed))
    }

    /// Counts push requests merged into a push already pending.
    pub fn coalesced(&self, n: u64) {
        self.coalesced.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts re-pushes by the periodic policy.
    pub fn repushed(&self, n: u64) {
        self.repushes.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the days left on the push certificate (-1: none configured).
    pub fn set_certificate_days_left(&self, days: i64) {
        self.certificate_days_left.store(days, Ordering::Relaxed);
    }

    /// Appends the push metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP baton_push_total APNs pushes by result.\n");
        out.push_str("# TYPE baton_push_total counter\n");
        for (result, counter) in RESULTS.iter().zip(&self.results) {
            let _ = writeln!(
                out,
                "baton_push_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        out.push_str(
            "# HELP baton_push_coalesced_total Push requests merged into a pending push.\n",
        );
        out.push_str("# TYPE baton_push_coalesced_total counter\n");
        let _ = writeln!(
            out,
            "baton_push_coalesced_total {}",
            self.coalesced.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_push_repush_total Re-pushes to devices that did not check in.\n",
        );
        out.push_str("# TYPE baton_push_repush_total counter\n");
        let _ = writeln!(
            out,
            "baton_push_repush_total {}",
            self.repushes.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP baton_push_certificate_days_left Days until the push certificate expires (-1: none).\n",
        );
        out.push_str("# TYPE baton_push_certificate_days_left gauge\n");
        let _ = writeln!(
            out,
            "baton_push_certificate_days_left {}",
            self.certificate_days_left.load(Ordering::Relaxed)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_counted_and_rendered() {
        let m = PushMetrics::default();
        m.record("delivered");
        m.record("delivered");
        m.record("token_invalid");
        m.record("no-such-result");
        m.set_certificate_days_left(12);
        assert_eq!(m.count("delivered"), 2);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains("baton_push_total{result=\"delivered\"} 2"));
        assert!(text.contains("baton_push_total{result=\"token_invalid\"} 1"));
        assert!(text.contains("baton_push_total{result=\"failed\"} 0"));
        assert!(text.contains("baton_push_certificate_days_left 12"));
    }
}

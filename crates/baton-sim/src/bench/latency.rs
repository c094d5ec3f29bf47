//! Latency samples and their percentiles.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: usize,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

/// Collected latencies (microseconds).
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    micros: Vec<u64>,
}

impl Latencies {
    /// Empty, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            micros: Vec::with_capacity(n),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Adds another set.
    pub fn merge(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.micros.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// The percentiles (nearest-rank).
    pub fn summary(mut self) -> LatencySummary {
        if self.micros.is_empty() {
            return LatencySummary::default();
        }
        self.micros.sort_unstable();
        let n = self.micros.len();
        let rank = |p: f64| {
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            self.micros[i] as f64 / 1000.0
        };
        let sum: u128 = self.micros.iter().map(|&m| u128::from(m)).sum();
        LatencySummary {
            count: n,
            mean_ms: sum as f64 / n as f64 / 1000.0,
            p50_ms: rank(0.50),
            p90_ms: rank(0.90),
            p99_ms: rank(0.99),
            max_ms: self.micros[n - 1] as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut l = Latencies::default();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }
}

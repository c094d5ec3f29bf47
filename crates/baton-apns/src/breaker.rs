//! A circuit breaker over the whole APNs service: after many consecutive retryable failures
//! (5xx, connection errors, timeouts) pushes fail fast for a cool-down, then one probe is let
//! through. Pure: the caller passes `now`.

use std::time::{Duration, Instant};

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (across all pushes) that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before a probe is allowed.
    pub cooldown: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 50,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakerState {
    /// Requests flow; `failures` consecutive failures so far.
    Closed {
        /// Consecutive failed attempts.
        failures: u32,
    },
    /// Requests fail fast until `until`.
    Open {
        /// When a probe may be sent.
        until: Instant,
    },
    /// One probe is in flight since `since`; others fail fast.
    HalfOpen {
        /// When the probe was let through.
        since: Instant,
    },
}

/// The circuit breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: BreakerState::Closed { failures: 0 },
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// May a request be sent at `now`?
    pub fn admit(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::Open { .. } => false,
            // A probe whose answer never came (its future was dropped) must not wedge the
            // breaker: after another cool-down a new probe goes.
            BreakerState::HalfOpen { since } if now >= since + self.config.cooldown => {
                self.state = BreakerState::HalfOpen { since: now };
                true
            }
            BreakerState::HalfOpen { .. } => false,
        }
    }

    /// APNs answered (any answer that is not a service failure): close the breaker.
    pub fn record_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    /// A service failure (5xx, connection error, timeout) at `now`.
    pub fn record_failure(&mut self, now: Instant) {
        self.state = match self.state {
            BreakerState::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold.max(1) {
                    BreakerState::Open {
                        until: now + self.config.cooldown,
                    }
                } else {
                    BreakerState::Closed { failures }
                }
            }
            BreakerState::HalfOpen { .. } => BreakerState::Open {
                until: now + self.config.cooldown,
            },
            open @ BreakerState::Open { .. } => open,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_after_cooldown() {
        let cfg = BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(10),
        };
        let mut b = CircuitBreaker::new(cfg);
        let t0 = Instant::now();
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.admit(t0));
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.admit(t0), "a success resets the count");
        b.record_failure(t0);
        assert!(!b.admit(t0 + Duration::from_secs(9)));
        // After the cool-down exactly one probe goes.
        assert!(b.admit(t0 + Duration::from_secs(10)));
        assert!(!b.admit(t0 + Duration::from_secs(11)));
        // The probe fails: open again.
        b.record_failure(t0 + Duration::from_secs(11));
        assert!(!b.admit(t0 + Duration::from_secs(20)));
        assert!(b.admit(t0 + Duration::from_secs(21)));
        b.record_success();
        assert!(b.admit(t0 + Duration::from_secs(21)));
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_lost_probe_does_not_wedge_the_breaker() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            cooldown: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        b.record_failure(t0);
        assert!(b.admit(t0 + Duration::from_secs(5)));
        assert!(!b.admit(t0 + Duration::from_secs(9)));
        assert!(b.admit(t0 + Duration::from_secs(10)));
    }
}

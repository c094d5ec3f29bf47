//! How fast a device works through its queue, and how often its connection drops: per-command
//! delays and a seeded chance of losing the connection mid-queue. Off by default; fleets and
//! benchmarks switch it on (`baton-sim fleet enroll --command-delay-ms ...`).
//!
//! Sources: each command is its own round trip, processed in order; InstallProfile with SCEP
//! takes seconds and InstallApplication waits for the App Store lookup before it answers
//! (ios-device-behaviour.md section 10 [P `_installApplication:…`]). The figures (e.g.
//! 0.3–2 s, 5 s for InstallApplication) are the review's suggestion, not measurements:
//! UNCONFIRMED. Every draw is deterministic: a function of the seed, the device's UDID and how
//! many draws that device made before.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Delays and drops. All zero: the device answers at once and never drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pacing {
    /// Shortest time to work on one command, milliseconds.
    #[serde(default)]
    pub command_delay_min_ms: u64,
    /// Longest time to work on one command, milliseconds (a delay is drawn evenly between the
    /// two).
    #[serde(default)]
    pub command_delay_max_ms: u64,
    /// InstallApplication's time instead (the App Store lookup), milliseconds; 0: as any other.
    #[serde(default)]
    pub install_application_delay_ms: u64,
    /// Chance, per thousand messages of a connection, that the connection drops after the
    /// message was sent: the reply is lost.
    #[serde(default)]
    pub drop_per_mille: u16,
    /// Seed of the draws.
    #[serde(default)]
    pub seed: u64,
}

impl Pacing {
    /// True when nothing is ever delayed or dropped.
    pub fn is_off(&self) -> bool {
        self.command_delay_max_ms == 0
            && self.install_application_delay_ms == 0
            && self.drop_per_mille == 0
    }

    /// The time to work on a command of `request_type`, given a random draw.
    pub fn command_delay(&self, request_type: &str, draw: u64) -> Duration {
        if request_type == "InstallApplication" && self.install_application_delay_ms > 0 {
            return Duration::from_millis(self.install_application_delay_ms);
        }
        let (lo, hi) = (
            self.command_delay_min_ms,
            self.command_delay_max_ms.max(self.command_delay_min_ms),
        );
        Duration::from_millis(lo + draw % (hi - lo + 1))
    }

    /// True when the connection drops, given a random draw.
    pub fn drops(&self, draw: u64) -> bool {
        self.drop_per_mille > 0 && draw % 1000 < u64::from(self.drop_per_mille)
    }
}

/// The `n`th draw of the device `udid` under `seed` (SplitMix64 of the three).
pub fn draw(seed: u64, udid: &str, n: u64) -> u64 {
    // FNV-1a of the UDID keeps devices of one fleet apart under one seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in udid.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ h ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_and_delays_stay_in_range() {
        assert_eq!(draw(7, "A", 3), draw(7, "A", 3));
        assert_ne!(draw(7, "A", 3), draw(7, "B", 3));
        let p = Pacing {
            command_delay_min_ms: 300,
            command_delay_max_ms: 2000,
            install_application_delay_ms: 5000,
            ..Pacing::default()
        };
        for n in 0..200 {
            let d = p.command_delay("ProfileList", draw(1, "A", n));
            assert!((300..=2000).contains(&(d.as_millis() as u64)), "{d:?}");
        }
        assert_eq!(
            p.command_delay("InstallApplication", 0),
            Duration::from_millis(5000)
        );
        let all = Pacing {
            drop_per_mille: 1000,
            ..Pacing::default()
        };
        assert!((0..50).all(|n| all.drops(draw(1, "A", n))));
        assert!(!Pacing::default().drops(0));
    }
}

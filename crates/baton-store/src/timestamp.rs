//! Times as stored: milliseconds since the Unix epoch in a `u64`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch; times before the epoch are stored as 0.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `SystemTime` for stored milliseconds.
pub fn from_unix_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip() {
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_millis(t), 1_700_000_000_123);
        assert_eq!(from_unix_millis(unix_millis(t)), t);
        assert_eq!(unix_millis(UNIX_EPOCH - Duration::from_secs(5)), 0);
    }
}

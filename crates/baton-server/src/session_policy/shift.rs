//! Shift end times: `"HH:MM"` in UTC ([`ShiftTime`]) and the next one after a moment
//! ([`next_shift_end`]). Pure: callers pass `now` in Unix milliseconds.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Milliseconds in a day (UTC days have no leap seconds in Unix time).
pub const DAY_MS: u64 = 86_400_000;

/// A time of day in UTC, to the minute, written `"HH:MM"` (`"00:00"` to `"23:59"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShiftTime {
    minute_of_day: u16,
}

/// Why a shift time was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShiftTimeError {
    /// Not two digits, a colon and two digits, or out of range.
    #[error("shift end {0:?} is not a time \"HH:MM\" between 00:00 and 23:59 (UTC)")]
    Invalid(String),
}

impl ShiftTime {
    /// The time `hour:minute`, or None when out of range.
    pub fn new(hour: u8, minute: u8) -> Option<Self> {
        (hour < 24 && minute < 60).then_some(ShiftTime {
            minute_of_day: u16::from(hour) * 60 + u16::from(minute),
        })
    }

    /// Parses `"HH:MM"` (exactly two digits each).
    pub fn parse(text: &str) -> Result<Self, ShiftTimeError> {
        let bad = || ShiftTimeError::Invalid(text.to_owned());
        let b = text.as_bytes();
        if b.len() != 5 || b[2] != b':' {
            return Err(bad());
        }
        let two = |hi: u8, lo: u8| -> Option<u8> {
            (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
        };
        let hour = two(b[0], b[1]).ok_or_else(bad)?;
        let minute = two(b[3], b[4]).ok_or_else(bad)?;
        Self::new(hour, minute).ok_or_else(bad)
    }

    /// Milliseconds after midnight UTC.
    pub fn ms_of_day(self) -> u64 {
        u64::from(self.minute_of_day) * 60_000
    }
}

impl fmt::Display for ShiftTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}",
            self.minute_of_day / 60,
            self.minute_of_day % 60
        )
    }
}

impl TryFrom<String> for ShiftTime {
    type Error = ShiftTimeError;
    fn try_from(s: String) -> Result<Self, ShiftTimeError> {
        Self::parse(&s)
    }
}

impl From<ShiftTime> for String {
    fn from(t: ShiftTime) -> String {
        t.to_string()
    }
}

/// The first shift end strictly after `now_ms` (Unix milliseconds), or None without shift
/// ends. A shift end equal to `now` counts as tomorrow's, so a sign-in at 07:00 sharp with a
/// 07:00 shift end lasts until 07:00 the next day, not zero seconds.
pub fn next_shift_end(ends: &[ShiftTime], now_ms: u64) -> Option<u64> {
    let into_day = now_ms % DAY_MS;
    let midnight = now_ms - into_day;
    ends.iter()
        .map(|end| {
            let at = end.ms_of_day();
            if at > into_day {
                midnight + at
            } else {
                midnight + DAY_MS + at
            }
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-01T00:00:00Z.
    const DAY0: u64 = 1_709_251_200_000;

    fn at(hour: u64, minute: u64) -> u64 {
        DAY0 + (hour * 60 + minute) * 60_000
    }

    fn t(s: &str) -> ShiftTime {
        ShiftTime::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_hh_mm() {
        assert_eq!(t("07:00").ms_of_day(), 7 * 3_600_000);
        assert_eq!(t("23:59").to_string(), "23:59");
        assert_eq!(t("00:05").to_string(), "00:05");
        for bad in [
            "24:00", "7:00", "07:60", "0700", "07:0a", "", "07:00 ", "-1:00", "+7:00",
        ] {
            assert!(ShiftTime::parse(bad).is_err(), "{bad:?} accepted");
        }
        let json: Vec<ShiftTime> = serde_json::from_str(r#"["19:00","07:00"]"#).unwrap();
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"["19:00","07:00"]"#
        );
        assert!(serde_json::from_str::<ShiftTime>(r#""25:00""#).is_err());
    }

    #[test]
    fn next_end_is_later_today_or_tomorrow() {
        let ends = [t("07:00"), t("19:00")];
        // Mid-morning: this evening.
        assert_eq!(next_shift_end(&ends, at(10, 30)), Some(at(19, 0)));
        // Early morning: this morning.
        assert_eq!(next_shift_end(&ends, at(3, 0)), Some(at(7, 0)));
        // Late evening: crosses midnight to tomorrow morning.
        assert_eq!(next_shift_end(&ends, at(23, 30)), Some(at(24 + 7, 0)));
        // Exactly at a shift end: the next one, not now.
        assert_eq!(next_shift_end(&ends, at(19, 0)), Some(at(24 + 7, 0)));
        // One shift end only, already passed today: tomorrow.
        assert_eq!(next_shift_end(&[t("06:00")], at(6, 1)), Some(at(24 + 6, 0)));
        // Midnight itself as a shift end, seen just before midnight.
        assert_eq!(next_shift_end(&[t("00:00")], at(23, 59)), Some(at(24, 0)));
        assert_eq!(next_shift_end(&[], at(12, 0)), None);
    }
}

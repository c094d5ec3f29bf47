//! The operator's time zone ([`OperatorZone`], an IANA name such as `Asia/Tokyo`): shift ends
//! are times of day in it, and every time a person or an operator reads is written in it, with
//! its date. The tz database is compiled in (jiff's bundled copy), so a container without
//! `/usr/share/zoneinfo` knows every zone, and daylight saving is applied from the rules, not
//! from a fixed offset. Pure: times are Unix milliseconds passed in.

use std::fmt;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, Disambiguation, TimeZone};
use serde::{Serialize, Serializer};

use super::shift::ShiftTime;

/// An IANA time zone, kept with the name it was given.
#[derive(Clone)]
pub struct OperatorZone {
    name: String,
    tz: TimeZone,
}

/// Why a time zone name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// Not a name in the tz database.
    #[error(
        "unknown time zone {0:?}: use an IANA name such as \"Europe/Berlin\", \"Asia/Tokyo\" or \"UTC\""
    )]
    Unknown(String),
}

impl OperatorZone {
    /// UTC (the default).
    pub fn utc() -> Self {
        OperatorZone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// The zone named `name` in the tz database (`Asia/Tokyo`, `America/New_York`, `UTC`).
    pub fn parse(name: &str) -> Result<Self, ZoneError> {
        let name = name.trim();
        let tz = TimeZone::get(name).map_err(|_| ZoneError::Unknown(name.to_owned()))?;
        Ok(OperatorZone {
            name: name.to_owned(),
            tz,
        })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn timestamp(ms: u64) -> Timestamp {
        i64::try_from(ms)
            .ok()
            .and_then(|ms| Timestamp::from_millisecond(ms).ok())
            .unwrap_or(Timestamp::MAX)
    }

    /// `2026-12-08 07:00 JST`: the date, the time to the minute and the zone's abbreviation
    /// (or its offset where the zone has none, e.g. `+09`).
    pub fn format(&self, ms: u64) -> String {
        let zoned = Self::timestamp(ms).to_zoned(self.tz.clone());
        zoned.strftime("%Y-%m-%d %H:%M %Z").to_string()
    }

    /// The first of `ends` strictly after `now_ms`, each a time of day in this zone. On a
    /// day when the clock skips that time (spring forward) the shift ends at the moment the
    /// clock jumps (02:30 in a 02:00 -> 03:00 gap ends at 03:00); on a day it happens twice
    /// (fall back) at the first. None without shift ends.
    pub fn next_shift_end(&self, ends: &[ShiftTime], now_ms: u64) -> Option<u64> {
        let now = Self::timestamp(now_ms);
        let today: Date = now.to_zoned(self.tz.clone()).date();
        let mut best: Option<u64> = None;
        // Today, tomorrow and the day after cover every case, including a day of 23 or 25
        // hours.
        for offset in 0..3_i64 {
            let Ok(day) = today.checked_add(jiff::Span::new().days(offset)) else {
                continue;
            };
            for end in ends {
                let minute = end.ms_of_day() / 60_000;
                let Ok(time) = Time::new(
                    i8::try_from(minute / 60).unwrap_or(0),
                    i8::try_from(minute % 60).unwrap_or(0),
                    0,
                    0,
                ) else {
                    continue;
                };
                let Ok(at) = self.at(day, time) else {
                    continue;
                };
                let Ok(at_ms) = u64::try_from(at.as_millisecond()) else {
                    continue;
                };
                if at_ms > now_ms && best.is_none_or(|b| at_ms < b) {
                    best = Some(at_ms);
                }
            }
        }
        best
    }

    /// The instant `time` on `day` here: in a gap, the moment the clock jumps (the end of
    /// the gap); in a fold, the earlier of the two.
    fn at(&self, day: Date, time: Time) -> Result<Timestamp, jiff::Error> {
        let ambiguous = self.tz.to_ambiguous_timestamp(day.to_datetime(time));
        let earlier = ambiguous.disambiguate(Disambiguation::Earlier)?;
        if let AmbiguousOffset::Gap { .. } = ambiguous.offset() {
            // `earlier` reads the skipped time with the new offset, which falls before the
            // jump; the jump is the zone's next transition.
            return Ok(self
                .tz
                .following(earlier)
                .next()
                .map_or(earlier, |t| t.timestamp()));
        }
        Ok(earlier)
    }
}

impl Default for OperatorZone {
    fn default() -> Self {
        Self::utc()
    }
}

impl fmt::Debug for OperatorZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OperatorZone").field(&self.name).finish()
    }
}

impl fmt::Display for OperatorZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for OperatorZone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for OperatorZone {}

impl Serialize for OperatorZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl std::str::FromStr for OperatorZone {
    type Err = ZoneError;
    fn from_str(s: &str) -> Result<Self, ZoneError> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        let t: Timestamp = rfc3339.parse().unwrap();
        u64::try_from(t.as_millisecond()).unwrap()
    }

    fn t(s: &str) -> ShiftTime {
        ShiftTime::parse(s).unwrap()
    }

    #[test]
    fn names_come_from_the_tz_database() {
        assert_eq!(
            OperatorZone::parse("Asia/Tokyo").unwrap().name(),
            "Asia/Tokyo"
        );
        assert_eq!(OperatorZone::parse(" UTC ").unwrap().name(), "UTC");
        for bad in ["", "Mars/Olympus", "JST+9", "Asia/Tokio"] {
            assert!(OperatorZone::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = OperatorZone::parse("Asia/Tokio").unwrap_err().to_string();
        assert!(err.contains("IANA"), "{err}");
    }

    #[test]
    fn times_carry_their_date_and_zone() {
        // The case: 22:04 UTC is the next morning in Tokyo.
        let at = ms("2026-12-07T22:04:00Z");
        assert_eq!(OperatorZone::utc().format(at), "2026-12-07 22:04 UTC");
        assert_eq!(
            OperatorZone::parse("Asia/Tokyo").unwrap().format(at),
            "2026-12-08 07:04 JST"
        );
        let berlin = OperatorZone::parse("Europe/Berlin").unwrap();
        assert_eq!(
            berlin.format(ms("2026-01-15T12:00:00Z")),
            "2026-01-15 13:00 CET"
        );
        assert_eq!(
            berlin.format(ms("2026-07-15T12:00:00Z")),
            "2026-07-15 14:00 CEST"
        );
    }

    #[test]
    fn shift_ends_are_local_times_of_day() {
        let tokyo = OperatorZone::parse("Asia/Tokyo").unwrap();
        let ends = [t("07:00"), t("19:00")];
        // 22:04 UTC = 07:04 JST: the next end is 19:00 JST = 10:00 UTC.
        assert_eq!(
            tokyo.next_shift_end(&ends, ms("2026-12-07T22:04:00Z")),
            Some(ms("2026-12-08T10:00:00Z"))
        );
        // Exactly at an end: the next one.
        assert_eq!(
            tokyo.next_shift_end(&ends, ms("2026-12-08T10:00:00Z")),
            Some(ms("2026-12-08T22:00:00Z"))
        );
        assert_eq!(tokyo.next_shift_end(&[], 0), None);
        // UTC gives what the UTC-only rule gave.
        assert_eq!(
            OperatorZone::utc().next_shift_end(&ends, ms("2026-12-07T22:04:00Z")),
            Some(ms("2026-12-08T07:00:00Z"))
        );
    }

    #[test]
    fn shift_ends_follow_daylight_saving() {
        let ny = OperatorZone::parse("America/New_York").unwrap();
        let seven = [t("07:00")];
        // Winter (EST, -5) and summer (EDT, -4): 07:00 local is a different UTC time.
        assert_eq!(
            ny.next_shift_end(&seven, ms("2026-03-07T20:00:00Z")),
            Some(ms("2026-03-08T11:00:00Z")),
            "the night DST starts (08 March 2026), 07:00 is already EDT"
        );
        assert_eq!(
            ny.next_shift_end(&seven, ms("2026-03-06T20:00:00Z")),
            Some(ms("2026-03-07T12:00:00Z"))
        );
        assert_eq!(
            ny.next_shift_end(&seven, ms("2026-11-01T04:30:00Z")),
            Some(ms("2026-11-01T12:00:00Z")),
            "the morning DST ends (01 Nov 2026), 07:00 is EST again"
        );
        // 02:30 does not exist on 08 March: the shift ends when the clock jumps (07:00 UTC).
        assert_eq!(
            ny.next_shift_end(&[t("02:30")], ms("2026-03-08T05:00:00Z")),
            Some(ms("2026-03-08T07:00:00Z"))
        );
        // 01:30 happens twice on 01 November: the first (EDT, 05:30 UTC).
        assert_eq!(
            ny.next_shift_end(&[t("01:30")], ms("2026-11-01T04:00:00Z")),
            Some(ms("2026-11-01T05:30:00Z"))
        );
    }
}

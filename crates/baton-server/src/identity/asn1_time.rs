//! Time conversions for the identity module: ASN.1 UTCTime / GeneralizedTime (the CMS
//! `signingTime` attribute), openssl certificate dates, and `SystemTime`, all as Unix seconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::error::ErrorStack;

use super::der::{TAG_GENERALIZED_TIME, TAG_UTC_TIME};

/// Seconds since the Unix epoch (negative before 1970), saturating far outside any real date.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs())
            .map(|s| -s)
            .unwrap_or(i64::MIN),
    }
}

/// The `SystemTime` for a count of Unix seconds.
pub(crate) fn system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// Unix seconds of an openssl certificate date.
pub(crate) fn openssl_unix_seconds(time: &Asn1TimeRef) -> Result<i64, ErrorStack> {
    let epoch = Asn1Time::from_unix(0)?;
    let diff = epoch.diff(time)?;
    Ok(i64::from(diff.days) * 86_400 + i64::from(diff.secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Reads `count` ASCII digits as a number.
fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
    })
}

/// Parses a DER UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) value into Unix
/// seconds. Fractional seconds and time-zone offsets (not allowed in DER) are refused.
pub(crate) fn parse_time(tag: u8, value: &[u8]) -> Option<i64> {
    let (year, rest) = match tag {
        TAG_UTC_TIME if value.len() == 13 => {
            let yy = digits(value.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, value.get(2..)?)
        }
        TAG_GENERALIZED_TIME if value.len() == 15 => (digits(value.get(..4)?)?, value.get(4..)?),
        _ => return None,
    };
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let month = digits(rest.get(0..2)?)?;
    let day = digits(rest.get(2..4)?)?;
    let hour = digits(rest.get(4..6)?)?;
    let minute = digits(rest.get(6..8)?)?;
    let second = digits(rest.get(8..10)?)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Formats Unix seconds as a UTCTime value (`YYMMDDHHMMSSZ`); `None` outside 1950..=2049.
pub(crate) fn format_utc_time(unix: i64) -> Option<String> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1950..=2049).contains(&year) {
        return None;
    }
    Some(format!(
        "{:02}{month:02}{day:02}{:02}{:02}{:02}Z",
        year % 100,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_dates() {
        assert_eq!(parse_time(TAG_UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(
            parse_time(TAG_UTC_TIME, b"240229123456Z"),
            Some(1_709_210_096)
        );
        assert_eq!(
            parse_time(TAG_GENERALIZED_TIME, b"20240229123456Z"),
            Some(1_709_210_096)
        );
        assert_eq!(
            parse_time(TAG_UTC_TIME, b"491231235959Z"),
            Some(2_524_607_999)
        );
        assert_eq!(
            parse_time(TAG_UTC_TIME, b"500101000000Z"),
            Some(-631_152_000)
        );
    }

    #[test]
    fn refuses_malformed_times() {
        for bad in [
            &b"2402291234Z"[..],
            b"240229123456+",
            b"241329123456Z",
            b"24022912345aZ",
            b"240229253456Z",
            b"",
        ] {
            assert_eq!(parse_time(TAG_UTC_TIME, bad), None, "{bad:?}");
        }
        assert_eq!(parse_time(0x04, b"240229123456Z"), None);
    }

    #[test]
    fn format_round_trips() {
        for unix in [0, 1_709_210_096, 2_524_607_999, -631_152_000, 951_782_400] {
            let text = format_utc_time(unix).unwrap();
            assert_eq!(
                parse_time(TAG_UTC_TIME, text.as_bytes()),
                Some(unix),
                "{text}"
            );
        }
        assert_eq!(format_utc_time(2_524_608_000), None);
    }

    #[test]
    fn system_time_round_trips() {
        for unix in [-5, 0, 1_700_000_000] {
            assert_eq!(unix_seconds(system_time(unix)), unix);
        }
    }

    #[test]
    fn openssl_dates() {
        let t = Asn1Time::from_unix(1_700_000_123).unwrap();
        assert_eq!(openssl_unix_seconds(&t).unwrap(), 1_700_000_123);
    }
}

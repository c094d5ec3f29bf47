//! `GET /api/v1/sign-in-log`: the sign-in log, newest first, as a JSON array or as CSV
//! (`format=csv` or `Accept: text/csv`).
//!
//! Query filters: `username`, `device`, `result`, `reason` (the snake_case codes), `since`,
//! `until` (RFC 3339 such as `2024-05-01T08:00:00Z`, a date `2024-05-01` meaning its midnight
//! UTC, Unix seconds, or a time ago: `90s`, `30m`, `1h`, `2d`, `1w`; `since` is inclusive,
//! `until` exclusive) and `limit` (default 100,
//! 1 to 10000). A bad value is a 400 JSON error.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use baton_store::Keyspace;
use serde::Deserialize;

use super::blocking;
use crate::error_response::ApiError;
use crate::sign_in_log::{self, DEFAULT_LIST_LIMIT, Filter, MAX_LIST_LIMIT};
use crate::state::AppState;

/// The CSV content type.
pub const CSV_CONTENT_TYPE: &str = "text/csv; charset=utf-8";

/// The query string, as given (parsed by [`SignInLogQuery::filter`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SignInLogQuery {
    /// Username, compared case-insensitively.
    pub username: Option<String>,
    /// Device enrollment id.
    pub device: Option<String>,
    /// `success`, `failure`, `interrupted` or `signed_out`.
    pub result: Option<String>,
    /// A reason code.
    pub reason: Option<String>,
    /// Earliest time (inclusive).
    pub since: Option<String>,
    /// Latest time (exclusive).
    pub until: Option<String>,
    /// How many entries (default 100, at most 10000).
    pub limit: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// How to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

impl SignInLogQuery {
    /// The store filter these parameters describe, relative times counted back from now.
    pub fn filter(&self) -> Result<Filter, ApiError> {
        self.filter_at(baton_store::unix_millis(std::time::SystemTime::now()))
    }

    /// [`Self::filter`] with relative times (`1h`) counted back from `now_ms`.
    pub fn filter_at(&self, now_ms: u64) -> Result<Filter, ApiError> {
        let non_empty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let bad = |e: crate::sign_in_log::UnknownCode| ApiError::BadRequest(e.to_string());
        let limit = match non_empty(&self.limit) {
            None => DEFAULT_LIST_LIMIT,
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (1..=MAX_LIST_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be a whole number from 1 to {MAX_LIST_LIMIT}, not {raw:?}"
                    )));
                }
            },
        };
        let since_ms = non_empty(&self.since)
            .map(|s| parse_time_at("since", &s, now_ms))
            .transpose()?;
        let until_ms = non_empty(&self.until)
            .map(|s| parse_time_at("until", &s, now_ms))
            .transpose()?;
        if let (Some(s), Some(u)) = (since_ms, until_ms)
            && s > u
        {
            return Err(ApiError::BadRequest("since is after until".into()));
        }
        Ok(Filter {
            username: non_empty(&self.username),
            device: non_empty(&self.device),
            result: non_empty(&self.result)
                .map(|r| r.parse())
                .transpose()
                .map_err(bad)?,
            reason: non_empty(&self.reason)
                .map(|r| r.parse())
                .transpose()
                .map_err(bad)?,
            since_ms,
            until_ms,
            limit,
        })
    }

    /// JSON or CSV: `format` wins, else `Accept: text/csv` means CSV.
    fn format(&self, headers: &HeaderMap) -> Result<Format, ApiError> {
        match self.format.as_deref().map(str::trim) {
            Some(f) if f.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
            Some(f) if f.eq_ignore_ascii_case("json") => Ok(Format::Json),
            Some(f) if !f.is_empty() => Err(ApiError::BadRequest(format!(
                "format must be json or csv, not {f:?}"
            ))),
            _ => {
                let wants_csv = headers
                    .get_all(header::ACCEPT)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|m| {
                        m.split(';')
                            .next()
                            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/csv"))
                    });
                Ok(if wants_csv { Format::Csv } else { Format::Json })
            }
        }
    }
}

/// Parses `since`/`until`: Unix seconds, an RFC 3339 date-time, a date (midnight UTC), or a
/// time ago (`90s`, `30m`, `1h`, `2d`, `1w`) counted back from `now_ms`. Returns Unix
/// milliseconds.
pub fn parse_time_at(name: &str, raw: &str, now_ms: u64) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "{name} must be RFC 3339 (2024-05-01T08:00:00Z), a date (2024-05-01), Unix seconds \
             or a time ago (30m, 1h, 2d, 1w), not {raw:?}"
        ))
    };
    let s = raw.trim();
    if let Some(ago) = relative_ms(s) {
        return Ok(now_ms.saturating_sub(ago));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .ok()
            .and_then(|secs| secs.checked_mul(1000))
            .ok_or_else(bad);
    }
    rfc3339_millis(s).ok_or_else(bad)
}

/// The length of a relative time (`90s`, `30m`, `1h`, `2d`, `1w`) in milliseconds.
fn relative_ms(s: &str) -> Option<u64> {
    let unit = match s.as_bytes().last()? {
        b's' => 1_000,
        b'm' => 60_000,
        b'h' => 3_600_000,
        b'd' => 86_400_000,
        b'w' => 7 * 86_400_000,
        _ => return None,
    };
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Unix milliseconds of an RFC 3339 date-time (`T`, `t` or space between date and time;
/// `Z` or a `±HH:MM` offset; optional fraction) or a bare date. None when invalid or before
/// 1970.
fn rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return u64::try_from(days.checked_mul(86_400_000)?).ok();
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0_i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..3 {
            millis *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    u64::try_from(secs.checked_mul(1000)?.checked_add(millis)?).ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The answer for `query` over `store`: a JSON array or a CSV document, newest first.
pub fn answer(
    store: &dyn Keyspace,
    query: &SignInLogQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let format = query.format(headers)?;
    let filter = query.filter()?;
    let entries = sign_in_log::list(store, &filter)?;
    Ok(match format {
        Format::Json => Json(entries).into_response(),
        Format::Csv => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(CSV_CONTENT_TYPE),
            )],
            sign_in_log::to_csv(&entries),
        )
            .into_response(),
    })
}

/// `GET /api/v1/sign-in-log`.
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<SignInLogQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    blocking(move || answer(state.store.as_ref(), &query, &headers)).await
}

#[cfg(test)]
mod tests {

    fn parse_time(name: &str, raw: &str) -> Result<u64, ApiError> {
        parse_time_at(name, raw, 0)
    }

    #[test]
    fn relative_times_count_back_from_now() {
        let now = 1_800_000_000_000;
        let at = |s: &str| parse_time_at("since", s, now).unwrap();
        assert_eq!(at("1h"), now - 3_600_000);
        assert_eq!(at(" 30m "), now - 1_800_000);
        assert_eq!(at("90s"), now - 90_000);
        assert_eq!(at("2d"), now - 2 * 86_400_000);
        assert_eq!(at("1w"), now - 7 * 86_400_000);
        assert_eq!(at("0h"), now);
        // Longer than the epoch: the start of time, not an overflow.
        assert_eq!(at("999999999w"), 0);
        for bad in ["h", "1y", "-1h", "1.5h", "1 h", "1H0"] {
            assert!(parse_time_at("since", bad, now).is_err(), "{bad:?}");
        }
        let q = SignInLogQuery {
            since: Some("1h".into()),
            ..SignInLogQuery::default()
        };
        assert_eq!(q.filter_at(now).unwrap().since_ms, Some(now - 3_600_000));
    }

    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::get;
    use baton_store::{SledStore, Store};
    use http_body_util::BodyExt;
    use tower::Service;

    use super::*;
    use crate::sign_in_log::{ReasonCode, SignInEntry, SignInHow, SignInResult};
    use crate::webhook::EventSink;

    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn times_parse_in_every_documented_form() {
        let ms = |s: &str| parse_time("since", s).unwrap();
        assert_eq!(ms("1700000000"), T0);
        assert_eq!(ms("2023-11-14T22:13:20Z"), T0);
        assert_eq!(ms("2023-11-14t22:13:20.5z"), T0 + 500);
        assert_eq!(ms("2023-11-14T22:13:20.123456Z"), T0 + 123);
        assert_eq!(ms("2023-11-15T00:13:20+02:00"), T0);
        assert_eq!(ms("2023-11-14T20:13:20-02:00"), T0);
        assert_eq!(ms("2023-11-14 22:13:20Z"), T0);
        assert_eq!(ms("1970-01-01"), 0);
        assert_eq!(ms("2000-02-29"), 951_782_400_000);
        for bad in [
            "",
            "yesterday",
            "2023-11-14T22:13:20",
            "2023-02-29",
            "2023-13-01",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0200",
            "1969-12-31T23:59:59Z",
            "-5",
            "99999999999999999999",
        ] {
            assert!(parse_time("since", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_filters_are_400_and_good_ones_parse() {
        let q = |f: fn(&mut SignInLogQuery)| {
            let mut q = SignInLogQuery::default();
            f(&mut q);
            q.filter()
        };
        assert_eq!(q(|_| {}).unwrap(), Filter::default());
        for bad in [
            q(|q| q.result = Some("won".into())),
            q(|q| q.reason = Some("typo".into())),
            q(|q| q.limit = Some("0".into())),
            q(|q| q.limit = Some("10001".into())),
            q(|q| q.limit = Some("many".into())),
            q(|q| q.since = Some("soon".into())),
            q(|q| {
                q.since = Some("2024-01-02".into());
                q.until = Some("2024-01-01".into());
            }),
        ] {
            assert_eq!(bad.unwrap_err().status(), StatusCode::BAD_REQUEST);
        }
        let f = q(|q| {
            q.result = Some("signed_out".into());
            q.reason = Some("expired".into());
            q.limit = Some("10000".into());
            q.username = Some("  ".into());
        })
        .unwrap();
        assert_eq!(f.result, Some(SignInResult::SignedOut));
        assert_eq!(f.reason, Some(ReasonCode::Expired));
        assert_eq!(f.limit, 10_000);
        assert_eq!(f.username, None, "a blank filter is no filter");
    }

    fn store_with_entries() -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(SledStore::temporary().unwrap());
        for (i, (user, result, reason)) in [
            ("alice", SignInResult::Failure, ReasonCode::BadCredentials),
            ("alice", SignInResult::Success, ReasonCode::Success),
            ("=evil", SignInResult::Failure, ReasonCode::LockedOut),
        ]
        .into_iter()
        .enumerate()
        {
            let e = SignInEntry::new(
                SystemTime::UNIX_EPOCH + Duration::from_millis(T0 + i as u64 * 1000),
                user,
                "UDID-1",
                SignInHow::Portal,
                result,
                reason,
            );
            sign_in_log::append(store.as_ref(), &EventSink::disabled(), &e).unwrap();
        }
        store
    }

    /// The handler's extraction and answer over a store, as the router runs it.
    async fn get_log(
        store: Arc<dyn Store>,
        uri: &str,
        accept: Option<&str>,
    ) -> (StatusCode, String, String) {
        let mut router: Router = Router::new()
            .route(
                "/api/v1/sign-in-log",
                get(
                    |State(store): State<Arc<dyn Store>>,
                     query: Result<Query<SignInLogQuery>, QueryRejection>,
                     headers: HeaderMap| async move {
                        let Query(query) =
                            query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
                        answer(store.as_ref(), &query, &headers)
                    },
                ),
            )
            .with_state(store);
        let mut request = Request::builder().uri(uri);
        if let Some(a) = accept {
            request = request.header(header::ACCEPT, a);
        }
        let response = router
            .call(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn json_is_an_array_newest_first_with_filters() {
        let store = store_with_entries();
        let (status, ctype, body) = get_log(Arc::clone(&store), "/api/v1/sign-in-log", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ctype, "application/json");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let reasons: Vec<&str> = json
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["locked_out", "success", "bad_credentials"]);
        for key in ["time", "username", "device", "result", "reason"] {
            assert!(json[0].get(key).is_some(), "{key}");
        }
        let (_, _, body) = get_log(
            Arc::clone(&store),
            "/api/v1/sign-in-log?username=ALICE&result=failure&since=1700000000",
            None,
        )
        .await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["reason"], "bad_credentials");
        let (_, _, body) = get_log(Arc::clone(&store), "/api/v1/sign-in-log?limit=1", None).await;
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 1);
        assert_eq!(json[0]["username"], "=evil");
    }

    #[tokio::test]
    async fn csv_by_parameter_or_accept_header() {
        let store = store_with_entries();
        for (uri, accept) in [
            ("/api/v1/sign-in-log?format=csv", None),
            ("/api/v1/sign-in-log", Some("text/html, text/csv;q=0.9")),
        ] {
            let (status, ctype, body) = get_log(Arc::clone(&store), uri, accept).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ctype, CSV_CONTENT_TYPE);
            let lines: Vec<&str> = body.split("\r\n").collect();
            assert!(
                lines[0].starts_with("time,time_ms,username,"),
                "{}",
                lines[0]
            );
            assert!(lines[1].contains(",'=evil,"), "{}", lines[1]);
            assert_eq!(lines.len(), 5, "header, three rows, final empty");
        }
        // format=json wins over the header.
        let (_, ctype, _) = get_log(
            Arc::clone(&store),
            "/api/v1/sign-in-log?format=json",
            Some("text/csv"),
        )
        .await;
        assert_eq!(ctype, "application/json");
    }

    #[tokio::test]
    async fn bad_values_are_json_400() {
        let store = store_with_entries();
        for uri in [
            "/api/v1/sign-in-log?result=maybe",
            "/api/v1/sign-in-log?limit=0",
            "/api/v1/sign-in-log?since=tomorrow",
            "/api/v1/sign-in-log?format=xml",
            "/api/v1/sign-in-log?limit=%FF",
        ] {
            let (status, ctype, body) = get_log(Arc::clone(&store), uri, None).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
            assert_eq!(ctype, "application/json", "{uri}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(json["error"], "bad_request", "{uri}");
        }
    }
}

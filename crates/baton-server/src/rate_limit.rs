//! Per-source rate limits on the endpoints anyone can reach without credentials: profile
//! downloads (`GET /mdm/enroll`, `GET /mdm/trust`), SCEP certificate requests (`/scep` with
//! `operation=PKIOperation`; GetCACaps and GetCACert are cheap and not counted) and portal
//! sign-in POSTs (each checks an argon2id hash). Device check-ins and the admin API are not
//! limited here: they need a signature or the API key.
//!
//! A token bucket per (endpoint class, source): `burst` requests at once, refilled at
//! `per_minute`. A source is the client's IPv4 address, or the /64 of its IPv6 address (one
//! host usually holds a whole /64). The table is bounded ([`MAX_SOURCES`]): when it is full,
//! buckets that refilled completely are dropped first (they hold nothing), then the least
//! recently used one. A limited request gets 429 with `Retry-After` (seconds) and a JSON body.
//!
//! [`Buckets`] is the pure core (times are arguments); [`RateLimiter`] adds the lock and clock
//! and [`limit`] is the axum middleware.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::Instant;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Most sources tracked at once.
pub const MAX_SOURCES: usize = 65_536;

/// Rate-limit settings (`baton serve --rate-limit-burst`, `--rate-limit-per-minute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Requests a source may make at once, per endpoint class.
    pub burst: u32,
    /// Requests per minute a source gets back, per endpoint class; 0 turns the limits off.
    pub per_minute: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            burst: 60,
            per_minute: 60,
        }
    }
}

/// Why rate-limit settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RateLimitSettingsError {
    /// The burst is outside 1..=100,000.
    #[error("the rate-limit burst must be between 1 and 100000, got {0}")]
    Burst(u32),
    /// The rate is above 1,000,000 per minute.
    #[error("the rate limit must be at most 1000000 per minute (0 turns it off), got {0}")]
    PerMinute(u32),
}

impl RateLimitSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), RateLimitSettingsError> {
        if !(1..=100_000).contains(&self.burst) {
            return Err(RateLimitSettingsError::Burst(self.burst));
        }
        if self.per_minute > 1_000_000 {
            return Err(RateLimitSettingsError::PerMinute(self.per_minute));
        }
        Ok(())
    }

    /// True when requests are limited at all.
    pub fn enabled(&self) -> bool {
        self.per_minute > 0
    }
}

/// The endpoint classes, each with its own buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limited {
    /// `GET /mdm/enroll`, `GET /mdm/trust`.
    Profile,
    /// SCEP PKIOperation.
    Scep,
    /// `POST /portal/{token}/sign-in`.
    PortalSignIn,
}

impl Limited {
    /// The class of a request, or `None` when it is not limited.
    pub fn of(method: &Method, path: &str, query: Option<&str>) -> Option<Self> {
        match path {
            "/mdm/enroll" | "/mdm/trust" => Some(Limited::Profile),
            "/scep" | "/scep/pkiclient.exe" => query
                .unwrap_or_default()
                .split('&')
                .any(|pair| pair.eq_ignore_ascii_case("operation=PKIOperation"))
                .then_some(Limited::Scep),
            p if *method == Method::POST
                && p.starts_with("/portal/")
                && p.ends_with("/sign-in")
                && p.matches('/').count() == 3 =>
            {
                Some(Limited::PortalSignIn)
            }
            _ => None,
        }
    }

    /// The label in logs.
    pub fn label(self) -> &'static str {
        match self {
            Limited::Profile => "profile",
            Limited::Scep => "scep",
            Limited::PortalSignIn => "portal_sign_in",
        }
    }
}

/// The source a request is counted against: an IPv4 address, or an IPv6 /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The token buckets (pure: `now_ms` is an argument, any monotonic millisecond count).
#[derive(Debug)]
pub struct Buckets {
    settings: RateLimitSettings,
    capacity: usize,
    buckets: HashMap<(Limited, IpAddr), Bucket>,
}

impl Buckets {
    /// Empty buckets for `settings`, tracking at most `capacity` sources.
    pub fn new(settings: RateLimitSettings, capacity: usize) -> Self {
        Self {
            settings,
            capacity: capacity.max(1),
            buckets: HashMap::new(),
        }
    }

    fn per_ms(&self) -> f64 {
        f64::from(self.settings.per_minute) / 60_000.0
    }

    fn refilled(&self, bucket: Bucket, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(bucket.at_ms) as f64;
        (bucket.tokens + elapsed * self.per_ms()).min(f64::from(self.settings.burst))
    }

    /// Takes one request of `source` in `class` at `now_ms`: `Ok`, or the seconds until the
    /// next one is allowed.
    pub fn take(&mut self, class: Limited, source: IpAddr, now_ms: u64) -> Result<(), u64> {
        if !self.settings.enabled() {
            return Ok(());
        }
        let key = (class, source);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.capacity {
            self.make_room(now_ms);
        }
        let burst = f64::from(self.settings.burst);
        let current = self.buckets.get(&key).copied().unwrap_or(Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let tokens = self.refilled(current, now_ms);
        if tokens >= 1.0 {
            self.buckets.insert(
                key,
                Bucket {
                    tokens: tokens - 1.0,
                    at_ms: now_ms,
                },
            );
            Ok(())
        } else {
            self.buckets.insert(
                key,
                Bucket {
                    tokens,
                    at_ms: now_ms,
                },
            );
            let wait_ms = (1.0 - tokens) / self.per_ms();
            Err(((wait_ms / 1000.0).ceil() as u64).max(1))
        }
    }

    /// Drops full buckets (they hold nothing an absent one would not); when none is full, the
    /// least recently used one.
    fn make_room(&mut self, now_ms: u64) {
        let burst = f64::from(self.settings.burst);
        let before = self.buckets.len();
        let per_ms = self.per_ms();
        self.buckets.retain(|_, b| {
            let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
            b.tokens + elapsed * per_ms < burst
        });
        if self.buckets.len() < before {
            return;
        }
        if let Some(oldest) = self
            .buckets
            .iter()
            .min_by_key(|(_, b)| b.at_ms)
            .map(|(k, _)| *k)
        {
            self.buckets.remove(&oldest);
        }
    }

    /// Sources tracked now.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// The server's rate limiter: [`Buckets`] behind a lock, with a monotonic clock.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<Buckets>,
    origin: Instant,
}

impl RateLimiter {
    /// A limiter with these settings.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            buckets: Mutex::new(Buckets::new(settings, MAX_SOURCES)),
            origin: Instant::now(),
        }
    }

    /// Takes one request of `ip` in `class` now: `Ok`, or the seconds to wait.
    pub fn check(&self, class: Limited, ip: IpAddr) -> Result<(), u64> {
        let now_ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Poisoning only means a panic elsewhere; the map stays usable.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(class, source_of(ip), now_ms)
    }
}

/// The refusal for a request from a source over its limit on a limited endpoint: 429 with
/// `Retry-After` and JSON `{"error":"rate_limited"}`; `None` lets the request through. Run by
/// [`crate::gate`] after the client origin is decided.
pub fn refusal(limiter: &RateLimiter, request: &Request) -> Option<Response> {
    let class = Limited::of(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    )?;
    // Behind a trusted proxy, the forwarded client address; otherwise the TCP peer.
    let ip = crate::client_origin::Client::of(request.extensions()).address?;
    let Err(retry_after) = limiter.check(class, ip) else {
        return None;
    };
    tracing::warn!(endpoint = class.label(), source = %source_of(ip), retry_after,
        "rate limit: request refused");
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "error": "rate_limited",
            "message": format!("too many requests from this address; retry in {retry_after} s"),
        })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn buckets(burst: u32, per_minute: u32) -> Buckets {
        Buckets::new(RateLimitSettings { burst, per_minute }, 16)
    }

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut b = buckets(3, 60);
        for _ in 0..3 {
            assert_eq!(b.take(Limited::Profile, A, 0), Ok(()));
        }
        assert_eq!(b.take(Limited::Profile, A, 0), Err(1));
        // Another source and another class have their own buckets.
        assert_eq!(b.take(Limited::Profile, B, 0), Ok(()));
        assert_eq!(b.take(Limited::Scep, A, 0), Ok(()));
        // One per second comes back.
        assert_eq!(b.take(Limited::Profile, A, 999), Err(1));
        assert_eq!(b.take(Limited::Profile, A, 1_000), Ok(()));
        assert_eq!(b.take(Limited::Profile, A, 1_000), Err(1));
        let mut slow = buckets(1, 2);
        assert_eq!(slow.take(Limited::Profile, A, 0), Ok(()));
        assert_eq!(slow.take(Limited::Profile, A, 0), Err(30));
    }

    #[test]
    fn zero_per_minute_turns_it_off() {
        let mut b = buckets(1, 0);
        for _ in 0..100 {
            assert_eq!(b.take(Limited::PortalSignIn, A, 0), Ok(()));
        }
        assert!(b.is_empty());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut b = Buckets::new(
            RateLimitSettings {
                burst: 2,
                per_minute: 60,
            },
            4,
        );
        for i in 0..100u8 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, i));
            assert_eq!(b.take(Limited::Scep, ip, u64::from(i)), Ok(()));
            assert!(b.len() <= 4);
        }
        // A limited source keeps its state while there is room for others.
        let mut b = Buckets::new(
            RateLimitSettings {
                burst: 1,
                per_minute: 1,
            },
            2,
        );
        assert_eq!(b.take(Limited::Scep, A, 0), Ok(()));
        assert!(b.take(Limited::Scep, A, 1).is_err());
        assert_eq!(b.take(Limited::Scep, B, 2), Ok(()));
        assert!(b.take(Limited::Scep, A, 3).is_err());
    }

    #[test]
    fn classes_and_sources() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            Limited::of(&get, "/mdm/enroll", Some("token=x")),
            Some(Limited::Profile)
        );
        assert_eq!(
            Limited::of(&get, "/mdm/trust", None),
            Some(Limited::Profile)
        );
        assert_eq!(
            Limited::of(&get, "/scep", Some("operation=GetCACaps")),
            None
        );
        assert_eq!(
            Limited::of(&post, "/scep", Some("operation=PKIOperation")),
            Some(Limited::Scep)
        );
        assert_eq!(
            Limited::of(&post, "/portal/abc/sign-in", None),
            Some(Limited::PortalSignIn)
        );
        assert_eq!(Limited::of(&get, "/portal/abc/sign-in", None), None);
        assert_eq!(Limited::of(&post, "/portal/abc/sign-out", None), None);
        assert_eq!(Limited::of(&put_method(), "/mdm/checkin", None), None);
        let v6: IpAddr = "2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().unwrap();
        assert_eq!(source_of(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(source_of(mapped), A);
    }

    fn put_method() -> Method {
        Method::PUT
    }
}

//! Where a request comes from, decided once per request at the edge of the HTTP shell: the
//! client's address and whether it reached the server over HTTPS ([`ClientOrigin`]).
//!
//! By default that is the TCP peer and the listener's own transport. Behind a reverse proxy
//! (`--plain-http` with TLS terminated in front, or a load balancer), the peer is the proxy: the
//! operator names the proxies (`--trusted-proxy`, [`TrustedProxies`]), and only when the peer is
//! one of them are its headers believed:
//!
//! - `X-Forwarded-For`: the client is the rightmost hop that is not a trusted proxy (hops to
//!   the left of it were written by the client or by proxies nobody vouches for); when every
//!   hop is trusted, the leftmost. A hop that is not an address ends the walk at the trusted
//!   proxy that forwarded it.
//! - `X-Forwarded-Proto`: `https` in its last value (the one the trusted proxy wrote) marks the
//!   request as HTTPS, so the portal sets `Secure` cookies behind a TLS-terminating proxy.
//!
//! From anyone else both headers are ignored. The standard `Forwarded` header is not read.
//!
//! Every response to an HTTPS request carries `Strict-Transport-Security` ([`HSTS`]). The
//! decision ([`resolve`]) is pure; [`crate::gate`], the one middleware of the router, runs it
//! ([`Edge::origin`]) and puts the [`ClientOrigin`] into the request's extensions, where handlers
//! extract it.

use std::convert::Infallible;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};

/// The `Strict-Transport-Security` value sent over HTTPS: one year, this host only.
pub const HSTS: &str = "max-age=31536000";

/// `X-Forwarded-For`.
pub const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// An IP network (`10.0.0.0/8`, `fd00::/8`) or one address (`192.0.2.7`, a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address (host bits cleared).
    addr: IpAddr,
    /// The prefix length.
    prefix: u8,
}

/// Why a `--trusted-proxy` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a network in CIDR notation (e.g. 10.0.0.0/8)")]
pub struct IpNetError(pub String);

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpNetError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `addr` with the bits after `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

impl IpNet {
    /// True when `ip` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// The reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed. Empty (the
/// default): no proxy header is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Proxies in `networks`.
    pub fn new(networks: Vec<IpNet>) -> Self {
        TrustedProxies(networks)
    }

    /// True when `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOrigin {
    /// The client's address (the peer's, or the one a trusted proxy forwarded).
    pub address: IpAddr,
    /// The client reached the server over HTTPS (this listener's TLS, or a trusted proxy's).
    pub https: bool,
}

/// One `X-Forwarded-For` hop as an address: `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711` or
/// `[2001:db8::1]:4711`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The origin of a request from `peer` on a listener that speaks TLS (`tls`) or not, with
/// `headers`, believing proxy headers only from `trusted` peers.
pub fn resolve(
    peer: IpAddr,
    tls: bool,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> ClientOrigin {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return ClientOrigin {
            address: peer,
            https: tls,
        };
    }
    let hops: Vec<&str> = headers
        .get_all(&FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut address = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = hop_address(hop) else {
            break;
        };
        address = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    let forwarded_https = headers
        .get_all(&FORWARDED_PROTO)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    ClientOrigin {
        address,
        https: tls || forwarded_https,
    }
}

/// What the edge of the HTTP shell knows about its listener: whether it speaks TLS and which
/// peers are trusted proxies. [`crate::gate`] runs it once per request.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// The listener speaks TLS.
    pub tls: bool,
    /// Peers whose forwarding headers are believed.
    pub trusted: TrustedProxies,
}

impl Edge {
    /// The origin of `request`, from the TCP peer in its `ConnectInfo` (`None` without one).
    pub fn origin(&self, request: &Request) -> Option<ClientOrigin> {
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| resolve(peer.ip(), self.tls, request.headers(), &self.trusted))
    }
}

/// A handler's view of the client: the [`ClientOrigin`] the gate decided or, without
/// that layer, the TCP peer over plain HTTP. `None` address only without `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address, when known.
    pub address: Option<IpAddr>,
    /// The client reached the server over HTTPS.
    pub https: bool,
}

impl Client {
    /// The client of a request, from its extensions.
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        if let Some(origin) = extensions.get::<ClientOrigin>() {
            return Client {
                address: Some(origin.address),
                https: origin.https,
            };
        }
        Client {
            address: extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(a)| a.ip().to_canonical()),
            https: false,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client::of(&parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(pairs: &[(HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(name.clone(), value.parse().unwrap());
        }
        h
    }

    #[test]
    fn networks_parse_and_contain() {
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(
            net("10.1.2.3/8").contains(ip("10.9.9.9")),
            "host bits ignored"
        );
        assert!(net("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!net("192.0.2.7").contains(ip("192.0.2.8")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(!net("fd00::/8").contains(ip("10.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")), "mapped");
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "x",
            "1.2.3.4/+8",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn proxy_headers_are_ignored_from_untrusted_peers() {
        let trusted = TrustedProxies::new(vec![net("10.0.0.0/8")]);
        let h = headers(&[(FORWARDED_FOR, "203.0.113.7"), (FORWARDED_PROTO, "https")]);
        let origin = resolve(ip("198.51.100.1"), false, &h, &trusted);
        assert_eq!(origin.address, ip("198.51.100.1"));
        assert!(!origin.https);
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(ip("10.0.0.1"), true, &h, &none),
            ClientOrigin {
                address: ip("10.0.0.1"),
                https: true
            }
        );
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let trusted = TrustedProxies::new(vec![net("10.0.0.0/8"), net("192.0.2.1")]);
        let peer = ip("10.0.0.2");
        let at = |xff: &[&str]| {
            let pairs: Vec<_> = xff.iter().map(|v| (FORWARDED_FOR, *v)).collect();
            resolve(peer, false, &headers(&pairs), &trusted).address
        };
        // The client put a fake hop first; the proxies appended the real one.
        assert_eq!(at(&["6.6.6.6, 203.0.113.7, 192.0.2.1"]), ip("203.0.113.7"));
        // Several headers read as one list, in order.
        assert_eq!(
            at(&["6.6.6.6", "203.0.113.7", "10.1.1.1"]),
            ip("203.0.113.7")
        );
        // Every hop trusted: the leftmost.
        assert_eq!(at(&["10.3.3.3, 192.0.2.1"]), ip("10.3.3.3"));
        // Ports and brackets.
        assert_eq!(at(&["203.0.113.7:4711"]), ip("203.0.113.7"));
        assert_eq!(at(&["[2001:db8::7]:443"]), ip("2001:db8::7"));
        // Garbage stops the walk at the proxy that forwarded it.
        assert_eq!(at(&["203.0.113.7, unknown, 10.4.4.4"]), ip("10.4.4.4"));
        assert_eq!(at(&["not-an-ip"]), peer);
        // No header: the peer.
        assert_eq!(at(&[]), peer);
    }

    #[test]
    fn the_scheme_is_the_nearest_proxys_word() {
        let trusted = TrustedProxies::new(vec![net("127.0.0.1")]);
        let https = |protos: &[&str]| {
            let pairs: Vec<_> = protos.iter().map(|v| (FORWARDED_PROTO, *v)).collect();
            resolve(ip("127.0.0.1"), false, &headers(&pairs), &trusted).https
        };
        assert!(https(&["https"]));
        assert!(https(&["HTTPS"]));
        assert!(https(&["http, https"]));
        assert!(!https(&["https, http"]));
        assert!(!https(&["http"]));
        assert!(!https(&[]));
    }
}

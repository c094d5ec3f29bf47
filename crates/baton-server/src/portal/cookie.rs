//! The portal session cookie: set at sign-in, scoped to the device's portal path, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS, and a session cookie (no `Max-Age`): it dies with the
//! browser session, unless the person answered Yes to "Stay signed in?" where the session rules
//! allow it ([`persistent_cookie`]). Its value is the session's secret
//! ([`crate::reconciler::portal_session`]), so it opens nothing once that session ended.

use base64::Engine;

/// The cookie's name.
pub const COOKIE_NAME: &str = "baton_portal";

/// A fresh random cookie value (24 bytes, URL-safe base64).
pub fn new_value() -> Result<String, openssl::error::ErrorStack> {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 of a cookie value, hex: what the server stores (never the value itself).
pub fn fingerprint(value: &str) -> String {
    hex::encode(openssl::sha::sha256(value.as_bytes()))
}

/// The portal cookie's value in a request's `Cookie` headers, if it is there.
pub fn value_in(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for the session on the device with portal token `device_token`,
/// holding `value` (from [`new_value`]).
pub fn session_cookie(device_token: &str, value: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={value}; Path=/portal/{device_token}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// How long a persistent portal cookie lives: 400 days, the longest browsers keep a cookie;
/// in practice it ends at sign-out, which deletes it.
pub const PERSISTENT_MAX_AGE_SECS: u64 = 400 * 24 * 3600;

/// A `Set-Cookie` value for a persistent session ("Stay signed in?" answered Yes): the same
/// attributes as [`session_cookie`] plus `Max-Age`.
pub fn persistent_cookie(device_token: &str, value: &str, secure: bool) -> String {
    format!(
        "{}; Max-Age={PERSISTENT_MAX_AGE_SECS}",
        session_cookie(device_token, value, secure)
    )
}

/// A `Set-Cookie` value that deletes the session cookie.
pub fn cleared_cookie(device_token: &str, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}=; Path=/portal/{device_token}; Max-Age=0; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_required_attributes() {
        let value = new_value().unwrap();
        assert_eq!(value.len(), 32);
        assert_ne!(value, new_value().unwrap());
        let c = session_cookie("tok", &value, true);
        assert!(c.starts_with("baton_portal="));
        for attr in ["Path=/portal/tok", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Max-Age"));
        assert!(c.starts_with(&format!("baton_portal={value};")));
        assert!(!session_cookie("tok", &value, false).contains("Secure"));
        assert!(cleared_cookie("tok", false).contains("Max-Age=0"));
        let p = persistent_cookie("tok", &value, true);
        assert!(
            p.contains(&format!("Max-Age={PERSISTENT_MAX_AGE_SECS}")),
            "{p}"
        );
        assert!(p.contains("HttpOnly") && p.contains("SameSite=Strict"));
    }

    #[test]
    fn the_value_is_read_back_from_cookie_headers() {
        let mut headers = axum::http::HeaderMap::new();
        assert_eq!(value_in(&headers), None);
        headers.append(
            axum::http::header::COOKIE,
            "other=1; baton_portal=abc_DEF-9".parse().unwrap(),
        );
        assert_eq!(value_in(&headers).as_deref(), Some("abc_DEF-9"));
        let mut empty = axum::http::HeaderMap::new();
        empty.append(axum::http::header::COOKIE, "baton_portal=".parse().unwrap());
        assert_eq!(value_in(&empty), None);
        assert_eq!(fingerprint("a").len(), 64);
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}

//! The portal session cookie: set at sign-in, scoped to the device's portal path, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS, and a session cookie (no `Max-Age`): it dies with the
//! browser session, unless the person answered Yes to "Stay signed in?" where the session rules
//! allow it ([`persistent_cookie`]).

use base64::Engine;

/// The cookie's name.
pub const COOKIE_NAME: &str = "baton_portal";

/// A `Set-Cookie` value for a new session on the device with portal token `device_token`.
pub fn session_cookie(
    device_token: &str,
    secure: bool,
) -> Result<String, openssl::error::ErrorStack> {
    let mut bytes = [0u8; 24];
    openssl::rand::rand_bytes(&mut bytes)?;
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Ok(format!(
        "{COOKIE_NAME}={value}; Path=/portal/{device_token}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
}

/// How long a persistent portal cookie lives: 400 days, the longest browsers keep a cookie;
/// in practice it ends at sign-out, which deletes it.
pub const PERSISTENT_MAX_AGE_SECS: u64 = 400 * 24 * 3600;

/// A `Set-Cookie` value for a persistent session ("Stay signed in?" answered Yes): the same
/// attributes as [`session_cookie`] plus `Max-Age`.
pub fn persistent_cookie(
    device_token: &str,
    secure: bool,
) -> Result<String, openssl::error::ErrorStack> {
    Ok(format!(
        "{}; Max-Age={PERSISTENT_MAX_AGE_SECS}",
        session_cookie(device_token, secure)?
    ))
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
        let c = session_cookie("tok", true).unwrap();
        assert!(c.starts_with("baton_portal="));
        for attr in ["Path=/portal/tok", "HttpOnly", "SameSite=Strict", "Secure"] {
            assert!(c.contains(attr), "{c}");
        }
        assert!(!c.contains("Max-Age"));
        assert!(!session_cookie("tok", false).unwrap().contains("Secure"));
        assert!(cleared_cookie("tok", false).contains("Max-Age=0"));
        let p = persistent_cookie("tok", true).unwrap();
        assert!(
            p.contains(&format!("Max-Age={PERSISTENT_MAX_AGE_SECS}")),
            "{p}"
        );
        assert!(p.contains("HttpOnly") && p.contains("SameSite=Strict"));
    }
}

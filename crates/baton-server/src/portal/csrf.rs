//! One-time CSRF tokens for the portal's forms: issued when a form is rendered, bound to the
//! device's portal token, valid for [`CSRF_LIFETIME`], and consumed by the first POST that
//! presents them (a replay fails). Kept in memory, bounded to [`MAX_TOKENS`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// How long a rendered form stays valid.
pub const CSRF_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Most tokens held at once; the oldest are dropped first beyond it.
pub const MAX_TOKENS: usize = 20_000;

struct Issued {
    device_token: String,
    expires: Instant,
}

/// The server-side store of outstanding CSRF tokens.
#[derive(Default)]
pub struct CsrfTokens {
    issued: Mutex<HashMap<String, Issued>>,
}

impl std::fmt::Debug for CsrfTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrfTokens").finish_non_exhaustive()
    }
}

impl CsrfTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh token for a form of the device with portal token `device_token`.
    pub fn issue(
        &self,
        device_token: &str,
        now: Instant,
    ) -> Result<String, openssl::error::ErrorStack> {
        let mut bytes = [0u8; 24];
        openssl::rand::rand_bytes(&mut bytes)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut issued = self.lock();
        if issued.len() >= MAX_TOKENS {
            issued.retain(|_, i| i.expires > now);
        }
        while issued.len() >= MAX_TOKENS {
            let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, i)| i.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            issued.remove(&oldest);
        }
        issued.insert(
            token.clone(),
            Issued {
                device_token: device_token.to_owned(),
                expires: now + CSRF_LIFETIME,
            },
        );
        Ok(token)
    }

    /// Drops every token that expired by `now`. Returns how many.
    pub fn forget_expired(&self, now: Instant) -> usize {
        let mut issued = self.lock();
        let before = issued.len();
        issued.retain(|_, i| i.expires > now);
        before - issued.len()
    }

    /// Consumes `token`: true when it was issued for `device_token` and has not expired.
    /// Whatever the answer, the token cannot be used again.
    pub fn redeem(&self, token: &str, device_token: &str, now: Instant) -> bool {
        if token.is_empty() {
            return false;
        }
        match self.lock().remove(token) {
            Some(i) => i.device_token == device_token && i.expires > now,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_one_time_and_bound_to_the_device() {
        let csrf = CsrfTokens::default();
        let now = Instant::now();
        let t = csrf.issue("dev-a", now).unwrap();
        assert!(!csrf.redeem(&t, "dev-b", now), "other device");
        assert!(!csrf.redeem(&t, "dev-a", now), "consumed by the failed try");
        let t = csrf.issue("dev-a", now).unwrap();
        assert!(csrf.redeem(&t, "dev-a", now));
        assert!(!csrf.redeem(&t, "dev-a", now), "replay");
        assert!(!csrf.redeem("", "dev-a", now));
        let t = csrf.issue("dev-a", now).unwrap();
        assert!(!csrf.redeem(&t, "dev-a", now + CSRF_LIFETIME), "expired");
        let _ = csrf.issue("dev-a", now).unwrap();
        let _ = csrf.issue("dev-a", now + CSRF_LIFETIME).unwrap();
        assert_eq!(csrf.forget_expired(now + CSRF_LIFETIME), 1);
    }
}

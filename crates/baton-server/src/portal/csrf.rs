//! One-time CSRF tokens for the portal's forms: issued when a form is rendered, bound to the
//! device's portal token, valid for [`CSRF_LIFETIME`], and consumed by the first POST that
//! presents them on that device (a replay fails).
//!
//! Kept in memory, per device, so one device's page loads never expire another device's form:
//! each device holds at most [`MAX_FORMS_PER_DEVICE`] live forms (a ring: the oldest form is
//! dropped first, in O(1)), and at most [`MAX_DEVICES`] devices hold forms (beyond it the
//! device that rendered a form longest ago loses its forms, in O(log n)). Only tokens that
//! resolved to an enrolled device get an entry, so a flood of made-up portal URLs adds nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

/// How long a rendered form stays valid.
pub const CSRF_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Most live forms of one device; its oldest is dropped first beyond it.
pub const MAX_FORMS_PER_DEVICE: usize = 32;
/// Most devices with live forms; the one that rendered a form longest ago is dropped first
/// beyond it.
pub const MAX_DEVICES: usize = 20_000;

/// Random bytes in a token.
const TOKEN_BYTES: usize = 24;

#[derive(Debug)]
struct Issued {
    token: [u8; TOKEN_BYTES],
    expires: Instant,
}

#[derive(Debug)]
struct DeviceForms {
    /// Oldest first.
    forms: VecDeque<Issued>,
    /// When the device last got a form, in [`Table::next_stamp`] order.
    stamp: u64,
}

#[derive(Debug, Default)]
struct Table {
    devices: HashMap<String, DeviceForms>,
    /// Devices by the stamp of their latest form, oldest first.
    by_age: BTreeMap<u64, String>,
    next_stamp: u64,
}

impl Table {
    fn forget(&mut self, device_token: &str) {
        if let Some(d) = self.devices.remove(device_token) {
            self.by_age.remove(&d.stamp);
        }
    }
}

/// The server-side store of outstanding CSRF tokens.
#[derive(Default)]
pub struct CsrfTokens {
    table: Mutex<Table>,
}

impl std::fmt::Debug for CsrfTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrfTokens").finish_non_exhaustive()
    }
}

impl CsrfTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh token for a form of the device with portal token `device_token`.
    pub fn issue(
        &self,
        device_token: &str,
        now: Instant,
    ) -> Result<String, openssl::error::ErrorStack> {
        let mut token = [0u8; TOKEN_BYTES];
        openssl::rand::rand_bytes(&mut token)?;
        let mut table = self.lock();
        let stamp = table.next_stamp;
        table.next_stamp += 1;
        let previous = table.devices.get(device_token).map(|d| d.stamp);
        match previous {
            Some(old) => {
                table.by_age.remove(&old);
            }
            None => {
                while table.devices.len() >= MAX_DEVICES {
                    let Some((_, oldest)) = table.by_age.pop_first() else {
                        break;
                    };
                    table.devices.remove(&oldest);
                }
            }
        }
        table.by_age.insert(stamp, device_token.to_owned());
        let device = table
            .devices
            .entry(device_token.to_owned())
            .or_insert_with(|| DeviceForms {
                forms: VecDeque::new(),
                stamp,
            });
        device.stamp = stamp;
        while device.forms.front().is_some_and(|f| f.expires <= now)
            || device.forms.len() >= MAX_FORMS_PER_DEVICE
        {
            device.forms.pop_front();
        }
        device.forms.push_back(Issued {
            token,
            expires: now + CSRF_LIFETIME,
        });
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
    }

    /// Drops every token that expired by `now`. Returns how many.
    pub fn forget_expired(&self, now: Instant) -> usize {
        let mut table = self.lock();
        let mut dropped = 0;
        let mut emptied = Vec::new();
        for (device_token, device) in &mut table.devices {
            let before = device.forms.len();
            device.forms.retain(|f| f.expires > now);
            dropped += before - device.forms.len();
            if device.forms.is_empty() {
                emptied.push(device_token.clone());
            }
        }
        for device_token in emptied {
            table.forget(&device_token);
        }
        dropped
    }

    /// Consumes `token`: true when it was issued for `device_token` and has not expired.
    /// Whatever the answer, the token cannot be used again on that device.
    pub fn redeem(&self, token: &str, device_token: &str, now: Instant) -> bool {
        let Ok(presented) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        if presented.len() != TOKEN_BYTES {
            return false;
        }
        let mut table = self.lock();
        let Some(device) = table.devices.get_mut(device_token) else {
            return false;
        };
        // Both sides are TOKEN_BYTES long (checked above), as `memcmp::eq` requires.
        let Some(at) = device
            .forms
            .iter()
            .position(|f| openssl::memcmp::eq(&f.token, &presented))
        else {
            return false;
        };
        let valid = device.forms.remove(at).is_some_and(|f| f.expires > now);
        if device.forms.is_empty() {
            table.forget(device_token);
        }
        valid
    }

    /// How many devices hold live forms (housekeeping and tests).
    pub fn devices(&self) -> usize {
        self.lock().devices.len()
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
        assert!(csrf.redeem(&t, "dev-a", now));
        assert!(!csrf.redeem(&t, "dev-a", now), "replay");
        assert!(!csrf.redeem("", "dev-a", now));
        assert!(!csrf.redeem("not base64!", "dev-a", now));
        assert!(!csrf.redeem("c2hvcnQ", "dev-a", now), "wrong length");
        let t = csrf.issue("dev-a", now).unwrap();
        assert!(!csrf.redeem(&t, "dev-a", now + CSRF_LIFETIME), "expired");
        assert!(
            !csrf.redeem(&t, "dev-a", now),
            "consumed by the expired try"
        );
        let second = Duration::from_secs(1);
        let _ = csrf.issue("dev-a", now).unwrap();
        let _ = csrf.issue("dev-a", now + second).unwrap();
        assert_eq!(csrf.forget_expired(now + CSRF_LIFETIME), 1);
        assert_eq!(csrf.forget_expired(now + CSRF_LIFETIME + second), 1);
        assert_eq!(csrf.devices(), 0);
    }

    #[test]
    fn another_devices_page_loads_never_expire_a_form() {
        let csrf = CsrfTokens::default();
        let now = Instant::now();
        let mine = csrf.issue("dev-a", now).unwrap();
        for _ in 0..100_000 {
            csrf.issue("dev-b", now).unwrap();
        }
        assert!(csrf.redeem(&mine, "dev-a", now));
        assert_eq!(csrf.devices(), 1, "dev-a's last form was used");
    }

    #[test]
    fn a_device_keeps_its_newest_forms() {
        let csrf = CsrfTokens::default();
        let now = Instant::now();
        let tokens: Vec<_> = (0..=MAX_FORMS_PER_DEVICE)
            .map(|_| csrf.issue("dev-a", now).unwrap())
            .collect();
        assert!(
            !csrf.redeem(&tokens[0], "dev-a", now),
            "the oldest was dropped"
        );
        for t in &tokens[1..] {
            assert!(csrf.redeem(t, "dev-a", now));
        }
    }

    #[test]
    fn the_device_that_rendered_longest_ago_is_dropped_beyond_the_cap() {
        let csrf = CsrfTokens::default();
        let now = Instant::now();
        let first = csrf.issue("dev-0", now).unwrap();
        let second = csrf.issue("dev-1", now).unwrap();
        // dev-0 renders again: dev-1 is now the oldest.
        let first_again = csrf.issue("dev-0", now).unwrap();
        for i in 2..=MAX_DEVICES {
            csrf.issue(&format!("dev-{i}"), now).unwrap();
        }
        assert_eq!(csrf.devices(), MAX_DEVICES);
        assert!(!csrf.redeem(&second, "dev-1", now));
        assert!(csrf.redeem(&first, "dev-0", now));
        assert!(csrf.redeem(&first_again, "dev-0", now));
    }
}

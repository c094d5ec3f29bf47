//! One lock per device for portal sign-in and sign-out, so concurrent sign-ins on one device
//! (a "storm" of taps) cannot interleave: the first holds the lock, the others see the device
//! busy or already in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The per-device locks, by enrollment id.
#[derive(Debug, Default)]
pub struct DeviceLocks {
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl DeviceLocks {
    /// The lock of `device` (created on first use).
    pub fn of(&self, device: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(locks.entry(device.to_owned()).or_default())
    }
}

/// Takes `lock` without waiting; None when someone else holds it.
pub fn try_hold(lock: &Mutex<()>) -> Option<MutexGuard<'_, ()>> {
    match lock.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Takes `lock`, waiting for it.
pub fn hold(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_device() {
        let locks = DeviceLocks::default();
        let a = locks.of("A");
        let a2 = locks.of("A");
        let b = locks.of("B");
        let g = try_hold(&a).unwrap();
        assert!(try_hold(&a2).is_none());
        assert!(try_hold(&b).is_some());
        drop(g);
        assert!(try_hold(&a2).is_some());
    }
}

//! Leases: how long a sign-in holds a device. One JSON record per device in
//! [`LEASES_COLLECTION`] (key: the device's enrollment id), written in the same transaction as
//! the sign-in and deleted with the sign-out, so it survives restarts. A non-persistent lease
//! ends at `min(sign-in + lease, next shift end in the operator's time zone)`; a persistent one has no end.

use std::time::{Duration, SystemTime};

use baton_proto::EnrollmentId;
use baton_store::{CasOutcome, Keyspace, KeyspaceBatch, unix_millis};
use serde::{Deserialize, Serialize};

use super::effective::EffectivePolicy;
use crate::catalog::assignment_config::{RecordError, collection, decode, encode};

/// Keyspace collection: device enrollment id -> [`Lease`] JSON.
pub const LEASES_COLLECTION: &str = "leases";

/// A sign-in's hold on a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds the device.
    pub username: String,
    /// Sign-in time, Unix milliseconds.
    pub started_at_ms: u64,
    /// When the session ends by itself, Unix milliseconds; None for a persistent session.
    pub expires_at_ms: Option<u64>,
    /// The person chose "Stay signed in" (or an operator signed them in persistently).
    pub persistent: bool,
    /// The device was in shared mode at sign-in.
    pub shared_mode: bool,
}

impl Lease {
    /// True when the lease has an end and `now_ms` is at or past it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|end| now_ms >= end)
    }
}

/// The end of a non-persistent session started at `started_ms` under `policy`.
pub fn expiry_for(policy: &EffectivePolicy, started_ms: u64) -> u64 {
    let by_lease =
        started_ms.saturating_add(u64::try_from(policy.lease.as_millis()).unwrap_or(u64::MAX));
    policy
        .time_zone
        .next_shift_end(&policy.shift_ends, started_ms)
        .map_or(by_lease, |shift| shift.min(by_lease))
}

/// The non-persistent lease of `username` signing in at `now` under `policy`.
pub fn lease_for_sign_in(username: &str, policy: &EffectivePolicy, now: SystemTime) -> Lease {
    let now_ms = unix_millis(now);
    Lease {
        username: username.to_owned(),
        started_at_ms: now_ms,
        expires_at_ms: Some(expiry_for(policy, now_ms)),
        persistent: false,
        shared_mode: policy.shared_mode,
    }
}

/// A persistent lease (no end). Callers check [`EffectivePolicy::persistent_allowed`] first.
pub fn persistent_lease(username: &str, policy: &EffectivePolicy, now: SystemTime) -> Lease {
    Lease {
        username: username.to_owned(),
        started_at_ms: unix_millis(now),
        expires_at_ms: None,
        persistent: true,
        shared_mode: policy.shared_mode,
    }
}

fn key(device: &EnrollmentId) -> EnrollmentId {
    device.parent()
}

/// Adds "store `lease` for `device`" to `batch` (pass it to `Reconciler::sign_in_with`).
pub fn put(
    batch: &mut KeyspaceBatch,
    device: &EnrollmentId,
    lease: &Lease,
) -> Result<(), RecordError> {
    batch.put(
        &collection(LEASES_COLLECTION)?,
        key(device).as_str().as_bytes(),
        &encode(lease)?,
    );
    Ok(())
}

/// Adds "delete the lease of `device`" to `batch` (pass it to `Reconciler::sign_out_with`).
pub fn delete(batch: &mut KeyspaceBatch, device: &EnrollmentId) -> Result<(), RecordError> {
    batch.delete(
        &collection(LEASES_COLLECTION)?,
        key(device).as_str().as_bytes(),
    );
    Ok(())
}

/// Adds to `batch` the precondition "`device` has no lease".
pub fn expect_absent(batch: &mut KeyspaceBatch, device: &EnrollmentId) -> Result<(), RecordError> {
    batch.expect(
        &collection(LEASES_COLLECTION)?,
        key(device).as_str().as_bytes(),
        None,
    );
    Ok(())
}

/// A lease as read from the store, with its exact stored bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    /// The device (device-channel id).
    pub device: EnrollmentId,
    /// The lease.
    pub lease: Lease,
    raw: Vec<u8>,
}

impl StoredLease {
    /// Adds to `batch` the precondition "the lease is still exactly this one", so a sign-out
    /// decided on it cannot hit the next person's session.
    pub fn expect_unchanged(&self, batch: &mut KeyspaceBatch) -> Result<(), RecordError> {
        batch.expect(
            &collection(LEASES_COLLECTION)?,
            self.device.as_str().as_bytes(),
            Some(&self.raw),
        );
        Ok(())
    }
}

/// The lease of `device`, if any.
pub fn get(store: &dyn Keyspace, device: &EnrollmentId) -> Result<Option<Lease>, RecordError> {
    store
        .get(
            &collection(LEASES_COLLECTION)?,
            key(device).as_str().as_bytes(),
        )?
        .map(|b| decode(LEASES_COLLECTION, &b))
        .transpose()
}

/// Every lease with its device. A record whose key is not a device id or whose value does
/// not decode is skipped with a warning (the sweeper must not stop on one bad row).
pub fn all(store: &dyn Keyspace) -> Result<Vec<StoredLease>, RecordError> {
    let mut out = Vec::new();
    for (k, raw) in store.scan_prefix(&collection(LEASES_COLLECTION)?, b"")? {
        let key = String::from_utf8_lossy(&k);
        let Ok(device) = EnrollmentId::device(&key) else {
            tracing::warn!(key = %key, "lease under a key that is not a device id; ignored");
            continue;
        };
        match decode::<Lease>(LEASES_COLLECTION, &raw) {
            Ok(lease) => out.push(StoredLease { device, lease, raw }),
            Err(error) => {
                tracing::warn!(enrollment_id = %device, %error, "unreadable lease; ignored");
            }
        }
    }
    Ok(out)
}

/// Makes the current lease of `device` persistent ("Stay signed in?" answered Yes). Refused
/// (`Ok(false)`, nothing written) when the device has no lease, the lease belongs to someone
/// other than `username` (the device changed hands while the prompt was open), it has already
/// ended, or the device is or was in shared mode. Atomic against a concurrent sign-out.
pub fn make_persistent(
    store: &dyn Keyspace,
    device: &EnrollmentId,
    username: &str,
    shared_mode_now: bool,
    now: SystemTime,
) -> Result<bool, RecordError> {
    let coll = collection(LEASES_COLLECTION)?;
    let k = key(device);
    let Some(old) = store.get(&coll, k.as_str().as_bytes())? else {
        return Ok(false);
    };
    let lease: Lease = decode(LEASES_COLLECTION, &old)?;
    if shared_mode_now
        || lease.shared_mode
        || lease.username != username
        || lease.is_expired(unix_millis(now))
    {
        return Ok(false);
    }
    if lease.persistent {
        return Ok(true);
    }
    let new = Lease {
        persistent: true,
        expires_at_ms: None,
        ..lease
    };
    Ok(matches!(
        store.compare_and_swap(
            &coll,
            k.as_str().as_bytes(),
            Some(&old),
            Some(&encode(&new)?)
        )?,
        CasOutcome::Applied
    ))
}

/// Time left before `lease` ends, when that is within `warn_before` (the portal shows a
/// warning then). None for persistent leases, with a zero `warn_before`, or while the end is
/// further away. An ended lease gives `Some(Duration::ZERO)`.
pub fn warning(lease: &Lease, now: SystemTime, warn_before: Duration) -> Option<Duration> {
    let end = lease.expires_at_ms?;
    if warn_before.is_zero() {
        return None;
    }
    let left = Duration::from_millis(end.saturating_sub(unix_millis(now)));
    (left <= warn_before).then_some(left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session_policy::shift::ShiftTime;
    use crate::session_policy::zone::OperatorZone;
    use baton_store::from_unix_millis;

    /// 2024-03-01T00:00:00Z.
    const DAY0: u64 = 1_709_251_200_000;
    const HOUR: u64 = 3_600_000;

    fn policy(lease_secs: u64, ends: &[&str], shared: bool) -> EffectivePolicy {
        EffectivePolicy {
            shared_mode: shared,
            lease: Duration::from_secs(lease_secs),
            shift_ends: ends.iter().map(|s| ShiftTime::parse(s).unwrap()).collect(),
            time_zone: OperatorZone::utc(),
            persistent_allowed: !shared,
            show_keep_signed_in: true,
            prompt_timeout: Duration::from_secs(300),
            warn_before: Duration::from_secs(600),
        }
    }

    fn id(s: &str) -> EnrollmentId {
        EnrollmentId::device(s).unwrap()
    }

    #[test]
    fn expiry_is_the_earlier_of_lease_and_shift_end() {
        let now = from_unix_millis(DAY0 + 10 * HOUR);
        // 8 h lease, no shifts: 18:00.
        let l = lease_for_sign_in("alice", &policy(8 * 3600, &[], false), now);
        assert_eq!(l.expires_at_ms, Some(DAY0 + 18 * HOUR));
        assert!(!l.persistent);
        // Shift end 12:00 comes first.
        let l = lease_for_sign_in("alice", &policy(8 * 3600, &["12:00"], true), now);
        assert_eq!(l.expires_at_ms, Some(DAY0 + 12 * HOUR));
        assert!(l.shared_mode);
        // Shift end 07:00 is tomorrow, after the lease: the lease wins.
        let l = lease_for_sign_in("alice", &policy(8 * 3600, &["07:00"], false), now);
        assert_eq!(l.expires_at_ms, Some(DAY0 + 18 * HOUR));
        // A night shift signing in at 22:00 with a 24 h lease ends at 07:00 tomorrow.
        let night = from_unix_millis(DAY0 + 22 * HOUR);
        let l = lease_for_sign_in("bob", &policy(86_400, &["07:00", "19:00"], false), night);
        assert_eq!(l.expires_at_ms, Some(DAY0 + 31 * HOUR));
        assert!(l.is_expired(DAY0 + 31 * HOUR));
        assert!(!l.is_expired(DAY0 + 31 * HOUR - 1));
        let p = persistent_lease("bob", &policy(60, &["07:00"], false), night);
        assert_eq!(p.expires_at_ms, None);
        assert!(!p.is_expired(u64::MAX));
    }

    #[test]
    fn warning_window() {
        let start = from_unix_millis(DAY0);
        let l = lease_for_sign_in("alice", &policy(3600, &[], false), start);
        let at = |min: u64| from_unix_millis(DAY0 + min * 60_000);
        let ten = Duration::from_secs(600);
        assert_eq!(warning(&l, at(30), ten), None);
        assert_eq!(warning(&l, at(50), ten), Some(Duration::from_secs(600)));
        assert_eq!(warning(&l, at(55), ten), Some(Duration::from_secs(300)));
        assert_eq!(warning(&l, at(70), ten), Some(Duration::ZERO));
        assert_eq!(warning(&l, at(59), Duration::ZERO), None);
        let p = persistent_lease("alice", &policy(3600, &[], false), start);
        assert_eq!(warning(&p, at(70), ten), None);
    }

    #[test]
    fn put_get_delete_all_and_persistence_rules() {
        let store = baton_store::SledStore::temporary().unwrap();
        let now = from_unix_millis(DAY0);
        let dev = id("UDID-A");
        assert_eq!(get(&store, &dev).unwrap(), None);
        let lease = lease_for_sign_in("alice", &policy(3600, &[], false), now);
        let mut batch = KeyspaceBatch::new();
        // A user channel id is stored under its device.
        put(
            &mut batch,
            &EnrollmentId::parse("UDID-A:alice").unwrap(),
            &lease,
        )
        .unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(get(&store, &dev).unwrap(), Some(lease.clone()));
        let stored = all(&store).unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!((&stored[0].device, &stored[0].lease), (&dev, &lease));

        // Someone else's answer, an ended lease, shared mode: refused, nothing changes.
        assert!(!make_persistent(&store, &dev, "bob", false, now).unwrap());
        let later = from_unix_millis(DAY0 + 2 * HOUR);
        assert!(!make_persistent(&store, &dev, "alice", false, later).unwrap());
        assert!(!make_persistent(&store, &dev, "alice", true, now).unwrap());
        assert_eq!(get(&store, &dev).unwrap(), Some(lease.clone()));
        // Allowed: no end any more.
        assert!(make_persistent(&store, &dev, "alice", false, now).unwrap());
        let p = get(&store, &dev).unwrap().unwrap();
        assert!(p.persistent);
        assert_eq!(p.expires_at_ms, None);
        assert_eq!(p.started_at_ms, lease.started_at_ms);

        // A lease taken in shared mode never becomes persistent.
        let other = id("UDID-B");
        let shared = lease_for_sign_in("carol", &policy(3600, &[], true), now);
        let mut batch = KeyspaceBatch::new();
        put(&mut batch, &other, &shared).unwrap();
        store.apply(&batch).unwrap();
        assert!(!make_persistent(&store, &other, "carol", false, now).unwrap());
        assert!(!make_persistent(&store, &id("UDID-NONE"), "carol", false, now).unwrap());

        let mut batch = KeyspaceBatch::new();
        delete(&mut batch, &dev).unwrap();
        store.apply(&batch).unwrap();
        assert_eq!(get(&store, &dev).unwrap(), None);
        assert_eq!(all(&store).unwrap().len(), 1);
    }

    #[test]
    fn preconditions_guard_a_batch() {
        let store = baton_store::SledStore::temporary().unwrap();
        let now = from_unix_millis(DAY0);
        let dev = id("UDID-A");
        let alice = lease_for_sign_in("alice", &policy(3600, &[], false), now);
        let mut batch = KeyspaceBatch::new();
        expect_absent(&mut batch, &dev).unwrap();
        put(&mut batch, &dev, &alice).unwrap();
        assert_eq!(store.apply(&batch).unwrap(), CasOutcome::Applied);
        let seen = all(&store).unwrap().remove(0);
        // The device changes hands after the lease was read.
        let bob = lease_for_sign_in("bob", &policy(3600, &[], false), now);
        let mut batch = KeyspaceBatch::new();
        put(&mut batch, &dev, &bob).unwrap();
        store.apply(&batch).unwrap();
        // A batch decided on alice's lease does nothing to bob's.
        let mut batch = KeyspaceBatch::new();
        seen.expect_unchanged(&mut batch).unwrap();
        delete(&mut batch, &dev).unwrap();
        assert!(!matches!(store.apply(&batch).unwrap(), CasOutcome::Applied));
        assert_eq!(get(&store, &dev).unwrap(), Some(bob));
        let fresh = all(&store).unwrap().remove(0);
        let mut batch = KeyspaceBatch::new();
        fresh.expect_unchanged(&mut batch).unwrap();
        delete(&mut batch, &dev).unwrap();
        assert_eq!(store.apply(&batch).unwrap(), CasOutcome::Applied);
        let mut batch = KeyspaceBatch::new();
        expect_absent(&mut batch, &dev).unwrap();
        assert_eq!(store.apply(&batch).unwrap(), CasOutcome::Applied);
    }
}

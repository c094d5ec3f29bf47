//! Tree names and key encodings of the sled backend.
//!
//! Enrollment ids never contain control characters, so `0x00` separates an id from what
//! follows and a prefix scan over `id 0x00` never matches another id. User channels are
//! `device:user`, so a scan over `device:` finds exactly a device's user channels.

use baton_proto::{CommandUuid, EnrollmentId};

use crate::Priority;

/// `id -> Enrollment` (postcard, `last_seen` always None here).
pub(crate) const ENROLLMENTS: &str = "enrollments";
/// `id -> u64 BE` Unix milliseconds, written in batches.
pub(crate) const LAST_SEEN: &str = "last_seen";
/// `sha256 -> device id`.
pub(crate) const CERT_BY_HASH: &str = "cert_by_hash";
/// `device id -> sha256`.
pub(crate) const CERT_BY_ENROLLMENT: &str = "cert_by_enrollment";
/// `uuid -> StoredCommand` (postcard); one row however many channels get the command.
pub(crate) const COMMANDS: &str = "commands";
/// `id 0x00 (255 - priority) seq:u64 BE -> QueueEntryRow`: the queue order.
pub(crate) const QUEUE: &str = "queue";
/// `id 0x00 uuid -> DeliveryRow`: a command's state and result on one channel.
pub(crate) const DELIVERIES: &str = "deliveries";
/// `id -> u64 BE` session counter, bumped on Idle.
pub(crate) const SESSIONS: &str = "sessions";
/// `id 0x00 uuid -> OrphanReport` (postcard).
pub(crate) const ORPHANS: &str = "orphans";
/// `topic -> PushCertificate` (postcard).
pub(crate) const PUSH_CERTS: &str = "push_certs";
/// `name -> value`: `schema_version` (u32 BE), `seq_base` (u64 BE).
pub(crate) const META: &str = "meta";
/// Prefix of keyspace collection trees: `ks/<collection>`.
pub(crate) const KEYSPACE_PREFIX: &str = "ks/";

/// Every fixed tree, in export order.
pub(crate) const FIXED_TREES: [&str; 10] = [
    ENROLLMENTS,
    LAST_SEEN,
    CERT_BY_HASH,
    CERT_BY_ENROLLMENT,
    COMMANDS,
    QUEUE,
    DELIVERIES,
    SESSIONS,
    ORPHANS,
    PUSH_CERTS,
];

/// `id 0x00`: the prefix of a channel's rows in QUEUE, DELIVERIES and ORPHANS.
pub(crate) fn channel_prefix(id: &EnrollmentId) -> Vec<u8> {
    let mut k = Vec::with_capacity(id.as_str().len() + 1);
    k.extend_from_slice(id.as_str().as_bytes());
    k.push(0);
    k
}

/// `device:`: the prefix of a device's user channels in every id-keyed tree.
pub(crate) fn user_channels_prefix(device: &EnrollmentId) -> Vec<u8> {
    let mut k = Vec::with_capacity(device.as_str().len() + 1);
    k.extend_from_slice(device.as_str().as_bytes());
    k.push(b':');
    k
}

/// The QUEUE key: priority inverted so that a forward scan yields the highest priority first,
/// then the big-endian sequence number for FIFO order.
pub(crate) fn queue_key(id: &EnrollmentId, priority: Priority, seq: u64) -> Vec<u8> {
    let mut k = channel_prefix(id);
    k.push(255 - priority.0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The DELIVERIES / ORPHANS key.
pub(crate) fn delivery_key(id: &EnrollmentId, uuid: &CommandUuid) -> Vec<u8> {
    let mut k = channel_prefix(id);
    k.extend_from_slice(uuid.as_str().as_bytes());
    k
}

/// The id part of a QUEUE / DELIVERIES / ORPHANS key.
pub(crate) fn key_channel(key: &[u8]) -> Option<&[u8]> {
    key.iter().position(|b| *b == 0).map(|i| &key[..i])
}

/// The part after `id 0x00`.
pub(crate) fn key_rest(key: &[u8]) -> Option<&[u8]> {
    key.iter().position(|b| *b == 0).map(|i| &key[i + 1..])
}

/// A u64 as stored.
pub(crate) fn u64_be(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

/// A stored u64, None when the value is not 8 bytes.
pub(crate) fn read_u64_be(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_sort_by_priority_then_sequence() {
        let id = EnrollmentId::device("dev").unwrap();
        let high_late = queue_key(&id, Priority::HIGH, 900);
        let normal_early = queue_key(&id, Priority::NORMAL, 1);
        let normal_late = queue_key(&id, Priority::NORMAL, 256);
        assert!(high_late < normal_early);
        assert!(normal_early < normal_late);
        assert!(high_late.starts_with(&channel_prefix(&id)));
    }

    #[test]
    fn channel_prefixes_do_not_overlap() {
        let a = EnrollmentId::device("dev").unwrap();
        let b = EnrollmentId::device("dev2").unwrap();
        let u = EnrollmentId::user("dev", "alice").unwrap();
        let kb = queue_key(&b, Priority::NORMAL, 1);
        let ku = queue_key(&u, Priority::NORMAL, 1);
        assert!(!kb.starts_with(&channel_prefix(&a)));
        assert!(!ku.starts_with(&channel_prefix(&a)));
        assert!(ku.starts_with(&user_channels_prefix(&a)));
        assert_eq!(key_channel(&ku), Some(u.as_str().as_bytes()));
        let uuid = CommandUuid::new("c-1").unwrap();
        assert_eq!(key_rest(&delivery_key(&a, &uuid)), Some(&b"c-1"[..]));
    }
}

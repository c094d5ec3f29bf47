//! Tree names and key encodings of the sled backend.
//!
//! Enrollment ids never contain control characters, so `0x00` separates an id from what
//! follows and a prefix scan over `id 0x00` never matches another id. User channels are
//! `device:user`, so a scan over `device:` finds exactly a device's user channels.

use baton_proto::{CommandUuid, EnrollmentId};

/// `id -> Enrollment` (postcard; `last_seen` always None here; raw bodies packed by
/// [`super::raw_body`]).
pub(crate) const ENROLLMENTS: &str = "enrollments";
/// `id -> u64 BE` Unix milliseconds, written in batches.
pub(crate) const LAST_SEEN: &str = "last_seen";
/// `sha256 -> device id`.
pub(crate) const CERT_BY_HASH: &str = "cert_by_hash";
/// `device id -> sha256`.
pub(crate) const CERT_BY_ENROLLMENT: &str = "cert_by_enrollment";
/// Three rows per command, written together by one atomic batch on this one tree:
/// `'u' uuid -> seq` (u64 BE), `'c' seq -> CommandRow` (postcard) and `'t' seq -> target list`
/// ([`super::target_list`]). `seq` is the command's enqueue sequence number: unique, and
/// shorter in keys than the CommandUUID. Opening the store renames the target list of a
/// command answered on every channel to `'a' seq` (answered: it implies no queued delivery,
/// but retention still finds the command's results through it), and retention renames it to
/// `'p' seq` while it deletes the command (pruning: resumed after a crash).
pub(crate) const COMMANDS: &str = "commands";
/// `id 0x00 seq -> DeliveryRow`: a command's state and result on one channel, written the
/// first time that state changes (NotNow, a final report, cancel, Authenticate). Until then
/// the delivery is implied: queued, because the channel is in the command's target list.
pub(crate) const DELIVERIES: &str = "deliveries";
/// `id 0x00 uuid -> OrphanReport` (postcard).
pub(crate) const ORPHANS: &str = "orphans";
/// `topic -> PushCertificate` (postcard).
pub(crate) const PUSH_CERTS: &str = "push_certs";
/// `name -> value`: `schema_version` (u32 BE), `seq_base` (u64 BE).
pub(crate) const META: &str = "meta";
/// Prefix of keyspace collection trees: `ks/<collection>`.
pub(crate) const KEYSPACE_PREFIX: &str = "ks/";

/// Every fixed tree, in export order.
pub(crate) const FIXED_TREES: [&str; 8] = [
    ENROLLMENTS,
    LAST_SEEN,
    CERT_BY_HASH,
    CERT_BY_ENROLLMENT,
    COMMANDS,
    DELIVERIES,
    ORPHANS,
    PUSH_CERTS,
];

/// The COMMANDS key of a command's sequence number.
pub(crate) fn uuid_key(uuid: &CommandUuid) -> Vec<u8> {
    let mut k = Vec::with_capacity(uuid.as_str().len() + 1);
    k.push(b'u');
    k.extend_from_slice(uuid.as_str().as_bytes());
    k
}

/// The COMMANDS key of a command row.
pub(crate) fn command_key(seq: u64) -> [u8; 9] {
    tagged(b'c', seq)
}

/// The COMMANDS key of a command's target list.
pub(crate) fn targets_key(seq: u64) -> [u8; 9] {
    tagged(b't', seq)
}

/// The COMMANDS key of the target list of a command answered on every channel.
pub(crate) fn answered_key(seq: u64) -> [u8; 9] {
    tagged(b'a', seq)
}

/// The COMMANDS key of the target list of a command retention is deleting.
pub(crate) fn pruning_key(seq: u64) -> [u8; 9] {
    tagged(b'p', seq)
}

fn tagged(tag: u8, seq: u64) -> [u8; 9] {
    let mut k = [tag; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// `id 0x00`: the prefix of a channel's rows in DELIVERIES and ORPHANS.
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

/// The DELIVERIES key.
pub(crate) fn delivery_key(id: &EnrollmentId, seq: u64) -> Vec<u8> {
    let mut k = channel_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The ORPHANS key.
pub(crate) fn orphan_key(id: &EnrollmentId, uuid: &CommandUuid) -> Vec<u8> {
    let mut k = channel_prefix(id);
    k.extend_from_slice(uuid.as_str().as_bytes());
    k
}

/// The id part of a DELIVERIES / ORPHANS key.
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
    fn command_rows_and_target_lists_do_not_collide() {
        let uuid = CommandUuid::new("c-1").unwrap();
        assert_ne!(command_key(7), targets_key(7));
        assert!(command_key(1) < command_key(256));
        assert_eq!(&uuid_key(&uuid)[1..], b"c-1");
        let id = EnrollmentId::device("dev").unwrap();
        assert!(delivery_key(&id, 1) < delivery_key(&id, 256));
    }

    #[test]
    fn channel_prefixes_do_not_overlap() {
        let a = EnrollmentId::device("dev").unwrap();
        let b = EnrollmentId::device("dev2").unwrap();
        let u = EnrollmentId::user("dev", "alice").unwrap();
        let uuid = CommandUuid::new("c-1").unwrap();
        let kb = delivery_key(&b, 1);
        let ku = orphan_key(&u, &uuid);
        assert!(!kb.starts_with(&channel_prefix(&a)));
        assert!(!ku.starts_with(&channel_prefix(&a)));
        assert!(ku.starts_with(&user_channels_prefix(&a)));
        assert_eq!(key_channel(&ku), Some(u.as_str().as_bytes()));
        assert_eq!(key_rest(&orphan_key(&a, &uuid)), Some(&b"c-1"[..]));
    }
}

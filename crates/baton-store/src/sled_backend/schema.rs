//! The schema version key and the migration hook.
//!
//! `meta/schema_version` holds the layout version (u32 BE). Opening a store written by an older
//! build runs the steps in [`MIGRATIONS`] in order, each in its own durable step; a store from
//! a newer build is refused.

use crate::sled_backend::layout::META;
use crate::{StoreError, StoreResult};

/// The layout version this build writes.
///
/// Version 3 (this one) keeps the target list of a command answered on every channel (renamed
/// `'a'`) so that retention can find its results; version 2 deleted it when the store was
/// opened. Version 2 stores each command once with its target list, a DELIVERIES row only
/// once a delivery's state changes, and raw bodies packed; version 1 had a QUEUE and a
/// DELIVERIES row per channel and command. No version-1 store was ever deployed, so there is
/// no migration step from it: a version-1 store is refused with [`StoreError::Migration`].
pub const SCHEMA_VERSION: u32 = 3;

/// The meta key of the schema version.
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";

/// One migration step: turns a store of version `from` into version `from + 1`.
pub(crate) type MigrationStep = fn(&sled::Db) -> StoreResult<()>;

/// Steps by the version they migrate from; a layout change adds `(version, step)` here and
/// bumps [`SCHEMA_VERSION`].
pub(crate) const MIGRATIONS: &[(u32, MigrationStep)] = &[(2, restore_answered_target_lists)];

/// 2 -> 3: gives every command whose target list version 2 deleted an `'a'` list again, made
/// from its DELIVERIES rows (each of its deliveries had one, or the list would not have been
/// deleted). Reads DELIVERIES once; holds the ids of those commands' deliveries in memory.
fn restore_answered_target_lists(db: &sled::Db) -> StoreResult<()> {
    use std::collections::{BTreeMap, HashSet};

    use super::command_queue::{delivery_ids, tagged_seq};
    use super::layout::{COMMANDS, DELIVERIES, answered_key};

    let commands = db.open_tree(COMMANDS)?;
    let deliveries = db.open_tree(DELIVERIES)?;
    let mut listed = HashSet::new();
    for kv in commands.scan_prefix(b"t") {
        let (k, _) = kv?;
        listed.insert(tagged_seq(&k)?);
    }
    let mut missing: BTreeMap<u64, Vec<baton_proto::EnrollmentId>> = BTreeMap::new();
    for kv in commands.scan_prefix(b"c") {
        let (k, _) = kv?;
        let seq = tagged_seq(&k)?;
        if !listed.contains(&seq) {
            missing.insert(seq, Vec::new());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    for kv in deliveries.iter() {
        let (k, _) = kv?;
        let (id, seq) = delivery_ids(&k)?;
        if let Some(ids) = missing.get_mut(&seq) {
            ids.push(id);
        }
    }
    let mut batch = sled::Batch::default();
    let n = missing.len();
    for (seq, mut ids) in missing {
        ids.sort();
        ids.dedup();
        let refs: Vec<&baton_proto::EnrollmentId> = ids.iter().collect();
        batch.insert(
            answered_key(seq).as_slice(),
            super::target_list::encode(&refs),
        );
    }
    commands.apply_batch(batch)?;
    db.flush()?;
    tracing::info!(
        commands = n,
        "restored the target lists of answered commands"
    );
    Ok(())
}

/// Whether a store (or export) of `version` can be brought to [`SCHEMA_VERSION`].
pub(crate) fn can_migrate_from(version: u32) -> bool {
    (version..SCHEMA_VERSION).all(|v| MIGRATIONS.iter().any(|(from, _)| *from == v))
}

/// The stored version, if any.
pub(crate) fn stored_version(db: &sled::Db) -> StoreResult<Option<u32>> {
    let meta = db.open_tree(META)?;
    match meta.get(SCHEMA_KEY)? {
        None => Ok(None),
        Some(v) => <[u8; 4]>::try_from(v.as_ref())
            .map(|b| Some(u32::from_be_bytes(b)))
            .map_err(|_| StoreError::Corrupt {
                tree: META,
                reason: "schema_version is not 4 bytes".into(),
            }),
    }
}

/// Writes the version.
pub(crate) fn set_version(db: &sled::Db, version: u32) -> StoreResult<()> {
    db.open_tree(META)?
        .insert(SCHEMA_KEY, &version.to_be_bytes())?;
    db.flush()?;
    Ok(())
}

/// Brings the store to [`SCHEMA_VERSION`]: stamps a new store, migrates an old one.
pub(crate) fn ensure(db: &sled::Db) -> StoreResult<u32> {
    let Some(mut version) = stored_version(db)? else {
        set_version(db, SCHEMA_VERSION)?;
        return Ok(SCHEMA_VERSION);
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    while version < SCHEMA_VERSION {
        let step = MIGRATIONS
            .iter()
            .find(|(from, _)| *from == version)
            .map(|(_, step)| *step)
            .ok_or_else(|| StoreError::Migration {
                from: version,
                reason: "no migration step from this version".into(),
            })?;
        tracing::info!(from = version, to = version + 1, "migrating store schema");
        step(db)?;
        version += 1;
        set_version(db, version)?;
    }
    Ok(version)
}

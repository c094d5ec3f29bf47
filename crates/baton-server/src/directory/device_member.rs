//! Adding a device to a static device group: what an enrollment token's `device_group` does
//! when a device enrolls with it. Only groups with static members (`Membership::Devices`) take
//! members this way; a rule group decides its members itself.

use baton_assign::Membership;
use baton_store::{CasOutcome, Keyspace};

use super::{GROUPS_COLLECTION, GroupRecord};
use crate::catalog::assignment_config::{RecordError, collection, decode, encode};

/// Compare-and-swap attempts before giving up.
const CAS_ATTEMPTS: usize = 16;

/// What [`add_device_member`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupJoin {
    /// The device was added.
    Added,
    /// It was a member already.
    AlreadyMember,
    /// The group has no static device members (a user group, or a rule group).
    NotStatic,
    /// No such group.
    UnknownGroup,
}

/// Adds `device` (a UDID) to the static device group `group`.
pub fn add_device_member(
    store: &dyn Keyspace,
    group: &str,
    device: &str,
) -> Result<GroupJoin, RecordError> {
    let groups = collection(GROUPS_COLLECTION)?;
    for _ in 0..CAS_ATTEMPTS {
        let Some(current) = store.get(&groups, group.as_bytes())? else {
            return Ok(GroupJoin::UnknownGroup);
        };
        let mut record: GroupRecord = decode(GROUPS_COLLECTION, &current)?;
        let Membership::Devices { devices } = &mut record.members else {
            return Ok(GroupJoin::NotStatic);
        };
        if !devices.insert(device.to_owned()) {
            return Ok(GroupJoin::AlreadyMember);
        }
        let outcome = store.compare_and_swap(
            &groups,
            group.as_bytes(),
            Some(&current),
            Some(&encode(&record)?),
        )?;
        if outcome == CasOutcome::Applied {
            return Ok(GroupJoin::Added);
        }
    }
    Err(RecordError::Corrupt {
        collection: GROUPS_COLLECTION.to_owned(),
        reason: format!("group {group} kept changing"),
    })
}

/// True when `group` exists and takes static device members.
pub fn is_static_device_group(store: &dyn Keyspace, group: &str) -> Result<bool, RecordError> {
    Ok(
        match store.get(&collection(GROUPS_COLLECTION)?, group.as_bytes())? {
            None => false,
            Some(bytes) => matches!(
                decode::<GroupRecord>(GROUPS_COLLECTION, &bytes)?.members,
                Membership::Devices { .. }
            ),
        },
    )
}

//! The directory as Baton stores it: users (with argon2id password hashes) and user/device
//! groups, kept as JSON in keyspace collections [`USERS_COLLECTION`] and
//! [`GROUPS_COLLECTION`]. The engine's [`baton_assign::Directory`] is built from these records;
//! password hashes never leave this module except through [`password::verify`]. Usernames
//! are unique without case ([`username`]).

pub mod device_member;
pub mod group_record;
pub mod password;
pub mod password_policy;
pub mod user_record;
pub mod username;

pub use device_member::{GroupJoin, add_device_member, is_static_device_group};
pub use group_record::{GroupInput, GroupRecord};
pub use password::{PasswordError, hash_password, verify_password};
pub use password_policy::PasswordPolicy;
pub use user_record::{UserInput, UserRecord, UserView};

/// Keyspace collection: username -> [`UserRecord`] JSON.
pub const USERS_COLLECTION: &str = "users";
/// Keyspace collection: group id -> [`GroupRecord`] JSON.
pub const GROUPS_COLLECTION: &str = "groups";

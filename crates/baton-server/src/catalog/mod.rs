//! The catalog and distributions as Baton stores them (JSON in keyspace collections
//! [`ITEMS_COLLECTION`] and [`DISTRIBUTIONS_COLLECTION`]), the admin API's input shapes, and
//! [`assignment_config::load`], which assembles the engine's [`baton_assign::Config`] from
//! the directory, the catalog and the distributions.

pub mod assignment_config;
pub mod defaults;
pub mod distribution_record;
pub mod item_input;

pub use distribution_record::{DistributionInput, DistributionRecord, TargetInput};
pub use item_input::{ItemInput, ItemInputError};

/// Keyspace collection: item id -> [`baton_assign::CatalogItem`] JSON.
pub const ITEMS_COLLECTION: &str = "items";
/// Keyspace collection: distribution id -> [`DistributionRecord`] JSON.
pub const DISTRIBUTIONS_COLLECTION: &str = "distributions";

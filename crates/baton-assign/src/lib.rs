//! Baton's assignment engine: who gets what on a shared device.
//!
//! Pure: no IO, no clock, no async. The server feeds it data and `now` and gets data back.
//!
//! - [`Config`] holds the [`Directory`] (users incl. the nobody user, user and device groups
//!   with [`Rule`]s), the [`Catalog`] (profile templates, apps, certificates, web clips,
//!   Settings) and the [`Distribution`]s. [`Config::compile`] indexes it into a
//!   [`CompiledConfig`].
//! - [`CompiledConfig::desired`] gives the [`DesiredState`] of a [`Device`] for its assignee;
//!   [`plan`] diffs it against the [`Observed`] inventory and in-flight [`Intent`]s and
//!   returns an ordered [`Plan`].
//! - [`CompiledConfig::explain`] / [`CompiledConfig::preview`] say why each item is or is not
//!   on a device; [`lint`] finds configuration mistakes.
//!
//! It does not build MDM commands (baton-proto and the server do), does not issue
//! certificates and does not store anything.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod attribute;
mod catalog;
mod change;
mod compiled;
mod config;
mod desired;
mod device;
mod directory;
mod distribution;
mod explain;
mod ids;
mod intent;
mod lint;
mod observed;
mod plan;
mod rule;
mod template;

pub use attribute::AttrValue;
pub use catalog::{
    AppLicensing, AppSource, Catalog, CatalogItem, IssuedPer, ItemContent, ItemKind, Scope,
};
pub use change::ConfigChange;
pub use compiled::CompiledConfig;
pub use config::{CompileError, Config, DEFAULT_IDENTIFIER_PREFIX, ItemFailures, RetryPolicy};
pub use desired::{DesiredEntry, DesiredError, DesiredState, ItemProblem, Problem};
pub use device::{Channel, Device, DeviceKind};
pub use directory::{
    Directory, Group, GroupKind, MULTI_USER_OWNER, Membership, NOBODY_USERNAME, User,
};
pub use distribution::{Distribution, Target};
pub use explain::{Exclusion, Explanation, ItemExplanation, Preview, Verdict, Via};
pub use ids::{DistributionId, GroupId, ItemId, MAX_NAME_LEN, NameError, UnixTime};
pub use intent::{Intent, RenderedSettings};
pub use lint::{Lint, LintCode, Severity, lint};
pub use observed::{
    AppStatus, ChannelInventory, Observed, ObservedApp, ObservedCertificate, ObservedProfile,
};
pub use plan::{Deferred, GaveUp, Plan, plan, plan_change};
pub use rule::{MAX_RULE_DEPTH, MAX_RULE_LEN, Rule, RuleError};
pub use template::{TemplateError, VarScope, Variable};

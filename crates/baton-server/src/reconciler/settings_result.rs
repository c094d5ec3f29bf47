//! Per-item results of a Settings command. iOS acknowledges the command while items fail
//! (`{Item, Status, ErrorChain}` per item: e.g. `DeviceName` on an unsupervised device is a
//! `CommandFormatError`, `ApplicationConfiguration` for an unmanaged app 12038), so the
//! top-level status alone must not mark the settings applied.
//!
//! Failures are kept per Settings catalog item ([`SETTINGS_FAILURES_COLLECTION`],
//! `device|item` -> the failed entries as JSON) for the operator; the reconciler also counts them
//! as item failures, so the retry policy applies.

use baton_assign::{Intent, ItemId};
use baton_proto::plist::Value;
use baton_proto::{CommandReport, EnrollmentId, ErrorChainItem};
use baton_store::Keyspace;
use serde::{Deserialize, Serialize};

use super::device_state;
use crate::catalog::assignment_config::{RecordError, scan_json};

/// Keyspace collection: `device|settings item` -> `Vec<FailedSetting>`.
pub const SETTINGS_FAILURES_COLLECTION: &str = "settings_failures";

/// One Settings entry the device did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedSetting {
    /// Its `Item` (e.g. `DeviceName`).
    pub setting: String,
    /// The entry's `Status` (`Error`, `CommandFormatError`, ...).
    pub status: String,
    /// Its ErrorChain, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<ErrorChainItem>,
}

/// The outcome of an acknowledged ApplySettings, per catalog item of the intent.
#[derive(Debug, Default)]
pub struct SettingsOutcome {
    /// Catalog items all of whose entries were applied.
    pub applied: Vec<ItemId>,
    /// Catalog items with failed entries.
    pub failed: Vec<(ItemId, Vec<FailedSetting>)>,
}

/// Reads the per-item results of `report` against the intent's items (entries are answered
/// in the order they were sent; an answer without a per-item list counts as all applied).
pub fn outcome(intent: &Intent, report: &CommandReport) -> SettingsOutcome {
    let Intent::ApplySettings { settings, .. } = intent else {
        return SettingsOutcome::default();
    };
    let results: Vec<(String, String, Vec<ErrorChainItem>)> = match report.response.get("Settings")
    {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                let d = v.as_dictionary();
                let text = |k: &str| {
                    d.and_then(|d| d.get(k))
                        .and_then(Value::as_string)
                        .unwrap_or("")
                        .to_owned()
                };
                (text("Item"), text("Status"), chain_of(v))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out = SettingsOutcome::default();
    let mut at = 0usize;
    for rendered in settings {
        let entries = match Value::from_reader_xml(rendered.settings.as_bytes()) {
            Ok(Value::Array(a)) => a.len(),
            _ => 0,
        };
        let failed: Vec<FailedSetting> = results
            .iter()
            .skip(at)
            .take(entries)
            .filter(|(_, status, _)| status != "Acknowledged")
            .map(|(item, status, chain)| FailedSetting {
                setting: item.clone(),
                status: status.clone(),
                error_chain: chain.clone(),
            })
            .collect();
        at += entries;
        if failed.is_empty() {
            out.applied.push(rendered.item.clone());
        } else {
            out.failed.push((rendered.item.clone(), failed));
        }
    }
    out
}

fn chain_of(v: &Value) -> Vec<ErrorChainItem> {
    let Some(Value::Array(chain)) = v.as_dictionary().and_then(|d| d.get("ErrorChain")) else {
        return Vec::new();
    };
    chain
        .iter()
        .filter_map(Value::as_dictionary)
        .map(|d| ErrorChainItem {
            code: d
                .get("ErrorCode")
                .and_then(Value::as_signed_integer)
                .unwrap_or(0),
            domain: d
                .get("ErrorDomain")
                .and_then(Value::as_string)
                .unwrap_or("")
                .to_owned(),
            localized_description: d
                .get("LocalizedDescription")
                .and_then(Value::as_string)
                .map(str::to_owned),
            us_english_description: d
                .get("USEnglishDescription")
                .and_then(Value::as_string)
                .map(str::to_owned),
        })
        .collect()
}

/// The failed Settings entries of `device`, by catalog item.
pub fn of(
    store: &dyn Keyspace,
    device: &EnrollmentId,
) -> Result<Vec<(String, Vec<FailedSetting>)>, RecordError> {
    let prefix = device_state::key(device, "");
    Ok(
        scan_json::<Vec<FailedSetting>>(store, SETTINGS_FAILURES_COLLECTION, &prefix)?
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(&prefix).unwrap_or(&k).to_owned(), v))
            .collect(),
    )
}

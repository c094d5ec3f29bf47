//! What a device reported: ProfileList, ManagedApplicationList, CertificateList results and
//! acknowledged commands, per channel, in the simple shape the planner needs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::device::Channel;
use crate::intent::Intent;

/// An installed profile (ProfileList entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedProfile {
    /// Its top-level PayloadUUID (Baton derives it from the content, so it reveals the
    /// content version).
    pub payload_uuid: Arc<str>,
}

/// An app's `Status` in ManagedApplicationList.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppStatus {
    /// Installed and managed.
    Managed,
    /// Installing, queued, prompting, redeeming, validating or updating: wait for it.
    InProgress(String),
    /// Managed but not installed (deleted by the person, or failed).
    ManagedButUninstalled,
    /// Installation failed.
    Failed,
    /// The person declined installation or management.
    UserRejected,
    /// Installed by the person, not managed.
    UserInstalledApp,
    /// Any other status string.
    Other(String),
}

impl AppStatus {
    /// Maps a ManagedApplicationList `Status` string.
    pub fn from_report(status: &str) -> AppStatus {
        match status {
            "Managed" => AppStatus::Managed,
            "ManagedButUninstalled" => AppStatus::ManagedButUninstalled,
            "Failed" => AppStatus::Failed,
            "UserRejected" | "UpdateRejected" => AppStatus::UserRejected,
            "UserInstalledApp" => AppStatus::UserInstalledApp,
            "NeedsRedemption"
            | "Redeeming"
            | "Prompting"
            | "PromptingForLogin"
            | "ValidatingPurchase"
            | "Installing"
            | "Queued"
            | "PromptingForUpdate"
            | "PromptingForUpdateLogin"
            | "PromptingForManagement"
            | "Updating"
            | "ValidatingUpdate" => AppStatus::InProgress(status.to_owned()),
            other => AppStatus::Other(other.to_owned()),
        }
    }

    /// True when the app is installed or on its way, so installing again would only repeat.
    pub fn is_present(&self) -> bool {
        matches!(self, AppStatus::Managed | AppStatus::InProgress(_))
    }
}

/// A managed app (ManagedApplicationList entry plus what Baton recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedApp {
    /// Reported status.
    pub status: AppStatus,
    /// True when Baton installed it (an acknowledged InstallApplication): only such apps are
    /// ever removed.
    pub baton_managed: bool,
    /// `config_hash` of the acknowledged InstallApplication, if it carried a configuration.
    #[serde(default)]
    pub config_hash: Option<Arc<str>>,
}

/// A CertificateList entry (informational: issued certificates are tracked through the
/// profile that carries them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedCertificate {
    /// `CommonName`.
    pub common_name: String,
    /// `IsIdentity`.
    pub is_identity: bool,
}

/// Everything known about one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelInventory {
    /// Installed profiles by PayloadIdentifier (all of them, Baton's and foreign).
    #[serde(default)]
    pub profiles: BTreeMap<String, ObservedProfile>,
    /// Managed apps by bundle id.
    #[serde(default)]
    pub apps: BTreeMap<String, ObservedApp>,
    /// Certificates.
    #[serde(default)]
    pub certificates: Vec<ObservedCertificate>,
    /// `settings_hash` of the last acknowledged ApplySettings.
    #[serde(default)]
    pub settings_hash: Option<Arc<str>>,
}

/// What is known about a device: its device channel and any Shared iPad user channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// The device channel.
    #[serde(default)]
    pub device: ChannelInventory,
    /// User channels by short name.
    #[serde(default)]
    pub users: BTreeMap<String, ChannelInventory>,
}

impl Observed {
    /// The inventory of a channel, if any is known.
    pub fn channel(&self, channel: &Channel) -> Option<&ChannelInventory> {
        match channel {
            Channel::Device => Some(&self.device),
            Channel::User { short_name } => self.users.get(short_name),
        }
    }

    /// The inventory of a channel, created empty when missing.
    pub fn channel_mut(&mut self, channel: &Channel) -> &mut ChannelInventory {
        match channel {
            Channel::Device => &mut self.device,
            Channel::User { short_name } => self.users.entry(short_name.clone()).or_default(),
        }
    }

    /// Records the effect of an acknowledged intent (the server calls this on `Acknowledged`;
    /// the planner uses it to project in-flight intents).
    pub fn apply(&mut self, intent: &Intent) {
        let inv = self.channel_mut(intent.channel());
        match intent {
            Intent::RemoveApplication { bundle_id, .. } => {
                inv.apps.remove(&**bundle_id);
            }
            Intent::RemoveProfile { identifier, .. }
            | Intent::RemoveCertificate { identifier, .. } => {
                inv.profiles.remove(&**identifier);
            }
            Intent::InstallCertificate {
                identifier,
                payload_uuid,
                ..
            }
            | Intent::InstallProfile {
                identifier,
                payload_uuid,
                ..
            }
            | Intent::InstallWebClip {
                identifier,
                payload_uuid,
                ..
            } => {
                inv.profiles.insert(
                    identifier.to_string(),
                    ObservedProfile {
                        payload_uuid: payload_uuid.clone(),
                    },
                );
            }
            Intent::InstallApplication {
                bundle_id,
                config_hash,
                ..
            } => {
                // Accepted, not installed: only ManagedApplicationList says `Managed`
                // [Y application.install].
                inv.apps.insert(
                    bundle_id.to_string(),
                    ObservedApp {
                        status: AppStatus::InProgress("Queued".to_owned()),
                        baton_managed: true,
                        config_hash: config_hash.clone(),
                    },
                );
            }
            Intent::ApplySettings { settings_hash, .. } => {
                inv.settings_hash = settings_hash.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_status_mapping() {
        assert_eq!(AppStatus::from_report("Managed"), AppStatus::Managed);
        assert!(AppStatus::from_report("Installing").is_present());
        assert!(!AppStatus::from_report("ManagedButUninstalled").is_present());
        assert!(!AppStatus::from_report("Failed").is_present());
        assert_eq!(
            AppStatus::from_report("Weird"),
            AppStatus::Other("Weird".into())
        );
    }
}

//! What a simulated channel has installed: configuration profiles (and, through them,
//! certificates and web clips) and managed apps. Serialisable so a fleet survives restarts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One payload of an installed profile, as ProfileList reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledPayload {
    /// `PayloadType`.
    pub payload_type: String,
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion`.
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
}

/// An installed configuration profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledProfile {
    /// `PayloadIdentifier`.
    pub identifier: String,
    /// `PayloadUUID`.
    pub uuid: String,
    /// `PayloadVersion`.
    pub version: i64,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: bool,
    /// Installed by the MDM server (InstallProfile), hence removable with RemoveProfile.
    pub managed: bool,
    /// The payloads.
    pub payloads: Vec<InstalledPayload>,
    /// What its `com.apple.mdm` payload says (the MDM profile only).
    #[serde(default)]
    pub mdm: Option<crate::mdm_profile::MdmTerms>,
}

/// The state of a managed app, as ManagedApplicationList reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppStatus {
    /// `Queued`: accepted, not started.
    Queued,
    /// `Installing`: downloading or installing.
    Installing,
    /// `Managed`: installed and managed.
    Managed,
    /// `Failed`: the installation failed (reported once, then gone).
    Failed,
    /// `UserRejected`: the person declined (reported once, then gone).
    UserRejected,
    /// `ManagedButUninstalled`: managed, but the person deleted the app [Y application.managed.list].
    ManagedButUninstalled,
}

impl AppStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::Queued => "Queued",
            AppStatus::Installing => "Installing",
            AppStatus::Managed => "Managed",
            AppStatus::Failed => "Failed",
            AppStatus::UserRejected => "UserRejected",
            AppStatus::ManagedButUninstalled => "ManagedButUninstalled",
        }
    }

    /// iOS reports these once in ManagedApplicationList; the entry is gone from the next list
    /// [Y application.managed.list; P `_managedApplicationList:` `advanceTransientStates:1`].
    pub fn is_transient(self) -> bool {
        matches!(self, AppStatus::Failed | AppStatus::UserRejected)
    }

    /// Still on its way (`Queued`, `Installing`).
    pub fn is_pending(self) -> bool {
        matches!(self, AppStatus::Queued | AppStatus::Installing)
    }
}

/// A managed app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedApp {
    /// Bundle identifier.
    pub identifier: String,
    /// Display name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Current state.
    pub status: AppStatus,
    /// `ManagementFlags` (1 = remove with the MDM profile, 4 = prevent backup).
    pub management_flags: i64,
    /// A managed app configuration was given.
    pub has_configuration: bool,
    /// Where it came from (`iTunesStoreID 123`, a manifest URL, or the identifier).
    pub source: String,
}

/// A certificate on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledCertificate {
    /// Subject common name.
    pub common_name: String,
    /// With a private key (PKCS#12, SCEP).
    pub is_identity: bool,
    /// DER, hex-encoded.
    pub der_hex: String,
    /// The profile that installed it.
    pub profile_identifier: String,
    /// The payload that installed it.
    pub payload_identifier: String,
}

/// A web clip on the home screen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebClip {
    /// `Label`.
    pub label: String,
    /// `URL`.
    pub url: String,
    /// `IsRemovable`.
    pub is_removable: bool,
    /// The profile that installed it.
    pub profile_identifier: String,
    /// The payload that installed it.
    pub payload_identifier: String,
}

/// Everything installed on one channel (the device, or a Shared iPad user).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Installed profiles, in installation order.
    pub profiles: Vec<InstalledProfile>,
    /// Managed apps by bundle identifier.
    pub apps: BTreeMap<String, ManagedApp>,
    /// Certificates from profiles.
    pub certificates: Vec<InstalledCertificate>,
    /// Web clips from profiles.
    pub web_clips: Vec<WebClip>,
    /// Apps the person installed from the App Store themselves (not managed), by bundle
    /// identifier: their names.
    #[serde(default)]
    pub user_apps: BTreeMap<String, String>,
}

impl Inventory {
    /// The installed profile with this identifier.
    pub fn profile(&self, identifier: &str) -> Option<&InstalledProfile> {
        self.profiles.iter().find(|p| p.identifier == identifier)
    }

    /// Removes a profile and everything it installed; returns it.
    pub fn remove_profile(&mut self, identifier: &str) -> Option<InstalledProfile> {
        let index = self
            .profiles
            .iter()
            .position(|p| p.identifier == identifier)?;
        self.certificates
            .retain(|c| c.profile_identifier != identifier);
        self.web_clips
            .retain(|w| w.profile_identifier != identifier);
        Some(self.profiles.remove(index))
    }

    /// Moves every app that is installing to Managed (the download finished).
    pub fn settle_apps(&mut self) -> usize {
        let mut moved = 0;
        for app in self.apps.values_mut() {
            if matches!(app.status, AppStatus::Queued | AppStatus::Installing) {
                app.status = AppStatus::Managed;
                moved += 1;
            }
        }
        moved
    }

    /// Moves every pending install one step, as time passes between sessions on a device:
    /// `Queued` -> `Installing` -> `outcome`. Returns how many apps moved.
    pub fn advance_apps(&mut self, outcome: AppStatus) -> usize {
        let mut moved = 0;
        for app in self.apps.values_mut() {
            let next = match app.status {
                AppStatus::Queued => AppStatus::Installing,
                AppStatus::Installing => outcome,
                _ => continue,
            };
            app.status = next;
            moved += 1;
        }
        moved
    }

    /// Removes the managed apps flagged "remove with the MDM profile" and every MDM-installed
    /// profile (what happens when the device unenrolls).
    pub fn unenroll(&mut self) {
        self.apps.retain(|_, a| a.management_flags & 1 == 0);
        let managed: Vec<String> = self
            .profiles
            .iter()
            .filter(|p| p.managed)
            .map(|p| p.identifier.clone())
            .collect();
        for id in managed {
            self.remove_profile(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: &str, managed: bool) -> InstalledProfile {
        InstalledProfile {
            identifier: id.into(),
            uuid: format!("{id}-uuid"),
            version: 1,
            display_name: None,
            description: None,
            organization: None,
            removal_disallowed: false,
            managed,
            payloads: Vec::new(),
            mdm: None,
        }
    }

    #[test]
    fn removing_a_profile_takes_its_clips_and_certificates() {
        let mut inv = Inventory::default();
        inv.profiles.push(profile("a", true));
        inv.profiles.push(profile("b", true));
        for p in ["a", "b"] {
            inv.web_clips.push(WebClip {
                label: p.into(),
                url: format!("https://x/{p}"),
                is_removable: false,
                profile_identifier: p.into(),
                payload_identifier: format!("{p}.clip"),
            });
        }
        inv.certificates.push(InstalledCertificate {
            common_name: "c".into(),
            is_identity: false,
            der_hex: String::new(),
            profile_identifier: "a".into(),
            payload_identifier: "a.cert".into(),
        });
        assert!(inv.remove_profile("a").is_some());
        assert!(inv.remove_profile("a").is_none());
        assert_eq!(inv.web_clips.len(), 1);
        assert_eq!(inv.web_clips[0].label, "b");
        assert!(inv.certificates.is_empty());
    }

    #[test]
    fn unenroll_keeps_user_profiles_and_unflagged_apps() {
        let mut inv = Inventory::default();
        inv.profiles.push(profile("mdm", true));
        inv.profiles.push(profile("user", false));
        for (id, flags) in [("keep", 0), ("drop", 1)] {
            inv.apps.insert(
                id.into(),
                ManagedApp {
                    identifier: id.into(),
                    name: id.into(),
                    version: "1".into(),
                    status: AppStatus::Installing,
                    management_flags: flags,
                    has_configuration: false,
                    source: id.into(),
                },
            );
        }
        assert_eq!(inv.settle_apps(), 2);
        inv.unenroll();
        assert_eq!(inv.profiles.len(), 1);
        assert_eq!(inv.profiles[0].identifier, "user");
        assert_eq!(inv.apps.keys().collect::<Vec<_>>(), vec!["keep"]);
    }
}

//! Typed views over the command responses Baton acts on.
//!
//! Each view reads only the keys it names and tolerates every optional key being absent; a key
//! present with the wrong type is a [`FieldError`] naming it. Unmodelled keys stay available in the
//! report's response dictionary (and, for the two dictionary-shaped views, in `raw`).

use plist::Dictionary;
use serde::Serialize;

use crate::field::{FieldError, Fields, join};

/// One payload inside a [`ProfileListItem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfilePayloadSummary {
    /// `PayloadType`.
    pub payload_type: Option<String>,
    /// `PayloadIdentifier`.
    pub identifier: Option<String>,
    /// `PayloadUUID`.
    pub uuid: Option<String>,
    /// `PayloadVersion`.
    pub version: Option<i64>,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
}

/// One installed profile of a `ProfileList` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProfileListItem {
    /// `PayloadIdentifier`: what RemoveProfile takes.
    pub identifier: String,
    /// `PayloadUUID`: changes with every new version of a profile.
    pub uuid: Option<String>,
    /// `PayloadVersion`.
    pub version: Option<i64>,
    /// `PayloadDisplayName`.
    pub display_name: Option<String>,
    /// `PayloadDescription`.
    pub description: Option<String>,
    /// `PayloadOrganization`.
    pub organization: Option<String>,
    /// `PayloadRemovalDisallowed`.
    pub removal_disallowed: Option<bool>,
    /// `HasRemovalPasscode`.
    pub has_removal_passcode: Option<bool>,
    /// `IsEncrypted`.
    pub is_encrypted: Option<bool>,
    /// `IsManaged`: installed by MDM.
    pub is_managed: Option<bool>,
    /// `PayloadContent` summaries.
    pub payloads: Vec<ProfilePayloadSummary>,
}

impl ProfileListItem {
    pub(crate) fn read_list(f: &Fields<'_>) -> Result<Option<Vec<Self>>, FieldError> {
        let Some(items) = f.opt_dict_array("ProfileList")? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|(path, d)| Self::read(&Fields::at(d, path)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn read(f: &Fields<'_>) -> Result<Self, FieldError> {
        let payloads = f
            .opt_dict_array("PayloadContent")?
            .unwrap_or_default()
            .iter()
            .map(|(path, d)| {
                let p = Fields::at(d, path);
                Ok(ProfilePayloadSummary {
                    payload_type: p.opt_string("PayloadType")?,
                    identifier: p.opt_string("PayloadIdentifier")?,
                    uuid: p.opt_string("PayloadUUID")?,
                    version: p.opt_i64("PayloadVersion")?,
                    display_name: p.opt_string("PayloadDisplayName")?,
                })
            })
            .collect::<Result<Vec<_>, FieldError>>()?;
        Ok(Self {
            identifier: f.string("PayloadIdentifier")?,
            uuid: f.opt_string("PayloadUUID")?,
            version: f.opt_i64("PayloadVersion")?,
            display_name: f.opt_string("PayloadDisplayName")?,
            description: f.opt_string("PayloadDescription")?,
            organization: f.opt_string("PayloadOrganization")?,
            removal_disallowed: f.opt_bool("PayloadRemovalDisallowed")?,
            has_removal_passcode: f.opt_bool("HasRemovalPasscode")?,
            is_encrypted: f.opt_bool("IsEncrypted")?,
            is_managed: f.opt_bool("IsManaged")?,
            payloads,
        })
    }
}

/// One app of an `InstalledApplicationList` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledApplication {
    /// `Identifier`: the bundle id (always sent by iOS, sometimes missing on macOS).
    pub identifier: Option<String>,
    /// `Name`.
    pub name: Option<String>,
    /// `Version`.
    pub version: Option<String>,
    /// `ShortVersion`.
    pub short_version: Option<String>,
    /// `BundleSize` in bytes.
    pub bundle_size: Option<u64>,
    /// `DynamicSize` in bytes.
    pub dynamic_size: Option<u64>,
    /// `ExternalVersionIdentifier`.
    pub external_version_identifier: Option<i64>,
    /// `Installing`.
    pub installing: Option<bool>,
    /// `IsValidated`.
    pub is_validated: Option<bool>,
    /// `HasUpdateAvailable`.
    pub has_update_available: Option<bool>,
    /// `IsAppClip`.
    pub is_app_clip: Option<bool>,
}

impl InstalledApplication {
    pub(crate) fn read_list(f: &Fields<'_>) -> Result<Option<Vec<Self>>, FieldError> {
        let Some(items) = f.opt_dict_array("InstalledApplicationList")? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|(path, d)| {
                let a = Fields::at(d, path);
                Ok(Self {
                    identifier: a.opt_string("Identifier")?,
                    name: a.opt_string("Name")?,
                    version: a.opt_string("Version")?,
                    short_version: a.opt_string("ShortVersion")?,
                    bundle_size: a.opt_u64("BundleSize")?,
                    dynamic_size: a.opt_u64("DynamicSize")?,
                    external_version_identifier: a.opt_i64("ExternalVersionIdentifier")?,
                    installing: a.opt_bool("Installing")?,
                    is_validated: a.opt_bool("IsValidated")?,
                    has_update_available: a.opt_bool("HasUpdateAvailable")?,
                    is_app_clip: a.opt_bool("IsAppClip")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// One app of a `ManagedApplicationList` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedApplication {
    /// The bundle identifier (the dictionary key in the response).
    pub identifier: String,
    /// `Status`: `Managed`, `Installing`, `Failed`, `ManagedButUninstalled`...
    pub status: Option<String>,
    /// `ManagementFlags`.
    pub management_flags: Option<i64>,
    /// `HasConfiguration`.
    pub has_configuration: Option<bool>,
    /// `HasFeedback`.
    pub has_feedback: Option<bool>,
    /// `IsValidated`.
    pub is_validated: Option<bool>,
    /// `ExternalVersionIdentifier`.
    pub external_version_identifier: Option<i64>,
}

impl ManagedApplication {
    /// True when the device reports the app installed and managed (`Status` = `Managed`).
    pub fn is_installed(&self) -> bool {
        self.status.as_deref() == Some("Managed")
    }

    pub(crate) fn read_list(f: &Fields<'_>) -> Result<Option<Vec<Self>>, FieldError> {
        let Some(apps) = f.opt_dict("ManagedApplicationList")? else {
            return Ok(None);
        };
        let list_path = f.path_of("ManagedApplicationList");
        apps.iter()
            .map(|(id, v)| {
                let path = join(&list_path, id);
                let Some(d) = v.as_dictionary() else {
                    return Err(FieldError::WrongType {
                        key: path,
                        expected: "dictionary",
                        found: crate::value_kind(v),
                    });
                };
                let a = Fields::at(d, &path);
                Ok(Self {
                    identifier: id.clone(),
                    status: a.opt_string("Status")?,
                    management_flags: a.opt_i64("ManagementFlags")?,
                    has_configuration: a.opt_bool("HasConfiguration")?,
                    has_feedback: a.opt_bool("HasFeedback")?,
                    is_validated: a.opt_bool("IsValidated")?,
                    external_version_identifier: a.opt_i64("ExternalVersionIdentifier")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// One certificate of a `CertificateList` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateListItem {
    /// `CommonName`.
    pub common_name: Option<String>,
    /// `IsIdentity`: a private key is installed with it.
    pub is_identity: Option<bool>,
    /// `Data`: the DER certificate.
    #[serde(skip)]
    pub data: Vec<u8>,
}

impl CertificateListItem {
    pub(crate) fn read_list(f: &Fields<'_>) -> Result<Option<Vec<Self>>, FieldError> {
        let Some(items) = f.opt_dict_array("CertificateList")? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|(path, d)| {
                let c = Fields::at(d, path);
                Ok(Self {
                    common_name: c.opt_string("CommonName")?,
                    is_identity: c.opt_bool("IsIdentity")?,
                    data: c.opt_data("Data")?.unwrap_or_default().to_vec(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// The `QueryResponses` of a DeviceInformation command (the common queries typed, all kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceInformation {
    /// `UDID`.
    pub udid: Option<String>,
    /// `DeviceName`.
    pub device_name: Option<String>,
    /// `OSVersion`.
    pub os_version: Option<String>,
    /// `BuildVersion`.
    pub build_version: Option<String>,
    /// `ModelName`.
    pub model_name: Option<String>,
    /// `Model`.
    pub model: Option<String>,
    /// `ProductName`.
    pub product_name: Option<String>,
    /// `SerialNumber`.
    pub serial_number: Option<String>,
    /// `IMEI`.
    pub imei: Option<String>,
    /// `MEID`.
    pub meid: Option<String>,
    /// `IsSupervised`.
    pub is_supervised: Option<bool>,
    /// `IsMultiUser`: a Shared iPad.
    pub is_multi_user: Option<bool>,
    /// `AwaitingConfiguration`.
    pub awaiting_configuration: Option<bool>,
    /// `DeviceCapacity` in GB.
    pub device_capacity: Option<f64>,
    /// `AvailableDeviceCapacity` in GB.
    pub available_device_capacity: Option<f64>,
    /// Every query response as sent.
    #[serde(skip)]
    pub raw: Dictionary,
}

impl DeviceInformation {
    pub(crate) fn read(f: &Fields<'_>) -> Result<Option<Self>, FieldError> {
        let Some(d) = f.opt_dict("QueryResponses")? else {
            return Ok(None);
        };
        let path = f.path_of("QueryResponses");
        let q = Fields::at(d, &path);
        Ok(Some(Self {
            udid: q.opt_string("UDID")?,
            device_name: q.opt_string("DeviceName")?,
            os_version: q.opt_string("OSVersion")?,
            build_version: q.opt_string("BuildVersion")?,
            model_name: q.opt_string("ModelName")?,
            model: q.opt_string("Model")?,
            product_name: q.opt_string("ProductName")?,
            serial_number: q.opt_string("SerialNumber")?,
            imei: q.opt_string("IMEI")?,
            meid: q.opt_string("MEID")?,
            is_supervised: q.opt_bool("IsSupervised")?,
            is_multi_user: q.opt_bool("IsMultiUser")?,
            awaiting_configuration: q.opt_bool("AwaitingConfiguration")?,
            device_capacity: q.opt_f64("DeviceCapacity")?,
            available_device_capacity: q.opt_f64("AvailableDeviceCapacity")?,
            raw: d.clone(),
        }))
    }
}

/// `ManagementStatus` inside [`SecurityInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagementStatus {
    /// `EnrolledViaDEP`.
    pub enrolled_via_dep: Option<bool>,
    /// `UserApprovedEnrollment`.
    pub user_approved_enrollment: Option<bool>,
    /// `IsUserEnrollment`: Baton excludes User Enrollment devices from shared use.
    pub is_user_enrollment: Option<bool>,
    /// `IsActivationLockManageable`.
    pub is_activation_lock_manageable: Option<bool>,
}

/// The `SecurityInfo` response (the iOS-relevant keys typed, all kept).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityInfo {
    /// `HardwareEncryptionCaps` (bit field).
    pub hardware_encryption_caps: Option<i64>,
    /// `PasscodePresent`.
    pub passcode_present: Option<bool>,
    /// `PasscodeCompliant`.
    pub passcode_compliant: Option<bool>,
    /// `PasscodeCompliantWithProfiles`.
    pub passcode_compliant_with_profiles: Option<bool>,
    /// `PasscodeLockGracePeriod` in seconds.
    pub passcode_lock_grace_period: Option<i64>,
    /// `PasscodeLockGracePeriodEnforced` in seconds.
    pub passcode_lock_grace_period_enforced: Option<i64>,
    /// `ManagementStatus`.
    pub management_status: Option<ManagementStatus>,
    /// Every key as sent.
    #[serde(skip)]
    pub raw: Dictionary,
}

impl SecurityInfo {
    pub(crate) fn read(f: &Fields<'_>) -> Result<Option<Self>, FieldError> {
        let Some(d) = f.opt_dict("SecurityInfo")? else {
            return Ok(None);
        };
        let path = f.path_of("SecurityInfo");
        let s = Fields::at(d, &path);
        let management_status = match s.opt_dict("ManagementStatus")? {
            None => None,
            Some(m) => {
                let mpath = s.path_of("ManagementStatus");
                let m = Fields::at(m, &mpath);
                Some(ManagementStatus {
                    enrolled_via_dep: m.opt_bool("EnrolledViaDEP")?,
                    user_approved_enrollment: m.opt_bool("UserApprovedEnrollment")?,
                    is_user_enrollment: m.opt_bool("IsUserEnrollment")?,
                    is_activation_lock_manageable: m.opt_bool("IsActivationLockManageable")?,
                })
            }
        };
        Ok(Some(Self {
            hardware_encryption_caps: s.opt_i64("HardwareEncryptionCaps")?,
            passcode_present: s.opt_bool("PasscodePresent")?,
            passcode_compliant: s.opt_bool("PasscodeCompliant")?,
            passcode_compliant_with_profiles: s.opt_bool("PasscodeCompliantWithProfiles")?,
            passcode_lock_grace_period: s.opt_i64("PasscodeLockGracePeriod")?,
            passcode_lock_grace_period_enforced: s.opt_i64("PasscodeLockGracePeriodEnforced")?,
            management_status,
            raw: d.clone(),
        }))
    }
}

/// One user of a `UserList` response (`Users`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserListItem {
    /// `UserName`: the Managed Apple Account on Shared iPad; what DeleteUser takes.
    pub user_name: Option<String>,
    /// `FullName`.
    pub full_name: Option<String>,
    /// `UID`.
    pub uid: Option<i64>,
    /// `UserGUID`.
    pub user_guid: Option<String>,
    /// `IsLoggedIn`.
    pub is_logged_in: Option<bool>,
    /// `HasDataToSync`: DeleteUser without ForceDeletion fails while true.
    pub has_data_to_sync: Option<bool>,
    /// `DataQuota` in bytes.
    pub data_quota: Option<i64>,
    /// `DataUsed` in bytes.
    pub data_used: Option<i64>,
    /// `MobileAccount` (macOS).
    pub mobile_account: Option<bool>,
    /// `HasSecureToken` (macOS).
    pub has_secure_token: Option<bool>,
}

impl UserListItem {
    pub(crate) fn read_list(f: &Fields<'_>) -> Result<Option<Vec<Self>>, FieldError> {
        let Some(items) = f.opt_dict_array("Users")? else {
            return Ok(None);
        };
        items
            .iter()
            .map(|(path, d)| {
                let u = Fields::at(d, path);
                Ok(Self {
                    user_name: u.opt_string("UserName")?,
                    full_name: u.opt_string("FullName")?,
                    uid: u.opt_i64("UID")?,
                    user_guid: u.opt_string("UserGUID")?,
                    is_logged_in: u.opt_bool("IsLoggedIn")?,
                    has_data_to_sync: u.opt_bool("HasDataToSync")?,
                    data_quota: u.opt_i64("DataQuota")?,
                    data_used: u.opt_i64("DataUsed")?,
                    mobile_account: u.opt_bool("MobileAccount")?,
                    has_secure_token: u.opt_bool("HasSecureToken")?,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

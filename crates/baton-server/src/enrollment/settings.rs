//! Enrollment settings: how enrollment profiles are built and served, how long device identity
//! certificates live, and when they are renewed. Part of [`crate::config::ServerConfig`].

use std::time::Duration;

/// Enrollment settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentSettings {
    /// Prefix of the profile identifiers (`<prefix>.enrollment`, `<prefix>.enrollment.mdm`, …).
    pub identifier_prefix: String,
    /// `PayloadOrganization` of the profile and `O=` of device identity subjects.
    pub organization: String,
    /// Sign the enrollment profile with the server's TLS identity (CMS SignedData).
    pub sign_profile: bool,
    /// Validity of the one-time SCEP challenge in a served profile. (A renewal profile's
    /// challenge lives until the identity it replaces expires.)
    pub challenge_ttl: Duration,
    /// Validity of issued device identity certificates (SCEP and PKCS#12).
    pub device_validity: Duration,
    /// The APNs topic to put in profiles instead of the stored push certificate's.
    pub push_topic: Option<String>,
    /// Renew identities that expire within this window.
    pub renewal_window: Duration,
    /// How often the renewal task looks for expiring identities.
    pub renewal_check_every: Duration,
    /// Identities expiring within this window without a completed renewal are logged as a
    /// warning and counted in `baton_device_identities_expiring`.
    pub expiry_warning: Duration,
}

impl Default for EnrollmentSettings {
    fn default() -> Self {
        Self {
            identifier_prefix: "io.baton".to_owned(),
            organization: "Baton".to_owned(),
            sign_profile: false,
            challenge_ttl: Duration::from_secs(3600),
            device_validity: Duration::from_secs(365 * 24 * 3600),
            push_topic: None,
            renewal_window: Duration::from_secs(30 * 24 * 3600),
            renewal_check_every: Duration::from_secs(3600),
            expiry_warning: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

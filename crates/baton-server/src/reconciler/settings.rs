//! The typed settings of the assignment feature.

use std::time::Duration;

/// How the reconciler and the default setup behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentSettings {
    /// Label of the sign-in web clip created on first start; None: no clip is created (the
    /// nobody user is always created).
    pub sign_in_clip_label: Option<String>,
    /// How often ManagedApplicationList is asked for (and the device pushed) while an
    /// acknowledged app install has not shown `Managed` yet.
    pub app_install_poll_interval: Duration,
    /// An acknowledged app install still not `Managed` after this long counts as failed.
    pub app_install_timeout: Duration,
    /// How often a failed item is retried and after how many failures it is given up.
    pub retry: baton_assign::RetryPolicy,
    /// How a hand-off that is not clean is checked again, and when Baton gives up.
    pub hand_off: super::hand_off::HandOffPolicy,
}

impl Default for AssignmentSettings {
    fn default() -> Self {
        AssignmentSettings {
            sign_in_clip_label: Some("Sign in".to_owned()),
            app_install_poll_interval: Duration::from_secs(30),
            app_install_timeout: Duration::from_secs(30 * 60),
            retry: baton_assign::RetryPolicy::default(),
            hand_off: super::hand_off::HandOffPolicy::default(),
        }
    }
}

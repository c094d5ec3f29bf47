//! The typed settings of the assignment feature.

/// How the reconciler and the default setup behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentSettings {
    /// Label of the sign-in web clip created on first start; None: no clip is created (the
    /// nobody user is always created).
    pub sign_in_clip_label: Option<String>,
}

impl Default for AssignmentSettings {
    fn default() -> Self {
        AssignmentSettings {
            sign_in_clip_label: Some("Sign in".to_owned()),
        }
    }
}

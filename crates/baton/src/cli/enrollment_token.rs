//! `baton enrollment-token ...`: who may enroll, over the admin API.
//!
//! - `baton enrollment-token create --label L [--uses N] [--days D] [--group G] [--serial S]...
//!   [--re-enroll UDID]...`: `POST /api/v1/enrollment-tokens`; prints the token and its
//!   enrollment URL (shown this once);
//! - `baton enrollment-token list`, `show ID`, `revoke ID`.

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

/// `baton enrollment-token ...`.
#[derive(Debug, Subcommand)]
pub enum EnrollmentTokenCommand {
    /// Create a token; prints its enrollment URL (shown only this once).
    Create {
        /// What to call it (e.g. "cart 3, ward B").
        #[arg(long)]
        label: String,
        /// How many devices may enroll with it [default: 1].
        #[arg(long)]
        uses: Option<u32>,
        /// Days until it expires (fractions allowed) [default: 7].
        #[arg(long)]
        days: Option<f64>,
        /// A device group with static members that enrolled devices join.
        #[arg(long)]
        group: Option<String>,
        /// Only devices reporting this serial number may enroll (repeatable).
        #[arg(long = "serial")]
        serials: Vec<String>,
        /// A UDID whose active enrollment a device enrolling with it may replace (repeatable).
        #[arg(long = "re-enroll", value_name = "UDID")]
        re_enroll: Vec<String>,
    },
    /// List tokens (never their secrets).
    List,
    /// Show one token.
    Show {
        /// The token's id.
        id: String,
    },
    /// Revoke a token: no more downloads, and unused certificates from it cannot enroll.
    Revoke {
        /// The token's id.
        id: String,
    },
}

impl EnrollmentTokenCommand {
    /// True for `create` (its answer holds the token's secret, shown only then).
    pub fn is_create(&self) -> bool {
        matches!(self, Self::Create { .. })
    }
}

/// The admin API request of a token command (path relative to `/api/v1`).
pub fn request(
    command: &EnrollmentTokenCommand,
) -> anyhow::Result<(Method, String, Option<Value>)> {
    Ok(match command {
        EnrollmentTokenCommand::Create {
            label,
            uses,
            days,
            group,
            serials,
            re_enroll,
        } => {
            let expires_in_seconds = match days {
                Some(d) if !(d.is_finite() && *d > 0.0) => {
                    anyhow::bail!("--days must be a positive number")
                }
                Some(d) => Some((d * 86_400.0).round() as u64),
                None => None,
            };
            (
                Method::POST,
                "/enrollment-tokens".into(),
                Some(json!({
                    "label": label,
                    "uses": uses,
                    "expires_in_seconds": expires_in_seconds,
                    "device_group": group,
                    "serials": serials,
                    "re_enroll": re_enroll,
                })),
            )
        }
        EnrollmentTokenCommand::List => (Method::GET, "/enrollment-tokens".into(), None),
        EnrollmentTokenCommand::Show { id } => {
            (Method::GET, format!("/enrollment-tokens/{id}"), None)
        }
        EnrollmentTokenCommand::Revoke { id } => (
            Method::POST,
            format!("/enrollment-tokens/{id}/revoke"),
            None,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_requests() {
        let (m, p, b) = request(&EnrollmentTokenCommand::Create {
            label: "cart 3".into(),
            uses: Some(30),
            days: Some(0.5),
            group: Some("ward-b".into()),
            serials: vec!["F9FXK1".into()],
            re_enroll: Vec::new(),
        })
        .unwrap();
        assert_eq!((m, p.as_str()), (Method::POST, "/enrollment-tokens"));
        let b = b.unwrap();
        assert_eq!(b["uses"], 30);
        assert_eq!(b["expires_in_seconds"], 43_200);
        assert_eq!(b["device_group"], "ward-b");
        assert_eq!(b["serials"][0], "F9FXK1");
        assert!(
            request(&EnrollmentTokenCommand::Create {
                label: "x".into(),
                uses: None,
                days: Some(-1.0),
                group: None,
                serials: Vec::new(),
                re_enroll: Vec::new(),
            })
            .is_err()
        );
        let (m, p, _) = request(&EnrollmentTokenCommand::Revoke { id: "0a1b".into() }).unwrap();
        assert_eq!(
            (m, p.as_str()),
            (Method::POST, "/enrollment-tokens/0a1b/revoke")
        );
    }
}

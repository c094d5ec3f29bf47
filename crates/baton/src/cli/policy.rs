//! `baton policy ...`: the session policy over the admin API.
//!
//! - `baton policy show`: `GET /api/v1/session-policy` (stored policy, defaults, warnings);
//! - `baton policy set --file policy.json` (`-` reads stdin): `PUT /api/v1/session-policy`;
//! - `baton policy device UDID [--user NAME]`: the rules for NAME (default: the current
//!   assignee) on a device, with its current lease.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use http::Method;
use serde_json::Value;

/// `baton policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the stored session policy and the defaults.
    Show,
    /// Replace the session policy with a JSON file (`-`: standard input).
    Set {
        /// The policy JSON (see docs/operations.md, "Session rules").
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// The rules that apply on a device, and its current lease.
    Device {
        /// UDID.
        id: String,
        /// Username (default: the current assignee).
        #[arg(long)]
        user: Option<String>,
    },
}

fn read_policy(file: &PathBuf) -> anyhow::Result<Value> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the policy from standard input")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

/// The admin API request of a policy command (path relative to `/api/v1`).
pub fn request(command: &PolicyCommand) -> anyhow::Result<(Method, String, Option<Value>)> {
    match command {
        PolicyCommand::Show => Ok((Method::GET, "/session-policy".into(), None)),
        PolicyCommand::Set { file } => Ok((
            Method::PUT,
            "/session-policy".into(),
            Some(read_policy(file)?),
        )),
        PolicyCommand::Device { id, user } => {
            let path = match user {
                Some(u) => format!("/devices/{id}/session-policy?user={u}"),
                None => format!("/devices/{id}/session-policy"),
            };
            Ok((Method::GET, path, None))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_map_to_requests() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.json");
        std::fs::write(&file, r#"{"show_keep_signed_in":false}"#).unwrap();
        let (m, p, b) = request(&PolicyCommand::Set { file: file.clone() }).unwrap();
        assert_eq!((m, p.as_str()), (Method::PUT, "/session-policy"));
        assert_eq!(b.unwrap()["show_keep_signed_in"], false);
        std::fs::write(&file, "not json").unwrap();
        assert!(request(&PolicyCommand::Set { file }).is_err());
        assert!(
            request(&PolicyCommand::Set {
                file: dir.path().join("missing.json")
            })
            .is_err()
        );
        let (m, p, _) = request(&PolicyCommand::Device {
            id: "UDID1".into(),
            user: Some("alice".into()),
        })
        .unwrap();
        assert_eq!(
            (m, p.as_str()),
            (Method::GET, "/devices/UDID1/session-policy?user=alice")
        );
    }
}

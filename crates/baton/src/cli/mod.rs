//! The operator CLI: `baton user|group|item|distribution|device|policy|enrollment-token|sign-in-log
//! ...` talk to a running server's
//! admin API (`--server URL --api-key KEY`, or `BATON_SERVER` / `BATON_API_KEY`) and print the
//! JSON answer. Exit 0 on a 2xx answer, 1 on an error answer, 2 when the server cannot be
//! reached or the input is unusable.

pub mod admin_client;
pub mod enrollment_token;
pub mod policy;
pub mod sign_in_log;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use admin_client::{AdminClient, Connection};

/// The admin subcommands (flattened into `baton`'s top level).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Users: add, list, show, delete, disable, enable.
    User(Scoped<UserCommand>),
    /// Groups: add, list.
    Group(Scoped<GroupCommand>),
    /// Catalog items: add a profile, list.
    Item(Scoped<ItemCommand>),
    /// Distributions: add, list, delete.
    Distribution(Scoped<DistributionCommand>),
    /// Devices: list, show, sign-in, sign-out, preview; and the configuration lint.
    Device(Scoped<DeviceCommand>),
    /// The session policy: show, set, and the rules on one device.
    Policy(Scoped<policy::PolicyCommand>),
    /// Enrollment tokens: create (prints the enrollment URL), list, show, revoke.
    EnrollmentToken(Scoped<enrollment_token::EnrollmentTokenCommand>),
    /// The sign-in log: attempts and automatic sign-outs, newest first (JSON or `--csv`).
    SignInLog(sign_in_log::SignInLogArgs),
}

/// A subcommand with the connection flags.
#[derive(Debug, Args)]
pub struct Scoped<C: Subcommand> {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: C,
}

/// `baton user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a local user.
    Add {
        /// Username.
        username: String,
        /// Password (else `BATON_USER_PASSWORD`).
        #[arg(long, env = "BATON_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// E-mail.
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
    },
    /// List users.
    List,
    /// Show one user.
    Show {
        /// Username.
        username: String,
    },
    /// Delete a user.
    Delete {
        /// Username.
        username: String,
    },
    /// Disable a user: refused at sign-in, signed out of every device at once.
    Disable {
        /// Username.
        username: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// Username.
        username: String,
    },
}

/// `baton group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a group with static members or a rule.
    Add {
        /// Name (also the id).
        name: String,
        /// `user` or `device`.
        #[arg(long, default_value = "user")]
        kind: String,
        /// A static member (repeatable).
        #[arg(long = "member")]
        members: Vec<String>,
        /// A rule, e.g. `model = "iPad"`.
        #[arg(long)]
        rule: Option<String>,
    },
    /// Replace a group's members or rule (the kind cannot change).
    Set {
        /// Name (the id).
        name: String,
        /// `user` or `device` (the group's current kind).
        #[arg(long, default_value = "user")]
        kind: String,
        /// A static member (repeatable).
        #[arg(long = "member")]
        members: Vec<String>,
        /// A rule, e.g. `model = "iPad"`.
        #[arg(long)]
        rule: Option<String>,
    },
    /// List groups.
    List,
}

/// `baton item ...`.
#[derive(Debug, Subcommand)]
pub enum ItemCommand {
    /// Upload a .mobileconfig (signed or not) as a profile item.
    AddProfile {
        /// The .mobileconfig file.
        file: PathBuf,
        /// Display name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Item id (default: derived from the name).
        #[arg(long)]
        id: Option<String>,
    },
    /// Replace a profile item's .mobileconfig; devices that have it get the new version.
    ReplaceProfile {
        /// The item id.
        id: String,
        /// The new .mobileconfig file.
        file: PathBuf,
        /// Display name (default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// List items.
    List,
}

/// `baton distribution ...`.
#[derive(Debug, Subcommand)]
pub enum DistributionCommand {
    /// Distribute an item: `--all`, `--none`, `--user U...` or `--group G...`.
    Add {
        /// The item id.
        item: String,
        /// Every device.
        #[arg(long, conflicts_with_all = ["none", "users", "groups"])]
        all: bool,
        /// No device.
        #[arg(long, conflicts_with_all = ["users", "groups"])]
        none: bool,
        /// A user (repeatable; `nobody` = every signed-out device).
        #[arg(long = "user", conflicts_with = "groups")]
        users: Vec<String>,
        /// A group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List distributions.
    List,
    /// Delete a distribution.
    Delete {
        /// Its id.
        id: String,
    },
}

/// `baton device ...`.
#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List devices.
    List,
    /// Show one device (with its assignee).
    Show {
        /// UDID.
        id: String,
    },
    /// Sign a user in on a device (operator action).
    SignIn {
        /// UDID.
        id: String,
        /// Username.
        username: String,
    },
    /// Sign the device out (back to nobody).
    SignOut {
        /// UDID.
        id: String,
    },
    /// What a user would get on the device (changes nothing).
    Preview {
        /// UDID.
        id: String,
        /// Username (default: the current assignee).
        #[arg(long)]
        user: Option<String>,
    },
    /// The session log of a device.
    Sessions {
        /// UDID.
        id: String,
    },
    /// Let the next enrollment of this device with a new certificate replace its current one
    /// (a wiped or replaced device that never checked out).
    ApproveReEnrollment {
        /// UDID.
        id: String,
        /// How long the approval waits for the device, in minutes [default: 60].
        #[arg(long)]
        minutes: Option<u64>,
    },
    /// Withdraw a pending re-enrollment approval.
    WithdrawReEnrollment {
        /// UDID.
        id: String,
    },
    /// Lint the whole configuration.
    Lint,
}

/// The request a command makes.
fn request(command: &AdminCommand) -> anyhow::Result<(Method, String, Option<Value>)> {
    use AdminCommand as A;
    let get = |p: &str| Ok((Method::GET, p.to_owned(), None));
    match command {
        A::User(s) => match &s.command {
            UserCommand::Add {
                username,
                password,
                email,
                full_name,
            } => Ok((
                Method::POST,
                "/users".into(),
                Some(
                    json!({"username": username, "password": password, "email": email, "full_name": full_name}),
                ),
            )),
            UserCommand::List => get("/users"),
            UserCommand::Show { username } => get(&format!("/users/{username}")),
            UserCommand::Delete { username } => {
                Ok((Method::DELETE, format!("/users/{username}"), None))
            }
            UserCommand::Disable { username } => Ok((
                Method::PATCH,
                format!("/users/{username}"),
                Some(json!({"disabled": true})),
            )),
            UserCommand::Enable { username } => Ok((
                Method::PATCH,
                format!("/users/{username}"),
                Some(json!({"disabled": false})),
            )),
        },
        A::Group(s) => match &s.command {
            GroupCommand::Add {
                name,
                kind,
                members,
                rule,
            } => Ok((
                Method::POST,
                "/groups".into(),
                Some(json!({"name": name, "kind": kind, "members": members, "rule": rule})),
            )),
            GroupCommand::Set {
                name,
                kind,
                members,
                rule,
            } => Ok((
                Method::PUT,
                format!("/groups/{name}"),
                Some(json!({"name": name, "kind": kind, "members": members, "rule": rule})),
            )),
            GroupCommand::List => get("/groups"),
        },
        A::Item(s) => match &s.command {
            ItemCommand::AddProfile { file, name, id } => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let name = name.clone().unwrap_or_else(|| {
                    file.file_stem()
                        .map_or_else(|| "profile".into(), |s| s.to_string_lossy().into_owned())
                });
                Ok((
                    Method::POST,
                    "/items".into(),
                    Some(json!({"kind": "profile", "name": name, "id": id,
                        "mobileconfig": base64::engine::general_purpose::STANDARD.encode(bytes)})),
                ))
            }
            ItemCommand::ReplaceProfile { id, file, name } => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let name = name.clone().unwrap_or_else(|| {
                    file.file_stem()
                        .map_or_else(|| "profile".into(), |s| s.to_string_lossy().into_owned())
                });
                Ok((
                    Method::PUT,
                    format!("/items/{id}"),
                    Some(json!({"kind": "profile", "name": name,
                        "mobileconfig": base64::engine::general_purpose::STANDARD.encode(bytes)})),
                ))
            }
            ItemCommand::List => get("/items"),
        },
        A::Distribution(s) => match &s.command {
            DistributionCommand::Add {
                item,
                all,
                none,
                users,
                groups,
            } => {
                let target = if *all {
                    json!("all")
                } else if !users.is_empty() {
                    json!({"users": users})
                } else if !groups.is_empty() {
                    json!({"groups": groups})
                } else {
                    let _ = none;
                    json!("none")
                };
                Ok((
                    Method::POST,
                    "/distributions".into(),
                    Some(json!({"item": item, "target": target})),
                ))
            }
            DistributionCommand::List => get("/distributions"),
            DistributionCommand::Delete { id } => {
                Ok((Method::DELETE, format!("/distributions/{id}"), None))
            }
        },
        A::Device(s) => match &s.command {
            DeviceCommand::List => get("/devices"),
            DeviceCommand::Show { id } => get(&format!("/devices/{id}")),
            DeviceCommand::SignIn { id, username } => Ok((
                Method::POST,
                format!("/devices/{id}/sign-in"),
                Some(json!({"username": username})),
            )),
            DeviceCommand::SignOut { id } => {
                Ok((Method::POST, format!("/devices/{id}/sign-out"), None))
            }
            DeviceCommand::Preview { id, user } => match user {
                Some(u) => get(&format!("/devices/{id}/preview?user={u}")),
                None => get(&format!("/devices/{id}/preview")),
            },
            DeviceCommand::Sessions { id } => get(&format!("/devices/{id}/sessions")),
            DeviceCommand::ApproveReEnrollment { id, minutes } => Ok((
                Method::POST,
                format!("/devices/{id}/re-enrollment"),
                Some(match minutes {
                    Some(m) => json!({"valid_for_seconds": m.saturating_mul(60)}),
                    None => json!({}),
                }),
            )),
            DeviceCommand::WithdrawReEnrollment { id } => {
                Ok((Method::DELETE, format!("/devices/{id}/re-enrollment"), None))
            }
            DeviceCommand::Lint => get("/lint"),
        },
        A::Policy(s) => policy::request(&s.command),
        A::EnrollmentToken(s) => enrollment_token::request(&s.command),
        A::SignInLog(a) => get(&a.path()),
    }
}

fn connection(command: &AdminCommand) -> &Connection {
    match command {
        AdminCommand::User(s) => &s.conn,
        AdminCommand::Group(s) => &s.conn,
        AdminCommand::Item(s) => &s.conn,
        AdminCommand::Distribution(s) => &s.conn,
        AdminCommand::Device(s) => &s.conn,
        AdminCommand::Policy(s) => &s.conn,
        AdminCommand::EnrollmentToken(s) => &s.conn,
        AdminCommand::SignInLog(a) => &a.conn,
    }
}

async fn execute(command: &AdminCommand) -> anyhow::Result<(u16, Value)> {
    let (method, path, body) = request(command)?;
    let client = AdminClient::new(connection(command))?;
    let answer = client.call(method, &path, body.as_ref()).await?;
    let json = if answer.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned()))
    };
    Ok((answer.status, json))
}

/// Runs an admin subcommand; returns the exit code.
pub fn run(command: &AdminCommand) -> ExitCode {
    if let AdminCommand::SignInLog(args) = command
        && args.wants_csv()
    {
        return sign_in_log::run_csv(args);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("baton: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(execute(command)) {
        Ok((status, json)) => {
            let mut out = std::io::stdout().lock();
            if !json.is_null() {
                let _ = serde_json::to_writer_pretty(&mut out, &json);
                let _ = writeln!(out);
            }
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("baton: the server answered {status}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("baton: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct T {
        #[command(subcommand)]
        c: AdminCommand,
    }

    #[test]
    fn command_definitions_are_consistent() {
        use clap::CommandFactory;
        T::command().debug_assert();
    }

    #[test]
    fn commands_map_to_requests() {
        let t = T::parse_from([
            "baton",
            "distribution",
            "--api-key",
            "k",
            "add",
            "wifi",
            "--user",
            "nobody",
        ]);
        let (m, p, b) = request(&t.c).unwrap();
        assert_eq!(m, Method::POST);
        assert_eq!(p, "/distributions");
        assert_eq!(b.unwrap()["target"], json!({"users": ["nobody"]}));
        let t = T::parse_from(["baton", "device", "--api-key", "k", "sign-out", "UDID1"]);
        let (m, p, _) = request(&t.c).unwrap();
        assert_eq!((m, p.as_str()), (Method::POST, "/devices/UDID1/sign-out"));
        let t = T::parse_from([
            "baton",
            "distribution",
            "--api-key",
            "k",
            "add",
            "x",
            "--all",
        ]);
        assert_eq!(request(&t.c).unwrap().2.unwrap()["target"], "all");
        let t = T::parse_from(["baton", "user", "--api-key", "k", "disable", "alice"]);
        let (m, p, b) = request(&t.c).unwrap();
        assert_eq!((m, p.as_str()), (Method::PATCH, "/users/alice"));
        assert_eq!(b.unwrap(), json!({"disabled": true}));
        let t = T::parse_from(["baton", "user", "--api-key", "k", "enable", "alice"]);
        assert_eq!(
            request(&t.c).unwrap().2.unwrap(),
            json!({"disabled": false})
        );
        let t = T::parse_from(["baton", "policy", "--api-key", "k", "show"]);
        let (m, p, _) = request(&t.c).unwrap();
        assert_eq!((m, p.as_str()), (Method::GET, "/session-policy"));
    }
}

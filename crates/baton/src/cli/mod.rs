//! The operator CLI: `baton user|group|item|distribution|device|policy|enrollment-token|sign-in-log
//! ...` talk to a running server's admin API (`--server URL`, `BATON_SERVER`; the key from
//! `BATON_API_KEY` or `--api-key-file`) and print the answer as a table, or as JSON with
//! `--output json`, secrets redacted unless `--show-secrets` ([`output`]). Exit codes are in
//! [`exit`].

pub mod admin_client;
pub mod enrollment_token;
pub mod exit;
pub mod output;
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
    /// Users: add, import, list, show, set-password, delete, disable, enable.
    User(Scoped<UserCommand>),
    /// Groups: add, set, list, members, delete.
    Group(Scoped<GroupCommand>),
    /// Catalog items: add a profile, app, web clip or certificate; list, show, delete.
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
    #[command(flatten)]
    view: output::View,
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
        /// Password (better: `BATON_USER_PASSWORD`, which `ps` does not show).
        #[arg(long, env = "BATON_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// E-mail.
        #[arg(long)]
        email: Option<String>,
        /// Display name.
        #[arg(long)]
        full_name: Option<String>,
    },
    /// Add users from a CSV file (`username,password,full_name,email`; header line optional;
    /// `-` reads standard input). All or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List users.
    List,
    /// Show one user.
    Show {
        /// Username.
        username: String,
    },
    /// Set a user's password (from `BATON_USER_PASSWORD`, or the first line of standard input).
    SetPassword {
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
    /// The members of a group now: a device group's devices (rule or static), a user group's
    /// users.
    Members {
        /// Name (the id).
        name: String,
    },
    /// Delete a group.
    Delete {
        /// Name (the id).
        name: String,
    },
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
    /// Add an app: from the App Store (`--itunes-store-id`) or an enterprise manifest
    /// (`--manifest-url`).
    AddApp {
        /// Bundle identifier, e.g. `com.example.ward`.
        #[arg(long)]
        bundle_id: String,
        /// App Store id (the number in the app's App Store URL).
        #[arg(
            long,
            required_unless_present = "manifest_url",
            conflicts_with = "manifest_url"
        )]
        itunes_store_id: Option<u64>,
        /// Enterprise app manifest URL.
        #[arg(long)]
        manifest_url: Option<String>,
        /// The app is licensed through Apps and Books (VPP); shared devices need it.
        #[arg(long)]
        vpp: bool,
        /// Take the app over when the person installed it themselves.
        #[arg(long)]
        take_over_user_installed: bool,
        /// Managed app configuration: a plist XML file.
        #[arg(long, value_name = "FILE")]
        configuration: Option<PathBuf>,
        #[command(flatten)]
        common: NewItem,
    },
    /// Add a web clip (a home-screen link).
    AddWebClip {
        /// The label under the icon.
        #[arg(long)]
        label: String,
        /// The URL (templates such as `$USER.username` work).
        #[arg(long)]
        url: String,
        /// Open without Safari's bars.
        #[arg(long)]
        full_screen: bool,
        /// The person may delete it.
        #[arg(long)]
        removable: bool,
        #[command(flatten)]
        common: NewItem,
    },
    /// Add a certificate the built-in CA issues per user or per device.
    AddCertificate {
        /// Subject template, e.g. `CN=$USER.username,O=Example Hospital`.
        #[arg(long)]
        subject: String,
        /// E-mail (subjectAltName) template, e.g. `$USER.email`.
        #[arg(long)]
        email: Option<String>,
        /// `user` (a new one for each person) or `device`.
        #[arg(long, default_value = "user", value_parser = ["user", "device"])]
        per: String,
        /// Validity in days (1 to 3650) [default: 365].
        #[arg(long)]
        validity_days: Option<u32>,
        #[command(flatten)]
        common: NewItem,
    },
    /// List items.
    List,
    /// Show one item.
    Show {
        /// The item id.
        id: String,
    },
    /// Delete an item.
    Delete {
        /// The item id.
        id: String,
    },
}

/// Name and id of a new item.
#[derive(Debug, Args)]
pub struct NewItem {
    /// Display name (default: the id, or the label).
    #[arg(long)]
    name: Option<String>,
    /// Item id (default: derived from the name).
    #[arg(long)]
    id: Option<String>,
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
    /// Queue an MDM command, e.g. `device command UDID ProfileList` or
    /// `device command UDID DeviceInformation --field 'Queries=["SerialNumber"]'`.
    Command {
        /// UDID (or enrollment id).
        id: String,
        /// The RequestType.
        request_type: String,
        /// A command field `KEY=VALUE` (VALUE as JSON when it parses, else text); repeatable.
        #[arg(long = "field", value_name = "KEY=VALUE")]
        fields: Vec<String>,
    },
    /// What the device is installing and removing for its assignee now.
    Progress {
        /// UDID.
        id: String,
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
            UserCommand::Import { .. } => {
                Ok((Method::POST, "/users/import".into(), None)) // body: see `execute`
            }
            UserCommand::SetPassword { username } => Ok((
                Method::PATCH,
                format!("/users/{username}"),
                Some(json!({"password": read_password()?})),
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
            GroupCommand::Members { name } => get(&format!("/groups/{name}/members")),
            GroupCommand::Delete { name } => Ok((Method::DELETE, format!("/groups/{name}"), None)),
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
            ItemCommand::AddApp {
                bundle_id,
                itunes_store_id,
                manifest_url,
                vpp,
                take_over_user_installed,
                configuration,
                common,
            } => {
                let mut body = json!({"kind": "app", "bundle_id": bundle_id,
                    "name": common.name.clone().unwrap_or_else(|| bundle_id.clone()),
                    "id": common.id});
                if let Some(n) = itunes_store_id {
                    body["itunes_store_id"] = json!(n);
                    body["licensing"] = json!(if *vpp { "vpp" } else { "apple_id" });
                    body["take_over_user_installed"] = json!(take_over_user_installed);
                }
                if let Some(url) = manifest_url {
                    body["manifest_url"] = json!(url);
                }
                if let Some(file) = configuration {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    body["configuration"] = json!(text);
                }
                Ok((Method::POST, "/items".into(), Some(body)))
            }
            ItemCommand::AddWebClip {
                label,
                url,
                full_screen,
                removable,
                common,
            } => Ok((
                Method::POST,
                "/items".into(),
                Some(json!({"kind": "web_clip", "label": label, "url": url,
                    "full_screen": full_screen, "removable": removable,
                    "name": common.name.clone().unwrap_or_else(|| label.clone()),
                    "id": common.id})),
            )),
            ItemCommand::AddCertificate {
                subject,
                email,
                per,
                validity_days,
                common,
            } => {
                let mut body = json!({"kind": "certificate", "subject": subject,
                    "issued_per": per, "id": common.id,
                    "name": common.name.clone().or_else(|| common.id.clone())
                        .unwrap_or_else(|| "certificate".into())});
                if let Some(e) = email {
                    body["email"] = json!(e);
                }
                if let Some(d) = validity_days {
                    body["validity_days"] = json!(d);
                }
                Ok((Method::POST, "/items".into(), Some(body)))
            }
            ItemCommand::List => get("/items"),
            ItemCommand::Show { id } => get(&format!("/items/{id}")),
            ItemCommand::Delete { id } => Ok((Method::DELETE, format!("/items/{id}"), None)),
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
            DeviceCommand::Command {
                id,
                request_type,
                fields,
            } => {
                let mut body = serde_json::Map::new();
                body.insert("request_type".into(), json!(request_type));
                for f in fields {
                    let Some((key, value)) = f.split_once('=') else {
                        anyhow::bail!("--field {f:?}: expected KEY=VALUE");
                    };
                    let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
                    body.insert(key.to_owned(), value);
                }
                Ok((
                    Method::POST,
                    format!("/devices/{id}/commands"),
                    Some(Value::Object(body)),
                ))
            }
            DeviceCommand::Progress { id } => get(&format!("/devices/{id}/progress")),
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

fn view(command: &AdminCommand) -> &output::View {
    match command {
        AdminCommand::User(s) => &s.view,
        AdminCommand::Group(s) => &s.view,
        AdminCommand::Item(s) => &s.view,
        AdminCommand::Distribution(s) => &s.view,
        AdminCommand::Device(s) => &s.view,
        AdminCommand::Policy(s) => &s.view,
        AdminCommand::EnrollmentToken(s) => &s.view,
        AdminCommand::SignInLog(a) => &a.view,
    }
}

/// A new user's password: `BATON_USER_PASSWORD`, else the first line of standard input (so it
/// never has to be on the command line).
fn read_password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("BATON_USER_PASSWORD") {
        return Ok(p);
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("new password (echoed; or set BATON_USER_PASSWORD): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password: set BATON_USER_PASSWORD or give it on standard input");
    }
    Ok(password)
}

/// Reads a file, `-` meaning standard input.
fn read_input(file: &PathBuf) -> anyhow::Result<String> {
    if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("reading standard input")?;
        return Ok(s);
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

async fn execute(command: &AdminCommand) -> anyhow::Result<(u16, Value)> {
    let (method, path, body) = request(command)?;
    let client = AdminClient::new(connection(command))?;
    let answer = match command {
        AdminCommand::User(Scoped {
            command: UserCommand::Import { file },
            ..
        }) => {
            let csv = read_input(file)?;
            client
                .call_raw(method, &path, "text/csv", csv.into_bytes())
                .await?
        }
        _ => client.call(method, &path, body.as_ref()).await?,
    };
    let json = if answer.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into_owned()))
    };
    Ok((answer.status, json))
}

/// Top-level fields of an answer printed although they are secrets: a new enrollment token's
/// secret and URL are shown once, in that answer, and never again.
fn shown_once(command: &AdminCommand) -> &'static [&'static str] {
    match command {
        AdminCommand::EnrollmentToken(s) if s.command.is_create() => &["token", "url"],
        _ => &[],
    }
}

/// Runs an admin subcommand; returns the exit code ([`exit`]).
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
            return exit::ERROR.into();
        }
    };
    let view = view(command);
    match runtime.block_on(execute(command)) {
        Ok((status, mut json)) if (200..300).contains(&status) => {
            if !view.show_secrets {
                output::redact(&mut json, shown_once(command));
            }
            let mut out = std::io::stdout().lock();
            match view.output {
                output::OutputFormat::Json if !json.is_null() => {
                    let _ = serde_json::to_writer_pretty(&mut out, &json);
                    let _ = writeln!(out);
                }
                output::OutputFormat::Json => {}
                output::OutputFormat::Table => {
                    let _ = out.write_all(output::table(&json).as_bytes());
                }
            }
            exit::for_answer(command_is_lint(command), &json).into()
        }
        Ok((status, json)) => {
            eprintln!("baton: {}", exit::describe_error(status, &json));
            exit::for_status(status).into()
        }
        Err(e) => {
            eprintln!("baton: {e:#}");
            if e.downcast_ref::<admin_client::Unreachable>().is_some() {
                exit::UNREACHABLE.into()
            } else {
                exit::USAGE.into()
            }
        }
    }
}

fn command_is_lint(command: &AdminCommand) -> bool {
    matches!(
        command,
        AdminCommand::Device(Scoped {
            command: DeviceCommand::Lint,
            ..
        })
    )
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

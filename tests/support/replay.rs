//! Replays recorded device conversations from `fixtures/replay/*.yaml` against a live server.
//!
//! A scenario is a list of steps. A device step PUTs a plist to `checkin` or `connect`, signed by
//! one of the scenario's identities (`sign:`), and checks the answer (`expect:` status, `body:
//! empty|command|any`, `command: <RequestType>`). An `api:` step calls the admin API and can
//! check and `save:` JSON fields. `restart: true` restarts the server on the same data. Bodies
//! and paths are templates: `{{udid}}`, `{{other_udid}}`, `{{topic}}`, `{{last_command_uuid}}`
//! (the CommandUUID of the last command a device received) and every saved variable.
//! JSON paths are dotted (`commands.0.status`); `#` is an array's length (`commands.#`).

use std::collections::BTreeMap;
use std::path::Path;

use baton_proto::{Command, Limits};
use http::Method;
use serde::Deserialize;

use crate::device::{Pki, TOPIC, TestDevice};
use crate::server::{ServerOptions, TestServer};

/// A scenario file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the conversation shows.
    pub description: String,
    /// Serve TLS (default) or plain HTTP.
    #[serde(default = "yes")]
    pub tls: bool,
    /// The main device's UDID.
    #[serde(default = "default_udid")]
    pub udid: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

fn default_udid() -> String {
    "00008030-000A1B2C3D4E802E".to_owned()
}

/// Who signs a device step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signer {
    /// The main device's own certificate.
    #[default]
    Device,
    /// Another enrolled-or-not device's certificate from the trusted CA.
    Other,
    /// A certificate from a CA the server does not trust.
    Untrusted,
    /// No Mdm-Signature header.
    None,
    /// A valid signature over a different body.
    Tampered,
    /// A header that is not base64.
    Garbage,
}

/// One step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Shown in failures.
    pub name: String,
    /// A check-in body to PUT to `/mdm/checkin`.
    #[serde(default)]
    pub checkin: Option<String>,
    /// A report body to PUT to `/mdm/connect`.
    #[serde(default)]
    pub connect: Option<String>,
    /// Who signs the device body.
    #[serde(default)]
    pub sign: Signer,
    /// An admin API call.
    #[serde(default)]
    pub api: Option<ApiCall>,
    /// Restart the server (same data directory).
    #[serde(default)]
    pub restart: bool,
    /// What the answer must be.
    #[serde(default)]
    pub expect: Expect,
    /// Variables to save from the JSON answer: name -> JSON path.
    #[serde(default)]
    pub save: BTreeMap<String, String>,
}

/// An admin API call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCall {
    /// HTTP method.
    pub method: String,
    /// Path (templated).
    pub path: String,
    /// JSON body.
    #[serde(default)]
    pub json: Option<serde_yaml::Value>,
    /// Raw plist body (templated).
    #[serde(default)]
    pub plist: Option<String>,
    /// Send the API key (default true).
    #[serde(default = "yes")]
    pub auth: bool,
}

/// Expected body kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    /// Empty body.
    Empty,
    /// A command plist.
    Command,
    /// Anything.
    Any,
}

/// Expectations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status (default 200 for device steps).
    #[serde(default)]
    pub status: Option<u16>,
    /// Body kind.
    #[serde(default)]
    pub body: Option<BodyKind>,
    /// RequestType of the returned command.
    #[serde(default)]
    pub command: Option<String>,
    /// JSON path -> expected value.
    #[serde(default)]
    pub json: BTreeMap<String, serde_yaml::Value>,
}

fn template(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Looks up a dotted path; `#` gives an array's length.
pub fn json_path<'a>(value: &'a serde_json::Value, path: &str) -> Option<serde_json::Value> {
    let mut current: &'a serde_json::Value = value;
    for part in path.split('.') {
        if part == "#" {
            return current.as_array().map(|a| serde_json::Value::from(a.len()));
        }
        current = match part.parse::<usize>() {
            Ok(i) => current.get(i)?,
            Err(_) => current.get(part)?,
        };
    }
    Some(current.clone())
}

/// Runs one scenario file against a fresh server.
pub async fn run_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let scenario: Scenario =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    run(&scenario)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs a scenario.
pub async fn run(scenario: &Scenario) -> Result<(), String> {
    let pki = Pki::generate();
    let device = pki.device(&scenario.udid);
    let other_udid = "00008110-000F0E0D0C0B0A09".to_owned();
    let other = pki.device(&other_udid);
    let untrusted = pki.untrusted_device(&scenario.udid);
    let mut server = TestServer::start(
        &pki,
        ServerOptions {
            tls: scenario.tls,
            ..ServerOptions::default()
        },
    )
    .await;
    let mut vars = BTreeMap::from([
        ("udid".to_owned(), scenario.udid.clone()),
        ("other_udid".to_owned(), other_udid),
        ("topic".to_owned(), TOPIC.to_owned()),
    ]);
    for step in &scenario.steps {
        run_step(&mut server, step, &mut vars, [&device, &other, &untrusted])
            .await
            .map_err(|e| format!("step {:?}: {e}", step.name))?;
    }
    server.assert_healthy().await;
    server.stop().await;
    Ok(())
}

async fn run_step(
    server: &mut TestServer,
    step: &Step,
    vars: &mut BTreeMap<String, String>,
    [device, other, untrusted]: [&TestDevice; 3],
) -> Result<(), String> {
    if step.restart {
        server.restart().await;
        return Ok(());
    }
    let device_body = match (&step.checkin, &step.connect) {
        (Some(b), None) => Some(("/mdm/checkin", b)),
        (None, Some(b)) => Some(("/mdm/connect", b)),
        (None, None) => None,
        _ => return Err("a step has either checkin or connect".into()),
    };
    let reply = if let Some((path, body)) = device_body {
        let body = template(body, vars).into_bytes();
        let signature = match step.sign {
            Signer::Device => Some(device.sign(&body)),
            Signer::Other => Some(other.sign(&body)),
            Signer::Untrusted => Some(untrusted.sign(&body)),
            Signer::None => None,
            Signer::Tampered => Some(device.sign(b"<plist>something else</plist>")),
            Signer::Garbage => Some("!!not base64!!".to_owned()),
        };
        server.put_device(path, body, signature).await
    } else if let Some(api) = &step.api {
        let method = Method::from_bytes(api.method.as_bytes()).map_err(|e| e.to_string())?;
        let path = template(&api.path, vars);
        let mut headers = Vec::new();
        if api.auth {
            headers.push(("Authorization", format!("Bearer {}", server.api_key)));
        }
        let body = match (&api.json, &api.plist) {
            (Some(json), _) => {
                headers.push(("Content-Type", "application/json".to_owned()));
                let json: serde_json::Value =
                    serde_json::to_value(json).map_err(|e| e.to_string())?;
                template(&json.to_string(), vars).into_bytes()
            }
            (None, Some(plist)) => {
                headers.push(("Content-Type", "application/x-apple-plist".to_owned()));
                template(plist, vars).into_bytes()
            }
            (None, None) => Vec::new(),
        };
        server.client.send(method, &path, &headers, body).await?
    } else {
        return Err("a step needs checkin, connect, api or restart".into());
    };

    let expected_status = step.expect.status.unwrap_or(200);
    if reply.status.as_u16() != expected_status {
        return Err(format!(
            "status {} (expected {expected_status}), body {:?}",
            reply.status,
            reply.text()
        ));
    }
    let command = if device_body.is_some() && !reply.body.is_empty() && reply.status == 200 {
        Command::decode(&reply.body, &Limits::default()).ok()
    } else {
        None
    };
    if let Some(c) = &command {
        vars.insert("last_command_uuid".into(), c.uuid.to_string());
    }
    match step.expect.body {
        Some(BodyKind::Empty) if !reply.body.is_empty() => {
            return Err(format!("expected an empty body, got {:?}", reply.text()));
        }
        Some(BodyKind::Command) if command.is_none() => {
            return Err(format!("expected a command, got {:?}", reply.text()));
        }
        _ => {}
    }
    if let Some(expected) = &step.expect.command {
        let got = command.as_ref().map(|c| c.request_type().to_owned());
        if got.as_deref() != Some(expected.as_str()) {
            return Err(format!("expected command {expected}, got {got:?}"));
        }
    }
    if !step.expect.json.is_empty() || !step.save.is_empty() {
        let json = reply.json();
        for (path, expected) in &step.expect.json {
            let expected: serde_json::Value =
                serde_json::to_value(expected).map_err(|e| e.to_string())?;
            let expected = match expected {
                serde_json::Value::String(s) => serde_json::Value::String(template(&s, vars)),
                other => other,
            };
            let got = json_path(&json, path);
            if got.as_ref() != Some(&expected) {
                return Err(format!(
                    "{path}: expected {expected}, got {got:?} in {json}"
                ));
            }
        }
        for (name, path) in &step.save {
            let value = json_path(&json, path).ok_or_else(|| format!("no {path} in {json}"))?;
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            vars.insert(name.clone(), text);
        }
    }
    Ok(())
}

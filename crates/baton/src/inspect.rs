//! `baton inspect FILE`: classify and decode one MDM plist with baton-proto.
//!
//! Prints a one-line summary and the decoded content as JSON on stdout (only the JSON with
//! `--json`) and exits 0; on any decode failure prints one line on stderr and exits 2. Secrets
//! (PushMagic, UnlockToken, BootstrapToken, SCEP Challenge, PKCS#12 Password) are redacted unless
//! `--show-secrets` is given.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use baton_proto::plist::{Dictionary, Value};
use baton_proto::{
    CheckinMessage, Command, CommandReport, CommandRequest, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_DEPTH, Limits, Profile, ResponseKind, read_dictionary,
};
use clap::Args;
use serde_json::{Map, Value as Json, json};

/// Arguments of `baton inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The plist file to decode.
    file: PathBuf,
    /// Print only the JSON document (no summary line).
    #[arg(long)]
    json: bool,
    /// Show secret values instead of `<redacted>`.
    #[arg(long)]
    show_secrets: bool,
    /// Largest accepted file, in bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_bytes: usize,
    /// Deepest accepted dict/array nesting.
    #[arg(long, default_value_t = DEFAULT_MAX_DEPTH)]
    max_depth: usize,
}

/// Keys whose values are secrets.
const SECRET_KEYS: &[&str] = &[
    "PushMagic",
    "UnlockToken",
    "BootstrapToken",
    "Challenge",
    "Password",
];

/// Runs the subcommand; returns exit code 0 when the file decodes, 2 otherwise.
pub fn run(args: &InspectArgs) -> ExitCode {
    match inspect(args) {
        Ok((summary, doc)) => match print(args, &summary, &doc) {
            Ok(()) => ExitCode::SUCCESS,
            // The reader went away (e.g. `| head`): the file did decode.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => fail(args, &anyhow!(e).context("cannot write output")),
        },
        Err(e) => fail(args, &e),
    }
}

fn print(args: &InspectArgs, summary: &str, doc: &Json) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "{summary}")?;
    }
    serde_json::to_writer_pretty(&mut out, doc)?;
    writeln!(out)?;
    out.flush()
}

fn fail(args: &InspectArgs, e: &anyhow::Error) -> ExitCode {
    let reason = format!("{e:#}").replace('\n', " ");
    eprintln!("baton inspect: {}: {reason}", args.file.display());
    ExitCode::from(2)
}

fn read_bounded(args: &InspectArgs) -> anyhow::Result<Vec<u8>> {
    let file = std::fs::File::open(&args.file).context("cannot open")?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(args.max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    file.take(limit)
        .read_to_end(&mut bytes)
        .context("cannot read")?;
    if bytes.len() > args.max_bytes {
        bail!(
            "oversize: more than {} bytes (limit {})",
            args.max_bytes,
            args.max_bytes
        );
    }
    Ok(bytes)
}

fn inspect(args: &InspectArgs) -> anyhow::Result<(String, Json)> {
    let limits = Limits::new(args.max_bytes, args.max_depth);
    let bytes = read_bounded(args)?;
    if bytes.first() == Some(&0x30) {
        bail!("signed (CMS/DER) data, e.g. a signed profile: unwrap the signature first");
    }
    let dict = read_dictionary(&bytes, &limits).context("not a usable plist")?;
    let redact = !args.show_secrets;
    if dict.contains_key("MessageType") {
        inspect_checkin(&dict, redact)
    } else if dict.contains_key("Command") && dict.contains_key("CommandUUID") {
        inspect_command(&dict, &limits, redact)
    } else if dict.contains_key("Status") {
        inspect_report(&dict, redact)
    } else if dict.contains_key("PayloadType") {
        inspect_profile(&dict, redact)
    } else {
        bail!("not a check-in message, command report, command or configuration profile")
    }
}

fn inspect_checkin(dict: &Dictionary, redact: bool) -> anyhow::Result<(String, Json)> {
    let msg = CheckinMessage::from_dictionary(dict).context("invalid check-in message")?;
    let e = msg.enrollment();
    let channel = if e.is_shared_ipad_user() {
        "shared-ipad-user"
    } else if e.is_user_channel() {
        "user"
    } else {
        "device"
    };
    let summary = format!(
        "check-in {} from {} ({channel} channel)",
        msg.message_type(),
        msg.enrollment_id()
    );
    let doc = json!({
        "kind": "checkin",
        "message_type": msg.message_type().as_str(),
        "enrollment_id": msg.enrollment_id().as_str(),
        "device_id": msg.device_id().as_str(),
        "channel": channel,
        "unmodelled_keys": msg.extra().keys().collect::<Vec<_>>(),
        "content": dict_to_json(&msg.to_dictionary(), redact),
    });
    Ok((summary, doc))
}

fn inspect_report(dict: &Dictionary, redact: bool) -> anyhow::Result<(String, Json)> {
    let r = CommandReport::from_dictionary(dict).context("invalid command report")?;
    let kind = r.response_kind();
    let view = match kind {
        None => Json::Null,
        Some(ResponseKind::ProfileList) => serde_json::to_value(r.profile_list()?)?,
        Some(ResponseKind::InstalledApplicationList) => {
            serde_json::to_value(r.installed_application_list()?)?
        }
        Some(ResponseKind::ManagedApplicationList) => {
            serde_json::to_value(r.managed_application_list()?)?
        }
        Some(ResponseKind::CertificateList) => serde_json::to_value(r.certificate_list()?)?,
        Some(ResponseKind::DeviceInformation) => serde_json::to_value(r.device_information()?)?,
        Some(ResponseKind::SecurityInfo) => serde_json::to_value(r.security_info()?)?,
        Some(ResponseKind::UserList) => serde_json::to_value(r.user_list()?)?,
        Some(other) => bail!("no view for {other}"),
    };
    let uuid = r.command_uuid.as_ref().map(|u| u.as_str().to_owned());
    let mut summary = format!("report {} from {}", r.status, r.enrollment_id());
    if let Some(u) = &uuid {
        summary.push_str(&format!(" for command {u}"));
    }
    if let Some(k) = kind {
        summary.push_str(&format!(" ({k} response)"));
    }
    let doc = json!({
        "kind": "report",
        "status": r.status.as_str(),
        "enrollment_id": r.enrollment_id().as_str(),
        "device_id": r.device_id().as_str(),
        "command_uuid": uuid,
        "response_kind": kind.map(|k| k.request_type()),
        "error_chain": serde_json::to_value(&r.error_chain)?,
        "view": view,
        "content": dict_to_json(&r.to_dictionary(), redact),
    });
    Ok((summary, doc))
}

fn inspect_command(
    dict: &Dictionary,
    limits: &Limits,
    redact: bool,
) -> anyhow::Result<(String, Json)> {
    let c = Command::from_dictionary(dict).context("invalid command")?;
    let embedded = match &c.request {
        CommandRequest::InstallProfile { payload } => match Profile::parse(payload, limits) {
            Ok(p) => profile_summary(&p),
            Err(e) => json!({ "unreadable": e.to_string() }),
        },
        _ => Json::Null,
    };
    let summary = format!("command {} ({})", c.request_type(), c.uuid);
    let doc = json!({
        "kind": "command",
        "request_type": c.request_type(),
        "command_uuid": c.uuid.as_str(),
        "typed": !matches!(c.request, CommandRequest::Raw { .. }),
        "profile": embedded,
        "content": dict_to_json(&c.to_dictionary(), redact),
    });
    Ok((summary, doc))
}

fn profile_summary(p: &Profile) -> Json {
    json!({
        "identifier": p.identifier,
        "uuid": p.uuid,
        "display_name": p.display_name,
        "payloads": p.payloads.iter().map(|x| json!({
            "type": x.payload_type,
            "identifier": x.identifier,
            "uuid": x.uuid,
        })).collect::<Vec<_>>(),
    })
}

fn inspect_profile(dict: &Dictionary, redact: bool) -> anyhow::Result<(String, Json)> {
    let p = Profile::from_dictionary(dict).context("invalid configuration profile")?;
    let summary = format!(
        "configuration profile {} ({} payloads)",
        p.identifier,
        p.payloads.len()
    );
    let mut doc = json!({ "kind": "profile" });
    if let (Json::Object(out), Json::Object(s)) = (&mut doc, profile_summary(&p)) {
        out.extend(s);
        out.insert("content".into(), dict_to_json(&p.to_dictionary(), redact));
    }
    Ok((summary, doc))
}

fn dict_to_json(dict: &Dictionary, redact: bool) -> Json {
    let mut out = Map::new();
    for (k, v) in dict {
        let value = if redact && SECRET_KEYS.contains(&k.as_str()) {
            Json::String("<redacted>".into())
        } else {
            to_json(v, redact)
        };
        out.insert(k.clone(), value);
    }
    Json::Object(out)
}

/// Plist to JSON: data becomes base64, dates their XML form. Depth is bounded by the limits the
/// plist was read under, so the recursion is too.
fn to_json(v: &Value, redact: bool) -> Json {
    match v {
        Value::Dictionary(d) => dict_to_json(d, redact),
        Value::Array(a) => Json::Array(a.iter().map(|x| to_json(x, redact)).collect()),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Data(d) => Json::String(base64::engine::general_purpose::STANDARD.encode(d)),
        Value::Date(d) => Json::String(d.to_xml_format()),
        Value::Real(r) => serde_json::Number::from_f64(*r).map_or(Json::Null, Json::Number),
        Value::Integer(i) => match (i.as_signed(), i.as_unsigned()) {
            (Some(s), _) => json!(s),
            (None, Some(u)) => json!(u),
            (None, None) => Json::Null,
        },
        Value::String(s) => Json::String(s.clone()),
        Value::Uid(u) => json!(u.get()),
        _ => Json::Null,
    }
}

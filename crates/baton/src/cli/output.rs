//! How the operator CLI prints an answer: a table by default (lists as rows, one record as
//! `field  value` lines), or the server's JSON with `--output json` for scripts. Secrets (passwords,
//! keys, tokens, the `Password` of a Wi-Fi payload inside a profile) are redacted in both forms
//! unless `--show-secrets` is given.

use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use serde_json::Value;

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";

/// `--output`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for lists, `field  value` lines for one record.
    #[default]
    Table,
    /// The admin API's JSON, pretty-printed.
    Json,
}

/// Presentation flags shared by every admin subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct View {
    /// Output format: `table` (default) or `json` (for scripts).
    #[arg(
        long,
        short = 'o',
        global = true,
        env = "BATON_OUTPUT",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,
    /// Print secrets (passwords inside profiles, keys, tokens) instead of `<redacted>`.
    #[arg(long, global = true)]
    pub show_secrets: bool,
}

/// JSON object keys whose string values are secrets.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passphrase",
    "api_key",
    "secret",
    "webhook_secret",
    "scep_challenge",
    "challenge",
    "push_magic",
    "pushmagic",
    "unlock_token",
    "unlocktoken",
    "token",
    "private_key",
    "pkcs12",
];

/// Plist keys (inside profile templates) whose `<string>`/`<data>` values are secrets.
const SECRET_PLIST_KEYS: &[&str] = &[
    "Password",
    "PayloadCertificatePassword",
    "Passphrase",
    "SharedSecret",
    "PSK",
    "PreSharedKey",
    "Challenge",
    "AuthPassword",
    "XAuthPassword",
    "PrivateKey",
];

/// True when a JSON key names a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str())
        || key.ends_with("_password")
        || key.ends_with("_secret")
        || key.ends_with("_api_key")
}

/// Replaces secrets in `value` (in place): string values under secret keys, and secret values
/// inside plist XML strings. `keep` names top-level keys left alone (a secret the server shows
/// only once, such as a new enrollment token's `token` and `url`).
pub fn redact(value: &mut Value, keep: &[&str]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if keep.contains(&key.as_str()) {
                    continue;
                }
                if is_secret_key(key) && matches!(v, Value::String(s) if !s.is_empty()) {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact(v, &[]);
                }
            }
        }
        Value::Array(list) => list.iter_mut().for_each(|v| redact(v, &[])),
        Value::String(s) if s.contains("<plist") || s.contains("<key>") => {
            *s = redact_plist_text(s);
        }
        _ => {}
    }
}

/// Replaces the value after `<key>K</key>` for every secret plist key `K`.
pub fn redact_plist_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<key>") {
        let after_open = &rest[start + 5..];
        let Some(end) = after_open.find("</key>") else {
            break;
        };
        let key = after_open[..end].trim();
        let after_key = &after_open[end + 6..];
        out.push_str(&rest[..start + 5 + end + 6]);
        rest = after_key;
        if !SECRET_PLIST_KEYS.contains(&key) {
            continue;
        }
        let trimmed = rest.trim_start();
        let ws = &rest[..rest.len() - trimmed.len()];
        for tag in ["string", "data"] {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            if let Some(body) = trimmed.strip_prefix(open.as_str())
                && let Some(close_at) = body.find(close.as_str())
            {
                out.push_str(ws);
                let _ = write!(out, "{open}{REDACTED}{close}");
                rest = &body[close_at + close.len()..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A column: header and the dotted path of the field in a row.
type Column = (&'static str, &'static str);

/// The columns shown for a known list (by the key that holds it in the answer).
fn known_columns(list_key: &str) -> Option<&'static [Column]> {
    Some(match list_key {
        "users" => &[
            ("USERNAME", "username"),
            ("FULL NAME", "full_name"),
            ("EMAIL", "email"),
            ("PASSWORD", "has_password"),
            ("DISABLED", "disabled"),
        ],
        "groups" => &[("ID", "id"), ("KIND", "kind"), ("MEMBERS", "members")],
        "items" => &[
            ("ID", "id"),
            ("KIND", "content.type"),
            ("NAME", "name"),
            ("SCOPE", "scope"),
            ("LEAVES ON SIGN-OUT", "leaves_on_sign_out"),
        ],
        "distributions" => &[("ID", "id"), ("ITEM", "item"), ("TARGET", "target")],
        "devices" => &[
            ("ID", "id"),
            ("SERIAL", "serial_number"),
            ("MODEL", "model_name"),
            ("OS", "os_version"),
            ("ASSIGNEE", "assignee"),
            ("LAST SEEN", "last_seen"),
            ("ENABLED", "enabled"),
        ],
        "members" => &[
            ("ID", "id"),
            ("SERIAL", "serial_number"),
            ("MODEL", "model_name"),
            ("ASSIGNEE", "assignee"),
        ],
        "enrollment_tokens" => &[
            ("ID", "id"),
            ("LABEL", "label"),
            ("STATE", "state"),
            ("USES", "uses"),
            ("MAX", "max_uses"),
            ("EXPIRES", "expires_at"),
            ("GROUP", "device_group"),
        ],
        "lints" => &[
            ("SEVERITY", "severity"),
            ("CODE", "code"),
            ("MESSAGE", "message"),
        ],
        "sessions" => &[
            ("USERNAME", "username"),
            ("STARTED", "started_at"),
            ("HOW", "how"),
            ("ENDED", "ended_at"),
            ("ENDED HOW", "ended_how"),
            ("CLEAN", "clean_hand_off"),
        ],
        "enqueued" => &[
            ("COMMAND", "command_uuid"),
            ("REQUEST", "request_type"),
            ("ITEM", "item"),
            ("REMOVAL", "removal"),
        ],
        _ => return None,
    })
}

/// The field at a dotted path.
fn field<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(row, |v, part| v.get(part))
}

/// One cell: scalars as text, short lists joined, records summarised on one line.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::Bool(b)) => if *b { "yes" } else { "no" }.to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => one_line(s),
        Some(Value::Array(list)) => {
            if list.is_empty() {
                "-".to_owned()
            } else if list.iter().all(|v| !v.is_object() && !v.is_array()) {
                list.iter()
                    .map(|v| cell(Some(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                format!("{} entries", list.len())
            }
        }
        Some(Value::Object(map)) if map.is_empty() => "-".to_owned(),
        Some(Value::Object(map)) => {
            let rest = map
                .iter()
                .filter(|(k, v)| *k != "type" && !v.is_null())
                .map(|(k, v)| format!("{k}: {}", cell(Some(v))))
                .collect::<Vec<_>>()
                .join("; ");
            match map.get("type").and_then(Value::as_str) {
                Some(kind) if rest.is_empty() => kind.to_owned(),
                Some(kind) => format!("{kind} ({rest})"),
                None => rest,
            }
        }
    }
}

/// A string on one line: multi-line text (a profile's XML) is summarised.
fn one_line(s: &str) -> String {
    if s.contains('\n') {
        let kind = if s.contains("<plist") {
            "plist XML"
        } else {
            "text"
        };
        format!("({kind}, {} bytes; --output json prints it)", s.len())
    } else {
        s.to_owned()
    }
}

/// Aligned columns with a header line.
fn write_rows(out: &mut String, headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, (c, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{c:<w$}");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// A list of records as a table (`list_key` picks known columns).
fn write_list(out: &mut String, list_key: &str, rows: &[Value]) {
    if rows.is_empty() {
        let _ = writeln!(out, "(no {})", list_key.replace('_', " "));
        return;
    }
    if !rows.iter().all(Value::is_object) {
        let cells: Vec<Vec<String>> = rows.iter().map(|v| vec![cell(Some(v))]).collect();
        write_rows(out, &[&list_key.to_ascii_uppercase()], &cells);
        return;
    }
    let owned: Vec<(String, String)>;
    // A user group's members are users, a device group's devices.
    let list_key = if list_key == "members" && rows[0].get("username").is_some() {
        "users"
    } else {
        list_key
    };
    let columns: Vec<(&str, &str)> = match known_columns(list_key) {
        Some(c) => c.to_vec(),
        None => {
            // Unknown shape: the first record's fields, in its order.
            owned = rows[0]
                .as_object()
                .map(|m| {
                    m.keys()
                        .map(|k| (k.to_ascii_uppercase().replace('_', " "), k.clone()))
                        .collect()
                })
                .unwrap_or_default();
            owned
                .iter()
                .map(|(h, p)| (h.as_str(), p.as_str()))
                .collect()
        }
    };
    let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|(_, p)| cell(field(row, p))).collect())
        .collect();
    write_rows(out, &headers, &cells);
}

/// One record as `field  value` lines (nested records one level deep as `a.b`).
fn write_record(out: &mut String, map: &serde_json::Map<String, Value>) {
    let mut rows = Vec::new();
    for (key, value) in map {
        match value {
            Value::Object(inner) if !inner.is_empty() => {
                for (k, v) in inner {
                    rows.push(vec![format!("{key}.{k}"), cell(Some(v))]);
                }
            }
            _ => rows.push(vec![key.clone(), cell(Some(value))]),
        }
    }
    write_rows(out, &["FIELD", "VALUE"], &rows);
}

/// Renders an answer as text for a person.
pub fn table(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Null => {}
        Value::Array(rows) => write_list(&mut out, "entries", rows),
        Value::Object(map) => {
            // An answer holding one list (`{"users":[...]}`, `{"lints":[...],"errors":n}`):
            // the list as a table, the other scalar fields below it.
            let lists: Vec<(&String, &Vec<Value>)> = map
                .iter()
                .filter_map(|(k, v)| v.as_array().map(|a| (k, a)))
                .filter(|(_, a)| a.iter().all(Value::is_object))
                .collect();
            let scalars = map.values().all(|v| !v.is_object());
            if lists.len() == 1 && scalars {
                let (key, rows) = lists[0];
                write_list(&mut out, key, rows);
                for (k, v) in map.iter().filter(|(k, _)| *k != key) {
                    let _ = writeln!(out, "{k}: {}", cell(Some(v)));
                }
            } else {
                write_record(&mut out, map);
            }
        }
        other => {
            let _ = writeln!(out, "{}", cell(Some(other)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_wifi_password_inside_a_profile_is_redacted() {
        let mut v = json!({"items": [{"id": "wifi", "content": {"type": "profile",
            "template": "<dict>\n<key>SSID_STR</key><string>ward</string>\n<key>Password</key>\n\t<string>hunter2</string>\n</dict>"}}]});
        redact(&mut v, &[]);
        let text = v.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<string>ward</string>"));
        assert!(text.contains(REDACTED));
    }

    #[test]
    fn secret_keys_are_redacted_and_kept_ones_are_not() {
        let mut v = json!({"token": "abc.def", "url": "https://x/?token=abc.def",
            "webhook_secret": "s", "nested": [{"password": "p", "username": "u"}]});
        redact(&mut v, &["token", "url"]);
        assert_eq!(v["token"], "abc.def");
        assert_eq!(v["webhook_secret"], REDACTED);
        assert_eq!(v["nested"][0]["password"], REDACTED);
        assert_eq!(v["nested"][0]["username"], "u");
    }

    #[test]
    fn a_list_answer_is_a_table_with_known_columns() {
        let v = json!({"users": [
            {"username": "alice", "full_name": "Alice A", "email": null, "has_password": true,
             "disabled": false, "attributes": {}},
            {"username": "nobody", "full_name": null, "email": null, "has_password": false,
             "disabled": false, "attributes": {"multi-user-owner": true}}]});
        let text = table(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("USERNAME  FULL NAME"), "{text}");
        assert!(lines[1].starts_with("alice     Alice A"), "{text}");
        assert!(lines[2].contains("nobody"));
        assert!(!text.contains("multi-user-owner"));
    }

    #[test]
    fn a_record_is_field_value_lines_and_long_xml_is_summarised() {
        let v =
            json!({"id": "wifi", "content": {"type": "profile", "template": "<plist>\n</plist>"}});
        let text = table(&v);
        assert!(text.contains("content.type      profile"), "{text}");
        assert!(text.contains("(plist XML, 16 bytes"), "{text}");
    }

    #[test]
    fn an_empty_list_says_so_and_scalars_follow_the_table() {
        assert_eq!(table(&json!({"devices": []})), "(no devices)\n");
        let text = table(
            &json!({"lints": [{"severity": "error", "code": "c", "message": "m"}],
            "errors": 1}),
        );
        assert!(text.ends_with("errors: 1\n"), "{text}");
    }
}

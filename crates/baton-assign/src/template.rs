//! Per-user and per-device templates: `$USER.username`, `$USER.email`, `$USER.full_name`,
//! `$USER.<attribute>`, `$DEVICE.serial`, `$DEVICE.udid`, `$DEVICE.<attribute>`.
//!
//! A variable name is letters, digits, `_` and `-`; `${USER.name}` delimits it explicitly and
//! `$$` is a literal `$`. Any other `$` is literal text. Plist templates (profiles, app
//! configurations, Settings) are parsed once into a [`plist::Value`]; variables are substituted
//! inside string values only and the result is written by the plist writer, so a value such as
//! `Tom & "Jerry" <x>` can never break the XML. A variable the user or device lacks is an error
//! for that item, never a silent empty string.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::attribute::AttrValue;
use crate::device::Device;
use crate::directory::User;

/// Whose attribute a variable reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VarScope {
    /// `$USER.…`: the assignee.
    User,
    /// `$DEVICE.…`: the device.
    Device,
}

/// One template variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Variable {
    /// `$USER` or `$DEVICE`.
    pub scope: VarScope,
    /// The attribute name after the dot.
    pub name: String,
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            VarScope::User => write!(f, "$USER.{}", self.name),
            VarScope::Device => write!(f, "$DEVICE.{}", self.name),
        }
    }
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TemplateError {
    /// The plist text does not parse.
    #[error("the template is not a valid property list: {reason}")]
    InvalidPlist {
        /// The parser's message.
        reason: String,
    },
    /// The plist's top level has the wrong type.
    #[error("the template's top level must be {expected}")]
    WrongTopLevel {
        /// `a dictionary` or `an array`.
        expected: String,
    },
    /// `${` without a matching `}` or with an unknown scope.
    #[error("bad variable reference {text:?}")]
    BadVariable {
        /// The offending text.
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Variable),
}

/// A string with variables, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TextTemplate {
    parts: Vec<Part>,
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

impl TextTemplate {
    /// A template that renders nothing.
    pub(crate) fn empty() -> TextTemplate {
        TextTemplate { parts: Vec::new() }
    }

    pub(crate) fn parse(s: &str) -> Result<TextTemplate, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            text.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(r) = after.strip_prefix('$') {
                text.push('$');
                rest = r;
                continue;
            }
            if let Some(inner) = after.strip_prefix('{') {
                let Some(end) = inner.find('}') else {
                    return Err(TemplateError::BadVariable {
                        text: rest[pos..].to_owned(),
                    });
                };
                let body = &inner[..end];
                let var = body
                    .split_once('.')
                    .and_then(|(scope, name)| {
                        let scope = match scope {
                            "USER" => VarScope::User,
                            "DEVICE" => VarScope::Device,
                            _ => return None,
                        };
                        (!name.is_empty() && name.bytes().all(is_name_byte)).then(|| Variable {
                            scope,
                            name: name.to_owned(),
                        })
                    })
                    .ok_or_else(|| TemplateError::BadVariable {
                        text: format!("${{{body}}}"),
                    })?;
                push_var(&mut parts, &mut text, var);
                rest = &inner[end + 1..];
                continue;
            }
            let scoped = [("USER.", VarScope::User), ("DEVICE.", VarScope::Device)]
                .into_iter()
                .find_map(|(p, scope)| after.strip_prefix(p).map(|r| (scope, r)));
            match scoped {
                Some((scope, r)) => {
                    let len = r.bytes().take_while(|b| is_name_byte(*b)).count();
                    if len == 0 {
                        text.push('$');
                        rest = after;
                    } else {
                        let var = Variable {
                            scope,
                            name: r[..len].to_owned(),
                        };
                        push_var(&mut parts, &mut text, var);
                        rest = &r[len..];
                    }
                }
                None => {
                    text.push('$');
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(TextTemplate { parts })
    }

    pub(crate) fn variables(&self) -> impl Iterator<Item = &Variable> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v),
            Part::Text(_) => None,
        })
    }

    /// Renders with `ctx`; variables that do not resolve are appended to `missing`.
    pub(crate) fn render(&self, ctx: &RenderContext<'_>, missing: &mut Vec<Variable>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => match ctx.lookup(v) {
                    Some(s) => out.push_str(&s),
                    None => missing.push(v.clone()),
                },
            }
        }
        out
    }
}

fn push_var(parts: &mut Vec<Part>, text: &mut String, var: Variable) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
    parts.push(Part::Var(var));
}

/// Where variables get their values: the assignee and the device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderContext<'a> {
    pub(crate) user: &'a User,
    pub(crate) device: &'a Device,
}

impl RenderContext<'_> {
    pub(crate) fn lookup(&self, v: &Variable) -> Option<Cow<'_, str>> {
        match v.scope {
            VarScope::User => user_value(self.user, &v.name),
            VarScope::Device => match v.name.as_str() {
                "udid" => Some(Cow::Borrowed(self.device.udid.as_str())),
                "serial" => self.device.serial.as_deref().map(Cow::Borrowed),
                name => attr_text(self.device.attributes.get(name)),
            },
        }
    }
}

fn attr_text(a: Option<&AttrValue>) -> Option<Cow<'_, str>> {
    a.map(|v| match v {
        AttrValue::Str(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_text()),
    })
}

/// The value of `$USER.<name>` for `user`.
pub(crate) fn user_value<'u>(user: &'u User, name: &str) -> Option<Cow<'u, str>> {
    match name {
        "username" => Some(Cow::Borrowed(user.username.as_str())),
        "email" => user.email.as_deref().map(Cow::Borrowed),
        "full_name" => user.full_name.as_deref().map(Cow::Borrowed),
        name => attr_text(user.attributes.get(name)),
    }
}

/// Whether a user attribute name is one every user may have (built in) — used by lints.
pub(crate) fn user_has(user: &User, name: &str) -> bool {
    match name {
        "username" => true,
        "email" => user.email.is_some(),
        "full_name" => user.full_name.is_some(),
        n => user.attributes.contains_key(n),
    }
}

/// The expected shape of a plist template's top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TopLevel {
    Dictionary,
    Array,
}

/// A plist template: parsed once, rendered per (user, device).
#[derive(Debug, Clone)]
pub(crate) struct PlistTemplate {
    value: plist::Value,
    variables: Vec<Variable>,
}

impl PlistTemplate {
    pub(crate) fn parse(xml: &str, top: TopLevel) -> Result<PlistTemplate, TemplateError> {
        let value = plist::Value::from_reader_xml(xml.as_bytes()).map_err(|e| {
            TemplateError::InvalidPlist {
                reason: e.to_string(),
            }
        })?;
        let ok = match top {
            TopLevel::Dictionary => value.as_dictionary().is_some(),
            TopLevel::Array => value.as_array().is_some(),
        };
        if !ok {
            return Err(TemplateError::WrongTopLevel {
                expected: match top {
                    TopLevel::Dictionary => "a dictionary".into(),
                    TopLevel::Array => "an array".into(),
                },
            });
        }
        let mut variables = Vec::new();
        collect(&value, &mut variables)?;
        variables.sort();
        variables.dedup();
        Ok(PlistTemplate { value, variables })
    }

    pub(crate) fn variables(&self) -> &[Variable] {
        &self.variables
    }

    /// Renders every string value; unresolved variables are appended to `missing`.
    pub(crate) fn render(
        &self,
        ctx: &RenderContext<'_>,
        missing: &mut Vec<Variable>,
    ) -> plist::Value {
        if self.variables.is_empty() {
            return self.value.clone();
        }
        substitute(&self.value, ctx, missing)
    }
}

fn collect(v: &plist::Value, out: &mut Vec<Variable>) -> Result<(), TemplateError> {
    match v {
        plist::Value::String(s) if s.contains('$') => {
            out.extend(TextTemplate::parse(s)?.variables().cloned());
        }
        plist::Value::Array(a) => {
            for x in a {
                collect(x, out)?;
            }
        }
        plist::Value::Dictionary(d) => {
            for (_, x) in d {
                collect(x, out)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn substitute(
    v: &plist::Value,
    ctx: &RenderContext<'_>,
    missing: &mut Vec<Variable>,
) -> plist::Value {
    match v {
        plist::Value::String(s) if s.contains('$') => match TextTemplate::parse(s) {
            Ok(t) => plist::Value::String(t.render(ctx, missing)),
            // Unreachable after a successful parse of the whole template; keep the text.
            Err(_) => v.clone(),
        },
        plist::Value::Array(a) => {
            plist::Value::Array(a.iter().map(|x| substitute(x, ctx, missing)).collect())
        }
        plist::Value::Dictionary(d) => plist::Value::Dictionary(
            d.iter()
                .map(|(k, x)| (k.clone(), substitute(x, ctx, missing)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Writes a plist value as XML text.
pub(crate) fn to_xml(v: &plist::Value) -> String {
    let mut buf = Vec::new();
    // Writing to a Vec cannot fail for values built from parsed plists.
    if v.to_writer_xml(&mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use baton_proto::Udid;

    use super::*;
    use crate::device::DeviceKind;

    fn alice() -> User {
        User {
            username: "alice".into(),
            email: Some("alice@example.com".into()),
            full_name: Some("Alice <& \"Liddell\">".into()),
            attributes: BTreeMap::from([("ward".into(), AttrValue::Int(7))]),
        }
    }

    fn phone() -> Device {
        Device {
            udid: Udid::new("UDID-1").unwrap(),
            serial: Some("F2LX".into()),
            kind: DeviceKind::Ordinary,
            assignee: "alice".into(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn text_templates() {
        let (u, d) = (alice(), phone());
        let ctx = RenderContext {
            user: &u,
            device: &d,
        };
        let mut missing = Vec::new();
        let t = TextTemplate::parse("$USER.username@$DEVICE.serial ${USER.ward}x $$5 $HOME $USER.")
            .unwrap();
        assert_eq!(
            t.render(&ctx, &mut missing),
            "alice@F2LX 7x $5 $HOME $USER."
        );
        assert!(missing.is_empty());
        let t = TextTemplate::parse("$USER.phone and $DEVICE.model").unwrap();
        t.render(&ctx, &mut missing);
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        assert_eq!(names, vec!["$USER.phone", "$DEVICE.model"]);
        assert!(TextTemplate::parse("${USER.email").is_err());
        assert!(TextTemplate::parse("${HOST.x}").is_err());
    }

    #[test]
    fn plist_rendering_escapes() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict><key>Name</key><string>$USER.full_name</string>
<key>$USER.email</key><string>k</string></dict></plist>"#;
        let t = PlistTemplate::parse(xml, TopLevel::Dictionary).unwrap();
        assert_eq!(t.variables().len(), 1, "keys are not substituted");
        let (u, d) = (alice(), phone());
        let mut missing = Vec::new();
        let out = t.render(
            &RenderContext {
                user: &u,
                device: &d,
            },
            &mut missing,
        );
        let text = to_xml(&out);
        assert!(
            text.contains("Alice &lt;&amp; &quot;Liddell&quot;&gt;"),
            "{text}"
        );
        let back = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
        assert_eq!(
            back.as_dictionary()
                .unwrap()
                .get("Name")
                .unwrap()
                .as_string(),
            Some("Alice <& \"Liddell\">")
        );
        assert!(matches!(
            PlistTemplate::parse(xml, TopLevel::Array),
            Err(TemplateError::WrongTopLevel { .. })
        ));
        assert!(matches!(
            PlistTemplate::parse("<plist><dict>", TopLevel::Dictionary),
            Err(TemplateError::InvalidPlist { .. })
        ));
    }
}

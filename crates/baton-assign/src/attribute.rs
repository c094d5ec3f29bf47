//! Attribute values of users and devices (`multi-user-owner = true`, `model = "iPad"`,
//! `os = "17.4.1"`) and how rules compare them.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A user or device attribute value. In JSON it is a plain boolean, integer or string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    /// A boolean (`multi-user-owner = true`).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string (also dotted versions such as `"17.4.1"`).
    Str(String),
}

impl AttrValue {
    /// The value as template text: strings as-is, numbers in decimal, booleans `true`/`false`.
    pub fn to_text(&self) -> String {
        match self {
            AttrValue::Bool(b) => b.to_string(),
            AttrValue::Int(i) => i.to_string(),
            AttrValue::Str(s) => s.clone(),
        }
    }
}

impl fmt::Display for AttrValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttrValue::Str(s) => write!(f, "{s:?}"),
            other => f.write_str(&other.to_text()),
        }
    }
}

/// A borrowed view of an attribute, as looked up for a rule or a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrRef<'a> {
    Bool(bool),
    Int(i64),
    Str(&'a str),
}

impl<'a> From<&'a AttrValue> for AttrRef<'a> {
    fn from(v: &'a AttrValue) -> Self {
        match v {
            AttrValue::Bool(b) => AttrRef::Bool(*b),
            AttrValue::Int(i) => AttrRef::Int(*i),
            AttrValue::Str(s) => AttrRef::Str(s),
        }
    }
}

/// Components of a dotted version made only of digits and dots (`17`, `17.4.1`), without
/// allocating; `None` when `s` is not such a version.
fn version_parts(s: &str) -> Option<impl Iterator<Item = u64> + '_> {
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit)
        || !s
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 18 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some(s.split('.').map(|p| p.parse::<u64>().unwrap_or(0)))
}

/// Compares dotted versions, missing components counting as zero (`17` == `17.0`).
fn cmp_versions(mut a: impl Iterator<Item = u64>, mut b: impl Iterator<Item = u64>) -> Ordering {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => match x.unwrap_or(0).cmp(&y.unwrap_or(0)) {
                Ordering::Equal => {}
                o => return o,
            },
        }
    }
}

/// Orders an attribute against a rule literal, or `None` when they are not comparable.
///
/// Numbers compare numerically, a number against a dotted-version string compares as versions,
/// two version-like strings compare as versions, other strings compare exactly, booleans only
/// against booleans (or the strings `true`/`false`).
pub(crate) fn compare(attr: AttrRef<'_>, lit: &AttrValue) -> Option<Ordering> {
    match (attr, lit) {
        (AttrRef::Int(a), AttrValue::Int(b)) => Some(a.cmp(b)),
        (AttrRef::Bool(a), AttrValue::Bool(b)) => Some(a.cmp(b)),
        (AttrRef::Str(a), AttrValue::Bool(b)) => match a {
            "true" => Some(true.cmp(b)),
            "false" => Some(false.cmp(b)),
            _ => None,
        },
        (AttrRef::Str(a), AttrValue::Int(b)) => {
            let vb = u64::try_from(*b).ok()?;
            Some(cmp_versions(version_parts(a)?, std::iter::once(vb)))
        }
        (AttrRef::Int(a), AttrValue::Str(b)) => {
            let va = u64::try_from(a).ok()?;
            Some(cmp_versions(std::iter::once(va), version_parts(b)?))
        }
        (AttrRef::Str(a), AttrValue::Str(b)) => match (version_parts(a), version_parts(b)) {
            (Some(va), Some(vb)) => Some(cmp_versions(va, vb)),
            _ => Some(a.cmp(b.as_str())),
        },
        (AttrRef::Bool(_), _) | (AttrRef::Int(_), AttrValue::Bool(_)) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        let lit = AttrValue::Int(17);
        assert_eq!(
            compare(AttrRef::Str("17.4.1"), &lit),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(AttrRef::Str("17"), &lit), Some(Ordering::Equal));
        assert_eq!(compare(AttrRef::Str("9.3"), &lit), Some(Ordering::Less));
        assert_eq!(
            compare(AttrRef::Str("16.10"), &AttrValue::Str("16.9".into())),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(AttrRef::Str("iPad"), &lit), None);
    }

    #[test]
    fn booleans_and_strings() {
        assert_eq!(
            compare(AttrRef::Bool(true), &AttrValue::Bool(true)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare(AttrRef::Str("true"), &AttrValue::Bool(true)),
            Some(Ordering::Equal)
        );
        assert_eq!(compare(AttrRef::Bool(true), &AttrValue::Int(1)), None);
        assert_eq!(
            compare(AttrRef::Str("iPad"), &AttrValue::Str("iPad".into())),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn json_shape_is_plain() {
        let v: AttrValue = serde_json::from_str("true").unwrap();
        assert_eq!(v, AttrValue::Bool(true));
        let v: AttrValue = serde_json::from_str("\"17.4\"").unwrap();
        assert_eq!(v, AttrValue::Str("17.4".into()));
        let v: AttrValue = serde_json::from_str("3").unwrap();
        assert_eq!(v, AttrValue::Int(3));
    }
}

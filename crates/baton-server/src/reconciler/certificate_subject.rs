//! The names that go into a certificate issued for a catalog item: the rendered subject text
//! (`CN=alice,O=Example`) parsed into an [`X509Name`], and the rendered e-mail address checked
//! for the rfc822Name subjectAltName.
//!
//! Subjects are written by operators as templates and rendered with directory data (a person's
//! full name may hold a comma), so the parser is lenient where it can be unambiguous and strict
//! everywhere else:
//!
//! - RDNs are separated by `,` (or `;`), but only where the rest of the text starts with a known
//!   attribute and `=`; any other comma belongs to the value (`CN=Doe, John,O=Acme` gives
//!   `CN=Doe, John` and `O=Acme`). RFC 4514 escapes (`\,`, `\+`, `\\`, `\"`, `\=`, `\;`, `\<`,
//!   `\>`, `\#`, `\ ` and two-hex-digit `\2C`) are honoured.
//! - Known attributes only (case-insensitive): CN, O, OU, C, ST, L, E (emailAddress), DC, UID,
//!   serialNumber, GN (givenName), SN (surname), title. Multi-valued RDNs (`+`) are not
//!   supported: `+` is part of the value.
//! - Refused with a [`SubjectError`]: control characters, empty values, unknown attributes, a
//!   country that is not two letters, values over the X.520 upper bounds, more than
//!   [`MAX_RDNS`] attributes or more than [`MAX_SUBJECT_BYTES`] of text.
//!
//! Values are inserted as data, never re-parsed by OpenSSL's configuration syntax, so a value
//! cannot add attributes or extensions. A rendered value that itself contains `,O=…` does
//! split, though: directory data that should never do that belongs in escaped form.

use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::x509::X509Name;

/// Longest subject text accepted, in bytes.
pub const MAX_SUBJECT_BYTES: usize = 1024;
/// Most attributes accepted in one subject.
pub const MAX_RDNS: usize = 16;
/// Longest e-mail address accepted (RFC 5321 path limit), in bytes.
pub const MAX_EMAIL_BYTES: usize = 254;

/// Why a rendered subject or e-mail address cannot go into a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// Nothing to put in the subject.
    #[error("the subject is empty")]
    Empty,
    /// The text is longer than [`MAX_SUBJECT_BYTES`].
    #[error("the subject is longer than {MAX_SUBJECT_BYTES} bytes")]
    TooLong,
    /// More than [`MAX_RDNS`] attributes.
    #[error("the subject has more than {MAX_RDNS} attributes")]
    TooManyAttributes,
    /// A control character (newline, NUL, ...) in the text.
    #[error("the subject contains a control character")]
    ControlCharacter,
    /// A part without `=`.
    #[error("expected ATTRIBUTE=value, found {0:?}")]
    MissingEquals(String),
    /// An attribute this parser does not know.
    #[error(
        "unknown subject attribute {0:?} (known: CN, O, OU, C, ST, L, E, DC, UID, serialNumber, GN, SN, title)"
    )]
    UnknownAttribute(String),
    /// An attribute without a value.
    #[error("subject attribute {0} has an empty value")]
    EmptyValue(String),
    /// A value over the attribute's upper bound.
    #[error("subject attribute {attribute} is longer than {max} characters")]
    ValueTooLong {
        /// The attribute.
        attribute: String,
        /// Its upper bound.
        max: usize,
    },
    /// `C` must be a two-letter country code.
    #[error("subject attribute C must be a two-letter country code, not {0:?}")]
    Country(String),
    /// A backslash not followed by a special character or two hex digits.
    #[error("bad escape in the subject: {0}")]
    Escape(String),
    /// The e-mail address is not a plain `local@domain` ASCII address.
    #[error("not a usable e-mail address for the certificate: {0:?}")]
    Email(String),
    /// OpenSSL refused the name.
    #[error("openssl: {0}")]
    Openssl(String),
}

impl From<ErrorStack> for SubjectError {
    fn from(e: ErrorStack) -> Self {
        SubjectError::Openssl(e.to_string())
    }
}

/// One known attribute: the spellings accepted, its NID and its upper bound in characters.
struct Attribute {
    names: &'static [&'static str],
    nid: Nid,
    max: usize,
}

const ATTRIBUTES: &[Attribute] = &[
    Attribute {
        names: &["CN", "commonName"],
        nid: Nid::COMMONNAME,
        max: 64,
    },
    Attribute {
        names: &["O", "organizationName"],
        nid: Nid::ORGANIZATIONNAME,
        max: 64,
    },
    Attribute {
        names: &["OU", "organizationalUnitName"],
        nid: Nid::ORGANIZATIONALUNITNAME,
        max: 64,
    },
    Attribute {
        names: &["C", "countryName"],
        nid: Nid::COUNTRYNAME,
        max: 2,
    },
    Attribute {
        names: &["ST", "stateOrProvinceName"],
        nid: Nid::STATEORPROVINCENAME,
        max: 128,
    },
    Attribute {
        names: &["L", "localityName"],
        nid: Nid::LOCALITYNAME,
        max: 128,
    },
    Attribute {
        names: &["E", "emailAddress"],
        nid: Nid::PKCS9_EMAILADDRESS,
        max: 128,
    },
    Attribute {
        names: &["DC", "domainComponent"],
        nid: Nid::DOMAINCOMPONENT,
        max: 63,
    },
    Attribute {
        names: &["UID", "userId"],
        nid: Nid::USERID,
        max: 256,
    },
    Attribute {
        names: &["serialNumber"],
        nid: Nid::SERIALNUMBER,
        max: 64,
    },
    Attribute {
        names: &["GN", "givenName"],
        nid: Nid::GIVENNAME,
        max: 64,
    },
    Attribute {
        names: &["SN", "surname"],
        nid: Nid::SURNAME,
        max: 64,
    },
    Attribute {
        names: &["title"],
        nid: Nid::TITLE,
        max: 64,
    },
];

fn attribute(name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES
        .iter()
        .find(|a| a.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// True when `rest` (after a separator) starts with `ATTRIBUTE=` for a known attribute.
fn starts_with_attribute(rest: &[char]) -> bool {
    let text: String = rest.iter().collect();
    let text = text.trim_start();
    match text.split_once('=') {
        Some((key, _)) => attribute(key.trim_end()).is_some(),
        None => false,
    }
}

/// The parts `KEY=value` of `text`, unescaped, split at separators as the module explains.
fn split(text: &str) -> Result<Vec<String>, SubjectError> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut current = String::new();
    // Bytes of `\XX` escapes, collected until the next ordinary character (they may form one
    // UTF-8 sequence together).
    let mut pending: Vec<u8> = Vec::new();
    let flush = |pending: &mut Vec<u8>, current: &mut String| -> Result<(), SubjectError> {
        if !pending.is_empty() {
            let s = String::from_utf8(std::mem::take(pending))
                .map_err(|_| SubjectError::Escape("hex escapes are not UTF-8".into()))?;
            if s.chars().any(char::is_control) {
                return Err(SubjectError::ControlCharacter);
            }
            current.push_str(&s);
        }
        Ok(())
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let Some(&next) = chars.get(i + 1) else {
                return Err(SubjectError::Escape("a trailing backslash".into()));
            };
            if next.is_ascii_hexdigit() {
                let Some(&low) = chars.get(i + 2).filter(|c| c.is_ascii_hexdigit()) else {
                    return Err(SubjectError::Escape(format!(
                        "\\{next} is not two hex digits"
                    )));
                };
                let hex: String = [next, low].iter().collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .map_err(|_| SubjectError::Escape(format!("\\{hex}")))?;
                pending.push(byte);
                i += 3;
                continue;
            }
            if ",+\"\\<>;=# ".contains(next) {
                flush(&mut pending, &mut current)?;
                current.push(next);
                i += 2;
                continue;
            }
            return Err(SubjectError::Escape(format!("\\{next}")));
        }
        flush(&mut pending, &mut current)?;
        if (c == ',' || c == ';') && starts_with_attribute(&chars[i + 1..]) {
            parts.push(std::mem::take(&mut current));
            i += 1;
            continue;
        }
        current.push(c);
        i += 1;
    }
    flush(&mut pending, &mut current)?;
    parts.push(current);
    Ok(parts)
}

/// The certificate subject for the rendered subject text `text` (see the module docs).
pub fn parse_subject(text: &str) -> Result<X509Name, SubjectError> {
    if text.len() > MAX_SUBJECT_BYTES {
        return Err(SubjectError::TooLong);
    }
    if text.chars().any(char::is_control) {
        return Err(SubjectError::ControlCharacter);
    }
    if text.trim().is_empty() {
        return Err(SubjectError::Empty);
    }
    // Each part is unescaped; its first `=` ends the attribute name, so an escaped `\=` in a
    // value stays in the value.
    let parts = split(text)?;
    if parts.len() > MAX_RDNS {
        return Err(SubjectError::TooManyAttributes);
    }
    let mut name = X509Name::builder()?;
    for part in parts {
        let Some((key, value)) = part.split_once('=') else {
            return Err(SubjectError::MissingEquals(part.trim().to_owned()));
        };
        let key = key.trim();
        let attribute =
            attribute(key).ok_or_else(|| SubjectError::UnknownAttribute(key.to_owned()))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(SubjectError::EmptyValue(key.to_owned()));
        }
        if attribute.nid == Nid::COUNTRYNAME {
            if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(SubjectError::Country(value.to_owned()));
            }
        } else if value.chars().count() > attribute.max {
            return Err(SubjectError::ValueTooLong {
                attribute: key.to_owned(),
                max: attribute.max,
            });
        }
        name.append_entry_by_nid(attribute.nid, value)?;
    }
    Ok(name.build())
}

/// The rendered e-mail address as it goes into the rfc822Name subjectAltName: `None` for an
/// empty rendering, else a plain ASCII `local@domain` without spaces, quotes, brackets, commas
/// or control characters.
pub fn parse_email(text: &str) -> Result<Option<String>, SubjectError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || SubjectError::Email(text.chars().take(64).collect());
    if text.len() > MAX_EMAIL_BYTES {
        return Err(bad());
    }
    let Some((local, domain)) = text.split_once('@') else {
        return Err(bad());
    };
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| {
                c.is_ascii_graphic() && !matches!(c, '@' | ',' | ';' | '"' | '<' | '>' | '\\')
            })
    };
    let domain_ok = plain(domain)
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'))
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !plain(local) || !domain_ok {
        return Err(bad());
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::ca::name_one_line;

    fn err(text: &str) -> SubjectError {
        match parse_subject(text) {
            Ok(name) => panic!("{text:?} parsed as {}", name_one_line(&name)),
            Err(e) => e,
        }
    }

    fn one_line(text: &str) -> String {
        name_one_line(&parse_subject(text).unwrap())
    }

    #[test]
    fn plain_subjects_parse_in_order() {
        assert_eq!(one_line("CN=alice"), "CN=alice");
        assert_eq!(
            one_line("CN=alice, O=Example Corp,OU=Nurses;C=de"),
            "CN=alice, O=Example Corp, OU=Nurses, C=de"
        );
        assert_eq!(
            one_line("commonName=a,emailAddress=a@b.test,dc=example"),
            "CN=a, emailAddress=a@b.test, DC=example"
        );
    }

    #[test]
    fn commas_not_followed_by_an_attribute_belong_to_the_value() {
        assert_eq!(
            one_line("CN=Doe, John,O=Acme, Inc."),
            "CN=Doe, John, O=Acme, Inc."
        );
        let name = parse_subject("CN=Doe, John,O=Acme").unwrap();
        assert_eq!(name.entries().count(), 2);
    }

    #[test]
    fn escapes_are_honoured() {
        let name = parse_subject(r"CN=a\,O=b,O=x\+y\\z,OU=caf\C3\A9").unwrap();
        let values: Vec<String> = name
            .entries()
            .map(|e| e.data().to_string().unwrap())
            .collect();
        assert_eq!(values, ["a,O=b", r"x+y\z", "café"]);
    }

    #[test]
    fn bad_subjects_are_errors_not_panics() {
        type Expect = fn(&SubjectError) -> bool;
        let cases: &[(&str, Expect)] = &[
            ("", |e| *e == SubjectError::Empty),
            ("   ", |e| *e == SubjectError::Empty),
            ("alice", |e| matches!(e, SubjectError::MissingEquals(_))),
            ("CN=", |e| matches!(e, SubjectError::EmptyValue(_))),
            ("XX=1", |e| matches!(e, SubjectError::UnknownAttribute(_))),
            ("CN=a\nO=b", |e| *e == SubjectError::ControlCharacter),
            ("CN=a\u{0}", |e| *e == SubjectError::ControlCharacter),
            (r"CN=a\00", |e| *e == SubjectError::ControlCharacter),
            ("C=Germany", |e| matches!(e, SubjectError::Country(_))),
            (r"CN=a\q", |e| matches!(e, SubjectError::Escape(_))),
            (r"CN=a\", |e| matches!(e, SubjectError::Escape(_))),
            (r"CN=\FF", |e| matches!(e, SubjectError::Escape(_))),
            (r"CN=\4", |e| matches!(e, SubjectError::Escape(_))),
        ];
        for (text, expected) in cases {
            let err = err(text);
            assert!(expected(&err), "{text:?}: {err:?}");
        }
        let long = format!("CN={}", "x".repeat(65));
        assert!(matches!(
            err(&long),
            SubjectError::ValueTooLong { max: 64, .. }
        ));
        let huge = "CN=x,".repeat(300);
        assert_eq!(err(&huge), SubjectError::TooLong);
        let many = vec!["OU=x"; MAX_RDNS + 1].join(",");
        assert_eq!(err(&many), SubjectError::TooManyAttributes);
    }

    #[test]
    fn e_mail_addresses() {
        assert_eq!(parse_email("").unwrap(), None);
        assert_eq!(
            parse_email(" alice@example.com ").unwrap().as_deref(),
            Some("alice@example.com")
        );
        for bad in [
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c",
            "a,DNS:evil@example.com",
            "alice@exa mple.com",
            "alice@-x.com",
            "alice@x..com",
            "älice@example.com",
            "a\n@example.com",
        ] {
            assert!(
                matches!(parse_email(bad), Err(SubjectError::Email(_))),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(parse_email(&long).is_err());
    }
}

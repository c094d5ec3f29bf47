//! Reading untrusted bytes into a plist dictionary under [`Limits`].
//!
//! Only XML plists are accepted. Devices always send XML, and a binary plist's nesting cannot be
//! bounded without walking its object table (whose references may even form cycles), so binary
//! input is refused with [`PlistError::Binary`] rather than handed to a parser that recurses.
//!
//! Before the `plist` crate sees the bytes, a pre-scan with the same XML tokenizer it uses
//! (quick-xml, configured the same way) counts `<dict>`/`<array>` nesting and elements. The scan
//! itself is iterative, so 100,000 nested arrays cost one linear pass and a typed error, never
//! a stack overflow in the parser, in `Drop`, or in any later recursive walk.

use plist::{Dictionary, Value};
use quick_xml::events::Event;

use crate::Limits;

/// Why bytes could not be read as a plist dictionary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlistError {
    /// The input is empty.
    #[error("empty body")]
    Empty,
    /// The input is larger than [`Limits::max_body_bytes`].
    #[error("body is {len} bytes, the limit is {max}")]
    TooLarge {
        /// Input length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `<dict>`/`<array>` nesting goes deeper than [`Limits::max_depth`].
    #[error("plist nesting exceeds the depth limit of {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// The document has more elements than [`Limits::max_elements`].
    #[error("plist has more than {max} elements")]
    TooManyElements {
        /// The limit.
        max: usize,
    },
    /// The input is a binary plist (`bplist00`); only XML plists are accepted.
    #[error("binary plists are not accepted, only XML")]
    Binary,
    /// The input is not a well-formed XML plist.
    #[error("malformed plist: {0}")]
    Malformed(String),
    /// The plist's top-level value is not a dictionary.
    #[error("top-level plist value is {found}, expected a dictionary")]
    NotADictionary {
        /// The kind of value found at the top level.
        found: &'static str,
    },
}

/// Checks `bytes` against `limits` without building any value: size, binary marker, nesting
/// depth and element count. [`read_dictionary`] calls this first; it is public so a server can
/// reject a body before buffering more work on it.
pub fn check_limits(bytes: &[u8], limits: &Limits) -> Result<(), PlistError> {
    if bytes.is_empty() {
        return Err(PlistError::Empty);
    }
    if bytes.len() > limits.max_body_bytes {
        return Err(PlistError::TooLarge {
            len: bytes.len(),
            max: limits.max_body_bytes,
        });
    }
    if bytes.starts_with(b"bplist") {
        return Err(PlistError::Binary);
    }
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = true;
    let mut depth = 0usize;
    let mut elements = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(start)) => {
                elements += 1;
                if elements > limits.max_elements {
                    return Err(PlistError::TooManyElements {
                        max: limits.max_elements,
                    });
                }
                if is_collection(start.local_name().into_inner()) {
                    depth += 1;
                    if depth > limits.max_depth {
                        return Err(PlistError::TooDeep {
                            max: limits.max_depth,
                        });
                    }
                }
            }
            Ok(Event::End(end)) => {
                if is_collection(end.local_name().into_inner()) {
                    depth = depth.saturating_sub(1);
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(err) => {
                return Err(PlistError::Malformed(format!(
                    "{err} at byte {}",
                    reader.error_position()
                )));
            }
        }
    }
}

fn is_collection(local_name: &str) -> bool {
    local_name == "dict" || local_name == "array"
}

/// Reads an XML plist whose top-level value is a dictionary, after [`check_limits`].
pub fn read_dictionary(bytes: &[u8], limits: &Limits) -> Result<Dictionary, PlistError> {
    check_limits(bytes, limits)?;
    let value =
        Value::from_reader_xml(bytes).map_err(|err| PlistError::Malformed(err.to_string()))?;
    match value {
        Value::Dictionary(dict) => Ok(dict),
        other => Err(PlistError::NotADictionary {
            found: value_kind(&other),
        }),
    }
}

/// The plist type name of a value, as Apple's schema spells it (without angle brackets).
pub fn value_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::Dictionary(_) => "dictionary",
        Value::Boolean(_) => "boolean",
        Value::Data(_) => "data",
        Value::Date(_) => "date",
        Value::Real(_) => "real",
        Value::Integer(_) => "integer",
        Value::String(_) => "string",
        Value::Uid(_) => "uid",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_arrays(depth: usize) -> Vec<u8> {
        let mut s = String::from("<?xml version=\"1.0\"?><plist version=\"1.0\">");
        s.push_str(&"<array>".repeat(depth));
        s.push_str(&"</array>".repeat(depth));
        s.push_str("</plist>");
        s.into_bytes()
    }

    #[test]
    fn hundred_thousand_nested_arrays_are_too_deep() {
        let bytes = nested_arrays(100_000);
        assert_eq!(
            read_dictionary(&bytes, &Limits::default()),
            Err(PlistError::TooDeep { max: 32 })
        );
    }

    #[test]
    fn self_closing_and_prefixed_collections_count() {
        let limits = Limits::default().with_max_depth(2);
        let ok = b"<plist><dict><key>a</key><array/></dict></plist>";
        assert!(read_dictionary(ok, &limits).is_ok());
        let deep = b"<plist><dict><key>a</key><array><dict/></array></dict></plist>";
        assert_eq!(
            read_dictionary(deep, &limits),
            Err(PlistError::TooDeep { max: 2 })
        );
        // quick-xml reports local names, so a namespace prefix does not hide a collection.
        let prefixed = b"<plist><x:dict><x:array><x:array></x:array></x:array></x:dict></plist>";
        assert_eq!(
            check_limits(prefixed, &limits),
            Err(PlistError::TooDeep { max: 2 })
        );
    }

    #[test]
    fn closing_tags_in_comments_do_not_hide_depth() {
        let limits = Limits::default().with_max_depth(3);
        let sneaky = b"<plist><!-- </array></array></array> --><array><array><array><array></array></array></array></array></plist>";
        assert_eq!(
            check_limits(sneaky, &limits),
            Err(PlistError::TooDeep { max: 3 })
        );
    }

    #[test]
    fn size_binary_empty_and_top_level_errors() {
        let limits = Limits::default().with_max_body_bytes(10);
        assert!(matches!(
            read_dictionary(&[b' '; 11], &limits),
            Err(PlistError::TooLarge { len: 11, max: 10 })
        ));
        assert_eq!(
            read_dictionary(b"bplist00\x00", &Limits::default()),
            Err(PlistError::Binary)
        );
        assert_eq!(
            read_dictionary(b"", &Limits::default()),
            Err(PlistError::Empty)
        );
        assert_eq!(
            read_dictionary(b"<plist><array/></plist>", &Limits::default()),
            Err(PlistError::NotADictionary { found: "array" })
        );
        assert!(matches!(
            read_dictionary(b"<plist><dict><key>a</key>", &Limits::default()),
            Err(PlistError::Malformed(_))
        ));
        assert!(matches!(
            read_dictionary(b"not a plist at all", &Limits::default()),
            Err(PlistError::Malformed(_))
        ));
    }

    #[test]
    fn element_count_is_bounded() {
        let limits = Limits::default().with_max_elements(10);
        let body = format!("<plist><array>{}</array></plist>", "<true/>".repeat(20));
        assert_eq!(
            check_limits(body.as_bytes(), &limits),
            Err(PlistError::TooManyElements { max: 10 })
        );
    }
}

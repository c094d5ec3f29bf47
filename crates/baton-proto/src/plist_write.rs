//! Writing dictionaries back to XML plist bytes.

use plist::{Dictionary, Value};

/// A value could not be serialised as an XML plist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode plist: {0}")]
pub struct EncodeError(pub String);

/// Serialises a dictionary as an XML plist document (with the XML declaration and DOCTYPE).
pub fn to_xml(dict: &Dictionary) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(512);
    Value::Dictionary(dict.clone())
        .to_writer_xml(&mut out)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(out)
}

/// Small helpers for building dictionaries key by key.
pub(crate) trait DictionaryExt {
    /// Inserts `value` under `key`.
    fn put(&mut self, key: &str, value: impl Into<Value>);
    /// Inserts `value` under `key` when it is `Some`.
    fn put_opt<T: Into<Value>>(&mut self, key: &str, value: Option<T>);
    /// Copies every entry of `extra` whose key is not already set.
    fn put_extra(&mut self, extra: &Dictionary);
}

impl DictionaryExt for Dictionary {
    fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.insert(key.to_owned(), value.into());
    }

    fn put_opt<T: Into<Value>>(&mut self, key: &str, value: Option<T>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    fn put_extra(&mut self, extra: &Dictionary) {
        for (k, v) in extra {
            if !self.contains_key(k) {
                self.insert(k.clone(), v.clone());
            }
        }
    }
}

/// A string list as a plist array.
pub(crate) fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

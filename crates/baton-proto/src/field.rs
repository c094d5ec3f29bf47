//! Typed access to the keys of a plist dictionary, with errors that name the key.
//!
//! Every decoder in this crate reads through [`Fields`], so a missing or mistyped key always
//! surfaces as a [`FieldError`] carrying the key's path (e.g. `ProfileList[2].PayloadUUID`).

use plist::{Dictionary, Value};

use crate::IdError;
use crate::plist_read::value_kind;

/// A key that is missing, has the wrong type or holds an invalid value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// A required key is absent.
    #[error("missing key {key}")]
    Missing {
        /// Path of the key.
        key: String,
    },
    /// The key holds a value of another plist type.
    #[error("key {key} is {found}, expected {expected}")]
    WrongType {
        /// Path of the key.
        key: String,
        /// The plist type the schema requires.
        expected: &'static str,
        /// The plist type found.
        found: &'static str,
    },
    /// The key holds an identifier that does not validate.
    #[error("key {key}: {source}")]
    InvalidId {
        /// Path of the key.
        key: String,
        /// Why the identifier is invalid.
        source: IdError,
    },
    /// The key holds a value outside the allowed set or range.
    #[error("key {key}: {reason}")]
    InvalidValue {
        /// Path of the key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A borrowed dictionary plus the path that leads to it, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    dict: &'a Dictionary,
    path: &'a str,
}

/// The path of `key` under `path`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Fields<'a> {
    /// Fields of a top-level dictionary.
    pub fn new(dict: &'a Dictionary) -> Self {
        Self { dict, path: "" }
    }

    /// Fields of a nested dictionary found at `path`.
    pub fn at(dict: &'a Dictionary, path: &'a str) -> Self {
        Self { dict, path }
    }

    /// The underlying dictionary.
    pub fn dictionary(&self) -> &'a Dictionary {
        self.dict
    }

    /// The full path of `key`, for error messages.
    pub fn path_of(&self, key: &str) -> String {
        join(self.path, key)
    }

    /// True when `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.dict.contains_key(key)
    }

    fn wrong(&self, key: &str, expected: &'static str, found: &Value) -> FieldError {
        FieldError::WrongType {
            key: self.path_of(key),
            expected,
            found: value_kind(found),
        }
    }

    fn missing(&self, key: &str) -> FieldError {
        FieldError::Missing {
            key: self.path_of(key),
        }
    }

    /// The raw value of `key`, if present.
    pub fn value(&self, key: &str) -> Option<&'a Value> {
        self.dict.get(key)
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(self.wrong(key, "string", other)),
        }
    }

    /// An optional string, owned.
    pub fn opt_string(&self, key: &str) -> Result<Option<String>, FieldError> {
        Ok(self.opt_str(key)?.map(str::to_owned))
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<String, FieldError> {
        self.opt_string(key)?.ok_or_else(|| self.missing(key))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "boolean", other)),
        }
    }

    /// An optional signed integer.
    pub fn opt_i64(&self, key: &str) -> Result<Option<i64>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => {
                i.as_signed()
                    .map(Some)
                    .ok_or_else(|| FieldError::InvalidValue {
                        key: self.path_of(key),
                        reason: "integer does not fit in 64 signed bits".to_owned(),
                    })
            }
            Some(other) => Err(self.wrong(key, "integer", other)),
        }
    }

    /// An optional unsigned integer (sizes, counts).
    pub fn opt_u64(&self, key: &str) -> Result<Option<u64>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Integer(i)) => {
                i.as_unsigned()
                    .map(Some)
                    .ok_or_else(|| FieldError::InvalidValue {
                        key: self.path_of(key),
                        reason: "integer is negative".to_owned(),
                    })
            }
            Some(other) => Err(self.wrong(key, "integer", other)),
        }
    }

    /// An optional real; integers are accepted too (devices send capacities either way).
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Real(r)) => Ok(Some(*r)),
            Some(Value::Integer(i)) => Ok(i
                .as_signed()
                .map(|v| v as f64)
                .or_else(|| i.as_unsigned().map(|v| v as f64))),
            Some(other) => Err(self.wrong(key, "real", other)),
        }
    }

    /// Optional data bytes.
    pub fn opt_data(&self, key: &str) -> Result<Option<&'a [u8]>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Data(d)) => Ok(Some(d.as_slice())),
            Some(other) => Err(self.wrong(key, "data", other)),
        }
    }

    /// Required data bytes.
    pub fn data(&self, key: &str) -> Result<&'a [u8], FieldError> {
        self.opt_data(key)?.ok_or_else(|| self.missing(key))
    }

    /// An optional dictionary.
    pub fn opt_dict(&self, key: &str) -> Result<Option<&'a Dictionary>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Dictionary(d)) => Ok(Some(d)),
            Some(other) => Err(self.wrong(key, "dictionary", other)),
        }
    }

    /// A required dictionary.
    pub fn dict(&self, key: &str) -> Result<&'a Dictionary, FieldError> {
        self.opt_dict(key)?.ok_or_else(|| self.missing(key))
    }

    /// An optional array.
    pub fn opt_array(&self, key: &str) -> Result<Option<&'a [Value]>, FieldError> {
        match self.dict.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a.as_slice())),
            Some(other) => Err(self.wrong(key, "array", other)),
        }
    }

    /// An optional array of strings.
    pub fn opt_string_array(&self, key: &str) -> Result<Option<Vec<String>>, FieldError> {
        let Some(items) = self.opt_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(FieldError::WrongType {
                    key: format!("{}[{i}]", self.path_of(key)),
                    expected: "string",
                    found: value_kind(other),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional array of dictionaries, each with its own path (`Key[i]`).
    pub fn opt_dict_array(
        &self,
        key: &str,
    ) -> Result<Option<Vec<(String, &'a Dictionary)>>, FieldError> {
        let Some(items) = self.opt_array(key)? else {
            return Ok(None);
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let path = format!("{}[{i}]", self.path_of(key));
                match v {
                    Value::Dictionary(d) => Ok((path, d)),
                    other => Err(FieldError::WrongType {
                        key: path,
                        expected: "dictionary",
                        found: value_kind(other),
                    }),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional identifier newtype (`Udid`, `Topic`, `CommandUuid`...).
    pub fn opt_id<T>(&self, key: &str) -> Result<Option<T>, FieldError>
    where
        T: TryFrom<String, Error = IdError>,
    {
        self.opt_string(key)?
            .map(|s| {
                T::try_from(s).map_err(|source| FieldError::InvalidId {
                    key: self.path_of(key),
                    source,
                })
            })
            .transpose()
    }

    /// A required identifier newtype.
    pub fn id<T>(&self, key: &str) -> Result<T, FieldError>
    where
        T: TryFrom<String, Error = IdError>,
    {
        self.opt_id(key)?.ok_or_else(|| self.missing(key))
    }

    /// The keys not listed in `known`, with their values: what a typed decoder keeps as `extra`.
    pub fn extra(&self, known: &[&str]) -> Dictionary {
        self.dict
            .iter()
            .filter(|(k, _)| !known.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("S".into(), Value::String("x".into()));
        d.insert("B".into(), Value::Boolean(true));
        d.insert("N".into(), Value::Integer((-3).into()));
        d.insert(
            "A".into(),
            Value::Array(vec![Value::String("a".into()), Value::Boolean(false)]),
        );
        d
    }

    #[test]
    fn errors_name_the_key_and_types() {
        let d = dict();
        let outer = "Command";
        let f = Fields::at(&d, outer);
        assert_eq!(f.string("S").unwrap(), "x");
        assert_eq!(
            f.string("Missing"),
            Err(FieldError::Missing {
                key: "Command.Missing".into()
            })
        );
        assert_eq!(
            f.opt_bool("S"),
            Err(FieldError::WrongType {
                key: "Command.S".into(),
                expected: "boolean",
                found: "string"
            })
        );
        assert!(matches!(
            f.opt_u64("N"),
            Err(FieldError::InvalidValue { .. })
        ));
        assert_eq!(f.opt_i64("N").unwrap(), Some(-3));
        assert_eq!(
            f.opt_string_array("A"),
            Err(FieldError::WrongType {
                key: "Command.A[1]".into(),
                expected: "string",
                found: "boolean"
            })
        );
        let extra = f.extra(&["S", "A"]);
        assert_eq!(extra.len(), 2);
        assert!(extra.contains_key("B") && extra.contains_key("N"));
    }
}

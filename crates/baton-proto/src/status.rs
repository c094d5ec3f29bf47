//! The status a device reports on the command channel, and the ErrorChain of a failed command.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `Status` of a command report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// The device is idle and asks for the next command; no command is being answered.
    Idle,
    /// The command completed.
    Acknowledged,
    /// The command failed; an ErrorChain says why.
    Error,
    /// The command was malformed.
    CommandFormatError,
    /// The device cannot run the command now (e.g. locked); it will ask again later.
    NotNow,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "Idle",
            Status::Acknowledged => "Acknowledged",
            Status::Error => "Error",
            Status::CommandFormatError => "CommandFormatError",
            Status::NotNow => "NotNow",
        }
    }

    /// True for the statuses that end a command: Acknowledged, Error and CommandFormatError.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Acknowledged | Status::Error | Status::CommandFormatError
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `Status` value this crate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Status {0:?}")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, UnknownStatus> {
        Ok(match s {
            "Idle" => Status::Idle,
            "Acknowledged" => Status::Acknowledged,
            "Error" => Status::Error,
            "CommandFormatError" => Status::CommandFormatError,
            "NotNow" => Status::NotNow,
            other => return Err(UnknownStatus(other.to_owned())),
        })
    }
}

/// One item of a report's `ErrorChain`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorChainItem {
    /// `ErrorCode`.
    pub code: i64,
    /// `ErrorDomain`.
    pub domain: String,
    /// `LocalizedDescription`, in the device's language.
    pub localized_description: Option<String>,
    /// `USEnglishDescription`.
    pub us_english_description: Option<String>,
}

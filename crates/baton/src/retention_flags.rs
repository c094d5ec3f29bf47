//! The retention flags of `baton serve` (`--command-retention-days`,
//! `--session-log-retention-days`, `--sign-in-log-retention-days`,
//! `--dead-letter-retention-days`, `--retention-interval`), with their `BATON_*` variables and
//! config-file keys, merged into the server's typed [`RetentionSettings`]. A period of 0 days
//! keeps that history forever.

use std::time::Duration;

use anyhow::bail;
use baton_server::retention::RetentionSettings;
use clap::Args;

/// Longest retention period accepted, in days (100 years: use 0 for "forever").
const MAX_DAYS: u64 = 36_500;

/// Retention settings on the command line.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Days finished commands and their results are kept after the last answer or cancel
    /// (0: forever) [default: 30]. Queued commands are never deleted.
    #[arg(long, env = "BATON_COMMAND_RETENTION_DAYS", value_name = "DAYS")]
    command_retention_days: Option<u64>,
    /// Days ended sessions stay in the session log (0: forever) [default: 180].
    #[arg(long, env = "BATON_SESSION_LOG_RETENTION_DAYS", value_name = "DAYS")]
    session_log_retention_days: Option<u64>,
    /// Days sign-in log entries are kept (0: forever) [default: 365].
    #[arg(long, env = "BATON_SIGN_IN_LOG_RETENTION_DAYS", value_name = "DAYS")]
    sign_in_log_retention_days: Option<u64>,
    /// Days webhook dead letters are kept (0: forever) [default: 30].
    #[arg(long, env = "BATON_DEAD_LETTER_RETENTION_DAYS", value_name = "DAYS")]
    dead_letter_retention_days: Option<u64>,
    /// Seconds between retention passes (60 to 86400) [default: 3600]; one also runs at start.
    #[arg(long, env = "BATON_RETENTION_INTERVAL", value_name = "SECONDS")]
    retention_interval: Option<u64>,
}

/// The same settings from the config file (kebab-case keys `command-retention-days`,
/// `session-log-retention-days`, `sign-in-log-retention-days`, `dead-letter-retention-days`,
/// `retention-interval`).
#[derive(Debug, Default)]
pub struct RetentionFileValues {
    /// `command-retention-days`.
    pub command_retention_days: Option<u64>,
    /// `session-log-retention-days`.
    pub session_log_retention_days: Option<u64>,
    /// `sign-in-log-retention-days`.
    pub sign_in_log_retention_days: Option<u64>,
    /// `dead-letter-retention-days`.
    pub dead_letter_retention_days: Option<u64>,
    /// `retention-interval` (seconds).
    pub retention_interval: Option<u64>,
}

/// A period in days as the server takes it: None for 0 (forever).
fn period(flag: &str, days: u64) -> anyhow::Result<Option<Duration>> {
    if days > MAX_DAYS {
        bail!("--{flag} must be between 0 (forever) and {MAX_DAYS}, got {days}");
    }
    Ok((days > 0).then(|| Duration::from_secs(days * 86_400)))
}

impl RetentionArgs {
    /// Flags and variables over the file over the defaults.
    pub fn into_settings(self, file: RetentionFileValues) -> anyhow::Result<RetentionSettings> {
        let mut settings = RetentionSettings::default();
        let periods = [
            (
                "command-retention-days",
                self.command_retention_days.or(file.command_retention_days),
                &mut settings.commands,
            ),
            (
                "session-log-retention-days",
                self.session_log_retention_days
                    .or(file.session_log_retention_days),
                &mut settings.session_log,
            ),
            (
                "sign-in-log-retention-days",
                self.sign_in_log_retention_days
                    .or(file.sign_in_log_retention_days),
                &mut settings.sign_in_log,
            ),
            (
                "dead-letter-retention-days",
                self.dead_letter_retention_days
                    .or(file.dead_letter_retention_days),
                &mut settings.dead_letters,
            ),
        ];
        for (flag, days, slot) in periods {
            if let Some(days) = days {
                *slot = period(flag, days)?;
            }
        }
        if let Some(secs) = self.retention_interval.or(file.retention_interval) {
            if !(60..=86_400).contains(&secs) {
                bail!("--retention-interval must be between 60 and 86400 seconds, got {secs}");
            }
            settings.interval = Duration::from_secs(secs);
        }
        Ok(settings)
    }
}

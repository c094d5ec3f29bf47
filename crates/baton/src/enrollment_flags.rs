//! The enrollment flags of `baton serve` (`--sign-enrollment-profile`, `--enrollment-push-topic`,
//! `--profile-identifier-prefix`, `--enrollment-challenge-ttl`, `--device-identity-days`,
//! `--identity-renewal-days`, `--identity-renewal-check`, `--identity-expiry-warning-days`), with
//! their `BATON_*` variables, merged into the server's typed [`EnrollmentSettings`].

use std::time::Duration;

use anyhow::bail;
use baton_server::enrollment::EnrollmentSettings;
use clap::Args;

/// Enrollment settings on the command line.
#[derive(Debug, Args)]
pub struct EnrollmentArgs {
    /// Sign the enrollment profile served at /mdm/enroll with the server's TLS certificate.
    #[arg(long, env = "BATON_SIGN_ENROLLMENT_PROFILE", num_args = 0..=1,
        default_missing_value = "true", value_name = "BOOL")]
    sign_enrollment_profile: Option<bool>,
    /// APNs topic for enrollment profiles instead of the uploaded push certificate's.
    #[arg(long, env = "BATON_ENROLLMENT_PUSH_TOPIC", value_name = "TOPIC")]
    enrollment_push_topic: Option<String>,
    /// Prefix of the enrollment profile's identifiers [default: io.baton].
    #[arg(long, env = "BATON_PROFILE_IDENTIFIER_PREFIX", value_name = "PREFIX")]
    profile_identifier_prefix: Option<String>,
    /// Seconds a one-time SCEP challenge in a served profile stays valid [default: 3600].
    #[arg(long, env = "BATON_ENROLLMENT_CHALLENGE_TTL", value_name = "SECONDS")]
    enrollment_challenge_ttl: Option<u64>,
    /// Validity of issued device identity certificates, in days [default: 365].
    #[arg(long, env = "BATON_DEVICE_IDENTITY_DAYS", value_name = "DAYS")]
    device_identity_days: Option<u64>,
    /// Renew device identities expiring within this many days [default: 30].
    #[arg(long, env = "BATON_IDENTITY_RENEWAL_DAYS", value_name = "DAYS")]
    identity_renewal_days: Option<u64>,
    /// Seconds between checks for expiring device identities [default: 3600].
    #[arg(long, env = "BATON_IDENTITY_RENEWAL_CHECK", value_name = "SECONDS")]
    identity_renewal_check: Option<u64>,
    /// Warn about (and count in baton_device_identities_expiring) device identities expiring
    /// within this many days without a completed renewal [default: 7].
    #[arg(long, env = "BATON_IDENTITY_EXPIRY_WARNING_DAYS", value_name = "DAYS")]
    identity_expiry_warning_days: Option<u64>,
}

/// The same settings from the config file (`baton serve --config`).
#[derive(Debug, Default)]
pub struct EnrollmentFileValues {
    pub sign_enrollment_profile: Option<bool>,
    pub enrollment_push_topic: Option<String>,
    pub profile_identifier_prefix: Option<String>,
    pub enrollment_challenge_ttl: Option<u64>,
    pub device_identity_days: Option<u64>,
    pub identity_renewal_days: Option<u64>,
    pub identity_renewal_check: Option<u64>,
    pub identity_expiry_warning_days: Option<u64>,
}

const DAY: u64 = 24 * 3600;

impl EnrollmentArgs {
    /// Fills what the flags and variables left unset from the config file.
    pub fn with_file(self, file: EnrollmentFileValues) -> Self {
        EnrollmentArgs {
            sign_enrollment_profile: self
                .sign_enrollment_profile
                .or(file.sign_enrollment_profile),
            enrollment_push_topic: self.enrollment_push_topic.or(file.enrollment_push_topic),
            profile_identifier_prefix: self
                .profile_identifier_prefix
                .or(file.profile_identifier_prefix),
            enrollment_challenge_ttl: self
                .enrollment_challenge_ttl
                .or(file.enrollment_challenge_ttl),
            device_identity_days: self.device_identity_days.or(file.device_identity_days),
            identity_renewal_days: self.identity_renewal_days.or(file.identity_renewal_days),
            identity_renewal_check: self.identity_renewal_check.or(file.identity_renewal_check),
            identity_expiry_warning_days: self
                .identity_expiry_warning_days
                .or(file.identity_expiry_warning_days),
        }
    }

    /// The settings (defaults for what is not given).
    pub fn into_settings(self) -> anyhow::Result<EnrollmentSettings> {
        let mut s = EnrollmentSettings::default();
        if let Some(sign) = self.sign_enrollment_profile {
            s.sign_profile = sign;
        }
        s.push_topic = self.enrollment_push_topic;
        if let Some(prefix) = self.profile_identifier_prefix {
            if prefix.is_empty() || prefix.contains(char::is_whitespace) {
                bail!("--profile-identifier-prefix must be a non-empty reverse-DNS name");
            }
            s.identifier_prefix = prefix;
        }
        if let Some(secs) = self.enrollment_challenge_ttl {
            s.challenge_ttl = positive(secs, "--enrollment-challenge-ttl")?;
        }
        if let Some(days) = self.device_identity_days {
            s.device_validity = positive(days.saturating_mul(DAY), "--device-identity-days")?;
        }
        if let Some(days) = self.identity_renewal_days {
            s.renewal_window = Duration::from_secs(days.saturating_mul(DAY));
        }
        if let Some(secs) = self.identity_renewal_check {
            s.renewal_check_every = positive(secs, "--identity-renewal-check")?;
        }
        if let Some(days) = self.identity_expiry_warning_days {
            s.expiry_warning = Duration::from_secs(days.saturating_mul(DAY));
        }
        if s.renewal_window >= s.device_validity {
            // Every renewed identity would be due for renewal again at once.
            bail!("--identity-renewal-days must be shorter than --device-identity-days");
        }
        Ok(s)
    }
}

fn positive(secs: u64, flag: &str) -> anyhow::Result<Duration> {
    if secs == 0 {
        bail!("{flag} must be greater than zero");
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        enrollment: EnrollmentArgs,
    }

    fn settings(args: &[&str]) -> anyhow::Result<EnrollmentSettings> {
        let mut argv = vec!["baton"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)?.enrollment.into_settings()
    }

    #[test]
    fn flags_override_the_defaults() {
        let s = settings(&[
            "--sign-enrollment-profile",
            "--device-identity-days",
            "10",
            "--identity-renewal-days",
            "3",
            "--profile-identifier-prefix",
            "com.example.mdm",
            "--identity-expiry-warning-days",
            "2",
        ])
        .unwrap();
        assert_eq!(s.expiry_warning, Duration::from_secs(2 * DAY));
        assert!(s.sign_profile);
        assert_eq!(s.device_validity, Duration::from_secs(10 * DAY));
        assert_eq!(s.renewal_window, Duration::from_secs(3 * DAY));
        assert_eq!(s.identifier_prefix, "com.example.mdm");
        assert_eq!(s.challenge_ttl, EnrollmentSettings::default().challenge_ttl);
    }

    #[test]
    fn zero_durations_are_refused() {
        assert!(settings(&["--device-identity-days", "0"]).is_err());
        assert!(settings(&["--identity-renewal-check", "0"]).is_err());
        assert!(settings(&["--profile-identifier-prefix", ""]).is_err());
    }

    #[test]
    fn a_renewal_window_as_long_as_the_validity_is_refused() {
        assert!(settings(&["--device-identity-days", "30"]).is_err());
        assert!(settings(&["--device-identity-days", "31"]).is_ok());
    }
}

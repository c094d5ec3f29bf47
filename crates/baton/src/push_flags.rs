//! The push flags of `baton serve` (`--push-cert`, `--push-key`, `--push-cert-password`,
//! `--apns-url`, `--apns-ca`, `--repush-interval`), with their `BATON_*` variables and config-file
//! keys, merged into the server's typed [`PushConfig`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use baton_server::push::PushConfig;
use clap::Args;

/// Push settings on the command line.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// APNs push certificate: PEM (certificate and key in one file, or with --push-key) or a
    /// PKCS#12 file. Wins over a certificate uploaded through the API, at start.
    #[arg(long, env = "BATON_PUSH_CERT", value_name = "FILE")]
    push_cert: Option<PathBuf>,
    /// Private key (PEM) of a PEM --push-cert, when it is in its own file.
    #[arg(long, env = "BATON_PUSH_KEY", value_name = "FILE")]
    push_key: Option<PathBuf>,
    /// Password of a PKCS#12 --push-cert.
    #[arg(
        long,
        env = "BATON_PUSH_CERT_PASSWORD",
        value_name = "SECRET",
        hide_env_values = true
    )]
    push_cert_password: Option<String>,
    /// APNs base URL [default: https://api.push.apple.com].
    #[arg(long, env = "BATON_APNS_URL", value_name = "URL")]
    apns_url: Option<String>,
    /// Extra trust root (PEM) for APNs' server certificate, e.g. a mock APNs' CA; repeatable
    /// (comma-separated in BATON_APNS_CA).
    #[arg(long, env = "BATON_APNS_CA", value_name = "PEM", value_delimiter = ',')]
    apns_ca: Vec<PathBuf>,
    /// Seconds between re-pushes of devices that have queued commands and did not check in
    /// after their last push [default: 300].
    #[arg(long, env = "BATON_REPUSH_INTERVAL", value_name = "SECONDS")]
    repush_interval: Option<u64>,
}

/// The same settings from the config file (kebab-case keys `push-cert`, `push-key`,
/// `push-cert-password`, `apns-url`, `apns-ca`, `repush-interval`).
#[derive(Debug, Default)]
pub struct PushFileValues {
    /// `push-cert`.
    pub push_cert: Option<PathBuf>,
    /// `push-key`.
    pub push_key: Option<PathBuf>,
    /// `push-cert-password`.
    pub push_cert_password: Option<String>,
    /// `apns-url`.
    pub apns_url: Option<String>,
    /// `apns-ca`.
    pub apns_ca: Vec<PathBuf>,
    /// `repush-interval` (seconds).
    pub repush_interval: Option<u64>,
}

impl PushArgs {
    /// Flags and variables over the file over the defaults.
    pub fn into_config(self, file: PushFileValues) -> anyhow::Result<PushConfig> {
        let mut config = PushConfig {
            cert_file: self.push_cert.or(file.push_cert),
            key_file: self.push_key.or(file.push_key),
            cert_password: self.push_cert_password.or(file.push_cert_password),
            apns_ca_files: if self.apns_ca.is_empty() {
                file.apns_ca
            } else {
                self.apns_ca
            },
            ..PushConfig::default()
        };
        if let Some(url) = self.apns_url.or(file.apns_url) {
            if !url.starts_with("https://") {
                bail!("--apns-url must be an https:// URL");
            }
            config.apns_url = url.trim_end_matches('/').to_owned();
        }
        if let Some(secs) = self.repush_interval.or(file.repush_interval) {
            if secs == 0 {
                bail!("--repush-interval must be at least 1 second");
            }
            config.repush_interval = Duration::from_secs(secs);
        }
        if config.cert_file.is_none()
            && (config.key_file.is_some() || config.cert_password.is_some())
        {
            bail!("--push-key and --push-cert-password need --push-cert");
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        push: PushArgs,
    }

    fn config(argv: &[&str], file: PushFileValues) -> anyhow::Result<PushConfig> {
        Wrapper::try_parse_from(std::iter::once("serve").chain(argv.iter().copied()))?
            .push
            .into_config(file)
    }

    #[test]
    fn flags_win_over_the_file_and_defaults_apply() {
        let c = config(&[], PushFileValues::default()).unwrap();
        assert_eq!(c, PushConfig::default());
        let c = config(
            &[
                "--push-cert",
                "/flag.p12",
                "--apns-url",
                "https://127.0.0.1:2197/",
                "--repush-interval",
                "30",
            ],
            PushFileValues {
                push_cert: Some("/file.pem".into()),
                push_cert_password: Some("pw".into()),
                apns_ca: vec!["/ca.pem".into()],
                ..PushFileValues::default()
            },
        )
        .unwrap();
        assert_eq!(c.cert_file, Some(PathBuf::from("/flag.p12")));
        assert_eq!(c.cert_password.as_deref(), Some("pw"));
        assert_eq!(c.apns_url, "https://127.0.0.1:2197");
        assert_eq!(c.apns_ca_files, vec![PathBuf::from("/ca.pem")]);
        assert_eq!(c.repush_interval, Duration::from_secs(30));
    }

    #[test]
    fn inconsistent_settings_are_errors() {
        assert!(config(&["--push-key", "/k.pem"], PushFileValues::default()).is_err());
        assert!(config(&["--apns-url", "http://x"], PushFileValues::default()).is_err());
        assert!(config(&["--repush-interval", "0"], PushFileValues::default()).is_err());
    }
}

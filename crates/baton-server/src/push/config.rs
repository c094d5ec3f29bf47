//! Push settings, typed: where the push certificate is, where APNs is, whom to trust for it,
//! and the coalescing and re-push timings. Built by the `baton` binary from flags and
//! `BATON_*` variables.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Default debounce window: enqueues to one channel within it become one push.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(20);
/// Default re-push interval for devices that have not answered a push.
pub const DEFAULT_REPUSH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// How the server pushes.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// The push certificate: PEM (certificate and key in one file, or with [`Self::key_file`]) or
    /// DER PKCS#12. When set it wins over a certificate stored by an upload, at start.
    pub cert_file: Option<PathBuf>,
    /// A separate PEM private key for a PEM [`Self::cert_file`].
    pub key_file: Option<PathBuf>,
    /// The PKCS#12 password. Secret: never logged.
    pub cert_password: Option<String>,
    /// APNs base URL (`https://host[:port]`). Default Apple production.
    pub apns_url: String,
    /// Extra trust roots (PEM files) for APNs' server certificate, e.g. a mock's test CA.
    pub apns_ca_files: Vec<PathBuf>,
    /// Trust the public web PKI for APNs. Default true; off when only `apns_ca_files` count.
    pub apns_public_roots: bool,
    /// Enqueues to one channel within this window become one push.
    pub debounce: Duration,
    /// How often devices with queued commands that have not checked in since their last push are
    /// pushed again.
    pub repush_interval: Duration,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            cert_password: None,
            apns_url: baton_apns::PRODUCTION_URL.to_owned(),
            apns_ca_files: Vec::new(),
            apns_public_roots: true,
            debounce: DEFAULT_DEBOUNCE,
            repush_interval: DEFAULT_REPUSH_INTERVAL,
        }
    }
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field(
                "cert_password",
                &self.cert_password.as_ref().map(|_| "<redacted>"),
            )
            .field("apns_url", &self.apns_url)
            .field("apns_ca_files", &self.apns_ca_files)
            .field("apns_public_roots", &self.apns_public_roots)
            .field("debounce", &self.debounce)
            .field("repush_interval", &self.repush_interval)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let config = PushConfig {
            cert_password: Some("p12-secret".into()),
            ..PushConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("p12-secret"));
        assert!(text.contains("api.push.apple.com"));
    }
}

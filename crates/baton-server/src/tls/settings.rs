//! The listener's TLS settings, set by `baton serve` (`--tls-client-auth`) and by tests (short
//! validities and check intervals to watch a renewal happen).

use std::time::Duration;

use super::ClientAuth;

/// TLS settings of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Whether handshakes ask for a client certificate. Default [`ClientAuth::Off`].
    pub client_auth: ClientAuth,
    /// Validity of the certificates Baton makes for itself (issued by the built-in CA, or
    /// self-signed). Default 397 days, under Apple's 398-day limit. They are renewed when less
    /// than a third of it remains.
    pub certificate_validity: Duration,
    /// How often the served certificate is looked at: renewal due, operator files changed on
    /// disk, expiry warnings. Default 60 s.
    pub check_every: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            client_auth: ClientAuth::Off,
            certificate_validity: Duration::from_secs(397 * 24 * 3600),
            check_every: Duration::from_secs(60),
        }
    }
}

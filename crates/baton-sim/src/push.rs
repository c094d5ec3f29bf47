//! "Push" for simulated devices: read the mock APNs server's records and tell which devices
//! (by push token) were woken since the last look.

use std::collections::BTreeSet;

use baton_apns::mock::MockApns;

/// Remembers how many mock records were already seen.
#[derive(Debug, Default, Clone)]
pub struct PushWatcher {
    seen: usize,
}

impl PushWatcher {
    /// A watcher that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Push tokens (lower-case hex) of pushes the mock accepted (HTTP 200) since the last call.
    pub fn new_tokens(&mut self, mock: &MockApns) -> BTreeSet<String> {
        let records = mock.pushes();
        let fresh = records
            .iter()
            .skip(self.seen)
            .filter(|r| r.status == 200)
            .filter_map(|r| r.token.clone())
            .collect();
        self.seen = records.len();
        fresh
    }
}

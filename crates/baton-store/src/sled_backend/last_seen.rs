//! The last-seen buffer: `touch` notes a time in memory; the buffer is written to the LAST_SEEN
//! tree as one batch when it fills up, when the store flushes, or when asked.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use baton_proto::EnrollmentId;

/// Pending last-seen times.
#[derive(Debug)]
pub(crate) struct LastSeenBuffer {
    pending: Mutex<HashMap<EnrollmentId, u64>>,
    threshold: usize,
}

impl LastSeenBuffer {
    /// A buffer that asks to be written once it holds `threshold` channels.
    pub(crate) fn new(threshold: usize) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            threshold: threshold.max(1),
        }
    }

    /// Notes a time (keeping the newest); returns the whole buffer when it is full.
    pub(crate) fn note(&self, id: &EnrollmentId, ms: u64) -> Option<Vec<(EnrollmentId, u64)>> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match p.get_mut(id) {
            Some(t) => *t = (*t).max(ms),
            None => {
                p.insert(id.clone(), ms);
            }
        }
        (p.len() >= self.threshold).then(|| p.drain().collect())
    }

    /// Takes everything pending.
    pub(crate) fn drain(&self) -> Vec<(EnrollmentId, u64)> {
        let mut p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.drain().collect()
    }

    /// The pending time of a channel.
    pub(crate) fn get(&self, id: &EnrollmentId) -> Option<u64> {
        let p = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        p.get(id).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_newest_and_drains_when_full() {
        let b = LastSeenBuffer::new(2);
        let a = EnrollmentId::device("a").unwrap();
        assert!(b.note(&a, 10).is_none());
        assert!(b.note(&a, 5).is_none());
        assert_eq!(b.get(&a), Some(10));
        let full = b.note(&EnrollmentId::device("b").unwrap(), 1).unwrap();
        assert_eq!(full.len(), 2);
        assert!(b.drain().is_empty());
    }
}

//! Group commit: concurrent callers share one fsync.
//!
//! A caller first applies its write (in memory), then takes a write generation and waits until
//! a flush that started after that generation has finished. One waiter at a time is the leader
//! and calls `flush`; every waiter whose generation the flush covers returns with it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

use crate::StoreResult;

/// Counters for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurabilityStats {
    /// Writes acknowledged as durable.
    pub commits: u64,
    /// fsyncs performed for them.
    pub flushes: u64,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Every generation up to this one is on disk.
    flushed: u64,
    /// A leader is flushing now.
    leader: bool,
}

/// Shares fsyncs between concurrent committers.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    written: AtomicU64,
    flushes: AtomicU64,
    state: Mutex<FlushState>,
    done: Condvar,
}

impl GroupCommit {
    /// Returns once every write the caller applied before calling is durable.
    pub(crate) fn commit(&self, flush: impl Fn() -> StoreResult<()>) -> StoreResult<()> {
        // The caller's write happened before this increment, so any flush that begins after a
        // leader reads `written >= mine` covers it.
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if st.flushed >= mine {
                return Ok(());
            }
            if st.leader {
                st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leader = true;
            drop(st);
            let target = self.written.load(Ordering::SeqCst);
            let result = flush();
            self.flushes.fetch_add(1, Ordering::Relaxed);
            st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.leader = false;
            if result.is_ok() && target > st.flushed {
                st.flushed = target;
            }
            self.done.notify_all();
            // On error the waiters retry as leaders themselves; this caller reports the error.
            result?;
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> DurabilityStats {
        DurabilityStats {
            commits: self.written.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn concurrent_commits_share_flushes_and_all_return_covered() {
        let gc = Arc::new(GroupCommit::default());
        // "Disk": the value of `memory` at the last flush.
        let memory = Arc::new(AtomicU64::new(0));
        let disk = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, memory, disk) = (gc.clone(), memory.clone(), disk.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let mine = memory.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.commit(|| {
                            let m = memory.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            disk.fetch_max(m, Ordering::SeqCst);
                            Ok(())
                        })
                        .unwrap();
                        // Durable means: the disk holds at least our write.
                        assert!(disk.load(Ordering::SeqCst) >= mine);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = gc.stats();
        assert_eq!(stats.commits, 1600);
        assert!(stats.flushes < stats.commits, "{stats:?}");
    }
}

//! Group commit: concurrent callers share one fsync, and nobody waits for it forever.
//!
//! A caller first applies its write (in memory), then takes a write generation and waits until
//! a flush that started after that generation has finished. When no flush is running, the
//! caller starts one on a thread of its own and every waiter whose generation it covers
//! returns with it. Each caller waits at most the commit timeout: a flush that hangs (sled
//! stuck on a full disk, a dead device) turns into [`StoreError::CommitTimeout`] for its
//! waiters instead of a blocked thread, and the next caller after the stuck flush returns starts
//! a fresh one, so the store heals without a restart once the flush can finish again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use crate::{StoreError, StoreResult};

/// Counters for reports and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurabilityStats {
    /// Writes acknowledged as durable.
    pub commits: u64,
    /// fsyncs performed for them.
    pub flushes: u64,
    /// Commits that gave up waiting for a flush ([`StoreError::CommitTimeout`]).
    pub timeouts: u64,
}

#[derive(Debug, Default)]
struct FlushState {
    /// Every generation up to this one is on disk.
    flushed: u64,
    /// A flush is running now.
    flushing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    written: AtomicU64,
    flushes: AtomicU64,
    timeouts: AtomicU64,
    state: Mutex<FlushState>,
    done: Condvar,
}

/// Shares fsyncs between concurrent committers.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

impl GroupCommit {
    /// Returns once every write the caller applied before calling is durable, or with
    /// [`StoreError::CommitTimeout`] after `timeout` (the write may still become durable later).
    pub(crate) fn commit<F>(&self, flush: F, timeout: Duration) -> StoreResult<()>
    where
        F: FnOnce() -> StoreResult<()> + Send + 'static,
    {
        let sh = &self.shared;
        // The caller's write happened before this increment, so any flush that begins after a
        // starter reads `written >= mine` covers it.
        let mine = sh.written.fetch_add(1, Ordering::SeqCst) + 1;
        let deadline = Instant::now() + timeout;
        let mut flush = Some(flush);
        // The outcome of the flush this caller started, if any.
        let mut started: Option<mpsc::Receiver<StoreResult<()>>> = None;
        let mut st = sh.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if st.flushed >= mine {
                return Ok(());
            }
            if let Some(rx) = &started
                && let Ok(result) = rx.try_recv()
            {
                // On error the other waiters start a flush of their own; this caller reports
                // the error.
                result?;
                started = None;
                continue;
            }
            if !st.flushing {
                // Only a caller that has not started a flush yet can start one: a caller whose
                // own flush succeeded is covered (it began after the caller's write), one whose
                // flush failed has returned the error above.
                if let Some(f) = flush.take() {
                    st.flushing = true;
                    drop(st);
                    started = Some(self.start_flush(f)?);
                    st = sh.state.lock().unwrap_or_else(PoisonError::into_inner);
                    continue;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                sh.timeouts.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::CommitTimeout { waited: timeout });
            }
            st = sh
                .done
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `flush` on its own thread; its outcome arrives on the returned channel (sent while
    /// the state lock is held, before waiters are woken).
    fn start_flush<F>(&self, flush: F) -> StoreResult<mpsc::Receiver<StoreResult<()>>>
    where
        F: FnOnce() -> StoreResult<()> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        let (tx, rx) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("baton-store-flush".into())
            .spawn(move || {
                let target = shared.written.load(Ordering::SeqCst);
                let result = flush();
                shared.flushes.fetch_add(1, Ordering::Relaxed);
                let mut st = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                st.flushing = false;
                if result.is_ok() && target > st.flushed {
                    st.flushed = target;
                }
                // The starter may have timed out and gone: nobody to tell then.
                let _ = tx.send(result);
                drop(st);
                shared.done.notify_all();
            });
        if let Err(e) = spawned {
            let mut st = self
                .shared
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            st.flushing = false;
            drop(st);
            self.shared.done.notify_all();
            return Err(StoreError::Io(e));
        }
        Ok(rx)
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> DurabilityStats {
        DurabilityStats {
            commits: self.shared.written.load(Ordering::Relaxed),
            flushes: self.shared.flushes.load(Ordering::Relaxed),
            timeouts: self.shared.timeouts.load(Ordering::Relaxed),
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
                        let (memory, disk2) = (memory.clone(), disk.clone());
                        gc.commit(
                            move || {
                                let m = memory.load(Ordering::SeqCst);
                                std::thread::sleep(Duration::from_micros(200));
                                disk2.fetch_max(m, Ordering::SeqCst);
                                Ok(())
                            },
                            Duration::from_secs(10),
                        )
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

    #[test]
    fn a_stuck_flush_times_out_and_the_next_commit_heals() {
        let gc = GroupCommit::default();
        let (release, stuck) = mpsc::channel::<()>();
        let started = Instant::now();
        let err = gc
            .commit(
                move || {
                    // A flush that hangs until the "disk" comes back.
                    let _ = stuck.recv();
                    Ok(())
                },
                Duration::from_millis(100),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::CommitTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // While it is still stuck, others time out too instead of blocking.
        let err = gc.commit(|| Ok(()), Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, StoreError::CommitTimeout { .. }), "{err}");
        assert_eq!(gc.stats().timeouts, 2);
        // The disk comes back: the stuck flush ends and a new commit gets its own flush.
        release.send(()).unwrap();
        gc.commit(|| Ok(()), Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_failed_flush_is_reported_and_the_next_one_retries() {
        let gc = GroupCommit::default();
        let err = gc
            .commit(
                || Err(StoreError::Io(std::io::Error::other("no space"))),
                Duration::from_secs(5),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err}");
        gc.commit(|| Ok(()), Duration::from_secs(5)).unwrap();
    }
}

//! What bounds a connection: how many may be open at once, how long a client may take to send a
//! request's headers, and how long a connection may go without a byte read or written (an idle
//! keep-alive connection, a stalled body, a client that stopped reading). Without these, about
//! 1,100 idle TCP connections used up the file descriptors and `/healthz` stopped answering.
//!
//! [`ConnectionCounters`] are read by the metrics (`baton_connections_open`,
//! `baton_connections_refused_total`). [`raise_file_limit`] lifts the soft descriptor limit to the
//! hard one at start, so the cap, not the kernel, is what refuses connections.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Limits applied to every connection of a listener.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections open at once; a connection accepted beyond it is closed at once and counted.
    pub max_connections: usize,
    /// Time a client has to send a request's complete headers (HTTP/1.1), from its first byte
    /// or, on a keep-alive connection, from the end of the previous response.
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed: an idle keep-alive
    /// connection, a half-sent body, a client that stopped reading its answer.
    pub idle_timeout: Duration,
    /// Counters the metrics read.
    pub counters: Arc<ConnectionCounters>,
}

impl ConnectionLimits {
    /// Defaults: 10,000 connections (lowered to 80% of the file descriptor limit when that is
    /// smaller), 10 s for headers, 60 s idle.
    pub fn with_counters(counters: Arc<ConnectionCounters>) -> Self {
        Self {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            counters,
        }
    }

    /// Lowers `max_connections` to 80% of `file_limit` (leaving room for the store, logs and
    /// outgoing connections).
    pub fn fit_file_limit(mut self, file_limit: u64) -> Self {
        let fit = usize::try_from(file_limit.saturating_mul(4) / 5).unwrap_or(usize::MAX);
        self.max_connections = self.max_connections.min(fit.max(16));
        self
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::with_counters(Arc::new(ConnectionCounters::default()))
    }
}

/// Live connection counts.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    open: AtomicI64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnectionCounters {
    /// Connections open now.
    pub fn open(&self) -> i64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections closed at accept because the cap was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections closed because they were idle or sent their headers too slowly.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Takes a slot if fewer than `max` are open; the slot is released when the guard drops.
    pub(crate) fn try_open(self: &Arc<Self>, max: usize) -> Option<OpenConnection> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let previous = self.open.fetch_add(1, Ordering::AcqRel);
        if previous >= max {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(OpenConnection {
            counters: Arc::clone(self),
        })
    }

    pub(crate) fn count_timeout(&self) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// One open connection's slot.
#[derive(Debug)]
pub(crate) struct OpenConnection {
    counters: Arc<ConnectionCounters>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream that remembers when it last moved a byte.
#[derive(Debug)]
pub(crate) struct ActivityStream<S> {
    inner: S,
    activity: Arc<Activity>,
}

/// The last time a byte was read or written, in milliseconds since `start`.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection becomes idle for `timeout` if nothing moves before.
    pub(crate) fn deadline(&self, timeout: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + timeout
    }
}

impl<S> ActivityStream<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ActivityStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ActivityStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    // Forwarded so that hyper keeps writing a response's head and body with one `writev` (without
    // these, it copies both into one buffer first, as for a stream that cannot gather).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft limit on open file descriptors to the hard limit; returns (soft, hard) after.
pub fn raise_file_limit() -> std::io::Result<(u64, u64)> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (soft, hard) = (limit.current, limit.maximum);
    if soft.is_some() && soft != hard {
        let raised = rustix::process::Rlimit {
            current: hard,
            maximum: hard,
        };
        setrlimit(Resource::Nofile, raised).map_err(std::io::Error::from)?;
    }
    let after = getrlimit(Resource::Nofile);
    Ok((
        after.current.unwrap_or(u64::MAX),
        after.maximum.unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_refuses_and_releases() {
        let counters = Arc::new(ConnectionCounters::default());
        let a = counters.try_open(2).unwrap();
        let _b = counters.try_open(2).unwrap();
        assert!(counters.try_open(2).is_none());
        assert_eq!((counters.open(), counters.refused()), (2, 1));
        drop(a);
        assert!(counters.try_open(2).is_some());
        assert_eq!(counters.open(), 1);
    }

    #[test]
    fn the_file_limit_lowers_the_cap() {
        let limits = ConnectionLimits::default().fit_file_limit(1024);
        assert_eq!(limits.max_connections, 819);
        let limits = ConnectionLimits::default().fit_file_limit(1 << 20);
        assert_eq!(limits.max_connections, 10_000);
    }

    #[test]
    fn the_file_limit_is_raised_to_the_hard_limit() {
        let (soft, hard) = raise_file_limit().unwrap();
        assert_eq!(soft, hard);
    }
}

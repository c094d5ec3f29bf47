//! The free-space floor: below it the server refuses writes before the disk is actually full.
//!
//! sled 0.34 does not recover from a write that failed with ENOSPC (its log and flusher can stay
//! stuck until the process restarts: docs/decisions/0012-full-disk.md), so the server must never
//! let the store reach a full disk. [`DiskFloor`] reads the data directory's filesystem with
//! `statvfs`, at most once a second, and [`refusal`] (run by [`crate::gate`]) answers every request
//! that may write (anything but GET, HEAD and OPTIONS) with 503 (devices, portal: never 401,
//! which makes iOS unenroll) or 507 (admin API) while the free space is below the floor. Reads
//! keep working. When space returns the next reading passes and writes are taken again.
//!
//! Not here: the store's own bounded wait for a flush (`StoreError::CommitTimeout`), and the
//! write probe of `/healthz` and `/readyz` (`crate::app`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The default floor: 256 MiB, or 5% of the filesystem when that is smaller.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 * 1024 * 1024;

/// How long a reading is reused.
const READING_TTL: Duration = Duration::from_secs(1);

/// How much free space the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MinFreeDisk {
    /// [`DEFAULT_MIN_FREE_BYTES`], or 5% of the filesystem when that is smaller.
    #[default]
    Default,
    /// Exactly this many bytes (0 turns the floor off).
    Bytes(u64),
}

impl MinFreeDisk {
    /// The floor in bytes on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFreeDisk::Default => DEFAULT_MIN_FREE_BYTES.min(total / 20),
            MinFreeDisk::Bytes(b) => b,
        }
    }
}

/// One look at the filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceReading {
    /// Bytes an unprivileged writer may still use.
    pub free: u64,
    /// The filesystem's size.
    pub total: u64,
}

/// Why writes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LowSpace {
    /// Free space is below the floor.
    #[error("free disk space {free} bytes is below the floor of {floor} bytes")]
    BelowFloor {
        /// Free bytes.
        free: u64,
        /// The floor.
        floor: u64,
    },
    /// The filesystem could not be read.
    #[error("cannot read free disk space: {0}")]
    Unreadable(String),
}

/// The verdict on one reading (the pure core).
pub fn verdict(reading: SpaceReading, setting: MinFreeDisk) -> Result<(), LowSpace> {
    let floor = setting.bytes(reading.total);
    if reading.free < floor {
        Err(LowSpace::BelowFloor {
            free: reading.free,
            floor,
        })
    } else {
        Ok(())
    }
}

/// The floor on the data directory, with its cached reading. Every write request checks it, so
/// the cached reading is kept in atomics: a check is a few relaxed loads, and once a second the
/// one caller that wins the compare-and-swap on the reading's time reads the filesystem again.
#[derive(Debug)]
pub struct DiskFloor {
    dir: PathBuf,
    setting: MinFreeDisk,
    /// The instant milliseconds are counted from.
    started: Instant,
    /// When the cached reading was taken, in milliseconds since `started`.
    read_at_ms: AtomicU64,
    free: AtomicU64,
    total: AtomicU64,
    /// The last reading failed; its text is in `error`.
    unreadable: AtomicBool,
    /// Only locked when a reading fails or a failed reading is reported.
    error: Mutex<String>,
}

impl DiskFloor {
    /// A floor for the filesystem holding `dir` (read once now).
    pub fn new(dir: impl Into<PathBuf>, setting: MinFreeDisk) -> Self {
        let floor = Self {
            dir: dir.into(),
            setting,
            started: Instant::now(),
            read_at_ms: AtomicU64::new(0),
            free: AtomicU64::new(0),
            total: AtomicU64::new(0),
            unreadable: AtomicBool::new(false),
            error: Mutex::new(String::new()),
        };
        if setting != MinFreeDisk::Bytes(0) {
            floor.refresh();
        }
        floor
    }

    /// Ok while free space is at or above the floor (reading at most once a second).
    pub fn check(&self) -> Result<(), LowSpace> {
        if self.setting == MinFreeDisk::Bytes(0) {
            return Ok(());
        }
        let now = self.elapsed_ms();
        let read_at = self.read_at_ms.load(Ordering::Acquire);
        let ttl = u64::try_from(READING_TTL.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(read_at) >= ttl
            && self
                .read_at_ms
                .compare_exchange(read_at, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.refresh();
        }
        if self.unreadable.load(Ordering::Acquire) {
            let text = self
                .error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            return Err(LowSpace::Unreadable(text));
        }
        verdict(
            SpaceReading {
                free: self.free.load(Ordering::Relaxed),
                total: self.total.load(Ordering::Relaxed),
            },
            self.setting,
        )
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Reads the filesystem and stores the result.
    fn refresh(&self) {
        match read_space(&self.dir) {
            Ok(reading) => {
                self.free.store(reading.free, Ordering::Relaxed);
                self.total.store(reading.total, Ordering::Relaxed);
                self.unreadable.store(false, Ordering::Release);
            }
            Err(error) => {
                *self.error.lock().unwrap_or_else(PoisonError::into_inner) = error.to_string();
                self.unreadable.store(true, Ordering::Release);
            }
        }
    }
}

fn read_space(dir: &Path) -> std::io::Result<SpaceReading> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(SpaceReading {
        free: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// The refusal for a request that may write while free space is below the floor (507 with JSON
/// on the admin API, 503 with `Retry-After` elsewhere, so a device retries and never unenrolls);
/// `None` lets it through. Run by [`crate::gate`].
pub fn refusal(floor: &DiskFloor, request: &Request) -> Option<Response> {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return None;
    }
    let Err(low) = floor.check() else {
        return None;
    };
    let path = request.uri().path();
    tracing::warn!(path, reason = %low, "write refused: low disk space");
    Some(if path.starts_with("/api/") {
        (
            StatusCode::INSUFFICIENT_STORAGE,
            Json(serde_json::json!({
                "error": "insufficient_storage",
                "message": format!("writes are refused until space is freed: {low}"),
            })),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("text/plain")),
                (header::RETRY_AFTER, HeaderValue::from_static("60")),
            ],
            "storage_unavailable\n",
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn default_floor_is_256_mib_or_5_percent() {
        assert_eq!(MinFreeDisk::Default.bytes(100 * 1024 * MIB), 256 * MIB);
        assert_eq!(MinFreeDisk::Default.bytes(20 * MIB), MIB);
        assert_eq!(MinFreeDisk::Bytes(4 * MIB).bytes(20 * MIB), 4 * MIB);
    }

    #[test]
    fn below_the_floor_is_refused() {
        let r = |free| SpaceReading {
            free,
            total: 24 * MIB,
        };
        assert!(verdict(r(5 * MIB), MinFreeDisk::Bytes(4 * MIB)).is_ok());
        assert_eq!(
            verdict(r(3 * MIB), MinFreeDisk::Bytes(4 * MIB)),
            Err(LowSpace::BelowFloor {
                free: 3 * MIB,
                floor: 4 * MIB
            })
        );
        assert!(verdict(r(0), MinFreeDisk::Bytes(0)).is_ok());
    }

    #[test]
    fn reads_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            DiskFloor::new(dir.path(), MinFreeDisk::Bytes(1))
                .check()
                .is_ok()
        );
        assert!(matches!(
            DiskFloor::new(dir.path(), MinFreeDisk::Bytes(u64::MAX)).check(),
            Err(LowSpace::BelowFloor { .. })
        ));
        assert!(matches!(
            DiskFloor::new(dir.path().join("missing"), MinFreeDisk::Bytes(1)).check(),
            Err(LowSpace::Unreadable(_))
        ));
    }
}

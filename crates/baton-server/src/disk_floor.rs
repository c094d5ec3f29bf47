//! The free-space floor: below it the server refuses writes before the disk is actually full.
//!
//! sled 0.34 does not recover from a write that failed with ENOSPC (its log and flusher can stay
//! stuck until the process restarts: docs/decisions/0012-full-disk.md), so the server must never
//! let the store reach a full disk. [`DiskFloor`] reads the data directory's filesystem with
//! `statvfs`, at most once a second, and [`refuse_writes_below_floor`] answers every request
//! that may write (anything but GET, HEAD and OPTIONS) with 503 (devices, portal: never 401,
//! which makes iOS unenroll) or 507 (admin API) while the free space is below the floor. Reads
//! keep working. When space returns the next reading passes and writes are taken again.
//!
//! Not here: the store's own bounded wait for a flush (`StoreError::CommitTimeout`), and the
//! write probe of `/healthz` and `/readyz` (`crate::app`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

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

/// The floor on the data directory, with its cached reading.
#[derive(Debug)]
pub struct DiskFloor {
    dir: PathBuf,
    setting: MinFreeDisk,
    cached: Mutex<Option<(Instant, Result<SpaceReading, String>)>>,
}

impl DiskFloor {
    /// A floor for the filesystem holding `dir`.
    pub fn new(dir: impl Into<PathBuf>, setting: MinFreeDisk) -> Self {
        Self {
            dir: dir.into(),
            setting,
            cached: Mutex::new(None),
        }
    }

    /// Ok while free space is at or above the floor (reading at most once a second).
    pub fn check(&self) -> Result<(), LowSpace> {
        if self.setting == MinFreeDisk::Bytes(0) {
            return Ok(());
        }
        let now = Instant::now();
        let reading = {
            let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
            match &*cached {
                Some((at, r)) if now.duration_since(*at) < READING_TTL => r.clone(),
                _ => {
                    let r = read_space(&self.dir).map_err(|e| e.to_string());
                    *cached = Some((now, r.clone()));
                    r
                }
            }
        };
        verdict(reading.map_err(LowSpace::Unreadable)?, self.setting)
    }
}

fn read_space(dir: &Path) -> std::io::Result<SpaceReading> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(SpaceReading {
        free: s.f_bavail.saturating_mul(s.f_frsize),
        total: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// Middleware: refuses requests that may write while free space is below the floor.
pub async fn refuse_writes_below_floor(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return next.run(request).await;
    }
    let Err(low) = state.disk_floor.check() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    tracing::warn!(path, reason = %low, "write refused: low disk space");
    if path.starts_with("/api/") {
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
    }
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

//! The fsync behind every durable write.
//!
//! `sled::Db::flush` (0.34) writes the log with `sync_file_range` on Linux, which pushes dirty
//! pages to the device but neither flushes the device's write cache nor persists a grown file
//! size; a real fsync only happens in sled's background flusher. Values too big for a log
//! segment go to files under `blobs/`, which sled never syncs. So after `Db::flush` the group
//! commit leader also calls `fdatasync` on the log file and, when the `blobs` directory changed,
//! on the new blob files and the directory.
//!
//! Temporary stores (tests) skip this: they do not outlive the process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use crate::StoreResult;

/// fsyncs the files sled's flush leaves unsynced.
#[derive(Debug)]
pub(crate) struct DiskSync {
    log: Option<File>,
    blobs_dir: Option<PathBuf>,
    /// The `blobs` directory's mtime at the last sync of its files.
    blobs_synced: Mutex<Option<SystemTime>>,
}

impl DiskSync {
    /// For the store in `dir`; None for a temporary store.
    pub(crate) fn open(dir: Option<&Path>) -> StoreResult<Self> {
        let Some(dir) = dir else {
            return Ok(Self {
                log: None,
                blobs_dir: None,
                blobs_synced: Mutex::new(None),
            });
        };
        let blobs_dir = dir.join("blobs");
        let blobs_synced = std::fs::metadata(&blobs_dir)
            .and_then(|m| m.modified())
            .ok();
        Ok(Self {
            log: Some(File::open(dir.join("db"))?),
            blobs_dir: Some(blobs_dir),
            blobs_synced: Mutex::new(blobs_synced),
        })
    }

    /// Makes everything sled has written so far durable; call right after `Db::flush`.
    pub(crate) fn sync(&self) -> StoreResult<()> {
        if let Some(dir) = &self.blobs_dir {
            self.sync_new_blobs(dir)?;
        }
        if let Some(log) = &self.log {
            log.sync_data()?;
        }
        Ok(())
    }

    fn sync_new_blobs(&self, dir: &Path) -> StoreResult<()> {
        let Ok(modified) = std::fs::metadata(dir).and_then(|m| m.modified()) else {
            return Ok(()); // no blob written yet
        };
        let mut synced = self
            .blobs_synced
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *synced == Some(modified) {
            return Ok(());
        }
        let since = *synced;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            // sled deletes the blob of a removed or replaced value at any time: a blob that is
            // gone between the listing and its fsync needs none.
            let synced = entry.metadata().and_then(|m| {
                if m.is_file() && since.is_none_or(|s| m.modified().is_ok_and(|t| t >= s)) {
                    File::open(entry.path())?.sync_all()?;
                }
                Ok(())
            });
            match synced {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
        File::open(dir)?.sync_all()?;
        *synced = Some(modified);
        Ok(())
    }
}

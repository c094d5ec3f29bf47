//! The data directory's lock: one `baton serve` (or `baton backup` / `baton restore`) at a time.
//!
//! `<data>/baton.lock` is held with an exclusive advisory lock (`flock`) for as long as the
//! process runs; the operating system releases it when the process ends, however it ends, so a
//! crash never leaves a stale lock behind. The file holds the holder's pid and role, for the
//! message a second process prints instead of waiting on the database.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// File name of the lock inside the data directory.
pub const LOCK_FILE: &str = "baton.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "the data directory {dir} is in use by another Baton process ({holder}); stop it first, \
         or give this one its own --data directory"
    )]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataLock {
    file: File,
}

impl DataLock {
    /// Takes the lock of `dir` (which must exist) without waiting; `role` says who holds it
    /// (`baton serve`, `baton backup`, ...).
    pub fn acquire(dir: &Path, role: &str) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "unknown process".to_owned(),
                    t => t.to_owned(),
                };
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{role}, pid {}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DataLock { file })
    }
}

impl Drop for DataLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holder_named() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataLock::acquire(dir.path(), "baton serve").unwrap();
        let error = DataLock::acquire(dir.path(), "baton backup").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("baton serve, pid"), "{text}");
        assert!(text.contains("in use by another Baton process"), "{text}");
        drop(first);
        DataLock::acquire(dir.path(), "baton backup").unwrap();
    }
}

//! An exclusive lock on a file that the kernel releases when its process ends (crash and
//! `kill -9` included), so a stale lock never needs cleaning up: `flock(2)` through rustix
//! (std's `File::try_lock` needs a newer Rust than the workspace's minimum).

use std::fs::File;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::error::{IoContext, PipelineError, Result};

/// The open, locked file; dropping it (or the process ending) releases the lock.
pub struct FileLock {
    _file: File,
    pub path: PathBuf,
}

impl FileLock {
    /// Creates `path` if needed and locks it, or fails at once with
    /// [`PipelineError::Locked`] when another process holds it.
    pub fn try_acquire(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).at(dir)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .at(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self {
                _file: file,
                path: path.to_path_buf(),
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(PipelineError::Locked(path.to_path_buf())),
            Err(e) => Err(std::io::Error::from(e)).at(path),
        }
    }
}

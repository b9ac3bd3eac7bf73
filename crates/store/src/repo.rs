//! Finding the repository: the folder that holds `.dvc/` (DVC's), and taxon's own `.taxon/`.

use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// A DVC-compatible repository rooted at `root`.
#[derive(Clone, Debug)]
pub struct Repo {
    /// The folder that holds `.dvc/`.
    pub root: PathBuf,
}

impl Repo {
    /// Walks up from `start` to the first folder holding `.dvc/`.
    pub fn discover(start: &Path) -> Result<Self> {
        let start = std::path::absolute(start).map_err(|source| StoreError::Io {
            path: start.to_path_buf(),
            source,
        })?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join(".dvc").is_dir() {
                return Ok(Self {
                    root: d.to_path_buf(),
                });
            }
            dir = d.parent();
        }
        Err(StoreError::NotARepo(start))
    }

    /// `.dvc/` itself.
    pub fn dvc_dir(&self) -> PathBuf {
        self.root.join(".dvc")
    }

    /// The content-addressed cache root (DVC 3 default: `.dvc/cache`).
    pub fn cache_dir(&self) -> PathBuf {
        self.dvc_dir().join("cache")
    }

    /// taxon's own metadata (version records, taxon-only remote options): `.taxon/`.
    pub fn taxon_dir(&self) -> PathBuf {
        self.root.join(".taxon")
    }
}

//! Finding the repository: the folder that holds `.dvc/` (DVC's), and taxon's own `.taxon/`.

use std::path::{Path, PathBuf};

use crate::error::{Result, VersionError};

/// A DVC-compatible repository rooted at `root`.
#[derive(Clone, Debug)]
pub struct Repo {
    /// The folder that holds `.dvc/`.
    pub root: PathBuf,
}

impl Repo {
    /// Walks up from `start` to the first folder holding `.dvc/`.
    pub fn discover(start: &Path) -> Result<Self> {
        let start = std::path::absolute(start).map_err(|source| VersionError::Io {
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
        Err(VersionError::NotARepo(start))
    }

    /// Makes `dir` a repository, as `dvc init --no-scm` does (`.dvc/config` with
    /// `no_scm = True`, `.dvc/.gitignore`, `.dvcignore`), plus taxon's `.taxon/`. An existing
    /// `.dvc/` is kept as it is. Returns the repository and whether `.dvc/` was created.
    pub fn init(dir: &Path) -> Result<(Self, bool)> {
        use crate::error::IoContext;
        let root = std::path::absolute(dir).at(dir)?;
        let dvc = root.join(".dvc");
        let created = !dvc.is_dir();
        if created {
            std::fs::create_dir_all(dvc.join("tmp")).at(&dvc)?;
            let write = |p: PathBuf, text: &str| std::fs::write(&p, text).at(&p);
            write(dvc.join("config"), "[core]\n    no_scm = True\n")?;
            write(dvc.join(".gitignore"), "/config.local\n/tmp\n/cache\n")?;
            let ignore = root.join(".dvcignore");
            if !ignore.exists() {
                write(
                    ignore,
                    "# Add patterns of files dvc should ignore, which could improve\n\
                     # the performance. Learn more at\n\
                     # https://dvc.org/doc/user-guide/dvcignore\n",
                )?;
            }
        }
        let taxon = root.join(".taxon");
        std::fs::create_dir_all(&taxon).at(&taxon)?;
        Ok((Self { root }, created))
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

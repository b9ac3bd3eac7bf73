//! `taxon data status`: compare each tracked path in the workspace with its `.dvc` file and
//! the cache. Unchanged files are not re-hashed (the state file remembers inode, mtime, size).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cache::Cache;
use crate::dvcfile::DvcFile;
use crate::error::Result;
use crate::repo::Repo;
use crate::workspace::{hash_path, state_for};

/// How a tracked path compares with its `.dvc` file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The workspace matches the `.dvc` file and the cache holds it.
    UpToDate,
    /// The workspace content differs from the `.dvc` file.
    Modified,
    /// The tracked path is gone from the workspace.
    Deleted,
    /// The workspace matches, but the cache lacks the object(s) (e.g. a fresh clone).
    NotInCache,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::UpToDate => "up to date",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
            Change::NotInCache => "not in cache",
        })
    }
}

/// The status of one tracked output.
#[derive(Clone, Debug, Serialize)]
pub struct PathStatus {
    /// Tracked path, relative to the repository root.
    pub path: String,
    /// Its `.dvc` file, relative to the repository root.
    pub dvc_file: String,
    pub status: Change,
}

fn rel(repo: &Repo, p: &Path) -> String {
    p.strip_prefix(&repo.root)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// True when the cache holds `hash` and, for a folder, every file its manifest lists.
fn fully_cached(cache: &Cache, hash: &taxon_core::Md5Hex) -> bool {
    if !cache.contains(hash) {
        return false;
    }
    if hash.is_dir() {
        return match cache.read_dir_manifest(hash) {
            Ok(entries) => entries.iter().all(|e| cache.contains(&e.md5)),
            Err(_) => false,
        };
    }
    true
}

/// The status of every output of `dvc_files`.
pub fn status(repo: &Repo, dvc_files: &[PathBuf]) -> Result<Vec<PathStatus>> {
    let cache = Cache::new(repo);
    cache.remove_stale_temps();
    let state = state_for(repo);
    let mut out = Vec::new();
    for f in dvc_files {
        let dvc = DvcFile::load(f)?;
        let base = f.parent().unwrap_or(Path::new("."));
        for o in &dvc.outs {
            let target = base.join(&o.path);
            let status = if !target.exists() {
                Change::Deleted
            } else {
                let now = hash_path(None, &state, &target, &|_| {})?;
                if now.md5 != o.md5 {
                    Change::Modified
                } else if !fully_cached(&cache, &o.md5) {
                    Change::NotInCache
                } else {
                    Change::UpToDate
                }
            };
            out.push(PathStatus {
                path: rel(repo, &target),
                dvc_file: rel(repo, f),
                status,
            });
        }
    }
    state.save()?;
    Ok(out)
}

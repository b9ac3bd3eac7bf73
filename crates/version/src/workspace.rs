//! A workspace path (a file or a folder) as DVC 3 hashes it: its md5 (a folder's is the md5 of
//! its `.dir` manifest), through the state file so that unchanged files are not read again, and
//! into the cache or not (`status` only compares). Shared by add, checkout and status.

use std::fs;
use std::path::Path;

use rayon::prelude::*;
use taxon_core::Md5Hex;

use crate::cache::{self, Cache, DirEntry, manifest_bytes};
use crate::error::{IoContext, Result, VersionError};
use crate::hashing::{self, HashState};
use crate::repo::Repo;

/// The content hash of a file or folder as DVC 3 computes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hashed {
    /// md5 of the file, or `<md5 of manifest>.dir` for a folder.
    pub md5: Md5Hex,
    pub size: u64,
    /// Number of files (folders only).
    pub nfiles: Option<u64>,
}

/// `.taxon/state.json`.
pub fn state_for(repo: &Repo) -> HashState {
    HashState::load(repo.taxon_dir().join("state.json"))
}

/// Total bytes under `path` (a file or a folder), for progress bars.
pub fn data_size(path: &Path) -> Result<u64> {
    let meta = fs::metadata(path).at(path)?;
    if meta.is_dir() {
        Ok(hashing::walk_files(path)?.iter().map(|f| f.size).sum())
    } else {
        Ok(meta.len())
    }
}

fn hash_one_file(
    cache: Option<&Cache>,
    state: &HashState,
    path: &Path,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(Md5Hex, u64)> {
    let meta = fs::metadata(path).at(path)?;
    if let Some(h) = state.get(path, &meta) {
        if cache.is_none_or(|c| c.contains(&h)) {
            on_bytes(meta.len());
            return Ok((h, meta.len()));
        }
    }
    let (h, size) = match cache {
        Some(c) => cache::hash_into_cache_sized(c, path, Some(meta.len()), on_bytes)?,
        None => hashing::md5_file_with(path, on_bytes)?,
    };
    // The metadata from before hashing: if the file changed since, the next add re-hashes it.
    state.set_meta(path, &meta, &h);
    Ok((h, size))
}

/// Hashes a file or folder. With a cache, every file (and a folder's manifest) is stored in
/// it; without, only hashes are computed (for `status`). Folder files are hashed in parallel.
pub fn hash_path(
    cache: Option<&Cache>,
    state: &HashState,
    path: &Path,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<Hashed> {
    let meta = fs::metadata(path).at(path)?;
    if !meta.is_dir() {
        let (md5, size) = hash_one_file(cache, state, path, on_bytes)?;
        return Ok(Hashed {
            md5,
            size,
            nfiles: None,
        });
    }
    let files = hashing::walk_files(path)?;
    let entries: Vec<(DirEntry, u64)> = cache::in_fs_pool(|| {
        files
            .par_iter()
            .map(|f| {
                let (md5, size) = hash_one_file(cache, state, &f.path, on_bytes)?;
                Ok((
                    DirEntry {
                        md5,
                        relpath: f.relpath.clone(),
                    },
                    size,
                ))
            })
            .collect::<Result<_>>()
    })?;
    let size = entries.iter().map(|(_, s)| s).sum();
    let entries: Vec<DirEntry> = entries.into_iter().map(|(e, _)| e).collect();
    let md5 = match cache {
        Some(c) => c.insert_manifest(&entries)?,
        None => format!("{}.dir", Md5Hex::of_bytes(&manifest_bytes(&entries)))
            .parse()
            .map_err(|e: taxon_core::hash::InvalidHash| VersionError::Other(e.to_string()))?,
    };
    Ok(Hashed {
        md5,
        size,
        nfiles: Some(entries.len() as u64),
    })
}

//! `taxon data add`: hash a file or folder into the cache, write `PATH.dvc` (and the
//! `.gitignore` entry), and record a version with the data's statistics.

use std::path::Path;

use taxon_core::{DatasetStats, Md5Hex, VersionRecord};

use crate::cache::{self, Cache};
use crate::dvcfile::{self, DvcFile, Out};
use crate::error::{IoContext, Result, VersionError};
use crate::repo::Repo;
use crate::versions;
use crate::workspace::{hash_path, state_for};

/// Tracks `path`: see [`add_with_progress`].
pub fn add(repo: &Repo, path: &Path, message: Option<&str>) -> Result<VersionRecord> {
    add_with_progress(repo, path, message, &|_| {})
}

/// Hashes `path` (a file or folder) into the cache, writes `PATH.dvc` and the `.gitignore`
/// entry, and appends a version record with statistics of every data file taxon can read.
/// Re-adding unchanged data returns the existing record and records nothing new.
pub fn add_with_progress(
    repo: &Repo,
    path: &Path,
    message: Option<&str>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<VersionRecord> {
    let abs = dvcfile::strip_trailing_slash(&std::path::absolute(path).at(path)?);
    let rel = versions::rel_path(repo, &abs)?;
    if rel == ".dvc" || rel.starts_with(".dvc/") || rel == ".taxon" || rel.starts_with(".taxon/") {
        return Err(VersionError::InvalidFile {
            path: abs,
            message: "is taxon/DVC metadata and cannot be tracked".into(),
        });
    }
    if abs.extension().is_some_and(|e| e == "dvc") {
        return Err(VersionError::InvalidFile {
            path: abs,
            message: "is a .dvc pointer file; add the data it points to instead".into(),
        });
    }
    let name = abs
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| VersionError::InvalidFile {
            path: abs.clone(),
            message: "name is not valid UTF-8".into(),
        })?
        .to_string();

    let cache = Cache::new(repo);
    let state = state_for(repo);
    let hashed = hash_path(Some(&cache), &state, &abs, on_bytes)?;
    state.save()?;

    let dvc_path = dvcfile::dvc_path_for(&abs);
    let new = DvcFile {
        outs: vec![Out {
            md5: hashed.md5.clone(),
            size: hashed.size,
            nfiles: hashed.nfiles,
            hash: "md5".into(),
            path: name,
        }],
    };
    let unchanged_pointer = DvcFile::load(&dvc_path).is_ok_and(|old| old == new);
    if !unchanged_pointer {
        new.save(&dvc_path)?;
    }
    dvcfile::ensure_gitignored(repo, &abs)?;

    let history = versions::list_versions(repo, &abs)?;
    if let Some(last) = history.last() {
        if last.id == hashed.md5 {
            return Ok(last.clone());
        }
    }
    let (features, stats) = data_stats(&cache, &hashed.md5, &abs)?;
    let record = VersionRecord {
        id: hashed.md5,
        path: rel,
        created_at: chrono::Utc::now(),
        size: hashed.size,
        nfiles: hashed.nfiles.unwrap_or(1),
        features,
        stats,
        message: message.map(str::to_string),
    };
    versions::append(repo, &record)?;
    Ok(record)
}

/// Columns and statistics of the data files of a version that taxon can read (none for other
/// formats). Bad rows are skipped and counted; labels are optional.
fn data_stats(
    cache: &Cache,
    id: &Md5Hex,
    abs: &Path,
) -> Result<(Vec<String>, Option<DatasetStats>)> {
    let files = cache::data_files_of(cache, id, abs)?;
    if files.is_empty() {
        return Ok((Vec::new(), None));
    }
    let opts = taxon_dataset::ReadOptions {
        on_error: taxon_dataset::OnError::Skip,
        label_required: false,
        ..Default::default()
    };
    let (stats, features) = taxon_dataset::compute_stats(&files, &opts)?;
    Ok((features, Some(stats)))
}

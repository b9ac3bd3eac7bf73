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
    let removed = cache.remove_stale_temps();
    if removed > 0 {
        tracing::info!("removed {removed} temp file(s) a killed taxon process left in .dvc/tmp");
    }
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
    // The version record first, the pointer after it: a process killed in between leaves the
    // old pointer (`data status` says modified, the next add writes it), never a pointer
    // with no record.
    let history = versions::list_versions(repo, &abs)?;
    let record = match history.last() {
        Some(last) if last.id == hashed.md5 => last.clone(),
        _ => {
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
            record
        }
    };
    let unchanged_pointer = DvcFile::load(&dvc_path).is_ok_and(|old| old == new);
    if !unchanged_pointer {
        new.save(&dvc_path)?;
    }
    dvcfile::ensure_gitignored(repo, &abs)?;
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::{Duration, SystemTime};

    use super::*;

    fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        let (repo, _) = Repo::init(dir.path()).unwrap();
        (dir, repo)
    }

    /// A pid that no process has now: a child that has exited (and been reaped).
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn write_aged(path: &Path, age: Duration) {
        fs::write(path, vec![0u8; 4096]).unwrap();
        let file = fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn add_removes_temp_files_of_killed_processes_and_keeps_live_ones() {
        let (dir, repo) = repo();
        let tmp = repo.dvc_dir().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let dead = dead_pid();
        let me = std::process::id();
        let stale = tmp.join(format!("taxon-add-{dead}-123-0"));
        let fresh_dead = tmp.join(format!("taxon-add-{dead}-456-1"));
        let live = tmp.join(format!("taxon-add-{me}-789-2"));
        let ancient = tmp.join(format!("taxon-add-{me}-1-3"));
        let dvc_own = tmp.join("rwlock");
        write_aged(&stale, Duration::from_secs(600));
        write_aged(&fresh_dead, Duration::ZERO);
        write_aged(&live, Duration::from_secs(600));
        write_aged(&ancient, Duration::from_secs(2 * 86_400));
        write_aged(&dvc_own, Duration::from_secs(2 * 86_400));
        fs::write(dir.path().join("data.txt"), "hello\n").unwrap();
        add(&repo, &dir.path().join("data.txt"), None).unwrap();
        assert!(
            !stale.exists(),
            "a killed process's old temp file is removed"
        );
        assert!(!ancient.exists(), "a day-old temp file is removed");
        assert!(fresh_dead.exists(), "a temp file touched just now stays");
        assert!(live.exists(), "a running process's temp file stays");
        assert!(dvc_own.exists(), "DVC's own files stay");
    }

    #[test]
    fn the_pointer_is_written_only_after_its_version_record() {
        let (dir, repo) = repo();
        let data = dir.path().join("data.txt");
        fs::write(&data, "first\n").unwrap();
        let first = add(&repo, &data, None).unwrap();
        let pointer = dvcfile::dvc_path_for(&data);
        let before = fs::read_to_string(&pointer).unwrap();
        // The record cannot be appended (as when killed before it): the pointer stays.
        let records = versions::versions_file(&repo);
        fs::rename(&records, records.with_extension("bak")).unwrap();
        fs::create_dir_all(&records).unwrap();
        fs::write(&data, "second\n").unwrap();
        assert!(add(&repo, &data, None).is_err());
        assert_eq!(fs::read_to_string(&pointer).unwrap(), before);
        fs::remove_dir(&records).unwrap();
        fs::rename(records.with_extension("bak"), &records).unwrap();
        // The next add records the version, then points at it.
        let second = add(&repo, &data, None).unwrap();
        assert_ne!(second.id, first.id);
        assert!(
            fs::read_to_string(&pointer)
                .unwrap()
                .contains(second.id.as_str())
        );
        let ids: Vec<_> = versions::list_versions(&repo, &data)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [first.id, second.id]);
    }
}

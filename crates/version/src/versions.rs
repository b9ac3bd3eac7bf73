//! taxon's version records: one JSON line per version in `.taxon/versions.jsonl`, appended with
//! a single write + fsync. A torn last line (a crash mid-append) is ignored on read and cut off
//! before the next append.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use taxon_core::VersionRecord;

use crate::error::{IoContext, Result, VersionError};
use crate::repo::Repo;

/// `.taxon/versions.jsonl`.
pub fn versions_file(repo: &Repo) -> PathBuf {
    repo.taxon_dir().join("versions.jsonl")
}

/// The repo-relative, `/`-separated form of `path` (as stored in records).
pub fn rel_path(repo: &Repo, path: &Path) -> Result<String> {
    let abs = std::path::absolute(path).at(path)?;
    let abs = crate::dvcfile::strip_trailing_slash(&abs);
    let rel = abs
        .strip_prefix(&repo.root)
        .map_err(|_| VersionError::InvalidFile {
            path: abs.clone(),
            message: format!("is outside the repository {}", repo.root.display()),
        })?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.is_empty() {
        return Err(VersionError::InvalidFile {
            path: abs,
            message: "is the repository root; track a file or folder inside it".into(),
        });
    }
    Ok(parts.join("/"))
}

/// Every record in the file, oldest first.
pub fn read_all(repo: &Repo) -> Result<Vec<VersionRecord>> {
    let path = versions_file(repo);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(&path),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<VersionRecord>(line) {
            Ok(r) => out.push(r),
            // The last line of a file that does not end in '\n' is a torn append: skip it.
            Err(_) if i + 1 == lines.len() && !complete => {}
            Err(e) => {
                return Err(VersionError::InvalidFile {
                    path: PathBuf::from(format!("{}:{}", path.display(), i + 1)),
                    message: format!("not a version record: {e}"),
                });
            }
        }
    }
    Ok(out)
}

/// Appends one record (single write, then fsync).
pub fn append(repo: &Repo, record: &VersionRecord) -> Result<()> {
    let dir = repo.taxon_dir();
    fs::create_dir_all(&dir).at(&dir)?;
    let path = versions_file(repo);
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)
        .at(&path)?;
    // Cut off a torn last line so the new record starts on its own line.
    let bytes = fs::read(&path).at(&path)?;
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        f.set_len(keep as u64).at(&path)?;
    }
    let mut line = serde_json::to_vec(record).map_err(|e| VersionError::Other(format!("{e}")))?;
    line.push(b'\n');
    f.write_all(&line).at(&path)?;
    f.sync_data().at(&path)
}

/// The recorded versions of `path` (a data path, relative to the current folder or absolute),
/// oldest first.
pub fn list_versions(repo: &Repo, path: &Path) -> Result<Vec<VersionRecord>> {
    let rel = rel_path(repo, path)?;
    Ok(read_all(repo)?
        .into_iter()
        .filter(|r| r.path == rel)
        .collect())
}

/// The version of `path` whose id is `id_or_prefix` or starts with it (a unique prefix). When
/// the same content was recorded more than once, the latest record wins.
pub fn resolve(repo: &Repo, path: &Path, id_or_prefix: &str) -> Result<VersionRecord> {
    let rel = rel_path(repo, path)?;
    let mut matches: Vec<VersionRecord> = list_versions(repo, path)?
        .into_iter()
        .filter(|r| r.id.as_str().starts_with(id_or_prefix))
        .collect();
    let mut ids: Vec<String> = matches.iter().map(|r| r.id.to_string()).collect();
    ids.sort();
    ids.dedup();
    match ids.len() {
        0 => Err(VersionError::UnknownVersion {
            path: rel,
            id: id_or_prefix.to_string(),
        }),
        1 if !id_or_prefix.is_empty() => Ok(matches.pop().expect("non-empty")),
        _ => Err(VersionError::AmbiguousVersion {
            path: rel,
            id: id_or_prefix.to_string(),
            candidates: ids,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use taxon_core::Md5Hex;

    fn rec(id: &str, path: &str) -> VersionRecord {
        VersionRecord {
            id: id.parse::<Md5Hex>().unwrap(),
            path: path.into(),
            created_at: chrono::Utc::now(),
            size: 1,
            nfiles: 1,
            features: vec![],
            stats: None,
            message: None,
        }
    }

    #[test]
    fn appends_reads_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join(".dvc")).unwrap();
        let repo = Repo::discover(dir.path()).unwrap();
        append(&repo, &rec("aaaa0000000000000000000000000000", "d.jsonl")).unwrap();
        append(&repo, &rec("aaab0000000000000000000000000000", "d.jsonl")).unwrap();
        append(&repo, &rec("bbbb0000000000000000000000000000", "other")).unwrap();
        // Simulate a crash mid-append.
        let vf = versions_file(&repo);
        let mut f = OpenOptions::new().append(true).open(&vf).unwrap();
        f.write_all(b"{\"id\":\"cc").unwrap();
        assert_eq!(read_all(&repo).unwrap().len(), 3);
        append(&repo, &rec("cccc0000000000000000000000000000", "d.jsonl")).unwrap();
        let all = read_all(&repo).unwrap();
        assert_eq!(all.len(), 4);

        let p = dir.path().join("d.jsonl");
        assert_eq!(list_versions(&repo, &p).unwrap().len(), 3);
        assert_eq!(
            resolve(&repo, &p, "cc").unwrap().id.as_str(),
            "cccc0000000000000000000000000000"
        );
        assert!(matches!(
            resolve(&repo, &p, "aaa"),
            Err(VersionError::AmbiguousVersion { .. })
        ));
        assert!(matches!(
            resolve(&repo, &p, "bbbb"),
            Err(VersionError::UnknownVersion { .. })
        ));
    }
}

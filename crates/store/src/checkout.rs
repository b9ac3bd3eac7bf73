//! `taxon data checkout`: restore tracked files and folders from the cache, optionally at an
//! older recorded version.
//!
//! All-or-nothing as far as the cache allows: every needed object is looked up first (a
//! missing one is an error before the workspace is touched), then every file to restore is
//! copied to a temp file while its hash is checked (a tampered object is refused and the temps
//! are removed), and only then are the temps renamed into place.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use taxon_core::Md5Hex;
use taxon_dataset::Format;

use crate::add::state_for;
use crate::cache::{Cache, DirEntry, content_hash};
use crate::dvcfile::{DvcFile, Out};
use crate::error::{IoContext, Result, StoreError};
use crate::hashing::{self, HashState};
use crate::repo::Repo;
use crate::versions;

/// Options of a checkout.
#[derive(Clone, Debug, Default)]
pub struct CheckoutOptions {
    /// Restore this recorded version (id or unique prefix) instead of what the `.dvc` file
    /// names, and rewrite the `.dvc` file to point at it. Needs exactly one target.
    pub version: Option<String>,
}

/// What a checkout did, paths relative to the repository root.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckoutSummary {
    /// Files written from the cache.
    pub restored: Vec<String>,
    /// Files removed from tracked folders because the version does not hold them.
    pub removed: Vec<String>,
    /// Files that already matched.
    pub unchanged: u64,
    /// `.dvc` files rewritten to point at another version.
    pub rewritten: Vec<String>,
}

/// One workspace file to bring to a given content.
struct Wanted {
    target: PathBuf,
    md5: Md5Hex,
}

/// The data files of a version that taxon can read, as (cache object path, format): the
/// object itself for a file (format from `workspace_path`'s extension), the manifest entries
/// for a folder (format from each relpath). Sorted by relpath.
pub fn data_files_of(
    cache: &Cache,
    id: &Md5Hex,
    workspace_path: &Path,
) -> Result<Vec<(PathBuf, Format)>> {
    Ok(named_files_of(cache, id, workspace_path)?
        .into_iter()
        .filter_map(|(rel, obj)| Format::from_path(Path::new(&rel)).map(|f| (obj, f)))
        .collect())
}

/// Every file of a version as (relpath, cache object path): for a file version the relpath is
/// the workspace file name.
pub fn named_files_of(
    cache: &Cache,
    id: &Md5Hex,
    workspace_path: &Path,
) -> Result<Vec<(String, PathBuf)>> {
    if id.is_dir() {
        Ok(cache
            .read_dir_manifest(id)?
            .into_iter()
            .map(|e| (e.relpath, cache.object_path(&e.md5)))
            .collect())
    } else {
        let name = workspace_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(vec![(name, cache.object_path(id))])
    }
}

fn rel(repo: &Repo, p: &Path) -> String {
    p.strip_prefix(&repo.root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Restores the outputs of `dvc_files` from the cache. See the module docs for the order of
/// checks; `opts.version` restores an older recorded version and rewrites the `.dvc` file.
pub fn checkout(
    repo: &Repo,
    dvc_files: &[PathBuf],
    opts: &CheckoutOptions,
) -> Result<CheckoutSummary> {
    let cache = Cache::new(repo);
    let state = state_for(repo);
    let mut summary = CheckoutSummary::default();

    // 1. What each output should become.
    let mut plan: Vec<(PathBuf, Out)> = Vec::new();
    let mut rewrites: Vec<(PathBuf, DvcFile)> = Vec::new();
    for f in dvc_files {
        let dvc = DvcFile::load(f)?;
        let base = f.parent().unwrap_or(Path::new("."));
        for out in &dvc.outs {
            if out.hash != "md5" {
                return Err(StoreError::UnsupportedHash {
                    path: f.clone(),
                    hash: out.hash.clone(),
                });
            }
            plan.push((base.join(&out.path), out.clone()));
        }
        if let Some(v) = &opts.version {
            if dvc_files.len() != 1 || dvc.outs.len() != 1 {
                return Err(StoreError::Other(format!(
                    "--version restores one tracked path; got {} .dvc file(s) with {} output(s)",
                    dvc_files.len(),
                    dvc.outs.len()
                )));
            }
            let target = base.join(&dvc.outs[0].path);
            let record = versions::resolve(repo, &target, v)?;
            let out = Out {
                md5: record.id.clone(),
                size: record.size,
                nfiles: record.id.is_dir().then_some(record.nfiles),
                hash: "md5".into(),
                path: dvc.outs[0].path.clone(),
            };
            plan[0].1 = out.clone();
            if out != dvc.outs[0] {
                rewrites.push((f.clone(), DvcFile { outs: vec![out] }));
            }
        }
    }

    // 2. Every object needed must be in the cache before anything is touched.
    let mut missing = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut dir_members: Vec<(PathBuf, HashSet<String>)> = Vec::new();
    for (target, out) in &plan {
        if out.md5.is_dir() {
            if !cache.contains(&out.md5) {
                missing.push(format!("{} ({})", out.md5, rel(repo, target)));
                continue;
            }
            let entries: Vec<DirEntry> = cache.read_dir_manifest(&out.md5)?;
            let mut members = HashSet::new();
            for e in entries {
                if !cache.contains(&e.md5) {
                    missing.push(format!("{} ({}/{})", e.md5, rel(repo, target), e.relpath));
                }
                wanted.push(Wanted {
                    target: target.join(&e.relpath),
                    md5: e.md5,
                });
                members.insert(e.relpath);
            }
            dir_members.push((target.clone(), members));
        } else {
            if !cache.contains(&out.md5) {
                missing.push(format!("{} ({})", out.md5, rel(repo, target)));
            }
            wanted.push(Wanted {
                target: target.clone(),
                md5: out.md5.clone(),
            });
        }
    }
    if !missing.is_empty() {
        return Err(StoreError::MissingObjects {
            cache: cache.root.clone(),
            missing,
        });
    }

    // 3. Stage changed files into temps, hash-checking each object as it is copied.
    let mut staged: Vec<(PathBuf, PathBuf, Md5Hex)> = Vec::new();
    let stage_result = stage_all(&cache, &state, &wanted, &mut staged, &mut summary.unchanged);
    if let Err(e) = stage_result {
        for (tmp, _, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }

    // 4. Put everything in place.
    for (target, _) in &dir_members {
        if target.is_file() || target.is_symlink() {
            fs::remove_file(target).at(target)?;
        }
    }
    for (tmp, target, md5) in &staged {
        if let Some(parent) = target.parent() {
            make_dirs(parent)?;
        }
        if target.is_dir() {
            fs::remove_dir_all(target).at(target)?;
        }
        move_into_place(tmp, target)?;
        state.set(target, md5);
        summary.restored.push(rel(repo, target));
    }
    for (dir, members) in &dir_members {
        fs::create_dir_all(dir).at(dir)?;
        for f in hashing::walk_files(dir)? {
            if !members.contains(&f.relpath) {
                fs::remove_file(&f.path).at(&f.path)?;
                summary.removed.push(rel(repo, &f.path));
            }
        }
        remove_empty_dirs(dir)?;
    }
    for (f, dvc) in rewrites {
        dvc.save(&f)?;
        summary.rewritten.push(rel(repo, &f));
    }
    state.save()?;
    Ok(summary)
}

fn stage_all(
    cache: &Cache,
    state: &HashState,
    wanted: &[Wanted],
    staged: &mut Vec<(PathBuf, PathBuf, Md5Hex)>,
    unchanged: &mut u64,
) -> Result<()> {
    for w in wanted {
        if w.target.is_file() && state.md5(&w.target)?.0 == w.md5 {
            *unchanged += 1;
            continue;
        }
        let obj = cache.object_path(&w.md5);
        let tmp = cache.temp_path("checkout")?;
        staged.push((tmp.clone(), w.target.clone(), w.md5.clone()));
        let (actual, _) = hashing::copy_hashing(&obj, &tmp, &|_| {})?;
        if actual.as_str() != content_hash(&w.md5) {
            return Err(StoreError::HashMismatch {
                path: obj,
                expected: w.md5.clone(),
                actual,
            });
        }
    }
    Ok(())
}

/// Creates `dir` and its parents, replacing a file that stands where a folder must be.
fn make_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(parent)?;
    }
    if dir.is_file() || dir.is_symlink() {
        fs::remove_file(dir).at(dir)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e).at(dir),
    }
}

/// Renames, falling back to copy + remove across filesystems. The result is writable (0644),
/// as DVC's `copy` link type leaves it.
fn move_into_place(tmp: &Path, target: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o644)).at(tmp)?;
    }
    if fs::rename(tmp, target).is_err() {
        fs::copy(tmp, target).at(target)?;
        fs::remove_file(tmp).at(tmp)?;
    }
    Ok(())
}

/// Removes empty sub-folders of `dir` (not `dir` itself).
fn remove_empty_dirs(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        if entry.file_type().at(entry.path())?.is_dir() {
            let p = entry.path();
            remove_empty_dirs(&p)?;
            if fs::read_dir(&p).at(&p)?.next().is_none() {
                fs::remove_dir(&p).at(&p)?;
            }
        }
    }
    Ok(())
}

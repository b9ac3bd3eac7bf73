//! `taxon data checkout`: restore tracked files and folders from the cache, optionally at an
//! older recorded version.
//!
//! All-or-nothing as far as the cache allows: every needed object is looked up first (a
//! missing one is an error before the workspace is touched), then every object to restore is
//! hash-checked (a small one read into memory, a large one copied to a temp file in `.dvc/tmp`
//! as it is hashed; a tampered object is refused and the temps are removed), and only then are
//! the files written: each through a temp file next to its target and a rename. Checking and
//! writing run in parallel on the file-system pool (see `cache::in_fs_pool`).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use taxon_core::Md5Hex;

use crate::cache::{Cache, DirEntry, content_hash, write_new_file};
use crate::dvcfile::{DvcFile, Out};
use crate::error::{IoContext, Result, VersionError};
use crate::hashing::{self, HashState};
use crate::repo::Repo;
use crate::versions;
use crate::workspace::state_for;

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
                return Err(VersionError::UnsupportedHash {
                    path: f.clone(),
                    hash: out.hash.clone(),
                });
            }
            plan.push((base.join(&out.path), out.clone()));
        }
        if let Some(v) = &opts.version {
            if dvc_files.len() != 1 || dvc.outs.len() != 1 {
                return Err(VersionError::Other(format!(
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
        return Err(VersionError::MissingObjects {
            cache: cache.root.clone(),
            missing,
        });
    }

    // 3. Read (small) or copy to `.dvc/tmp` (large) every object to restore, hash-checking
    //    each; nothing in the workspace is touched yet.
    let staged = match stage_all(&cache, &state, &wanted) {
        Ok(staged) => staged,
        Err((e, temps)) => {
            for tmp in temps {
                let _ = fs::remove_file(tmp);
            }
            return Err(e);
        }
    };
    summary.unchanged = (wanted.len() - staged.len()) as u64;

    // 4. Put everything in place.
    for (target, _) in &dir_members {
        if target.is_file() || target.is_symlink() {
            fs::remove_file(target).at(target)?;
        }
    }
    let parents: std::collections::BTreeSet<&Path> =
        staged.iter().filter_map(|s| s.target.parent()).collect();
    for parent in parents {
        make_dirs(parent)?;
    }
    let placed: Vec<Result<()>> = crate::cache::in_fs_pool(|| {
        use rayon::prelude::*;
        staged
            .par_iter()
            .map(|s| {
                let meta = place(s)?;
                state.set_meta(&s.target, &meta, &s.md5);
                Ok(())
            })
            .collect()
    });
    let mut first_err = None;
    for (s, r) in staged.iter().zip(placed) {
        match r {
            Ok(()) => summary.restored.push(rel(repo, &s.target)),
            Err(e) => {
                if let Content::Temp(tmp) = &s.content {
                    let _ = fs::remove_file(tmp);
                }
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        let _ = state.save();
        return Err(e);
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

/// Objects up to this size are read into memory to be checked, then written next to their
/// target; larger ones are copied into `.dvc/tmp` while they are hashed.
const SMALL_OBJECT: u64 = 1 << 20;
/// At most this many bytes of small objects are held in memory at once; the rest go the
/// large-object way.
const MEMORY_BUDGET: u64 = 512 << 20;

/// A checked object on its way to a workspace file.
enum Content {
    Bytes(Vec<u8>),
    /// A verified copy in `.dvc/tmp`.
    Temp(PathBuf),
}

struct Staged {
    target: PathBuf,
    md5: Md5Hex,
    content: Content,
}

/// Checks every object whose target differs (in parallel, on the file-system pool). On error,
/// returns the first error in `wanted` order and the temp files to remove.
#[allow(clippy::type_complexity)]
fn stage_all(
    cache: &Cache,
    state: &HashState,
    wanted: &[Wanted],
) -> std::result::Result<Vec<Staged>, (VersionError, Vec<PathBuf>)> {
    use rayon::prelude::*;
    let budget = std::sync::atomic::AtomicU64::new(MEMORY_BUDGET);
    let results: Vec<Result<Option<Staged>>> = crate::cache::in_fs_pool(|| {
        wanted
            .par_iter()
            .map(|w| stage_one(cache, state, w, &budget))
            .collect()
    });
    let mut staged = Vec::with_capacity(results.len());
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Some(s)) => staged.push(s),
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        None => Ok(staged),
        Some(e) => {
            let temps = staged
                .into_iter()
                .filter_map(|s| match s.content {
                    Content::Temp(t) => Some(t),
                    Content::Bytes(_) => None,
                })
                .collect();
            Err((e, temps))
        }
    }
}

fn stage_one(
    cache: &Cache,
    state: &HashState,
    w: &Wanted,
    budget: &std::sync::atomic::AtomicU64,
) -> Result<Option<Staged>> {
    use std::sync::atomic::Ordering;
    if w.target.is_file() && state.md5(&w.target)?.0 == w.md5 {
        return Ok(None);
    }
    let obj = cache.object_path(&w.md5);
    let mismatch = |actual: Md5Hex| VersionError::HashMismatch {
        path: obj.clone(),
        expected: w.md5.clone(),
        actual,
    };
    let mut file = fs::File::open(&obj).at(&obj)?;
    let len = file.metadata().at(&obj)?.len();
    let in_memory = len <= SMALL_OBJECT
        && budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(len))
            .is_ok();
    let content = if in_memory {
        let bytes = crate::cache::read_whole(&mut file, len).at(&obj)?;
        let actual = Md5Hex::of_bytes(&bytes);
        if actual.as_str() != content_hash(&w.md5) {
            return Err(mismatch(actual));
        }
        Content::Bytes(bytes)
    } else {
        drop(file);
        let tmp = cache.temp_path("checkout")?;
        let copied = hashing::copy_hashing(&obj, &tmp, &|_| {});
        match copied {
            Ok((actual, _)) if actual.as_str() == content_hash(&w.md5) => Content::Temp(tmp),
            Ok((actual, _)) => {
                let _ = fs::remove_file(&tmp);
                return Err(mismatch(actual));
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
    };
    Ok(Some(Staged {
        target: w.target.clone(),
        md5: w.md5.clone(),
        content,
    }))
}

/// Writes one staged file to its target (a temp file next to it, then a rename; a folder that
/// stands in the way is removed) and returns the metadata of the result. The result is
/// writable (0644), as DVC's `copy` link type leaves it.
fn place(s: &Staged) -> Result<fs::Metadata> {
    let write = || -> Result<fs::Metadata> {
        match &s.content {
            Content::Bytes(bytes) => match write_new_file(&s.target, bytes, 0o644, true)? {
                Some(meta) => Ok(meta),
                None => fs::metadata(&s.target).at(&s.target),
            },
            Content::Temp(tmp) => move_into_place(tmp, &s.target),
        }
    };
    match write() {
        Err(_) if s.target.is_dir() => {
            fs::remove_dir_all(&s.target).at(&s.target)?;
            write()
        }
        r => r,
    }
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
fn move_into_place(tmp: &Path, target: &Path) -> Result<fs::Metadata> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o644)).at(tmp)?;
    }
    if fs::rename(tmp, target).is_err() {
        if target.is_dir() {
            return Err(VersionError::InvalidFile {
                path: target.to_path_buf(),
                message: "is a folder where a file must be restored".into(),
            });
        }
        fs::copy(tmp, target).at(target)?;
        fs::remove_file(tmp).at(tmp)?;
    }
    fs::metadata(target).at(target)
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

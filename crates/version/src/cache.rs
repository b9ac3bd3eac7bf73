//! The content-addressed cache in DVC 3's layout: `.dvc/cache/files/md5/xx/yyyy[.dir]`, objects
//! read-only (0444), folder manifests as Python-`json.dumps`-compatible bytes; hashing a file
//! into it in one read ([`hash_into_cache`]), and the files a version holds there
//! ([`named_files_of`]).
//!
//! Every object enters the cache through a temp file and a rename, so a process killed
//! half-way never leaves a partial object under its final name. Small objects (whose bytes are
//! in memory and already hashed) are written to a temp file next to their destination, in the
//! object's `xx/` folder, created read-only at open: one create, one write and one rename in
//! one directory, spread over 256 folders (DVC's own cache writes `<name>.<uuid>.tmp` there
//! too). Large objects are streamed through `.dvc/tmp`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use taxon_core::Md5Hex;
use taxon_dataset::Format;

use crate::dvcfile::DvcFile;
use crate::error::{IoContext, Result, VersionError};
use crate::hashing;
use crate::repo::Repo;

/// One file of a folder version, as listed in its `.dir` manifest.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DirEntry {
    pub md5: Md5Hex,
    /// Path inside the folder, `/`-separated, never absolute and never with `..`.
    pub relpath: String,
}

/// The cache of one repository.
#[derive(Clone, Debug)]
pub struct Cache {
    /// `.dvc/cache`.
    pub root: PathBuf,
    /// `.dvc/tmp`: where temp files live before they are renamed into place (same filesystem).
    pub tmp: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How long a temp file of a process that is gone must have been left untouched before the
/// next command removes it.
pub const STALE_TEMP_AFTER: Duration = Duration::from_secs(60);

/// The pid in a temp file name of [`Cache::temp_path`] (`taxon-<tag>-<pid>-<nanos>-<n>`).
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("taxon-")?;
    let mut parts = rest.rsplitn(4, '-');
    let (_n, _nanos, pid) = (parts.next()?, parts.next()?, parts.next()?);
    parts.next()?;
    pid.parse().ok()
}

/// Whether a process with this pid runs (Linux: `/proc/<pid>`; elsewhere assumed alive, so
/// only the one-day rule applies).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

impl Cache {
    pub fn new(repo: &Repo) -> Self {
        Self {
            root: repo.cache_dir(),
            tmp: repo.dvc_dir().join("tmp"),
        }
    }

    /// Where the object named `hash` lives (whether or not it is there).
    pub fn object_path(&self, hash: &Md5Hex) -> PathBuf {
        self.root.join(hash.cache_rel_path())
    }

    /// True when the object is in the cache.
    pub fn contains(&self, hash: &Md5Hex) -> bool {
        self.object_path(hash).is_file()
    }

    /// A fresh, unique temp path under `.dvc/tmp` (the folder is created).
    pub fn temp_path(&self, tag: &str) -> Result<PathBuf> {
        fs::create_dir_all(&self.tmp).at(&self.tmp)?;
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Ok(self
            .tmp
            .join(format!("taxon-{tag}-{}-{nanos}-{n}", std::process::id())))
    }

    /// Removes the temp files a killed taxon process left in `.dvc/tmp` (a `data add` killed
    /// mid-copy leaves a partial copy as large as the file it was adding): files named
    /// `taxon-<tag>-<pid>-...` untouched for [`STALE_TEMP_AFTER`] whose process is gone, or
    /// untouched for a day whatever the process. A live process's temp files are written to
    /// continuously and its pid runs, so they stay; DVC's own files there are not taxon's and
    /// stay too. Returns how many were removed; errors are ignored (another process may be
    /// cleaning too).
    pub fn remove_stale_temps(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.tmp) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_owner) else {
                continue;
            };
            let Ok(age) = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default())
            else {
                continue;
            };
            let gone = pid != std::process::id() && !process_alive(pid);
            let stale = (gone && age >= STALE_TEMP_AFTER) || age >= Duration::from_secs(86_400);
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Stores `bytes`, already checked to hash to `hash`, as that object: a read-only temp file
    /// next to the destination, then a rename. Nothing is written when the object exists.
    pub fn write_object(&self, hash: &Md5Hex, bytes: &[u8]) -> Result<()> {
        let dest = self.object_path(hash);
        if dest.is_file() {
            return Ok(());
        }
        write_new_file(&dest, bytes, 0o444, false)?;
        Ok(())
    }

    /// Moves a finished temp file (whose content hashes to `hash`) into place, read-only.
    /// When the object already exists the temp file is simply removed.
    pub fn commit_temp(&self, tmp: &Path, hash: &Md5Hex) -> Result<()> {
        let dest = self.object_path(hash);
        if dest.is_file() {
            fs::remove_file(tmp).at(tmp)?;
            return Ok(());
        }
        set_read_only(tmp)?;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        fs::rename(tmp, &dest).at(&dest)
    }

    /// Hash-checks a downloaded temp file and moves it into the cache (0444). On a mismatch the
    /// temp file is deleted and the error names the expected and actual hashes.
    pub fn insert_file_verified(&self, tmp: &Path, expected: &Md5Hex) -> Result<()> {
        let (actual, _) = hashing::md5_file(tmp)?;
        let expected_content = content_hash(expected);
        if actual.as_str() != expected_content {
            let _ = fs::remove_file(tmp);
            return Err(VersionError::HashMismatch {
                path: tmp.to_path_buf(),
                expected: expected.clone(),
                actual,
            });
        }
        if expected.is_dir() {
            // A manifest must also parse and be safe before it is trusted.
            let bytes = fs::read(tmp).at(tmp)?;
            if let Err(e) = parse_manifest(&bytes, tmp) {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
        }
        self.commit_temp(tmp, expected)
    }

    /// Stores manifest bytes under `<md5>.dir` and returns that hash.
    pub fn insert_manifest(&self, entries: &[DirEntry]) -> Result<Md5Hex> {
        let bytes = manifest_bytes(entries);
        let hash: Md5Hex = format!("{}.dir", Md5Hex::of_bytes(&bytes))
            .parse()
            .map_err(|e: taxon_core::hash::InvalidHash| VersionError::Other(e.to_string()))?;
        if !self.contains(&hash) {
            let tmp = self.temp_path("dir")?;
            fs::write(&tmp, &bytes).at(&tmp)?;
            self.commit_temp(&tmp, &hash)?;
        }
        Ok(hash)
    }

    /// Reads and checks a folder manifest: its bytes must hash to its name, and every relpath
    /// must stay inside the folder.
    pub fn read_dir_manifest(&self, hash: &Md5Hex) -> Result<Vec<DirEntry>> {
        let path = self.object_path(hash);
        let bytes = fs::read(&path).at(&path)?;
        let actual = Md5Hex::of_bytes(&bytes);
        if actual.as_str() != content_hash(hash) {
            return Err(VersionError::HashMismatch {
                path,
                expected: hash.clone(),
                actual,
            });
        }
        parse_manifest(&bytes, &path)
    }
}

/// Hashes `path` into the cache: one read that both hashes and writes a temp copy, then a
/// rename to `files/md5/xx/...` with mode 0444. A small file is read whole, hashed, and
/// written (unless already cached) through a temp file in its `xx/` folder
/// ([`Cache::write_object`]); a large one is copied to `.dvc/tmp` while it is hashed and the
/// copy dropped when the object is already cached. A crash at any point leaves at most a temp
/// file, never a partial object.
pub fn hash_into_cache(cache: &Cache, path: &Path) -> Result<(Md5Hex, u64)> {
    hash_into_cache_with(cache, path, &|_| {})
}

/// [`hash_into_cache`], calling `on_bytes(n)` as bytes are processed.
pub fn hash_into_cache_with(
    cache: &Cache,
    path: &Path,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(Md5Hex, u64)> {
    hash_into_cache_sized(cache, path, None, on_bytes)
}

/// [`hash_into_cache_with`] for a file whose size the caller already knows (from a `stat` just
/// before), which saves one more.
pub(crate) fn hash_into_cache_sized(
    cache: &Cache,
    path: &Path,
    size: Option<u64>,
    on_bytes: &(dyn Fn(u64) + Sync),
) -> Result<(Md5Hex, u64)> {
    let mut input = File::open(path).at(path)?;
    let len = match size {
        Some(n) => n,
        None => input.metadata().at(path)?.len(),
    };
    if len <= hashing::SMALL_FILE {
        let bytes = read_whole(&mut input, len).at(path)?;
        let hash = Md5Hex::of_bytes(&bytes);
        cache.write_object(&hash, &bytes)?;
        on_bytes(bytes.len() as u64);
        return Ok((hash, bytes.len() as u64));
    }
    drop(input);
    let tmp = cache.temp_path("add")?;
    let result = hashing::copy_hashing(path, &tmp, on_bytes)
        .and_then(|(hash, size)| cache.commit_temp(&tmp, &hash).map(|_| (hash, size)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The md5 hex of an object's bytes (a `.dir` hash without its suffix).
pub(crate) fn content_hash(hash: &Md5Hex) -> &str {
    hash.as_str().strip_suffix(".dir").unwrap_or(hash.as_str())
}

/// A unique temp path next to `dest`: `<dest>.taxon-<pid>-<n>.tmp`, in the same folder so that
/// the rename that follows stays inside one directory.
pub(crate) fn temp_next_to(dest: &Path) -> PathBuf {
    static PID: OnceLock<u32> = OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".taxon-{pid}-{n}.tmp"));
    dest.with_file_name(name)
}

/// Writes `bytes` to `dest` through a temp file next to it that is created with `mode` (so no
/// chmod follows) and renamed over `dest`. The parent folder is created when missing. With
/// `stat`, returns the metadata of the written file (taken from its handle before the rename,
/// which changes neither inode, size nor mtime). On error the temp file is removed.
pub(crate) fn write_new_file(
    dest: &Path,
    bytes: &[u8],
    mode: u32,
    stat: bool,
) -> Result<Option<fs::Metadata>> {
    let tmp = temp_next_to(dest);
    let file = match create_with_mode(&tmp, mode) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).at(parent)?;
            }
            create_with_mode(&tmp, mode)
        }
        r => r,
    }
    .at(&tmp)?;
    let written =
        write_and_stat(file, bytes, stat).and_then(|meta| fs::rename(&tmp, dest).map(|_| meta));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.at(dest)
}

fn write_and_stat(mut file: File, bytes: &[u8], stat: bool) -> io::Result<Option<fs::Metadata>> {
    file.write_all(bytes)?;
    stat.then(|| file.metadata()).transpose()
}

/// Reads the rest of `file` into memory; `size_hint` (its length, from a `stat` the caller
/// already made) sizes the buffer, so no further `stat` is needed (`read_to_end` on a `File`
/// makes two more syscalls to find the size itself).
pub(crate) fn read_whole(file: &mut File, size_hint: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(size_hint as usize + 1);
    (&mut *file).take(u64::MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates a new file (never an existing one) whose mode is exactly `mode`: given at open, and
/// set again through the handle only when the process umask would clear some of its bits.
pub(crate) fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        if umask().is_none_or(|m| m & mode != 0) {
            file.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        if mode & 0o200 == 0 {
            let mut perms = file.metadata()?.permissions();
            perms.set_readonly(true);
            file.set_permissions(perms)?;
        }
        Ok(file)
    }
}

/// The process umask, read once from `/proc/self/status` (None where that is not available;
/// callers then set modes explicitly).
#[cfg(unix)]
fn umask() -> Option<u32> {
    static UMASK: OnceLock<Option<u32>> = OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

/// Runs `f` on a thread pool for file-system work on many small files (add, checkout). That
/// work waits on the kernel (inode creation, directory locks) more than it computes, so the
/// pool has more threads than there are cores: `TAXON_FS_THREADS`, default 8. Falls back to
/// rayon's global pool when a pool cannot be built.
pub(crate) fn in_fs_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let n = std::env::var("TAXON_FS_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(8);
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("taxon-fs-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

/// Sets mode 0444, as DVC does for cache objects.
pub(crate) fn set_read_only(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o444)).at(path)
    }
    #[cfg(not(unix))]
    {
        let mut perms = fs::metadata(path).at(path)?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(path, perms).at(path)
    }
}

pub(crate) fn parse_manifest(bytes: &[u8], path: &Path) -> Result<Vec<DirEntry>> {
    let entries: Vec<DirEntry> =
        serde_json::from_slice(bytes).map_err(|e| VersionError::Malformed {
            path: path.to_path_buf(),
            field: "manifest".into(),
            message: format!("not a DVC folder manifest: {e}"),
        })?;
    for e in &entries {
        if !is_safe_relpath(&e.relpath) {
            return Err(VersionError::UnsafeRelpath {
                manifest: path.to_path_buf(),
                relpath: e.relpath.clone(),
            });
        }
        if e.md5.is_dir() {
            return Err(VersionError::Malformed {
                path: path.to_path_buf(),
                field: format!("{}.md5", e.relpath),
                message: "a manifest entry cannot be a folder hash".into(),
            });
        }
    }
    Ok(entries)
}

/// True for a relative, `/`-separated path with only normal components.
pub fn is_safe_relpath(relpath: &str) -> bool {
    if relpath.is_empty() || relpath.starts_with('/') || relpath.contains('\\') {
        return false;
    }
    relpath
        .split('/')
        .all(|c| !c.is_empty() && c != "." && c != "..")
        && Path::new(relpath)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// The manifest bytes exactly as DVC writes them: Python's
/// `json.dumps(sorted(entries, key=relpath), sort_keys=True)` (ASCII-escaped, `", "` and `": "`
/// separators, no trailing newline). Entries are sorted here.
pub fn manifest_bytes(entries: &[DirEntry]) -> Vec<u8> {
    let mut sorted: Vec<&DirEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.relpath.as_bytes().cmp(b.relpath.as_bytes()));
    let mut out = String::with_capacity(entries.len() * 80 + 2);
    out.push('[');
    for (i, e) in sorted.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("{\"md5\": ");
        push_py_json_str(&mut out, e.md5.as_str());
        out.push_str(", \"relpath\": ");
        push_py_json_str(&mut out, &e.relpath);
        out.push('}');
    }
    out.push(']');
    out.into_bytes()
}

/// A string as Python's `json.dumps` (with `ensure_ascii=True`) writes it.
fn push_py_json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Every object that a set of `.dvc` files needs: each output's hash, and for folders the
/// entries of the manifest when the manifest is in the cache. Sorted, without duplicates.
pub fn objects_for(repo: &Repo, dvc_files: &[PathBuf]) -> Result<Vec<Md5Hex>> {
    let cache = Cache::new(repo);
    let mut all = std::collections::BTreeSet::new();
    for f in dvc_files {
        let dvc = DvcFile::load(f)?;
        for out in dvc.outs {
            if out.md5.is_dir() && cache.contains(&out.md5) {
                for e in cache.read_dir_manifest(&out.md5)? {
                    all.insert(e.md5);
                }
            }
            all.insert(out.md5);
        }
    }
    Ok(all.into_iter().collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Md5Hex {
        s.parse().unwrap()
    }

    #[test]
    fn manifest_matches_python_json_dumps() {
        // Bytes produced by dvc 3.67 for b.txt, sub/c.txt and "é ü.txt".
        let entries = vec![
            DirEntry {
                md5: h("fbade9e36a3f36d3d676c1b808451dd7"),
                relpath: "é ü.txt".into(),
            },
            DirEntry {
                md5: h("009520053b00386d1173f3988c55d192"),
                relpath: "sub/c.txt".into(),
            },
            DirEntry {
                md5: h("9dd4e461268c8034f5c8564e155c67a6"),
                relpath: "b.txt".into(),
            },
        ];
        let bytes = manifest_bytes(&entries);
        let expected = r#"[{"md5": "9dd4e461268c8034f5c8564e155c67a6", "relpath": "b.txt"}, {"md5": "009520053b00386d1173f3988c55d192", "relpath": "sub/c.txt"}, {"md5": "fbade9e36a3f36d3d676c1b808451dd7", "relpath": "\u00e9 \u00fc.txt"}]"#;
        assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);
        assert_eq!(
            Md5Hex::of_bytes(&bytes).as_str(),
            "554cfe362180436ef7906f9cf144fcf5"
        );
    }

    #[test]
    fn escapes_like_python() {
        let mut s = String::new();
        push_py_json_str(&mut s, "a\"b\\c\n\u{1}😀\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001\\ud83d\\ude00\u{7f}\"");
    }

    #[test]
    fn write_object_is_read_only_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache {
            root: dir.path().join("cache"),
            tmp: dir.path().join("tmp"),
        };
        let bytes = b"hello\n";
        let hash = Md5Hex::of_bytes(bytes);
        cache.write_object(&hash, bytes).unwrap();
        // Already there: nothing is written again.
        cache.write_object(&hash, bytes).unwrap();
        let path = cache.object_path(&hash);
        assert_eq!(fs::read(&path).unwrap(), bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o444);
        }
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn hostile_relpaths_are_rejected() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "",
            "a//b",
            "./a",
            "a\\..\\b",
        ] {
            assert!(!is_safe_relpath(bad), "{bad:?} accepted");
        }
        assert!(is_safe_relpath("sub/c.txt"));
        assert!(is_safe_relpath("..hidden"));
    }
}

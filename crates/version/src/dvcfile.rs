//! `PATH.dvc` pointer files in DVC 3's format, the `.gitignore` entry `dvc add` writes, and
//! finding the `.dvc` files a command acts on.

use std::fs;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;
use taxon_core::Md5Hex;

use crate::error::{IoContext, Result, VersionError};
use crate::repo::Repo;

/// One tracked output of a `.dvc` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Out {
    /// Content hash (`<md5>.dir` for folders).
    pub md5: Md5Hex,
    /// Total bytes.
    pub size: u64,
    /// Number of files (folders only).
    pub nfiles: Option<u64>,
    /// Hash name: `md5` for DVC 3 (a missing key means DVC 2's `md5-dos2unix`).
    pub hash: String,
    /// Path relative to the `.dvc` file's folder, `/`-separated.
    pub path: String,
}

/// A parsed `.dvc` file (only what taxon uses; other keys are tolerated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DvcFile {
    pub outs: Vec<Out>,
}

fn malformed(path: &Path, field: impl Into<String>, message: impl Into<String>) -> VersionError {
    VersionError::Malformed {
        path: path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    }
}

impl DvcFile {
    /// Parses a `.dvc` file. Keys DVC writes that taxon does not use (`cache`, `remote`,
    /// `frozen`, `desc`, `meta`, ...) are accepted and ignored.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).at(path)?;
        Self::parse(&text, path)
    }

    /// Parses `.dvc` text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let root: Value = serde_yaml_ng::from_str(text).map_err(|e| VersionError::InvalidFile {
            path: path.to_path_buf(),
            message: format!("not valid YAML: {e}"),
        })?;
        let map = root
            .as_mapping()
            .ok_or_else(|| malformed(path, "(root)", "expected a mapping with an `outs` list"))?;
        let outs_v = map
            .get("outs")
            .ok_or_else(|| malformed(path, "outs", "missing"))?;
        let outs_seq = outs_v
            .as_sequence()
            .ok_or_else(|| malformed(path, "outs", "expected a list"))?;
        let mut outs = Vec::with_capacity(outs_seq.len());
        for (i, o) in outs_seq.iter().enumerate() {
            let f = |k: &str| format!("outs[{i}].{k}");
            let m = o
                .as_mapping()
                .ok_or_else(|| malformed(path, format!("outs[{i}]"), "expected a mapping"))?;
            let md5_s = m
                .get("md5")
                .ok_or_else(|| malformed(path, f("md5"), "missing"))?
                .as_str()
                .ok_or_else(|| malformed(path, f("md5"), "expected a string"))?;
            let md5: Md5Hex = md5_s.parse().map_err(|e: taxon_core::hash::InvalidHash| {
                malformed(path, f("md5"), e.to_string())
            })?;
            let size = match m.get("size") {
                None => 0,
                Some(v) => v
                    .as_u64()
                    .ok_or_else(|| malformed(path, f("size"), "expected a non-negative integer"))?,
            };
            let nfiles = match m.get("nfiles") {
                None => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    malformed(path, f("nfiles"), "expected a non-negative integer")
                })?),
            };
            let hash = match m.get("hash") {
                None => "md5-dos2unix".to_string(),
                Some(v) => v
                    .as_str()
                    .ok_or_else(|| malformed(path, f("hash"), "expected a string"))?
                    .to_string(),
            };
            let out_path = m
                .get("path")
                .ok_or_else(|| malformed(path, f("path"), "missing"))?
                .as_str()
                .ok_or_else(|| malformed(path, f("path"), "expected a string"))?
                .to_string();
            if out_path.is_empty() || Path::new(&out_path).is_absolute() {
                return Err(malformed(
                    path,
                    f("path"),
                    "expected a path relative to the .dvc file",
                ));
            }
            outs.push(Out {
                md5,
                size,
                nfiles,
                hash,
                path: out_path,
            });
        }
        Ok(Self { outs })
    }

    /// The file's text exactly as DVC 3 writes it.
    pub fn to_yaml(&self) -> String {
        let mut s = String::from("outs:\n");
        for o in &self.outs {
            s.push_str(&format!("- md5: {}\n  size: {}\n", o.md5, o.size));
            if let Some(n) = o.nfiles {
                s.push_str(&format!("  nfiles: {n}\n"));
            }
            s.push_str(&format!(
                "  hash: {}\n  path: {}\n",
                o.hash,
                yaml_scalar(&o.path)
            ));
        }
        s
    }

    /// Writes the file atomically (temp file in the same folder, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_yaml().as_bytes())
    }
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename (the pipeline's
/// `dvc.lock` too).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.taxon-tmp{}", std::process::id()));
    fs::write(&tmp, bytes).at(&tmp)?;
    fs::rename(&tmp, path).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        VersionError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A YAML plain scalar when that reads back as the same string, else single-quoted.
fn yaml_scalar(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_alphanumeric()
                || matches!(c, '.' | '_' | '-' | '/' | '+' | '@' | ' ' | '(' | ')' | ',')
        })
        && !s.starts_with(['-', ' ', '@'])
        && !s.ends_with(' ')
        && serde_yaml_ng::from_str::<Value>(s)
            .ok()
            .and_then(|v| v.as_str().map(|x| x == s))
            .unwrap_or(false);
    if plain_safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// The `.dvc` file that tracks `data` (`data` + `.dvc`).
pub fn dvc_path_for(data: &Path) -> PathBuf {
    let mut s = data.as_os_str().to_os_string();
    s.push(".dvc");
    PathBuf::from(s)
}

/// The version id of the data at `data`, the one rule every stage records: the md5 of the
/// `.dvc` out that tracks it, either the file's own (its DVC content hash) or, for a file inside
/// a tracked folder, the folder's `.dir` hash; both are the id of the path's version record
/// (`taxon data versions`). The nearest tracked path wins, and the search stops at the
/// repository root (the folder holding `.dvc/`). `None` when the data is not tracked.
pub fn data_version(data: &Path) -> Result<Option<Md5Hex>> {
    let abs = std::path::absolute(data).at(data)?;
    for p in abs.ancestors() {
        if p.join(".dvc").is_dir() {
            // The repository root: nothing at or above it tracks this data.
            return Ok(None);
        }
        let Some(name) = p.file_name() else { break };
        let pointer = dvc_path_for(p);
        if pointer.is_file() {
            let file = DvcFile::load(&pointer)?;
            let name = name.to_string_lossy();
            return Ok(file
                .outs
                .iter()
                .find(|o| o.path == name)
                .or(file.outs.first())
                .map(|o| o.md5.clone()));
        }
    }
    Ok(None)
}

/// True when the repository uses no SCM (`no_scm = True` in `.dvc/config`): then, like DVC,
/// no `.gitignore` entries are written.
pub fn repo_is_no_scm(repo: &Repo) -> bool {
    let cfg = repo.dvc_dir().join("config");
    let Ok(text) = fs::read_to_string(cfg) else {
        return false;
    };
    let mut in_core = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_core = t == "[core]";
        } else if in_core {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == "no_scm" {
                    return matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes");
                }
            }
        }
    }
    false
}

/// Adds `/<name>` to the `.gitignore` next to `data`, as `dvc add` does in a Git repository
/// (nothing in a `no_scm` repository, nothing when the entry is already there).
pub fn ensure_gitignored(repo: &Repo, data: &Path) -> Result<()> {
    if repo_is_no_scm(repo) {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (data.parent(), data.file_name()) else {
        return Ok(());
    };
    let entry = format!("/{}", name.to_string_lossy());
    let gi = parent.join(".gitignore");
    let existing = match fs::read_to_string(&gi) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).at(&gi),
    };
    if existing.lines().any(|l| l.trim_end() == entry) {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&entry);
    text.push('\n');
    write_atomic(&gi, text.as_bytes())
}

/// The `.dvc` files that `targets` name: a target may be a `.dvc` file or a tracked data path.
/// No targets means every `*.dvc` file under the repository root (skipping `.dvc/`, `.git/`
/// and `.taxon/`), sorted.
pub fn find_dvc_files(repo: &Repo, targets: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if targets.is_empty() {
        let mut found = Vec::new();
        let mut stack = vec![repo.root.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).at(&d)? {
                let entry = entry.at(&d)?;
                let p = entry.path();
                let ft = entry.file_type().at(&p)?;
                let name = entry.file_name();
                if ft.is_dir() {
                    if d == repo.root && matches!(name.to_str(), Some(".dvc" | ".git" | ".taxon")) {
                        continue;
                    }
                    if name == ".git" {
                        continue;
                    }
                    stack.push(p);
                } else if ft.is_file() && p.extension().is_some_and(|e| e == "dvc") {
                    found.push(p);
                }
            }
        }
        found.sort();
        return Ok(found);
    }
    let mut out = Vec::new();
    for t in targets {
        let t = std::path::absolute(t).at(t)?;
        let t = strip_trailing_slash(&t);
        let candidate = if t.extension().is_some_and(|e| e == "dvc") && t.is_file() {
            t.clone()
        } else {
            dvc_path_for(&t)
        };
        if !candidate.is_file() {
            return Err(VersionError::NotTracked { path: t });
        }
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    Ok(out)
}

/// `data/` -> `data` (so `data/.dvc` is never looked for).
pub(crate) fn strip_trailing_slash(p: &Path) -> PathBuf {
    p.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE_DVC: &str =
        "outs:\n- md5: b1946ac92492d2347c6235b4d2611184\n  size: 6\n  hash: md5\n  path: a.txt\n";
    const DIR_DVC: &str = "outs:\n- md5: 554cfe362180436ef7906f9cf144fcf5.dir\n  size: 4\n  nfiles: 3\n  hash: md5\n  path: d\n";

    #[test]
    fn data_version_is_the_nearest_tracked_paths_md5_inside_the_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        fs::create_dir_all(root.join(".dvc")).unwrap();
        // A pointer above the repository root is not part of it.
        fs::write(
            dir.path().join("repo.dvc"),
            DIR_DVC.replace("path: d", "path: repo"),
        )
        .unwrap();
        let a = root.join("a.txt");
        fs::write(&a, "hello\n").unwrap();
        assert_eq!(data_version(&a).unwrap(), None);
        fs::write(root.join("a.txt.dvc"), FILE_DVC).unwrap();
        assert_eq!(
            data_version(&a).unwrap().unwrap().as_str(),
            "b1946ac92492d2347c6235b4d2611184"
        );
        // A file inside a tracked folder: the folder's `.dir` hash (its version record id).
        fs::create_dir_all(root.join("d/sub")).unwrap();
        let inner = root.join("d/sub/t.jsonl");
        fs::write(&inner, "{}\n").unwrap();
        fs::write(root.join("d.dvc"), DIR_DVC).unwrap();
        assert_eq!(
            data_version(&inner).unwrap().unwrap().as_str(),
            "554cfe362180436ef7906f9cf144fcf5.dir"
        );
        // A relative path resolves from the current directory, like every other path.
        let rel = data_version(Path::new("no-such-data.jsonl")).unwrap();
        assert_eq!(rel, None);
        // A damaged pointer is an error naming it, not a silent "untracked".
        fs::write(root.join("a.txt.dvc"), "outs: 3\n").unwrap();
        let err = data_version(&a).unwrap_err().to_string();
        assert!(err.contains("a.txt.dvc"), "{err}");
    }

    #[test]
    fn round_trips_dvc3_files_byte_for_byte() {
        for text in [FILE_DVC, DIR_DVC] {
            let f = DvcFile::parse(text, Path::new("x.dvc")).unwrap();
            assert_eq!(f.to_yaml(), text);
        }
        let d = DvcFile::parse(DIR_DVC, Path::new("d.dvc")).unwrap();
        assert_eq!(d.outs[0].nfiles, Some(3));
        assert!(d.outs[0].md5.is_dir());
    }

    #[test]
    fn tolerates_extra_keys() {
        let text = "frozen: true\nmd5: abc\nouts:\n- md5: b1946ac92492d2347c6235b4d2611184\n  size: 6\n  hash: md5\n  path: a.txt\n  cache: true\n  remote: r\n  desc: hi\n  meta:\n    k: v\n";
        let f = DvcFile::parse(text, Path::new("a.txt.dvc")).unwrap();
        assert_eq!(f.outs[0].path, "a.txt");
    }

    #[test]
    fn malformed_names_file_and_field() {
        let text = "outs:\n- md5: nothex\n  size: 6\n  hash: md5\n  path: a.txt\n";
        let err = DvcFile::parse(text, Path::new("a.txt.dvc"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a.txt.dvc") && err.contains("outs[0].md5"),
            "{err}"
        );
        let err = DvcFile::parse("outs:\n- size: 1\n  path: a\n", Path::new("b.dvc"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("outs[0].md5") && err.contains("missing"),
            "{err}"
        );
        let err = DvcFile::parse("outs: [\n", Path::new("c.dvc"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.dvc") && err.contains("YAML"), "{err}");
    }

    #[test]
    fn quotes_paths_that_need_it() {
        assert_eq!(yaml_scalar("data.jsonl"), "data.jsonl");
        assert_eq!(yaml_scalar("true"), "'true'");
        assert_eq!(yaml_scalar("123"), "'123'");
        assert_eq!(yaml_scalar("a: b"), "'a: b'");
        assert_eq!(yaml_scalar("it's"), "'it''s'");
    }
}

//! Remote configuration read from DVC's own files (`.dvc/config`, then `.dvc/config.local`),
//! plus taxon-only remote options from `.taxon/config`, and the writer that `taxon data remote`
//! uses so that the real `dvc` reads what taxon writes.
//!
//! DVC stores its config in configobj's INI dialect: sections such as `[core]` and
//! `['remote "NAME"']` (the quotes are part of DVC's spelling), `key = value` lines indented
//! by four spaces, `#` comments. DVC rejects keys it does not know, so taxon's own options
//! (`encrypt`, `key_file`, `jobs`, `multipart_threshold`, `part_size`) live in `.taxon/config`,
//! in the same dialect.
//!
//! Credentials are held in [`Secret`], whose `Debug` and `Display` print `***`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, VersionError};
use crate::repo::Repo;

/// The multipart threshold DVC-style remotes use by default: files at or above it are uploaded
/// in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
/// The default size of one multipart part.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// S3's smallest allowed part (except the last one).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// The keys taxon accepts in `.taxon/config` remote sections.
const TAXON_REMOTE_KEYS: &[&str] = &[
    "encrypt",
    "key_file",
    "jobs",
    "multipart_threshold",
    "part_size",
];

/// A credential: printed as `***` by `Debug` and `Display`; [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for handing to the client that needs it (never for printing).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a remote's objects live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// A local folder (absolute, relative paths already resolved against `.dvc/`).
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteUrl::Local(p) => write!(f, "{}", p.display()),
            RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RemoteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// One remote, resolved: DVC config, then `.dvc/config.local`, then taxon options, then env.
#[derive(Clone, Debug)]
pub struct RemoteConfig {
    pub name: String,
    pub url: RemoteUrl,
    /// `endpointurl` (or `AWS_ENDPOINT_URL`): a custom S3 endpoint such as MinIO or moto.
    pub endpoint_url: Option<String>,
    /// `region` (or `AWS_DEFAULT_REGION`); `us-east-1` when neither is set.
    pub region: Option<String>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
    /// taxon-only: everything pushed is Fernet ciphertext.
    pub encrypt: bool,
    /// taxon-only: the Fernet key file (otherwise env `TAXON_FERNET_KEY`).
    pub key_file: Option<PathBuf>,
    /// taxon-only: concurrent transfers.
    pub jobs: Option<usize>,
    /// taxon-only: files of at least this many bytes go up in parts.
    pub multipart_threshold: u64,
    /// taxon-only: bytes per part of a multipart upload.
    pub part_size: usize,
}

/// All remotes of a repository, unresolved, as the config files list them.
#[derive(Clone, Debug, Default)]
pub struct RemotesConfig {
    /// `[core] remote = NAME`.
    pub default: Option<String>,
    /// Each remote's raw keys, merged over `.dvc/config` then `.dvc/config.local`.
    pub remotes: BTreeMap<String, BTreeMap<String, String>>,
}

/// Which DVC config file to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigLevel {
    /// `.dvc/config` (shared, committed).
    Repo,
    /// `.dvc/config.local` (private: credentials belong here).
    Local,
}

impl ConfigLevel {
    pub fn path(self, repo: &Repo) -> PathBuf {
        match self {
            ConfigLevel::Repo => repo.dvc_dir().join("config"),
            ConfigLevel::Local => repo.dvc_dir().join("config.local"),
        }
    }
}

/// True for keys whose values must never be printed.
pub fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "access_key_id" | "secret_access_key" | "session_token" | "password"
    )
}

// ---------------------------------------------------------------------------------------------
// The INI dialect (configobj as DVC writes it).

/// An INI document that keeps section and key order, so a rewrite changes only what was edited.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IniDoc {
    /// Sections in file order: normalized name (`core`, `remote "NAME"`) and key/value pairs.
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

impl IniDoc {
    /// Parses `text`; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut doc = IniDoc::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let bad = |message: String| VersionError::InvalidFile {
                path: PathBuf::from(format!("{}:{}", path.display(), i + 1)),
                message,
            };
            if let Some(inner) = line.strip_prefix('[') {
                let inner = inner
                    .strip_suffix(']')
                    .ok_or_else(|| bad(format!("section header {line:?} has no closing ]")))?
                    .trim();
                let name = unquote(inner);
                if name.is_empty() {
                    return Err(bad("empty section name".into()));
                }
                doc.sections.push((name.to_string(), Vec::new()));
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected `key = value`, found {line:?}")))?;
            let (key, value) = (k.trim(), unquote(v.trim()));
            if key.is_empty() {
                return Err(bad("empty key before =".into()));
            }
            let Some((_, entries)) = doc.sections.last_mut() else {
                return Err(bad(format!("key {key:?} appears before any [section]")));
            };
            entries.retain(|(k, _)| k != key);
            entries.push((key.to_string(), value.to_string()));
        }
        Ok(doc)
    }

    /// Reads `path`; a missing file is an empty document.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).at(path),
        }
    }

    /// Writes the document as DVC does (`['remote "x"']`, four-space indent).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, entries) in &self.sections {
            if name.contains(' ') || name.contains('"') {
                out.push_str(&format!("['{name}']\n"));
            } else {
                out.push_str(&format!("[{name}]\n"));
            }
            for (k, v) in entries {
                out.push_str(&format!("    {k} = {v}\n"));
            }
        }
        out
    }

    /// Writes the document to `path` atomically (temp file then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("taxon-tmp");
        std::fs::write(&tmp, self.render()).at(&tmp)?;
        std::fs::rename(&tmp, path).at(path)
    }

    pub fn section(&self, name: &str) -> Option<&Vec<(String, String)>> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e)
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.section(section)?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` in `section`, creating the section at the end if needed.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let idx = match self.sections.iter().position(|(n, _)| n == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[idx].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => entries.push((key.to_string(), value.to_string())),
        }
    }

    /// Removes `key` from `section`; true when it was there. An emptied section is dropped.
    pub fn unset(&mut self, section: &str, key: &str) -> bool {
        let Some(idx) = self.sections.iter().position(|(n, _)| n == section) else {
            return false;
        };
        let before = self.sections[idx].1.len();
        self.sections[idx].1.retain(|(k, _)| k != key);
        let removed = self.sections[idx].1.len() != before;
        if self.sections[idx].1.is_empty() {
            self.sections.remove(idx);
        }
        removed
    }

    /// Removes a whole section; true when it was there.
    pub fn remove_section(&mut self, section: &str) -> bool {
        let before = self.sections.len();
        self.sections.retain(|(n, _)| n != section);
        self.sections.len() != before
    }
}

/// Strips one level of matching `'...'` or `"..."` quotes.
fn unquote(s: &str) -> &str {
    for q in ['\'', '"'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return &s[1..s.len() - 1];
        }
    }
    s
}

/// The section name of remote `name`: `remote "name"`.
pub fn remote_section(name: &str) -> String {
    format!("remote \"{name}\"")
}

fn remote_name_of(section: &str) -> Option<&str> {
    section
        .strip_prefix("remote \"")
        .and_then(|s| s.strip_suffix('"'))
}

/// Checks that a remote name can be written into a section header and read back.
pub fn validate_remote_name(name: &str) -> Result<()> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '"' || c == '\'' || c == '[' || c == ']' || c.is_control())
    {
        return Err(VersionError::Other(format!(
            "invalid remote name {name:?}: use letters, digits, '-', '_' or '.'"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading remotes.

/// Reads `.dvc/config` then `.dvc/config.local` (later wins, key by key).
pub fn load_remotes(repo: &Repo) -> Result<RemotesConfig> {
    let mut cfg = RemotesConfig::default();
    for level in [ConfigLevel::Repo, ConfigLevel::Local] {
        let doc = IniDoc::load(&level.path(repo))?;
        if let Some(r) = doc.get("core", "remote") {
            cfg.default = Some(r.to_string());
        }
        for (section, entries) in &doc.sections {
            if let Some(name) = remote_name_of(section) {
                let keys = cfg.remotes.entry(name.to_string()).or_default();
                for (k, v) in entries {
                    keys.insert(k.clone(), v.clone());
                }
            }
        }
    }
    Ok(cfg)
}

/// Reads the taxon-only options of remote `name` from `.taxon/config`, rejecting unknown keys.
fn load_taxon_options(repo: &Repo, name: &str) -> Result<BTreeMap<String, String>> {
    let path = repo.taxon_dir().join("config");
    let doc = IniDoc::load(&path)?;
    let mut out = BTreeMap::new();
    if let Some(entries) = doc.section(&remote_section(name)) {
        for (k, v) in entries {
            if !TAXON_REMOTE_KEYS.contains(&k.as_str()) {
                return Err(VersionError::InvalidFile {
                    path: path.clone(),
                    message: format!(
                        "unknown key {k:?} in remote {name:?} (known: {})",
                        TAXON_REMOTE_KEYS.join(", ")
                    ),
                });
            }
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(out)
}

/// Parses a DVC-style boolean.
fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Resolves remote `name` (or the `[core] remote` default) into a ready [`RemoteConfig`].
pub fn resolve_remote(repo: &Repo, name: Option<&str>) -> Result<RemoteConfig> {
    resolve_remote_with_env(repo, name, &|k| std::env::var(k).ok())
}

/// As [`resolve_remote`], with the environment supplied by `env` (for tests).
pub fn resolve_remote_with_env(
    repo: &Repo,
    name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RemoteConfig> {
    let all = load_remotes(repo)?;
    let name = match name.map(str::to_string).or(all.default.clone()) {
        Some(n) => n,
        None => {
            return Err(VersionError::Other(format!(
                "no remote given and no default remote in {}; use -r NAME or `taxon data remote add -d NAME URL`",
                ConfigLevel::Repo.path(repo).display()
            )));
        }
    };
    let Some(keys) = all.remotes.get(&name) else {
        let known: Vec<&str> = all.remotes.keys().map(String::as_str).collect();
        return Err(VersionError::Other(format!(
            "remote {name:?} is not configured in {} (known: {})",
            ConfigLevel::Repo.path(repo).display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let url_str = keys.get("url").ok_or_else(|| VersionError::InvalidFile {
        path: ConfigLevel::Repo.path(repo),
        message: format!("remote {name:?} has no url"),
    })?;
    let url = parse_url(repo, url_str)?;
    let get = |k: &str, e: &str| keys.get(k).cloned().or_else(|| env(e));
    let taxon = load_taxon_options(repo, &name)?;
    let taxon_path = repo.taxon_dir().join("config");
    let bad = |key: &str, value: &str, expected: &str| VersionError::InvalidFile {
        path: taxon_path.clone(),
        message: format!("remote {name:?}: {key} = {value:?} is not {expected}"),
    };
    let encrypt = match taxon.get("encrypt") {
        Some(v) => parse_bool(v).ok_or_else(|| bad("encrypt", v, "true or false"))?,
        None => false,
    };
    let jobs = match taxon.get("jobs").or_else(|| keys.get("jobs")) {
        Some(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=1024).contains(n))
                .ok_or_else(|| bad("jobs", v, "a number from 1 to 1024"))?,
        ),
        None => None,
    };
    let multipart_threshold = match taxon.get("multipart_threshold") {
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad("multipart_threshold", v, "a positive byte count"))?,
        None => DEFAULT_MULTIPART_THRESHOLD,
    };
    let part_size = match taxon.get("part_size") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= MIN_PART_SIZE)
            .ok_or_else(|| {
                bad(
                    "part_size",
                    v,
                    &format!("a byte count of at least {MIN_PART_SIZE} (S3's minimum part)"),
                )
            })?,
        None => DEFAULT_PART_SIZE,
    };
    let key_file = taxon.get("key_file").map(|p| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            repo.root.join(p)
        }
    });
    Ok(RemoteConfig {
        name: name.clone(),
        url,
        endpoint_url: get("endpointurl", "AWS_ENDPOINT_URL"),
        region: get("region", "AWS_DEFAULT_REGION"),
        access_key_id: get("access_key_id", "AWS_ACCESS_KEY_ID").map(Secret::new),
        secret_access_key: get("secret_access_key", "AWS_SECRET_ACCESS_KEY").map(Secret::new),
        encrypt,
        key_file,
        jobs,
        multipart_threshold,
        part_size,
    })
}

/// Parses a remote URL; relative local paths are relative to `.dvc/` (as DVC resolves them).
pub fn parse_url(repo: &Repo, url: &str) -> Result<RemoteUrl> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(VersionError::Other(format!(
                "remote url {url:?} has no bucket (expected s3://bucket/prefix)"
            )));
        }
        return Ok(RemoteUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        });
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme != "file" {
            return Err(VersionError::Other(format!(
                "remote url {url:?}: scheme {scheme}:// is not supported (use a local folder or s3://)"
            )));
        }
    }
    let path = PathBuf::from(url.strip_prefix("file://").unwrap_or(url));
    let path = if path.is_absolute() {
        path
    } else {
        repo.dvc_dir().join(path)
    };
    Ok(RemoteUrl::Local(normalize(&path)))
}

/// Removes `.` and `..` components lexically (the folder may not exist yet).
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".dvc")).unwrap();
        std::fs::create_dir_all(dir.path().join(".taxon")).unwrap();
        let repo = Repo {
            root: dir.path().to_path_buf(),
        };
        (dir, repo)
    }

    const DVC_CONFIG: &str = "[core]\n    remote = store\n['remote \"store\"']\n    url = s3://bucket/some/prefix\n    endpointurl = http://127.0.0.1:9000\n['remote \"backup\"']\n    url = ../../backup\n";

    #[test]
    fn reads_dvc_dialect_and_local_overrides() {
        let (_d, repo) = repo();
        std::fs::write(repo.dvc_dir().join("config"), DVC_CONFIG).unwrap();
        std::fs::write(
            repo.dvc_dir().join("config.local"),
            "['remote \"store\"']\n    access_key_id = AKIA\n    secret_access_key = hunter2\n    endpointurl = http://127.0.0.1:9999\n",
        )
        .unwrap();
        let no_env = |_: &str| None;
        let r = resolve_remote_with_env(&repo, None, &no_env).unwrap();
        assert_eq!(r.name, "store");
        assert_eq!(
            r.url,
            RemoteUrl::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into()
            }
        );
        assert_eq!(r.endpoint_url.as_deref(), Some("http://127.0.0.1:9999"));
        assert_eq!(r.access_key_id.as_ref().unwrap().expose(), "AKIA");
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("AKIA"), "{dbg}");
        assert!(!r.encrypt);
        assert_eq!(r.multipart_threshold, DEFAULT_MULTIPART_THRESHOLD);

        let b = resolve_remote_with_env(&repo, Some("backup"), &no_env).unwrap();
        let expected = normalize(&repo.root.join("../backup"));
        assert_eq!(b.url, RemoteUrl::Local(expected));
    }

    #[test]
    fn env_fills_only_what_config_leaves_out() {
        let (_d, repo) = repo();
        std::fs::write(repo.dvc_dir().join("config"), DVC_CONFIG).unwrap();
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("from-env".to_string()),
            "AWS_ENDPOINT_URL" => Some("http://elsewhere".to_string()),
            "AWS_DEFAULT_REGION" => Some("eu-west-3".to_string()),
            _ => None,
        };
        let r = resolve_remote_with_env(&repo, Some("store"), &env).unwrap();
        assert_eq!(r.access_key_id.unwrap().expose(), "from-env");
        assert_eq!(r.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(r.region.as_deref(), Some("eu-west-3"));
        assert!(r.secret_access_key.is_none());
    }

    #[test]
    fn taxon_options_are_read_and_unknown_keys_refused() {
        let (_d, repo) = repo();
        std::fs::write(repo.dvc_dir().join("config"), DVC_CONFIG).unwrap();
        let cfg = repo.taxon_dir().join("config");
        std::fs::write(
            &cfg,
            "['remote \"store\"']\n    encrypt = true\n    key_file = keys/k\n    jobs = 3\n    multipart_threshold = 1048576\n",
        )
        .unwrap();
        let r = resolve_remote_with_env(&repo, None, &|_| None).unwrap();
        assert!(r.encrypt);
        assert_eq!(r.jobs, Some(3));
        assert_eq!(r.multipart_threshold, 1 << 20);
        assert_eq!(r.key_file, Some(repo.root.join("keys/k")));

        std::fs::write(&cfg, "['remote \"store\"']\n    encrypted = yes\n").unwrap();
        let err = resolve_remote_with_env(&repo, None, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key \"encrypted\""), "{err}");

        std::fs::write(&cfg, "['remote \"store\"']\n    jobs = 0\n").unwrap();
        let err = resolve_remote_with_env(&repo, None, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("jobs"), "{err}");
    }

    #[test]
    fn missing_remote_and_bad_lines_are_explained() {
        let (_d, repo) = repo();
        let err = resolve_remote_with_env(&repo, None, &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no default remote"), "{err}");
        std::fs::write(repo.dvc_dir().join("config"), DVC_CONFIG).unwrap();
        let err = resolve_remote_with_env(&repo, Some("nope"), &|_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("backup, store"), "{err}");

        let err = IniDoc::parse("[core]\nremote store\n", Path::new("cfg"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cfg:2:"), "{err}");
    }

    #[test]
    fn edits_round_trip_in_dvc_spelling() {
        let mut doc = IniDoc::parse(DVC_CONFIG, Path::new("c")).unwrap();
        doc.set(&remote_section("new"), "url", "/tmp/x");
        doc.set("core", "remote", "new");
        assert!(doc.remove_section(&remote_section("backup")));
        let text = doc.render();
        assert!(
            text.contains("['remote \"new\"']\n    url = /tmp/x\n"),
            "{text}"
        );
        assert!(text.starts_with("[core]\n    remote = new\n"), "{text}");
        let again = IniDoc::parse(&text, Path::new("c")).unwrap();
        assert_eq!(again, doc);
        assert!(doc.unset(&remote_section("new"), "url"));
        assert!(doc.section(&remote_section("new")).is_none());
    }
}

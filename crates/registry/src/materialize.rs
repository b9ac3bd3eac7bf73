//! Turning a version back into a model folder that can be loaded: download its files into the
//! local cache (`<cache>/<name>/<version>/`), checking every file's md5 and size against the
//! version record and `model.json` against the record, and refusing on any mismatch.
//!
//! Downloads go to a temporary folder beside the final one, renamed into place only once every
//! file is verified, so a killed download never leaves a half folder. A cached folder is
//! re-verified each time it is handed out; a tampered one is refused (not silently replaced),
//! with the folder to delete named in the error.

use std::path::{Path, PathBuf};

use taxon_core::model::ModelDescription;

use crate::artifacts::md5_file;
use crate::check::{files_agree, is_safe_rel};
use crate::error::RegistryError;
use crate::names::validate_model_name;
use crate::registry::Registry;
use crate::types::ModelVersion;

const TMP_PREFIX: &str = ".tmp-";

impl Registry {
    /// Where version `v`'s verified folder is cached.
    pub fn cache_folder(&self, v: &ModelVersion) -> PathBuf {
        self.cache_dir.join(&v.name).join(v.version.to_string())
    }

    /// A local model folder holding exactly the files of `v`, every one verified against the
    /// record: from the cache when it is there (re-verified), downloaded otherwise. Blocks on
    /// the artifact store: call it from a plain thread, not from inside an async runtime.
    pub fn materialize(&self, v: &ModelVersion) -> Result<PathBuf, RegistryError> {
        validate_model_name(&v.name)?;
        if let Some(bad) = v.files.iter().find(|f| !is_safe_rel(&f.name)) {
            return Err(RegistryError::Corrupt {
                path: self.db_path.clone(),
                what: format!("{} v{}", v.name, v.version),
                message: format!("file name {:?} is not a plain relative path", bad.name),
            });
        }
        let dest = self.cache_folder(v);
        if dest.exists() {
            verify_cached(v, &dest)?;
            return Ok(dest);
        }
        let parent = dest.parent().unwrap_or(&self.cache_dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(RegistryError::io(&parent))?;
        remove_stale_temps(&parent, v.version);
        let tmp = parent.join(format!(
            "{TMP_PREFIX}{}-{}-{}",
            v.version,
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        std::fs::create_dir(&tmp).map_err(RegistryError::io(&tmp))?;
        if let Err(e) = self.download_into(v, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        match std::fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest),
            // Another process finished the same version first: use (and check) its folder.
            Err(_) if dest.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                verify_cached(v, &dest)?;
                Ok(dest)
            }
            Err(source) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(RegistryError::Io { path: dest, source })
            }
        }
    }

    fn download_into(&self, v: &ModelVersion, dir: &Path) -> Result<(), RegistryError> {
        for f in &v.files {
            let path = dir.join(&f.name);
            if let Some(sub) = path.parent().filter(|p| *p != dir) {
                std::fs::create_dir_all(sub).map_err(RegistryError::io(sub))?;
            }
            let (md5, size) = self.store.download(&f.md5, &path)?;
            if md5 != f.md5 || size != f.bytes {
                return Err(RegistryError::ArtifactMismatch {
                    name: v.name.clone(),
                    version: v.version,
                    file: f.name.clone(),
                    expected: f.md5.to_string(),
                    actual: md5.to_string(),
                    expected_bytes: f.bytes,
                    actual_bytes: size,
                });
            }
        }
        description_agrees(v, dir)
    }
}

/// Checks a cached folder file by file against the record.
fn verify_cached(v: &ModelVersion, dir: &Path) -> Result<(), RegistryError> {
    for f in &v.files {
        let path = dir.join(&f.name);
        let actual = match md5_file(&path) {
            Ok((md5, size)) if md5 == f.md5 && size == f.bytes => continue,
            Ok((md5, size)) => format!("md5 {md5} ({size} bytes)"),
            Err(e) => format!("no readable file ({e})"),
        };
        return Err(RegistryError::CacheTampered {
            name: v.name.clone(),
            version: v.version,
            folder: dir.to_path_buf(),
            file: f.name.clone(),
            expected: format!("{} ({} bytes)", f.md5, f.bytes),
            actual,
        });
    }
    description_agrees(v, dir)
}

/// Checks the folder's `model.json` against the version record: model type, labels, input
/// limits, and every file it lists.
fn description_agrees(v: &ModelVersion, dir: &Path) -> Result<(), RegistryError> {
    let context = format!("{} v{} ({})", v.name, v.version, dir.display());
    let mismatch = |message: String| RegistryError::DescriptionMismatch {
        context: context.clone(),
        message,
    };
    let desc = ModelDescription::read(dir).map_err(|e| mismatch(e.to_string()))?;
    if desc.model_type != v.model_type {
        return Err(mismatch(format!(
            "model_type {:?}, recorded {:?}",
            desc.model_type, v.model_type
        )));
    }
    if desc.labels != v.labels {
        return Err(mismatch(format!(
            "labels {:?}, recorded {:?}",
            desc.labels, v.labels
        )));
    }
    if desc.input != v.input {
        return Err(mismatch(format!(
            "input {:?}, recorded {:?}",
            desc.input, v.input
        )));
    }
    files_agree(&desc, &v.files).map_err(mismatch)
}

/// Removes temporary folders of `version` left by processes that no longer run (a download
/// that was killed); folders of live processes are left alone.
fn remove_stale_temps(parent: &Path, version: u64) {
    if !Path::new("/proc/self").exists() {
        return; // no way to tell a live process here
    }
    let prefix = format!("{TMP_PREFIX}{version}-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

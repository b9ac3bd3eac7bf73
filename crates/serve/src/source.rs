//! Where the served model comes from: the [`ModelSource`] trait (asked at start, on each poll
//! and on admin reload) and [`DirSource`], a model folder on disk. The registry's alias source
//! implements the same trait.

use std::path::{Path, PathBuf};

use taxon_core::Md5Hex;
use taxon_core::model::MODEL_JSON;

/// Says what should be served now. Implementations may block (they are called from
/// `spawn_blocking`).
pub trait ModelSource: Send + Sync + 'static {
    /// Human name for logs ("folder ./model", "registry default@production").
    fn describe(&self) -> String;
    /// What should be served now: an identity and a local folder to load.
    fn current(&self) -> Result<SourceModel, SourceError>;

    /// The alias this source follows, when it follows one (a moved alias means "reload now").
    fn alias(&self) -> Option<&str> {
        None
    }

    /// Moves `alias` of this source's registry model to `version` on behalf of `actor`
    /// (`PUT /v1/admin/aliases/{alias}`). Sources without a registry refuse.
    fn move_alias(
        &self,
        alias: &str,
        version: u64,
        force: bool,
        actor: &str,
    ) -> Result<AliasMove, SourceError> {
        let _ = (alias, version, force, actor);
        Err(SourceError::Unsupported {
            what: self.describe(),
        })
    }
}

/// An alias change made through the server, as the registry recorded it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct AliasMove {
    /// Registered model name.
    pub name: String,
    /// The alias moved.
    pub alias: String,
    /// The version it pointed at before (none: a new alias).
    pub from_version: Option<u64>,
    /// The version it points at now.
    pub to_version: Option<u64>,
    /// Whether `force` overrode the promotion gate.
    pub forced: bool,
    /// The gate's verdict or the override's reason, as recorded in the alias history.
    pub reason: Option<String>,
}

/// One model to serve: its identity and the folder holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceModel {
    /// Model name (a folder name, a registry model name).
    pub name: String,
    /// Version within that name; a different version means "swap".
    pub version: String,
    /// Local model folder (`model.json` and weights).
    pub dir: PathBuf,
}

/// Why a source could not say what to serve.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file of the source could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The folder is not a model folder.
    #[error("{}: {message}", path.display())]
    NotAModel { path: PathBuf, message: String },
    /// The source has no aliases to move (a model folder).
    #[error(
        "{what} has no aliases: serve a registry alias (taxon serve --alias) to move aliases through the server"
    )]
    Unsupported { what: String },
    /// The registry refused an alias change (the promotion gate).
    #[error("{message}")]
    Refused { message: String },
    /// Another kind of source (a registry) failed; `what` is its description.
    #[error("{what}: {source}")]
    Backend {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A model folder served as is. Its name is the folder name; its version is the first 12 hex
/// digits of the md5 of `model.json` (which records every weight file's md5), so a folder whose
/// content changes is a new version on the next poll or reload.
#[derive(Clone, Debug)]
pub struct DirSource {
    dir: PathBuf,
    name: String,
}

impl DirSource {
    /// A source for `dir`; fails when `dir` is not a folder holding `model.json`.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, SourceError> {
        let dir = dir.into();
        let meta = std::fs::metadata(&dir).map_err(|source| SourceError::Io {
            path: dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::NotAModel {
                path: dir,
                message: "not a folder (expected a model folder with model.json)".into(),
            });
        }
        if !dir.join(MODEL_JSON).is_file() {
            return Err(SourceError::NotAModel {
                path: dir.clone(),
                message: format!("no {MODEL_JSON} in this folder: is it a trained model folder?"),
            });
        }
        let name = std::fs::canonicalize(&dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(Self { dir, name })
    }

    /// The folder served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl ModelSource for DirSource {
    fn describe(&self) -> String {
        format!("folder {}", self.dir.display())
    }

    fn current(&self) -> Result<SourceModel, SourceError> {
        let path = self.dir.join(MODEL_JSON);
        let bytes = std::fs::read(&path).map_err(|source| SourceError::Io { path, source })?;
        let md5 = Md5Hex::of_bytes(&bytes);
        Ok(SourceModel {
            name: self.name.clone(),
            version: md5.as_str()[..12].to_string(),
            dir: self.dir.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_source_versions_follow_model_json() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("news");
        std::fs::create_dir(&dir).unwrap();
        assert!(matches!(
            DirSource::new(&dir),
            Err(SourceError::NotAModel { .. })
        ));
        std::fs::write(dir.join(MODEL_JSON), "{\"a\": 1}").unwrap();
        let source = DirSource::new(&dir).unwrap();
        let first = source.current().unwrap();
        assert_eq!(first.name, "news");
        assert_eq!(first.version.len(), 12);
        assert_eq!(source.current().unwrap(), first);
        std::fs::write(dir.join(MODEL_JSON), "{\"a\": 2}").unwrap();
        assert_ne!(source.current().unwrap().version, first.version);
    }

    #[test]
    fn dir_source_refuses_a_missing_folder() {
        let err = DirSource::new("/nonexistent/model")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/model"), "{err}");
    }
}

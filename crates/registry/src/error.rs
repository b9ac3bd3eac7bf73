//! The errors of the registry: the database, the artifact store, names and references that do
//! not resolve, runs that cannot be registered, artifacts whose content does not match their
//! record, and the promotion gate's refusals. Every message says what, where, and what to do.

use std::path::PathBuf;

use crate::gate::GateRefusal;

/// Everything that can go wrong while registering, promoting or loading a model version.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: taxon_db::DbError,
    },
    #[error(
        "registry database {path} has schema version {found}, this taxon reads up to {supported}; upgrade taxon"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("registry database {path}: {what} is corrupt: {message}")]
    Corrupt {
        path: PathBuf,
        what: String,
        message: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("artifact store {url:?}: {message}")]
    ArtifactUrl { url: String, message: String },
    #[error("artifact store {url:?}: {source}")]
    Remote {
        url: String,
        #[source]
        source: Box<taxon_version::RemoteError>,
    },
    #[error("invalid {kind} name {name:?}: {rule}")]
    InvalidName {
        kind: &'static str,
        name: String,
        rule: String,
    },
    #[error(
        "no model named {name:?} in the registry (models: {})",
        list_or_none(known)
    )]
    UnknownModel { name: String, known: Vec<String> },
    #[error("model {name:?} has no version {version} (versions 1 to {latest})")]
    UnknownVersion {
        name: String,
        version: u64,
        latest: u64,
    },
    #[error(
        "model {name:?} has no alias {alias:?} (aliases: {})",
        list_or_none(aliases)
    )]
    UnknownAlias {
        name: String,
        alias: String,
        aliases: Vec<String>,
    },
    #[error("run {run_id} cannot be registered: {reason}")]
    NotRegistrable { run_id: String, reason: String },
    #[error(
        "run {run_id}: model file {file} ({path}) changed since the run recorded it: expected md5 {expected}, found {actual}; retrain, or register the run that made this folder"
    )]
    ArtifactChanged {
        run_id: String,
        file: String,
        path: String,
        expected: String,
        actual: String,
    },
    #[error(
        "run {run_id} is already registered as {name} v{version}; pass --allow-duplicate to register it again"
    )]
    DuplicateRun {
        name: String,
        run_id: String,
        version: u64,
    },
    #[error(
        "{name} v{version}: file {file} from the artifact store has md5 {actual} ({actual_bytes} bytes), the registry recorded md5 {expected} ({expected_bytes} bytes); refusing to load a corrupt or tampered artifact"
    )]
    ArtifactMismatch {
        name: String,
        version: u64,
        file: String,
        expected: String,
        actual: String,
        expected_bytes: u64,
        actual_bytes: u64,
    },
    #[error(
        "{name} v{version}: cached file {} has {actual}, the registry recorded md5 {expected}; refusing to load it. Delete the folder {} to download the version again",
        folder.join(file).display(),
        folder.display()
    )]
    CacheTampered {
        name: String,
        version: u64,
        folder: PathBuf,
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{context}: model.json disagrees with the registry record: {message}")]
    DescriptionMismatch { context: String, message: String },
    #[error("{0}")]
    Gate(GateRefusal),
    #[error("cannot start the artifact transfer runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl RegistryError {
    /// True when the promotion gate refused an alias move (a check failed, not an error).
    pub fn is_gate_refusal(&self) -> bool {
        matches!(self, Self::Gate(_))
    }

    /// A closure mapping a database error on `path` (a file, or a PostgreSQL URL shown
    /// without its password) to [`RegistryError::Db`].
    pub(crate) fn db(path: &std::path::Path) -> impl Fn(taxon_db::DbError) -> Self + '_ {
        move |source| Self::Db {
            path: crate::registry::shown(path),
            source,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

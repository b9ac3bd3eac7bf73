//! The errors of run tracking: the store (SQLite or PostgreSQL), id resolution, and the two mirrors (MLflow,
//! Pushgateway), each naming what and where.

use std::path::PathBuf;

/// Everything that can go wrong while recording, reading or mirroring runs.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error("run store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: taxon_db::DbError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("run store {path}: run {run_id}, field {field}: {message}")]
    Corrupt {
        path: PathBuf,
        run_id: String,
        field: &'static str,
        message: String,
    },
    #[error("no run with id {id:?} (`taxon runs list` shows the ids)")]
    UnknownRun { id: String },
    #[error("run id prefix {id:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousRun { id: String, candidates: Vec<String> },
    #[error("MLflow {url}: {message}")]
    Mlflow { url: String, message: String },
    #[error("Pushgateway {url}: {message}")]
    Pushgateway { url: String, message: String },
}

impl TrackError {
    pub(crate) fn db(path: &std::path::Path) -> impl Fn(taxon_db::DbError) -> Self + '_ {
        move |source| Self::Db {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = TrackError> = std::result::Result<T, E>;

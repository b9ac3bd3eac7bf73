//! The monitor stage's errors.

use std::path::PathBuf;

use taxon_core::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{} has no reference profile (profile.json in model.json's files): build one with `taxon monitor profile {} DATA`",
        dir.display(), dir.display()
    )]
    NoProfile { dir: PathBuf },
    #[error("the profiles are of different models: labels {expected:?} vs {found:?}")]
    Labels {
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error(
        "the profiles project embeddings differently (fitted on different reference texts): \
         they cannot be merged"
    )]
    Projection,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Read(#[from] taxon_dataset::ReadError),
}

//! The one error type of taxon-train.

use std::path::PathBuf;

use taxon_core::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
    #[error("training config: `{field}` {message}")]
    Missing {
        field: &'static str,
        message: String,
    },
    #[error("training config: `{field}` {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Read(#[from] taxon_dataset::ReadError),
    #[error("{}: {message}", path.display())]
    Dataset { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

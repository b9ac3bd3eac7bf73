//! The error kinds of the store crate.

use std::path::PathBuf;

/// Everything that can go wrong while versioning data or talking to a remote.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not inside a DVC/taxon repository (no .dvc folder found from {0} upwards); run `dvc init` or `taxon data init`"
    )]
    NotARepo(PathBuf),
    #[error("{path}: {message}")]
    InvalidFile { path: PathBuf, message: String },
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    #[error(transparent)]
    Read(#[from] taxon_dataset::ReadError),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })
    }
}

//! The crate's errors: a bad `alerts.yaml` ([`ConfigError`], naming the file, the field and
//! the bad value), and everything else ([`AlertsError`]: history, sending).

use std::path::PathBuf;

/// `alerts.yaml` could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read alerts config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("alerts config {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("alerts config {}: `{field}`: {message}", path.display())]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

/// An error of the alert history or of a send.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("alert history {}: {source}", path.display())]
    History {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the folder of the alert history {}: {source}", path.display())]
    HistoryFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("channel `{channel}`: {message}")]
    Send { channel: String, message: String },
}

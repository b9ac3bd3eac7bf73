//! (being built)

/// Errors talking to a remote.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{0}")]
    Other(String),
}

//! (being built)

/// Errors reading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Other(String),
}

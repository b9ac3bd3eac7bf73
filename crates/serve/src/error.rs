//! The server's library errors: configuration, model source, model loading and self-test,
//! and the socket. HTTP error bodies are a separate type ([`crate::api::ApiError`]).

use std::path::PathBuf;

use taxon_core::model::ModelError;

use crate::source::SourceError;

/// Why the server could not start, load a model or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A configuration value is out of range.
    #[error("server config: `{field}` {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// The model source could not say what to serve.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The model folder did not load.
    #[error("loading model {name} version {version} from {}: {source}", dir.display())]
    Load {
        name: String,
        version: String,
        dir: PathBuf,
        #[source]
        source: Box<ModelError>,
    },
    /// The model loaded but its warm-up predictions are not valid probabilities.
    #[error("model {name} version {version} failed its self-test: {message}")]
    SelfTest {
        name: String,
        version: String,
        message: String,
    },
    /// The source moved to another model while it was loading: the load is discarded.
    #[error(
        "the source changed while {name} version {version} was loading (now {now}); retrying on the next check"
    )]
    SourceMoved {
        name: String,
        version: String,
        now: String,
    },
    /// A blocking task (source query, model load) panicked or was cancelled.
    #[error("{what} did not finish: {message}")]
    Task { what: &'static str, message: String },
    /// The listening socket failed.
    #[error("serving HTTP: {0}")]
    Io(#[from] std::io::Error),
}

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
    /// A key (or flag) of another model type than the one the run trains.
    #[error(
        "{what} is a {owner} option, but this run trains model_type {model_type} \
         (remove it, or set model_type {owner})"
    )]
    OtherModelType {
        /// The flag (`--pooling`), or the config file and its key.
        what: String,
        /// The model type the key belongs to.
        owner: &'static str,
        model_type: &'static str,
    },
    #[error(transparent)]
    Read(#[from] taxon_dataset::ReadError),
    #[error("{}: {message}", path.display())]
    Dataset { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The reference profile could not be computed or written.
    #[error("writing the reference profile: {0}")]
    Profile(#[from] taxon_monitor::MonitorError),
    #[error(transparent)]
    Validate(#[from] taxon_validate::ValidateError),
    #[error(transparent)]
    Version(Box<taxon_version::VersionError>),
    /// The training data failed its expectation suite: training refuses it.
    #[error(
        "{}: fails {} of {total} expectations of {} (training refuses it):\n  {}",
        data.display(),
        failed.len(),
        suite.display(),
        failed.join("\n  ")
    )]
    Expectations {
        data: PathBuf,
        suite: PathBuf,
        total: usize,
        /// One line per failed expectation: its type, column and what was observed.
        failed: Vec<String>,
    },
    /// A checkpoint could not be written or read back.
    #[error("{}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    /// `--resume` with a config that differs from the checkpoint's.
    #[error(
        "{}: cannot resume: config key `{key}` is {checkpoint} in the checkpoint but {now} now \
         (resume with the same config, or train from scratch without --resume)",
        path.display()
    )]
    ResumeConfig {
        path: PathBuf,
        key: String,
        checkpoint: String,
        now: String,
    },
}

impl From<taxon_version::VersionError> for TrainError {
    fn from(e: taxon_version::VersionError) -> Self {
        TrainError::Version(Box::new(e))
    }
}

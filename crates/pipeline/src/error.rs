//! The error kinds of the pipeline crate. Every message names the file (with its line where
//! the YAML parser knows it), the stage and the field at fault.

use std::path::PathBuf;

/// Everything that can go wrong while reading, checking or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A `dvc.yaml`, `dvc.lock` or params file that is not valid YAML.
    #[error("{path}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    /// A key of a pipeline file with a bad value, or one taxon does not support.
    #[error("{path}: {location}: {message}")]
    Invalid {
        path: PathBuf,
        /// `stages.train.deps[1]`, `vars[0]`, ...
        location: String,
        message: String,
    },
    /// A parameter a stage lists (or a `${...}` names) that its params file lacks.
    #[error("{path}: no parameter `{key}` (used by {used_by})")]
    MissingParam {
        path: PathBuf,
        key: String,
        used_by: String,
    },
    #[error("no stage named `{0}` in {1}; `taxon pipeline dag` lists them")]
    UnknownStage(String, PathBuf),
    /// Two stages write the same path (or one inside the other).
    #[error("`{path}` is an output of both stage `{first}` and stage `{second}`")]
    OverlappingOutputs {
        path: String,
        first: String,
        second: String,
    },
    #[error("the stages form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("stage `{stage}`: dependency `{path}` does not exist and no stage writes it")]
    MissingDependency { stage: String, path: String },
    /// A stage's command exited non-zero or was killed; nothing of it was recorded.
    #[error(
        "stage `{stage}` failed: command `{cmd}` {}; its outputs were not recorded in dvc.lock, the next run redoes it",
        match (code, signal) {
            (Some(c), _) => format!("exited with code {c}"),
            (None, Some(s)) => format!("was killed by signal {s}"),
            _ => "ended abnormally".to_string(),
        }
    )]
    StageFailed {
        stage: String,
        cmd: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
    #[error(
        "stage `{stage}`: its command succeeded but did not write the output `{path}`; nothing was recorded"
    )]
    MissingOutput { stage: String, path: String },
    #[error(
        "another `taxon pipeline` run holds the lock {0} (a crashed run releases it with its process); wait for it to finish"
    )]
    Locked(PathBuf),
    /// Hashing or the cache (boxed: it is large, and errors are the cold path).
    #[error(transparent)]
    Version(Box<taxon_version::VersionError>),
}

impl From<taxon_version::VersionError> for PipelineError {
    fn from(e: taxon_version::VersionError) -> Self {
        Self::Version(Box::new(e))
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| PipelineError::Io {
            path: path.into(),
            source,
        })
    }
}

/// Reads a YAML (or JSON) file into a value, with the line of a syntax error.
pub(crate) fn read_yaml(path: &std::path::Path) -> Result<serde_yaml_ng::Value> {
    let text = std::fs::read_to_string(path).at(path)?;
    parse_yaml(&text, path)
}

/// Parses YAML text read from `path`.
pub(crate) fn parse_yaml(text: &str, path: &std::path::Path) -> Result<serde_yaml_ng::Value> {
    if text.trim().is_empty() {
        return Ok(serde_yaml_ng::Value::Null);
    }
    serde_yaml_ng::from_str(text).map_err(|e| PipelineError::Syntax {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()),
        message: e.to_string(),
    })
}

//! The model contract: what every model type (linear, lstm, bert) offers to training,
//! evaluation, the registry and the server, and the `model.json` that describes a model folder.
//!
//! A model folder holds `model.json` (a [`ModelDescription`]) next to the weight files it
//! lists. Loading reads `model.json` first and dispatches on `model_type`; the model crate then
//! checks that every listed file exists, has the recorded md5, and that tensor shapes agree with
//! the description. Any disagreement is a [`ModelError`] naming the file and the field.

use std::any::Any;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::hash::Md5Hex;

/// Name of the description file in every model folder.
pub const MODEL_JSON: &str = "model.json";

/// Version of the `model.json` layout this build writes and reads.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// A trained text classifier. Object-safe: consumers hold a `Box<dyn TextClassifier>` and never
/// depend on a concrete model type. Training is a separate function per model type.
///
/// Prediction is two steps, so a server can prepare a text once, where the request arrives,
/// and run the model on it later, in a batch with others: [`encode`](Self::encode) turns a
/// text into the model's own input (tokens, feature rows) with its token count, and
/// [`predict_encoded`](Self::predict_encoded) scores such inputs;
/// [`predict_batch`](Self::predict_batch) does both for callers that hold texts. Every step can fail with a
/// [`ModelError`]; a model never answers with made-up probabilities.
pub trait TextClassifier: Send + Sync {
    /// The class labels, in the order of the probabilities that `predict_batch` returns.
    fn labels(&self) -> &[String];

    /// Prepares `text` for [`predict_encoded`](Self::predict_encoded): what the model looks at
    /// (tokens, truncated as the model truncates them), and how many tokens that is, for the
    /// server's batch token budget and length buckets.
    fn encode(&self, text: &str) -> Result<Encoded, ModelError>;

    /// One probability vector (summing to 1, one entry per label) per input, in order. The
    /// inputs must come from this model's [`encode`](Self::encode); one of another model type
    /// is a [`ModelError::Inference`].
    fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError>;

    /// One probability vector (summing to 1, one entry per label) per input text: `encode`,
    /// then `predict_encoded`.
    fn predict_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let inputs = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&Encoded> = inputs.iter().collect();
        self.predict_encoded(&refs)
    }

    /// Writes the weights and `model.json` into `dir` (created if missing).
    fn save(&self, dir: &Path) -> Result<(), ModelError>;

    /// What `model.json` records about this model.
    fn describe(&self) -> ModelDescription;
}

/// A text as one model type prepared it ([`TextClassifier::encode`]): an opaque value that
/// only that model type reads back, and its token count.
pub struct Encoded {
    tokens: usize,
    input: Box<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Encoded {
    /// `input` (a model type's own representation) that counts `tokens` tokens.
    pub fn new<T: Any + Send + Sync>(tokens: usize, input: T) -> Self {
        Self {
            tokens,
            input: Box::new(input),
        }
    }

    /// How many tokens the model looks at (special tokens included, after truncation).
    pub fn tokens(&self) -> usize {
        self.tokens
    }

    /// The representation, when it is a `T`; otherwise a [`ModelError::Inference`] saying
    /// that a `model_type` model was given another model type's input.
    pub fn input<T: Any>(&self, model_type: &str) -> Result<&T, ModelError> {
        self.input
            .downcast_ref::<T>()
            .ok_or_else(|| ModelError::Inference {
                model_type: model_type.to_string(),
                message: format!(
                    "the input was not encoded by a {model_type} model (expected {})",
                    std::any::type_name::<T>()
                ),
            })
    }
}

/// The contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDescription {
    /// Layout version of this file ([`MODEL_FORMAT_VERSION`]).
    pub format_version: u32,
    /// Which implementation loads the folder: `linear`, `lstm`, ...
    pub model_type: String,
    /// Class labels in output order.
    pub labels: Vec<String>,
    /// The model's hyper-parameters (its `model_config`), as the model type defines them.
    pub params: serde_json::Value,
    /// What inputs the model accepts.
    pub input: InputLimits,
    /// The weight files of the folder, with their sizes and md5 hashes.
    pub files: Vec<ModelFile>,
    /// The program that wrote the folder (`taxon 0.1.0`).
    pub created_by: String,
}

/// Limits on the inputs a model accepts; `None` means unbounded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputLimits {
    /// Tokens beyond this many are ignored.
    pub max_tokens: Option<u64>,
    /// Whether the model lower-cases text before tokenizing.
    pub lowercase: bool,
}

/// One file of a model folder, as recorded in `model.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// File name relative to the folder.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// md5 of the contents.
    pub md5: Md5Hex,
}

impl ModelDescription {
    /// Reads and parses `dir/model.json`, checking its format version.
    pub fn read(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(MODEL_JSON);
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let desc: Self = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        if desc.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::Mismatch {
                path,
                field: "format_version".into(),
                expected: MODEL_FORMAT_VERSION.to_string(),
                found: desc.format_version.to_string(),
            });
        }
        Ok(desc)
    }

    /// Writes `dir/model.json` (pretty JSON).
    pub fn write(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(MODEL_JSON);
        let text = serde_json::to_string_pretty(self).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text + "\n").map_err(|source| ModelError::Io { path, source })
    }

    /// The recorded entry for `name`, or a mismatch error naming `model.json` and `files`.
    pub fn file(&self, dir: &Path, name: &str) -> Result<&ModelFile, ModelError> {
        self.files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ModelError::Mismatch {
                path: dir.join(MODEL_JSON),
                field: "files".into(),
                expected: format!("an entry for {name}"),
                found: format!(
                    "[{}]",
                    self.files
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// Reads `dir/name` and checks its size and md5 against the entry in `files`.
    pub fn read_checked(&self, dir: &Path, name: &str) -> Result<Vec<u8>, ModelError> {
        let entry = self.file(dir, name)?;
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        if bytes.len() as u64 != entry.bytes {
            return Err(ModelError::Mismatch {
                path,
                field: format!("{MODEL_JSON} files[{name}].bytes"),
                expected: entry.bytes.to_string(),
                found: bytes.len().to_string(),
            });
        }
        let md5 = Md5Hex::of_bytes(&bytes);
        if md5 != entry.md5 {
            return Err(ModelError::Mismatch {
                path,
                field: format!("{MODEL_JSON} files[{name}].md5"),
                expected: entry.md5.to_string(),
                found: md5.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Decodes `params` into a model type's configuration.
    pub fn params_as<T: serde::de::DeserializeOwned>(&self, dir: &Path) -> Result<T, ModelError> {
        serde_json::from_value(self.params.clone()).map_err(|source| ModelError::Json {
            path: dir.join(MODEL_JSON),
            source,
        })
    }
}

/// Errors saving, loading, training, describing or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
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
    #[error("{}: field `model_type`: unknown model type {found:?} (known: {known})", path.display())]
    UnknownModelType {
        path: PathBuf,
        found: String,
        known: String,
    },
    #[error("{}: field `{field}` does not match: expected {expected}, found {found}", path.display())]
    Mismatch {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },
    #[error("{}: bad weights file: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    #[error("model config: `{field}` {message}")]
    InvalidConfig { field: String, message: String },
    /// The training data holds fewer distinct labels than a classifier needs.
    #[error("training data: need at least {needed} distinct labels, found {found}")]
    TooFewLabels { needed: usize, found: usize },
    /// There is nothing to train on.
    #[error("training data: no training examples")]
    NoExamples,
    /// An example's label index is not one of the model's labels (a caller's bug).
    #[error("training data: label index {index} out of range for {labels} labels")]
    LabelOutOfRange { index: usize, labels: usize },
    /// No text of the training data gives the model a feature to learn from.
    #[error("training data: no features in {texts} training texts (all empty?)")]
    NoFeatures { texts: usize },
    /// A tensor computation of a model failed (a candle error: shapes, memory, ...).
    #[error("{model_type} {step}: {source}")]
    Compute {
        model_type: &'static str,
        /// What the model was doing: `forward`, `backward`, `optimizer step`, ...
        step: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A pool of worker threads could not be started.
    #[error("cannot start {threads} threads: {source}")]
    Threads {
        threads: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Scoring failed (a tensor operation, a tokenizer, an input of another model): the
    /// caller gets no probabilities for these inputs.
    #[error("{model_type} model: prediction failed: {message}")]
    Inference { model_type: String, message: String },
    /// A training checkpoint does not belong to the run resuming from it.
    #[error(
        "checkpoint does not match this training run: `{field}` is {found}, expected {expected}"
    )]
    CheckpointMismatch {
        field: String,
        expected: String,
        found: String,
    },
}

impl ModelError {
    /// A failed tensor computation of `model_type` while doing `step`.
    pub fn compute(
        model_type: &'static str,
        step: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ModelError::Compute {
            model_type,
            step: step.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_input_reads_back_only_as_its_own_type() {
        let e = Encoded::new(3, vec![7u32, 8, 9]);
        assert_eq!(e.tokens(), 3);
        assert_eq!(e.input::<Vec<u32>>("lstm").unwrap(), &vec![7, 8, 9]);
        let err = e.input::<String>("bert").unwrap_err();
        assert!(matches!(&err, ModelError::Inference { model_type, .. } if model_type == "bert"));
        assert!(
            err.to_string().contains("not encoded by a bert model"),
            "{err}"
        );
    }
}

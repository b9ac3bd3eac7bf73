//! The training config (`train.yaml`) and the command-line flags that override it.
//!
//! Layering: model defaults < config file < flags. Unknown keys are errors (with line and
//! column from the YAML parser). Relative paths are taken from the current directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Share of the training data held out for validation when no validation file is given.
pub const DEFAULT_VALIDATION_RATIO: f64 = 0.1;

/// Keys of a training config file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Which model to train (`linear`).
    pub model_type: Option<String>,
    /// The model type's own hyper-parameters (for `linear`: dim, word_ngrams, minn, maxn,
    /// buckets, lowercase, max_tokens, weighting).
    pub model_config: Option<serde_json::Value>,
    pub learning_rate: Option<f32>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    /// Training data: a JSONL file of `{"text", "label"}` objects.
    pub data: Option<PathBuf>,
    /// Validation data; when absent, `validation_ratio` of `data` is held out (stratified;
    /// 0 trains on all of `data` without validation).
    pub validation: Option<PathBuf>,
    pub validation_ratio: Option<f64>,
    /// Folder the model, its description and metrics are written to.
    pub output: Option<PathBuf>,
    /// Worker threads (default: every core).
    pub threads: Option<usize>,
}

/// Values given on the command line; each one set replaces the config key of the same name.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub model_type: Option<String>,
    pub learning_rate: Option<f32>,
    pub epochs: Option<usize>,
    pub seed: Option<u64>,
    pub data: Option<PathBuf>,
    pub validation: Option<PathBuf>,
    pub validation_ratio: Option<f64>,
    pub output: Option<PathBuf>,
    pub threads: Option<usize>,
}

impl TrainConfig {
    /// Parses a YAML config file.
    pub fn from_file(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses YAML text; `path` is only used in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, TrainError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml_ng::from_str(text).map_err(|source| TrainError::Config {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Applies flags over the file's keys.
    pub fn with_overrides(mut self, o: Overrides) -> Self {
        macro_rules! over {
            ($($f:ident),*) => { $( if o.$f.is_some() { self.$f = o.$f; } )* };
        }
        over!(
            model_type,
            learning_rate,
            epochs,
            seed,
            data,
            validation,
            output,
            threads
        );
        self
    }

    /// Checks that the keys a run needs are present and in range.
    pub fn check(&self) -> Result<(), TrainError> {
        if self.data.is_none() {
            return Err(TrainError::Missing {
                field: "data",
                message: "is required: set it in the config or pass --data FILE".into(),
            });
        }
        if self.output.is_none() {
            return Err(TrainError::Missing {
                field: "output",
                message: "is required: set it in the config or pass --output DIR".into(),
            });
        }
        if let Some(r) = self.validation_ratio
            && !(0.0..0.5).contains(&r)
        {
            return Err(TrainError::Invalid {
                field: "validation_ratio",
                message: format!("must be in [0, 0.5) (0: no validation), got {r}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_an_error_naming_it_and_the_line() {
        let err = TrainConfig::from_yaml("epochs: 3\nepoch_count: 4\n", Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml"), "{err}");
        assert!(err.contains("epoch_count"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn flags_override_file_keys() {
        let cfg = TrainConfig::from_yaml(
            "model_type: linear\nepochs: 3\nlearning_rate: 0.5\nmodel_config: {dim: 20}\n",
            Path::new("t.yaml"),
        )
        .unwrap()
        .with_overrides(Overrides {
            epochs: Some(7),
            ..Default::default()
        });
        assert_eq!(cfg.epochs, Some(7));
        assert_eq!(cfg.learning_rate, Some(0.5));
        assert_eq!(cfg.model_config.unwrap()["dim"], 20);
    }

    #[test]
    fn missing_data_is_reported() {
        let err = TrainConfig::default().check().unwrap_err().to_string();
        assert!(err.contains("`data`"), "{err}");
    }
}

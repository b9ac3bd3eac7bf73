//! The training config (`train.yaml`) and the command-line flags that override it.
//!
//! Layering: model defaults < config file < flags. Unknown keys are errors (with line and
//! column from the YAML parser). Relative paths are taken from the current directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Share of the training data held out for validation when no validation file is given.
pub const DEFAULT_VALIDATION_RATIO: f64 = 0.1;

/// Keys of a training config file. Every key is optional; defaults are filled per model type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Which model to train: `linear` (the default), `lstm` or `bert`.
    pub model_type: Option<String>,
    /// The model type's own hyper-parameters (for `linear`: dim, word_ngrams, minn, maxn,
    /// buckets, lowercase, max_tokens, weighting; for `lstm`: dim, hidden, pooling, dropout,
    /// min_count, max_vocab, max_len, lowercase; `bert` takes its options as top-level keys).
    pub model_config: Option<serde_json::Value>,
    pub learning_rate: Option<f32>,
    /// Linear warmup steps of AdamW-trained models (`linear` uses SGD and ignores it).
    pub warmup_steps: Option<u64>,
    pub epochs: Option<usize>,
    /// Examples per optimizer step for mini-batch models (`linear` updates per example).
    pub batch_size: Option<usize>,
    /// Tokens per text kept by the model (`linear`: its `max_tokens`).
    pub max_len: Option<u64>,
    pub seed: Option<u64>,
    /// Training data: JSONL, CSV/TSV or Parquet with `text` and `label` fields. A path tracked
    /// by taxon (`PATH.dvc` next to it or a parent folder) records its version id.
    pub data: Option<PathBuf>,
    /// Validation data; when absent, `validation_ratio` of `data` is held out (stratified;
    /// 0 trains on all of `data` without validation).
    pub validation: Option<PathBuf>,
    pub validation_ratio: Option<f64>,
    /// Stop after this many epochs without improvement of `monitor` on validation data, and
    /// keep the best epoch's weights as the model.
    pub early_stopping_patience: Option<usize>,
    /// The validation metric early stopping watches: `macro_f1` (default) or `accuracy`.
    pub monitor: Option<Monitor>,
    /// Write a checkpoint every this many epochs (default 1; 0: only the best epoch's, when
    /// early stopping needs it).
    pub checkpoint_every: Option<usize>,
    /// An expectation suite (YAML) the training data must pass; training refuses data that
    /// fails it.
    pub expectations: Option<PathBuf>,
    /// Folder the model, its description and metrics are written to.
    pub output: Option<PathBuf>,
    /// Worker threads (default: every core).
    pub threads: Option<usize>,
    /// `bert` only: the Hugging Face checkpoint folder to fine-tune (config.json,
    /// tokenizer.json, model.safetensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_path: Option<PathBuf>,
    /// `bert` only: `mean` (default), `cls` or `pooler` pooling of the encoder's last states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<taxon_models::bert::Pooling>,
    /// `bert` only: freeze the embeddings and the first N encoder layers (default 0: train all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_layers: Option<usize>,
    /// `bert` only: which tokens of long texts are kept: `head-tail` (default) or `head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncation: Option<taxon_models::bert::Truncation>,
}

/// The validation metric that early stopping and the best checkpoint follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitor {
    #[default]
    MacroF1,
    Accuracy,
}

impl Monitor {
    pub fn as_str(self) -> &'static str {
        match self {
            Monitor::MacroF1 => "macro_f1",
            Monitor::Accuracy => "accuracy",
        }
    }

    /// The monitored value of `m`.
    pub fn value(self, m: &taxon_eval::Metrics) -> f64 {
        match self {
            Monitor::MacroF1 => m.macro_f1,
            Monitor::Accuracy => m.accuracy,
        }
    }
}

impl std::str::FromStr for Monitor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "macro_f1" | "macro-f1" => Ok(Monitor::MacroF1),
            "accuracy" => Ok(Monitor::Accuracy),
            other => Err(format!(
                "unknown metric {other:?} (known: macro_f1, accuracy)"
            )),
        }
    }
}

/// Values given on the command line; each one set replaces the config key of the same name.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub model_type: Option<String>,
    pub learning_rate: Option<f32>,
    pub warmup_steps: Option<u64>,
    pub epochs: Option<usize>,
    pub batch_size: Option<usize>,
    pub max_len: Option<u64>,
    pub seed: Option<u64>,
    pub data: Option<PathBuf>,
    pub validation: Option<PathBuf>,
    pub validation_ratio: Option<f64>,
    pub early_stopping_patience: Option<usize>,
    pub monitor: Option<Monitor>,
    pub checkpoint_every: Option<usize>,
    pub expectations: Option<PathBuf>,
    pub output: Option<PathBuf>,
    pub threads: Option<usize>,
    pub model_path: Option<PathBuf>,
    pub pooling: Option<taxon_models::bert::Pooling>,
    pub freeze_layers: Option<usize>,
    pub truncation: Option<taxon_models::bert::Truncation>,
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
            warmup_steps,
            epochs,
            batch_size,
            max_len,
            seed,
            data,
            validation,
            validation_ratio,
            early_stopping_patience,
            monitor,
            checkpoint_every,
            expectations,
            output,
            threads,
            model_path,
            pooling,
            freeze_layers,
            truncation
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
        let positive = |field: &'static str, v: Option<usize>| match v {
            Some(0) => Err(TrainError::Invalid {
                field,
                message: "must be at least 1".into(),
            }),
            _ => Ok(()),
        };
        positive("epochs", self.epochs)?;
        positive("batch_size", self.batch_size)?;
        positive("threads", self.threads)?;
        positive("early_stopping_patience", self.early_stopping_patience)?;
        if self.max_len == Some(0) {
            return Err(TrainError::Invalid {
                field: "max_len",
                message: "must be at least 1".into(),
            });
        }
        if self.early_stopping_patience.is_some()
            && self.validation.is_none()
            && self.validation_ratio == Some(0.0)
        {
            return Err(TrainError::Invalid {
                field: "early_stopping_patience",
                message: "needs validation data: set `validation` or a `validation_ratio` above 0"
                    .into(),
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

    #[test]
    fn every_issue_key_parses_and_monitor_names_are_checked() {
        let cfg = TrainConfig::from_yaml(
            "model_type: linear\nlearning_rate: 0.5\nwarmup_steps: 10\nepochs: 3\n\
             batch_size: 32\nmax_len: 256\nseed: 1\ndata: a.jsonl\nvalidation_ratio: 0.2\n\
             early_stopping_patience: 2\nmonitor: accuracy\ncheckpoint_every: 1\n\
             expectations: s.yaml\noutput: out\nthreads: 1\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(cfg.monitor, Some(Monitor::Accuracy));
        assert_eq!(cfg.max_len, Some(256));
        cfg.check().unwrap();
        let err = TrainConfig::from_yaml("monitor: f2\n", Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("f2") && err.contains("macro_f1"), "{err}");
    }

    #[test]
    fn patience_without_validation_data_is_refused() {
        let cfg = TrainConfig {
            data: Some("a".into()),
            output: Some("o".into()),
            validation_ratio: Some(0.0),
            early_stopping_patience: Some(2),
            ..Default::default()
        };
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains("early_stopping_patience"), "{err}");
    }

    #[test]
    fn bert_keys_parse_and_stay_out_of_other_models_json() {
        let cfg = TrainConfig::from_yaml(
            "model_type: bert\nmodel_path: ck\npooling: cls\nfreeze_layers: 2\n\
             truncation: head\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(cfg.pooling, Some(taxon_models::bert::Pooling::Cls));
        assert_eq!(cfg.truncation, Some(taxon_models::bert::Truncation::Head));
        assert_eq!(cfg.freeze_layers, Some(2));
        let err = TrainConfig::from_yaml("truncation: tail\n", Path::new("t.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncation") || err.contains("tail"), "{err}");
        let json = serde_json::to_value(TrainConfig::default()).unwrap();
        assert!(json.get("model_path").is_none(), "{json}");
    }
}

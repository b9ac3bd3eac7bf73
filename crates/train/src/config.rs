//! The training config (`train.yaml`), the command-line flags that override its keys, and
//! their resolution into one typed [`TrainConfig`]: the model type with its own options
//! ([`ModelConfig`], each model type's, with its defaults) plus the settings of the run.
//!
//! Layering: model type defaults < config file < flags. The file's keys are flat ([`ConfigKeys`]):
//! `model_type`, `model_config` (the model type's hyper-parameters), the training keys every
//! model type reads its own way (`learning_rate`, `epochs`, `batch_size`, `warmup_steps`,
//! `max_len`), bert's `model_path`, `pooling`, `freeze_layers` and `truncation`, and the run's
//! keys. Unknown keys, at the top or in `model_config` for the model type, are errors with line
//! and column from the YAML parser; a key of another model type (`pooling` for `linear`) is an
//! error naming it and where it came from. Relative paths are taken from the current directory.

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use taxon_models::ModelConfig;
use taxon_models::bert::{self, BertConfig, BertOptions};
use taxon_models::linear::{self, LinearConfig, LinearOptions};
use taxon_models::lstm::{self, LstmConfig, LstmOptions};

use crate::error::TrainError;

/// Share of the training data held out for validation when no validation file is given.
pub const DEFAULT_VALIDATION_RATIO: f64 = 0.1;
/// Seed of the validation split, initialisation and shuffling when none is given.
pub const DEFAULT_SEED: u64 = 42;

/// The model types a config can name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    #[default]
    Linear,
    Lstm,
    Bert,
}

impl ModelType {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelType::Linear => linear::MODEL_TYPE,
            ModelType::Lstm => lstm::MODEL_TYPE,
            ModelType::Bert => bert::MODEL_TYPE,
        }
    }
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "linear" => Ok(ModelType::Linear),
            "lstm" => Ok(ModelType::Lstm),
            "bert" => Ok(ModelType::Bert),
            other => Err(format!(
                "unknown model_type {other:?} (known: {})",
                taxon_models::MODEL_TYPES.join(", ")
            )),
        }
    }
}

/// The keys of a training config as written in a file, or set by flags: every key optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigKeys {
    /// Which model to train: `linear` (default), `lstm` or `bert`.
    pub model_type: Option<ModelType>,
    /// The model type's hyper-parameters (`LinearConfig`, `LstmConfig` or `BertConfig` keys;
    /// for `linear`: dim, word_ngrams, minn, maxn, buckets, lowercase, max_tokens, weighting,
    /// norm). Only a file sets it; it is decoded for the model type at resolution
    /// ([`ConfigFile`]).
    pub model_config: Option<IgnoredAny>,
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
    pub model_path: Option<PathBuf>,
    /// `bert` only: `mean` (default), `cls` or `pooler` pooling of the encoder's last states.
    pub pooling: Option<bert::Pooling>,
    /// `bert` only: freeze the embeddings and the first N encoder layers (default 0: train all).
    pub freeze_layers: Option<usize>,
    /// `bert` only: which tokens of long texts are kept: `head` (default) or `head-tail`.
    pub truncation: Option<bert::Truncation>,
    /// `linear` only: `svm` (default) or `sgd`; replaces `model_config.solver`.
    pub solver: Option<linear::Solver>,
}

impl ConfigKeys {
    /// These keys with every key set in `over` replaced by its value there.
    pub fn with_overrides(mut self, over: ConfigKeys) -> Self {
        macro_rules! over {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f; } )* };
        }
        over!(
            model_type,
            model_config,
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
            truncation,
            solver
        );
        self
    }

    /// The `bert`-only keys that are set.
    fn bert_keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("model_path", self.model_path.is_some()),
            ("pooling", self.pooling.is_some()),
            ("freeze_layers", self.freeze_layers.is_some()),
            ("truncation", self.truncation.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
    }

    /// Checks that the keys a run needs are present and in range.
    fn check(&self) -> Result<(), TrainError> {
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

/// The command-line flag that sets `key`.
pub fn flag_for(key: &str) -> String {
    match key {
        "early_stopping_patience" => "--patience".into(),
        k => format!("--{}", k.replace('_', "-")),
    }
}

/// A parsed config file: its keys, and its text for decoding `model_config` once the model
/// type is known (so errors inside `model_config` name their line too).
#[derive(Clone, Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    text: String,
    pub keys: ConfigKeys,
}

impl ConfigFile {
    /// Reads and parses a YAML config file.
    pub fn read(path: &Path) -> Result<Self, TrainError> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses YAML text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TrainError> {
        let keys = if text.trim().is_empty() {
            ConfigKeys::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| TrainError::Config {
                path: path.to_path_buf(),
                source,
            })?
        };
        Ok(Self {
            path: path.to_path_buf(),
            text: text.to_string(),
            keys,
        })
    }

    /// `model_config` decoded as `C`, when the file sets it.
    fn model_config<C: serde::de::DeserializeOwned>(&self) -> Result<Option<C>, TrainError> {
        /// The file's `model_config`; the other keys were checked by the first parse.
        #[derive(Deserialize)]
        struct Section<C> {
            model_config: Option<C>,
        }
        if self.keys.model_config.is_none() {
            return Ok(None);
        }
        serde_yaml_ng::from_str::<Section<C>>(&self.text)
            .map(|s| s.model_config)
            .map_err(|source| TrainError::Config {
                path: self.path.clone(),
                source,
            })
    }
}

/// A resolved training config: the model type with its options, and the run's settings, every
/// default filled in. Serialized (in `metrics.json`, checkpoints and run records) with the
/// same flat keys as the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// `model_type` and that model type's keys.
    #[serde(flatten)]
    pub model: ModelConfig,
    pub seed: u64,
    pub threads: usize,
    pub data: PathBuf,
    pub validation: Option<PathBuf>,
    /// Share of `data` held out for validation (set when `validation` is not).
    pub validation_ratio: Option<f64>,
    pub early_stopping_patience: Option<usize>,
    /// Set when early stopping is.
    pub monitor: Option<Monitor>,
    pub checkpoint_every: usize,
    pub expectations: Option<PathBuf>,
    pub output: PathBuf,
    /// Notices from resolving the keys (keys this model type ignores, overridden values).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Replaces `slot` with `v` when set.
fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

impl TrainConfig {
    /// Resolves the keys of `file` overridden by `flags` into a typed config with defaults.
    pub fn resolve(file: Option<&ConfigFile>, flags: &ConfigKeys) -> Result<Self, TrainError> {
        let empty = ConfigKeys::default();
        let file_keys = file.map_or(&empty, |f| &f.keys);
        let k = file_keys.clone().with_overrides(flags.clone());
        k.check()?;
        let model_type = k.model_type.unwrap_or_default();
        if model_type != ModelType::Bert {
            let foreign = flags.bert_keys().map(flag_for).next().or_else(|| {
                file.and_then(|f| {
                    f.keys
                        .bert_keys()
                        .next()
                        .map(|key| format!("{}: `{key}`", f.path.display()))
                })
            });
            if let Some(what) = foreign {
                return Err(TrainError::OtherModelType {
                    what,
                    owner: bert::MODEL_TYPE,
                    model_type: model_type.as_str(),
                });
            }
        }
        if model_type != ModelType::Linear && k.solver.is_some() {
            let what = if flags.solver.is_some() {
                flag_for("solver")
            } else {
                format!(
                    "{}: `solver`",
                    file.map_or_else(String::new, |f| f.path.display().to_string())
                )
            };
            return Err(TrainError::OtherModelType {
                what,
                owner: linear::MODEL_TYPE,
                model_type: model_type.as_str(),
            });
        }
        let mut warnings = Vec::new();
        let model = match model_type {
            ModelType::Linear => ModelConfig::Linear(linear_options(file, &k, &mut warnings)?),
            ModelType::Lstm => ModelConfig::Lstm(lstm_options(file, &k, &mut warnings)?),
            ModelType::Bert => ModelConfig::Bert(bert_options(file, &k)?),
        };
        let validation_ratio = match &k.validation {
            None => Some(k.validation_ratio.unwrap_or(DEFAULT_VALIDATION_RATIO)),
            Some(_) => k.validation_ratio,
        };
        Ok(TrainConfig {
            model,
            seed: k.seed.unwrap_or(DEFAULT_SEED),
            threads: k.threads.unwrap_or_else(crate::driver::default_threads),
            data: k.data.unwrap_or_default(),
            validation: k.validation,
            validation_ratio,
            early_stopping_patience: k.early_stopping_patience,
            monitor: match k.early_stopping_patience {
                Some(_) => Some(k.monitor.unwrap_or_default()),
                None => k.monitor,
            },
            checkpoint_every: k.checkpoint_every.unwrap_or(1),
            expectations: k.expectations,
            output: k.output.unwrap_or_default(),
            warnings,
        })
    }

    /// Passes over the training data.
    pub fn epochs(&self) -> usize {
        self.model.epochs()
    }

    /// The settings every model type's trainer takes.
    pub fn run_settings(&self) -> taxon_models::training::RunSettings {
        taxon_models::training::RunSettings {
            seed: self.seed,
            threads: self.threads,
        }
    }
}

/// A count key as `usize` (saturating: a value past `usize` is out of every range anyway).
fn count(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `linear`: `max_len` sets `model_config.max_tokens` unless that is set; `batch_size` and
/// `warmup_steps` do not apply to its per-example SGD (a warning, as they always were).
fn linear_options(
    file: Option<&ConfigFile>,
    k: &ConfigKeys,
    warnings: &mut Vec<String>,
) -> Result<LinearOptions, TrainError> {
    let mut o = LinearOptions::default();
    if let Some(c) = file
        .map(ConfigFile::model_config::<LinearConfig>)
        .transpose()?
        .flatten()
    {
        o.model_config = c;
    }
    if let Some(n) = k.max_len {
        match o.model_config.max_tokens {
            Some(m) if m != n => warnings.push(format!(
                "max_len {n} ignored: model_config.max_tokens {m} is set"
            )),
            _ => o.model_config.max_tokens = Some(n),
        }
    }
    for (key, is_set) in [
        ("warmup_steps", k.warmup_steps.is_some()),
        ("batch_size", k.batch_size.is_some()),
    ] {
        if is_set {
            warnings.push(format!(
                "`{key}` ignored: linear trains per example (svm: coordinate descent; sgd: SGD \
                 with a linearly decaying learning rate)"
            ));
        }
    }
    set(&mut o.learning_rate, k.learning_rate);
    set(&mut o.epochs, k.epochs);
    set(&mut o.model_config.solver, k.solver);
    if o.model_config.solver == linear::Solver::Svm {
        for (key, is_set) in [
            ("learning_rate", k.learning_rate.is_some()),
            ("epochs", k.epochs.is_some()),
        ] {
            if is_set {
                warnings.push(format!(
                    "`{key}` ignored: the linear svm solver runs to convergence (set \
                     model_config.solver: sgd for fastText's SGD)"
                ));
            }
        }
    }
    Ok(o)
}

/// `lstm`: `max_len` replaces `model_config.max_len` (a warning when both are set and differ).
fn lstm_options(
    file: Option<&ConfigFile>,
    k: &ConfigKeys,
    warnings: &mut Vec<String>,
) -> Result<LstmOptions, TrainError> {
    let mut o = LstmOptions::default();
    let mut explicit_max_len = None;
    if let Some(f) = file {
        if let Some(c) = f.model_config::<LstmConfig>()? {
            o.model_config = c;
        }
        explicit_max_len = f
            .model_config::<serde_yaml_ng::Mapping>()?
            .and_then(|m| m.get("max_len").and_then(serde_yaml_ng::Value::as_u64));
    }
    if let Some(n) = k.max_len {
        if explicit_max_len.is_some_and(|m| m != n) {
            warnings.push(format!(
                "model_config.max_len {} replaced by max_len {n}",
                o.model_config.max_len
            ));
        }
        o.model_config.max_len = count(n);
    }
    set(&mut o.learning_rate, k.learning_rate);
    set(&mut o.epochs, k.epochs);
    set(&mut o.batch_size, k.batch_size);
    o.warmup_steps = k.warmup_steps.map(count).or(o.warmup_steps);
    Ok(o)
}

/// `bert`: `model_path` is required; the top-level `max_len`, `pooling`, `freeze_layers` and
/// `truncation` replace the `model_config` keys of the same names.
fn bert_options(file: Option<&ConfigFile>, k: &ConfigKeys) -> Result<BertOptions, TrainError> {
    let model_path = k.model_path.clone().ok_or_else(|| TrainError::Missing {
        field: "model_path",
        message: "is required for model_type bert: pass --model-path DIR (a Hugging Face \
                  folder with config.json, tokenizer.json and model.safetensors)"
            .into(),
    })?;
    let mut o = BertOptions {
        model_path,
        ..Default::default()
    };
    if let Some(c) = file
        .map(ConfigFile::model_config::<BertConfig>)
        .transpose()?
        .flatten()
    {
        o.model_config = c;
    }
    let c = &mut o.model_config;
    c.base_model = o.model_path.display().to_string();
    set(&mut c.max_len, k.max_len.map(count));
    set(&mut c.pooling, k.pooling);
    set(&mut c.freeze_layers, k.freeze_layers);
    set(&mut c.truncation, k.truncation);
    set(&mut o.learning_rate, k.learning_rate);
    set(&mut o.epochs, k.epochs);
    set(&mut o.batch_size, k.batch_size);
    o.warmup_steps = k.warmup_steps.map(count).or(o.warmup_steps);
    Ok(o)
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

#[cfg(test)]
mod tests {
    use taxon_models::bert::{Pooling, Truncation};

    use super::*;

    fn file(text: &str) -> Result<ConfigFile, TrainError> {
        ConfigFile::parse(text, Path::new("t.yaml"))
    }

    /// Resolves YAML `text` with the flags `flags`; `data` and `output` default to `d`, `o`.
    fn resolve(text: &str, flags: ConfigKeys) -> Result<TrainConfig, TrainError> {
        let base = ConfigKeys {
            data: Some("d".into()),
            output: Some("o".into()),
            ..Default::default()
        };
        let mut f = file(text)?;
        f.keys = base.with_overrides(f.keys);
        TrainConfig::resolve(Some(&f), &flags)
    }

    fn err(r: Result<TrainConfig, TrainError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_is_an_error_naming_it_and_the_line() {
        let e = file("epochs: 3\nepoch_count: 4\n").unwrap_err().to_string();
        assert!(e.contains("t.yaml"), "{e}");
        assert!(e.contains("epoch_count"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn an_unknown_model_config_key_of_the_model_type_names_its_line() {
        let e = err(resolve(
            "model_type: lstm\nmodel_config:\n  dim: 8\n  hiden: 4\n",
            ConfigKeys::default(),
        ));
        assert!(e.contains("hiden") && e.contains("line 4"), "{e}");
        // `hidden` is an lstm key, not a linear one.
        let e = err(resolve(
            "model_config:\n  hidden: 4\n",
            ConfigKeys::default(),
        ));
        assert!(e.contains("hidden") && e.contains("line 2"), "{e}");
        let e = file("model_type: cnn\n").unwrap_err().to_string();
        assert!(e.contains("cnn") && e.contains("line 1"), "{e}");
    }

    /// The shape the CLI tests and the README have always used, linear.
    #[test]
    fn old_linear_configs_keep_their_meaning() {
        let cfg = resolve(
            "model_type: linear\nepochs: 2\nthreads: 1\nmodel_config:\n  dim: 8\n  buckets: 1000\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let ModelConfig::Linear(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!((o.model_config.dim, o.model_config.buckets), (8, 1000));
        assert_eq!((o.epochs, o.learning_rate), (2, 1.0));
        assert_eq!((cfg.threads, cfg.seed, cfg.checkpoint_every), (1, 42, 1));
        assert_eq!(cfg.validation_ratio, Some(DEFAULT_VALIDATION_RATIO));
        // The default solver became svm, which has no epochs: said, not silently dropped.
        assert_eq!(o.model_config.solver, linear::Solver::Svm);
        assert_eq!(cfg.epochs(), 1);
        assert!(
            cfg.warnings.len() == 1 && cfg.warnings[0].contains("`epochs` ignored"),
            "{:?}",
            cfg.warnings
        );
        // With the solver they were written for, they mean what they meant.
        let cfg = resolve(
            "model_type: linear\nepochs: 2\nthreads: 1\nmodel_config:\n  solver: sgd\n  dim: 8\n",
            ConfigKeys::default(),
        )
        .unwrap();
        assert_eq!(cfg.epochs(), 2);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        let flag = resolve(
            "model_type: linear\nepochs: 2\n",
            ConfigKeys {
                solver: Some(linear::Solver::Sgd),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(flag.epochs(), 2);
        let e = err(resolve(
            "model_type: lstm\n",
            ConfigKeys {
                solver: Some(linear::Solver::Sgd),
                ..Default::default()
            },
        ));
        assert!(e.contains("--solver is a linear option"), "{e}");

        // Every key of the issue that introduced them, with the linear-only notices.
        let cfg = resolve(
            "model_type: linear\nlearning_rate: 0.5\nwarmup_steps: 10\nepochs: 3\n\
             batch_size: 32\nmax_len: 256\nseed: 1\ndata: a.jsonl\nvalidation_ratio: 0.2\n\
             early_stopping_patience: 2\nmonitor: accuracy\ncheckpoint_every: 1\n\
             expectations: s.yaml\noutput: out\nthreads: 1\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let ModelConfig::Linear(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!(o.model_config.max_tokens, Some(256));
        assert_eq!((o.learning_rate, o.epochs), (0.5, 3));
        assert_eq!(cfg.monitor, Some(Monitor::Accuracy));
        assert_eq!(cfg.data, PathBuf::from("a.jsonl"));
        assert_eq!(cfg.validation_ratio, Some(0.2));
        assert_eq!(cfg.expectations, Some(PathBuf::from("s.yaml")));
        assert_eq!(cfg.warnings.len(), 4, "{:?}", cfg.warnings);
        assert!(
            cfg.warnings[0].contains("warmup_steps"),
            "{:?}",
            cfg.warnings
        );

        // max_len does not override an explicit max_tokens.
        let cfg = resolve(
            "model_config: {max_tokens: 64}\nmax_len: 128\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let ModelConfig::Linear(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!(o.model_config.max_tokens, Some(64));
        assert!(
            cfg.warnings[0].contains("max_len 128 ignored"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn old_lstm_configs_keep_their_meaning() {
        let cfg = resolve(
            "model_type: lstm\nmodel_config: {hidden: 64, max_len: 100}\nmax_len: 50\n\
             learning_rate: 0.01\nbatch_size: 8\nwarmup_steps: 5\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let ModelConfig::Lstm(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!((o.model_config.hidden, o.model_config.max_len), (64, 50));
        assert_eq!(o.model_config.dim, LstmConfig::default().dim);
        assert_eq!((o.learning_rate, o.batch_size), (0.01, 8));
        assert_eq!((o.epochs, o.warmup_steps), (6, Some(5)));
        assert!(
            cfg.warnings[0].contains("model_config.max_len 100 replaced by max_len 50"),
            "{:?}",
            cfg.warnings
        );
    }

    #[test]
    fn old_bert_configs_keep_their_meaning() {
        let cfg = resolve(
            "model_type: bert\nmodel_path: ck\npooling: cls\nfreeze_layers: 2\n\
             truncation: head\nmax_len: 64\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let ModelConfig::Bert(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        let c = &o.model_config;
        assert_eq!(o.model_path, PathBuf::from("ck"));
        assert_eq!(c.base_model, "ck");
        assert_eq!((c.pooling, c.truncation), (Pooling::Cls, Truncation::Head));
        assert_eq!((c.freeze_layers, c.max_len), (2, 64));
        assert_eq!((o.learning_rate, o.epochs, o.batch_size), (5e-5, 3, 16));
        // The same settings inside model_config; top-level keys and flags win.
        let cfg = resolve(
            "model_type: bert\nmodel_path: ck\nmodel_config: {pooling: pooler, max_len: 96}\n",
            ConfigKeys {
                max_len: Some(32),
                ..Default::default()
            },
        )
        .unwrap();
        let ModelConfig::Bert(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!(
            (o.model_config.pooling, o.model_config.max_len),
            (Pooling::Pooler, 32)
        );
        let e = err(resolve("model_type: bert\n", ConfigKeys::default()));
        assert!(
            e.contains("model_path") && e.contains("--model-path"),
            "{e}"
        );
        let e = file("truncation: tail\n").unwrap_err().to_string();
        assert!(e.contains("tail"), "{e}");
    }

    #[test]
    fn flags_override_file_keys() {
        let cfg = resolve(
            "model_type: linear\nepochs: 3\nlearning_rate: 0.5\nmodel_config: {dim: 20}\n",
            ConfigKeys {
                epochs: Some(7),
                model_type: None,
                ..Default::default()
            },
        )
        .unwrap();
        let ModelConfig::Linear(o) = &cfg.model else {
            panic!("{cfg:?}")
        };
        assert_eq!(
            (o.epochs, o.learning_rate, o.model_config.dim),
            (7, 0.5, 20)
        );
        // A flag's model type decodes the file's model_config as its own.
        let e = err(resolve(
            "model_type: linear\nmodel_config: {dim: 20, word_ngrams: 2}\n",
            ConfigKeys {
                model_type: Some(ModelType::Lstm),
                ..Default::default()
            },
        ));
        assert!(e.contains("word_ngrams"), "{e}");
    }

    #[test]
    fn a_key_of_another_model_type_is_an_error_saying_whose_it_is() {
        let e = err(resolve(
            "",
            ConfigKeys {
                pooling: Some(Pooling::Cls),
                ..Default::default()
            },
        ));
        assert!(
            e.contains("--pooling is a bert option") && e.contains("model_type linear"),
            "{e}"
        );
        let e = err(resolve(
            "model_type: lstm\nfreeze_layers: 2\n",
            ConfigKeys::default(),
        ));
        assert!(
            e.contains("t.yaml: `freeze_layers` is a bert option") && e.contains("lstm"),
            "{e}"
        );
    }

    #[test]
    fn each_model_type_fills_its_own_defaults() {
        let of = |t| {
            resolve(
                "",
                ConfigKeys {
                    model_type: Some(t),
                    model_path: (t == ModelType::Bert).then(|| "ck".into()),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(
            of(ModelType::Linear).epochs(),
            1,
            "svm: one pass to convergence"
        );
        assert_eq!(of(ModelType::Lstm).epochs(), 6);
        assert_eq!(of(ModelType::Bert).epochs(), 3);
        let ModelConfig::Lstm(o) = of(ModelType::Lstm).model else {
            panic!()
        };
        assert_eq!((o.learning_rate, o.batch_size), (2e-3, 32));
    }

    #[test]
    fn the_resolved_config_keeps_the_files_flat_keys_and_round_trips() {
        let cfg = resolve(
            "model_type: lstm\nmodel_config: {hidden: 64}\nearly_stopping_patience: 2\n",
            ConfigKeys::default(),
        )
        .unwrap();
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["model_type"], "lstm");
        assert_eq!(json["model_config"]["hidden"], 64);
        assert_eq!(json["batch_size"], 32);
        assert_eq!(json["monitor"], "macro_f1");
        assert!(json.get("pooling").is_none(), "{json}");
        let back: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, cfg);
    }

    /// The README's example config of each model type resolves, to that type's defaults.
    #[test]
    fn the_readme_examples_resolve_to_each_model_types_defaults() {
        let readme = include_str!("../../../README.md");
        let blocks: Vec<&str> = readme
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            // A training config has `model_type` at its top level (params.yaml examples
            // nest it under `train:`).
            .filter(|b| b.lines().any(|l| l.starts_with("model_type:")))
            .collect();
        assert_eq!(blocks.len(), 3, "one example per model type");
        for block in blocks {
            let cfg = TrainConfig::resolve(Some(&file(block).unwrap()), &ConfigKeys::default())
                .unwrap_or_else(|e| panic!("{e}\n{block}"));
            match cfg.model {
                ModelConfig::Linear(o) => assert_eq!(o, LinearOptions::default()),
                ModelConfig::Lstm(o) => assert_eq!(o, LstmOptions::default()),
                ModelConfig::Bert(mut o) => {
                    assert!(o.model_path.ends_with("all-MiniLM-L6-v2"), "{o:?}");
                    o.model_path = PathBuf::new();
                    o.model_config.base_model = String::new();
                    assert_eq!(o, BertOptions::default());
                }
            }
            assert_eq!((cfg.seed, cfg.checkpoint_every), (DEFAULT_SEED, 1));
        }
    }

    #[test]
    fn missing_data_and_bad_ranges_are_reported() {
        let e = err(TrainConfig::resolve(None, &ConfigKeys::default()));
        assert!(e.contains("`data`"), "{e}");
        let e = err(resolve(
            "validation_ratio: 0\nearly_stopping_patience: 2\n",
            ConfigKeys::default(),
        ));
        assert!(e.contains("early_stopping_patience"), "{e}");
        let e = file("monitor: f2\n").unwrap_err().to_string();
        assert!(e.contains("f2") && e.contains("macro_f1"), "{e}");
    }
}

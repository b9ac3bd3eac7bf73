//! The training driver (config in, model folder and `metrics.json` out) and evaluation of any
//! model on labelled data.
//!
//! `train` resolves the config, refuses data that fails its expectation suite, reads and splits
//! the data, builds the model type's [`EpochTrainer`] (the one `match` on `model_type`) and runs
//! the epoch loop: a checkpoint per epoch in `OUTPUT/checkpoints/` (see [`crate::checkpoint`]),
//! `--resume` from the latest one, early stopping on a validation metric with the best epoch's
//! weights as the final model. `metrics.json` holds no timings, so the same config and data
//! with `threads: 1` give a byte-identical file.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::TextClassifier;
use taxon_models::bert::{self, BertConfig};
use taxon_models::linear::{self, EpochReport, LinearConfig, SgdOptions, TrainObserver};
use taxon_models::lstm::{self, LstmConfig};
use taxon_models::rng::SplitMix64;

use crate::checkpoint::{self, BestEpoch, RunState, STATE_FORMAT_VERSION};
use crate::config::{DEFAULT_VALIDATION_RATIO, Monitor, TrainConfig};
use crate::data::read_labelled;
use crate::error::TrainError;
use crate::metrics::Metrics;
use crate::trainer::EpochTrainer;

/// File name of the training metrics in a model folder.
pub const METRICS_JSON: &str = "metrics.json";

/// Defaults of the linear model's SGD, tuned on a validation split of BBC News' training part.
pub const LINEAR_LEARNING_RATE: f32 = 1.0;
pub const LINEAR_EPOCHS: usize = 25;
pub const DEFAULT_SEED: u64 = 42;
/// Defaults of the lstm model's AdamW run, tuned on a validation split of BBC News' training part.
pub const LSTM_LEARNING_RATE: f32 = 2e-3;
pub const LSTM_EPOCHS: usize = 6;
pub const LSTM_BATCH_SIZE: usize = 32;

/// Epochs a run of `model_type` makes when the config does not say (linear when unset or
/// unknown: the run itself rejects an unknown type).
pub fn default_epochs(model_type: Option<&str>) -> usize {
    match model_type {
        Some(lstm::MODEL_TYPE) => LSTM_EPOCHS,
        Some(bert::MODEL_TYPE) => bert::DEFAULT_EPOCHS,
        _ => LINEAR_EPOCHS,
    }
}

/// How a run proceeds, beyond its config: not recorded in the model's metrics.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from the latest checkpoint in the output folder.
    pub resume: bool,
    /// Stop (as if killed) after this many epochs in total, leaving only checkpoints: for
    /// testing `resume`.
    pub stop_after_epochs: Option<usize>,
}

/// What a training run produced; also written as `metrics.json` (without the timings).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    pub model_type: String,
    pub output: PathBuf,
    /// The config after defaults and overrides.
    pub config: TrainConfig,
    /// Version id of the training data when it is tracked by taxon (the md5 of its `.dvc`
    /// pointer's out: `PATH.dvc` or a parent folder's).
    pub data_version: Option<String>,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// Where validation data came from: a file, or `split` of the training data.
    pub validation_source: String,
    pub epochs: Vec<EpochReport>,
    /// The epoch whose weights the model holds (the best one under early stopping).
    pub model_epoch: usize,
    /// The best epoch by the monitored validation metric, when there is validation data.
    pub best_epoch: Option<usize>,
    /// True when early stopping ended training before the configured epochs.
    pub stopped_early: bool,
    /// Config keys this model type ignores, and similar notices.
    pub warnings: Vec<String>,
    /// Seconds in training epochs (excluding checkpoint writes), this process only.
    pub train_seconds: f64,
    /// Seconds the epoch loop spent on checkpoints: copying the weights, and waiting for a
    /// checkpoint still being written by the background writer.
    pub checkpoint_seconds: f64,
    /// The checkpoint epoch this run resumed from.
    pub resumed_from_epoch: Option<usize>,
    /// False when the run stopped at `stop_after_epochs`: no model was written, only
    /// checkpoints.
    pub complete: bool,
    pub validation: Option<Metrics>,
}

/// Keys of [`TrainSummary`] (and of each epoch) that vary between identical runs; they are
/// left out of `metrics.json`.
const TIMING_KEYS: &[&str] = &[
    "train_seconds",
    "checkpoint_seconds",
    "resumed_from_epoch",
    "complete",
];
const EPOCH_TIMING_KEYS: &[&str] = &["seconds", "tokens_per_sec"];

impl TrainSummary {
    /// The summary as written to `metrics.json`: without timings or resume details.
    pub fn metrics_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            for k in TIMING_KEYS {
                m.remove(*k);
            }
            if let Some(serde_json::Value::Array(epochs)) = m.get_mut("epochs") {
                for e in epochs.iter_mut().filter_map(|e| e.as_object_mut()) {
                    for k in EPOCH_TIMING_KEYS {
                        e.remove(*k);
                    }
                }
            }
        }
        v
    }
}

/// Evaluation of a model on labelled data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub metrics: Metrics,
    pub predict_seconds: f64,
    pub docs_per_sec: f64,
    pub threads: usize,
}

/// Every core, as the default thread count.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs the training that `cfg` describes and writes the model folder with `metrics.json`.
pub fn train(cfg: &TrainConfig, observer: &dyn TrainObserver) -> Result<TrainSummary, TrainError> {
    train_with(cfg, &RunOptions::default(), observer)
}

/// [`train`] with run options (resume, stop after N epochs).
pub fn train_with(
    cfg: &TrainConfig,
    run: &RunOptions,
    observer: &dyn TrainObserver,
) -> Result<TrainSummary, TrainError> {
    cfg.check()?;
    let model_type = cfg
        .model_type
        .clone()
        .unwrap_or_else(|| linear::MODEL_TYPE.into());
    let mut resolved = cfg.clone();
    resolved.model_type = Some(model_type.clone());
    resolved.seed.get_or_insert(DEFAULT_SEED);
    resolved.threads.get_or_insert_with(default_threads);
    resolved.checkpoint_every.get_or_insert(1);
    if resolved.early_stopping_patience.is_some() {
        resolved.monitor.get_or_insert_with(Monitor::default);
    }
    if cfg.validation.is_none() {
        resolved
            .validation_ratio
            .get_or_insert(DEFAULT_VALIDATION_RATIO);
    }
    let seed = resolved.seed.unwrap_or(DEFAULT_SEED);
    let mut warnings = Vec::new();

    let data_path = cfg.data.clone().unwrap_or_default();
    let output = cfg.output.clone().unwrap_or_default();
    if let Some(suite) = &cfg.expectations {
        check_expectations(&data_path, suite)?;
    }
    let data_version = data_version(&data_path)?;
    let records = read_labelled(&data_path)?;
    let (train_rows, val_rows, validation_source) = match &cfg.validation {
        Some(p) => (records, read_labelled(p)?, p.display().to_string()),
        None => {
            let ratio = resolved
                .validation_ratio
                .unwrap_or(DEFAULT_VALIDATION_RATIO);
            let (t, v) = stratified_split(records, ratio, seed);
            (
                t,
                v,
                format!(
                    "split: {:.0}% of data, stratified, seed {seed}",
                    ratio * 100.0
                ),
            )
        }
    };
    let labels: Vec<String> = train_rows
        .iter()
        .map(|(_, l)| l.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if labels.len() < 2 {
        return Err(TrainError::Dataset {
            path: data_path,
            message: format!("need at least 2 distinct labels to train, found {labels:?}"),
        });
    }
    let label_idx: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let train_ex: Vec<(&str, usize)> = train_rows
        .iter()
        .map(|(t, l)| (t.as_str(), label_idx[l.as_str()]))
        .collect();
    // Validation texts whose label the training data lacks cannot be scored by the model.
    let val_ex: Vec<(&str, usize)> = val_rows
        .iter()
        .filter_map(|(t, l)| label_idx.get(l.as_str()).map(|&i| (t.as_str(), i)))
        .collect();

    // The model factory: one arm per model type, each resolving its defaults into `resolved`
    // and returning its trainer.
    let mut trainer: Box<dyn EpochTrainer + '_> = match model_type.as_str() {
        linear::MODEL_TYPE => {
            let mut model_config: LinearConfig = match &cfg.model_config {
                None | Some(serde_json::Value::Null) => LinearConfig::default(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| TrainError::Invalid {
                    field: "model_config",
                    message: e.to_string(),
                })?,
            };
            if let Some(n) = cfg.max_len {
                match model_config.max_tokens {
                    Some(m) if m != n => warnings.push(format!(
                        "max_len {n} ignored: model_config.max_tokens {m} is set"
                    )),
                    _ => model_config.max_tokens = Some(n),
                }
            }
            for (key, set) in [
                ("warmup_steps", cfg.warmup_steps.is_some()),
                ("batch_size", cfg.batch_size.is_some()),
            ] {
                if set {
                    warnings.push(format!(
                        "`{key}` ignored: linear trains by per-example SGD with a linearly \
                         decaying learning rate"
                    ));
                }
            }
            resolved.model_config = Some(serde_json::to_value(&model_config).unwrap_or_default());
            resolved.learning_rate.get_or_insert(LINEAR_LEARNING_RATE);
            resolved.epochs.get_or_insert(LINEAR_EPOCHS);
            let opts = SgdOptions {
                learning_rate: resolved.learning_rate.unwrap_or(LINEAR_LEARNING_RATE),
                epochs: resolved.epochs.unwrap_or(LINEAR_EPOCHS),
                seed,
                threads: resolved.threads.unwrap_or(1),
            };
            Box::new(linear::LinearTrainer::new(
                &model_config,
                &opts,
                &labels,
                &train_ex,
                &val_ex,
            )?)
        }
        lstm::MODEL_TYPE => {
            let mut model_config: LstmConfig = match &cfg.model_config {
                None | Some(serde_json::Value::Null) => LstmConfig::default(),
                Some(v) => serde_json::from_value(v.clone()).map_err(|e| TrainError::Invalid {
                    field: "model_config",
                    message: e.to_string(),
                })?,
            };
            // The top-level `max_len` (or --max-len) sets model_config.max_len.
            if let Some(n) = cfg.max_len {
                let explicit = cfg.model_config.as_ref().and_then(|v| v.get("max_len"));
                if explicit.is_some_and(|m| m.as_u64() != Some(n)) {
                    warnings.push(format!(
                        "model_config.max_len {} replaced by max_len {n}",
                        model_config.max_len
                    ));
                }
                model_config.max_len = usize::try_from(n).unwrap_or(usize::MAX);
            }
            resolved.model_config = Some(serde_json::to_value(&model_config).unwrap_or_default());
            resolved.learning_rate.get_or_insert(LSTM_LEARNING_RATE);
            resolved.epochs.get_or_insert(LSTM_EPOCHS);
            resolved.batch_size.get_or_insert(LSTM_BATCH_SIZE);
            let opts = lstm::AdamWOptions {
                learning_rate: f64::from(resolved.learning_rate.unwrap_or(LSTM_LEARNING_RATE)),
                warmup_steps: cfg
                    .warmup_steps
                    .map(|w| usize::try_from(w).unwrap_or(usize::MAX)),
                epochs: resolved.epochs.unwrap_or(LSTM_EPOCHS),
                batch_size: resolved.batch_size.unwrap_or(LSTM_BATCH_SIZE),
                seed,
                threads: resolved.threads.unwrap_or(1),
                ..Default::default()
            };
            Box::new(lstm::LstmTrainer::new(
                &model_config,
                &opts,
                &labels,
                &train_ex,
                &val_ex,
            )?)
        }
        bert::MODEL_TYPE => bert_trainer(cfg, &mut resolved, &labels, &train_ex, &val_ex)?,
        other => {
            return Err(TrainError::Invalid {
                field: "model_type",
                message: format!(
                    "unknown model type {other:?} (known: {})",
                    taxon_models::MODEL_TYPES.join(", ")
                ),
            });
        }
    };

    let val_truth: Vec<usize> = val_ex.iter().map(|(_, l)| *l).collect();
    let data_md5 = taxon_version::hashing::md5_file(&data_path)?.0;
    let run_loop = EpochLoop {
        config: &resolved,
        labels: &labels,
        val_truth: &val_truth,
        output: &output,
        data_md5,
        run,
    };
    let done = run_loop.run(trainer.as_mut(), observer)?;

    let validation = done.model_validation.clone();
    let summary = TrainSummary {
        model_type,
        output: output.clone(),
        config: resolved,
        data_version,
        train_examples: train_ex.len(),
        validation_examples: val_ex.len(),
        validation_source,
        epochs: done.epochs,
        model_epoch: done.model_epoch,
        best_epoch: done.best.as_ref().map(|b| b.epoch),
        stopped_early: done.stopped_early,
        warnings,
        train_seconds: done.train_seconds,
        checkpoint_seconds: done.checkpoint_seconds,
        resumed_from_epoch: done.resumed_from,
        complete: !done.interrupted,
        validation,
    };
    if done.interrupted {
        return Ok(summary);
    }
    let path = output.join(METRICS_JSON);
    let text = serde_json::to_string_pretty(&summary.metrics_json()).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|source| TrainError::Io { path, source })?;
    Ok(summary)
}

/// The epoch loop's inputs that do not change during the run.
struct EpochLoop<'a> {
    config: &'a TrainConfig,
    labels: &'a [String],
    val_truth: &'a [usize],
    output: &'a Path,
    data_md5: taxon_core::Md5Hex,
    run: &'a RunOptions,
}

/// What the epoch loop did.
struct LoopResult {
    epochs: Vec<EpochReport>,
    best: Option<BestEpoch>,
    model_epoch: usize,
    model_validation: Option<Metrics>,
    stopped_early: bool,
    interrupted: bool,
    resumed_from: Option<usize>,
    train_seconds: f64,
    checkpoint_seconds: f64,
}

impl EpochLoop<'_> {
    fn run(
        &self,
        trainer: &mut dyn EpochTrainer,
        observer: &dyn TrainObserver,
    ) -> Result<LoopResult, TrainError> {
        let cfg = self.config;
        let epochs_total = cfg.epochs.unwrap_or(LINEAR_EPOCHS);
        let every = cfg.checkpoint_every.unwrap_or(1);
        let patience = cfg.early_stopping_patience;
        let monitor = cfg.monitor.unwrap_or_default();
        let mut state = RunState {
            format_version: STATE_FORMAT_VERSION,
            epoch: 0,
            config: cfg.clone(),
            data_md5: self.data_md5.clone(),
            epochs: Vec::new(),
            last_validation: None,
            best: None,
            epochs_since_best: 0,
            trainer: serde_json::Value::Null,
        };
        let mut resumed_from = None;
        if self.run.resume {
            let (dir, saved) =
                checkpoint::read_latest(self.output)?.ok_or_else(|| TrainError::Checkpoint {
                    path: checkpoint::checkpoints_dir(self.output),
                    message: "no checkpoint to resume from (train without --resume first)".into(),
                })?;
            let state_path = dir.join(checkpoint::STATE_JSON);
            if let Some((key, was, now)) = checkpoint::config_difference(&saved.config, cfg) {
                return Err(TrainError::ResumeConfig {
                    path: state_path,
                    key,
                    checkpoint: was,
                    now,
                });
            }
            if saved.data_md5 != self.data_md5 {
                return Err(TrainError::ResumeConfig {
                    path: state_path,
                    key: "data".into(),
                    checkpoint: format!("content md5 {}", saved.data_md5),
                    now: format!("content md5 {}", self.data_md5),
                });
            }
            trainer.restore(&dir, &saved.trainer)?;
            resumed_from = Some(saved.epoch);
            state = RunState {
                config: cfg.clone(),
                ..saved
            };
        } else {
            let root = checkpoint::checkpoints_dir(self.output);
            if root.exists() {
                std::fs::remove_dir_all(&root)
                    .map_err(|source| TrainError::Io { path: root, source })?;
            }
        }

        let (mut train_seconds, mut checkpoint_seconds) = (0.0, 0.0);
        let mut interrupted = false;
        let mut writer: Option<CheckpointWriter> = None;
        let out_of_patience =
            |s: &RunState| patience.is_some_and(|p| s.best.is_some() && s.epochs_since_best >= p);
        while state.epoch < epochs_total && !out_of_patience(&state) {
            let report = trainer.run_epoch(observer)?;
            train_seconds += report.seconds;
            state.epoch = trainer.epochs_done();
            state.epochs.push(report);
            let metrics = (!self.val_truth.is_empty()).then(|| {
                let pred = trainer.validation_predictions();
                Metrics::compute(self.labels, self.val_truth, &pred)
            });
            let mut improved = false;
            if let Some(m) = &metrics {
                let value = monitor.value(m);
                improved = state.best.as_ref().is_none_or(|b| value > b.value);
                if improved {
                    state.best = Some(BestEpoch {
                        epoch: state.epoch,
                        monitor,
                        value,
                        metrics: m.clone(),
                    });
                    state.epochs_since_best = 0;
                } else {
                    state.epochs_since_best += 1;
                }
            }
            state.last_validation = metrics;
            let periodic = every > 0 && state.epoch % every == 0;
            if periodic || (patience.is_some() && improved) {
                // The state and a copy of the weights are taken now; the files are written by
                // a background thread while the next epoch trains (one write at a time, so
                // `LATEST` only moves forward).
                let start = Instant::now();
                state.trainer = trainer.state()?;
                let snapshot = trainer.snapshot();
                join_writer(&mut writer)?;
                let (output, ck_state) = (self.output.to_path_buf(), state.clone());
                writer = Some(std::thread::spawn(move || {
                    write_checkpoint(&output, &ck_state, snapshot.as_ref())
                }));
                checkpoint_seconds += start.elapsed().as_secs_f64();
            }
            if self.run.stop_after_epochs == Some(state.epoch) && state.epoch < epochs_total {
                interrupted = true;
                break;
            }
        }
        let start = Instant::now();
        join_writer(&mut writer)?;
        checkpoint_seconds += start.elapsed().as_secs_f64();
        let stopped_early = !interrupted && state.epoch < epochs_total;

        // The final model: the best epoch's under early stopping, else the last epoch's.
        let use_best =
            patience.is_some() && state.best.as_ref().is_some_and(|b| b.epoch != state.epoch);
        let (model_epoch, model_validation) = match (&state.best, use_best) {
            (Some(b), true) => (b.epoch, Some(b.metrics.clone())),
            _ => (state.epoch, state.last_validation.clone()),
        };
        if !interrupted {
            if use_best {
                let dir = checkpoint::checkpoints_dir(self.output)
                    .join(checkpoint::epoch_dir_name(model_epoch));
                checkpoint::copy_model(&dir, self.output)?;
            } else {
                trainer.save_model(self.output)?;
            }
        }
        Ok(LoopResult {
            epochs: state.epochs,
            best: state.best,
            model_epoch,
            model_validation,
            stopped_early,
            interrupted,
            resumed_from,
            train_seconds,
            checkpoint_seconds,
        })
    }
}

/// The bert arm of the model factory: `model_path` is required; `model_config` keys are
/// overridden by the top-level `max_len`, `pooling`, `freeze_layers` and `truncation`.
fn bert_trainer(
    cfg: &TrainConfig,
    resolved: &mut TrainConfig,
    labels: &[String],
    train_ex: &[(&str, usize)],
    val_ex: &[(&str, usize)],
) -> Result<Box<dyn EpochTrainer>, TrainError> {
    let base = cfg.model_path.clone().ok_or_else(|| TrainError::Missing {
        field: "model_path",
        message: "is required for model_type bert: pass --model-path DIR (a Hugging Face \
                  folder with config.json, tokenizer.json and model.safetensors)"
            .into(),
    })?;
    let mut model_config: BertConfig = match &cfg.model_config {
        None | Some(serde_json::Value::Null) => BertConfig::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| TrainError::Invalid {
            field: "model_config",
            message: e.to_string(),
        })?,
    };
    model_config.base_model = base.display().to_string();
    if let Some(n) = cfg.max_len {
        model_config.max_len = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(p) = cfg.pooling {
        model_config.pooling = p;
    }
    if let Some(k) = cfg.freeze_layers {
        model_config.freeze_layers = k;
    }
    if let Some(t) = cfg.truncation {
        model_config.truncation = t;
    }
    resolved.model_config = Some(serde_json::to_value(&model_config).unwrap_or_default());
    let lr = resolved
        .learning_rate
        .get_or_insert(bert::DEFAULT_LEARNING_RATE as f32);
    let opts = lstm::AdamWOptions {
        learning_rate: f64::from(*lr),
        warmup_steps: cfg
            .warmup_steps
            .map(|w| usize::try_from(w).unwrap_or(usize::MAX)),
        epochs: *resolved.epochs.get_or_insert(bert::DEFAULT_EPOCHS),
        batch_size: *resolved.batch_size.get_or_insert(bert::DEFAULT_BATCH_SIZE),
        seed: resolved.seed.unwrap_or(DEFAULT_SEED),
        threads: resolved.threads.unwrap_or(1),
        ..Default::default()
    };
    Ok(Box::new(bert::BertTrainer::new(
        &base,
        &model_config,
        &opts,
        labels,
        train_ex,
        val_ex,
    )?))
}

/// The background thread writing a checkpoint.
type CheckpointWriter = std::thread::JoinHandle<Result<(), TrainError>>;

/// Waits for the checkpoint being written, if any, and passes on its error.
fn join_writer(writer: &mut Option<CheckpointWriter>) -> Result<(), TrainError> {
    match writer.take().map(|w| w.join()) {
        None | Some(Ok(Ok(()))) => Ok(()),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(_)) => Err(TrainError::Checkpoint {
            path: PathBuf::from(checkpoint::CHECKPOINTS_DIR),
            message: "the checkpoint writer thread panicked".into(),
        }),
    }
}

/// Writes the checkpoint of `state.epoch` with the weights of `model`, then removes older
/// checkpoints except the best epoch's.
fn write_checkpoint(
    output: &Path,
    state: &RunState,
    model: &dyn TextClassifier,
) -> Result<(), TrainError> {
    checkpoint::write(output, state, &|d| Ok(model.save(d)?))?;
    let mut keep = vec![checkpoint::epoch_dir_name(state.epoch)];
    if let Some(b) = &state.best {
        keep.push(checkpoint::epoch_dir_name(b.epoch));
    }
    checkpoint::prune(output, &keep)
}

/// Runs the expectation suite on the training data; a failure is an error listing each failed
/// expectation.
fn check_expectations(data: &Path, suite_path: &Path) -> Result<(), TrainError> {
    let suite = taxon_validate::Suite::load(suite_path)?;
    let report = taxon_validate::validate_paths(data, None, &suite)?;
    if report.success {
        return Ok(());
    }
    let failed = report
        .results
        .iter()
        .filter(|r| !r.success)
        .map(|r| {
            let column = r
                .kwargs
                .get("column")
                .and_then(|c| c.as_str())
                .map(|c| format!(" on `{c}`"))
                .unwrap_or_default();
            format!("{}{column}: observed {}", r.expectation_type, r.summary)
        })
        .collect();
    Err(TrainError::Expectations {
        data: data.to_path_buf(),
        suite: suite_path.to_path_buf(),
        total: report.results.len(),
        failed,
    })
}

/// The version id of `data` when taxon tracks it: the out md5 of `data.dvc`, or of the `.dvc`
/// file of the nearest parent folder that has one.
pub fn data_version(data: &Path) -> Result<Option<String>, TrainError> {
    let abs = std::path::absolute(data).map_err(|source| TrainError::Io {
        path: data.to_path_buf(),
        source,
    })?;
    for p in abs.ancestors() {
        if p.file_name().is_none() {
            break;
        }
        let pointer = taxon_version::dvcfile::dvc_path_for(p);
        if pointer.is_file() {
            let file = taxon_version::dvcfile::DvcFile::load(&pointer)?;
            return Ok(file.outs.first().map(|o| o.md5.to_string()));
        }
    }
    Ok(None)
}

/// Labelled rows: (text, label).
pub type Rows = Vec<(String, String)>;

/// Holds out `ratio` of each label's records (at least one when a label has two or more),
/// seeded; returns (train, validation).
pub fn stratified_split(records: Rows, ratio: f64, seed: u64) -> (Rows, Rows) {
    let mut by_label: std::collections::BTreeMap<String, Rows> = Default::default();
    for r in records {
        by_label.entry(r.1.clone()).or_default().push(r);
    }
    let mut rng = SplitMix64::new(seed);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (_, mut rows) in by_label {
        rng.shuffle(&mut rows);
        let n = rows.len();
        // Ratio 0 means no validation rows; otherwise every label with 2+ rows gives at least
        // one to validation and keeps at least one for training.
        let k = if n >= 2 && ratio > 0.0 {
            ((n as f64 * ratio).round() as usize).clamp(1, n - 1)
        } else {
            0
        };
        let rest = rows.split_off(k);
        val.extend(rows);
        train.extend(rest);
    }
    rng.shuffle(&mut train);
    rng.shuffle(&mut val);
    (train, val)
}

/// Arg-max labels of `texts`, predicted in batches over `threads` threads.
pub fn predict_labels(model: &dyn TextClassifier, texts: &[&str], threads: usize) -> Vec<usize> {
    crate::report::predict_probabilities(model, texts, threads, None)
        .iter()
        .map(|p| crate::report::argmax(p))
        .collect()
}

/// Evaluates the model in `model_dir` on the labelled file `data`.
pub fn evaluate(model_dir: &Path, data: &Path, threads: usize) -> Result<EvalReport, TrainError> {
    let model = taxon_models::load(model_dir)?;
    let rows = read_labelled(data)?;
    Ok(evaluate_model(model.as_ref(), &rows, threads))
}

/// Evaluates `model` on (text, label) rows. Labels the model does not know are appended to the
/// label list, so their examples count as errors.
pub fn evaluate_model(
    model: &dyn TextClassifier,
    rows: &[(String, String)],
    threads: usize,
) -> EvalReport {
    let mut labels: Vec<String> = model.labels().to_vec();
    let mut idx: HashMap<String, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), i))
        .collect();
    let truth: Vec<usize> = rows
        .iter()
        .map(|(_, l)| {
            *idx.entry(l.clone()).or_insert_with(|| {
                labels.push(l.clone());
                labels.len() - 1
            })
        })
        .collect();
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let threads = threads.max(1);
    let start = Instant::now();
    let pred = predict_labels(model, &texts, threads);
    let predict_seconds = start.elapsed().as_secs_f64();
    EvalReport {
        metrics: Metrics::compute(&labels, &truth, &pred),
        predict_seconds,
        docs_per_sec: texts.len() as f64 / predict_seconds.max(1e-9),
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_epochs_follow_the_model_type() {
        assert_eq!(default_epochs(None), LINEAR_EPOCHS);
        assert_eq!(default_epochs(Some("linear")), LINEAR_EPOCHS);
        assert_eq!(default_epochs(Some("lstm")), LSTM_EPOCHS);
        assert_eq!(default_epochs(Some("bert")), bert::DEFAULT_EPOCHS);
    }

    #[test]
    fn stratified_split_keeps_label_shares_and_is_seeded() {
        let rows: Vec<(String, String)> = (0..100)
            .map(|i| (format!("t{i}"), if i < 80 { "a" } else { "b" }.to_string()))
            .collect();
        let (t, v) = stratified_split(rows.clone(), 0.1, 1);
        assert_eq!(v.len(), 10);
        assert_eq!(t.len(), 90);
        assert_eq!(v.iter().filter(|r| r.1 == "b").count(), 2);
        let (_, v2) = stratified_split(rows.clone(), 0.1, 1);
        assert_eq!(v, v2);
        let (_, v3) = stratified_split(rows.clone(), 0.1, 2);
        assert_ne!(v, v3);
        // Ratio 0: everything trains.
        let (t0, v0) = stratified_split(rows, 0.0, 1);
        assert_eq!((t0.len(), v0.len()), (100, 0));
    }
}

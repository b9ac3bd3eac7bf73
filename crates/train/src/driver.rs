//! The training driver (config in, model folder and `metrics.json` out) and evaluation of any
//! model on labelled data.
//!
//! `train` refuses data that fails its expectation suite, reads the data once (records, md5,
//! progress), takes the validation split, builds the model type's trainer from the typed config
//! (`ModelConfig::trainer`) and runs taxon-models' epoch loop with this crate's checkpoints
//! ([`crate::checkpoint`]): `--resume` from the latest one, early stopping on a validation metric
//! with the best epoch's weights as the final model. `metrics.json` holds no timings, so the
//! same config and data with `threads: 1` give a byte-identical file.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};
use taxon_models::rng::SplitMix64;
use taxon_models::training::{
    EpochReport, LoopPlan, LoopState, TrainObserver, Trainable, run_epochs,
};

use crate::checkpoint::{self, Checkpoints};
use crate::config::{DEFAULT_VALIDATION_RATIO, TrainConfig};
use crate::data::{read_hashed, read_labelled};
use crate::error::TrainError;
use crate::metrics::Metrics;

/// File name of the training metrics in a model folder.
pub const METRICS_JSON: &str = "metrics.json";

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
    let data_path = &cfg.data;
    let output = &cfg.output;
    if let Some(suite) = &cfg.expectations {
        check_expectations(data_path, suite, observer)?;
    }
    let data_version = taxon_version::dvcfile::data_version(data_path)?.map(String::from);
    let data = read_hashed(data_path, observer)?;
    let (train_rows, val_rows, validation_source) = match &cfg.validation {
        Some(p) => (data.rows, read_labelled(p)?, p.display().to_string()),
        None => {
            let ratio = cfg.validation_ratio.unwrap_or(DEFAULT_VALIDATION_RATIO);
            let (t, v) = stratified_split(data.rows, ratio, cfg.seed);
            (
                t,
                v,
                format!(
                    "split: {:.0}% of data, stratified, seed {}",
                    ratio * 100.0,
                    cfg.seed
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
            path: data_path.clone(),
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
    let val_truth: Vec<usize> = val_ex.iter().map(|(_, l)| *l).collect();

    let mut trainer = cfg
        .model
        .trainer(cfg.run_settings(), &labels, &train_ex, &val_ex)?;
    let mut checkpoints = Checkpoints {
        output,
        config: cfg,
        data_md5: &data.md5,
        labels: &labels,
        truth: &val_truth,
        monitor: cfg.monitor.unwrap_or_default(),
        writer: None,
    };
    let (progress, resumed_from) = if run.resume {
        let saved = resume(cfg, &data.md5, trainer.as_mut())?;
        let epoch = saved.epoch;
        (saved, Some(epoch))
    } else {
        let root = checkpoint::checkpoints_dir(output);
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .map_err(|source| TrainError::Io { path: root, source })?;
        }
        (LoopState::default(), None)
    };
    let plan = LoopPlan {
        epochs: cfg.epochs(),
        checkpoint_every: cfg.checkpoint_every,
        patience: cfg.early_stopping_patience,
        stop_after: run.stop_after_epochs,
    };
    let done = run_epochs(
        trainer.as_mut(),
        &plan,
        progress,
        &mut checkpoints,
        observer,
    )?;
    if !done.interrupted {
        // The final model: the best epoch's under early stopping, else the last epoch's.
        if done.model_is_checkpoint {
            let dir = checkpoint::checkpoints_dir(output)
                .join(checkpoint::epoch_dir_name(done.model_epoch));
            checkpoint::copy_model(&dir, output)?;
        } else {
            trainer.model().save(output)?;
        }
    }

    let summary = TrainSummary {
        model_type: cfg.model.model_type().to_string(),
        output: output.clone(),
        config: cfg.clone(),
        data_version,
        train_examples: train_ex.len(),
        validation_examples: val_ex.len(),
        validation_source,
        model_epoch: done.model_epoch,
        best_epoch: done.state.best.as_ref().map(|b| b.epoch),
        epochs: done.state.epochs,
        stopped_early: done.stopped_early,
        warnings: cfg.warnings.clone(),
        train_seconds: done.train_seconds,
        checkpoint_seconds: done.checkpoint_seconds,
        resumed_from_epoch: resumed_from,
        complete: !done.interrupted,
        validation: done.model_validation,
    };
    if done.interrupted {
        return Ok(summary);
    }
    let path = output.join(METRICS_JSON);
    let text = serde_json::to_string_pretty(&summary.metrics_json()).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|source| TrainError::Io { path, source })?;
    Ok(summary)
}

/// Restores `trainer` from the latest checkpoint in `cfg.output`, after checking that it was
/// written by the same config on the same data; returns the epoch loop's state to continue from.
fn resume(
    cfg: &TrainConfig,
    data_md5: &taxon_core::Md5Hex,
    trainer: &mut dyn Trainable,
) -> Result<LoopState<Metrics>, TrainError> {
    let (dir, saved) =
        checkpoint::read_latest(&cfg.output)?.ok_or_else(|| TrainError::Checkpoint {
            path: checkpoint::checkpoints_dir(&cfg.output),
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
    if &saved.data_md5 != data_md5 {
        return Err(TrainError::ResumeConfig {
            path: state_path,
            key: "data".into(),
            checkpoint: format!("content md5 {}", saved.data_md5),
            now: format!("content md5 {data_md5}"),
        });
    }
    trainer
        .restore(&dir, &saved.trainer)
        .map_err(|e| TrainError::Checkpoint {
            path: dir.clone(),
            message: e.to_string(),
        })?;
    Ok(saved.progress)
}

/// Runs the expectation suite on the training data; a failure is an error listing each failed
/// expectation.
fn check_expectations(
    data: &Path,
    suite_path: &Path,
    observer: &dyn TrainObserver,
) -> Result<(), TrainError> {
    let suite = taxon_validate::Suite::load(suite_path)?;
    let total = std::fs::metadata(data).map_or(0, |m| m.len());
    let mut read = 0u64;
    let report = taxon_validate::validate_paths_with(
        data,
        None,
        &suite,
        &taxon_dataset::ReadOptions::default(),
        &mut |bytes| {
            read += bytes;
            observer.on_read(data, read, total);
        },
    )?;
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
pub fn predict_labels(
    model: &dyn TextClassifier,
    texts: &[&str],
    threads: usize,
) -> Result<Vec<usize>, ModelError> {
    Ok(
        crate::report::predict_probabilities(model, texts, threads, None)?
            .iter()
            .map(|p| crate::report::argmax(p))
            .collect(),
    )
}

/// Evaluates the model in `model_dir` on the labelled file `data`.
pub fn evaluate(model_dir: &Path, data: &Path, threads: usize) -> Result<EvalReport, TrainError> {
    let model = taxon_models::load(model_dir)?;
    let rows = read_labelled(data)?;
    evaluate_model(model.as_ref(), &rows, threads)
}

/// Evaluates `model` on (text, label) rows. Labels the model does not know are appended to the
/// label list, so their examples count as errors.
pub fn evaluate_model(
    model: &dyn TextClassifier,
    rows: &[(String, String)],
    threads: usize,
) -> Result<EvalReport, TrainError> {
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
    let pred = predict_labels(model, &texts, threads)?;
    let predict_seconds = start.elapsed().as_secs_f64();
    Ok(EvalReport {
        metrics: Metrics::compute(&labels, &truth, &pred),
        predict_seconds,
        docs_per_sec: texts.len() as f64 / predict_seconds.max(1e-9),
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

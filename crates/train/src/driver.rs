//! The training driver (config in, model folder and `metrics.json` out) and evaluation of any
//! model on labelled data.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::TextClassifier;
use taxon_models::linear::{self, EpochReport, LinearConfig, SgdOptions, TrainObserver};
use taxon_models::rng::SplitMix64;

use crate::config::{DEFAULT_VALIDATION_RATIO, TrainConfig};
use crate::data::read_labelled;
use crate::error::TrainError;
use crate::metrics::Metrics;

/// File name of the training metrics in a model folder.
pub const METRICS_JSON: &str = "metrics.json";

/// Defaults of the linear model's SGD, tuned on a validation split of BBC News' training part.
pub const LINEAR_LEARNING_RATE: f32 = 1.0;
pub const LINEAR_EPOCHS: usize = 25;
pub const DEFAULT_SEED: u64 = 42;

/// What a training run produced; also written as `metrics.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainSummary {
    pub model_type: String,
    pub output: PathBuf,
    /// The config after defaults and overrides.
    pub config: TrainConfig,
    pub train_examples: usize,
    pub validation_examples: usize,
    /// Where validation data came from: a file, or `split` of the training data.
    pub validation_source: String,
    pub epochs: Vec<EpochReport>,
    pub train_seconds: f64,
    pub validation: Option<Metrics>,
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
    cfg.check()?;
    let model_type = cfg
        .model_type
        .clone()
        .unwrap_or_else(|| linear::MODEL_TYPE.into());
    if model_type != linear::MODEL_TYPE {
        return Err(TrainError::Invalid {
            field: "model_type",
            message: format!(
                "unknown model type {model_type:?} (known: {})",
                taxon_models::MODEL_TYPES.join(", ")
            ),
        });
    }
    let model_config: LinearConfig = match &cfg.model_config {
        None | Some(serde_json::Value::Null) => LinearConfig::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| TrainError::Invalid {
            field: "model_config",
            message: e.to_string(),
        })?,
    };
    let mut resolved = cfg.clone();
    resolved.model_type = Some(model_type.clone());
    resolved.model_config = Some(serde_json::to_value(&model_config).unwrap_or_default());
    resolved.learning_rate.get_or_insert(LINEAR_LEARNING_RATE);
    resolved.epochs.get_or_insert(LINEAR_EPOCHS);
    resolved.seed.get_or_insert(DEFAULT_SEED);
    resolved.threads.get_or_insert_with(default_threads);
    let seed = resolved.seed.unwrap_or(DEFAULT_SEED);

    let data_path = cfg.data.clone().unwrap_or_default();
    let output = cfg.output.clone().unwrap_or_default();
    let records = read_labelled(&data_path)?;
    let (train_rows, val_rows, validation_source) = match &cfg.validation {
        Some(p) => (records, read_labelled(p)?, p.display().to_string()),
        None => {
            let ratio = cfg.validation_ratio.unwrap_or(DEFAULT_VALIDATION_RATIO);
            resolved.validation_ratio = Some(ratio);
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

    let opts = SgdOptions {
        learning_rate: resolved.learning_rate.unwrap_or(LINEAR_LEARNING_RATE),
        epochs: resolved.epochs.unwrap_or(LINEAR_EPOCHS),
        seed,
        threads: resolved.threads.unwrap_or(1),
    };
    let start = Instant::now();
    let (model, epochs) =
        linear::train(&model_config, &opts, &labels, &train_ex, &val_ex, observer)?;
    let train_seconds = start.elapsed().as_secs_f64();
    model.save(&output)?;
    let validation = (!val_ex.is_empty()).then(|| {
        let texts: Vec<&str> = val_ex.iter().map(|(t, _)| *t).collect();
        let truth: Vec<usize> = val_ex.iter().map(|(_, l)| *l).collect();
        let pred = predict_labels(&model, &texts, opts.threads);
        Metrics::compute(&labels, &truth, &pred)
    });
    let summary = TrainSummary {
        model_type,
        output: output.clone(),
        config: resolved,
        train_examples: train_ex.len(),
        validation_examples: val_ex.len(),
        validation_source,
        epochs,
        train_seconds,
        validation,
    };
    let path = output.join(METRICS_JSON);
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|source| TrainError::Io { path, source })?;
    Ok(summary)
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
        let k = if n >= 2 {
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
    let threads = threads.clamp(1, texts.len().max(1));
    let chunk = texts.len().div_ceil(threads).max(1);
    let run = |part: &[&str]| -> Vec<usize> {
        part.chunks(256)
            .flat_map(|b| model.predict_batch(b))
            .map(|p| argmax(&p))
            .collect()
    };
    if threads == 1 {
        return run(texts);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|p| s.spawn(move || run(p)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
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
        let (_, v3) = stratified_split(rows, 0.1, 2);
        assert_ne!(v, v3);
    }
}

//! The evaluate stage: scores a model on labelled data and gathers everything a user looks at
//! afterwards (metrics, calibration with optional temperature scaling, the training history
//! from the model folder's `metrics.json`), as one [`Evaluation`] that prints as JSON or renders
//! as a self-contained HTML report ([`html::render`]).

pub mod html;
pub mod svg;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelDescription, ModelError, TextClassifier};

use crate::calibration::{
    self, CalibrationError, ECE_BINS, ReliabilityBin, TemperatureFile, TemperatureFit,
};
use crate::data::read_labelled;
use crate::driver::METRICS_JSON;
use crate::error::TrainError;
use crate::metrics::Metrics;

/// Errors of an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error("{}: calibration data: {source}", path.display())]
    CalibrationData {
        path: PathBuf,
        #[source]
        source: CalibrationError,
    },
    #[error("{}: {source}", model.display())]
    Predict {
        model: PathBuf,
        #[source]
        source: ModelError,
    },
    #[error(
        "{}: model returned {found} probabilities for example {index}, expected {expected} (one per label)",
        model.display()
    )]
    BadPrediction {
        model: PathBuf,
        index: usize,
        expected: usize,
        found: usize,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How to evaluate.
pub struct EvalOptions<'a> {
    /// Prediction threads (at least 1).
    pub threads: usize,
    /// Confidence bins of the ECE ([`ECE_BINS`] by default).
    pub bins: usize,
    /// Fit a temperature on this labelled file (validation data, not the evaluated data).
    pub calibrate_on: Option<PathBuf>,
    /// Called from the prediction threads with (texts just scored, texts in all).
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

impl Default for EvalOptions<'_> {
    fn default() -> Self {
        Self {
            threads: 1,
            bins: ECE_BINS,
            calibrate_on: None,
            progress: None,
        }
    }
}

/// Everything an evaluation found. Serializes to the `--json` document: the [`Metrics`] keys
/// (`accuracy`, `macro_f1`, `per_class`, `confusion_matrix`, ...) at the top level, then
/// `ece`, `reliability`, and `temperature` + `calibrated` when a temperature was applied.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: PathBuf,
    pub model_type: String,
    pub data: PathBuf,
    #[serde(flatten)]
    pub metrics: Metrics,
    /// Examples whose label the model does not know (counted as errors).
    pub unknown_label_examples: u64,
    pub predict_seconds: f64,
    pub docs_per_sec: f64,
    pub threads: usize,
    /// Expected calibration error of the model's own probabilities (Guo et al. 2017).
    pub ece: f64,
    /// Maximum calibration error (largest bin gap).
    pub mce: f64,
    /// Mean negative log-likelihood of the true labels (examples with a known label).
    pub nll: f64,
    /// Per-bin confidence, accuracy and count behind `ece`.
    pub reliability: Vec<ReliabilityBin>,
    /// The temperature applied for `calibrated`, when one was fitted or found in the folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<Calibrated>,
    /// Per-epoch training metrics from the model folder's `metrics.json`, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<TrainingHistory>,
    /// The folder's `optimize.json` (size, latency and accuracy before and after `taxon model
    /// optimize`), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimization: Option<taxon_models::bert::OptimizeReport>,
    /// Things the user should know that did not stop the evaluation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Number of labels the model predicts (the first `model_labels` of `metrics.labels`).
    #[serde(skip)]
    model_labels: usize,
    /// The probabilities behind the numbers, kept to apply a temperature afterwards.
    #[serde(skip)]
    scored: Scored,
}

/// Calibration of the evaluated data after temperature scaling.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Calibrated {
    /// Where the temperature came from: the `--calibrate-on` file, or the folder's
    /// `temperature.json`.
    pub source: String,
    /// The fit on the validation data, when it was fitted in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fit: Option<TemperatureFit>,
    pub ece: f64,
    pub mce: f64,
    pub nll: f64,
    pub reliability: Vec<ReliabilityBin>,
}

/// Training curves of a model folder.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingHistory {
    pub source: PathBuf,
    pub epochs: Vec<EpochPoint>,
    /// The epoch whose weights the folder holds (`model_epoch`), when the driver recorded it.
    pub model_epoch: Option<f64>,
}

/// One epoch of training history; absent values stay `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    pub epoch: f64,
    pub train_loss: Option<f64>,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    pub validation_macro_f1: Option<f64>,
}

/// Evaluates the model folder `model_dir` on the labelled file `data`.
pub fn evaluate(
    model_dir: &Path,
    data: &Path,
    opts: &EvalOptions<'_>,
) -> Result<Evaluation, EvalError> {
    let model = taxon_models::load(model_dir).map_err(TrainError::from)?;
    let desc = ModelDescription::read(model_dir).map_err(TrainError::from)?;
    let rows = read_labelled(data)?;
    let mut eval = evaluate_model(model.as_ref(), model_dir, &rows, opts)?;
    eval.model_type = desc.model_type;
    eval.data = data.to_path_buf();

    let temperature = match &opts.calibrate_on {
        Some(val) => {
            let val_rows = read_labelled(val)?;
            let fit =
                fit_on(model.as_ref(), model_dir, &val_rows, opts.threads).map_err(
                    |e| match e {
                        EvalError::Calibration(source) => EvalError::CalibrationData {
                            path: val.clone(),
                            source,
                        },
                        other => other,
                    },
                )?;
            if fit.at_bound {
                eval.warnings.push(format!(
                    "the fitted temperature {:.4} lies at the end of the search range [{}, {}]",
                    fit.temperature,
                    calibration::MIN_TEMPERATURE,
                    calibration::MAX_TEMPERATURE
                ));
            }
            Some((fit.temperature, val.display().to_string(), Some(fit)))
        }
        None => TemperatureFile::read(model_dir)?.map(|t| {
            (
                t.temperature,
                model_dir
                    .join(calibration::TEMPERATURE_JSON)
                    .display()
                    .to_string(),
                None,
            )
        }),
    };
    if let Some((t, source, fit)) = temperature {
        eval.apply_temperature(t, source, fit, opts.bins)?;
    }
    match read_history(model_dir) {
        Ok(h) => eval.history = h,
        Err(message) => eval.warnings.push(message),
    }
    match taxon_models::bert::OptimizeReport::read(model_dir) {
        Ok(o) => eval.optimization = o,
        Err(e) => eval.warnings.push(e.to_string()),
    }
    Ok(eval)
}

/// What one pass of the model over the data keeps for calibration.
#[derive(Clone, Debug, Default)]
struct Scored {
    /// Probability vectors, one per example.
    probs: Vec<Vec<f32>>,
    /// True label index per example (may point past the model's labels).
    truth: Vec<usize>,
}

impl Evaluation {
    /// Recomputes `calibrated` with temperature `t` applied to the kept probabilities.
    fn apply_temperature(
        &mut self,
        t: f64,
        source: String,
        fit: Option<TemperatureFit>,
        bins: usize,
    ) -> Result<(), EvalError> {
        let k = self.model_labels;
        let scaled: Vec<Vec<f64>> = self
            .scored
            .probs
            .iter()
            .map(|p| calibration::scale_probabilities(p, t))
            .collect();
        let (cal, nll) = calibration_of(&scaled, &self.scored.truth, k, bins)?;
        self.temperature = Some(t);
        self.calibrated = Some(Calibrated {
            source,
            fit,
            ece: cal.ece,
            mce: cal.mce,
            nll,
            reliability: cal.bins,
        });
        Ok(())
    }
}

/// Evaluates `model` (loaded from `model_dir`) on (text, label) rows. Labels the model does not
/// know are appended to the label list, so their examples count as errors.
pub fn evaluate_model(
    model: &dyn TextClassifier,
    model_dir: &Path,
    rows: &[(String, String)],
    opts: &EvalOptions<'_>,
) -> Result<Evaluation, EvalError> {
    let k = model.labels().len();
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
    let threads = opts.threads.max(1);
    let start = Instant::now();
    let probs = predict_probabilities(model, &texts, threads, opts.progress).map_err(|source| {
        EvalError::Predict {
            model: model_dir.to_path_buf(),
            source,
        }
    })?;
    let predict_seconds = start.elapsed().as_secs_f64();
    check_shapes(&probs, k, model_dir)?;
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let as_f64: Vec<Vec<f64>> = probs
        .iter()
        .map(|p| p.iter().map(|&v| f64::from(v)).collect())
        .collect();
    let (cal, nll) = calibration_of(&as_f64, &truth, k, opts.bins)?;
    Ok(Evaluation {
        model: model_dir.to_path_buf(),
        model_type: String::new(),
        data: PathBuf::new(),
        metrics: Metrics::compute(&labels, &truth, &pred),
        unknown_label_examples: truth.iter().filter(|&&t| t >= k).count() as u64,
        predict_seconds,
        docs_per_sec: texts.len() as f64 / predict_seconds.max(1e-9),
        threads,
        ece: cal.ece,
        mce: cal.mce,
        nll,
        reliability: cal.bins,
        temperature: None,
        calibrated: None,
        history: None,
        optimization: None,
        warnings: Vec::new(),
        model_labels: k,
        scored: Scored { probs, truth },
    })
}

/// Fits a temperature of `model` on validation rows (rows whose label the model does not know
/// are left out: they have no logit).
pub fn fit_on(
    model: &dyn TextClassifier,
    model_dir: &Path,
    rows: &[(String, String)],
    threads: usize,
) -> Result<TemperatureFit, EvalError> {
    let idx: HashMap<&str, usize> = model
        .labels()
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let known: Vec<(&str, usize)> = rows
        .iter()
        .filter_map(|(t, l)| idx.get(l.as_str()).map(|&i| (t.as_str(), i)))
        .collect();
    let texts: Vec<&str> = known.iter().map(|(t, _)| *t).collect();
    let truth: Vec<usize> = known.iter().map(|(_, y)| *y).collect();
    let probs = predict_probabilities(model, &texts, threads.max(1), None).map_err(|source| {
        EvalError::Predict {
            model: model_dir.to_path_buf(),
            source,
        }
    })?;
    check_shapes(&probs, model.labels().len(), model_dir)?;
    Ok(calibration::fit_temperature(&probs, &truth)?)
}

fn check_shapes(probs: &[Vec<f32>], k: usize, model_dir: &Path) -> Result<(), EvalError> {
    match probs.iter().position(|p| p.len() != k) {
        Some(index) => Err(EvalError::BadPrediction {
            model: model_dir.to_path_buf(),
            index,
            expected: k,
            found: probs[index].len(),
        }),
        None => Ok(()),
    }
}

/// Reliability table and mean NLL of probability vectors over `k` model labels; `truth` past
/// `k` (labels the model does not know) counts as a wrong prediction and is left out of the NLL.
fn calibration_of(
    probs: &[Vec<f64>],
    truth: &[usize],
    k: usize,
    bins: usize,
) -> Result<(calibration::Calibration, f64), CalibrationError> {
    let mut conf = Vec::with_capacity(probs.len());
    let mut correct = Vec::with_capacity(probs.len());
    let (mut nll, mut known) = (0.0, 0usize);
    for (p, &y) in probs.iter().zip(truth) {
        let best = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        conf.push(p.get(best).copied().unwrap_or(0.0).clamp(0.0, 1.0));
        correct.push(best == y);
        if y < k {
            nll -= p[y].max(1e-30).ln();
            known += 1;
        }
    }
    let cal = calibration::reliability(&conf, &correct, bins)?;
    Ok((cal, nll / known.max(1) as f64))
}

/// Probability vectors of `texts`, in order, predicted in batches over `threads` threads; the
/// first model error stops the scoring.
pub fn predict_probabilities(
    model: &dyn TextClassifier,
    texts: &[&str],
    threads: usize,
    progress: Option<&(dyn Fn(u64, u64) + Sync)>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    const BATCH: usize = 256;
    let threads = threads.clamp(1, texts.len().max(1));
    let chunk = texts.len().div_ceil(threads).max(1);
    let run = |part: &[&str]| -> Result<Vec<Vec<f32>>, ModelError> {
        let mut out = Vec::with_capacity(part.len());
        for b in part.chunks(BATCH) {
            out.extend(model.predict_batch(b)?);
            if let Some(f) = progress {
                f(b.len() as u64, texts.len() as u64);
            }
        }
        Ok(out)
    };
    if threads == 1 {
        return run(texts);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|p| s.spawn(move || run(p)))
            .collect();
        let mut out = Vec::with_capacity(texts.len());
        for h in handles {
            // A panicking model is a bug: it goes on as the caller's panic, never as rows.
            let part = h
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            out.extend(part);
        }
        Ok(out)
    })
}

/// Index of the largest value (the first on ties): the predicted label everywhere.
pub(crate) fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// The per-epoch history in `dir/metrics.json`: `Ok(None)` when the file is absent, `Err` with
/// a message (a warning for the report, not a failure) when it cannot be read. Reads the
/// fields it knows from each entry of `epochs` and ignores the rest, so it follows the driver's
/// format as it grows.
pub fn read_history(dir: &Path) -> Result<Option<TrainingHistory>, String> {
    let path = dir.join(METRICS_JSON);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}; no training curves", path.display())),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{}: {e}; no training curves", path.display()))?;
    let Some(epochs) = value.get("epochs").and_then(|e| e.as_array()) else {
        return Err(format!(
            "{}: field `epochs` is missing or not a list; no training curves",
            path.display()
        ));
    };
    let num = |e: &serde_json::Value, key: &str| e.get(key).and_then(serde_json::Value::as_f64);
    let points = epochs
        .iter()
        .enumerate()
        .map(|(i, e)| EpochPoint {
            epoch: num(e, "epoch").unwrap_or((i + 1) as f64),
            train_loss: num(e, "train_loss"),
            validation_loss: num(e, "validation_loss"),
            validation_accuracy: num(e, "validation_accuracy"),
            validation_macro_f1: num(e, "validation_macro_f1"),
        })
        .collect();
    Ok(Some(TrainingHistory {
        source: path,
        epochs: points,
        model_epoch: num(&value, "model_epoch"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use taxon_core::model::{Encoded, InputLimits};

    /// A model that answers fixed probabilities keyed by text, and fails on any other text.
    struct Table {
        labels: Vec<String>,
        answers: HashMap<String, Vec<f32>>,
    }

    impl TextClassifier for Table {
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
            Ok(Encoded::new(1, text.to_string()))
        }
        fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
            inputs
                .iter()
                .map(|e| {
                    let text = e.input::<String>("table")?;
                    self.answers
                        .get(text)
                        .cloned()
                        .ok_or_else(|| ModelError::Inference {
                            model_type: "table".into(),
                            message: format!("no answer for {text:?}"),
                        })
                })
                .collect()
        }
        fn save(&self, _dir: &Path) -> Result<(), ModelError> {
            Ok(())
        }
        fn describe(&self) -> ModelDescription {
            ModelDescription {
                format_version: 1,
                model_type: "table".into(),
                labels: self.labels.clone(),
                params: serde_json::Value::Null,
                input: InputLimits::default(),
                files: vec![],
                created_by: "test".into(),
            }
        }
    }

    fn rows(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(t, l)| (t.to_string(), l.to_string()))
            .collect()
    }

    fn model() -> Table {
        Table {
            labels: vec!["a".into(), "b".into()],
            answers: [
                ("x", vec![0.9f32, 0.1]),
                ("y", vec![0.2, 0.8]),
                ("z", vec![0.6, 0.4]),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }
    }

    /// x -> a (0.9, right), y -> b (0.8, right), z -> a (0.6, wrong: truth b).
    /// With 2 bins: (0, 0.5] empty, (0.5, 1] conf 2.3/3, acc 2/3 -> ECE = 0.1.
    /// NLL = -(ln 0.9 + ln 0.8 + ln 0.4) / 3.
    #[test]
    fn evaluation_metrics_and_calibration_by_hand() {
        let m = model();
        let data = rows(&[("x", "a"), ("y", "b"), ("z", "b")]);
        let opts = EvalOptions {
            threads: 2,
            bins: 2,
            ..EvalOptions::default()
        };
        let e = evaluate_model(&m, Path::new("m"), &data, &opts).unwrap();
        assert!((e.metrics.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(e.metrics.confusion_matrix, vec![vec![1, 0], vec![1, 1]]);
        assert!((e.ece - 0.1).abs() < 1e-6, "{}", e.ece);
        assert_eq!(e.reliability[1].count, 3);
        let nll = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 3.0;
        assert!((e.nll - nll).abs() < 1e-6);
        assert!(e.temperature.is_none());
        let json = serde_json::to_value(&e).unwrap();
        for key in [
            "accuracy",
            "macro_f1",
            "per_class",
            "confusion_matrix",
            "ece",
            "reliability",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
        assert!(json.get("temperature").is_none());
        assert!(json.get("scored").is_none());
    }

    /// `taxon eval` and the training driver's validation must agree on the same predictions,
    /// ties included (both take the first maximum).
    #[test]
    fn metrics_agree_with_the_driver_evaluation() {
        let mut m = model();
        m.answers.insert("tie".into(), vec![0.5, 0.5]);
        let data = rows(&[("x", "a"), ("y", "a"), ("z", "b"), ("tie", "b"), ("y", "c")]);
        let ours = evaluate_model(&m, Path::new("m"), &data, &EvalOptions::default()).unwrap();
        let driver = crate::driver::evaluate_model(&m, &data, 3).unwrap();
        assert_eq!(ours.metrics, driver.metrics);
    }

    #[test]
    fn unknown_labels_count_as_errors_and_are_left_out_of_the_fit() {
        let m = model();
        let data = rows(&[("x", "a"), ("y", "c")]);
        let e = evaluate_model(&m, Path::new("m"), &data, &EvalOptions::default()).unwrap();
        assert_eq!(e.unknown_label_examples, 1);
        assert_eq!(e.metrics.labels, ["a", "b", "c"]);
        assert!((e.metrics.accuracy - 0.5).abs() < 1e-12);
        let fit = fit_on(&m, Path::new("m"), &data, 1).unwrap();
        assert_eq!(fit.examples, 1);
        let none = fit_on(&m, Path::new("m"), &rows(&[("x", "q")]), 1);
        assert!(matches!(
            none,
            Err(EvalError::Calibration(CalibrationError::NoExamples))
        ));
    }

    #[test]
    fn temperature_is_applied_to_the_evaluated_data() {
        let m = model();
        let data = rows(&[("x", "a"), ("y", "b"), ("z", "b")]);
        let mut e = evaluate_model(&m, Path::new("m"), &data, &EvalOptions::default()).unwrap();
        e.apply_temperature(2.0, "test".into(), None, ECE_BINS)
            .unwrap();
        let c = e.calibrated.as_ref().unwrap();
        assert_eq!(e.temperature, Some(2.0));
        // softmax(log p / 2) of (0.9, 0.1) puts 3/4 on a.
        let q = calibration::scale_probabilities(&[0.9, 0.1], 2.0);
        assert!((q[0] - 0.75).abs() < 1e-6);
        assert_eq!(c.reliability.iter().map(|b| b.count).sum::<u64>(), 3);
        assert!(c.nll.is_finite());
    }

    /// A model error on one text fails the evaluation (naming the model folder and what
    /// failed), on one thread or several: no metrics from rows the model never scored.
    #[test]
    fn a_model_error_fails_the_evaluation() {
        let m = model();
        let data = rows(&[("x", "a"), ("y", "b"), ("poison", "b"), ("z", "a")]);
        for threads in [1, 3] {
            let opts = EvalOptions {
                threads,
                ..EvalOptions::default()
            };
            let err = evaluate_model(&m, Path::new("models/m"), &data, &opts).unwrap_err();
            assert!(matches!(err, EvalError::Predict { .. }), "{err}");
            let text = err.to_string();
            assert!(
                text.starts_with("models/m: table model: prediction failed"),
                "{text}"
            );
            assert!(text.contains("no answer for \"poison\""), "{text}");
        }
        assert!(matches!(
            fit_on(&m, Path::new("m"), &data, 2),
            Err(EvalError::Predict { .. })
        ));
    }

    #[test]
    fn wrong_probability_count_is_an_error() {
        let mut m = model();
        m.answers.insert("w".into(), vec![1.0]);
        let e = evaluate_model(
            &m,
            Path::new("m"),
            &rows(&[("w", "a")]),
            &EvalOptions::default(),
        );
        assert!(matches!(
            e,
            Err(EvalError::BadPrediction {
                index: 0,
                expected: 2,
                found: 1,
                ..
            })
        ));
    }

    #[test]
    fn history_reads_known_fields_and_tolerates_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_history(dir.path()), Ok(None));
        std::fs::write(
            dir.path().join(METRICS_JSON),
            r#"{"epochs":[{"epoch":1,"train_loss":1.5,"validation_accuracy":0.5,"extra":3},
                          {"epoch":2,"train_loss":0.7,"validation_accuracy":0.8,"validation_macro_f1":0.75}]}"#,
        )
        .unwrap();
        let h = read_history(dir.path()).unwrap().unwrap();
        assert_eq!(h.epochs.len(), 2);
        assert_eq!(h.model_epoch, None);
        assert_eq!(h.epochs[0].train_loss, Some(1.5));
        assert_eq!(h.epochs[0].validation_macro_f1, None);
        assert_eq!(h.epochs[1].validation_macro_f1, Some(0.75));
        std::fs::write(dir.path().join(METRICS_JSON), "{not json").unwrap();
        let err = read_history(dir.path()).unwrap_err();
        assert!(err.contains("metrics.json"), "{err}");
    }
}

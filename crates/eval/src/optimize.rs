//! The measurements `taxon model optimize` reports: the size of a model folder and of its
//! weights, accuracy and macro-F1 on labelled data, batch-1 latency and time per text in
//! batches, before and after, recorded as `optimize.json` in the optimized folder (which
//! `taxon eval --report` shows). The transforms themselves (int8, pruning) are the model's.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, TextClassifier};

use crate::report::{EvalError, EvalOptions, evaluate_model};

/// The file `taxon model optimize` writes into the optimized model folder.
pub const OPTIMIZE_JSON: &str = "optimize.json";

/// Measurements of one model (before or after optimization).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelMeasure {
    /// Bytes of the model folder's files (those listed in `model.json`).
    pub size_bytes: u64,
    /// Bytes of the weights file.
    pub weights_bytes: u64,
    /// Median milliseconds to score one text alone (batch 1).
    pub latency_ms_batch1: Option<f64>,
    /// Milliseconds per text when scoring batches of 32 texts (up to 128 texts of the file).
    pub ms_per_seq_batch32: Option<f64>,
    /// Accuracy on the labelled file.
    pub accuracy: Option<f64>,
    /// Macro-F1 on the labelled file.
    pub macro_f1: Option<f64>,
}

/// `optimize.json`: what was done and the numbers before and after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimizeReport {
    /// The model folder that was optimized.
    pub source: PathBuf,
    /// int8 quantization of the encoder's dense layers.
    pub int8: bool,
    /// The pruning amount asked for (fraction of dense weights zeroed).
    pub prune: f64,
    /// The fraction of zeros among the dense weights afterwards.
    pub sparsity: f64,
    /// The labelled file measured on, if any.
    pub data: Option<PathBuf>,
    /// Rows of that file.
    pub examples: Option<u64>,
    /// Texts timed one at a time for the batch-1 latency.
    pub latency_samples: Option<u64>,
    /// Threads the measurements ran on.
    pub threads: usize,
    /// The int8 kernel that ran (`avx512-vnni`, `avx2`, `portable`; `f32` without int8).
    pub kernel: String,
    /// The source model.
    pub before: ModelMeasure,
    /// The optimized model.
    pub after: ModelMeasure,
}

impl OptimizeReport {
    /// Writes `dir/optimize.json`.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, EvalError> {
        let path = dir.join(OPTIMIZE_JSON);
        let text = serde_json::to_string_pretty(self).map_err(|source| EvalError::Json {
            path: path.clone(),
            source,
        })?;
        std::fs::write(&path, text + "\n").map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Reads `dir/optimize.json`: `Ok(None)` when the folder has none.
    pub fn read(dir: &Path) -> Result<Option<Self>, EvalError> {
        let path = dir.join(OPTIMIZE_JSON);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(EvalError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| EvalError::Json { path, source })
    }
}

/// Sizes of the files `model.json` lists (and of model.json itself); `weights` names the
/// weights file among them.
pub fn sizes(dir: &Path, weights: &str) -> Result<ModelMeasure, EvalError> {
    let desc = ModelDescription::read(dir)?;
    let json = std::fs::metadata(dir.join(MODEL_JSON))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(ModelMeasure {
        size_bytes: desc.files.iter().map(|f| f.bytes).sum::<u64>() + json,
        weights_bytes: desc
            .files
            .iter()
            .find(|f| f.name == weights)
            .map_or(0, |f| f.bytes),
        ..ModelMeasure::default()
    })
}

/// Accuracy and macro-F1 of `model` (loaded from `dir`) on the whole of `rows`, on one
/// thread, into `into`; `progress` as in [`EvalOptions`].
pub fn quality(
    model: &dyn TextClassifier,
    dir: &Path,
    rows: &[(String, String)],
    into: &mut ModelMeasure,
    progress: Option<&(dyn Fn(u64, u64) + Sync)>,
) -> Result<(), EvalError> {
    let opts = EvalOptions {
        threads: 1,
        progress,
        ..EvalOptions::default()
    };
    let eval = evaluate_model(model, dir, rows, &opts)?;
    into.accuracy = Some(eval.metrics.accuracy);
    into.macro_f1 = Some(eval.metrics.macro_f1);
    Ok(())
}

/// Texts per batch of the throughput measurement (bert's own prediction batch).
pub const BATCH: usize = 32;
/// Batches of [`BATCH`] texts timed per model.
pub const BATCHES: usize = 4;

/// Texts timed per model when there is no --data (and texts timed one at a time, at most).
pub const SYNTHETIC_TEXTS: usize = 64;
pub const SYNTHETIC_SAMPLES: u64 = 8;

/// `n` texts of 300 common words, longer than any max_len the models take, so that the timing
/// without --data runs full-length sequences.
pub fn synthetic_texts(n: usize) -> Vec<String> {
    const WORDS: [&str; 16] = [
        "the",
        "market",
        "government",
        "said",
        "on",
        "new",
        "players",
        "film",
        "technology",
        "year",
        "people",
        "would",
        "first",
        "company",
        "music",
        "minister",
    ];
    (0..n)
        .map(|i| {
            (0..300)
                .map(|j| WORDS[(i * 7 + j * 5 + j / 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The median batch-1 latency over `samples` of `texts` spread over them, and the time per
/// text in batches of 32 over up to four batches, of both models. The two models run
/// alternately (text by text, batch by batch, which one goes first alternating too), so a
/// machine whose load changes during the measurement slows both alike. `progress(1, total)` is
/// called after each text or batch timed.
pub fn latencies(
    models: [&dyn TextClassifier; 2],
    into: [&mut ModelMeasure; 2],
    texts: &[&str],
    samples: u64,
    progress: &dyn Fn(u64, u64),
) -> Result<(), EvalError> {
    let spread = |n: usize| -> Vec<&str> {
        let n = n.min(texts.len()).max(1);
        let step = (texts.len() / n).max(1);
        (0..n)
            .filter_map(|i| texts.get(i * step).copied())
            .collect()
    };
    let single = spread(samples as usize);
    let batched = spread(BATCH * BATCHES);
    let batches: Vec<&[&str]> = batched.chunks(BATCH).collect();
    let steps = (single.len() + batches.len()) as u64;
    let time = |m: &dyn TextClassifier, texts: &[&str]| -> Result<f64, ModelError> {
        let start = Instant::now();
        std::hint::black_box(m.predict_batch(texts)?);
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    for m in models {
        if let Some(t) = single.first() {
            time(m, &[t])?; // warm-up
        }
    }
    let mut one: [Vec<f64>; 2] = Default::default();
    let mut many = [0f64; 2];
    for (i, t) in single.iter().enumerate() {
        for j in [i % 2, 1 - i % 2] {
            one[j].push(time(models[j], &[t])?);
        }
        progress(1, steps);
    }
    for (i, b) in batches.iter().enumerate() {
        for j in [i % 2, 1 - i % 2] {
            many[j] += time(models[j], b)?;
        }
        progress(1, steps);
    }
    for ((m, mut ms), total) in into.into_iter().zip(one).zip(many) {
        ms.sort_by(f64::total_cmp);
        m.latency_ms_batch1 = ms.get(ms.len() / 2).copied();
        m.ms_per_seq_batch32 = Some(total / batched.len().max(1) as f64);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use taxon_core::Md5Hex;
    use taxon_core::model::{Encoded, InputLimits, ModelFile};

    use super::*;

    /// Predicts label `a` for texts that start with "a", else `b`; counts the texts it scored.
    struct ByFirstLetter {
        labels: Vec<String>,
        scored: AtomicU64,
    }

    impl ByFirstLetter {
        fn new() -> Self {
            Self {
                labels: vec!["a".into(), "b".into()],
                scored: AtomicU64::new(0),
            }
        }
    }

    impl TextClassifier for ByFirstLetter {
        fn labels(&self) -> &[String] {
            &self.labels
        }
        fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
            Ok(Encoded::new(1, text.starts_with('a')))
        }
        fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
            self.scored
                .fetch_add(inputs.len() as u64, Ordering::Relaxed);
            inputs
                .iter()
                .map(|e| {
                    Ok(if *e.input::<bool>("test")? {
                        vec![0.9, 0.1]
                    } else {
                        vec![0.2, 0.8]
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
                model_type: "test".into(),
                labels: self.labels.clone(),
                params: serde_json::Value::Null,
                input: InputLimits::default(),
                files: vec![],
                created_by: "test".into(),
            }
        }
    }

    fn rows(n: usize) -> Vec<(String, String)> {
        // Every fourth text is labelled wrongly for the model: accuracy 3/4.
        (0..n)
            .map(|i| {
                let text = if i % 2 == 0 {
                    format!("a{i}")
                } else {
                    format!("b{i}")
                };
                let right = if i % 2 == 0 { "a" } else { "b" };
                let label = if i % 4 == 3 { "a" } else { right };
                (text, label.to_string())
            })
            .collect()
    }

    #[test]
    fn sizes_add_the_listed_files_and_model_json() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, bytes: u64| ModelFile {
            name: name.into(),
            bytes,
            md5: Md5Hex::of_bytes(name.as_bytes()),
        };
        let mut desc = ByFirstLetter::new().describe();
        desc.files = vec![file("model.safetensors", 1000), file("tokenizer.json", 24)];
        desc.write(dir.path()).unwrap();
        let json = std::fs::metadata(dir.path().join(MODEL_JSON))
            .unwrap()
            .len();
        let m = sizes(dir.path(), "model.safetensors").unwrap();
        assert_eq!(m.size_bytes, 1024 + json);
        assert_eq!(m.weights_bytes, 1000);
        assert_eq!(sizes(dir.path(), "other").unwrap().weights_bytes, 0);
        let missing = sizes(&dir.path().join("nope"), "model.safetensors");
        assert!(matches!(missing, Err(EvalError::Model(_))));
    }

    #[test]
    fn quality_is_accuracy_and_macro_f1_on_every_row() {
        let model = ByFirstLetter::new();
        let data = rows(8);
        let done = AtomicU64::new(0);
        let progress = |n: u64, _: u64| {
            done.fetch_add(n, Ordering::Relaxed);
        };
        let mut m = ModelMeasure::default();
        quality(&model, Path::new("m"), &data, &mut m, Some(&progress)).unwrap();
        assert_eq!(m.accuracy, Some(0.75));
        // a: precision 4/6, recall 1; b: precision 1, recall 2/4.
        let f1 = |p: f64, r: f64| 2.0 * p * r / (p + r);
        let macro_f1 = (f1(4.0 / 6.0, 1.0) + f1(1.0, 0.5)) / 2.0;
        assert!((m.macro_f1.unwrap() - macro_f1).abs() < 1e-12);
        assert_eq!(done.load(Ordering::Relaxed), 8);
        assert_eq!(m.latency_ms_batch1, None);
    }

    #[test]
    fn latencies_time_both_models_on_the_same_texts() {
        let (a, b) = (ByFirstLetter::new(), ByFirstLetter::new());
        let (mut ma, mut mb) = (ModelMeasure::default(), ModelMeasure::default());
        let data = rows(200);
        let steps = AtomicU64::new(0);
        let total = AtomicU64::new(0);
        let progress = |n: u64, t: u64| {
            steps.fetch_add(n, Ordering::Relaxed);
            total.store(t, Ordering::Relaxed);
        };
        let texts: Vec<&str> = data.iter().map(|r| r.0.as_str()).collect();
        latencies([&a, &b], [&mut ma, &mut mb], &texts, 10, &progress).unwrap();
        for m in [&ma, &mb] {
            assert!(m.latency_ms_batch1.is_some_and(|v| v >= 0.0));
            assert!(m.ms_per_seq_batch32.is_some_and(|v| v >= 0.0));
        }
        // One warm-up, 10 single texts and 4 batches of 32 for each model.
        let each = 1 + 10 + (BATCH * BATCHES) as u64;
        assert_eq!(a.scored.load(Ordering::Relaxed), each);
        assert_eq!(b.scored.load(Ordering::Relaxed), each);
        assert_eq!(steps.load(Ordering::Relaxed), 10 + BATCHES as u64);
        assert_eq!(total.load(Ordering::Relaxed), 10 + BATCHES as u64);
    }

    #[test]
    fn report_round_trips_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OptimizeReport::read(dir.path()).unwrap(), None);
        let r = OptimizeReport {
            source: "m".into(),
            int8: true,
            prune: 0.3,
            sparsity: 0.3,
            data: Some("t.jsonl".into()),
            examples: Some(4),
            latency_samples: Some(4),
            threads: 1,
            kernel: "Portable".into(),
            before: ModelMeasure {
                size_bytes: 10,
                accuracy: Some(0.9),
                ..ModelMeasure::default()
            },
            after: ModelMeasure::default(),
        };
        r.write(dir.path()).unwrap();
        assert_eq!(OptimizeReport::read(dir.path()).unwrap(), Some(r));
        std::fs::write(dir.path().join(OPTIMIZE_JSON), "{").unwrap();
        let err = OptimizeReport::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains(OPTIMIZE_JSON), "{err}");
    }

    #[test]
    fn synthetic_texts_are_long_and_distinct() {
        let t = synthetic_texts(3);
        assert_eq!(t.len(), 3);
        assert!(t.iter().all(|s| s.split(' ').count() == 300));
        assert_ne!(t[0], t[1]);
    }
}

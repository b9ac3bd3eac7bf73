//! A model ready to serve ([`LoadedModel`]): loaded from its folder, warmed up on texts of
//! several lengths and self-tested (one finite probability vector per text, one entry per label,
//! summing to 1) through the path requests take (encode, then predict the encoded inputs)
//! before it may answer a request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use taxon_core::model::{Encoded, InputLimits, ModelError, TextClassifier};

use crate::error::ServeError;
use crate::source::SourceModel;

/// Opens a model folder. The default is [`taxon_models::load`]; tests and other model
/// factories plug in their own.
pub type Loader = Arc<dyn Fn(&Path) -> Result<Box<dyn TextClassifier>, ModelError> + Send + Sync>;

/// The loader of every model type this build knows.
pub fn default_loader() -> Loader {
    Arc::new(|dir: &Path| taxon_models::load(dir))
}

/// How far a probability vector's sum may be from 1.
const SUM_TOLERANCE: f32 = 1e-3;

/// Every load gets a new number, so "same version" is one integer comparison.
static NEXT_SEQ: AtomicU64 = AtomicU64::new(1);

/// A served model: the classifier and what the server says about it.
pub struct LoadedModel {
    /// Model name, from the source.
    pub name: String,
    /// Model version, from the source.
    pub version: String,
    /// Unique per load in this process (cache entries and encoded inputs carry it).
    pub seq: u64,
    /// `model_type` of `model.json`.
    pub model_type: String,
    /// Labels, in the order of the probabilities.
    pub labels: Vec<String>,
    /// What inputs the model accepts.
    pub input: InputLimits,
    /// When the load finished.
    pub loaded_at: SystemTime,
    /// The folder it was loaded from.
    pub dir: PathBuf,
    /// Seconds spent warming up.
    pub warmup_seconds: f64,
    /// The accuracy recorded for this model when it was trained (`validation.accuracy` of the
    /// folder's `metrics.json`), when recorded: exported as `taxon_model_evaluated_accuracy`.
    pub evaluated_accuracy: Option<f64>,
    classifier: Box<dyn TextClassifier>,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("seq", &self.seq)
            .field("model_type", &self.model_type)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl LoadedModel {
    /// Loads `source.dir` with `loader`, then warms up and self-tests the model. Blocking.
    pub fn load(source: &SourceModel, loader: &Loader) -> Result<Self, ServeError> {
        let classifier = loader(&source.dir).map_err(|e| ServeError::Load {
            name: source.name.clone(),
            version: source.version.clone(),
            dir: source.dir.clone(),
            source: Box::new(e),
        })?;
        Self::from_classifier(source, classifier)
    }

    /// Wraps an already loaded classifier, after the warm-up and self-test. Blocking.
    pub fn from_classifier(
        source: &SourceModel,
        classifier: Box<dyn TextClassifier>,
    ) -> Result<Self, ServeError> {
        let desc = classifier.describe();
        let labels = classifier.labels().to_vec();
        let fail = |message: String| ServeError::SelfTest {
            name: source.name.clone(),
            version: source.version.clone(),
            message,
        };
        if labels.is_empty() {
            return Err(fail("the model has no labels".into()));
        }
        let started = Instant::now();
        let texts = warmup_texts();
        // Twice: the first pass pays one-time costs (page faults, lazy init), the second is
        // what a request will see; both must be valid.
        for _ in 0..2 {
            let encoded = texts
                .iter()
                .map(|t| classifier.encode(t))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail(e.to_string()))?;
            let refs: Vec<&Encoded> = encoded.iter().collect();
            let probs = classifier
                .predict_encoded(&refs)
                .map_err(|e| fail(e.to_string()))?;
            check_probabilities(&probs, refs.len(), labels.len()).map_err(fail)?;
        }
        Ok(Self {
            name: source.name.clone(),
            version: source.version.clone(),
            seq: NEXT_SEQ.fetch_add(1, Ordering::Relaxed),
            model_type: desc.model_type,
            labels,
            input: desc.input,
            loaded_at: SystemTime::now(),
            dir: source.dir.clone(),
            warmup_seconds: started.elapsed().as_secs_f64(),
            evaluated_accuracy: evaluated_accuracy(&source.dir),
            classifier,
        })
    }

    /// One probability vector per text (encode and predict in one call).
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.classifier.predict_batch(texts)
    }

    /// `text` as this model's input ([`TextClassifier::encode`]), with its token count.
    pub fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        self.classifier.encode(text)
    }

    /// One probability vector per input; the inputs must come from this model's
    /// [`encode`](Self::encode) (the engine re-encodes inputs of another load).
    pub fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.classifier.predict_encoded(inputs)
    }

    /// [`predict_encoded`](Self::predict_encoded) with each input's pooled embedding, where
    /// the model type has one ([`TextClassifier::predict_embedded`]).
    #[allow(clippy::type_complexity)]
    pub fn predict_embedded(
        &self,
        inputs: &[&Encoded],
    ) -> Result<Vec<(Vec<f32>, Option<Vec<f32>>)>, ModelError> {
        self.classifier.predict_embedded(inputs)
    }

    /// The most tokens of a text the model looks at (`usize::MAX` when unbounded).
    pub fn token_cap(&self) -> usize {
        self.input
            .max_tokens
            .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX))
    }
}

/// The validation accuracy `taxon train` recorded in `dir/metrics.json` (`validation.accuracy`,
/// a share in 0..=1). `None` when the file is absent or records none (no validation data); an
/// unreadable file or a value outside 0..=1 is warned about and ignored: the model still serves.
pub fn evaluated_accuracy(dir: &Path) -> Option<f64> {
    let path = dir.join("metrics.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!("{}: {e}; no evaluated accuracy exported", path.display());
            return None;
        }
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("{}: {e}; no evaluated accuracy exported", path.display());
            return None;
        }
    };
    let accuracy = value.get("validation")?.get("accuracy")?;
    match accuracy.as_f64() {
        Some(a) if (0.0..=1.0).contains(&a) => Some(a),
        _ => {
            tracing::warn!(
                "{}: validation.accuracy is {accuracy}, not a share in 0..=1; no evaluated accuracy exported",
                path.display()
            );
            None
        }
    }
}

/// Texts of several lengths, so every code path (short, medium, truncated) runs once.
fn warmup_texts() -> Vec<String> {
    let words = [
        "market", "shares", "the", "match", "goal", "election", "film", "music", "phone", "court",
    ];
    let text = |n: usize| {
        (0..n)
            .map(|i| words[i % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    vec![
        "ok".into(),
        text(8),
        text(64),
        text(512),
        "Ünïcode text, punctuation! and CAPITALS?".into(),
    ]
}

/// Checks model output: `n` vectors of `labels` finite probabilities, each summing to 1.
pub fn check_probabilities<P: AsRef<[f32]>>(
    probs: &[P],
    n: usize,
    labels: usize,
) -> Result<(), String> {
    if probs.len() != n {
        return Err(format!("{} probability vectors for {n} texts", probs.len()));
    }
    for (i, p) in probs.iter().enumerate() {
        let p = p.as_ref();
        if p.len() != labels {
            return Err(format!(
                "text {i}: {} probabilities for {labels} labels",
                p.len()
            ));
        }
        if let Some(bad) = p.iter().find(|x| !x.is_finite() || **x < 0.0) {
            return Err(format!(
                "text {i}: probability {bad} is not a finite value >= 0"
            ));
        }
        let sum: f32 = p.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(format!(
                "text {i}: probabilities sum to {sum}, not 1 (tolerance {SUM_TOLERANCE})"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_catches_bad_vectors() {
        assert!(check_probabilities(&[vec![0.25, 0.75]], 1, 2).is_ok());
        let err = check_probabilities(&[vec![0.5, 0.6]], 1, 2).unwrap_err();
        assert!(err.contains("sum to"), "{err}");
        let err = check_probabilities(&[vec![f32::NAN, 1.0]], 1, 2).unwrap_err();
        assert!(err.contains("finite"), "{err}");
        let err = check_probabilities(&[vec![1.0]], 1, 2).unwrap_err();
        assert!(err.contains("1 probabilities for 2 labels"), "{err}");
        let err = check_probabilities::<Vec<f32>>(&[], 1, 2).unwrap_err();
        assert!(err.contains("0 probability vectors for 1 texts"), "{err}");
    }

    #[test]
    fn evaluated_accuracy_is_the_recorded_validation_accuracy() {
        let dir = tempfile::tempdir().unwrap();
        // No metrics.json: nothing recorded.
        assert_eq!(evaluated_accuracy(dir.path()), None);
        let write = |text: &str| std::fs::write(dir.path().join("metrics.json"), text).unwrap();
        write(
            r#"{"model_type": "linear", "validation": {"examples": 20, "accuracy": 0.85, "macro_f1": 0.8}}"#,
        );
        assert_eq!(evaluated_accuracy(dir.path()), Some(0.85));
        // Trained without validation data.
        write(r#"{"model_type": "linear", "validation": null}"#);
        assert_eq!(evaluated_accuracy(dir.path()), None);
        // Not a share, or not JSON: ignored.
        write(r#"{"validation": {"accuracy": 85}}"#);
        assert_eq!(evaluated_accuracy(dir.path()), None);
        write("not json");
        assert_eq!(evaluated_accuracy(dir.path()), None);
    }
}

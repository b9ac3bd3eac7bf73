//! The monitor stage inside the server: every prediction is remembered (bounded, for
//! feedback) and, with a prediction log, appended to it (sampled, texts only on opt-in);
//! feedback turns into live accuracy and per-label recall over a window per model version,
//! exported as `model_accuracy{model_version}` and `taxon_live_recall{model_version, label}`.
//! The log, the window and the drift statistics themselves live in taxon-monitor.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use lru::LruCache;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use taxon_monitor::live::LiveAccuracy;
use taxon_monitor::log::{FeedbackRecord, LogOptions, LogRecord, LogWriter, PredictionRecord, now};

use crate::error::ServeError;
use crate::model::LoadedModel;

/// How the server monitors itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Append predictions and feedback to rotated JSONL files in this folder.
    pub prediction_log: Option<PathBuf>,
    /// A log file past this size is closed and the next one opened.
    pub log_max_file_bytes: u64,
    /// Log files kept (the oldest beyond are deleted).
    pub log_max_files: usize,
    /// Records waiting for the log writer; beyond this they are dropped and counted.
    pub log_queue: usize,
    /// Log the texts too (off by default: texts can be personal data).
    pub log_text: bool,
    /// Share of predictions logged, in parts per million (1,000,000: all).
    pub log_sample_ppm: u32,
    /// Predictions remembered for feedback (the most recent ones).
    pub feedback_capacity: usize,
    /// Feedback per model version that live accuracy is computed over.
    pub feedback_window: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            prediction_log: None,
            log_max_file_bytes: 64 << 20,
            log_max_files: 32,
            log_queue: 65_536,
            log_text: false,
            log_sample_ppm: 1_000_000,
            feedback_capacity: 100_000,
            feedback_window: 1_000,
        }
    }
}

/// A remembered prediction.
struct Recent {
    model: String,
    version: String,
    labels: std::sync::Arc<[String]>,
    predicted: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    model_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecallLabels {
    model_version: String,
    label: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// What one prediction was, for [`Monitoring::observe`].
pub struct Observed<'a> {
    pub request_id: String,
    pub model: &'a LoadedModel,
    pub probs: &'a [f32],
    /// Tokens the model read; `None` for an answer from the cache (remembered for feedback,
    /// not logged).
    pub tokens: Option<usize>,
    pub unknown_share: Option<f32>,
    pub latency_seconds: f64,
    pub text: &'a str,
}

/// Feedback refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FeedbackError {
    /// No remembered prediction has this id.
    UnknownRequest(String),
    /// The model that made the prediction has no such label.
    UnknownLabel { label: String, known: Vec<String> },
}

/// The server's monitoring state.
pub struct Monitoring {
    config: MonitorConfig,
    log: Option<LogWriter>,
    recent: Mutex<LruCache<String, Recent>>,
    /// Label lists by model version, shared by the remembered predictions.
    labels: Mutex<HashMap<String, std::sync::Arc<[String]>>>,
    live: Mutex<HashMap<String, LiveAccuracy>>,
    registry: Registry,
    accuracy: Family<VersionLabel, Gauge<f64, AtomicU64>>,
    recall: Family<RecallLabels, Gauge<f64, AtomicU64>>,
    feedback: Family<ResultLabel, Counter>,
    log_dropped: Counter,
    log_written: Counter,
    sampled: AtomicU64,
}

impl std::fmt::Debug for Monitoring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitoring")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Monitoring {
    /// Starts the prediction log writer when configured.
    pub fn start(config: MonitorConfig) -> Result<Self, ServeError> {
        let log = match &config.prediction_log {
            Some(dir) => {
                let mut opts = LogOptions::new(dir);
                opts.max_file_bytes = config.log_max_file_bytes;
                opts.max_files = config.log_max_files.max(1);
                opts.capacity = config.log_queue.max(1);
                Some(LogWriter::start(opts).map_err(|e| ServeError::Config {
                    field: "prediction_log",
                    message: e.to_string(),
                })?)
            }
            None => None,
        };
        let mut registry = Registry::default();
        let accuracy = Family::<VersionLabel, Gauge<f64, AtomicU64>>::default();
        let recall = Family::<RecallLabels, Gauge<f64, AtomicU64>>::default();
        let feedback = Family::<ResultLabel, Counter>::default();
        let log_dropped = Counter::default();
        let log_written = Counter::default();
        registry.register(
            "model_accuracy",
            "Live accuracy: share of the last feedback_window feedback labels the model version predicted",
            accuracy.clone(),
        );
        registry.register(
            "taxon_live_recall",
            "Live recall per true label over the last feedback_window feedback labels of the model version",
            recall.clone(),
        );
        registry.register(
            "taxon_feedback",
            "Feedback received, by whether the prediction was correct",
            feedback.clone(),
        );
        registry.register(
            "taxon_prediction_log_dropped",
            "Prediction log records dropped because the writer's queue was full",
            log_dropped.clone(),
        );
        registry.register(
            "taxon_prediction_log_written",
            "Prediction log records written to files",
            log_written.clone(),
        );
        let cap = NonZeroUsize::new(config.feedback_capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            recent: Mutex::new(LruCache::new(cap)),
            labels: Mutex::new(HashMap::new()),
            live: Mutex::new(HashMap::new()),
            config,
            log,
            registry,
            accuracy,
            recall,
            feedback,
            log_dropped,
            log_written,
            sampled: AtomicU64::new(0),
        })
    }

    fn labels_of(&self, model: &LoadedModel) -> std::sync::Arc<[String]> {
        let mut map = self
            .labels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(model.version.clone())
            .or_insert_with(|| model.labels.clone().into())
            .clone()
    }

    /// Whether this prediction goes to the log (every 1/share-th one, spread evenly).
    fn sample(&self) -> bool {
        let ppm = u64::from(self.config.log_sample_ppm.min(1_000_000));
        if ppm >= 1_000_000 {
            return true;
        }
        let n = self
            .sampled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Kept when the running count of kept records (n * share, floored) steps up.
        ((n + 1) * ppm) / 1_000_000 > (n * ppm) / 1_000_000
    }

    /// Whether texts go to the log (so handlers keep them until the answer).
    pub fn logs_text(&self) -> bool {
        self.log.is_some() && self.config.log_text
    }

    /// Remembers one prediction for feedback and logs it.
    pub fn observe(&self, o: Observed<'_>) {
        let predicted = top(o.probs);
        let labels = self.labels_of(o.model);
        if let (Some(log), Some(tokens)) = (&self.log, o.tokens) {
            if self.sample() {
                let record = PredictionRecord {
                    time: now(),
                    request_id: o.request_id.clone(),
                    model: o.model.name.clone(),
                    version: o.model.version.clone(),
                    label: labels.get(predicted).cloned().unwrap_or_default(),
                    scores: labels
                        .iter()
                        .cloned()
                        .zip(o.probs.iter().copied())
                        .collect(),
                    latency_ms: o.latency_seconds * 1e3,
                    tokens,
                    unknown_share: o.unknown_share,
                    text: self.config.log_text.then(|| o.text.to_string()),
                };
                log.log(LogRecord::Prediction(record));
            }
        }
        let recent = Recent {
            model: o.model.name.clone(),
            version: o.model.version.clone(),
            labels,
            predicted,
        };
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .put(o.request_id, recent);
    }

    /// Whether [`feedback`](Self::feedback) would accept this item (without recording it).
    pub fn check(&self, request_id: &str, label: &str) -> Result<(), FeedbackError> {
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = recent
            .peek(request_id)
            .ok_or_else(|| FeedbackError::UnknownRequest(request_id.to_string()))?;
        if r.labels.iter().any(|l| l == label) {
            Ok(())
        } else {
            Err(FeedbackError::UnknownLabel {
                label: label.to_string(),
                known: r.labels.to_vec(),
            })
        }
    }

    /// Records the true `label` of prediction `request_id`; returns whether the prediction
    /// was right.
    pub fn feedback(&self, request_id: &str, label: &str) -> Result<bool, FeedbackError> {
        let (model, version, labels, predicted) = {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let r = recent
                .get(request_id)
                .ok_or_else(|| FeedbackError::UnknownRequest(request_id.to_string()))?;
            (
                r.model.clone(),
                r.version.clone(),
                std::sync::Arc::clone(&r.labels),
                r.predicted,
            )
        };
        let truth =
            labels
                .iter()
                .position(|l| l == label)
                .ok_or_else(|| FeedbackError::UnknownLabel {
                    label: label.to_string(),
                    known: labels.to_vec(),
                })?;
        let correct = truth == predicted;
        {
            let mut live = self
                .live
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let window = live
                .entry(version.clone())
                .or_insert_with(|| LiveAccuracy::new(labels.len(), self.config.feedback_window));
            window.add(truth, predicted);
            if let Some(a) = window.accuracy() {
                self.accuracy
                    .get_or_create(&VersionLabel {
                        model_version: version.clone(),
                    })
                    .set(a);
            }
            if let Some(r) = window.recall(truth) {
                self.recall
                    .get_or_create(&RecallLabels {
                        model_version: version.clone(),
                        label: label.to_string(),
                    })
                    .set(r);
            }
        }
        self.feedback
            .get_or_create(&ResultLabel {
                result: if correct { "correct" } else { "incorrect" }.into(),
            })
            .inc();
        if let Some(log) = &self.log {
            log.log(LogRecord::Feedback(FeedbackRecord {
                time: now(),
                request_id: request_id.to_string(),
                model,
                version,
                predicted: labels.get(predicted).cloned().unwrap_or_default(),
                label: label.to_string(),
            }));
        }
        Ok(correct)
    }

    /// Appends this module's metrics to an OpenMetrics exposition (before its `# EOF`).
    pub fn render_into(&self, out: &mut String) {
        if let Some(log) = &self.log {
            let d = log.dropped();
            self.log_dropped
                .inc_by(d.saturating_sub(self.log_dropped.get()));
            let w = log.written();
            self.log_written
                .inc_by(w.saturating_sub(self.log_written.get()));
        }
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        let _ = prometheus_client::encoding::text::encode(out, &self.registry);
    }

    /// Flushes the prediction log (at shutdown).
    pub fn flush(&self) {
        if let Some(log) = &self.log {
            log.flush();
        }
    }
}

/// Index of the highest probability (the first on ties).
fn top(probs: &[f32]) -> usize {
    let mut best = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p > probs[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_the_share() {
        for ppm in [0u32, 100_000, 250_000, 500_000, 1_000_000] {
            let m = Monitoring::start(MonitorConfig {
                log_sample_ppm: ppm,
                ..MonitorConfig::default()
            })
            .unwrap();
            let kept = (0..10_000).filter(|_| m.sample()).count();
            assert_eq!(
                kept,
                (10_000 * u64::from(ppm) / 1_000_000) as usize,
                "ppm {ppm}"
            );
        }
    }
}

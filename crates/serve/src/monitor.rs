//! The monitor stage inside the server: every prediction is remembered (bounded, for
//! feedback) and, with a prediction log, appended to it (sampled, texts only on opt-in);
//! feedback turns into live accuracy and per-label recall over a window per model version,
//! exported as `model_accuracy{model_version}` and `taxon_live_recall{model_version, label}`.
//! The last `drift_window` predictions of the served model are kept in a fixed ring (constant
//! memory; with `drift_window_seconds`, only those of the last that many seconds count) and
//! compared, at each scrape, with the model's reference profile (reloaded with a
//! hot swap): `taxon_drift_score{feature, model_version}` and
//! `taxon_drift_detected{model_version}`. The seed's names are exported beside taxon's own:
//! `prediction_latency_seconds` (a summary of the model's compute time per prediction),
//! `predictions_total{model_version, result}` (the predicted label, or `error`).
//! The log, the windows and the drift statistics themselves live in taxon-monitor.

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
use taxon_monitor::drift::{Thresholds, compare};
use taxon_monitor::live::LiveAccuracy;
use taxon_monitor::log::{FeedbackRecord, LogOptions, LogRecord, LogWriter, PredictionRecord, now};
use taxon_monitor::{Observation, Profile};

use crate::error::ServeError;
use crate::model::LoadedModel;

/// How the server monitors itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// Off: predictions are neither remembered, counted per label, logged nor watched for
    /// drift (feedback answers 404); for measuring what monitoring costs.
    pub enabled: bool,
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
    /// Encrypt the logged texts with this Fernet key (the data layer's).
    pub log_text_key: Option<TextKey>,
    /// Share of predictions logged, in parts per million (1,000,000: all).
    pub log_sample_ppm: u32,
    /// Predictions remembered for feedback (the most recent ones).
    pub feedback_capacity: usize,
    /// Feedback per model version that live accuracy is computed over.
    pub feedback_window: usize,
    /// Predictions in the online drift window (0: no online drift).
    pub drift_window: usize,
    /// Only the window's predictions of the last this many seconds count (0: all of them);
    /// with none left, the drift series are removed until predictions come again.
    pub drift_window_seconds: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            prediction_log: None,
            log_max_file_bytes: 64 << 20,
            log_max_files: 32,
            log_queue: 65_536,
            log_text: false,
            log_text_key: None,
            log_sample_ppm: 1_000_000,
            feedback_capacity: 100_000,
            feedback_window: 1_000,
            drift_window: 1_000,
            drift_window_seconds: 0,
        }
    }
}

/// The Fernet key logged texts are encrypted with; equal when the keys are.
#[derive(Clone, Debug)]
pub struct TextKey(pub taxon_fernet::Key);

impl PartialEq for TextKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_base64() == other.0.to_base64()
    }
}

impl Eq for TextKey {}

/// A remembered prediction.
struct Recent {
    version: std::sync::Arc<Served>,
    predicted: usize,
}

/// What every prediction of one model version shares, made once per version so the hot path
/// neither allocates names nor looks up label sets: the names, the labels, and the handle of
/// each label's `predictions_total` counter.
struct Served {
    model: String,
    version: String,
    labels: std::sync::Arc<[String]>,
    /// `predictions_total{model_version, result}` per label, in label order.
    counters: Vec<Counter>,
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
    /// The pooled embedding the model read (`bert`; not for cache hits).
    pub embedding: Option<&'a [f32]>,
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

/// The online drift window: the last `capacity` predictions of one model load, in flat
/// fixed-size buffers (no allocation per prediction), and that load's reference profile.
struct Online {
    seq: u64,
    version: String,
    model_type: String,
    labels: Vec<String>,
    reference: Option<Profile>,
    capacity: usize,
    len: usize,
    next: usize,
    tokens: Vec<u32>,
    unknown: Vec<f32>,
    scores: Vec<f32>,
    /// Each prediction's embedding projected with the reference's projection (`dims` values
    /// per prediction; none without a projection).
    projected: Vec<f32>,
    dims: usize,
    /// When each prediction was made.
    times: Vec<std::time::Instant>,
    /// Only predictions younger than this count (`None`: all).
    max_age: Option<std::time::Duration>,
}

impl Online {
    fn reset(&mut self, model: &LoadedModel) {
        self.seq = model.seq;
        self.version = model.version.clone();
        self.model_type = model.model_type.clone();
        self.labels = model.labels.clone();
        self.reference = match Profile::read_from_model(&model.dir) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(version = %model.version, "no online drift for this model: {e}");
                None
            }
        };
        self.len = 0;
        self.next = 0;
        self.tokens = vec![0; self.capacity];
        self.unknown = vec![f32::NAN; self.capacity];
        self.scores = vec![0.0; self.capacity * model.labels.len()];
        self.times = vec![std::time::Instant::now(); self.capacity];
        self.dims = self
            .reference
            .as_ref()
            .and_then(|r| r.projection.as_ref())
            .map_or(0, |p| p.components.len());
        self.projected = vec![f32::NAN; self.capacity * self.dims];
    }

    fn push(
        &mut self,
        tokens: usize,
        unknown: Option<f32>,
        probs: &[f32],
        embedding: Option<&[f32]>,
    ) {
        let l = self.labels.len();
        if self.capacity == 0 || probs.len() != l {
            return;
        }
        let i = self.next;
        self.tokens[i] = u32::try_from(tokens).unwrap_or(u32::MAX);
        self.unknown[i] = unknown.unwrap_or(f32::NAN);
        self.scores[i * l..(i + 1) * l].copy_from_slice(probs);
        self.times[i] = std::time::Instant::now();
        if self.dims > 0 {
            let coords = self
                .reference
                .as_ref()
                .and_then(|r| r.projection.as_ref())
                .zip(embedding)
                .and_then(|(p, e)| p.project(e));
            let slot = &mut self.projected[i * self.dims..(i + 1) * self.dims];
            match coords {
                Some(c) if c.len() == slot.len() => slot.copy_from_slice(&c),
                _ => slot.fill(f32::NAN),
            }
        }
        self.next = (i + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// The window's predictions that still count at `now`, as a profile; `None` when none does.
    fn profile(&self, now: std::time::Instant) -> Option<Profile> {
        let l = self.labels.len();
        let mut p = match &self.reference {
            Some(r) => Profile::like(r, "online window"),
            None => Profile::new(&self.model_type, &self.labels, "online window"),
        };
        let mut counted = false;
        for i in 0..self.len {
            if let Some(max) = self.max_age {
                if now.saturating_duration_since(self.times[i]) > max {
                    continue;
                }
            }
            counted = true;
            let u = self.unknown[i];
            p.observe(&Observation {
                tokens: self.tokens[i] as usize,
                unknown_share: (!u.is_nan()).then_some(u),
                scores: &self.scores[i * l..(i + 1) * l],
                embedding: None,
            });
            let coords = &self.projected[i * self.dims..(i + 1) * self.dims];
            if coords.iter().all(|c| !c.is_nan()) {
                p.observe_projected(coords);
            }
        }
        counted.then_some(p)
    }
}

/// The seed's `prediction_latency_seconds` summary: quantiles since start from an HDR
/// histogram (microseconds, 3 significant digits; constant memory), with sum and count.
struct LatencySummary {
    hist: hdrhistogram::Histogram<u64>,
    sum: f64,
    /// The same since the embedded alerts last read it ([`Monitoring::take_latency_p99`]).
    interval: hdrhistogram::Histogram<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DriftLabels {
    feature: String,
    model_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PredictionLabels {
    model_version: String,
    result: String,
}

/// The server's monitoring state.
pub struct Monitoring {
    config: MonitorConfig,
    log: Option<LogWriter>,
    recent: Mutex<LruCache<String, Recent>>,
    /// Label lists by model version, shared by the remembered predictions.
    served: Mutex<HashMap<String, std::sync::Arc<Served>>>,
    live: Mutex<HashMap<String, LiveAccuracy>>,
    registry: Registry,
    accuracy: Family<VersionLabel, Gauge<f64, AtomicU64>>,
    recall: Family<RecallLabels, Gauge<f64, AtomicU64>>,
    feedback: Family<ResultLabel, Counter>,
    log_dropped: Counter,
    log_written: Counter,
    sampled: AtomicU64,
    online: Mutex<Online>,
    drift_score: Family<DriftLabels, Gauge<f64, AtomicU64>>,
    drift_detected: Family<VersionLabel, Gauge>,
    predictions: Family<PredictionLabels, Counter>,
    latency: Mutex<LatencySummary>,
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
            Some(dir) if config.enabled => {
                let mut opts = LogOptions::new(dir);
                opts.max_file_bytes = config.log_max_file_bytes;
                opts.max_files = config.log_max_files.max(1);
                opts.capacity = config.log_queue.max(1);
                opts.text_key = config.log_text_key.as_ref().map(|k| k.0.clone());
                Some(LogWriter::start(opts).map_err(|e| ServeError::Config {
                    field: "prediction_log",
                    message: e.to_string(),
                })?)
            }
            _ => None,
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
        let drift_score = Family::<DriftLabels, Gauge<f64, AtomicU64>>::default();
        let drift_detected = Family::<VersionLabel, Gauge>::default();
        let predictions = Family::<PredictionLabels, Counter>::default();
        registry.register(
            "taxon_drift_score",
            "Online drift of the last drift_window predictions against the served model's reference profile: normalized Wasserstein distance (numeric features) or chi-square p-value (predicted_label)",
            drift_score.clone(),
        );
        registry.register(
            "taxon_drift_detected",
            "1 when a feature of the online window drifts past its threshold (taxon monitor drift's rule)",
            drift_detected.clone(),
        );
        registry.register(
            "predictions",
            "Predictions computed, by model version and result (the predicted label, or error)",
            predictions.clone(),
        );
        let online = Online {
            seq: 0,
            version: String::new(),
            model_type: String::new(),
            labels: Vec::new(),
            reference: None,
            capacity: config.drift_window,
            len: 0,
            next: 0,
            tokens: Vec::new(),
            unknown: Vec::new(),
            scores: Vec::new(),
            times: Vec::new(),
            projected: Vec::new(),
            dims: 0,
            max_age: (config.drift_window_seconds > 0)
                .then(|| std::time::Duration::from_secs(config.drift_window_seconds)),
        };
        let hist = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| {
            ServeError::Config {
                field: "prediction_latency_seconds",
                message: e.to_string(),
            }
        })?;
        let cap = NonZeroUsize::new(config.feedback_capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            recent: Mutex::new(LruCache::new(cap)),
            served: Mutex::new(HashMap::new()),
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
            online: Mutex::new(online),
            drift_score,
            drift_detected,
            predictions,
            latency: Mutex::new(LatencySummary {
                interval: hist.clone(),
                hist,
                sum: 0.0,
            }),
        })
    }

    fn served(&self, model: &LoadedModel) -> std::sync::Arc<Served> {
        let mut map = self
            .served
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.get(&model.version) {
            return std::sync::Arc::clone(s);
        }
        let counters = model
            .labels
            .iter()
            .map(|l| {
                self.predictions
                    .get_or_create(&PredictionLabels {
                        model_version: model.version.clone(),
                        result: l.clone(),
                    })
                    .clone()
            })
            .collect();
        let served = std::sync::Arc::new(Served {
            model: model.name.clone(),
            version: model.version.clone(),
            labels: model.labels.clone().into(),
            counters,
        });
        map.insert(model.version.clone(), std::sync::Arc::clone(&served));
        served
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

    /// Counts a prediction the model failed on (`predictions_total{result="error"}`).
    pub fn prediction_error(&self, model_version: &str) {
        self.predictions
            .get_or_create(&PredictionLabels {
                model_version: model_version.to_string(),
                result: "error".into(),
            })
            .inc();
    }

    /// Remembers one prediction for feedback, counts it, adds it to the online window and
    /// logs it. A cached answer (no token count) is only remembered and counted.
    pub fn observe(&self, o: Observed<'_>) {
        if !self.config.enabled {
            return;
        }
        let predicted = top(o.probs);
        let served = self.served(o.model);
        let labels = &served.labels;
        if let Some(c) = served.counters.get(predicted) {
            c.inc();
        }
        if let Some(tokens) = o.tokens {
            {
                let mut l = self
                    .latency
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let micros = (o.latency_seconds * 1e6).round().max(1.0) as u64;
                let _ = l.hist.record(micros);
                let _ = l.interval.record(micros);
                l.sum += o.latency_seconds;
            }
            if self.config.drift_window > 0 {
                let mut online = self
                    .online
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if online.seq != o.model.seq {
                    online.reset(o.model);
                }
                online.push(tokens, o.unknown_share, o.probs, o.embedding);
            }
        }
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
                    text_fernet: None,
                };
                log.log(LogRecord::Prediction(record));
            }
        }
        let recent = Recent {
            version: served,
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
        if r.version.labels.iter().any(|l| l == label) {
            Ok(())
        } else {
            Err(FeedbackError::UnknownLabel {
                label: label.to_string(),
                known: r.version.labels.to_vec(),
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
                r.version.model.clone(),
                r.version.version.clone(),
                std::sync::Arc::clone(&r.version.labels),
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
        self.update_drift();
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        self.render_latency(out);
        let _ = prometheus_client::encoding::text::encode(out, &self.registry);
    }

    /// The p99 of the model's compute time per prediction (seconds) since the last call, and
    /// starts a new interval; `None` when nothing was computed since.
    pub fn take_latency_p99(&self) -> Option<f64> {
        let mut l = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if l.interval.is_empty() {
            return None;
        }
        let p99 = l.interval.value_at_quantile(0.99) as f64 / 1e6;
        l.interval.reset();
        Some(p99)
    }

    /// Live accuracy of `model_version` over its feedback window; `None` before feedback.
    pub fn live_accuracy(&self, model_version: &str) -> Option<f64> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(model_version)
            .and_then(LiveAccuracy::accuracy)
    }

    /// The online window compared with the served model's reference profile now: the
    /// window's model version and the report; `None` without a reference or (recent)
    /// predictions.
    pub fn drift(&self) -> Option<(String, taxon_monitor::drift::DriftReport)> {
        let (current, reference, version) = {
            let online = self
                .online
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let reference = online.reference.clone()?;
            if online.len == 0 {
                return None;
            }
            // Nothing recent (`--drift-window-seconds`): no statement about drift, so an old
            // window does not keep an alert firing when traffic stops.
            let current = online.profile(std::time::Instant::now())?;
            (current, reference, online.version.clone())
        };
        let report = compare(&reference, &current, &Thresholds::default()).ok()?;
        Some((version, report))
    }

    /// Compares the online window with its reference and sets the drift gauges (none when
    /// there is nothing to compare).
    fn update_drift(&self) {
        // Series of the window's version only: an old version's scores go with it.
        self.drift_score.clear();
        self.drift_detected.clear();
        let Some((version, report)) = self.drift() else {
            return;
        };
        for f in &report.features {
            self.drift_score
                .get_or_create(&DriftLabels {
                    feature: f.name.clone(),
                    model_version: version.clone(),
                })
                .set(f.value);
        }
        self.drift_detected
            .get_or_create(&VersionLabel {
                model_version: version,
            })
            .set(i64::from(report.drift));
    }

    /// The `prediction_latency_seconds` summary, in the text format (prometheus-client has no
    /// summary type).
    fn render_latency(&self, out: &mut String) {
        use std::fmt::Write;
        let l = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP prediction_latency_seconds Time the model spent computing each prediction (the batch that answered it), not the HTTP request."
        );
        let _ = writeln!(out, "# TYPE prediction_latency_seconds summary");
        if !l.hist.is_empty() {
            for q in [0.5, 0.9, 0.99] {
                let v = l.hist.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(out, "prediction_latency_seconds{{quantile=\"{q}\"}} {v}");
            }
        }
        let _ = writeln!(out, "prediction_latency_seconds_sum {}", l.sum);
        let _ = writeln!(out, "prediction_latency_seconds_count {}", l.hist.len());
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

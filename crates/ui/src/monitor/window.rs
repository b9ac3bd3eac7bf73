//! The prediction log cut into time windows: per window the predictions by label, the latency
//! percentiles, the feedback and its live accuracy, and the drift of the window's predictions
//! against the reference profile (taxon-monitor's own test, thresholds and chance level).
//!
//! Work is bounded: only the newest log files up to [`MAX_LOG_BYTES`] are read (the page says
//! so when older ones are left out), and the window width is raised until there are at most
//! [`MAX_WINDOWS`] windows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use taxon_monitor::drift::{DriftReport, Thresholds};
use taxon_monitor::log::{LogRecord, log_files, read_files};
use taxon_monitor::{MonitorError, Observation, Profile};

/// Log bytes read at most: the newest files whose sizes add up to this (always the newest
/// one, which the writer caps at its own file size).
pub const MAX_LOG_BYTES: u64 = 64 << 20;
/// Windows drawn at most; a narrower window asked for is widened.
pub const MAX_WINDOWS: usize = 120;
/// Drawn values times permutations that the windows' chance levels may cost together (about
/// a fifth of a second in a release build: `bench/ui.sh` measures the page): past it, each
/// window's chance level is estimated from fewer permutations.
const PERMUTATION_BUDGET: f64 = 2e7;
/// The fewest permutations a window's chance level is estimated from (unless configured off).
const MIN_PERMUTATIONS: usize = 20;
/// Values `drift::chance_level` pools at most.
const MAX_POOLED: f64 = 50_000.0;
/// Windows the default width aims at.
const DEFAULT_WINDOWS: f64 = 24.0;
/// Window widths offered and rounded up to, in seconds.
const WIDTHS: [u64; 19] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400, 604_800,
    2_592_000,
];

/// One logged prediction, as much as the page needs.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub time: f64,
    pub model: String,
    pub version: String,
    pub label: String,
    pub latency_ms: f64,
    pub tokens: usize,
    pub unknown_share: Option<f32>,
    pub scores: BTreeMap<String, f32>,
}

/// One logged feedback: when, and whether the model had it right.
#[derive(Clone, Copy, Debug)]
pub struct Feedback {
    pub time: f64,
    pub correct: bool,
}

/// What was read of a log.
#[derive(Clone, Debug, Default)]
pub struct LogRead {
    pub predictions: Vec<Prediction>,
    pub feedback: Vec<Feedback>,
    pub files_read: usize,
    pub files_total: usize,
    pub bytes_read: u64,
    pub bytes_total: u64,
}

impl LogRead {
    /// Whether older files were left out.
    pub fn capped(&self) -> bool {
        self.files_read < self.files_total
    }

    /// First and last record times; `None` for an empty log.
    pub fn span(&self) -> Option<(f64, f64)> {
        let times = self
            .predictions
            .iter()
            .map(|p| p.time)
            .chain(self.feedback.iter().map(|f| f.time));
        times.fold(None, |acc, t| match acc {
            None => Some((t, t)),
            Some((lo, hi)) => Some((f64::min(lo, t), f64::max(hi, t))),
        })
    }
}

/// Reads the newest files of the log in `dir` up to `max_bytes` (at least the newest one).
pub fn read_log(dir: &Path, max_bytes: u64) -> Result<LogRead, MonitorError> {
    let files = log_files(dir)?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    let mut read = LogRead {
        files_total: files.len(),
        bytes_total: sizes.iter().sum(),
        ..LogRead::default()
    };
    let mut first = files.len();
    while first > 0 && (first == files.len() || read.bytes_read + sizes[first - 1] <= max_bytes) {
        first -= 1;
        read.bytes_read += sizes[first];
    }
    let chosen: Vec<PathBuf> = files[first..].to_vec();
    read.files_read = chosen.len();
    let (mut predictions, mut feedback) = (Vec::new(), Vec::new());
    read_files(&chosen, &mut |rec| match rec {
        LogRecord::Prediction(p) => predictions.push(Prediction {
            time: p.time,
            model: p.model,
            version: p.version,
            label: p.label,
            latency_ms: p.latency_ms,
            tokens: p.tokens,
            unknown_share: p.unknown_share,
            scores: p.scores,
        }),
        LogRecord::Feedback(f) => feedback.push(Feedback {
            time: f.time,
            correct: f.predicted == f.label,
        }),
    })?;
    read.predictions = predictions;
    read.feedback = feedback;
    Ok(read)
}

/// The window width for a log spanning `span` seconds: `asked` (seconds) when given, else about
/// [`DEFAULT_WINDOWS`] windows; either widened to the next offered width that gives at most
/// [`MAX_WINDOWS`]. The second value is true when `asked` had to be widened.
pub fn width(span: f64, asked: Option<u64>) -> (u64, bool) {
    // Alignment to multiples of the width adds at most one window.
    let fits = |w: u64| span / w as f64 <= (MAX_WINDOWS - 2) as f64;
    let wanted = asked.unwrap_or_else(|| {
        let target = span / DEFAULT_WINDOWS;
        WIDTHS
            .iter()
            .copied()
            .find(|&w| w as f64 >= target)
            .unwrap_or(WIDTHS[WIDTHS.len() - 1])
    });
    let wanted = wanted.max(1);
    if fits(wanted) {
        return (wanted, false);
    }
    let w = WIDTHS
        .iter()
        .copied()
        .find(|&w| w > wanted && fits(w))
        .unwrap_or_else(|| (span / (MAX_WINDOWS - 2) as f64).ceil() as u64);
    (w, asked.is_some())
}

/// One window's numbers.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Unix seconds; the window is `[start, start + width)`.
    pub start: f64,
    pub predictions: u64,
    pub by_label: BTreeMap<String, u64>,
    pub feedback: u64,
    pub correct: u64,
    /// Nearest-rank percentiles of the logged latency (ms).
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    /// The window's predictions against the reference, when there is one and the window has
    /// predictions of its label set.
    pub drift: Option<DriftReport>,
    latencies: Vec<f64>,
}

impl Window {
    /// Share of the window's feedback the model had right; `None` without feedback.
    pub fn accuracy(&self) -> Option<f64> {
        (self.feedback > 0).then(|| self.correct as f64 / self.feedback as f64)
    }
}

/// The nearest-rank `q` percentile of sorted `v`.
fn percentile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1])
}

/// The reference a log is compared with, and the thresholds.
#[derive(Clone, Copy, Debug)]
pub struct Baseline<'a> {
    pub profile: &'a Profile,
    pub thresholds: &'a Thresholds,
}

/// The profile of `predictions` to compare with `reference`; the second value counts the
/// predictions of another label set, left out (as `taxon monitor drift` leaves them out).
pub fn profile_of<'a>(
    reference: &Profile,
    predictions: impl Iterator<Item = &'a Prediction>,
    source: &str,
) -> (Profile, u64) {
    let mut p = Profile::like(reference, source);
    let mut skipped = 0;
    let mut scores = Vec::with_capacity(reference.labels.len());
    for r in predictions {
        scores.clear();
        scores.extend(
            reference
                .labels
                .iter()
                .map_while(|l| r.scores.get(l).copied()),
        );
        if scores.len() != reference.labels.len() || r.scores.len() != reference.labels.len() {
            skipped += 1;
            continue;
        }
        p.observe(&Observation {
            tokens: r.tokens,
            unknown_share: r.unknown_share,
            scores: &scores,
            embedding: None,
        });
    }
    (p, skipped)
}

/// The permutations of each window's chance level: the configured number, fewer when the
/// windows together would cost more than [`PERMUTATION_BUDGET`] (at least [`MIN_PERMUTATIONS`]).
pub fn window_permutations(configured: usize, reference: &Profile, window_rows: &[u64]) -> usize {
    let features = reference.numeric.len() as f64;
    // A permutation draws the smaller of the two groups (`drift::chance_level`).
    let drawn: f64 = window_rows
        .iter()
        .filter(|&&n| n > 0)
        .map(|&n| (reference.rows.min(n) as f64).min(MAX_POOLED))
        .sum();
    let affordable = PERMUTATION_BUDGET / (drawn * features).max(1.0);
    configured.min((affordable as usize).max(MIN_PERMUTATIONS))
}

/// `read` in windows of `width` seconds aligned to multiples of it, oldest first (empty ones
/// included, so gaps show); with `baseline`, each window's drift, its chance levels from the
/// permutations [`window_permutations`] affords (the second value).
pub fn windows(read: &LogRead, width: u64, baseline: Option<Baseline<'_>>) -> (Vec<Window>, usize) {
    let Some((lo, hi)) = read.span() else {
        return (Vec::new(), 0);
    };
    let w = width.max(1) as f64;
    let start = (lo / w).floor() * w;
    let n = (((hi - start) / w).floor() as usize + 1).min(MAX_WINDOWS);
    let index = |t: f64| (((t - start) / w).floor().max(0.0) as usize).min(n - 1);
    let mut out: Vec<Window> = (0..n)
        .map(|i| Window {
            start: start + i as f64 * w,
            ..Window::default()
        })
        .collect();
    let mut members: Vec<Vec<&Prediction>> = vec![Vec::new(); n];
    for p in &read.predictions {
        let i = index(p.time);
        let win = &mut out[i];
        win.predictions += 1;
        *win.by_label.entry(p.label.clone()).or_insert(0) += 1;
        win.latencies.push(p.latency_ms);
        members[i].push(p);
    }
    for f in &read.feedback {
        let win = &mut out[index(f.time)];
        win.feedback += 1;
        win.correct += u64::from(f.correct);
    }
    let thresholds = baseline.map(|b| {
        let rows: Vec<u64> = members.iter().map(|m| m.len() as u64).collect();
        Thresholds {
            permutations: window_permutations(b.thresholds.permutations, b.profile, &rows),
            ..b.thresholds.clone()
        }
    });
    let permutations = thresholds.as_ref().map_or(0, |t| t.permutations);
    for (win, preds) in out.iter_mut().zip(members) {
        let mut lat = std::mem::take(&mut win.latencies);
        lat.retain(|v| v.is_finite());
        lat.sort_by(f64::total_cmp);
        win.latency_p50 = percentile(&lat, 0.50);
        win.latency_p95 = percentile(&lat, 0.95);
        if let (Some(b), Some(t)) = (baseline, &thresholds) {
            let (current, _) = profile_of(b.profile, preds.into_iter(), "window");
            if current.rows > 0 {
                win.drift = taxon_monitor::drift::compare(b.profile, &current, t).ok();
            }
        }
    }
    (out, permutations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_round_up_and_respect_the_window_cap() {
        assert_eq!(width(240.0, None), (10, false));
        assert_eq!(width(240.0, Some(60)), (60, false));
        // 1 s windows over a day would be 86 400 windows: widened, and said so.
        let (w, widened) = width(86_400.0, Some(1));
        assert!(widened && 86_400.0 / w as f64 <= MAX_WINDOWS as f64, "{w}");
        assert_eq!(width(0.0, None), (1, false));
    }

    #[test]
    fn many_windows_over_a_large_reference_get_fewer_permutations() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let mut reference = Profile::new("linear", &labels, "test");
        reference.rows = 200;
        // Small: the configured 200.
        assert_eq!(window_permutations(200, &reference, &[100; 10]), 200);
        // 24 windows of 5 000 against 2 000 reference rows (each permutation draws 2 000): as
        // many as the budget affords.
        reference.rows = 2_000;
        let n = window_permutations(200, &reference, &[5_000; 24]);
        assert!((MIN_PERMUTATIONS + 1..200).contains(&n), "{n}");
        let drawn = 24.0 * 2_000.0 * reference.numeric.len() as f64;
        assert!(n as f64 * drawn <= PERMUTATION_BUDGET, "{n}");
        // 120 windows: never below the floor; off stays off; no window, nothing to cut.
        assert_eq!(
            window_permutations(200, &reference, &[5_000; 120]),
            MIN_PERMUTATIONS
        );
        assert_eq!(window_permutations(0, &reference, &[100; 120]), 0);
        assert_eq!(window_permutations(200, &reference, &[]), 200);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.95), Some(19.0));
        assert_eq!(percentile(&[3.0], 0.95), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
